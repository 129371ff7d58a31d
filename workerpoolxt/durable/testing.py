"""Test doubles for code that uses workerpoolxt: an in-memory durable store.

``MemoryStore`` behaves as ``SQLiteStore`` and ``PostgresStore`` do, passes the
same contract tests, and runs no threads, so tests may drive it under trio's
``MockClock``: pass ``clock=trio.current_time`` to keep its times virtual too.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._errors import TaskConflictError, TaskNotFoundError
from ._store import (
    DEFAULT_MAX_LOST_LEASES,
    MAX_JSON_BYTES,
    Cancellations,
    Order,
    StoreStatistics,
    TaskRecord,
    TaskStatus,
    check_claim,
    check_final,
    check_max_json_bytes,
    check_priority,
    check_run_at,
    encode_jobs,
    encode_result,
    error_fields,
    exhausted_message,
    lease_expired_message,
)

if TYPE_CHECKING:
    from .._job import Job
    from .._registry import Registry

__all__ = ["MemoryStore"]


class MemoryStore:
    """A durable task store that keeps everything in this process's memory.

    Args:
        registry: If given, ``enqueue()`` refuses jobs naming a handler it lacks.
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

    async def init(self) -> None:
        await trio.lowlevel.checkpoint()

    async def enqueue(self, jobs: Sequence[Job[Any]], *, priority: int = 0, run_at: float | None = None) -> list[int]:
        encoded = encode_jobs(jobs, self._registry, self._max_json_bytes)
        check_priority(priority)
        check_run_at(run_at)
        now = self.clock()
        ids = []
        for handler, job, max_attempts in encoded:
            task_id = next(self._ids)
            self._tasks[task_id] = TaskRecord(
                id=task_id,
                handler=handler,
                job=json.loads(job),
                status=TaskStatus.QUEUED,
                attempts=0,
                max_attempts=max_attempts,
                priority=priority,
                created_at=now,
                run_at=now if run_at is None else run_at,
                started_at=None,
                finished_at=None,
                worker_id=None,
                heartbeat_at=None,
                result=None,
                error_type=None,
                error_message=None,
                lost_leases=0,
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
    ) -> list[TaskRecord]:
        order = check_claim(worker_id, limit, order, lease, max_lost_leases)
        now = self.clock()
        stale = now - lease
        runnable = [
            task
            for task in self._tasks.values()
            if (task.status is TaskStatus.QUEUED and task.run_at <= now)
            or (task.status is TaskStatus.RUNNING and task.heartbeat_at is not None and task.heartbeat_at < stale)
        ]
        if order is Order.FIFO:
            runnable.sort(key=lambda task: task.id)
        elif order is Order.LIFO:
            runnable.sort(key=lambda task: -task.id)
        else:
            runnable.sort(key=lambda task: (-task.priority, task.id))
        claimed: list[TaskRecord] = []
        for task in runnable:
            if len(claimed) == limit:
                break
            if task.status is TaskStatus.QUEUED:
                if task.attempts >= task.max_attempts:
                    self._finish(
                        task,
                        status=TaskStatus.DEAD,
                        error_type="AttemptsExhausted",
                        error_message=exhausted_message(task),
                    )
                    continue
                attempts, lost_leases = task.attempts + 1, task.lost_leases
            else:
                # An orphan: its worker died. The rerun repeats the attempt it interrupted.
                attempts, lost_leases = task.attempts, task.lost_leases + 1
                if lost_leases > max_lost_leases:
                    self._finish(
                        task,
                        status=TaskStatus.DEAD,
                        lost_leases=lost_leases,
                        error_type="LeaseExpired",
                        error_message=lease_expired_message(task.worker_id, lost_leases, max_lost_leases),
                    )
                    continue
            claimed.append(
                self._put(
                    task,
                    status=TaskStatus.RUNNING,
                    attempts=attempts,
                    lost_leases=lost_leases,
                    worker_id=worker_id,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        await trio.lowlevel.checkpoint()
        return claimed

    async def heartbeat(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> list[int]:
        now = self.clock()
        held = []
        for task_id in sorted(set(task_ids)):
            task = self._tasks.get(task_id)
            if task is not None and task.status is TaskStatus.RUNNING and _owned(task, worker_id):
                self._put(task, heartbeat_at=now)
                held.append(task_id)
        await trio.lowlevel.checkpoint()
        return held

    async def complete(self, task_id: int, result: Any, *, worker_id: str | None = None) -> None:
        check_final(task_id, worker_id)
        encoded = encode_result(result, self._max_json_bytes)
        task = self._running(task_id, worker_id, "completed")
        self._finish(task, status=TaskStatus.SUCCEEDED, result=json.loads(encoded))
        await trio.lowlevel.checkpoint()

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
        check_run_at(retry_at)
        error_type, message = error_fields(error)
        task = self._running(task_id, worker_id, "failed")
        if dead:
            self._finish(task, status=TaskStatus.DEAD, error_type=error_type, error_message=message)
        elif retry_at is not None and task.attempts < task.max_attempts:
            self._put(
                task,
                status=TaskStatus.QUEUED,
                run_at=retry_at,
                heartbeat_at=None,
                error_type=error_type,
                error_message=message,
            )
            self._changed.unpark_all()
        else:
            status = TaskStatus.DEAD if task.attempts >= task.max_attempts else TaskStatus.FAILED
            self._finish(task, status=status, error_type=error_type, error_message=message)
        await trio.lowlevel.checkpoint()

    async def cancel(self, task_id: int, *, worker_id: str | None = None) -> None:
        check_final(task_id, worker_id)
        task = self._get(task_id)
        if task.final or (worker_id is not None and not _owned(task, worker_id)):
            raise TaskConflictError(task_id, task.status, "cancelled")
        self._finish(task, status=TaskStatus.CANCELLED)
        if task.status is TaskStatus.RUNNING and worker_id is None:
            self._cancellations.publish([task_id])
        await trio.lowlevel.checkpoint()

    async def release(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> None:
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            if task is not None and task.status is TaskStatus.RUNNING and _owned(task, worker_id):
                self._put(task, status=TaskStatus.QUEUED, attempts=task.attempts - 1, heartbeat_at=None)
        self._changed.unpark_all()
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

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - a poll interval, not a deadline
        """Return when tasks are enqueued or released, or after ``timeout`` seconds."""
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

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    # -- internals -----------------------------------------------------------------

    def _get(self, task_id: int) -> TaskRecord:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    def _running(self, task_id: int, worker_id: str | None, action: str) -> TaskRecord:
        task = self._get(task_id)
        if task.status is not TaskStatus.RUNNING or not _owned(task, worker_id):
            raise TaskConflictError(task_id, task.status, action)
        return task

    def _put(self, task: TaskRecord, **changes: Any) -> TaskRecord:
        updated = attrs.evolve(task, **changes)
        self._tasks[task.id] = updated
        return updated

    def _finish(self, task: TaskRecord, **changes: Any) -> None:
        self._put(task, finished_at=self.clock(), heartbeat_at=None, **changes)
        self._changed.unpark_all()


def _owned(task: TaskRecord, worker_id: str | None) -> bool:
    return worker_id is None or task.worker_id == worker_id
