"""A submitted job: the caller's handle, and the pool's queue entry behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from ._result import Result
from ._trio_thread import in_trio_thread

if TYPE_CHECKING:
    from ._current import RunInfo
    from ._job import Job
    from ._pool import WorkerPool

__all__ = ["JobHandle"]

T = TypeVar("T")


class Entry:
    """The pool's record of one submitted job, from its queueing to its Result.

    The pool's queue, timers and workers hold entries; the caller holds the
    ``JobHandle`` that reads one. Once the job has its Result, the entry keeps
    only that: not the Job and its options, not the handle.
    """

    __slots__ = (
        "cancel_reason",
        "done_event",
        "handle",
        "info",
        "job",
        "job_id",
        "queued_at",
        "result",
        "scheduled",
        "scope",
    )

    # Made only by WorkerPool._new_handle(), which sets every field itself
    # rather than through an __init__: a call less on the per-job path.
    job: Job[Any] | None
    """The job, until it has its Result."""
    job_id: int
    queued_at: float
    info: RunInfo | None
    """What the run carries besides its job, until it has its Result."""
    result: Result[Any] | None
    done_event: trio.Event | None
    """Made by the first ``wait()`` before the Result."""
    scope: trio.CancelScope | None
    """The running worker's cancel scope, set only while the job runs."""
    cancel_reason: str | None
    """Why the pool or the caller cancelled it; None if they did not."""
    scheduled: bool
    """True while the job waits for its start time, outside the queue."""
    handle: JobHandle[Any] | None
    """The caller's handle, for the observers' events, until the Result."""

    @property
    def name(self) -> str:
        # Not stored: the job is released once the result, which has it, exists.
        if self.result is not None:
            return self.result.name
        assert self.job is not None
        return self.job.name


class JobHandle(Generic[T]):
    """A submitted job: wait for its Result, or cancel it.

    ``submit()`` returns one. Once the job is done, the handle keeps only the
    Result, not the Job and its options.
    """

    __slots__ = ("_entry", "_pool")

    # Made only by WorkerPool._new_handle(), which sets both fields itself.
    _pool: WorkerPool
    _entry: Entry

    @property
    def job_id(self) -> int:
        """The job's position in submission order, from 0."""
        return self._entry.job_id

    @property
    def queued_at(self) -> float:
        """When the job was submitted, on the trio clock."""
        return self._entry.queued_at

    @property
    def name(self) -> str:
        """The job's name."""
        return self._entry.name

    @property
    def done(self) -> bool:
        """True once the job has its Result."""
        return self._entry.result is not None

    @property
    def result(self) -> Result[T] | None:
        """The job's Result, or None until it is done."""
        return self._entry.result

    async def wait(self) -> Result[T]:
        """Wait until the job is done and return its Result.

        Cancelling the wait leaves the job alone; use ``cancel()`` for that.
        """
        entry = self._entry
        if entry.result is None:
            if entry.done_event is None:
                entry.done_event = trio.Event()
            await entry.done_event.wait()
        else:
            await trio.lowlevel.checkpoint()
        assert entry.result is not None
        return entry.result

    def cancel(self) -> None:
        """Cancel the job.

        A queued job ends ``CANCELLED`` at once, with no attempt made. A running
        job is cancelled through its cancel scope and ends ``CANCELLED`` when its
        task next reaches a checkpoint; a thread-run job gets its result at once,
        though its thread keeps its worker until it returns. A finished job is
        left as it is. It may be called from a plain task's thread too.
        """
        if self._entry.result is None:
            in_trio_thread(
                lambda: self._pool._cancel_entry(self._entry, "its JobHandle was cancelled"), "handle.cancel()"
            )

    def __repr__(self) -> str:
        result = self._entry.result
        state = result.status.value if result is not None else "pending"
        return f"<JobHandle {self.job_id} {self.name!r} {state}>"
