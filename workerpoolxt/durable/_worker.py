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

The pool tells the worker of each job's end (an observer), and the worker
writes the ends of the tasks that ended together in one transaction: on a
store that can (``finish_and_claim()``), the same one that claims their
successors, so their slots count as free for that claim. A task's slot is
free, and its lease no longer held, only once its end is written.

A handler that raises a BaseException (``SystemExit``, ``KeyboardInterrupt``)
fails its own attempt, which the store records before the exception leaves
the worker; the tasks that were running or claimed beside it go back to the
queue, their attempts not counted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import attrs
import trio

# The core's public names, as any user of the pool has them; and, as a wing of
# the package, its engine's retry policy and its helpers for errors and arguments.
from .. import Backoff, Health, Job, PoolClosedError, Progress, Registry, RunInfo, Status, WorkerPool
from .._attempts import RetryPolicy
from .._errors import CancelTask, StoreError, TaskConflictError, TaskNotFoundError, exit_with_sole
from .._serialize import job_from_dict
from .._validation import Seconds, count, to_seconds
from ..hooks import JobFinished, JobProgress, Observer
from ._app import WorkerApp, reset_lifespan_value, set_lifespan_value
from ._machine import Call
from ._observer import (
    DurableObserver,
    Observers,
    OutcomeLog,
    QueueDepth,
    TaskClaimed,
    TaskEnded,
    TaskOutcome,
    TaskProgress,
    notify,
)
from ._periodic import Periodic, Scheduler
from ._store import (
    DEFAULT_MAX_LOST_LEASES,
    MAX_COUNT,
    PRUNE_LIMIT,
    AdminStore,
    BatchingStore,
    Order,
    PeriodicStore,
    ProgressStore,
    Store,
    TaskEnd,
    TaskRecord,
    TaskStatus,
    check_queues,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence

    from .. import JobHandle, Result
    from ..middleware import Middleware

__all__ = ["DurableWorker", "DurableWorkerStatistics"]

_logger: Final = logging.getLogger("workerpoolxt")
_T = TypeVar("_T")
# A durable task's failed attempt is retried whatever its handler raised: the store keeps the count.
_ANY_FAILURE: Final = (BaseException,)
# Seconds a worker with few free slots waits for more before it claims.
_GATHER: Final = 0.005
# The least seconds between a worker's prunes of finished tasks; its heartbeat, if longer. Pruning more
# often gains nothing: a retention is hours or days, and each prune costs the store a query.
_PRUNE_EVERY: Final = 60.0


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
    """Tasks this worker holds: running, or their end still to be written."""


class _Default:
    """A keyword's default, told apart from the same value passed: given a WorkerApp, only a passed one overrides it.

    Its repr is the value's, so the signature reads as usual.
    """

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _default(value: _T) -> _T:
    return cast("_T", _Default(value))


# The DurableWorker keywords that are WorkerApp fields too, and their defaults (those of WorkerApp).
_APP_KEYWORDS: Final = (
    "concurrency",
    "middleware",
    "options",
    "backoff",
    "shutdown_timeout",
    "burst",
    "log_outcomes",
    "retention",
    "periodic",
)
_CONCURRENCY: Final = _default(8)
_NONE: Final = _default(None)
_BACKOFF: Final = _default(Backoff())
_FALSE: Final = _default(False)
_TRUE: Final = _default(True)
_NO_SCHEDULES: Final = _default(())


class DurableWorker:
    """Runs tasks from a durable ``Store`` with the handlers of a ``Registry`` or a ``WorkerApp``.

    Use it as an async context manager (it runs in the background until the
    block ends, then stops gracefully) or ``await worker.run()`` until
    ``stop()``.

    Each task's outcome is logged on one line on the ``workerpoolxt.durable``
    logger (unless ``log_outcomes`` is false): INFO when it succeeded, was
    cancelled or released, WARNING when its attempt failed (retrying, failed,
    dead) or its lease was lost, as in ``task 4 send_email failed attempt 1/3,
    retrying in 0.5s: ValueError: boom``. The record's ``extra`` fields give
    the same facts to a structured formatter: ``task_id``, ``handler``,
    ``attempt``, ``max_attempts``, ``status``, ``duration``, ``worker_id``
    and ``error``. It is an observer (``DurableObserver``); add your own with
    ``add_observer()``: they also hear each progress report as it comes
    (``task_progress``).

    Args:
        store: Where the tasks are: ``MemoryStore``, ``SQLiteStore``, ``PostgresStore``.
        registry: The handlers that tasks name; or a ``WorkerApp``, whose fields
            then give the settings that are not passed here as keywords.
        concurrency: How many tasks run at once; the worker claims no more.
        lease: Seconds after its last heartbeat that a running task may be
            claimed by another worker, as its worker is presumed dead.
        heartbeat: Seconds between heartbeats, well below ``lease``. A task
            cancelled in the store while it runs is cancelled here at the next
            heartbeat at the latest (at once on PostgreSQL and MemoryStore).
            Each heartbeat also stores the latest progress report
            (``current_job().progress()``) of each task that reported since
            the last one, on a store that keeps them (``ProgressStore``).
        max_lost_leases: How many times a task's worker may die (its lease
            expire) with the task still run again; the next time, the claim
            finds it dead (``LeaseExpired``). It does not count against the
            task's ``retry``.
        poll: Seconds between claims while the store has no work and does not
            notify (SQLite); PostgreSQL and MemoryStore wake the worker at once.
        order: Which queued tasks to claim first.
        queues: The queues whose tasks the worker claims (``["mail",
            "reports"]``), in ``order`` across them all, with one claim; None,
            the default, claims from every queue. On PostgreSQL an idle worker
            wakes only for news of its own queues.
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
        shutdown_timeout: Seconds a graceful ``stop()`` waits for the running
            tasks; then they are cancelled and handed back to the store, as
            ``stop(cancel_running=True)`` does. None: as long as they run.
        burst: Stop by itself once no task is claimable now and none runs;
            it still waits for the retries it scheduled itself, so each task
            it started reaches a final status, but not for tasks their
            enqueuer deferred. ``run()`` then returns.
        log_outcomes: Log each task's outcome (above).
        retention: Seconds (or a ``timedelta``) to keep finished tasks in
            the store; None (the default) keeps them forever. Set, the worker
            deletes the tasks that finished longer ago (``AdminStore.prune()``),
            as it starts and then every ``max(heartbeat, 60)`` seconds, in
            batches of 1000 until a batch comes back short, with a checkpoint
            between, in a task of its own that never holds up heartbeats or
            claims. A failing prune is logged and tried again at the next
            interval. A burst worker that ran out of work lets its first prune
            finish, for at most ``final_write_timeout``, before it stops.
            Workers sharing a store may all prune: each task is deleted once.
            The store must be an ``AdminStore``.
        periodic: Jobs to enqueue on a schedule (``Periodic``), each tick
            once however many workers run them: the worker enqueues each tick
            as it comes (and, as it starts, the latest tick missed while no
            worker ran the schedule, unless it says ``missed="skip"``), in a
            task of its own. A failing store call is logged, and made again
            ``poll`` seconds later; a tick the store refuses for good (a
            ``TypeError`` or ``ValueError``) is logged once and skipped. Each
            tick's task is logged on one INFO line, as in ``periodic
            send_digest: tick 2026-11-30T06:00:00Z enqueued as task 17``. A
            burst worker runs no schedules. The store must be a
            ``PeriodicStore``.

    Raises:
        TypeError, ValueError: An argument is invalid; the message names it.
    """

    def __init__(
        self,
        store: Store,
        registry: Registry | WorkerApp,
        *,
        concurrency: int = _CONCURRENCY,
        lease: Seconds = 30.0,
        heartbeat: Seconds = 10.0,
        max_lost_leases: int = DEFAULT_MAX_LOST_LEASES,
        poll: Seconds = 1.0,
        order: Order | str = Order.FIFO,
        queues: Sequence[str] | None = None,
        worker_id: str | None = None,
        middleware: Iterable[Middleware] | None = _NONE,
        options: Mapping[str, Any] | None = _NONE,
        backoff: Backoff = _BACKOFF,
        final_write_timeout: Seconds = 10.0,
        give_up_after: Seconds = 300.0,
        shutdown_timeout: Seconds | None = _NONE,
        burst: bool = _FALSE,
        log_outcomes: bool = _TRUE,
        retention: Seconds | None = _NONE,
        periodic: Sequence[Periodic] = _NO_SCHEDULES,
    ) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"`store` must be a workerpoolxt Store, not {type(store).__name__}")
        given: dict[str, Any] = {
            name: value
            for name, value in zip(
                _APP_KEYWORDS,
                (concurrency, middleware, options, backoff, shutdown_timeout, burst, log_outcomes, retention, periodic),
                strict=True,
            )
            if not isinstance(value, _Default)
        }
        if isinstance(registry, WorkerApp):
            app = attrs.evolve(registry, **given) if given else registry
        elif isinstance(registry, Registry):
            app = WorkerApp(registry, **given)
        else:
            raise TypeError(f"`registry` must be a Registry or a WorkerApp, not {type(registry).__name__}")
        self.app: Final = app
        """The worker's settings: the ``WorkerApp`` it was given, with the keywords passed here applied."""
        self._store = store
        # Retry times are on the store's clock: wall-clock seconds, or virtual for a MemoryStore under test.
        self._clock: Callable[[], float] = getattr(store, "clock", time.time)
        self._registry = app.registry
        self._concurrency = app.concurrency
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
        self.queues: Final = check_queues(queues)
        """The queues the worker claims from, or None for every queue."""
        # Passed only when set, so a store of an older interface, without queues, still serves a worker of all.
        self._in_queues: dict[str, Any] = {} if self.queues is None else {"queues": self.queues}
        if worker_id is None:
            worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        elif not isinstance(worker_id, str) or not worker_id:
            raise TypeError("`worker_id` must be a non-empty str or None")
        self.worker_id = worker_id
        if app.retention is not None and not isinstance(store, AdminStore):
            raise TypeError(
                f"`retention` needs a store that can delete finished tasks (an AdminStore, with prune()), "
                f"not {type(store).__name__}"
            )
        if app.periodic and not app.burst and not isinstance(store, PeriodicStore):
            raise TypeError(
                f"`periodic` needs a store that keeps schedules (a PeriodicStore, with enqueue_tick()), "
                f"not {type(store).__name__}"
            )
        self._backoff = app.backoff
        self._final_write_timeout = to_seconds(final_write_timeout, "final_write_timeout")
        self._give_up_after = to_seconds(give_up_after, "give_up_after")
        self._pool = WorkerPool(
            self._concurrency, registry=app.registry, middleware=app.middleware, options=app.options
        )

        # The tasks whose lease this worker holds, from their claim until their
        # end is written: what it heartbeats, and what bounds its claims. The
        # pool's concurrency bounds what runs; this bounds what is held, which
        # also counts the tasks whose end is still to be written, so a worker
        # never holds more leases than it has slots
        # (test_concurrency_bounds_claims_and_runs). Each maps to its job's handle.
        self._running: dict[int, JobHandle[Any] | None] = {}
        # The record of each task held, for what observers are told of it.
        self._held: dict[int, TaskRecord] = {}
        # The task and job behind each handle of the pool, until the job ends.
        self._runs: dict[JobHandle[Any], tuple[TaskRecord, Job[Any]]] = {}
        # Tasks whose jobs ended, their ends not yet written: the claim loop
        # writes them in the transaction of its next claim.
        self._ended: list[tuple[TaskRecord, Job[Any], Result[Any]]] = []
        # Running tasks this worker no longer holds (another took the lease, or
        # someone cancelled them): their handlers are cancelled, their ends unwritten.
        self._dropped: set[int] = set()
        # Tasks whose jobs ended, their final status to be written or being written:
        # no longer "running" in the store, yet not lost.
        self._settling: set[int] = set()
        self._counts = dict.fromkeys(("claimed", "succeeded", "failed", "retried", "cancelled", "released", "lost"), 0)
        self._stop_requested = False
        self._stopping = trio.Event()
        # The retries this worker scheduled, by task, until a claim could take them: an idle worker wakes for
        # each. In burst mode they stay until this worker claims them or the store says another took them.
        self._own_retries: dict[int, float] = {}
        # When, on the store's clock, the last claim started: the retries due by then were claimable.
        self._claimed_at = -math.inf
        self._cancel_running = False
        # When the claims started failing, with none succeeding since, and why; and the error that made the worker
        # give up.
        self._failing_since: float | None = None
        self._claim_error: Exception | None = None
        self._gave_up: Exception | None = None
        self._started = False
        self._serving = False
        self._idle: trio.CancelScope | None = None
        self._slot_free = trio.lowlevel.ParkingLot()
        # Woken after each heartbeat: the reports that follow it (_report) wait here, never the heartbeat for them.
        self._beaten = trio.lowlevel.ParkingLot()
        self._stopped = trio.Event()
        # Set once the first prune (with a retention) has ended; a burst worker that ran out of work waits for it.
        self._pruned = trio.Event()
        self._burst_over = False
        self._nursery_manager: Any = None
        # A store that writes ends and claims in one transaction saves one per batch of tasks.
        self._batching = isinstance(store, BatchingStore)
        # The latest progress report of each task held, not yet written: the
        # heartbeat writes them, so a handler reporting per item costs the
        # store one write per heartbeat, not one per report.
        self._progress: dict[int, Progress] = {}
        self._progress_store = store if isinstance(store, ProgressStore) else None
        # The pool tells the worker of each job's end and progress: no task per job waits for them.
        self._pool.add_observer(_PoolObserver(self._job_ended, self._job_progress))
        self._observers = Observers()
        if app.log_outcomes:
            self.add_observer(OutcomeLog())
        if app.metrics is not None:
            app.metrics.attach(self)

    def add_observer(self, observer: DurableObserver) -> None:
        """Tell ``observer`` of the tasks this worker claims and ends from now on, and of the store's counts.

        Adding the same observer again does nothing. See ``DurableObserver``.

        Raises:
            TypeError: ``observer`` is not a DurableObserver.
        """
        self._observers = self._observers.adding(observer)

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
        self._stopping.set()
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
        """Claim and run tasks until ``stop()`` (or, in burst mode, until no work is left).

        The app's lifespan, if it has one, is entered once the store is ready,
        before the first claim, and exited after the last task's end is
        written, however the run ends.

        Raises:
            Exception: The store's error, such as ``StoreError``, if ``init()``
                fails, or if every claim failed for ``give_up_after`` seconds;
                or what the lifespan raised.
        """
        if self._started:
            raise RuntimeError("a DurableWorker runs only once; create a new one")
        self._started = True
        try:
            await self._store.init()
            lifespan = self.app.lifespan
            if lifespan is None:
                await self._serve(task_status)
            else:
                manager = lifespan(self.app)
                if not isinstance(manager, AbstractAsyncContextManager):
                    raise TypeError(
                        "`lifespan` must return an async context manager (decorate it with "
                        f"@contextlib.asynccontextmanager), not {type(manager).__name__}"
                    )
                async with self._exit_shielded(manager) as value:
                    # Set here, in run()'s own task, so the pool's workers (started below) and all they start see it.
                    token = set_lifespan_value(value)
                    try:
                        await self._serve(task_status)
                    finally:
                        reset_lifespan_value(token)
            if self._gave_up is not None:
                raise self._gave_up
        finally:
            self._serving = False
            self._stopped.set()

    @contextlib.asynccontextmanager
    async def _exit_shielded(self, manager: AbstractAsyncContextManager[Any]) -> AsyncIterator[Any]:
        """Enter the lifespan, and exit it in a scope no cancellation enters, bounded as a final write is.

        A worker cancelled from outside (its process stopping) must still
        close what its lifespan opened: a cleanup that awaits would otherwise
        be cancelled at its first checkpoint.
        """
        value = await manager.__aenter__()
        try:
            yield value
        except BaseException as error:
            suppressed: bool | None = False  # if the bound cuts the exit short, the error goes on
            with self._final_write_scope() as scope:
                suppressed = await manager.__aexit__(type(error), error, error.__traceback__)
            self._report_lifespan_bound(scope)
            if suppressed:
                return
            raise
        with self._final_write_scope() as scope:
            await manager.__aexit__(None, None, None)
        self._report_lifespan_bound(scope)

    def _report_lifespan_bound(self, scope: trio.CancelScope) -> None:
        if scope.cancelled_caught:
            _logger.warning(
                "worker %s: its lifespan's exit did not finish within %gs, and was cut short",
                self.worker_id,
                self._final_write_timeout,
            )

    async def _serve(self, task_status: trio.TaskStatus[None]) -> None:
        """Run the pool and claim tasks for it until stopped; write every end, however it stops."""
        try:
            async with self._pool, trio.open_nursery() as services:
                services.start_soon(self._beat)
                services.start_soon(self._report)
                services.start_soon(self._watch_cancellations)
                services.start_soon(self._bound_shutdown)
                if self.app.retention is not None:
                    services.start_soon(self._prune, cast("AdminStore", self._store), self.app.retention)
                if self.app.periodic and not self.app.burst:
                    services.start_soon(self._scheduler().run)
                self._serving = True
                task_status.started()
                await self._claim_loop()
                if self._stop_requested:
                    self.stop(cancel_running=self._cancel_running)
                # The tasks still running finish (or are cancelled); their ends are written as they come.
                while self._running:
                    if self._ended:
                        await self._finish(0)
                    else:
                        await self._slot_free.park()
                if self._burst_over and self.app.retention is not None:
                    # A burst worker may be done before its first prune is: let it finish, as a final write is
                    # bounded, or a worker run from cron would never prune.
                    with trio.move_on_after(self._final_write_timeout):
                        await self._pruned.wait()
                services.cancel_scope.cancel(reason="the DurableWorker stopped")
        finally:
            self._serving = False
            # Cut short by a cancellation or a handler's BaseException: the
            # pool has cancelled its jobs, and their ends go to the store,
            # whatever cancels us.
            with trio.CancelScope(shield=True):
                await self._finish_cut_short()

    async def _bound_shutdown(self) -> None:
        """Once a graceful stop has waited ``shutdown_timeout`` for the running tasks, cancel and release them."""
        timeout = self.app.shutdown_timeout
        if timeout is None:
            return
        await self._stopping.wait()
        await trio.sleep(timeout)
        # Tasks whose handlers ended, their ends still being written, are not running: they need no cancelling.
        running = sum(1 for handle in self._running.values() if handle is not None and handle.result is None)
        if running and not self._cancel_running:
            _logger.warning(
                "worker %s: %d task(s) still running %gs after the stop; cancelling them",
                self.worker_id,
                running,
                timeout,
            )
            self.stop(cancel_running=True)

    async def _claim_loop(self) -> None:
        while not self._stop_requested:
            # A task whose end is to be written frees its slot for the claim
            # that comes with the write (see _finish): count it free.
            free = self._concurrency - len(self._running) + len(self._ended)
            if free <= 0:
                await self._slot_free.park()
                continue
            if free < self._claim_batch and len(self._running) - len(self._ended) > self._claim_batch:
                # Claiming a slot at a time as tasks end costs the store a round
                # trip per task; while plenty still run, let a few more end first.
                with trio.move_on_after(_GATHER):
                    while (
                        self._concurrency - len(self._running) + len(self._ended) < self._claim_batch
                        and not self._stop_requested
                    ):
                        await self._slot_free.park()
                if self._stop_requested:
                    return
            records, failed = await self._finish(free)
            if records is None:
                if not failed:  # the ends' writes ran out of time, or took the slots: count them again
                    continue
                records = []
            if records:
                try:
                    # A claim that returns after a cancellation (its ends could not wait) hands its tasks back.
                    await trio.lowlevel.checkpoint_if_cancelled()
                except BaseException:
                    await self._hand_back(records)
                    raise
            if self._stop_requested and records:
                await self._hand_back(records)
                return
            self._counts["claimed"] += len(records)
            if records:
                self._claimed(records)
                await self._start(records)
            elif self.app.burst and not self._running and not failed and await self._burst_done():
                self._burst_over = True
                self.stop()
                return
            elif not self._ended or failed:
                with trio.CancelScope() as self._idle:
                    if self._stop_requested:
                        return
                    try:
                        await self._store.wait_for_work(self._idle_wait(), **self._in_queues)
                    except Exception as exc:
                        _log_failure(exc, "worker %s could not wait for work; polling", self.worker_id)
                        await trio.sleep(self._poll)
                self._idle = None

    async def _hand_back(self, records: Sequence[TaskRecord]) -> None:
        """Release tasks claimed once the worker was stopping: they never run, their claim not counted."""
        self._counts["claimed"] += len(records)
        self._claimed(records)
        # Counted and told once written, as every release is: a failed one leaves them to their leases.
        await self._write_shielded(self._release(records))

    def _claimed(self, records: Sequence[TaskRecord]) -> None:
        """Tell the observers of tasks just claimed."""
        own_retries = self._own_retries
        if own_retries:
            for record in records:
                own_retries.pop(record.id, None)
        methods = self._observers.task_claimed
        if not methods:
            return
        now, worker_id = trio.current_time(), self.worker_id
        for record in records:
            event = TaskClaimed(
                task_id=record.id,
                handler=record.handler,
                attempt=record.attempts,
                max_attempts=record.retry + 1,
                worker_id=worker_id,
                time=now,
            )
            notify(methods, event)

    def _tell_end(
        self,
        record: TaskRecord,
        outcome: TaskOutcome,
        *,
        duration: float | None = None,
        error: BaseException | None = None,
        retry_in: float | None = None,
    ) -> None:
        """Tell the observers of a task's end, once written."""
        methods = self._observers.task_ended
        if methods:
            event = TaskEnded(
                task_id=record.id,
                handler=record.handler,
                attempt=record.attempts,
                max_attempts=record.retry + 1,
                worker_id=self.worker_id,
                outcome=outcome,
                duration=duration,
                error=error,
                retry_in=retry_in,
                time=trio.current_time(),
            )
            notify(methods, event)

    async def _burst_done(self) -> bool:
        """In burst mode, with nothing claimed and nothing held: whether no retry of this worker's is left to wait for.

        A retry due by now that the claim did not return was taken by another
        worker or cancelled, unless the store's clock lags this one's: the
        store says which.
        """
        now = self._clock()
        for task_id, retry_at in list(self._own_retries.items()):
            if retry_at > now:
                continue
            try:
                record = await self._store.get(task_id)
            except TaskNotFoundError:  # it ended, and was pruned: no queued task is
                del self._own_retries[task_id]
                continue
            except Exception:  # not knowing, wait for it: the next claim tells
                record = None
            if record is not None and record.status is not TaskStatus.QUEUED:
                del self._own_retries[task_id]
        return not self._own_retries

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
        own_retries = self._own_retries
        if not own_retries:
            return self._poll
        claimed_at, now = self._claimed_at, self._clock()
        waits = [retry_at - now for retry_at in own_retries.values() if retry_at > claimed_at]
        if not self.app.burst:
            # Due by the last claim, it was the claim's to take (by this worker or another): forget it.
            for task_id, retry_at in list(own_retries.items()):
                if retry_at <= claimed_at:
                    del own_retries[task_id]
        return min([self._poll, *(max(wait, 0.0) for wait in waits)])

    async def _beat(self) -> None:
        """Refresh the leases of the running tasks; cancel those another worker took, or someone cancelled."""
        while True:
            await trio.sleep(self._heartbeat)
            task_ids = list(self._running)
            if task_ids:
                await self._heartbeat_tasks(task_ids)
            self._beaten.unpark_all()

    async def _report(self) -> None:
        """After each heartbeat, write the progress reports that came since, and tell observers the store's counts.

        The counts go to the observers that want them at the start too. The
        progress of the tasks the heartbeat found no longer held is left out.
        In a task apart from ``_beat()``, which only wakes it: a slow count or
        progress write must never hold up the heartbeat that keeps the leases
        (a report that is still writing misses a heartbeat, and writes after the next).
        """
        while True:
            await self._tell_queue_depth()
            await self._beaten.park()
            if self._progress:
                await self._write_progress()

    async def _prune(self, store: AdminStore, retention: float) -> None:
        """Delete the tasks that finished more than ``retention`` seconds ago, now and every prune interval.

        In a task of its own, as ``_report()`` is: a slow prune holds up no heartbeat or claim.
        """
        interval = max(self._heartbeat, _PRUNE_EVERY)
        while True:
            await self._prune_batches(store, retention, interval)
            self._pruned.set()
            await trio.sleep(interval)

    async def _prune_batches(self, store: AdminStore, retention: float, interval: float) -> None:
        """Prune a batch at a time while batches come back full."""
        pruned = 0
        while True:
            try:
                deleted = await store.prune(older_than=retention, limit=PRUNE_LIMIT)
            except Exception as exc:
                _log_failure(
                    exc, "worker %s could not prune finished tasks; trying again in %gs", self.worker_id, interval
                )
                return
            pruned += deleted
            if deleted < PRUNE_LIMIT:
                break
            # Between batches, the claims and heartbeats waiting for the store go first (its limiter is fair).
            await trio.lowlevel.checkpoint()
        if pruned:
            _logger.debug("worker %s pruned %d task(s) finished over %gs ago", self.worker_id, pruned, retention)

    def _scheduler(self) -> Scheduler:
        """What enqueues the app's periodic tasks, in a task of its own, as ``_prune()`` runs: it holds up no claim."""
        return Scheduler(
            cast("PeriodicStore", self._store),
            self.app.periodic,
            clock=self._clock,
            retry=self._poll,
            worker_id=self.worker_id,
            log_failure=_log_failure,
        )

    async def _tell_queue_depth(self) -> None:
        methods = self._observers.queue_depth
        if not methods:
            return
        try:
            stats = await self._store.stats()
        except Exception as exc:
            _log_failure(exc, "worker %s could not count the store's tasks", self.worker_id)
            return
        notify(methods, QueueDepth(stats=stats, worker_id=self.worker_id, time=trio.current_time()))

    async def _heartbeat_tasks(self, task_ids: list[int]) -> None:
        """Refresh the leases of ``task_ids``; drop those the store says this worker no longer holds."""
        try:
            held = set(await self._store.heartbeat(task_ids, worker_id=self.worker_id))
        except Exception as exc:
            _log_failure(exc, "worker %s could not send its heartbeat", self.worker_id)
            return
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

    async def _write_progress(self) -> None:
        """Write the reports that came since the last heartbeat, for the tasks this worker still holds."""
        reports = {task_id: report for task_id, report in self._progress.items() if self._holds(task_id)}
        self._progress.clear()
        if not reports or self._progress_store is None:
            return
        try:
            await self._progress_store.record_progress(reports, worker_id=self.worker_id)
        except Exception as exc:
            _log_failure(exc, "worker %s could not write its tasks' progress", self.worker_id)
            # Kept for the next heartbeat, unless a newer report came meanwhile or the task is settled.
            for task_id, report in reports.items():
                if self._holds(task_id):
                    self._progress.setdefault(task_id, report)

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
            self._counts["lost"] += 1  # the outcome line says so: "task N handler lost to another worker"
        self._tell_end(self._held[task_id], TaskOutcome.CANCELLED if cancelled else TaskOutcome.LOST)

    # -- the tasks -----------------------------------------------------------------------

    def _job_for(self, record: TaskRecord) -> Job[Any]:
        # The handler, looked up here (UnknownHandlerError names it), makes a job
        # the pool runs as it is; attempts are the store's to count: no retries.
        registry, name = self._registry, record.handler
        return job_from_dict(Job, record.job, handler=registry[name], retry=0, run_in=registry.run_in(name))

    async def _start(self, records: Sequence[TaskRecord]) -> None:
        """Hand claimed tasks to the pool; write off those that cannot run."""
        store, worker_id, pool, running, runs = self._store, self.worker_id, self._pool, self._running, self._runs
        unrunnable: list[tuple[TaskRecord, Exception]] = []
        unsubmitted: list[int] = []
        held = self._held
        for record in records:
            task_id = record.id
            running[task_id] = None
            held[task_id] = record
            try:
                job = self._job_for(record)
            except Exception as exc:
                unrunnable.append((record, exc))
                continue
            try:
                handle = pool.submit(job, info=RunInfo(task_id=task_id, first_attempt=record.attempts))
            except PoolClosedError:  # stopped between the claim and here
                unsubmitted.append(task_id)
                continue
            running[task_id] = handle
            runs[handle] = (record, job)
        for record, error in unrunnable:
            # A row no worker can run: it alone is dead (its outcome line says why), the worker goes on.
            self._counts["failed"] += 1
            self._settling.add(record.id)
            try:
                if await self._write_shielded(store.fail(record.id, error, None, worker_id=worker_id, dead=True)):
                    self._tell_end(record, TaskOutcome.DEAD, error=error)
            finally:
                self._settled(record.id)
        if unsubmitted:
            await self._release_settling(unsubmitted)

    def _job_ended(self, event: JobFinished) -> None:
        """The pool's word that a job ended: its task's end is to be written, unless the task is no longer ours."""
        run = self._runs.pop(event.handle, None)
        if run is None:  # a job that is not a task's: one a handler submitted to the pool, say
            return
        record = run[0]
        if record.id in self._dropped:
            self._settled(record.id)
            return
        self._settling.add(record.id)
        self._ended.append((record, run[1], event.result))
        self._slot_free.unpark()
        if self._idle is not None:  # an idle worker writes it now, not at its next poll
            self._idle.cancel()

    def _job_progress(self, event: JobProgress) -> None:
        """A handler's progress report: kept for the next heartbeat to write, and told to the observers."""
        run = self._runs.get(event.handle)
        if run is None:  # a job that is not a task's, or whose task ended
            return
        record = run[0]
        task_id = record.id
        if not self._holds(task_id):
            return
        self._progress[task_id] = event.progress
        methods = self._observers.task_progress
        if methods:
            told = TaskProgress(
                task_id=task_id,
                handler=record.handler,
                attempt=record.attempts,
                worker_id=self.worker_id,
                progress=event.progress,
                time=event.time,
            )
            notify(methods, told)

    def _settled(self, task_id: int) -> None:
        """The task's end is written, or not ours to write: its slot is free."""
        self._progress.pop(task_id, None)
        self._running.pop(task_id, None)
        self._held.pop(task_id, None)
        self._dropped.discard(task_id)
        self._settling.discard(task_id)
        self._slot_free.unpark()

    async def _finish(self, limit: int) -> tuple[list[TaskRecord] | None, bool]:
        """Write the ends of the tasks that ended, and claim up to ``limit`` tasks (0: none).

        Return the tasks claimed, or None if no claim was made, and whether
        the claim failed. A store that can (``BatchingStore``) writes the ends
        and claims in one transaction, which is why a task whose end is
        waiting counts as a free slot.
        """
        if limit > 0:
            # Cancelled (a handler's BaseException, say): no claim, and the ends are left for run() to write.
            await trio.lowlevel.checkpoint_if_cancelled()
            self._claimed_at = self._clock()
        ended, self._ended = self._ended, []
        store, worker_id = self._store, self.worker_id
        ends: list[TaskEnd] = []
        # What each end adds to: its counter, and what its observers are told.
        tallies: list[tuple[str, TaskRecord, Result[Any], float | None]] = []
        released: list[TaskRecord] = []
        for record, job, result in ended:
            written = self._end_of(record, job, result)
            if written is None:
                released.append(record)
            else:
                ends.append(written[0])
                tallies.append((written[1], record, result, written[2]))
        records: list[TaskRecord] | None = None
        claim_error: Exception | None = None
        try:
            if released:
                # A stop, or another task's BaseException, cut them short: no fault of the tasks'.
                await self._write_shielded(self._release(released))
            if ends or (limit > 0 and self._batching):
                # Shielded and bounded if it writes ends; a claim alone is not.
                with self._final_write_scope() if ends else trio.CancelScope() as bound:
                    if self._batching:
                        assert isinstance(store, BatchingStore)
                        try:
                            outcomes, records = await store.finish_and_claim(
                                ends,
                                worker_id,
                                limit,
                                order=self._order,
                                lease=self._lease,
                                max_lost_leases=self._max_lost_leases,
                                **self._in_queues,
                            )
                        except Exception as exc:
                            # Nothing was written: the ends go one by one, and the claim counts as failed.
                            claim_error = exc
                            outcomes = await self._finish_each(ends)
                    else:
                        outcomes = await self._finish_each(ends)
                    for end, tally, outcome in zip(ends, tallies, outcomes, strict=True):
                        await self._count_end(end, tally, outcome)
                self._report_bound(bound)
        finally:
            for record, _, _ in ended:
                self._settled(record.id)
        if limit > 0 and not self._batching:
            limit = self._concurrency - len(self._running)
            if limit > 0:
                try:
                    records = await store.claim(
                        worker_id,
                        limit,
                        order=self._order,
                        lease=self._lease,
                        max_lost_leases=self._max_lost_leases,
                        **self._in_queues,
                    )
                except Exception as exc:
                    claim_error = exc
        if claim_error is None:
            if records is not None:
                self._failing_since = self._claim_error = None
            return records, False
        self._claim_error = claim_error
        if not self._give_up(claim_error):
            _log_failure(
                claim_error, "worker %s could not claim tasks; trying again in %gs", self.worker_id, self._poll
            )
        return None, True

    async def _release(self, records: Sequence[TaskRecord]) -> None:
        await self._store.release([record.id for record in records], worker_id=self.worker_id)
        self._counts["released"] += len(records)
        for record in records:
            self._tell_end(record, TaskOutcome.RELEASED)

    async def _release_settling(self, task_ids: Sequence[int]) -> None:
        """Release held tasks that never ran: their slots are free once it is written, or given up."""
        self._settling.update(task_ids)
        try:
            await self._write_shielded(self._release([self._held[task_id] for task_id in task_ids]))
        finally:
            for task_id in task_ids:
                self._settled(task_id)

    def _end_of(
        self, record: TaskRecord, job: Job[Any], result: Result[Any]
    ) -> tuple[TaskEnd, str, float | None] | None:
        """How the task's run ended, to write, the counter it adds to, and the wait before its retry (if any).

        None if it goes back to the queue.
        """
        task_id = record.id
        status = result.status
        if status is Status.SUCCEEDED:
            return TaskEnd(task_id, Call.COMPLETE, result=result.data), "succeeded", None
        if status is Status.ABANDONED or status is Status.CANCELLED:
            return None
        if isinstance(result.error, CancelTask):
            return TaskEnd(task_id, Call.CANCEL), "cancelled", None
        # A failed attempt, whatever the handler raised: a BaseException too.
        error = result.error
        assert error is not None
        # The attempt engine's policy decides, as for any job; the wait is spent in the store.
        backoff = job.backoff if job.backoff is not None else self._backoff
        policy = RetryPolicy(record.retry, backoff, _ANY_FAILURE)
        delay = policy.delay_after(record.attempts, error)
        if delay is not None:
            retry_at = self._clock() + delay
            self._own_retries[task_id] = retry_at
            return TaskEnd(task_id, Call.FAIL, error=error, retry_at=retry_at), "retried", delay
        return TaskEnd(task_id, Call.FAIL, error=error), "failed", None

    async def _finish_each(self, ends: Sequence[TaskEnd]) -> list[BaseException | None]:
        """Write each end with its own call, all at once, for a store that groups them itself."""
        outcomes: list[BaseException | None] = [None] * len(ends)

        async def write(index: int, end: TaskEnd) -> None:
            try:
                await self._write_end(end)
            except Exception as exc:
                outcomes[index] = exc

        if len(ends) == 1:
            await write(0, ends[0])
        elif ends:
            async with trio.open_nursery() as nursery:
                for index, end in enumerate(ends):
                    nursery.start_soon(write, index, end)
        return outcomes

    async def _write_end(self, end: TaskEnd) -> None:
        store, worker_id = self._store, self.worker_id
        if end.call is Call.COMPLETE:
            await store.complete(end.task_id, end.result, worker_id=worker_id)
        elif end.call is Call.FAIL:
            assert end.error is not None
            await store.fail(end.task_id, end.error, end.retry_at, worker_id=worker_id)
        else:
            await store.cancel(end.task_id, worker_id=worker_id)

    async def _count_end(
        self, end: TaskEnd, tally: tuple[str, TaskRecord, Result[Any], float | None], outcome: BaseException | None
    ) -> None:
        """Count an end once written; else say why not, or, for a result JSON cannot hold, fail the task."""
        counter, record, result, retry_in = tally
        if outcome is None:
            self._counts[counter] += 1
            if counter == "succeeded":
                self._tell_end(record, TaskOutcome.SUCCEEDED, duration=result.duration)
            elif counter == "cancelled":
                self._tell_end(record, TaskOutcome.CANCELLED, duration=result.duration)
            elif counter == "retried":
                self._tell_end(
                    record, TaskOutcome.RETRYING, duration=result.duration, error=end.error, retry_in=retry_in
                )
            else:
                self._tell_failed(record, result, end.error)
            return
        if end.call is Call.COMPLETE and isinstance(outcome, TypeError | ValueError):
            # The handler returned something JSON cannot hold.
            try:
                await self._store.fail(end.task_id, outcome, None, worker_id=self.worker_id)
            except Exception as exc:
                outcome = exc
            else:
                self._counts["failed"] += 1
                self._tell_failed(record, result, outcome)
                return
        if isinstance(outcome, TaskConflictError):
            if outcome.status == TaskStatus.CANCELLED:
                # Cancelled in the store as it ended here, before a heartbeat told
                # us: cancelled is its end, as if we had been told in time.
                self._counts["cancelled"] += 1
                self._tell_end(record, TaskOutcome.CANCELLED, duration=result.duration)
            else:  # another worker took the task after our lease ran out: its outcome line says what the store said
                self._counts["lost"] += 1
                self._tell_end(record, TaskOutcome.LOST, error=outcome)
        elif isinstance(outcome, Exception):
            _log_failure(outcome, "worker %s could not write a task's status", self.worker_id)
        else:
            raise outcome

    def _tell_failed(self, record: TaskRecord, result: Result[Any], error: BaseException | None) -> None:
        """Tell of a task failed for good: dead if it used its attempts, as the store decides."""
        dead = record.attempts >= record.retry + 1
        self._tell_end(record, TaskOutcome.DEAD if dead else TaskOutcome.FAILED, duration=result.duration, error=error)

    async def _finish_cut_short(self) -> None:
        """After the pool's exit: write the ends its jobs had, and hand back the tasks it never ran."""
        if self._ended:
            await self._finish(0)
        unsubmitted = [task_id for task_id, handle in self._running.items() if handle is None]
        if unsubmitted:
            await self._release_settling(unsubmitted)

    def _final_write_scope(self) -> trio.CancelScope:
        """A scope no cancellation enters, bounded by ``final_write_timeout``, for writes that must not be lost."""
        return trio.CancelScope(shield=True, deadline=trio.current_time() + self._final_write_timeout)

    def _report_bound(self, bound: trio.CancelScope) -> None:
        if bound.cancelled_caught:
            seconds = self._final_write_timeout
            _logger.error("worker %s gave up writing a task's status after %gs", self.worker_id, seconds)

    async def _write_shielded(self, write: Awaitable[None]) -> bool:
        """Await a write to the store that no cancellation may lose, within its bound; return whether it was made."""
        written = False
        with self._final_write_scope() as bound:
            try:
                await write
            except TaskConflictError as exc:  # another worker took the task after our lease ran out
                _logger.warning("worker %s: %s", self.worker_id, exc)
            except Exception as exc:
                _log_failure(exc, "worker %s could not write a task's status", self.worker_id)
            else:
                written = True
        self._report_bound(bound)
        return written

    # -- observing -----------------------------------------------------------------------

    def statistics(self) -> DurableWorkerStatistics:
        """A frozen snapshot of the worker's counters."""
        return DurableWorkerStatistics(running=len(self._running), **self._counts)

    def health(self) -> Health:
        """Whether the worker is ready for work: what a readiness probe (``/ready``) reports.

        As for a pool or a Supervisor, a ``Health`` whose ``reasons`` say why
        not: healthy while it runs (its store initialised, its lifespan entered), is
        not stopping, and its last claim succeeded: a failing claim makes it
        unready until a claim succeeds again (or it gives up).
        """
        if self._stopped.is_set():
            reason = "stopped"
        elif self._stop_requested:
            reason = "stopping"
        elif not self._serving:
            reason = "starting" if self._started else "not started"
        elif self._failing_since is not None:
            failing = trio.current_time() - self._failing_since
            error = self._claim_error
            reason = f"its claims have failed for {failing:.1f}s: {type(error).__name__}: {error}"
        else:
            reason = ""
        return Health(not reason, (reason,) if reason else ())


def _log_failure(error: Exception, message: str, *args: object) -> None:
    """Log a failed store call: a StoreError on one line, as it says what failed; anything else with its traceback."""
    if isinstance(error, StoreError):
        _logger.error(message + ": %s", *args, error)
    else:
        _logger.error(message, *args, exc_info=error)


class _PoolObserver(Observer):
    """Tells a DurableWorker of each job its pool ends, and of each progress report."""

    def __init__(self, job_ended: Callable[[JobFinished], None], job_progress: Callable[[JobProgress], None]) -> None:
        self._job_ended = job_ended
        self._job_progress = job_progress

    def job_progress(self, event: JobProgress) -> None:
        self._job_progress(event)

    def job_finished(self, event: JobFinished) -> None:
        self._job_ended(event)
