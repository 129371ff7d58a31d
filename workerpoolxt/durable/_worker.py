"""The durable worker: claims tasks from a store and runs them on a local pool.

A claimed task becomes an ordinary named Job on an ordinary ``WorkerPool``, so
timeouts, middleware, ``current_job()`` and status codes behave as for any
job. What the store adds is durability: the task's attempts and final status
live in the store, retries are scheduled there (so any worker may run the
next attempt), and a heartbeat keeps each running task's lease, so that a
worker that dies loses its tasks to the others once the lease expires.

Delivery is at least once: a task whose worker died mid-run runs again, up
to ``max_lost_leases`` times, whatever its ``retry``. Its final status is
written exactly once: finalising writes check that the task is still running
and still held by this worker.

A handler that raises a BaseException (``SystemExit``, ``KeyboardInterrupt``)
fails its own attempt, which the store records before the exception leaves
the worker; the tasks that were running or claimed beside it go back to the
queue, their attempts not counted.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

# The core's public names, as any user of the pool has them; and, as a wing of
# the package, its engine's retry policy and its helpers for errors and arguments.
from .. import Backoff, Job, PoolClosedError, Registry, RunInfo, Status, WorkerPool
from .._attempts import RetryPolicy
from .._errors import CancelTask, StoreError, TaskConflictError, exit_with_sole
from .._validation import MAX_WORKERS, Seconds, count, to_seconds
from ._store import (
    DEFAULT_MAX_LOST_LEASES,
    MAX_COUNT,
    Order,
    Store,
    TaskRecord,
    TaskStatus,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from .. import JobHandle, Result
    from ..middleware import Middleware

__all__ = ["DurableWorker", "DurableWorkerStatistics"]

_logger: Final = logging.getLogger("workerpoolxt")
_DEFAULT_BACKOFF: Final = Backoff()
# A durable task's failed attempt is retried whatever its handler raised: the store keeps the count.
_ANY_FAILURE: Final = (BaseException,)
# Seconds a worker with few free slots waits for more before it claims.
_GATHER: Final = 0.005


@attrs.frozen
class DurableWorkerStatistics:
    """Counters of a ``DurableWorker`` since it started."""

    claimed: int
    """Tasks taken from the store, reclaimed ones included."""
    succeeded: int
    failed: int
    """Tasks finalised as failed or dead."""
    retried: int
    """Failed attempts queued in the store for another try."""
    cancelled: int
    """Tasks finalised as cancelled by their handler (``CancelTask``), or cancelled in the store while they ran."""
    released: int
    """Tasks handed back to the store by a stop, or by another task's BaseException."""
    lost: int
    """Tasks whose lease this worker lost to another worker while running them."""
    running: int


class DurableWorker:
    """Runs tasks from a durable ``Store`` with the handlers of a ``Registry``.

    Use it as an async context manager (it runs in the background until the
    block ends, then stops gracefully) or ``await worker.run()`` until
    ``stop()``.

    Args:
        store: Where the tasks are: ``MemoryStore``, ``SQLiteStore``, ``PostgresStore``.
        registry: The handlers that tasks name.
        concurrency: How many tasks run at once; the worker claims no more.
        lease: Seconds after its last heartbeat that a running task may be
            claimed by another worker, as its worker is presumed dead.
        heartbeat: Seconds between heartbeats, well below ``lease``. A task
            cancelled in the store while it runs is cancelled here at the next
            heartbeat at the latest (at once on PostgreSQL and MemoryStore).
        max_lost_leases: How many times a task's worker may die (its lease
            expire) with the task still run again; the next time, the claim
            finds it dead (``LeaseExpired``). It does not count against the
            task's ``retry``.
        poll: Seconds between claims while the store has no work and does not
            notify (SQLite); PostgreSQL and MemoryStore wake the worker at once.
        order: Which queued tasks to claim first.
        worker_id: How this worker names itself in the store; by default
            ``host:pid:random``.
        middleware, options: As for ``WorkerPool``.
        backoff: The wait before a failed task's retry, for tasks that set none.
        final_write_timeout: The bound in seconds on writing a task's final
            status, which no cancellation interrupts.
        give_up_after: Seconds of failed claims, with none succeeding, after
            which the worker gives up: it cancels its running tasks, hands
            them back to the store if it can, and ``run()`` raises the last
            claim's error, so that a process supervisor sees the exit. The
            default, 300, outlasts a database restart or a network blip.

    Raises:
        TypeError, ValueError: An argument is invalid; the message names it.
    """

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        concurrency: int = 8,
        lease: Seconds = 30.0,
        heartbeat: Seconds = 10.0,
        max_lost_leases: int = DEFAULT_MAX_LOST_LEASES,
        poll: Seconds = 1.0,
        order: Order | str = Order.FIFO,
        worker_id: str | None = None,
        middleware: Iterable[Middleware] | None = None,
        options: Mapping[str, Any] | None = None,
        backoff: Backoff = _DEFAULT_BACKOFF,
        final_write_timeout: Seconds = 10.0,
        give_up_after: Seconds = 300.0,
    ) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"`store` must be a workerpoolxt Store, not {type(store).__name__}")
        if not isinstance(registry, Registry):
            raise TypeError(f"`registry` must be a Registry, not {type(registry).__name__}")
        self._store = store
        # Retry times are on the store's clock: wall-clock seconds, or virtual for a MemoryStore under test.
        self._clock: Callable[[], float] = getattr(store, "clock", time.time)
        self._registry = registry
        self._concurrency = count(concurrency, "concurrency", minimum=1, maximum=MAX_WORKERS)
        self._claim_batch = max(1, self._concurrency // 4)
        self._lease = to_seconds(lease, "lease")
        self._heartbeat = to_seconds(heartbeat, "heartbeat")
        if self._heartbeat >= self._lease:
            raise ValueError(f"`heartbeat` ({self._heartbeat}) must be shorter than `lease` ({self._lease})")
        self._max_lost_leases = count(max_lost_leases, "max_lost_leases", minimum=0, maximum=MAX_COUNT)
        self._poll = to_seconds(poll, "poll")
        try:
            self._order = Order(order)
        except ValueError:
            raise ValueError(f"`order` must be one of {[o.value for o in Order]}, got {order!r}") from None
        if worker_id is None:
            worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        elif not isinstance(worker_id, str) or not worker_id:
            raise TypeError("`worker_id` must be a non-empty str or None")
        self.worker_id = worker_id
        if not isinstance(backoff, Backoff):
            raise TypeError(f"`backoff` must be a Backoff, not {type(backoff).__name__}")
        self._backoff = backoff
        self._final_write_timeout = to_seconds(final_write_timeout, "final_write_timeout")
        self._give_up_after = to_seconds(give_up_after, "give_up_after")
        # Checked now, so a mistake shows here rather than inside the run.
        self._pool = WorkerPool(self._concurrency, registry=registry, middleware=middleware, options=options)

        # The tasks whose lease this worker holds, from their claim until their
        # end is written: what it heartbeats, and what bounds its claims. The
        # pool's concurrency bounds what runs; this bounds what is held, which
        # also counts the tasks claimed and not yet handed to the pool, and
        # those whose end is still being written, so a worker never holds more
        # leases than it has slots (test_concurrency_bounds_claims_and_runs).
        self._running: dict[int, JobHandle[Any] | None] = {}
        # Running tasks this worker no longer holds (another took the lease, or
        # someone cancelled them): their handlers are cancelled, their ends unwritten.
        self._dropped: set[int] = set()
        # Tasks whose final status this worker is writing: no longer "running" in the store, yet not lost.
        self._settling: set[int] = set()
        self._counts = dict.fromkeys(("claimed", "succeeded", "failed", "retried", "cancelled", "released", "lost"), 0)
        self._stop_requested = False
        # The earliest retry this worker scheduled, so an idle worker wakes for it.
        self._next_retry = math.inf
        self._cancel_running = False
        # When the claims started failing, with none succeeding since; and the error that made the worker give up.
        self._failing_since: float | None = None
        self._gave_up: Exception | None = None
        self._started = False
        self._idle: trio.CancelScope | None = None
        self._slot_free = trio.lowlevel.ParkingLot()
        self._stopped = trio.Event()
        self._nursery_manager: Any = None

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> DurableWorker:
        self._nursery_manager = trio.open_nursery()
        nursery = await self._nursery_manager.__aenter__()
        try:
            await nursery.start(self.run)
        except BaseException as error:
            # Failing to start (the store unreachable, say) must still close
            # the nursery, since no __aexit__ will come to do it.
            if not await self.__aexit__(type(error), error, error.__traceback__):
                raise
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        exc = exc_info[1]
        self.stop(cancel_running=exc is not None)
        try:
            result: bool | None = await self._nursery_manager.__aexit__(*exc_info)
        except BaseExceptionGroup as group:
            # As WorkerPool does: a lone error, the block's own included, comes out bare.
            return exit_with_sole(group, exc)
        return result

    def stop(self, *, cancel_running: bool = False) -> None:
        """Claim no more tasks and stop; ``run()`` returns once every claimed task is settled.

        Claimed tasks that have not started are released to the store. Running
        ones finish and are finalised, unless ``cancel_running`` is true: then
        they are cancelled and released, and the attempt cut short does not count.
        """
        self._stop_requested = True
        self._cancel_running = self._cancel_running or cancel_running
        if self._idle is not None:
            self._idle.cancel()
        self._slot_free.unpark_all()
        if self._started:
            self._pool.request_stop(cancel_running=self._cancel_running)

    async def wait_stopped(self) -> None:
        """Wait until ``run()`` has returned."""
        await self._stopped.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Claim and run tasks until ``stop()``.

        Raises:
            Exception: The store's error, such as ``StoreError``, if ``init()``
                fails, or if every claim failed for ``give_up_after`` seconds.
        """
        if self._started:
            raise RuntimeError("a DurableWorker runs only once; create a new one")
        self._started = True
        try:
            await self._store.init()
            async with self._pool, trio.open_nursery() as services:
                services.start_soon(self._beat)
                services.start_soon(self._watch_cancellations)
                task_status.started()
                async with trio.open_nursery() as runners:
                    await self._claim_loop(runners)
                    if self._stop_requested:
                        self.stop(cancel_running=self._cancel_running)
                services.cancel_scope.cancel(reason="the DurableWorker stopped")
            if self._gave_up is not None:
                raise self._gave_up
        finally:
            self._stopped.set()

    async def _claim_loop(self, runners: trio.Nursery) -> None:
        while not self._stop_requested:
            free = self._concurrency - len(self._running)
            if free <= 0:
                await self._slot_free.park()
                continue
            if free < self._claim_batch and len(self._running) > self._claim_batch:
                # Claiming a slot at a time as tasks end costs the store a round
                # trip per task; while plenty still run, let a few more end first.
                with trio.move_on_after(_GATHER):
                    while self._concurrency - len(self._running) < self._claim_batch and not self._stop_requested:
                        await self._slot_free.park()
                free = self._concurrency - len(self._running)
                if self._stop_requested:
                    return
            try:
                records = await self._store.claim(
                    self.worker_id, free, order=self._order, lease=self._lease, max_lost_leases=self._max_lost_leases
                )
            except Exception as exc:
                if self._give_up(exc):
                    return
                _log_failure(exc, "worker %s could not claim tasks; trying again in %gs", self.worker_id, self._poll)
                records = []
            else:
                self._failing_since = None
            if self._stop_requested and records:
                self._counts["claimed"] += len(records)
                self._counts["released"] += len(records)
                await self._write_shielded(
                    self._store.release([record.id for record in records], worker_id=self.worker_id)
                )
                return
            self._counts["claimed"] += len(records)
            for record in records:
                self._running[record.id] = None
                runners.start_soon(self._run_task, record, name=f"workerpoolxt task {record.id}")
            if not records:
                with trio.CancelScope() as self._idle:
                    if self._stop_requested:
                        return
                    try:
                        await self._store.wait_for_work(self._idle_wait())
                    except Exception as exc:
                        _log_failure(exc, "worker %s could not wait for work; polling", self.worker_id)
                        await trio.sleep(self._poll)
                self._idle = None

    def _give_up(self, error: Exception) -> bool:
        """Count a failed claim; once claims failed for ``give_up_after``, stop with ``error`` for run() to raise."""
        now = trio.current_time()
        if self._failing_since is None:
            self._failing_since = now
        failing = now - self._failing_since
        if failing < self._give_up_after:
            return False
        _log_failure(error, "worker %s gives up: its claims failed for %.1fs", self.worker_id, failing)
        self._gave_up = error
        self.stop(cancel_running=True)
        return True

    def _idle_wait(self) -> float:
        """How long an idle worker waits for work: a poll, or less if a retry it scheduled is due sooner."""
        retry_in = self._next_retry - self._clock()
        if retry_in < self._poll:
            self._next_retry = math.inf
            return max(retry_in, 0.0)
        return self._poll

    async def _beat(self) -> None:
        """Refresh the leases of the running tasks; cancel those another worker took, or someone cancelled."""
        while True:
            await trio.sleep(self._heartbeat)
            task_ids = list(self._running)
            if not task_ids:
                continue
            try:
                held = set(await self._store.heartbeat(task_ids, worker_id=self.worker_id))
            except Exception as exc:
                _log_failure(exc, "worker %s could not send its heartbeat", self.worker_id)
                continue
            for task_id in task_ids:
                if task_id in held or not self._holds(task_id):
                    continue
                # Rare, so worth a look at the store: cancelled there, or lost to another worker?
                try:
                    status = (await self._store.get(task_id)).status
                except Exception:  # not knowing why, it is lost all the same
                    status = None
                if self._holds(task_id):
                    self._drop(task_id, cancelled=status is TaskStatus.CANCELLED)

    async def _watch_cancellations(self) -> None:
        """Cancel at once the handlers of running tasks someone cancelled in the store, as it announces them."""
        while True:
            try:
                task_ids = await self._store.wait_for_cancellations()
            except Exception as exc:
                _log_failure(exc, "worker %s could not watch for cancelled tasks", self.worker_id)
                await trio.sleep(self._heartbeat)  # and the heartbeat finds them meanwhile
                continue
            for task_id in task_ids:
                if self._holds(task_id):
                    self._drop(task_id, cancelled=True)

    def _holds(self, task_id: int) -> bool:
        """Whether a task runs here, and its end is this worker's to write."""
        return (
            task_id in self._running
            and task_id not in self._dropped
            and task_id not in self._settling  # our own final write took it out of "running"
        )

    def _drop(self, task_id: int, *, cancelled: bool) -> None:
        """Cancel the handler of a task this worker no longer holds, and write nothing more for it."""
        self._dropped.add(task_id)
        handle = self._running[task_id]
        if handle is not None:
            handle.cancel()
        if cancelled:
            self._counts["cancelled"] += 1
        else:
            self._counts["lost"] += 1
            _logger.warning("worker %s lost the lease of task %d", self.worker_id, task_id)

    # -- one task ----------------------------------------------------------------------

    def _job_for(self, record: TaskRecord) -> Job[Any]:
        self._registry[record.handler]  # raises UnknownHandlerError naming it
        data = dict(record.job)
        data["retry"] = 0  # attempts are the store's to count
        return Job.from_dict(data)

    async def _run_task(self, record: TaskRecord) -> None:
        store, worker_id = self._store, self.worker_id
        try:
            try:
                job = self._job_for(record)
            except Exception as exc:
                # A row no worker can run: it alone is dead, the worker goes on.
                _logger.error(  # noqa: TRY400 - the task's data is at fault, not this code: no traceback
                    "task %d cannot run and is dead: %s: %s", record.id, type(exc).__name__, exc
                )
                self._counts["failed"] += 1
                self._settling.add(record.id)
                await self._write_shielded(store.fail(record.id, exc, None, worker_id=worker_id, dead=True))
                return
            try:
                handle = self._pool.submit(job, info=RunInfo(task_id=record.id, first_attempt=record.attempts))
            except PoolClosedError:  # stopped between the claim and here
                self._counts["released"] += 1
                self._settling.add(record.id)
                await self._write_shielded(store.release([record.id], worker_id=worker_id))
                return
            self._running[record.id] = handle
            if record.id in self._dropped:  # before its handle existed
                handle.cancel()
            try:
                result = await handle.wait()
                self._settling.add(record.id)
            except BaseException:
                # Cancelled from outside: the job is cancelled too, and its
                # task goes back to the store, whatever cancels us.
                handle.cancel()
                self._settling.add(record.id)
                with trio.CancelScope(shield=True), trio.move_on_after(self._final_write_timeout):
                    result = await handle.wait()
                    if record.id not in self._dropped:
                        await self._write_shielded(self._write_outcome(record, job, result))
                raise
            if record.id not in self._dropped:
                await self._write_shielded(self._write_outcome(record, job, result))
        finally:
            self._running.pop(record.id, None)
            self._dropped.discard(record.id)
            self._settling.discard(record.id)
            self._slot_free.unpark()

    async def _write_outcome(self, record: TaskRecord, job: Job[Any], result: Result[Any]) -> None:
        """Write how the task's run ended, and count it once written."""
        try:
            outcome = await self._write_end(record, job, result)
        except TaskConflictError as exc:
            if exc.status != TaskStatus.CANCELLED:
                raise
            # Cancelled in the store as it ended here, before a heartbeat told
            # us: cancelled is its end, as if we had been told in time.
            outcome = "cancelled"
        self._counts[outcome] += 1

    async def _write_end(self, record: TaskRecord, job: Job[Any], result: Result[Any]) -> str:
        """Write how the task's run ended; return the counter it adds to."""
        store, worker_id, task_id = self._store, self.worker_id, record.id
        status = result.status
        if status is Status.SUCCEEDED:
            try:
                await store.complete(task_id, result.data, worker_id=worker_id)
            except (TypeError, ValueError) as exc:  # the handler returned something JSON cannot hold
                await store.fail(task_id, exc, None, worker_id=worker_id)
                return "failed"
            return "succeeded"
        if status is Status.ABANDONED or status is Status.CANCELLED:
            # A stop, or another task's BaseException, cut it short: no fault of the task's.
            await store.release([task_id], worker_id=worker_id)
            return "released"
        if isinstance(result.error, CancelTask):
            await store.cancel(task_id, worker_id=worker_id)
            return "cancelled"
        # A failed attempt, whatever the handler raised: a BaseException too.
        error = result.error
        assert error is not None
        # The attempt engine's policy decides, as for any job; the wait is spent in the store.
        backoff = job.backoff if job.backoff is not None else self._backoff
        policy = RetryPolicy(record.retry, backoff, _ANY_FAILURE)
        delay = policy.delay_after(record.attempts, error)
        if delay is not None:
            retry_at = self._clock() + delay
            self._next_retry = min(self._next_retry, retry_at)
            await store.fail(task_id, error, retry_at, worker_id=worker_id)
            return "retried"
        await store.fail(task_id, error, None, worker_id=worker_id)
        return "failed"

    async def _write_shielded(self, write: Awaitable[None]) -> None:
        """Await a write to the store that no cancellation may lose, within its bound."""
        # One scope, shielded and bounded, where two nested would cost twice: one runs per task.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + self._final_write_timeout) as bound:
            try:
                await write
            except TaskConflictError as exc:  # another worker took the task after our lease ran out
                _logger.warning("worker %s: %s", self.worker_id, exc)
            except Exception as exc:
                _log_failure(exc, "worker %s could not write a task's status", self.worker_id)
        if bound.cancelled_caught:
            seconds = self._final_write_timeout
            _logger.error("worker %s gave up writing a task's status after %gs", self.worker_id, seconds)

    # -- observing -----------------------------------------------------------------------

    def statistics(self) -> DurableWorkerStatistics:
        """A frozen snapshot of the worker's counters."""
        return DurableWorkerStatistics(running=len(self._running), **self._counts)


def _log_failure(error: Exception, message: str, *args: object) -> None:
    """Log a failed store call: a StoreError on one line, as it says what failed; anything else with its traceback."""
    if isinstance(error, StoreError):
        _logger.error(message + ": %s", *args, error)
    else:
        _logger.error(message, *args, exc_info=error)
