"""What a job ends in."""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

import attrs

__all__ = ["Result", "Status"]

T = TypeVar("T")


class Status(enum.StrEnum):
    """How a job ended. Members are strings (``Status.SUCCEEDED == "succeeded"``), handy for logs and storage."""

    SUCCEEDED = "succeeded"
    """The task returned; ``Result.data`` holds what it returned."""
    FAILED = "failed"
    """The task raised on its last attempt; ``Result.error`` is that exception."""
    TIMED_OUT = "timed_out"
    """The job's deadline passed; ``Result.error`` is a ``JobTimeoutError``."""
    CANCELLED = "cancelled"
    """Its handle, context or pool cancelled it; ``Result.error`` is a ``JobCancelledError``."""
    ABANDONED = "abandoned"
    """The pool stopped before it started; ``Result.error`` is a ``JobAbandonedError``."""


@attrs.frozen(weakref_slot=False)
class Result(Generic[T]):
    """The outcome of one job. Every submitted job ends in exactly one.

    Times are on the trio clock. ``duration`` runs from the first attempt's start
    to the end, so it includes retries and backoff but not time spent queued; a
    job that never started has ``started_at`` None and ``duration`` 0.0.

    ``code`` is an HTTP-like status code (see ``Code``): the one the task set with
    ``current_job().code``, or else the outcome's.
    """

    job_id: int
    name: str
    data: T | None
    error: BaseException | None
    status: Status
    code: int
    attempts: int
    queued_at: float
    started_at: float | None
    finished_at: float

    @property
    def duration(self) -> float:
        """Seconds from the first attempt's start to the end; 0.0 for a job that never started.

        Derived rather than stored: a float object fewer per kept Result.
        """
        if self.started_at is None:
            return 0.0
        return self.finished_at - self.started_at

    @property
    def ok(self) -> bool:
        """True if the job succeeded."""
        return self.status is Status.SUCCEEDED

    def unwrap(self) -> T:
        """Return ``data`` if the job succeeded, else raise its ``error``."""
        if self.error is not None:
            raise self.error
        return self.data  # type: ignore[return-value]  # None is a valid T when the task returned None


# A pool builds one Result per job, and a frozen attrs class sets each of its
# ten fields through object.__setattr__, which made the Result the dearest
# object of a job. The pool builds it instead as an instance of this class,
# which has the very same slots but no frozen __setattr__, so the pool
# stores each field directly, then turns it into a Result by assigning its
# __class__ (CPython allows that between classes of the same layout: the same
# slots, which it lays out in sorted order). What the caller gets is an
# ordinary, frozen Result. tests/core/test_result.py checks that the slots stay
# Result's fields.
class ResultBuilder(Generic[T]):
    """The pool's fast way to a Result: build one, then set its ``__class__`` to ``Result``."""

    __slots__ = (
        "attempts",
        "code",
        "data",
        "error",
        "finished_at",
        "job_id",
        "name",
        "queued_at",
        "started_at",
        "status",
    )

    # Made only by WorkerPool._record_result(), which sets every field
    # itself rather than through an __init__: a call less per job.
    job_id: int
    name: str
    data: T | None
    error: BaseException | None
    status: Status
    code: int
    attempts: int
    queued_at: float
    started_at: float | None
    finished_at: float
