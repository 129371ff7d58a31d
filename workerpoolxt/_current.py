"""The running job's view of itself: ``current_job()`` and status codes."""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ._result import Status
from ._validation import to_seconds

if TYPE_CHECKING:
    from ._handle import JobHandle
    from ._job import Job
    from ._pool import WorkerPool
    from ._worker import Worker

__all__ = ["Code", "JobContext", "current_job"]

# The worker whose task is running. Each worker task sets it once, so every job
# it runs, the tasks those jobs start and the threads of plain tasks (which get
# a copy of the context) all see it, at no cost per job.
running_worker: contextvars.ContextVar[Worker | None] = contextvars.ContextVar(
    "workerpoolxt_running_worker", default=None
)


# The job whose task is running: set per job, so a task a job started that
# outlives it (in an outer nursery) cannot mistake the next job for its own.
running_entry: contextvars.ContextVar[JobHandle[Any] | None] = contextvars.ContextVar(
    "workerpoolxt_running_entry", default=None
)


def running_pool() -> WorkerPool | None:
    """The pool whose job is running here, if any."""
    worker = running_worker.get()
    return None if worker is None else worker.pool


class Code(enum.IntEnum):
    """Status codes in the manner of HTTP, as go-work uses them.

    A task may set one with ``current_job().code = ...``; otherwise the outcome
    decides: 200 for success, 500 for an error, 408 for a timeout, 499 for a
    cancellation and 503 for a job the pool abandoned.
    """

    OK = 200
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    TIMEOUT = 408
    NOTHING_TO_DO = 444
    """The job succeeded with nothing to do; middleware and metrics can tell it apart."""
    CANCELLED = 499
    """The job was withdrawn before it finished (nginx's "client closed request")."""
    ERROR = 500
    UNAVAILABLE = 503


DEFAULT_CODES: Final[Mapping[Status, Code]] = {
    Status.SUCCEEDED: Code.OK,
    Status.FAILED: Code.ERROR,
    Status.TIMED_OUT: Code.TIMEOUT,
    Status.CANCELLED: Code.CANCELLED,
    Status.ABANDONED: Code.UNAVAILABLE,
}


class JobContext:
    """The running job, as its task sees it through ``current_job()``.

    It lives for one run of one job, across its attempts. Tasks started by the
    job and the thread of a plain task see the same object.
    """

    __slots__ = ("_attempt_timeout", "_code", "_entry", "_job", "_worker", "deadline", "options", "values")

    def __init__(self, worker: Worker, entry: JobHandle[Any], job: Job[Any]) -> None:
        self._worker = worker
        self._entry = entry
        self._job = job
        self.deadline: float = worker.deadline
        """The job's effective deadline on the trio clock (``math.inf`` if none)."""
        self.options: Mapping[str, Any] = worker.options
        """The effective options: the job's, or else the pool's."""
        self.values: dict[str, Any] = {}
        """A key/value store for this run, shared by the task and anything it calls."""
        self._code: int | None = None
        self._attempt_timeout: float | None = job.attempt_timeout

    @property
    def code(self) -> int | None:
        """The status code the task chose for this attempt, or None to let the outcome decide.

        It is reset before each attempt, and applies when the task returns or
        raises; a timeout, cancellation or abandonment sets its own code.
        """
        return self._code

    @code.setter
    def code(self, value: int | None) -> None:
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"`code` must be an int status code, not {type(value).__name__}")
            if not 100 <= value <= 599:
                raise ValueError(f"`code` must be between 100 and 599, got {value}")
        self._code = value

    @property
    def name(self) -> str:
        return self._job.name

    @property
    def job_id(self) -> int:
        return self._entry.job_id

    @property
    def attempt(self) -> int:
        """The attempt running now, from 1 (read it while the job runs).

        For a durable task it counts the task's attempts in its store, across
        workers and processes.
        """
        meta = self._entry._meta
        if meta is not None and "task_attempt" in meta:
            return int(meta["task_attempt"])
        return self._worker.attempts

    @property
    def args(self) -> Mapping[str, Any]:
        """The job's JSON-compatible arguments (empty if it has none)."""
        return self._job.args

    @property
    def attempt_timeout(self) -> float | None:
        """The bound in seconds on the attempt about to run, or None for none.

        It starts as the job's ``attempt_timeout`` for each attempt; a
        middleware may change it before awaiting ``call_next()``.
        """
        return self._attempt_timeout

    @attempt_timeout.setter
    def attempt_timeout(self, value: float | None) -> None:
        self._attempt_timeout = None if value is None else to_seconds(value, "attempt_timeout")

    @property
    def item(self) -> Any:
        """The channel item this run handles, for a job that ``submit_each()`` started.

        Raises:
            LookupError: ``submit_each()`` did not start this job.
        """
        meta = self._entry._meta
        if meta is None or "item" not in meta:
            raise LookupError(f"job {self.name!r} has no item: only submit_each() gives jobs one")
        return meta["item"]

    @property
    def tick(self) -> int | None:
        """The batch this run belongs to, from 0, for a job that ``submit_batches()`` started."""
        meta = self._entry._meta
        return None if meta is None else meta.get("tick")

    @property
    def index(self) -> int | None:
        """This run's position within its batch, from 0, for a job that ``submit_batches()`` started."""
        meta = self._entry._meta
        return None if meta is None else meta.get("index")

    @property
    def task_id(self) -> int | None:
        """The durable task's id in its store, for a job that a ``DurableWorker`` runs."""
        meta = self._entry._meta
        return None if meta is None else meta.get("task_id")

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key`` for this run, or ``default``."""
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` for the rest of this run."""
        self.values[key] = value

    def __repr__(self) -> str:
        return f"<JobContext {self.job_id} {self.name!r} attempt {self.attempt}>"


def current_job() -> JobContext:
    """Return the running job's context, from inside its task.

    It works in the job's task, in tasks the job starts, and in the thread of a
    plain task, with no argument passed along.

    Raises:
        RuntimeError: No job is running here.
    """
    worker = running_worker.get()
    entry = running_entry.get()
    if worker is None or entry is None or worker.current is not entry:
        raise RuntimeError("current_job() must be called from inside a running workerpoolxt job")
    context = worker.job_context
    if context is None:
        job = entry._job
        assert job is not None
        context = worker.job_context = JobContext(worker, entry, job)
    return context
