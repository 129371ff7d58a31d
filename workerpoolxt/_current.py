"""The running job's view of itself: ``current_job()`` and status codes."""

from __future__ import annotations

import contextvars
import enum
import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ._handle import last_progress, new_handle
from ._observer import JobProgress, notify
from ._result import Result, Status
from ._trio_thread import in_trio_thread
from ._validation import count, number, to_seconds

if TYPE_CHECKING:
    from ._handle import Entry
    from ._job import Job
    from ._pool import WorkerPool
    from ._worker import Worker

__all__ = ["Code", "Progress", "RunInfo", "RunningJob", "current_job"]


class _NoItem:
    def __repr__(self) -> str:
        return "NO_ITEM"


NO_ITEM: Final[Any] = _NoItem()


def _first_attempt(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    count(value, attribute.name, minimum=1)


@attrs.frozen
class RunInfo:
    """What a job's run carries besides its Job, for its task to read through ``current_job()``.

    The pool's scheduling methods give their runs one (``submit_each()`` an
    item, ``submit_batches()`` a tick and index), and a ``DurableWorker`` its
    task's id and attempt; ``WorkerPool.submit(job, info=...)`` takes one.

    Args:
        item: The channel item the run handles; read as ``current_job().item``.
        tick: The batch the run belongs to, from 0.
        index: The run's position within its batch, from 0.
        task_id: The durable task the run is an attempt of.
        first_attempt: The number of the run's first attempt, from 1: a durable
            task's attempt in its store, counted across workers.
    """

    item: Any = attrs.field(default=NO_ITEM, eq=False)
    tick: int | None = None
    index: int | None = None
    task_id: int | None = None
    first_attempt: int = attrs.field(default=1, validator=_first_attempt)


NO_INFO: Final = RunInfo()


@attrs.frozen
class Progress:
    """How far a running job says it is: ``done`` of ``total``, or ``done`` alone when the total is unknown.

    A task reports it with ``current_job().progress(done, total)``; the units
    are the task's own (items, bytes, percent).

    Args:
        done: How much is done: a finite int or float, zero or more.
        total: How much there is to do: a finite int or float, zero or more
            (zero for an empty batch, which is all done), at least ``done``;
            or None if it is not known.

    Raises:
        TypeError: ``done`` or ``total`` is not an int or a float (a bool is refused).
        ValueError: ``done`` or ``total`` is negative or not finite, or ``done``
            exceeds ``total``.
    """

    done: float
    total: float | None = None

    def __attrs_post_init__(self) -> None:
        done = number(self.done, "done")
        if not 0 <= done < math.inf:
            raise ValueError(f"`done` must be finite and zero or more, got {self.done!r}")
        if self.total is not None:
            total = number(self.total, "total", "a number or None")
            if not 0 <= total < math.inf:
                raise ValueError(f"`total` must be finite and zero or more, got {self.total!r}")
            if done > total:
                raise ValueError(f"`done` ({self.done!r}) must not exceed `total` ({self.total!r})")

    @property
    def fraction(self) -> float | None:
        """``done / total``, from 0.0 to 1.0 (1.0 for a total of zero: nothing to do is done); None without a total."""
        if self.total is None:
            return None
        return self.done / self.total if self.total else 1.0


# The worker whose task is running. Each worker task sets it once, so every job
# it runs, the tasks those jobs start and the threads of plain tasks (which get
# a copy of the context) all see it, at no cost per job.
running_worker: contextvars.ContextVar[Worker | None] = contextvars.ContextVar(
    "workerpoolxt_running_worker", default=None
)


# The job whose task is running: set per job, so a task a job started that
# outlives it (in an outer nursery) cannot mistake the next job for its own.
running_entry: contextvars.ContextVar[Entry | None] = contextvars.ContextVar("workerpoolxt_running_entry", default=None)


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


class RunningJob:
    """The running job, as its task sees it through ``current_job()``, and as middleware receives it.

    It lives for one run of one job, across its attempts. Tasks started by the
    job and the thread of a plain task see the same object.
    """

    __slots__ = (
        "_attempt_timeout",
        "_code",
        "_code_attempt",
        "_entry",
        "_info",
        "_job",
        "_worker",
        "deadline",
        "options",
        "values",
    )

    def __init__(self, worker: Worker, entry: Entry, job: Job[Any]) -> None:
        self._worker = worker
        self._entry = entry
        self._job = job
        extras = entry.pool._extras.get(entry)
        self._info = NO_INFO if extras is None or extras.info is None else extras.info
        self.deadline: float = worker.deadline
        """The job's effective deadline on the trio clock (``math.inf`` if none)."""
        self.options: Mapping[str, Any] = worker.options
        """The effective options: the job's, or else the pool's."""
        self.values: dict[str, Any] = {}
        """A key/value store for this run, shared by the task and anything it calls."""
        self._code: int | None = None
        self._code_attempt = 0  # the attempt that set the code: each attempt starts with none
        self._attempt_timeout: float | None = job.attempt_timeout

    @property
    def code(self) -> int | None:
        """The status code the task chose for this attempt, or None to let the outcome decide.

        Each attempt starts with none, and it applies when the task returns or
        raises; a timeout, cancellation or abandonment sets its own code.
        """
        return self._code if self._code_attempt == self._worker.engine.attempt else None

    @code.setter
    def code(self, value: int | None) -> None:
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"`code` must be an int status code, not {type(value).__name__}")
            if not 100 <= value <= 599:
                raise ValueError(f"`code` must be between 100 and 599, got {value}")
        self._code = value
        self._code_attempt = self._worker.engine.attempt

    @property
    def name(self) -> str:
        return self._job.name

    @property
    def job_id(self) -> int:
        return self._entry.job_id

    @property
    def info(self) -> RunInfo:
        """What the run carries besides its Job: see ``RunInfo``."""
        return self._info

    @property
    def attempt(self) -> int:
        """The attempt running now (read it while the job runs), counted from ``info.first_attempt``.

        That is from 1, except for a durable task, whose attempts its store
        counts across workers and processes.
        """
        return self._info.first_attempt - 1 + self._worker.engine.attempt

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
        item = self._info.item
        if item is NO_ITEM:
            raise LookupError(f"job {self.name!r} has no item: only submit_each() gives jobs one")
        return item

    @property
    def tick(self) -> int | None:
        """The batch this run belongs to, from 0, for a job that ``submit_batches()`` started."""
        return self._info.tick

    @property
    def index(self) -> int | None:
        """This run's position within its batch, from 0, for a job that ``submit_batches()`` started."""
        return self._info.index

    @property
    def task_id(self) -> int | None:
        """The durable task's id in its store, for a job that a ``DurableWorker`` runs."""
        return self._info.task_id

    def progress(self, done: float, total: float | None = None) -> None:
        """Report how far the job is: ``done`` of ``total`` (None if the total is not known).

        The report replaces the previous one: ``last_progress`` and the job's
        handle (``JobHandle.last_progress``) read it, the pool's observers
        receive it (``Observer.job_progress``), and a ``DurableWorker`` stores
        the latest of its task at its next heartbeat. With no observer of
        progress, a report costs about what building ``Progress`` does. From
        a plain task's thread, each report waits for trio's thread to take
        it: report at a modest rate (per item of a few thousand, or every
        tenth of a second) rather than per byte.

        A report after the job has its Result (from a task it started that
        outlived it, say) is ignored.

        Args:
            done: How much is done, in the task's own units: a finite number, zero or more.
            total: How much there is to do, at least ``done`` (zero for an empty batch); or None.

        Raises:
            TypeError, ValueError: ``done`` or ``total`` is not one (see ``Progress``); the message names it.
        """
        report = Progress(done, total)
        in_trio_thread(functools.partial(self._record_progress, report), "current_job().progress()")

    def _record_progress(self, report: Progress) -> None:
        entry = self._entry
        if type(entry.value) is Result:  # too late: the job is over, and its extras gone
            return
        pool = entry.pool
        pool._extra(entry).progress = report
        methods = pool._observers.job_progress
        if methods:
            event = JobProgress(new_handle(entry), report, trio.current_time())
            notify(methods, event, "as it reported progress")

    @property
    def last_progress(self) -> Progress | None:
        """The job's latest ``progress()`` report, across its attempts; None before the first."""
        return last_progress(self._entry)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key`` for this run, or ``default``."""
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` for the rest of this run."""
        self.values[key] = value

    def __repr__(self) -> str:
        return f"<RunningJob {self.job_id} {self.name!r} attempt {self.attempt}>"


in_process = False
"""True in a worker process that runs plain tasks for a pool (``_process.py``), where no job's run is."""


def current_job() -> RunningJob:
    """Return the running job's context, from inside its task.

    It works in the job's task, in tasks the job starts, and in the thread of a
    plain task, with no argument passed along.

    A task run in a process (``run_in="process"``) has no job here: the call
    raises there.

    Raises:
        RuntimeError: No job is running here, or this is a task's process.
    """
    worker = running_worker.get()
    entry = running_entry.get()
    if worker is None or entry is None or worker.current is not entry:
        if in_process:
            raise RuntimeError(
                "current_job() is not available in a task run in a process (run_in='process'): "
                "the job's run stays in the pool's process; pass what the task needs as the job's args"
            )
        raise RuntimeError("current_job() must be called from inside a running workerpoolxt job")
    running = worker.running_job
    if running is None:
        job = entry.job
        assert job is not None
        running = worker.running_job = RunningJob(worker, entry, job)
    return running
