"""The caller's view of one submitted job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from ._result import Result
from ._trio_thread import in_trio_thread

if TYPE_CHECKING:
    from ._job import Job
    from ._pool import WorkerPool

__all__ = ["JobHandle"]

T = TypeVar("T")


class JobHandle(Generic[T]):
    """A submitted job: wait for its Result, or cancel it.

    ``submit()`` returns one. The handle is also the pool's queue entry, so a job
    costs one object until it finishes, after which the handle keeps only the
    Result (not the Job and its options).
    """

    __slots__ = (
        "_cancel_reason",
        "_done_event",
        "_job",
        "_meta",
        "_pool",
        "_result",
        "_scheduled",
        "_scope",
        "job_id",
        "queued_at",
    )

    def __init__(self, pool: WorkerPool, job: Job[T], job_id: int, queued_at: float) -> None:
        self.job_id = job_id
        """The job's position in submission order, from 0."""
        self.queued_at = queued_at
        self._pool = pool
        self._job: Job[T] | None = job
        self._result: Result[T] | None = None
        self._done_event: trio.Event | None = None
        # The running worker's cancel scope, set only while the job runs.
        self._scope: trio.CancelScope | None = None
        # Why the pool or the caller cancelled it; None if they did not.
        self._cancel_reason: str | None = None
        # What a scheduling method gives the run: its channel item, tick and index.
        self._meta: dict[str, Any] | None = None
        # True while the job waits for its start time, outside the queue.
        self._scheduled = False

    @property
    def name(self) -> str:
        """The job's name."""
        # Not stored: the job is released once the result, which has it, exists.
        if self._result is not None:
            return self._result.name
        assert self._job is not None
        return self._job.name

    @property
    def done(self) -> bool:
        """True once the job has its Result."""
        return self._result is not None

    @property
    def result(self) -> Result[T] | None:
        """The job's Result, or None until it is done."""
        return self._result

    async def wait(self) -> Result[T]:
        """Wait until the job is done and return its Result.

        Cancelling the wait leaves the job alone; use ``cancel()`` for that.
        """
        if self._result is None:
            if self._done_event is None:
                self._done_event = trio.Event()
            await self._done_event.wait()
        else:
            await trio.lowlevel.checkpoint()
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        """Cancel the job.

        A queued job ends ``CANCELLED`` at once, with no attempt made. A running
        job is cancelled through its cancel scope and ends ``CANCELLED`` when its
        task next reaches a checkpoint; a thread-run job gets its result at once,
        though its thread keeps its worker until it returns. A finished job is
        left as it is. It may be called from a plain task's worker thread too.
        """
        if self._result is None:
            in_trio_thread(lambda: self._pool._cancel_entry(self, "its JobHandle was cancelled"), "handle.cancel()")

    def __repr__(self) -> str:
        state = self._result.status.value if self._result is not None else "pending"
        return f"<JobHandle {self.job_id} {self.name!r} {state}>"
