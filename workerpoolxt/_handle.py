"""A submitted job: the caller's handle, and the pool's queue entry behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import trio

from ._result import Result
from ._trio_thread import in_trio_thread

if TYPE_CHECKING:
    from ._current import Progress, RunInfo
    from ._job import Job
    from ._pool import WorkerPool

__all__ = ["JobHandle"]

T = TypeVar("T")


class Entry:
    """The pool's record of one submitted job, from its queueing to its Result.

    The pool's queue, timers and workers hold entries; the caller holds a
    ``JobHandle`` that reads one. An entry has three slots, because a pool may
    hold millions of them: what a job needs only now and then (what its run
    carries, an event for ``wait()``, why it was cancelled) lives in its
    pool's ``_extras``, and which pool it belongs to is a class attribute:
    each pool makes its own subclass (see ``entry_class``).
    Once the job has its Result, the entry keeps only that, not the Job.
    """

    __slots__ = ("job_id", "queued_at", "value")

    # Made only by WorkerPool._new_entry(), which sets every field itself
    # rather than through an __init__: a call less on the per-job path.
    pool: ClassVar[WorkerPool]
    job_id: int
    queued_at: float
    value: Job[Any] | Result[Any]
    """The job until it has its Result, then the Result."""

    @property
    def job(self) -> Job[Any] | None:
        """The job, until it has its Result."""
        value = self.value
        return None if type(value) is Result else value  # type: ignore[return-value]

    @property
    def result(self) -> Result[Any] | None:
        value = self.value
        return value if type(value) is Result else None

    @property
    def name(self) -> str:
        return self.value.name


class Extras:
    """What a few entries need besides their three slots, kept in their pool's ``_extras`` while they do."""

    __slots__ = ("cancel_reason", "done_event", "info", "progress")

    def __init__(self) -> None:
        self.info: RunInfo | None = None
        """What the run carries besides its job, until it has its Result."""
        self.done_event: trio.Event | None = None
        """Made by the first ``wait()`` before the Result."""
        self.cancel_reason: str | None = None
        """Why the pool or the caller cancelled it while it ran or was held by a worker."""
        self.progress: Progress | None = None
        """The latest report of its task's ``current_job().progress()``."""


def entry_class(pool: WorkerPool) -> type[Entry]:
    """The class of ``pool``'s entries: it carries the pool, so no entry spends a slot on it."""
    return type("Entry", (Entry,), {"__slots__": (), "pool": pool})


def last_progress(entry: Entry) -> Progress | None:
    """The latest progress report of the job of ``entry``, kept in its extras while it runs; None if none."""
    extras = entry.pool._extras.get(entry)
    return None if extras is None else extras.progress


def new_handle(entry: Entry) -> JobHandle[Any]:
    """A handle on ``entry``; every handle on one entry is equal to the others."""
    handle: JobHandle[Any] = _new_object(JobHandle)
    handle._entry = entry
    return handle


_new_object = object.__new__


class JobHandle(Generic[T]):
    """A submitted job: wait for its Result, or cancel it.

    ``submit()`` returns one. Once the job is done, the handle keeps only the
    Result, not the Job and its options. Handles are views: the handle an
    observer's event carries equals, and hashes like, the one ``submit()``
    returned, though it need not be the same object.
    """

    __slots__ = ("_entry",)

    # Made only by new_handle(), which sets the field itself.
    _entry: Entry

    def __eq__(self, other: object) -> bool:
        if type(other) is not JobHandle:
            return NotImplemented
        return self._entry is other._entry

    def __hash__(self) -> int:
        return id(self._entry)

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
        return type(self._entry.value) is Result

    @property
    def result(self) -> Result[T] | None:
        """The job's Result, or None until it is done."""
        return self._entry.result

    @property
    def last_progress(self) -> Progress | None:
        """The latest report of the job's ``current_job().progress()`` while it runs.

        None before its first report, and once the job is done: its Result
        says how it ended, and the pool keeps nothing else of it.
        """
        return last_progress(self._entry)

    async def wait(self) -> Result[T]:
        """Wait until the job is done and return its Result.

        Cancelling the wait leaves the job alone; use ``cancel()`` for that.
        """
        entry = self._entry
        if type(entry.value) is not Result:
            await entry.pool._done_event(entry).wait()
        else:
            await trio.lowlevel.checkpoint()
        result = entry.result
        assert result is not None
        return result

    def cancel(self) -> None:
        """Cancel the job.

        A queued job ends ``CANCELLED`` at once, with no attempt made. A running
        job is cancelled through its cancel scope and ends ``CANCELLED`` when its
        task next reaches a checkpoint; a thread-run job gets its result at once,
        though its thread keeps its worker until it returns. A finished job is
        left as it is. It may be called from a plain task's thread too.
        """
        entry = self._entry
        if type(entry.value) is not Result:
            in_trio_thread(lambda: entry.pool._cancel_entry(entry, "its JobHandle was cancelled"), "handle.cancel()")

    def __repr__(self) -> str:
        result = self._entry.result
        state = result.status.value if result is not None else "pending"
        return f"<JobHandle {self.job_id} {self.name!r} {state}>"
