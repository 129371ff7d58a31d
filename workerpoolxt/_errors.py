"""The package's exceptions, each also deriving from the builtin a user would catch."""

from __future__ import annotations

from typing import Any

__all__ = [
    "HandlerExistsError",
    "JobAbandonedError",
    "JobCancelledError",
    "JobTimeoutError",
    "PoolClosedError",
    "QueueFullError",
    "StepFailedError",
    "UnknownHandlerError",
    "WorkerPoolError",
]


class WorkerPoolError(Exception):
    """Base class of every error that workerpoolxt raises or reports."""


class PoolClosedError(WorkerPoolError, RuntimeError):
    """A job was submitted to a pool that is stopping or stopped, or never started."""


class QueueFullError(WorkerPoolError, RuntimeError):
    """``submit()`` found the queue at ``max_queue``; ``await pool.asubmit(job)`` waits instead."""


class HandlerExistsError(WorkerPoolError, ValueError):
    """A Registry already has a handler under this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a handler named {name!r} is already registered")
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))


class UnknownHandlerError(WorkerPoolError, LookupError):
    """A job names a handler that its pool's Registry does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no handler named {name!r} is registered")
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))


class _JobError(WorkerPoolError):
    """Shared shape of the errors that stand in a Result: they carry the job's name."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only constructors defeat BaseException's default, which
        # calls cls(*args); rebuild from the message and fields instead, so a
        # Result can be copied, pickled and sent to another process.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[_JobError], args: tuple[Any, ...], state: dict[str, Any]) -> _JobError:
    error = cls.__new__(cls)
    BaseException.__init__(error, *args)
    error.__dict__.update(state)
    return error


class JobTimeoutError(_JobError, TimeoutError):
    """The error of a ``TIMED_OUT`` result, and of an attempt that outlived ``attempt_timeout``.

    Attributes:
        name: The job's name.
        deadline: The deadline that passed, on the trio clock.
    """

    def __init__(self, *, name: str, deadline: float) -> None:
        super().__init__(f"job {name!r} timed out", name=name)
        self.deadline = deadline


class JobCancelledError(_JobError):
    """The error of a ``CANCELLED`` result: its handle, context or pool cancelled it."""

    def __init__(self, *, name: str, reason: str) -> None:
        super().__init__(f"job {name!r} was cancelled: {reason}", name=name)
        self.reason = reason


class JobAbandonedError(_JobError):
    """The error of an ``ABANDONED`` result: the pool stopped before the job started."""

    def __init__(self, *, name: str) -> None:
        super().__init__(f"job {name!r} was abandoned: the pool stopped before it started", name=name)


class StepFailedError(_JobError):
    """The error of a ``chain()`` job whose step failed; the step's own error is its ``__cause__``.

    Attributes:
        name: The chain job's name.
        step: The failed step's name.
        index: The failed step's position in the chain, from 0.
        attempts: The attempts the step made.
    """

    def __init__(self, *, name: str, step: str, index: int, attempts: int) -> None:
        super().__init__(f"step {index} {step!r} of chain {name!r} failed after {attempts} attempt(s)", name=name)
        self.step = step
        self.index = index
        self.attempts = attempts
