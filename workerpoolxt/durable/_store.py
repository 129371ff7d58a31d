"""Durable tasks: the records a store keeps and the interface every store offers.

A task is a named job (``Job("handler", args=...)``) kept in a store, so that
any worker process, on any machine that reaches the store, can run it. Its
record moves from ``queued`` through ``running`` to a final status
(``succeeded``, ``failed``, ``cancelled`` or ``dead``) as ``_machine.py``'s
table of transitions says, the one description every store follows.

A claim never hands out a task it must not run: a queued task whose attempts
are used up, or a task whose worker died more than ``max_lost_leases`` times,
is dead instead, with the reason as its error.

Times in a store are wall-clock seconds (``time.time()``), because several
processes and machines must agree on them; a worker's lease and heartbeat are
measured on that clock too. ``PostgresStore`` takes "now" from the database's
clock, so workers whose clocks disagree still agree on leases; the times a
caller passes (``run_at``, ``retry_at``) are on the caller's clock.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, TypedDict, runtime_checkable

import attrs
import trio

from .. import Progress
from .._errors import StoreError, TaskConflictError, TaskNotFoundError
from .._job import DEFAULT_QUEUE, Job, check_queue
from .._serialize import PLACEMENT_FIELDS, json_copy
from .._validation import Seconds, count, non_negative_seconds
from ._machine import Call, TaskStatus, conflict

if TYPE_CHECKING:
    from .._registry import Registry

__all__ = [
    "AdminStore",
    "BatchingStore",
    "Order",
    "PeriodicStore",
    "ProgressStore",
    "SQLStore",
    "Store",
    "StoreStatistics",
    "TaskEnd",
    "TaskRecord",
    "TaskStatus",
]

DEFAULT_MAX_LOST_LEASES: Final = 3
"""How many times a task's worker may die (its lease expire) before the task is dead rather than run again."""

MAX_COUNT: Final = 2**31 - 2
"""The largest ``max_lost_leases``: the stores count lost leases in a 32-bit column, up to one past it."""


PRUNE_LIMIT: Final = 1000
"""The default ``limit`` of ``prune()``: a batch that one transaction deletes quickly."""


class Order(enum.StrEnum):
    """Which queued tasks a claim takes first."""

    FIFO = "fifo"
    """Oldest first."""
    LIFO = "lifo"
    """Newest first."""
    PRIORITY = "priority"
    """Highest ``priority`` first, oldest first among equals."""


SORT_KEYS: Final[dict[Order, Callable[[TaskRecord], Any]]] = {
    Order.FIFO: lambda task: task.id,
    Order.LIFO: lambda task: -task.id,
    Order.PRIORITY: lambda task: (-task.priority, task.id),
}
"""The orders as sort keys, for the tasks a claim returns."""


@attrs.frozen
class TaskRecord:
    """A durable task as a store holds it."""

    id: int
    handler: str
    """The name of the handler in the worker's Registry."""
    job: Mapping[str, Any] = attrs.field(hash=False)
    """The job as ``Job.to_dict()`` gave it; ``Job.from_dict(record.job)`` rebuilds it."""
    status: TaskStatus
    attempts: int
    """Attempts charged to the task: claims, less those released by a stop or whose worker died.

    A rerun after a lost lease repeats the attempt it interrupted, so
    ``attempts`` never exceeds ``retry + 1``.
    """
    retry: int
    """The retries the task may have, its job's ``retry``: its attempts may reach ``retry + 1``."""
    priority: int
    created_at: float
    run_at: float
    """When the task may next be claimed: its creation, or the time of its retry."""
    started_at: float | None
    """When its latest attempt started."""
    finished_at: float | None
    worker_id: str | None
    """The worker that holds it, or held it last."""
    heartbeat_at: float | None
    result: Any = attrs.field(hash=False)
    """The handler's return value (JSON), once it succeeded."""
    error_type: str | None
    error_message: str | None
    lost_leases: int
    """How many times the task's worker died (stopped heartbeating) while it ran it, and another took it over."""
    progress_done: float | None = None
    """How much its handler said was done (``current_job().progress()``), as its worker last stored it; None if
    it never reported."""
    progress_total: float | None = None
    """How much its handler said there was to do, with that report; None if it did not say."""
    queue: str = DEFAULT_QUEUE
    """The queue it is in: only the workers serving it claim it."""
    dedup_key: str | None = None
    """While the task waits for its first run, enqueueing a job with this key gives back this task's id."""
    lock: str | None = None
    """No two tasks holding the same lock run at once."""

    @property
    def final(self) -> bool:
        return self.status.final

    @property
    def progress(self) -> Progress | None:
        """The handler's latest progress report that its worker stored, or None.

        A worker stores the latest report of each task it runs at its
        heartbeat. The report is kept when the task ends, is retried, released
        or taken over by another worker (the last known progress of a dead task
        says how far it got), and replaced by the next attempt's first report;
        an operator's ``retry()`` starts the task afresh, without one.
        """
        done = self.progress_done
        return None if done is None else Progress(done, self.progress_total)


@attrs.frozen
class StoreStatistics:
    """How many tasks a store holds in each status."""

    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    dead: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.running + self.succeeded + self.failed + self.cancelled + self.dead


@runtime_checkable
class Store(Protocol):
    """What a durable task store offers. ``MemoryStore``, ``SQLiteStore`` and ``PostgresStore`` implement it.

    Finalising calls (``complete``, ``fail``, ``cancel``) take the task from a
    worker that holds it; given ``worker_id``, they refuse a task that worker
    no longer holds (its lease expired and another worker claimed it).

    A store may also write many tasks' ends and claim more in one transaction
    (``finish_and_claim()``, see ``BatchingStore``): all three stores here do,
    and ``DurableWorker`` uses it when a store has it. An operator's calls,
    to list tasks and requeue failed ones, are ``AdminStore``'s.
    """

    async def init(self) -> None:
        """Create or upgrade the schema; safe to call any number of times.

        A store opened read-only creates nothing: its init() checks that the
        schema is there and current, or raises ``StoreError`` saying what is
        missing and how to create it.
        """

    async def enqueue(
        self, jobs: Sequence[Job[Any]], *, priority: int = 0, run_at: float | None = None, queue: str | None = None
    ) -> list[int]:
        """Store named jobs as queued tasks, in one batch, and return their ids in order.

        Each task goes to its job's ``queue``, else to ``queue``, else to
        ``"default"``. A job with a ``dedup_key`` that a queued task not yet
        started holds (or an earlier job of the batch) stores nothing: its id
        in the list is that task's.
        """

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
        """Atomically take up to ``limit`` runnable tasks for ``worker_id`` and mark them running.

        Only tasks in ``queues`` are taken (every queue's if None), in
        ``order`` across them all (a store may take the tasks whose lease
        expired first: ``PostgresStore`` does). A task with a ``lock`` is runnable only
        while no task holding that lock runs, and only if it is the oldest
        due task waiting for it, so tasks sharing a lock run one at a time,
        in the order they were enqueued.

        Runnable: queued with ``run_at`` passed, or running with a heartbeat
        older than ``lease`` (its worker is presumed dead: its lease is lost).
        Claiming a queued task counts an attempt. Reclaiming a lost lease
        counts it in ``lost_leases`` instead, and reruns the attempt the dead
        worker interrupted. Tasks the claim must not run are dead instead,
        and do not count towards ``limit``: a queued task whose attempts are
        used up (``AttemptsExhausted``), and one that lost its lease more than
        ``max_lost_leases`` times (``LeaseExpired``).
        """

    async def heartbeat(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> list[int]:
        """Refresh the heartbeat of running tasks; return the ids still held."""

    async def complete(self, task_id: int, result: Any, *, worker_id: str | None = None) -> None:
        """Finalise a running task as succeeded with ``result`` (JSON)."""

    async def fail(
        self,
        task_id: int,
        error: BaseException,
        retry_at: float | None = None,
        *,
        worker_id: str | None = None,
        dead: bool = False,
    ) -> None:
        """Record a failed attempt with ``error``'s type and message.

        With ``retry_at`` and attempts left, the task is queued again for then;
        otherwise it is final: dead if it used its attempts (or ``dead`` is
        true, for a task that can never run), failed if not.
        """

    async def cancel(self, task_id: int, *, worker_id: str | None = None) -> None:
        """Finalise a queued or running task as cancelled.

        Cancelled without ``worker_id`` (by someone other than its worker), a
        running task is announced to ``wait_for_cancellations()``, so its
        worker can stop the handler.
        """

    async def release(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> None:
        """Put running tasks back in the queue for any worker, their claim not counted as an attempt.

        A stop, or another task's crash, that cuts an attempt short is no
        failure of the task: it must not cost the task one of its attempts.
        """

    async def get(self, task_id: int) -> TaskRecord:
        """Return the task's record (``TaskNotFoundError`` if none)."""

    async def wait(self, task_id: int, *, poll: float = 0.5) -> TaskRecord:
        """Wait until the task is final and return its record."""

    async def wait_for_work(self, timeout: float, *, queues: Sequence[str] | None = None) -> None:  # noqa: ASYNC109 - a poll interval, not a deadline
        """Return when new work may be ready in ``queues`` (every queue if None), or after ``timeout`` seconds."""

    async def wait_for_cancellations(self) -> list[int]:
        """Return the ids of tasks ``cancel()`` finalised while running, as they are cancelled.

        A caller sees the cancellations made while it waits. A store that
        cannot notify (SQLite) never returns; its workers notice a cancelled
        task at their next heartbeat instead.
        """

    async def stats(self) -> StoreStatistics:
        """Count the tasks in each status."""

    async def aclose(self) -> None:
        """Release the store's connections."""


@attrs.frozen
class TaskEnd:
    """How a worker's run of a task ended, for a store to write as ``complete()``, ``fail()`` or ``cancel()`` would."""

    task_id: int
    call: Call
    """``Call.COMPLETE``, ``Call.FAIL`` or ``Call.CANCEL``."""
    result: Any = None
    """The handler's return value, for ``Call.COMPLETE``."""
    error: BaseException | None = None
    """What the attempt raised, for ``Call.FAIL``."""
    retry_at: float | None = None
    """For ``Call.FAIL``: when to run the task again, or None if the failure is final."""


@runtime_checkable
class BatchingStore(Store, Protocol):
    """A store that finalises many tasks and claims more in one transaction: ``DurableWorker`` uses it if it can.

    A worker whose tasks end together would otherwise pay two transactions
    per batch of tasks, one to finalise them and one to claim their
    successors, and wait for the first before it starts the second.
    """

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
        """Finalise ``ends`` for ``worker_id``, then claim up to ``limit`` tasks (none if 0), all in one transaction.

        Each end is written as ``complete()``, ``fail()`` or ``cancel()`` would
        write it, and its entry in the returned list is None, or the error that
        call would have raised (a conflict, a result JSON cannot hold, ...):
        such an end writes nothing, the others are written all the same. Since
        the ends are written before the claim, a worker may count their tasks'
        slots free for it: it never holds more leases than ``limit`` plus the
        tasks it still runs. If the call raises, nothing was written or claimed.
        """


@runtime_checkable
class AdminStore(Store, Protocol):
    """A store an operator can look into and repair: list its tasks, put failed ones back in the queue, prune old ones.

    ``MemoryStore``, ``SQLiteStore`` and ``PostgresStore`` implement it; the
    command line's ``list``, ``retry``, ``status`` and ``prune`` use it, and
    so does a ``DurableWorker`` given a ``retention``. A store without
    it is still a ``Store``: workers need none of it.

    A store opened read-only lists its tasks, and refuses ``retry()``,
    ``retry_dead()`` and ``prune()`` with the ``StoreError`` its other writes raise.
    """

    async def list_tasks(
        self, *, status: TaskStatus | None = None, limit: int = 100, queue: str | None = None
    ) -> list[TaskRecord]:
        """The newest tasks (highest id first), at most ``limit``, of ``status`` and in ``queue`` only if given.

        Args:
            status: A ``TaskStatus``, or its value (``"dead"``); None for every status.
            limit: The most tasks to return, a positive int.
            queue: A queue's name; None for every queue.

        Raises:
            TypeError, ValueError: ``status``, ``limit`` or ``queue`` is not one; the message names it.
        """

    async def queue_stats(self) -> dict[str, StoreStatistics]:
        """Count the tasks in each status, queue by queue: the queues that hold a task, by name."""

    async def retry(self, task_ids: Sequence[int], *, lease: float = 30.0) -> list[int]:
        """Put final tasks that did not succeed (failed, dead or cancelled) back in the queue, afresh.

        Each is queued to run now with a fresh budget: no attempts or lost
        leases counted, and no worker, times, error or result left from its
        previous life; its job, ``retry`` and ``priority`` stay, and so does
        ``created_at``. Workers waiting for work are woken, as by ``enqueue()``.
        All or none: one transaction, which changes nothing if any id is refused.

        A task cancelled after a worker claimed it may still be running there:
        its worker stops the handler once it hears (at its next heartbeat on
        SQLite). So such a task may be retried only ``lease`` seconds after it
        was cancelled, when a live worker has surely let it go (the same
        bound by which a claim takes over a silent worker's task); retried at
        once, it could run twice side by side.

        Args:
            task_ids: The tasks' ids; an id given twice is requeued once.
            lease: The workers' lease, in seconds.

        Returns:
            The ids requeued, in the order given.

        Raises:
            TaskNotFoundError: No task has one of the ids.
            TaskConflictError: A task is queued, running or succeeded, or was
                cancelled under a worker less than ``lease`` seconds ago; it
                names the task, its status and why.
        """

    async def retry_dead(self) -> list[int]:
        """Put every dead task back in the queue, as ``retry()`` does, in one transaction.

        Returns:
            The ids requeued, ascending.
        """

    async def prune(self, *, older_than: Seconds, limit: int = PRUNE_LIMIT) -> int:
        """Delete finished tasks, the oldest first: at most ``limit``, in one transaction; return how many.

        A task is deleted once it is final (succeeded, failed, cancelled or
        dead) and finished more than ``older_than`` seconds ago, on the
        store's clock (the database's on PostgreSQL). Queued and running tasks
        are never deleted. ``get()`` and ``wait()`` of a deleted task raise
        ``TaskNotFoundError``. Bounded so that one call never holds the store
        for long: call it again while it returns ``limit``.

        Args:
            older_than: Seconds since a task finished, zero or more (or a ``timedelta``).
            limit: The most tasks to delete, a positive int.

        Returns:
            How many tasks were deleted.

        Raises:
            TypeError, ValueError: ``older_than`` or ``limit`` is not one; the message names it.
            StoreError: The store is read-only.
        """

    async def oldest_queued(self) -> float | None:
        """Since when the queue's longest-waiting task has waited, or None if no queued task is due.

        That is the earliest ``run_at`` of the queued tasks whose ``run_at`` has
        come: a new task's creation, a deferred one's time, a retry's time, or
        when an operator retried it. A task retried a week after it was made
        has waited since then, not for the week.
        """


@runtime_checkable
class ProgressStore(Store, Protocol):
    """A store that keeps the latest progress report of each running task: ``DurableWorker`` writes it if it can.

    ``MemoryStore``, ``SQLiteStore`` and ``PostgresStore`` implement it; a
    store without it is still a ``Store``, and its tasks' reports only reach
    the worker's observers. ``TaskRecord.progress`` reads what was stored.
    """

    async def record_progress(self, progress: Mapping[int, Progress], *, worker_id: str | None = None) -> None:
        """Store each task's report, in one transaction, replacing the one it had.

        Only tasks still running, and held by ``worker_id`` (any worker if
        None), are written; the others are left as they are, silently: a
        report that comes as its task ends, or after another worker took it
        over, is of no more use.

        Args:
            progress: Each task's id, and its latest report.
            worker_id: The worker that runs the tasks, or None.

        Raises:
            TypeError, ValueError: ``progress`` is not a mapping of int ids to Progress values, or ``worker_id``
                is not a str without NUL characters; the message names it.
        """


@runtime_checkable
class PeriodicStore(Store, Protocol):
    """A store that keeps each periodic schedule's last tick, and enqueues each tick once: see ``Periodic``.

    ``MemoryStore``, ``SQLiteStore`` and ``PostgresStore`` implement it; a
    ``DurableWorker`` whose app has schedules needs it. A schedule is known by
    its name; its ticks are times in seconds since the epoch.
    """

    async def last_tick(self, schedule: str, first: float) -> float:
        """Register ``schedule`` with ``first`` as its last tick, unless it is registered; return its last tick.

        Raises:
            TypeError, ValueError: ``schedule`` is not a non-empty str, or ``first`` not a finite time.
        """

    async def enqueue_tick(self, schedule: str, tick: float, job: Job[Any]) -> int | None:
        """Enqueue ``job`` for ``tick`` of ``schedule``, unless that tick or a later one is its last; return the id.

        In one transaction: the schedule's last tick becomes ``tick`` only if
        it is older (or the schedule is new), and only then is the job stored,
        as ``enqueue([job])`` stores it, due at once. Of any number of callers
        offering the same tick, in any number of processes, exactly one gets
        a task's id; the others get None.

        Raises:
            TypeError, ValueError: ``schedule`` is not a non-empty str, ``tick`` not a finite time, or ``job``
                one that ``enqueue()`` refuses; then nothing is written.
        """


def check_schedule_name(value: object, name: str) -> str:
    """A periodic schedule's name, as every ``PeriodicStore`` takes it: a non-empty str without NUL."""
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"`{name}` must not be empty")
    if "\x00" in value:
        raise ValueError(f"`{name}` holds a NUL character, which PostgreSQL cannot store: {value!r}")
    return value


def check_tick(schedule: object, tick: object, name: str) -> None:
    """Check a schedule's name and a tick, as a ``PeriodicStore`` takes them."""
    check_schedule_name(schedule, "schedule")
    if tick is None:
        raise TypeError(f"`{name}` must be a time in seconds (time.time()), not None")
    check_time(tick, name)


@runtime_checkable
class SQLStore(Protocol):
    """A store whose tables are SQL: it can show the statements that create them, for a database administrator.

    ``SQLiteStore`` and ``PostgresStore`` implement it.
    """

    def schema_sql(self) -> str:
        """The SQL that ``init()`` applies to an empty database: the store's tables and indexes, at the latest version.

        One transaction, ready for ``sqlite3`` or ``psql``. Once it is applied,
        the store opens without creating anything (a read-only store too).
        """


# -- shared by the implementations --------------------------------------------------

# The ranges of PostgreSQL's columns, checked at enqueue by every store, so a
# number that works in tests works in production: the SQL stores keep retry + 1
# (the attempts allowed) in an INTEGER, and priority in a BIGINT.
_MAX_RETRY: Final = 2**31 - 2
_MIN_PRIORITY: Final = -(2**63)
_MAX_PRIORITY: Final = 2**63 - 1

MAX_JSON_BYTES: Final = 1 << 20
"""The default ``max_json_bytes`` of every store: a task's job, or its result, as JSON, is at most 1 MiB."""


def check_max_json_bytes(value: object) -> int:
    return count(value, "max_json_bytes", minimum=1)


_JSON: Final = json.JSONEncoder(separators=(",", ":"))
"""Compact JSON, as ``json.dumps(..., separators=(",", ":"))`` writes it, without building an encoder per call."""


class EncodedJob(NamedTuple):
    """A job as a store writes it: its data as JSON, and the fields that are columns of their own."""

    handler: str
    job: str
    """``Job.to_dict()`` as JSON, without ``queue``, ``dedup_key`` and ``lock``, which are columns."""
    retry: int
    queue: str
    dedup_key: str | None
    lock: str | None


def encode_jobs(
    jobs: Sequence[Job[Any]], registry: Registry | None, max_bytes: int, queue: str | None = None
) -> list[EncodedJob]:
    """Check jobs can be stored and encode each; a job's own ``queue`` wins over ``queue``, then ``"default"``.

    Raises:
        TypeError: A job is not a Job, or holds a callable instead of a handler's name.
        ValueError: A job has a field that is not data, a ``retry`` above 2**31 - 2,
            or JSON of more than ``max_bytes``; ``queue`` is not a queue's name.
        UnknownHandlerError: ``registry`` is given and lacks a job's handler.
        TypeError: ``registry`` is given and a job's args do not fit its handler's parameters.
    """
    if isinstance(jobs, Job) or not isinstance(jobs, Sequence):
        raise TypeError(f"`jobs` must be a sequence of Jobs, not {type(jobs).__name__}")
    default = DEFAULT_QUEUE if queue is None else check_queue(queue, "queue")
    encoded = []
    for index, job in enumerate(jobs):
        if not isinstance(job, Job):
            raise TypeError(f"`jobs[{index}]` must be a workerpoolxt.Job, not {type(job).__name__}")
        data = job.to_dict()
        for field in PLACEMENT_FIELDS:
            data.pop(field, None)
        if registry is not None:
            registry.check(job)  # an unknown handler, or args that do not fit it, fail here
        retry = count(job.retry or 0, f"jobs[{index}].retry", minimum=0, maximum=_MAX_RETRY)
        text = _JSON.encode(data)
        check_size(text, f"jobs[{index}]", max_bytes)
        if _holds_nul(text):
            raise ValueError(f"`jobs[{index}]` holds a NUL character (\\u0000), which PostgreSQL cannot store")
        encoded.append(EncodedJob(data["task"], text, retry, job.queue or default, job.dedup_key, job.lock))
    return encoded


class Claim(NamedTuple):
    """A claim's arguments, checked."""

    worker_id: str
    limit: int
    order: Order
    lease: float
    max_lost_leases: int
    queues: tuple[str, ...] | None
    """The queues to claim from; None for every queue."""


class WorkWaiters:
    """Trio tasks waiting for new work, each in some queues or in every queue; news of a queue wakes its own."""

    def __init__(self) -> None:
        self._waiting: dict[trio.Event, tuple[str, ...] | None] = {}

    async def wait(self, queues: tuple[str, ...] | None) -> None:
        """Wait for news of work in ``queues`` (None: in any queue)."""
        event = trio.Event()
        self._waiting[event] = queues
        try:
            await event.wait()
        finally:
            del self._waiting[event]

    def wake(self, queue: str | None) -> None:
        """Wake the waiters for ``queue``, and those for every queue; None wakes all."""
        for event, queues in self._waiting.items():
            if queue is None or queues is None or queue in queues:
                event.set()


def check_queues(queues: object) -> tuple[str, ...] | None:
    """A claim's ``queues``: None for every queue, else a non-empty sequence of queue names, each kept once."""
    if queues is None:
        return None
    if isinstance(queues, str) or not isinstance(queues, Sequence | Set):
        raise TypeError(f"`queues` must be a sequence of queue names or None, not {type(queues).__name__}")
    names = tuple(dict.fromkeys(check_queue(name, "queues[]") for name in queues))
    if not names:
        raise ValueError("`queues` must name at least one queue, or be None for every queue")
    return names


def encode_result(result: Any, max_bytes: int) -> str:
    """The JSON of a handler's return value; TypeError/ValueError if it is not JSON-compatible or too large."""
    if result is None:  # what most handlers return, spared the encoder
        check_size("null", "result", max_bytes)
        return "null"
    encoded = _JSON.encode(json_copy(result, "result"))
    check_size(encoded, "result", max_bytes)
    if _holds_nul(encoded):
        raise ValueError("`result` holds a NUL character (\\u0000), which PostgreSQL cannot store")
    return encoded


def check_size(text: str, name: str, max_bytes: int) -> None:
    # json.dumps escapes every non-ASCII character, so its length is its size in bytes.
    if len(text) > max_bytes:
        raise ValueError(
            f"`{name}` is {len(text):,} bytes of JSON, more than the store's `max_json_bytes` ({max_bytes:,}): "
            "keep large data elsewhere and store a reference to it"
        )


# A NUL escape outside of an escaped backslash. PostgreSQL's jsonb refuses it,
# so every store refuses it, and a job that works in tests works in production.
_JSON_NUL: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _holds_nul(text: str) -> bool:
    # The substring test is a fast scan; the regex, some 50 times slower, decides only the rare texts it lets by.
    return "\\u0000" in text and _JSON_NUL.search(text) is not None


def check_schema_version(store: str, version: int | None, latest: int) -> None:
    """For a read-only store's init(): raise StoreError unless its tables are there, at the ``latest`` version.

    ``version`` is None when the store holds no tables at all.
    """
    if version is None:
        raise not_ready(store, "there are no workerpoolxt tables", "create them")
    if version < latest:
        older = f"its tables are at schema version {version}, older than this workerpoolxt's {latest}"
        raise not_ready(store, older, "upgrade them")


def not_ready(store: str, what: str, action: str) -> StoreError:
    """A StoreError for a store that a read-only store cannot use, saying how to make it ready."""
    return StoreError(
        store,
        f"{what}; run `workerpoolxt schema --apply` (or init() on a store that is not read-only) to {action}",
    )


def exhausted_message(task: TaskRecord) -> str:
    """Why a claim buried a queued task whose attempts are used up (the SQL stores word it the same)."""
    last = f" (last error {task.error_type}: {task.error_message})" if task.error_type is not None else ""
    return f"all {task.attempts} of its {task.retry + 1} attempts were used before this claim{last}"


def lease_expired_message(worker_id: str | None, lost_leases: int, max_lost_leases: int) -> str:
    """Why a claim buried a task whose worker died once too often (the SQL stores word it the same)."""
    return (
        f"worker {worker_id or '?'} stopped heartbeating: the task lost its lease {lost_leases} times, "
        f"more than max_lost_leases ({max_lost_leases})"
    )


class Cancellations:
    """Hands the ids of cancelled tasks to every ``wait()`` under way when they are published; trio only."""

    def __init__(self) -> None:
        self._inboxes: dict[object, list[int]] = {}
        self._lot = trio.lowlevel.ParkingLot()

    def publish(self, task_ids: Sequence[int]) -> None:
        for inbox in self._inboxes.values():
            inbox.extend(task_ids)
        self._lot.unpark_all()

    def wake(self) -> None:
        """Wake the waiters with nothing new, so each calls its ``ready`` again."""
        self._lot.unpark_all()

    async def wait(self, ready: Callable[[], Awaitable[None]]) -> list[int]:
        """Await ``ready()`` (a store starts listening there), then wait until ids are published."""
        key = object()
        inbox: list[int] = []
        self._inboxes[key] = inbox
        try:
            while not inbox:
                await ready()
                if not inbox:
                    await self._lot.park()
        finally:
            del self._inboxes[key]
        return inbox


def check_time(value: object, name: str) -> None:
    """Check a time a caller passes (``run_at``, ``retry_at``): a finite number of seconds, or None."""
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a time in seconds (time.time()) or None, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value!r}")


def check_final(task_id: object, worker_id: object) -> None:
    """Check a finalising call's arguments before it joins a transaction shared with other callers."""
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        raise TypeError(f"`task_id` must be an int, not {type(task_id).__name__}")
    check_worker_id(worker_id)


def check_worker_id(worker_id: object) -> None:
    """Check the ``worker_id`` a worker's write passes: a str without NUL, or None."""
    if worker_id is not None:
        if not isinstance(worker_id, str):
            raise TypeError(f"`worker_id` must be a str or None, not {type(worker_id).__name__}")
        if "\x00" in worker_id:
            raise ValueError("`worker_id` must not hold a NUL character")


def error_fields(error: BaseException) -> tuple[str, str]:
    return type(error).__qualname__, str(error)


def check_claim(worker_id: object, limit: object, order: object, lease: object, max_lost_leases: object) -> Order:
    if not isinstance(worker_id, str) or not worker_id:
        raise TypeError("`worker_id` must be a non-empty str")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"`limit` must be an int of at least 1, got {limit!r}")
    check_lease(lease)
    count(max_lost_leases, "max_lost_leases", minimum=0, maximum=MAX_COUNT)
    if not isinstance(order, str):
        raise TypeError(f"`order` must be an Order, not {type(order).__name__}")
    try:
        return Order(order)
    except ValueError:
        raise ValueError(f"`order` must be one of {[o.value for o in Order]}, got {order!r}") from None


def check_priority(priority: object) -> None:
    count(priority, "priority", minimum=_MIN_PRIORITY, maximum=_MAX_PRIORITY)


async def poll_until_final(get: Callable[[int], Awaitable[TaskRecord]], task_id: int, poll: float) -> TaskRecord:
    """``Store.wait()`` for stores that cannot be told when a task ends: look every ``poll`` seconds."""
    while True:
        task = await get(task_id)
        if task.final:
            return task
        await trio.sleep(poll)


def refusal(task_id: int, row: Sequence[Any] | None, call: Call) -> BaseException:
    """Why a finalising write matched no row: ``row`` holds the task's status, or is None if there is no task."""
    if row is None:
        return TaskNotFoundError(task_id)
    return conflict(call, task_id, row[0])


def end_params(end: TaskEnd, worker_id: str | None, max_json_bytes: int) -> dict[str, Any]:
    """The parameters of an end's write, as ``complete()``, ``fail()`` and ``cancel()`` check and encode them.

    Raises:
        TypeError, ValueError: As the call would: the result is not JSON, say.
    """
    check_final(end.task_id, worker_id)
    if end.call is Call.COMPLETE:
        return {"id": end.task_id, "result": encode_result(end.result, max_json_bytes), "worker_id": worker_id}
    if end.call is Call.FAIL:
        check_time(end.retry_at, "retry_at")
        if end.error is None:
            raise ValueError("a failed task's end needs its `error`")
        error_type, message = error_fields(end.error)
        return {
            "id": end.task_id,
            "error_type": error_type,
            "message": message,
            "retry_at": end.retry_at,
            "dead": False,
            "worker_id": worker_id,
        }
    if end.call is Call.CANCEL:
        return {"id": end.task_id, "worker_id": worker_id}
    raise ValueError(f"a task's end is complete, fail or cancel, not {end.call.value}")


class EndBatch:
    """The ends a ``finish_and_claim()`` writes, checked and encoded as their calls would.

    An end its call would refuse (a result JSON cannot hold, say) keeps the error, and is not written.
    """

    def __init__(self, ends: Sequence[TaskEnd], worker_id: str | None, max_json_bytes: int) -> None:
        self.outcomes: list[BaseException | None] = [None] * len(ends)
        self.writes: list[tuple[Call, dict[str, Any]]] = []
        """Each end to write: its call and its parameters."""
        self._indexes: list[int] = []
        for index, end in enumerate(ends):
            try:
                params = end_params(end, worker_id, max_json_bytes)
            except (TypeError, ValueError) as exc:
                self.outcomes[index] = exc
                continue
            self.writes.append((end.call, params))
            self._indexes.append(index)

    def claim_limit(self, limit: int) -> int:
        """The claim's limit, less a slot for each refused end: its task stays running, held by the worker."""
        return max(limit - (len(self.outcomes) - len(self.writes)), 0)

    def outcomes_of(self, written: Sequence[BaseException | None]) -> list[BaseException | None]:
        """Every end's outcome, given those of the writes."""
        for index, outcome in zip(self._indexes, written, strict=True):
            self.outcomes[index] = outcome
        return self.outcomes


# -- an operator's retry ------------------------------------------------------------
#
# retry() is no step of _machine.py's table: the table describes a task's run,
# in which a final status is never left, so a worker can trust that a
# finished task stays finished. An operator's retry begins the task's life
# anew instead, as if it were enqueued again with the same job: nothing it
# counted or recorded in its previous life carries over.

RETRYABLE: Final = (TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED)
"""The statuses ``retry()`` requeues: the final ones but success."""


class _FreshStart(TypedDict):
    attempts: int
    lost_leases: int
    started_at: float | None
    finished_at: float | None
    worker_id: str | None
    heartbeat_at: float | None
    result: Any
    error_type: str | None
    error_message: str | None
    progress_done: float | None
    progress_total: float | None


FRESH_START: Final = _FreshStart(
    attempts=0,
    lost_leases=0,
    started_at=None,
    finished_at=None,
    worker_id=None,
    heartbeat_at=None,
    result=None,
    error_type=None,
    error_message=None,
    progress_done=None,
    progress_total=None,
)
"""What a task starts with, when enqueued and when ``retry()`` requeues it, besides its status (queued) and ``run_at``.

Each is a TaskRecord field and a column of the SQL stores.
"""

FINAL: Final = tuple(status for status in TaskStatus if status.final)
"""The final statuses, the ones ``prune()`` deletes: succeeded, failed, cancelled and dead."""


def check_prune(older_than: object, limit: object) -> tuple[float, int]:
    """Check ``prune()``'s arguments; return ``older_than`` in seconds, and ``limit``."""
    seconds = non_negative_seconds(older_than, "older_than")
    return seconds, count(limit, "limit", minimum=1, maximum=MAX_LIMIT)


MAX_LIMIT: Final = 2**31 - 1
"""The largest ``limit`` of ``list_tasks()``: a limit every database takes as a number, far above any listing."""

_MIN_ID: Final = -(2**63)
_MAX_ID: Final = 2**63 - 1


def check_progress(progress: object, worker_id: object) -> list[tuple[int, float, float | None]]:
    """Check ``record_progress()``'s arguments; return each task's id, done and total as floats, ids ascending.

    Ids no SQL store can hold are left out: they name no task.
    """
    if not isinstance(progress, Mapping):
        raise TypeError(f"`progress` must be a mapping of task ids to Progress values, not {type(progress).__name__}")
    check_worker_id(worker_id)
    rows = []
    for task_id, report in progress.items():
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise TypeError(f"`progress` keys must be int task ids, not {type(task_id).__name__}")
        if not isinstance(report, Progress):
            raise TypeError(f"`progress[{task_id}]` must be a workerpoolxt.Progress, not {type(report).__name__}")
        if _MIN_ID <= task_id <= _MAX_ID:  # beyond 64 bits, an id names no task (a SQL driver would refuse it)
            total = None if report.total is None else float(report.total)
            rows.append((task_id, float(report.done), total))
    # Ascending, as the SQL stores lock rows: two writers over the same tasks queue up rather than deadlock.
    return sorted(rows)


def check_listing(status: object, limit: object, queue: object = None) -> TaskStatus | None:
    """Check ``list_tasks()``'s arguments; return ``status`` as a TaskStatus, or None."""
    count(limit, "limit", minimum=1, maximum=MAX_LIMIT)
    if queue is not None:
        check_queue(queue, "queue")
    if status is None:
        return None
    if not isinstance(status, str):
        raise TypeError(f"`status` must be a TaskStatus, its value, or None, not {type(status).__name__}")
    try:
        return TaskStatus(status)
    except ValueError:
        raise ValueError(f"`status` must be one of {[s.value for s in TaskStatus]}, got {status!r}") from None


def check_task_ids(task_ids: object) -> list[int]:
    """Check ``retry()``'s ids; return them, each once, in the order given."""
    if isinstance(task_ids, str | bytes) or not isinstance(task_ids, Sequence):
        raise TypeError(f"`task_ids` must be a sequence of ints, not {type(task_ids).__name__}")
    for index, task_id in enumerate(task_ids):
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise TypeError(f"`task_ids[{index}]` must be an int, not {type(task_id).__name__}")
    return list(dict.fromkeys(task_ids))


def storable_ids(task_ids: Sequence[int]) -> list[int]:
    """The ids a SQL store can look up: the others (beyond 64 bits) name no task, and its driver would refuse them."""
    return [task_id for task_id in task_ids if _MIN_ID <= task_id <= _MAX_ID]


def retry_refusal(
    task_ids: Sequence[int], requeued: Collection[int], statuses: Mapping[int, str], lease: float
) -> BaseException | None:
    """Why ``retry()`` must change nothing: the first id given that it could not requeue; None if it requeued all.

    ``statuses`` holds the status of every task the ids name. A cancelled task
    is refused only while its last worker may still be running it.
    """
    for task_id in task_ids:
        if task_id not in requeued:
            status = statuses.get(task_id)
            if status is None:
                return TaskNotFoundError(task_id)
            reason = (
                f"its worker may still be running it: retry it once the lease ({lease:g}s) has passed since"
                if status == TaskStatus.CANCELLED
                else ""
            )
            return TaskConflictError(task_id, TaskStatus(status), "retried", reason)
    return None


def check_lease(lease: object) -> float:
    """A claim's or ``retry()``'s ``lease``: a finite number of seconds above zero."""
    if not isinstance(lease, int | float) or isinstance(lease, bool) or not 0 < lease < math.inf:
        raise ValueError(f"`lease` must be a positive number of seconds, got {lease!r}")
    return float(lease)
