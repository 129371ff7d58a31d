"""Test doubles for code that uses workerpoolxt: an in-memory durable store.

``MemoryStore`` behaves as ``SQLiteStore`` and ``PostgresStore`` do, passes the
same contract tests, and runs no threads, so tests may drive it under trio's
``MockClock``: pass ``clock=trio.current_time`` to keep its times virtual too.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._errors import TaskConflictError, TaskNotFoundError
from ._machine import Call, Check, Transition, conflict, step
from ._store import (
    DEFAULT_MAX_LOST_LEASES,
    FINAL,
    FRESH_START,
    MAX_JSON_BYTES,
    PRUNE_LIMIT,
    RETRYABLE,
    SORT_KEYS,
    Cancellations,
    Claim,
    EndBatch,
    Order,
    StoreStatistics,
    TaskEnd,
    TaskRecord,
    TaskStatus,
    check_claim,
    check_final,
    check_lease,
    check_listing,
    check_max_json_bytes,
    check_priority,
    check_progress,
    check_prune,
    check_queues,
    check_task_ids,
    check_tick,
    check_time,
    encode_jobs,
    encode_result,
    error_fields,
    exhausted_message,
    lease_expired_message,
    retry_refusal,
)

if TYPE_CHECKING:
    from .. import Progress
    from .._job import Job
    from .._registry import Registry
    from .._validation import Seconds

__all__ = ["MemoryStore"]


class MemoryStore:
    """A durable task store that keeps everything in this process's memory.

    Args:
        registry: If given, ``enqueue()`` refuses jobs naming a handler it lacks, or
            whose args do not fit their handler's parameters (a TypeError naming them).
        clock: Wall-clock seconds by default; ``trio.current_time`` for virtual time.
        max_json_bytes: The most bytes of JSON a task's job (with its args) or
            result may take, as in the database stores. 1 MiB by default.
    """

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        clock: Callable[[], float] = time.time,
        max_json_bytes: int = MAX_JSON_BYTES,
    ) -> None:
        self._registry = registry
        self.clock = clock
        self._max_json_bytes = check_max_json_bytes(max_json_bytes)
        self._tasks: dict[int, TaskRecord] = {}
        self._ids = itertools.count(1)
        self._changed = trio.lowlevel.ParkingLot()
        self._cancellations = Cancellations()
        self._schedules: dict[str, float] = {}  # each periodic schedule's last tick

    async def init(self) -> None:
        await trio.lowlevel.checkpoint()

    async def enqueue(
        self, jobs: Sequence[Job[Any]], *, priority: int = 0, run_at: float | None = None, queue: str | None = None
    ) -> list[int]:
        encoded = encode_jobs(jobs, self._registry, self._max_json_bytes, queue)
        check_priority(priority)
        check_time(run_at, "run_at")
        now = self.clock()
        ids = []
        for job in encoded:
            holder = None if job.dedup_key is None else self._dedup_holder(job.dedup_key)
            if holder is not None:
                ids.append(holder)
                continue
            task_id = next(self._ids)
            self._tasks[task_id] = TaskRecord(
                id=task_id,
                handler=job.handler,
                job=json.loads(job.job),
                status=TaskStatus.QUEUED,
                retry=job.retry,
                priority=priority,
                created_at=now,
                run_at=now if run_at is None else run_at,
                queue=job.queue,
                dedup_key=job.dedup_key,
                lock=job.lock,
                **FRESH_START,
            )
            ids.append(task_id)
        self._changed.unpark_all()
        await trio.lowlevel.checkpoint()
        return ids

    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        order: Order = Order.FIFO,
        lease: float = 30.0,
        max_lost_leases: int = DEFAULT_MAX_LOST_LEASES,
        queues: Sequence[str] | None = None,
    ) -> list[TaskRecord]:
        order = check_claim(worker_id, limit, order, lease, max_lost_leases)
        claimed = self._claim(Claim(worker_id, limit, order, lease, max_lost_leases, check_queues(queues)))
        await trio.lowlevel.checkpoint()
        return claimed

    def _claim(self, claim: Claim) -> list[TaskRecord]:
        claimed: list[TaskRecord] = []
        # A task buried rather than claimed may be what held its lock's next task back: look again, as the SQL
        # stores claim again in their transaction, until the limit is met or nothing was buried.
        while self._claim_pass(claim, claimed) and len(claimed) < claim.limit:
            pass
        return sorted(claimed, key=SORT_KEYS[claim.order])

    def _claim_pass(self, claim: Claim, claimed: list[TaskRecord]) -> bool:
        """Claim what is runnable now into ``claimed``, up to the claim's limit; return whether a task was buried."""
        worker_id, order, max_lost_leases = claim.worker_id, claim.order, claim.max_lost_leases
        now = self.clock()
        stale = now - claim.lease
        tasks = [task for task in self._tasks.values() if claim.queues is None or task.queue in claim.queues]
        # As the SQL stores' Dialect.lock_free(): a lock's next task is its lowest due id, while none of it runs.
        held = {task.lock for task in self._tasks.values() if task.status is TaskStatus.RUNNING}
        next_of: dict[str, int] = {}
        for task in sorted(self._tasks.values(), key=lambda task: task.id):
            if task.lock is not None and task.status is TaskStatus.QUEUED and task.run_at <= now:
                next_of.setdefault(task.lock, task.id)

        def facts(task: TaskRecord) -> dict[Check, bool]:
            return {
                Check.DUE: task.run_at <= now,
                Check.LEASE_EXPIRED: task.heartbeat_at is not None and task.heartbeat_at < stale,
                Check.ATTEMPTS_USED: task.attempts > task.retry,
                Check.LEASES_USED: task.lost_leases >= max_lost_leases,
            }

        def lock_free(task: TaskRecord) -> bool:
            lock = task.lock
            return (
                task.status is not TaskStatus.QUEUED or lock is None or (lock not in held and next_of[lock] == task.id)
            )

        runnable = [
            (task, move) for task in tasks if (move := step(Call.CLAIM, task.status, facts(task))) and lock_free(task)
        ]
        runnable.sort(key=lambda pair: SORT_KEYS[order](pair[0]))
        buried = False
        for task, move in runnable:
            if len(claimed) == claim.limit:
                break
            if move.target is TaskStatus.RUNNING:
                claimed.append(self._move(task, move, worker_id=worker_id, started_at=now))
                continue
            buried = True
            if move.error_type == "AttemptsExhausted":
                self._move(task, move, error_type=move.error_type, error_message=exhausted_message(task))
            else:
                message = lease_expired_message(task.worker_id, task.lost_leases + 1, max_lost_leases)
                self._move(task, move, error_type=move.error_type, error_message=message)
        return buried

    async def heartbeat(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> list[int]:
        held = []
        for task_id in sorted(set(task_ids)):
            task = self._tasks.get(task_id)
            if task is not None and self._try(Call.HEARTBEAT, task, {Check.HELD: _holds(task, worker_id)}):
                held.append(task_id)
        await trio.lowlevel.checkpoint()
        return held

    async def complete(self, task_id: int, result: Any, *, worker_id: str | None = None) -> None:
        check_final(task_id, worker_id)
        self._complete(task_id, encode_result(result, self._max_json_bytes), worker_id)
        await trio.lowlevel.checkpoint()

    def _complete(self, task_id: int, encoded: str, worker_id: str | None) -> None:
        task, move = self._finalising(Call.COMPLETE, task_id, worker_id, {})
        self._move(task, move, result=json.loads(encoded))

    async def fail(
        self,
        task_id: int,
        error: BaseException,
        retry_at: float | None = None,
        *,
        worker_id: str | None = None,
        dead: bool = False,
    ) -> None:
        check_final(task_id, worker_id)
        check_time(retry_at, "retry_at")
        error_type, message = error_fields(error)
        self._fail(task_id, error_type, message, retry_at, worker_id, dead=dead)
        await trio.lowlevel.checkpoint()

    def _fail(
        self, task_id: int, error_type: str, message: str, retry_at: float | None, worker_id: str | None, *, dead: bool
    ) -> None:
        task = self._get(task_id)
        facts = {
            Check.DEAD: bool(dead),
            Check.RETRY: retry_at is not None,
            Check.ATTEMPTS_USED: task.attempts > task.retry,
        }
        task, move = self._finalising(Call.FAIL, task_id, worker_id, facts)
        run_at = retry_at if move.target is TaskStatus.QUEUED and retry_at is not None else task.run_at
        self._move(task, move, error_type=error_type, error_message=message, run_at=run_at)

    async def cancel(self, task_id: int, *, worker_id: str | None = None) -> None:
        check_final(task_id, worker_id)
        self._cancel(task_id, worker_id)
        await trio.lowlevel.checkpoint()

    def _cancel(self, task_id: int, worker_id: str | None) -> None:
        task, move = self._finalising(Call.CANCEL, task_id, worker_id, {})
        self._move(task, move)
        if move.source is TaskStatus.RUNNING and worker_id is None:
            self._cancellations.publish([task_id])

    async def finish_and_claim(
        self,
        ends: Sequence[TaskEnd],
        worker_id: str,
        limit: int,
        *,
        order: Order = Order.FIFO,
        lease: float = 30.0,
        max_lost_leases: int = DEFAULT_MAX_LOST_LEASES,
        queues: Sequence[str] | None = None,
    ) -> tuple[list[BaseException | None], list[TaskRecord]]:
        """Finalise ``ends`` and claim up to ``limit`` tasks at once, as the SQL stores do in one transaction."""
        order = check_claim(worker_id, max(limit, 1), order, lease, max_lost_leases)
        names = check_queues(queues)
        batch = EndBatch(ends, worker_id, self._max_json_bytes)
        written: list[BaseException | None] = []
        for call, params in batch.writes:
            try:
                if call is Call.COMPLETE:
                    self._complete(params["id"], params["result"], worker_id)
                elif call is Call.FAIL:
                    error_type, message = params["error_type"], params["message"]
                    self._fail(params["id"], error_type, message, params["retry_at"], worker_id, dead=False)
                else:
                    self._cancel(params["id"], worker_id)
            except (TaskConflictError, TaskNotFoundError) as exc:
                written.append(exc)
            else:
                written.append(None)
        limit = batch.claim_limit(limit)
        claim = Claim(worker_id, limit, order, lease, max_lost_leases, names)
        claimed = self._claim(claim) if limit > 0 else []
        await trio.lowlevel.checkpoint()
        return batch.outcomes_of(written), claimed

    async def release(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> None:
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            if task is not None:
                self._try(Call.RELEASE, task, {Check.HELD: _holds(task, worker_id)})
        await trio.lowlevel.checkpoint()

    async def record_progress(self, progress: Mapping[int, Progress], *, worker_id: str | None = None) -> None:
        """Store the latest reports of the running tasks ``worker_id`` holds, ignore the rest: see ``ProgressStore``."""
        for task_id, done, total in check_progress(progress, worker_id):
            task = self._tasks.get(task_id)
            # The tasks a heartbeat would refresh: running, and held by the worker.
            if task is not None and step(Call.HEARTBEAT, task.status, {Check.HELD: _holds(task, worker_id)}):
                self._put(task, progress_done=done, progress_total=total)
        await trio.lowlevel.checkpoint()

    async def get(self, task_id: int) -> TaskRecord:
        await trio.lowlevel.checkpoint()
        return self._get(task_id)

    async def wait(self, task_id: int, *, poll: float = 0.5) -> TaskRecord:
        task = self._get(task_id)
        while not task.final:
            await self._changed.park()
            task = self._get(task_id)
        await trio.lowlevel.checkpoint()
        return task

    async def wait_for_work(self, timeout: float, *, queues: Sequence[str] | None = None) -> None:  # noqa: ASYNC109 - a poll interval
        """Return when tasks are enqueued or released (in any queue), or after ``timeout`` seconds."""
        check_queues(queues)
        with trio.move_on_after(timeout):
            await self._changed.park()

    async def wait_for_cancellations(self) -> list[int]:
        """Return the ids of running tasks ``cancel()`` finalised, the moment it does."""
        return await self._cancellations.wait(trio.lowlevel.checkpoint)

    async def stats(self) -> StoreStatistics:
        counts = dict.fromkeys(TaskStatus, 0)
        for task in self._tasks.values():
            counts[task.status] += 1
        await trio.lowlevel.checkpoint()
        return StoreStatistics(**{status.value: number for status, number in counts.items()})

    async def queue_stats(self) -> dict[str, StoreStatistics]:
        """Count the tasks in each status, queue by queue: see ``AdminStore``."""
        counts: dict[str, dict[str, int]] = {}
        for task in self._tasks.values():
            by_status = counts.setdefault(task.queue, {})
            by_status[task.status.value] = by_status.get(task.status.value, 0) + 1
        await trio.lowlevel.checkpoint()
        return {queue: StoreStatistics(**counts[queue]) for queue in sorted(counts)}

    async def list_tasks(
        self, *, status: TaskStatus | None = None, limit: int = 100, queue: str | None = None
    ) -> list[TaskRecord]:
        """The newest tasks first, at most ``limit``, of ``status`` and ``queue`` if given: see ``AdminStore``."""
        wanted = check_listing(status, limit, queue)
        # Ids are given in increasing order, and a task's entry keeps its place when it changes: newest last.
        newest = (
            task
            for task in reversed(self._tasks.values())
            if (wanted is None or task.status is wanted) and (queue is None or task.queue == queue)
        )
        tasks = list(itertools.islice(newest, limit))
        await trio.lowlevel.checkpoint()
        return tasks

    async def retry(self, task_ids: Sequence[int], *, lease: float = 30.0) -> list[int]:
        """Requeue failed, dead or cancelled tasks afresh, all or none: see ``AdminStore``."""
        ids = check_task_ids(task_ids)
        lease = check_lease(lease)
        statuses = {task_id: self._tasks[task_id].status for task_id in ids if task_id in self._tasks}
        stale = self.clock() - lease
        requeued = [task_id for task_id in ids if task_id in statuses and _retryable(self._tasks[task_id], stale)]
        refused = retry_refusal(ids, requeued, statuses, lease)
        if refused is not None:
            raise refused
        self._requeue(requeued)
        await trio.lowlevel.checkpoint()
        return requeued

    async def retry_dead(self) -> list[int]:
        """Requeue every dead task afresh: see ``AdminStore``."""
        dead = sorted(task_id for task_id, task in self._tasks.items() if task.status is TaskStatus.DEAD)
        self._requeue(dead)
        await trio.lowlevel.checkpoint()
        return dead

    def _requeue(self, task_ids: Sequence[int]) -> None:
        now = self.clock()
        for task_id in task_ids:
            # Begun afresh, a task gives up its dedup_key, as in the SQL stores (Dialect.retry_assignments()).
            self._put(self._tasks[task_id], status=TaskStatus.QUEUED, run_at=now, dedup_key=None, **FRESH_START)
        if task_ids:
            self._changed.unpark_all()

    async def prune(self, *, older_than: Seconds, limit: int = PRUNE_LIMIT) -> int:
        """Delete at most ``limit`` tasks that finished more than ``older_than`` seconds ago, oldest first.

        See ``AdminStore``; the time is the store's ``clock``.
        """
        seconds, limit = check_prune(older_than, limit)
        cutoff = self.clock() - seconds
        old = [
            task
            for task in self._tasks.values()
            if task.status in FINAL and task.finished_at is not None and task.finished_at < cutoff
        ]
        old.sort(key=lambda task: (task.finished_at, task.id))
        for task in old[:limit]:
            del self._tasks[task.id]
        await trio.lowlevel.checkpoint()
        return min(len(old), limit)

    async def oldest_queued(self) -> float | None:
        """Since when the longest-waiting due task has waited (its ``run_at``), or None: see ``AdminStore``."""
        now = self.clock()
        queued = (task for task in self._tasks.values() if task.status is TaskStatus.QUEUED)
        due = [task.run_at for task in queued if task.run_at <= now]
        await trio.lowlevel.checkpoint()
        return min(due, default=None)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    # -- periodic schedules (PeriodicStore) --------------------------------------------

    async def last_tick(self, schedule: str, first: float) -> float:
        check_tick(schedule, first, "first")
        last = self._schedules.setdefault(schedule, first)
        await trio.lowlevel.checkpoint()
        return last

    async def enqueue_tick(self, schedule: str, tick: float, job: Job[Any]) -> int | None:
        check_tick(schedule, tick, "tick")
        encode_jobs([job], self._registry, self._max_json_bytes)  # a job enqueue() refuses changes nothing
        last = self._schedules.get(schedule)
        if last is not None and last >= tick:
            await trio.lowlevel.checkpoint()
            return None
        # No checkpoint between the check and the insert (enqueue()'s comes after it): no other task interleaves.
        self._schedules[schedule] = tick
        [task_id] = await self.enqueue([job])
        return task_id

    # -- internals -----------------------------------------------------------------

    def _dedup_holder(self, key: str) -> int | None:
        """The task holding ``key`` (as the SQL stores' DEDUP_ROWS say: queued and never started), or None."""
        for task in self._tasks.values():
            if task.dedup_key == key and task.status is TaskStatus.QUEUED and task.started_at is None:
                return task.id
        return None

    def _get(self, task_id: int) -> TaskRecord:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    def _try(self, call: Call, task: TaskRecord, facts: dict[Check, bool]) -> bool:
        """Make the transition ``call`` makes of ``task`` (``facts`` says which checks hold); False if none."""
        move = step(call, task.status, facts)
        if move is not None:
            self._move(task, move)
        return move is not None

    def _finalising(
        self, call: Call, task_id: int, worker_id: str | None, facts: dict[Check, bool]
    ) -> tuple[TaskRecord, Transition]:
        """The task and the transition a call that refuses what it cannot move makes (else TaskConflictError)."""
        task = self._get(task_id)
        move = step(call, task.status, {**facts, Check.HELD: _holds(task, worker_id)})
        if move is None:
            raise conflict(call, task_id, task.status)
        return task, move

    def _move(self, task: TaskRecord, move: Transition, **changes: Any) -> TaskRecord:
        """Apply ``move`` to ``task``, with the columns every move keeps in step with the status, and ``changes``."""
        now = self.clock()
        updated = self._put(
            task,
            status=move.target,
            attempts=task.attempts + move.attempts,
            lost_leases=task.lost_leases + move.lost_leases,
            finished_at=now if move.target.final else None,
            heartbeat_at=now if move.target is TaskStatus.RUNNING else None,
            **changes,
        )
        if move.target is not TaskStatus.RUNNING:  # finished, or queued again: waiters look again
            self._changed.unpark_all()
        return updated

    def _put(self, task: TaskRecord, **changes: Any) -> TaskRecord:
        updated = attrs.evolve(task, **changes)
        self._tasks[task.id] = updated
        return updated


def _holds(task: TaskRecord, worker_id: str | None) -> bool:
    return worker_id is None or task.worker_id == worker_id


def _retryable(task: TaskRecord, stale: float) -> bool:
    """As the SQL stores' ``Dialect.retryable()``: final and not succeeded; if cancelled after a claim, a lease ago."""
    if task.status is TaskStatus.CANCELLED:
        return task.worker_id is None or (task.finished_at is not None and task.finished_at < stale)
    return task.status in RETRYABLE
