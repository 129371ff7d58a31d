"""The package's exceptions, each also deriving from the builtin a user would catch."""

from __future__ import annotations

from typing import Any

import trio

__all__ = [
    "CancelTask",
    "HandlerExistsError",
    "JobAbandonedError",
    "JobCancelledError",
    "JobTimeoutError",
    "PoolClosedError",
    "PostgresConnectionError",
    "QueueFullError",
    "ServiceExistsError",
    "ServiceNotFoundError",
    "StepFailedError",
    "StoreError",
    "SupervisorClosedError",
    "TaskConflictError",
    "TaskNotFoundError",
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


# -- durable stores ---------------------------------------------------------------


class CancelTask(WorkerPoolError):
    """Raised by a handler to finalise its durable task as cancelled: no retry, not an error."""


class StoreError(WorkerPoolError):
    """A store's database failed: it is missing, corrupt, locked, full or unreachable, or lost a table.

    Stores raise it for the database's own failures, with the driver's error
    as its ``__cause__``; a caller's mistakes stay TypeError or ValueError.

    Attributes:
        store: Which store: ``SQLite store <path>``, or
            ``PostgreSQL store <host>:<port> schema <schema>``.
        reason: What failed, on one line, as the database reported it.
    """

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"{store}: {reason}")
        self.store = store
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.store, self.reason))


class TaskConflictError(WorkerPoolError, RuntimeError):
    """A task was finalised twice, or by a worker that no longer holds it."""

    def __init__(self, task_id: int, status: str, action: str, reason: str = "") -> None:
        super().__init__(f"task {task_id} cannot be {action}: it is {status}" + (f", and {reason}" if reason else ""))
        self.task_id = task_id
        self.status = status
        self.action = action
        self.reason = reason
        """Why, beyond its status; empty if the status says it all."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_id, self.status, self.action, self.reason))


class TaskNotFoundError(WorkerPoolError, LookupError):
    """No task has this id in the store: it never existed, or it finished and was pruned (``prune()``)."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"no task with id {task_id} (it never existed, or was pruned)")
        self.task_id = task_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_id,))


class PostgresConnectionError(StoreError, ConnectionError):
    """A PostgresStore cannot reach its server, or lost its connection.

    Attributes:
        host: The server's host, as the DSN (or ``PGHOST``) gives it.
        port: The server's port.
        store: ``PostgreSQL at <host>:<port>``.
        reason: What psycopg reported, on one line.
    """

    def __init__(self, host: str, port: str, reason: str) -> None:
        super().__init__(f"PostgreSQL at {host}:{port}", reason)
        self.host = host
        self.port = port
        # Unlike other StoreErrors, its message says what to check: the server may be down, or the DSN wrong.
        self.args = (
            f"cannot connect to {self.store} (is the server running, and are the DSN's "
            f"host, port, database and credentials right?): {reason}",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.host, self.port, self.reason))


# -- supervised services ---------------------------------------------------------


class ServiceExistsError(WorkerPoolError, ValueError):
    """A Supervisor already has a service under this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a service named {name!r} is already registered; pass another with add(service, name=...)")
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))


class ServiceNotFoundError(WorkerPoolError, LookupError):
    """A Supervisor has no service under this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no service named {name!r} is registered")
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))


class SupervisorClosedError(WorkerPoolError, RuntimeError):
    """A service was added to a Supervisor that is stopping or stopped."""


# -- exception groups ---------------------------------------------------------------


def exit_with_sole(
    group: BaseExceptionGroup[BaseException], exc: BaseException | None, *, prefer: BaseException | None = None
) -> bool:
    """For ``__aexit__``: raise the one exception in ``group`` bare, or return False if it is ``exc``.

    trio wraps even a lone exception in a group. A user who raised ValueError
    in the block, or pressed Ctrl-C, should get exactly that. Several real
    errors stay grouped.
    """
    sole = sole_exception(group, prefer=exc if prefer is None else prefer)
    if sole is None:
        raise group
    if sole is exc:
        return False
    raise sole from None


def sole_exception(group: BaseExceptionGroup[BaseException], *, prefer: BaseException | None) -> BaseException | None:
    """The one exception worth raising from ``group``, or None if there are several.

    Cancelled exceptions alongside another exception are noise from the other
    tasks being cancelled because of it.
    """
    leaves = list(_leaves(group))
    others = [leaf for leaf in leaves if not isinstance(leaf, trio.Cancelled)]
    if len(others) == 1:
        return others[0]
    if others:
        return None
    return prefer if prefer in leaves else leaves[0]


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves
