"""The contract every durable store keeps: one suite, run against MemoryStore, SQLiteStore and PostgresStore.

The stores keep wall-clock times (``time.time()``) and the database stores run
in threads, so these tests use trio's real clock with short leases, and bound
every wait with ``trio.fail_after``. The PostgreSQL run needs a server
(tests/postgres_server.py says which, or why it skips); each test then gets a
schema of its own, dropped afterwards.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import itertools
import json
import math
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import attrs
import pytest
import trio
from helpers import POSTGRES_DSN, drop_schema, new_schema, present, requires_postgres

from workerpoolxt import Job, Progress, Registry, UnknownHandlerError
from workerpoolxt.durable import (
    AdminStore,
    Order,
    ProgressStore,
    SQLiteStore,
    SQLStore,
    Store,
    StoreError,
    StoreStatistics,
    TaskConflictError,
    TaskNotFoundError,
    TaskRecord,
    TaskStatus,
)
from workerpoolxt.durable._machine import REFUSED_AS, TRANSITIONS, Call, Check, sources, step, transitions
from workerpoolxt.durable._store import BatchingStore, TaskEnd
from workerpoolxt.durable.testing import MemoryStore

HANG: Final = 10.0
"""Real seconds after which a wait counts as hung."""

LEASE: Final = 0.2
"""A lease short enough to expire during a test; tests sleep EXPIRE to outlive it."""

EXPIRE: Final = 0.3

EPSILON: Final = 0.05
"""Slack for comparing real elapsed times: timers and threads are not exact."""

CLOCK_SLACK: Final = 1.0
"""Slack for comparing a store's timestamps with ``time.time()`` here (a database may stamp them itself)."""

UNKNOWN_ID: Final = 987_654_321


@attrs.frozen
class Backend:
    """The kind of store a test runs against, and how to open another one on the same data."""

    kind: str
    make: Callable[..., Store]
    """``make(registry, **options)``: open a further store of this kind (not initialised); the fixture closes it."""
    force: Callable[..., Awaitable[None]]
    """``force(task_id, **columns)`` writes a task's row directly, as an older version or a program could leave it."""

    @property
    def notifies(self) -> bool:
        """Whether ``wait_for_work()`` returns early when work arrives (SQLite only polls)."""
        return self.kind != "sqlite"


BACKEND: Final = pytest.StashKey[Backend]()


# The PostgreSQL skip is a mark, not pytest.skip() in the fixture: pytest-trio
# re-raises a skip from an async fixture without its reason. With the variable
# set, an unreachable server fails the tests.
STORE_KINDS: Final = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=requires_postgres),
]


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, initialised store of each kind; it and every store the test opens are closed afterwards."""
    kind: str = request.param
    # `stores` closes first, then `cleanup` drops what the stores shared.
    async with contextlib.AsyncExitStack() as cleanup, contextlib.AsyncExitStack() as stores:
        drop: Callable[[], Awaitable[None]] | None = None
        if kind == "postgres":
            from workerpoolxt.durable._postgres import PostgresStore

            dsn = POSTGRES_DSN
            schema = new_schema()
            drop = functools.partial(trio.to_thread.run_sync, drop_schema, schema)

            def construct(registry: Registry | None, **options: Any) -> Store:
                return PostgresStore(dsn, registry=registry, schema=schema, **options)

        elif kind == "sqlite":

            def construct(registry: Registry | None, **options: Any) -> Store:
                return SQLiteStore(tmp_path / "tasks.db", registry=registry, **options)

        else:

            def construct(registry: Registry | None, **options: Any) -> Store:
                return MemoryStore(registry=registry, **options)

        def make(registry: Registry | None = None, **options: Any) -> Store:
            opened = construct(registry, **options)
            stores.push_async_callback(opened.aclose)
            return opened

        main = make(None)
        request.node.stash[BACKEND] = Backend(kind, make, functools.partial(force_columns, kind, main, tmp_path))
        await main.init()
        if drop is not None:
            # Once init() made it: an unreachable server fails the test with its own error alone.
            cleanup.push_async_callback(drop)
        yield main


async def force_columns(kind: str, store: Store, directory: Path, task_id: int, **columns: Any) -> None:
    """Write ``columns`` of a task's row behind the store's back."""
    if isinstance(store, MemoryStore):
        store._tasks[task_id] = attrs.evolve(store._tasks[task_id], **columns)
        return
    names = list(columns)
    if kind == "sqlite":
        assignments = ", ".join(f"{name} = ?" for name in names)

        def write() -> None:
            connection = sqlite3.connect(directory / "tasks.db")
            try:
                with connection:
                    connection.execute(
                        f"UPDATE wpxt_tasks SET {assignments} WHERE id = ?",
                        (*columns.values(), task_id),
                    )
            finally:
                connection.close()

    else:
        import psycopg
        from psycopg import sql

        from workerpoolxt.durable._postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        query = sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
            sql.Identifier(store.schema, "wpxt_tasks"),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in names),
        )

        def write() -> None:
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
                connection.execute(query, (*columns.values(), task_id))

    await trio.to_thread.run_sync(write)


@pytest.fixture
async def backend(request: pytest.FixtureRequest, store: Store) -> Backend:
    """The kind of the test's ``store``, and a way to open another one on the same data."""
    stash: pytest.Stash = request.node.stash
    return stash[BACKEND]


async def noop_handler(options: Any) -> None:
    """A handler that is registered, never run."""


def job(number: int = 0, *, retry: int | None = None) -> Job[Any]:
    return Job("handler", args={"number": number}, retry=retry)


async def claim_one(store: Store, worker_id: str = "w1", **options: Any) -> TaskRecord:
    [record] = await store.claim(worker_id, 1, **options)
    return record


async def enqueue_one(store: Store, task: Job[Any] | None = None, **options: Any) -> int:
    [task_id] = await store.enqueue([job() if task is None else task], **options)
    return task_id


async def statuses(store: Store, task_ids: list[int]) -> list[TaskStatus]:
    return [(await store.get(task_id)).status for task_id in task_ids]


# -- init and enqueue --------------------------------------------------------------------


async def test_init_is_idempotent(store: Store) -> None:
    """A second init() keeps the tasks already stored."""
    task_id = await enqueue_one(store)
    await store.init()
    await store.init()
    assert (await store.get(task_id)).status is TaskStatus.QUEUED
    assert await store.stats() == StoreStatistics(queued=1)


async def test_enqueue_returns_increasing_ids_in_input_order(store: Store) -> None:
    """A batch of 100 gets 100 increasing ids, each naming the job at its position."""
    ids = await store.enqueue([job(number) for number in range(100)])
    assert len(ids) == 100
    assert all(earlier < later for earlier, later in itertools.pairwise(ids))
    assert [(await store.get(task_id)).job["args"]["number"] for task_id in ids] == list(range(100))
    [next_id] = await store.enqueue([job()])
    assert next_id > ids[-1]


async def test_enqueue_refuses_a_job_holding_a_callable(store: Store) -> None:
    """A job with a function instead of a handler's name is a TypeError, and nothing of its batch is stored."""

    async def handler(options: Any) -> None:
        """Never runs."""

    with pytest.raises(TypeError, match="handler"):
        await store.enqueue([job(), Job(handler)])
    assert (await store.stats()).total == 0


def test_job_refuses_non_json_args() -> None:
    """Arguments that are not JSON are refused when the Job is built, before any store sees them."""
    with pytest.raises(TypeError, match="args"):
        Job("handler", args={"when": object()})


async def test_enqueue_refuses_a_job_with_options(store: Store) -> None:
    """Options are not data: a job carrying them is a ValueError at enqueue(), and nothing is stored."""
    with pytest.raises(ValueError, match="`options`"):
        await store.enqueue([job(), Job("handler", options={"verbose": True})])
    assert (await store.stats()).total == 0


@pytest.mark.parametrize(
    "jobs",
    [
        pytest.param(Job("handler"), id="one-job"),
        pytest.param((Job("handler") for _ in range(2)), id="generator"),
        pytest.param(None, id="none"),
    ],
)
async def test_enqueue_refuses_jobs_that_are_not_a_sequence(store: Store, jobs: Any) -> None:
    """``jobs`` must be a sequence of Jobs: a lone Job or an iterator is a TypeError naming it."""
    with pytest.raises(TypeError, match="`jobs`"):
        await store.enqueue(jobs)
    assert (await store.stats()).total == 0


INT32_MAX: Final = 2**31 - 1
"""One more than the largest ``retry``: PostgreSQL keeps ``retry + 1`` in an INTEGER."""
INT64_MAX: Final = 2**63 - 1
"""The largest ``priority``: PostgreSQL keeps it in a BIGINT."""


@pytest.mark.parametrize(
    ("retry", "priority", "message"),
    [
        pytest.param(
            INT32_MAX, 0, "`jobs[1].retry` must be at most 2,147,483,646, got 2147483647", id="retry-too-large"
        ),
        pytest.param(
            0, INT64_MAX + 1, f"`priority` must be at most {INT64_MAX:,}, got {INT64_MAX + 1}", id="priority-too-large"
        ),
        pytest.param(
            0,
            -INT64_MAX - 2,
            f"`priority` must be at least {-INT64_MAX - 1}, got {-INT64_MAX - 2}",
            id="priority-too-small",
        ),
    ],
)
async def test_enqueue_refuses_numbers_a_store_cannot_hold(
    store: Store, retry: int, priority: int, message: str
) -> None:
    """A retry or priority beyond PostgreSQL's columns is the same ValueError in every store, and nothing is stored."""
    with pytest.raises(ValueError, match=re.escape(message)):
        await store.enqueue([job(), job(retry=retry)], priority=priority)
    assert (await store.stats()).total == 0


async def test_enqueue_takes_the_largest_numbers_a_store_holds(store: Store) -> None:
    """The edges of the ranges are stored as given: retry up to 2**31 - 2, priority from -2**63 to 2**63 - 1."""
    largest = await enqueue_one(store, job(retry=INT32_MAX - 1), priority=INT64_MAX)
    smallest = await enqueue_one(store, priority=-INT64_MAX - 1)
    record = await store.get(largest)
    assert (record.retry, record.priority) == (INT32_MAX - 1, INT64_MAX)
    assert (await store.get(smallest)).priority == -INT64_MAX - 1


MIB: Final = 1 << 20
"""The default ``max_json_bytes`` of every store."""


def job_of_size(size: int) -> Job[Any]:
    """A job whose JSON, as a store encodes it (``to_dict()``, compact), is ``size`` bytes."""
    empty = Job("handler", args={"blob": ""})
    padding = size - len(json.dumps(empty.to_dict(), separators=(",", ":")))
    return Job("handler", args={"blob": "x" * padding})


async def test_enqueue_takes_a_job_of_1_mib_and_refuses_a_larger_one(store: Store) -> None:
    """By default a job's JSON may take 1 MiB: one byte more is a ValueError naming the job and the cap."""
    message = f"`jobs[1]` is {MIB + 1:,} bytes of JSON, more than the store's `max_json_bytes` ({MIB:,})"
    with pytest.raises(ValueError, match=re.escape(message)):
        await store.enqueue([job(), job_of_size(MIB + 1)])
    assert (await store.stats()).total == 0
    largest = job_of_size(MIB)
    task_id = await enqueue_one(store, largest)
    assert Job.from_dict((await store.get(task_id)).job) == largest


async def test_max_json_bytes_caps_jobs_and_results(backend: Backend) -> None:
    """A store's max_json_bytes refuses larger jobs at enqueue() and larger results at complete()."""
    capped = backend.make(None, max_json_bytes=200)
    await capped.init()
    message = "`jobs[0]` is 201 bytes of JSON, more than the store's `max_json_bytes` (200)"
    with pytest.raises(ValueError, match=re.escape(message)):
        await capped.enqueue([job_of_size(201)])
    task_id = await enqueue_one(capped, job_of_size(200))
    await claim_one(capped)
    message = "`result` is 201 bytes of JSON, more than the store's `max_json_bytes` (200)"
    with pytest.raises(ValueError, match=re.escape(message)):
        await capped.complete(task_id, "x" * 199, worker_id="w1")
    assert (await capped.get(task_id)).status is TaskStatus.RUNNING
    await capped.complete(task_id, "x" * 198, worker_id="w1")
    assert (await capped.get(task_id)).result == "x" * 198


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(1.5, TypeError, id="float"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_max_json_bytes_must_be_a_positive_int(
    kind: str, tmp_path: Path, value: object, error: type[Exception]
) -> None:
    """A max_json_bytes that is not a positive int is refused by every store's constructor, naming it."""
    if kind == "postgres":
        from workerpoolxt.durable._postgres import PostgresStore

        construct: Callable[..., Store] = functools.partial(PostgresStore, POSTGRES_DSN)
    elif kind == "sqlite":
        construct = functools.partial(SQLiteStore, tmp_path / "tasks.db")
    else:
        construct = MemoryStore
    with pytest.raises(error, match="`max_json_bytes`"):
        construct(max_json_bytes=value)


async def test_enqueue_checks_handlers_against_the_registry(backend: Backend) -> None:
    """A store given a registry refuses a job naming an unknown handler, and stores none of its batch."""
    registry = Registry()
    registry.register("known", noop_handler)
    guarded = backend.make(registry)
    await guarded.init()
    with pytest.raises(UnknownHandlerError, match="'unknown'"):
        await guarded.enqueue([Job("known"), Job("unknown")])
    assert (await guarded.stats()).total == 0
    task_id = await enqueue_one(guarded, Job("known"))
    assert (await guarded.get(task_id)).handler == "known"


async def keyword_handler(to: str, subject: str = "hi") -> None:
    """A keyword handler that is registered, never run."""


async def test_enqueue_checks_args_against_the_handler(backend: Backend) -> None:
    """A store with a registry refuses args that miss or add an argument, naming it; it stores none of the batch."""
    registry = Registry()
    registry.register("send", keyword_handler)
    registry.register("legacy", noop_handler)
    guarded = backend.make(registry)
    await guarded.init()
    good = Job("send", args={"to": "ada"})
    with pytest.raises(TypeError, match=r"^send\(\) missing a required argument: 'to'$"):
        await guarded.enqueue([good, Job("send", args={"subject": "hi"})])
    with pytest.raises(TypeError, match=r"^send\(\) got an unexpected keyword argument 'cc'$"):
        await guarded.enqueue([good, Job("send", args={"to": "ada", "cc": "bob"})])
    assert (await guarded.stats()).total == 0
    # The options form takes no keywords, so any args; and a store without a registry checks none.
    ids = await guarded.enqueue([good, Job("legacy", args={"anything": 1})])
    unguarded = backend.make()
    await unguarded.init()
    ids += await unguarded.enqueue([Job("send", args={"cc": "bob"})])
    assert [(await guarded.get(task_id)).handler for task_id in ids] == ["send", "legacy", "send"]


async def test_record_after_enqueue(store: Store) -> None:
    """A new task is queued, unattempted, with the job's retry, the batch's priority and the job as data."""
    submitted = Job("handler", name="report", args={"to": ["a@example.com"], "n": 1.5}, retry=2, timeout=30)
    before = time.time()
    task_id = await enqueue_one(store, submitted, priority=7)
    after = time.time()
    record = await store.get(task_id)
    assert record.id == task_id
    assert record.handler == "handler"
    assert record.status is TaskStatus.QUEUED
    assert not record.final
    assert record.attempts == 0
    assert record.retry == 2
    assert record.priority == 7
    assert Job.from_dict(record.job) == submitted
    assert before - CLOCK_SLACK <= record.created_at <= after + CLOCK_SLACK
    assert record.run_at == pytest.approx(record.created_at, abs=1e-3)
    assert (record.started_at, record.finished_at, record.worker_id, record.heartbeat_at) == (None,) * 4
    assert (record.result, record.error_type, record.error_message) == (None,) * 3


# -- claim ------------------------------------------------------------------------------


async def test_claim_marks_the_task_running(store: Store) -> None:
    """A claim counts an attempt and records the worker, the start and a heartbeat, as get() then shows."""
    task_id = await enqueue_one(store)
    before = time.time()
    claimed = await claim_one(store, "w1")
    after = time.time()
    assert claimed.id == task_id
    assert claimed.status is TaskStatus.RUNNING
    assert claimed.attempts == 1
    assert claimed.worker_id == "w1"
    assert claimed.started_at is not None
    assert claimed.heartbeat_at is not None
    assert before - CLOCK_SLACK <= claimed.started_at <= after + CLOCK_SLACK
    assert before - CLOCK_SLACK <= claimed.heartbeat_at <= after + CLOCK_SLACK
    assert claimed.finished_at is None
    assert await store.get(task_id) == claimed


async def test_claim_honours_limit(store: Store) -> None:
    """A claim takes at most ``limit`` tasks, and nothing once the queue is empty."""
    await store.enqueue([job(number) for number in range(5)])
    assert [len(await store.claim("w1", 2)) for _ in range(4)] == [2, 2, 1, 0]


async def test_claim_never_returns_a_task_twice(store: Store) -> None:
    """Successive claims return disjoint tasks that together are every task enqueued."""
    ids = await store.enqueue([job(number) for number in range(10)])
    seen: list[int] = []
    while batch := await store.claim("w1", 3):
        seen.extend(record.id for record in batch)
    assert sorted(seen) == ids


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        # Four tasks enqueued one by one with priorities 1, 5, 0, 5.
        (Order.FIFO, [0, 1, 2, 3]),
        (Order.LIFO, [3, 2, 1, 0]),
        (Order.PRIORITY, [1, 3, 0, 2]),
    ],
)
async def test_claim_order(store: Store, order: Order, expected: list[int]) -> None:
    """FIFO takes the oldest first, LIFO the newest, PRIORITY the highest priority and then the oldest."""
    ids = [await enqueue_one(store, job(number), priority=priority) for number, priority in enumerate([1, 5, 0, 5])]
    taken = [(await claim_one(store, order=order)).id for _ in ids]
    assert taken == [ids[index] for index in expected]


async def test_claim_waits_for_run_at(store: Store) -> None:
    """A task due in the future is not claimable until its ``run_at`` has passed."""
    run_at = time.time() + EXPIRE
    task_id = await enqueue_one(store, run_at=run_at)
    assert (await store.get(task_id)).run_at == pytest.approx(run_at, abs=1e-3)
    assert await store.claim("w1", 10) == []
    with trio.fail_after(HANG):
        await trio.sleep(max(0.0, run_at - time.time()) + EPSILON)
    assert (await claim_one(store)).id == task_id


# -- complete ---------------------------------------------------------------------------


async def test_complete_stores_result(store: Store) -> None:
    """complete() makes the task succeeded, with its JSON result and the time it finished."""
    task_id = await enqueue_one(store)
    claimed = await claim_one(store)
    result = {"rows": [1, 2.5, "three", None, True], "nested": {"ok": False}}
    await store.complete(task_id, result, worker_id="w1")
    record = await store.get(task_id)
    assert record.status is TaskStatus.SUCCEEDED
    assert record.final
    assert record.result == result
    assert record.finished_at is not None
    assert claimed.started_at is not None
    assert claimed.started_at <= record.finished_at <= time.time() + CLOCK_SLACK
    assert (record.error_type, record.error_message) == (None, None)


async def test_complete_twice_conflicts(store: Store) -> None:
    """A task is finalised once: a second complete() is a TaskConflictError naming the task and its status."""
    task_id = await enqueue_one(store)
    await claim_one(store)
    await store.complete(task_id, 1)
    with pytest.raises(TaskConflictError) as caught:
        await store.complete(task_id, 2)
    assert caught.value.task_id == task_id
    assert caught.value.status == "succeeded"
    assert (await store.get(task_id)).result == 1


async def test_finalising_an_unknown_task_is_not_found(store: Store) -> None:
    """complete(), fail() and cancel() of an id the store never gave are TaskNotFoundError."""
    with pytest.raises(TaskNotFoundError) as caught:
        await store.complete(UNKNOWN_ID, None)
    assert caught.value.task_id == UNKNOWN_ID
    with pytest.raises(TaskNotFoundError):
        await store.fail(UNKNOWN_ID, ValueError("boom"))
    with pytest.raises(TaskNotFoundError):
        await store.cancel(UNKNOWN_ID)


async def test_finalising_by_another_worker_conflicts(store: Store) -> None:
    """A worker that does not hold a task cannot complete, fail or cancel it; its holder still can."""
    task_id = await enqueue_one(store)
    await claim_one(store, "w1")
    with pytest.raises(TaskConflictError) as caught:
        await store.complete(task_id, "stolen", worker_id="w2")
    assert caught.value.status == "running"
    with pytest.raises(TaskConflictError):
        await store.fail(task_id, ValueError("boom"), worker_id="w2")
    with pytest.raises(TaskConflictError):
        await store.cancel(task_id, worker_id="w2")
    record = await store.get(task_id)
    assert (record.status, record.worker_id, record.result) == (TaskStatus.RUNNING, "w1", None)
    await store.complete(task_id, "mine", worker_id="w1")
    assert (await store.get(task_id)).result == "mine"


@pytest.mark.parametrize(
    ("result", "error"),
    [
        pytest.param(object(), TypeError, id="object"),
        pytest.param({1, 2}, TypeError, id="set"),
        pytest.param({"when": float("nan")}, ValueError, id="nan"),
    ],
)
async def test_complete_refuses_non_json_result(store: Store, result: object, error: type[Exception]) -> None:
    """A result that is not JSON is refused and the task stays running, so it can still be finalised."""
    task_id = await enqueue_one(store)
    await claim_one(store)
    with pytest.raises(error, match="`result"):
        await store.complete(task_id, result, worker_id="w1")
    record = await store.get(task_id)
    assert (record.status, record.worker_id, record.result) == (TaskStatus.RUNNING, "w1", None)
    await store.complete(task_id, "fine", worker_id="w1")
    assert (await store.get(task_id)).status is TaskStatus.SUCCEEDED


# -- fail -------------------------------------------------------------------------------


async def test_fail_with_retry_at_requeues(store: Store) -> None:
    """With attempts left, fail(retry_at=...) queues the task again with the error, claimable at retry_at."""
    task_id = await enqueue_one(store, job(retry=1))
    await claim_one(store, "w1")
    retry_at = time.time() + EXPIRE
    await store.fail(task_id, ValueError("boom"), retry_at, worker_id="w1")
    record = await store.get(task_id)
    assert record.status is TaskStatus.QUEUED
    assert record.attempts == 1
    assert record.run_at == pytest.approx(retry_at, abs=1e-3)
    assert (record.error_type, record.error_message) == ("ValueError", "boom")
    assert record.finished_at is None
    assert await store.claim("w2", 10) == []
    with trio.fail_after(HANG):
        await trio.sleep(max(0.0, retry_at - time.time()) + EPSILON)
    again = await claim_one(store, "w2")
    assert (again.id, again.attempts, again.worker_id, again.status) == (task_id, 2, "w2", TaskStatus.RUNNING)


async def test_fail_without_retry_at_with_attempts_left_is_failed(store: Store) -> None:
    """Without retry_at, a failure is final: failed while attempts were left, with the error recorded."""
    task_id = await enqueue_one(store, job(retry=2))
    await claim_one(store)
    await store.fail(task_id, KeyError("missing"), worker_id="w1")
    record = await store.get(task_id)
    assert record.status is TaskStatus.FAILED
    assert (record.error_type, record.error_message) == ("KeyError", "'missing'")
    assert record.finished_at is not None
    assert record.attempts == 1
    assert await store.claim("w1", 10) == []


@pytest.mark.parametrize("retry", [False, True], ids=["no-retry-at", "retry-at"])
async def test_fail_on_the_last_attempt_is_dead(store: Store, retry: bool) -> None:
    """A failure of the last attempt is dead, even when a retry time is given."""
    task_id = await enqueue_one(store, job(retry=0))
    await claim_one(store)
    await store.fail(task_id, ValueError("boom"), time.time() if retry else None, worker_id="w1")
    record = await store.get(task_id)
    assert record.status is TaskStatus.DEAD
    assert (record.error_type, record.error_message) == ("ValueError", "boom")
    assert record.finished_at is not None
    assert await store.claim("w1", 10) == []


@pytest.mark.parametrize(
    ("retry_at", "error"),
    [
        pytest.param("soon", TypeError, id="str"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param(float("inf"), ValueError, id="infinite"),
    ],
)
async def test_fail_refuses_a_retry_at_that_is_not_a_time(store: Store, retry_at: Any, error: type[Exception]) -> None:
    """A retry_at that is not a finite number of seconds is an error naming `retry_at`, and the task stays running."""
    task_id = await enqueue_one(store, job(retry=1))
    await claim_one(store)
    with pytest.raises(error, match="`retry_at`"):
        await store.fail(task_id, ValueError("boom"), retry_at, worker_id="w1")
    assert (await store.get(task_id)).status is TaskStatus.RUNNING


async def test_fail_dead_is_dead_with_attempts_left(store: Store) -> None:
    """fail(dead=True) finalises a task that can never run as dead, despite attempts and a retry time."""
    task_id = await enqueue_one(store, job(retry=3))
    await claim_one(store)
    await store.fail(task_id, LookupError("no such handler"), time.time(), worker_id="w1", dead=True)
    record = await store.get(task_id)
    assert record.status is TaskStatus.DEAD
    assert (record.error_type, record.error_message) == ("LookupError", "no such handler")
    assert record.finished_at is not None
    assert await store.claim("w1", 10) == []


# -- cancel -----------------------------------------------------------------------------


async def test_cancel_queued(store: Store) -> None:
    """A queued task can be cancelled; it is final and never claimed."""
    task_id = await enqueue_one(store)
    await store.cancel(task_id)
    record = await store.get(task_id)
    assert record.status is TaskStatus.CANCELLED
    assert record.finished_at is not None
    assert await store.claim("w1", 10) == []


async def test_cancel_running(store: Store) -> None:
    """Its holder can cancel a running task, which then cannot be completed."""
    task_id = await enqueue_one(store)
    await claim_one(store, "w1")
    await store.cancel(task_id, worker_id="w1")
    assert (await store.get(task_id)).status is TaskStatus.CANCELLED
    with pytest.raises(TaskConflictError):
        await store.complete(task_id, None, worker_id="w1")


async def test_cancel_final_conflicts(store: Store) -> None:
    """A final task cannot be cancelled: TaskConflictError, and it keeps its status."""
    succeeded = await enqueue_one(store)
    await claim_one(store)
    await store.complete(succeeded, "done")
    with pytest.raises(TaskConflictError) as caught:
        await store.cancel(succeeded)
    assert caught.value.status == "succeeded"
    cancelled = await enqueue_one(store)
    await store.cancel(cancelled)
    with pytest.raises(TaskConflictError):
        await store.cancel(cancelled)
    assert await statuses(store, [succeeded, cancelled]) == [TaskStatus.SUCCEEDED, TaskStatus.CANCELLED]


async def test_wait_for_cancellations_announces_a_running_task_cancelled_by_another(
    store: Store, backend: Backend
) -> None:
    """wait_for_cancellations() returns a running task cancelled without worker_id, not one its holder cancelled."""
    running, own, queued = await store.enqueue([job(0), job(1), job(2)])
    await store.claim("w1", 2)
    announced: list[int] = []
    with trio.fail_after(HANG):
        # A first wait starts PostgreSQL's listener; nothing is announced yet.
        with trio.move_on_after(EPSILON):
            announced += await store.wait_for_cancellations()

        async def listen() -> None:
            announced.extend(await store.wait_for_cancellations())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            await trio.sleep(EPSILON)
            await store.cancel(own, worker_id="w1")
            await store.cancel(queued)
            await store.cancel(running)
            if not backend.notifies:  # SQLite never announces: its workers find out at their heartbeat
                await trio.sleep(EXPIRE)
                nursery.cancel_scope.cancel()
    assert announced == ([running] if backend.notifies else [])
    assert await statuses(store, [running, own, queued]) == [TaskStatus.CANCELLED] * 3


# -- finish_and_claim -------------------------------------------------------------------


async def test_finish_and_claim_writes_each_end_then_claims(store: Store) -> None:
    """finish_and_claim() writes a completion, a retry and a cancellation as their calls would, then claims."""
    assert isinstance(store, BatchingStore)
    done, retried, cancelled, *rest = await store.enqueue([job(number, retry=1) for number in range(5)])
    await store.claim("w1", 3)
    later = time.time() + 3600
    outcomes, claimed = await store.finish_and_claim(
        [
            TaskEnd(done, Call.COMPLETE, result={"rows": [1, "two"]}),
            TaskEnd(retried, Call.FAIL, error=ValueError("boom"), retry_at=later),
            TaskEnd(cancelled, Call.CANCEL),
        ],
        "w1",
        5,
    )
    assert outcomes == [None, None, None]
    assert ([record.id for record in claimed], {record.worker_id for record in claimed}) == (rest, {"w1"})
    finished = await store.get(done)
    assert (finished.status, finished.result) == (TaskStatus.SUCCEEDED, {"rows": [1, "two"]})
    again = await store.get(retried)
    assert (again.status, again.run_at, again.error_type, again.error_message) == (
        TaskStatus.QUEUED,
        later,
        "ValueError",
        "boom",
    )
    assert (await store.get(cancelled)).status is TaskStatus.CANCELLED


async def test_finish_and_claim_returns_each_refusal_and_claims_a_task_fewer_per_unwritten_end(store: Store) -> None:
    """An end its call would refuse gets that error; one refused before writing keeps its task, and its slot."""
    assert isinstance(store, BatchingStore)
    finished, odd, *queued = await store.enqueue([job(number) for number in range(5)])
    await store.claim("w1", 2)
    await store.complete(finished, 1, worker_id="w1")
    outcomes, claimed = await store.finish_and_claim(
        [TaskEnd(finished, Call.COMPLETE, result=2), TaskEnd(odd, Call.COMPLETE, result=object())], "w1", 2
    )
    conflict, refused = outcomes
    assert isinstance(conflict, TaskConflictError)
    assert (conflict.task_id, conflict.status) == (finished, "succeeded")
    assert isinstance(refused, TypeError)
    assert [record.id for record in claimed] == queued[:1]
    assert (await store.get(finished)).result == 1
    assert (await store.get(odd)).status is TaskStatus.RUNNING


async def test_finish_and_claim_with_limit_0_only_writes(store: Store) -> None:
    """With limit 0, finish_and_claim() writes the ends and claims nothing."""
    assert isinstance(store, BatchingStore)
    task_id, other = await store.enqueue([job(0), job(1)])
    await claim_one(store)
    outcomes, claimed = await store.finish_and_claim([TaskEnd(task_id, Call.COMPLETE, result=None)], "w1", 0)
    assert (outcomes, claimed) == ([None], [])
    assert await statuses(store, [task_id, other]) == [TaskStatus.SUCCEEDED, TaskStatus.QUEUED]


# -- release ----------------------------------------------------------------------------


async def test_release_gives_the_attempt_back(store: Store) -> None:
    """release() queues a running task again, and takes back the attempt its claim counted, even its last."""
    task_id = await enqueue_one(store)
    for worker_id in ("w1", "w2"):
        await claim_one(store, worker_id)
        await store.release([task_id], worker_id=worker_id)
        record = await store.get(task_id)
        assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
    again = await claim_one(store, "w3")
    assert (again.id, again.attempts, again.worker_id) == (task_id, 1, "w3")


async def test_release_by_another_worker_changes_nothing(store: Store) -> None:
    """A worker cannot release a task it does not hold."""
    task_id = await enqueue_one(store)
    claimed = await claim_one(store, "w1")
    await store.release([task_id], worker_id="w2")
    assert await store.get(task_id) == claimed


# -- heartbeats and leases --------------------------------------------------------------


async def test_heartbeat_returns_held_ids_only(store: Store) -> None:
    """heartbeat() refreshes and returns only the running tasks the worker holds."""
    held, finished, others = await store.enqueue([job(0), job(1), job(2)])
    await store.claim("w1", 2)
    await claim_one(store, "w2")
    await store.complete(finished, None)
    before = (await store.get(held)).heartbeat_at
    assert before is not None
    with trio.fail_after(HANG):
        await trio.sleep(EPSILON)
    assert await store.heartbeat([held, finished, others, UNKNOWN_ID], worker_id="w1") == [held]
    after = (await store.get(held)).heartbeat_at
    assert after is not None
    assert after > before
    assert sorted(await store.heartbeat([held, finished, others])) == [held, others]
    assert await store.heartbeat([], worker_id="w1") == []


@pytest.mark.parametrize("retry", [None, 1])
async def test_expired_lease_is_reclaimed(store: Store, retry: int | None) -> None:
    """A task whose heartbeat is older than the lease is claimed by another worker: a lost lease, not an attempt."""
    task_id = await enqueue_one(store, job(retry=retry))
    await claim_one(store, "w1")
    assert await store.claim("w2", 10, lease=LEASE) == []
    with trio.fail_after(HANG):
        await trio.sleep(EXPIRE)
    reclaimed = await claim_one(store, "w2", lease=LEASE)
    assert (reclaimed.id, reclaimed.attempts, reclaimed.lost_leases, reclaimed.worker_id) == (task_id, 1, 1, "w2")
    assert reclaimed.status is TaskStatus.RUNNING
    assert await store.heartbeat([task_id], worker_id="w1") == []
    with pytest.raises(TaskConflictError):
        await store.complete(task_id, "late", worker_id="w1")
    await store.complete(task_id, "on time", worker_id="w2")
    assert (await store.get(task_id)).result == "on time"


async def test_heartbeat_keeps_the_lease(store: Store) -> None:
    """A task heartbeating within its lease is not reclaimed, though its claim is older than the lease."""
    task_id = await enqueue_one(store, job(retry=1))
    await claim_one(store, "w1")
    with trio.fail_after(HANG):
        await trio.sleep(EXPIRE)
        assert await store.heartbeat([task_id], worker_id="w1") == [task_id]
        await trio.sleep(EXPIRE)
    assert await store.claim("w2", 10, lease=2 * EXPIRE - 0.1) == []
    assert (await store.get(task_id)).worker_id == "w1"


async def test_expired_lease_past_max_lost_leases_is_dead(store: Store) -> None:
    """A task that lost its lease more than max_lost_leases times is dead (LeaseExpired) rather than claimed."""
    task_id, other = await store.enqueue([job(0, retry=2), job(1)])
    await claim_one(store, "w1")
    with trio.fail_after(HANG):
        await trio.sleep(EXPIRE)
    await claim_one(store, "w2", lease=LEASE, max_lost_leases=1)
    with trio.fail_after(HANG):
        await trio.sleep(EXPIRE)
    # The buried task leaves room in the limit for the next one.
    [claimed] = await store.claim("w3", 1, lease=LEASE, max_lost_leases=1)
    assert claimed.id == other
    record = await store.get(task_id)
    assert (record.status, record.error_type, record.attempts, record.lost_leases) == (
        TaskStatus.DEAD,
        "LeaseExpired",
        1,
        2,
    )
    assert record.error_message == (
        "worker w2 stopped heartbeating: the task lost its lease 2 times, more than max_lost_leases (1)"
    )
    assert (record.worker_id, record.heartbeat_at) == ("w2", None)
    assert record.finished_at is not None
    assert abs(record.finished_at - time.time()) < CLOCK_SLACK
    assert await store.stats() == StoreStatistics(running=1, dead=1)


async def test_expired_lease_with_no_lost_lease_allowed_is_dead(store: Store) -> None:
    """With max_lost_leases=0, a task whose worker died once is dead (LeaseExpired) at a claim after its lease."""
    task_id = await enqueue_one(store, job(retry=3))
    await claim_one(store, "w1")
    with trio.fail_after(HANG):
        await trio.sleep(EXPIRE)
    assert await store.claim("w2", 10, lease=LEASE, max_lost_leases=0) == []
    record = await store.get(task_id)
    assert (record.status, record.error_type, record.attempts, record.lost_leases) == (
        TaskStatus.DEAD,
        "LeaseExpired",
        1,
        1,
    )


async def test_claim_buries_a_queued_task_whose_attempts_are_used_up(store: Store, backend: Backend) -> None:
    """A queued task whose attempts are used up (as an older version could leave it) is dead, not claimed."""
    spent, fresh = await store.enqueue([job(0, retry=1), job(1)])
    await backend.force(spent, attempts=2, error_type="SystemExit", error_message="3")
    [claimed] = await store.claim("w1", 1)
    assert claimed.id == fresh
    record = await store.get(spent)
    assert (record.status, record.error_type, record.attempts, record.worker_id) == (
        TaskStatus.DEAD,
        "AttemptsExhausted",
        2,
        None,
    )
    assert record.error_message == "all 2 of its 2 attempts were used before this claim (last error SystemExit: 3)"
    assert record.finished_at is not None
    assert await store.stats() == StoreStatistics(running=1, dead=1)


# -- the state machine, walked ---------------------------------------------------------
#
# _machine.py's table says which call moves a task from which status to which,
# under which checks. These tests hold every store to it: for each transition,
# a task in its source status with exactly its checks holding, and with each
# of them failing in turn, and the call then moves the task as step() says;
# and every call leaves alone or refuses a task in a status it does not move.

HOLDER: Final = "w1"
"""The worker that claims the tasks these tests arrange."""


def walks() -> list[Any]:
    """(call, source, facts) for each transition: its checks all holding, then each failing; each pair once."""
    cases: dict[tuple[Call, TaskStatus, frozenset[Check]], dict[Check, bool]] = {}
    for move in TRANSITIONS:
        relevant = {check for other in transitions(move.call) if other.source is move.source for check in other.checks}
        held = {check: check in move.checks for check in sorted(relevant, key=list(Check).index)}
        for facts in [held, *({**held, check: False} for check in move.checks)]:
            cases.setdefault((move.call, move.source, frozenset(c for c, holds in facts.items() if holds)), facts)
    return [
        pytest.param(
            call, source, facts, id=f"{call}-{source}-{'+'.join(c.name.lower() for c in facts if facts[c]) or 'none'}"
        )
        for (call, source, _), facts in cases.items()
    ]


async def arrange(store: Store, backend: Backend, status: TaskStatus, facts: dict[Check, bool]) -> TaskRecord:
    """A task in ``status`` with its checks as ``facts`` says (DUE holds unless it says not), reached by calls.

    Only what no call can make is forced: a queued task with no attempt left,
    and an expired lease (rather than waiting for one).
    """
    used = facts.get(Check.ATTEMPTS_USED, False)
    due = facts.get(Check.DUE, True)
    task_id = await enqueue_one(store, job(retry=0 if used else 1), run_at=None if due else time.time() + 3600)
    if status is TaskStatus.QUEUED:
        if used:
            await backend.force(task_id, attempts=1)
        return await store.get(task_id)
    # LIFO: the newest task, this one, whatever the tasks arranged before it.
    assert (await claim_one(store, HOLDER, order=Order.LIFO)).id == task_id
    if facts.get(Check.LEASE_EXPIRED, False):
        await backend.force(task_id, heartbeat_at=time.time() - 3600)
    if status is TaskStatus.SUCCEEDED:
        await store.complete(task_id, "done")
    elif status is TaskStatus.FAILED:
        await store.fail(task_id, ValueError("arranged"))
    elif status is TaskStatus.DEAD:
        await store.fail(task_id, ValueError("arranged"), dead=True)
    elif status is TaskStatus.CANCELLED:
        await store.cancel(task_id)
    return await store.get(task_id)


async def make(store: Store, call: Call, task: TaskRecord, facts: dict[Check, bool]) -> Any:
    """Make ``call`` on ``task`` with its checks as ``facts`` says; return what it returns, or the conflict it raises.

    HELD is the task's own worker (or no worker_id, for a task no worker held) calling, or another.
    """
    worker_id = task.worker_id if facts.get(Check.HELD, True) else "w2"
    try:
        if call is Call.CLAIM:
            max_lost_leases = 0 if facts.get(Check.LEASES_USED, False) else 3
            return [record.id for record in await store.claim("w2", 1, max_lost_leases=max_lost_leases)]
        if call is Call.HEARTBEAT:
            return await store.heartbeat([task.id], worker_id=worker_id)
        if call is Call.RELEASE:
            return await store.release([task.id], worker_id=worker_id)
        if call is Call.COMPLETE:
            return await store.complete(task.id, "done", worker_id=worker_id)
        if call is Call.CANCEL:
            return await store.cancel(task.id, worker_id=worker_id)
        retry_at = time.time() if facts.get(Check.RETRY, False) else None
        dead = facts.get(Check.DEAD, False)
        return await store.fail(task.id, ValueError("boom"), retry_at, worker_id=worker_id, dead=dead)
    except TaskConflictError as conflict:
        return conflict


def assert_untouched(call: Call, task: TaskRecord, after: TaskRecord, outcome: Any) -> None:
    """The call did not move the task: a refusing call raised a conflict naming its status, the others skipped it."""
    assert after == task
    if call in REFUSED_AS:
        assert isinstance(outcome, TaskConflictError)
        assert (outcome.task_id, outcome.status, outcome.action) == (task.id, task.status, REFUSED_AS[call])
        assert str(outcome) == f"task {task.id} cannot be {REFUSED_AS[call]}: it is {task.status}"
    else:
        assert outcome in ([], None)


@pytest.mark.parametrize(("call", "source", "facts"), walks())
async def test_each_call_moves_a_task_as_the_state_machine_says(
    store: Store, backend: Backend, call: Call, source: TaskStatus, facts: dict[Check, bool]
) -> None:
    """Whichever checks hold, a call makes the transition step() finds, with its counts and stamps, or none."""
    task = await arrange(store, backend, source, facts)
    outcome = await make(store, call, task, facts)
    after = await store.get(task.id)
    move = step(call, source, facts)
    if move is None:
        assert_untouched(call, task, after, outcome)
        return
    assert not isinstance(outcome, TaskConflictError)
    assert after.status is move.target
    assert (after.attempts, after.lost_leases) == (task.attempts + move.attempts, task.lost_leases + move.lost_leases)
    assert (after.finished_at is not None, after.heartbeat_at is not None) == (
        move.target.final,
        move.target is TaskStatus.RUNNING,
    )
    if call is Call.CLAIM:
        taken = move.target is TaskStatus.RUNNING
        assert outcome == ([task.id] if taken else [])
        assert after.worker_id == ("w2" if taken else task.worker_id)
        assert after.error_type == (move.error_type or task.error_type)
    elif call is Call.HEARTBEAT:
        assert outcome == [task.id]
    elif call is Call.FAIL:
        assert (after.error_type, after.error_message) == ("ValueError", "boom")
    elif call is Call.COMPLETE:
        assert after.result == "done"


@pytest.mark.parametrize("call", list(Call))
async def test_a_call_leaves_or_refuses_a_task_in_a_status_it_does_not_move(
    store: Store, backend: Backend, call: Call
) -> None:
    """From a status none of its transitions leaves, a call changes nothing: complete, fail and cancel refuse."""
    others = [status for status in TaskStatus if status not in sources(call)]
    assert others
    for status in others:
        task = await arrange(store, backend, status, {})
        assert task.status is status
        outcome = await make(store, call, task, {})
        assert_untouched(call, task, await store.get(task.id), outcome)


# -- reading ----------------------------------------------------------------------------


async def test_get_unknown_is_not_found(store: Store) -> None:
    """get() of an id the store never gave is TaskNotFoundError, which is also a LookupError."""
    with pytest.raises(TaskNotFoundError) as caught:
        await store.get(UNKNOWN_ID)
    assert caught.value.task_id == UNKNOWN_ID
    assert isinstance(caught.value, LookupError)


async def test_wait_returns_once_final(store: Store) -> None:
    """wait() returns the final record once another task completes it, and at once for a final task."""
    task_id = await enqueue_one(store)
    await claim_one(store, "w1")

    async def complete_later() -> None:
        await trio.sleep(0.2)
        await store.complete(task_id, "done", worker_id="w1")

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(complete_later)
        with trio.fail_after(HANG):
            record = await store.wait(task_id, poll=0.05)
        elapsed = trio.current_time() - start
    assert (record.status, record.result) == (TaskStatus.SUCCEEDED, "done")
    assert elapsed >= 0.2 - EPSILON
    with trio.fail_after(1.0):
        assert await store.wait(task_id, poll=5.0) == record


async def test_stats_counts_each_status(store: Store) -> None:
    """stats() counts the tasks in each status, and total counts them all."""
    assert await store.stats() == StoreStatistics()
    running, succeeded, failed, dead = await store.enqueue([job(0), job(1), job(2, retry=1), job(3)])
    await store.claim("w1", 4)
    await store.complete(succeeded, None)
    await store.fail(failed, ValueError("boom"))
    await store.fail(dead, ValueError("boom"), dead=True)
    _queued, cancelled = await store.enqueue([job(4), job(5)])
    await store.cancel(cancelled)
    stats = await store.stats()
    assert stats == StoreStatistics(queued=1, running=1, succeeded=1, failed=1, cancelled=1, dead=1)
    assert stats.total == 6
    assert (await store.get(running)).status is TaskStatus.RUNNING


async def test_wait_for_work_times_out(store: Store) -> None:
    """With nothing happening, wait_for_work() returns after its timeout, not before."""
    start = trio.current_time()
    with trio.fail_after(HANG):
        await store.wait_for_work(0.2)
    assert trio.current_time() - start >= 0.2 - EPSILON


async def test_wait_for_work_wakes_on_enqueue(store: Store, backend: Backend) -> None:
    """A store that can notify returns from wait_for_work() when a task is enqueued; SQLite polls by its timeout."""
    timeout = 1.0

    async def enqueue_later() -> None:
        await trio.sleep(0.2)
        await store.enqueue([job()])

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(enqueue_later)
        with trio.fail_after(HANG):
            await store.wait_for_work(timeout)
        elapsed = trio.current_time() - start
    if backend.notifies:
        assert 0.2 - EPSILON <= elapsed < timeout - 0.2
    else:
        assert elapsed <= timeout + EPSILON


# -- an operator's calls: AdminStore ------------------------------------------------------


async def one_of_each(store: Store) -> dict[TaskStatus, int]:
    """A task in each status; their ids increase in the order running, succeeded, failed, dead, queued, cancelled."""
    running, succeeded, failed, dead = await store.enqueue([job(0), job(1), job(2, retry=1), job(3)])
    await store.claim("w1", 4)
    await store.complete(succeeded, None)
    await store.fail(failed, ValueError("boom"))
    await store.fail(dead, ValueError("boom"), dead=True)
    queued, cancelled = await store.enqueue([job(4), job(5)])
    await store.cancel(cancelled)
    tasks = {
        TaskStatus.RUNNING: running,
        TaskStatus.SUCCEEDED: succeeded,
        TaskStatus.FAILED: failed,
        TaskStatus.DEAD: dead,
        TaskStatus.QUEUED: queued,
        TaskStatus.CANCELLED: cancelled,
    }
    assert await statuses(store, list(tasks.values())) == list(tasks)
    return tasks


def admin(store: Store) -> AdminStore:
    assert isinstance(store, AdminStore)
    return store


def test_a_store_without_the_operators_calls_is_still_a_store() -> None:
    """AdminStore and SQLStore are protocols apart from Store: a store lacking their calls is a Store all the same."""
    calls = [name for name in dir(Store) if not name.startswith("_")]
    minimal = type("MinimalStore", (), {name: getattr(MemoryStore, name) for name in calls})()
    assert isinstance(minimal, Store)
    assert not isinstance(minimal, AdminStore)
    assert not isinstance(minimal, SQLStore)


async def test_every_store_is_an_admin_store(store: Store, backend: Backend) -> None:
    """Every store here is an AdminStore; the SQL ones are SQLStores too, and MemoryStore, which has no SQL, is not."""
    assert isinstance(store, AdminStore)
    assert isinstance(store, SQLStore) is (backend.kind != "memory")
    assert not hasattr(MemoryStore, "schema_sql")


async def test_list_tasks_returns_the_newest_first_up_to_limit(store: Store) -> None:
    """list_tasks() returns the records get() returns, highest id first, 100 of them unless ``limit`` says otherwise."""
    assert await admin(store).list_tasks() == []
    ids = await store.enqueue([job(number) for number in range(105)])
    await claim_one(store)  # the oldest task changes, and keeps its place
    newest_first = ids[::-1]
    listed = await admin(store).list_tasks()
    assert [record.id for record in listed] == newest_first[:100]
    assert listed[:2] == [await store.get(ids[-1]), await store.get(ids[-2])]
    assert [record.id for record in await admin(store).list_tasks(limit=3)] == newest_first[:3]
    everything = await admin(store).list_tasks(limit=1000)
    assert [record.id for record in everything] == newest_first
    assert everything[-1] == await store.get(ids[0])
    assert everything[-1].status is TaskStatus.RUNNING


async def test_list_tasks_filters_by_status(store: Store) -> None:
    """list_tasks(status=...) returns only the tasks in that status, newest first; the status's value works alike."""
    tasks = await one_of_each(store)
    another = await enqueue_one(store)
    await store.cancel(another)
    for status, task_id in tasks.items():
        expected = [another, task_id] if status is TaskStatus.CANCELLED else [task_id]
        assert [record.id for record in await admin(store).list_tasks(status=status)] == expected
        assert await admin(store).list_tasks(status=status.value) == await admin(store).list_tasks(status=status)
    assert await admin(store).list_tasks(status=TaskStatus.CANCELLED, limit=1) == [await store.get(another)]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        pytest.param({"limit": 0}, ValueError, "`limit` must be at least 1, got 0", id="limit-zero"),
        pytest.param({"limit": -5}, ValueError, "`limit` must be at least 1, got -5", id="limit-negative"),
        pytest.param({"limit": 2**31}, ValueError, "`limit` must be at most", id="limit-huge"),
        pytest.param({"limit": 1.5}, TypeError, "`limit` must be an int, not float", id="limit-float"),
        pytest.param({"limit": True}, TypeError, "`limit` must be an int, not bool", id="limit-bool"),
        pytest.param({"limit": None}, TypeError, "`limit` must be an int, not NoneType", id="limit-none"),
        pytest.param({"status": "finished"}, ValueError, "`status` must be one of", id="status-unknown"),
        pytest.param({"status": 3}, TypeError, "`status` must be a TaskStatus, its value, or None", id="status-int"),
    ],
)
async def test_list_tasks_refuses_bad_arguments(
    store: Store, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    """A bad list_tasks() argument is a TypeError or ValueError naming it."""
    await enqueue_one(store)
    with pytest.raises(error, match=message):
        await admin(store).list_tasks(**arguments)


async def test_retry_requeues_failed_dead_and_cancelled_tasks_afresh(store: Store) -> None:
    """retry() queues a failed, a dead and a cancelled task to run now, with nothing left from their previous run.

    Their job, retry, priority and creation stay; a worker then claims each as
    its first attempt, and can complete it.
    """
    long_ago = time.time() - 3600
    tasks = [job(0, retry=1), job(1, retry=2), job(2)]
    failed, dead, cancelled = await store.enqueue(tasks, priority=7, run_at=long_ago)
    await store.claim("w1", 3)
    await store.fail(failed, ValueError("boom"), worker_id="w1")
    await store.cancel(cancelled, worker_id="w1")
    with trio.fail_after(HANG):
        await trio.sleep(EXPIRE)
    # w1 died holding `dead`: at w2's claim it lost its lease once too often.
    assert await store.claim("w2", 10, lease=LEASE, max_lost_leases=0) == []
    before = {task_id: await store.get(task_id) for task_id in (failed, dead, cancelled)}
    assert [record.status for record in before.values()] == [TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED]
    assert (before[dead].error_type, before[dead].lost_leases, before[dead].worker_id) == ("LeaseExpired", 1, "w1")
    assert {record.run_at for record in before.values()} == {long_ago}

    start = time.time()
    assert await admin(store).retry([cancelled, failed, dead], lease=LEASE) == [cancelled, failed, dead]
    end = time.time()
    for task_id, old in before.items():
        record = await store.get(task_id)
        assert start - CLOCK_SLACK <= record.run_at <= end + CLOCK_SLACK
        assert record == attrs.evolve(
            old,
            status=TaskStatus.QUEUED,
            attempts=0,
            lost_leases=0,
            run_at=record.run_at,
            started_at=None,
            finished_at=None,
            worker_id=None,
            heartbeat_at=None,
            result=None,
            error_type=None,
            error_message=None,
        )
    claimed = await store.claim("w3", 10)
    assert [(record.id, record.attempts, record.lost_leases, record.worker_id) for record in claimed] == [
        (failed, 1, 0, "w3"),
        (dead, 1, 0, "w3"),
        (cancelled, 1, 0, "w3"),
    ]
    assert [(record.retry, record.priority, record.job) for record in claimed] == [
        (1, 7, tasks[0].to_dict()),
        (2, 7, tasks[1].to_dict()),
        (0, 7, tasks[2].to_dict()),
    ]
    for record in claimed:
        await store.complete(record.id, record.id, worker_id="w3")
    assert [(await store.get(task_id)).result for task_id in (failed, dead, cancelled)] == [failed, dead, cancelled]


async def test_a_retried_task_has_all_its_attempts_again(store: Store) -> None:
    """A task dead after its last attempt, once retried, has retry + 1 attempts again: it runs twice more, then dies."""
    task_id = await enqueue_one(store, job(retry=1))
    for _ in range(2):
        for attempt in (1, 2):
            claimed = await claim_one(store)
            assert (claimed.id, claimed.attempts) == (task_id, attempt)
            await store.fail(task_id, ValueError(f"attempt {attempt}"), time.time() - 1.0, worker_id="w1")
        record = await store.get(task_id)
        assert (record.status, record.attempts, record.error_message) == (TaskStatus.DEAD, 2, "attempt 2")
        assert await admin(store).retry([task_id]) == [task_id]
    assert await claim_one(store) == attrs.evolve(await store.get(task_id), attempts=1)


async def test_a_task_cancelled_under_its_worker_is_retried_only_a_lease_later(store: Store, backend: Backend) -> None:
    """Cancelled while a worker runs it, a task may still be running there: retry() refuses it for a lease, not after.

    Retried at once, a second worker could claim and run it beside the first.
    A task cancelled before any claim has no worker to wait for.
    """
    running, never_claimed = await store.enqueue([job(0), job(1)])
    assert (await claim_one(store)).id == running
    await store.cancel(running)  # by an operator: the worker hears of it later
    await store.cancel(never_claimed)
    with pytest.raises(TaskConflictError) as refused:
        await admin(store).retry([never_claimed, running], lease=60)
    assert str(refused.value) == (
        f"task {running} cannot be retried: it is cancelled, and its worker may still be running it: "
        "retry it once the lease (60s) has passed since"
    )
    assert (refused.value.status, refused.value.reason.startswith("its worker may")) == (TaskStatus.CANCELLED, True)
    assert await statuses(store, [running, never_claimed]) == [TaskStatus.CANCELLED, TaskStatus.CANCELLED]
    assert await admin(store).retry([never_claimed], lease=60) == [never_claimed]
    # A lease later, its worker has let go: it heartbeats every third of a lease or more often.
    await backend.force(running, finished_at=time.time() - 61)
    assert await admin(store).retry([running], lease=60) == [running]
    with pytest.raises(ValueError, match="`lease` must be a positive number of seconds, got 0"):
        await admin(store).retry([running], lease=0)


@pytest.mark.parametrize("how", ["retry", "retry_dead"])
async def test_requeueing_wakes_waiting_workers(store: Store, backend: Backend, how: str) -> None:
    """A store that can notify returns from wait_for_work() when a dead task is requeued, as when one is enqueued."""
    timeout = 1.0
    task_id = await enqueue_one(store)
    await claim_one(store)
    await store.fail(task_id, ValueError("boom"), dead=True)

    async def requeue_later() -> None:
        await trio.sleep(0.2)
        requeued = await (admin(store).retry([task_id]) if how == "retry" else admin(store).retry_dead())
        assert requeued == [task_id]

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(requeue_later)
        with trio.fail_after(HANG):
            await store.wait_for_work(timeout)
        elapsed = trio.current_time() - start
    if backend.notifies:
        assert 0.2 - EPSILON <= elapsed < timeout - 0.2
    else:
        assert elapsed <= timeout + EPSILON
    assert (await claim_one(store)).id == task_id


@pytest.mark.parametrize("status", [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED])
async def test_retry_refuses_a_task_not_failed_and_changes_nothing(store: Store, status: TaskStatus) -> None:
    """retry() of a queued, running or succeeded task is a TaskConflictError naming it; the others given stay final."""
    tasks = await one_of_each(store)
    before = await admin(store).list_tasks()
    with pytest.raises(TaskConflictError) as caught:
        await admin(store).retry([tasks[TaskStatus.DEAD], tasks[status], tasks[TaskStatus.FAILED]])
    assert (caught.value.task_id, caught.value.status, caught.value.action) == (tasks[status], status, "retried")
    assert str(caught.value) == f"task {tasks[status]} cannot be retried: it is {status.value}"
    assert await admin(store).list_tasks() == before


@pytest.mark.parametrize("unknown", [UNKNOWN_ID, 0, -1, 2**63, -(2**63) - 1, 2**80])
async def test_retry_of_an_unknown_id_is_not_found_and_changes_nothing(store: Store, unknown: int) -> None:
    """retry() of an id no task has (even one too large for a database) is TaskNotFoundError; the others stay final."""
    tasks = await one_of_each(store)
    before = await admin(store).list_tasks()
    with pytest.raises(TaskNotFoundError) as caught:
        await admin(store).retry([tasks[TaskStatus.DEAD], unknown, tasks[TaskStatus.CANCELLED]])
    assert caught.value.task_id == unknown
    assert await admin(store).list_tasks() == before


async def test_retry_names_the_first_id_refused_in_the_order_given(store: Store) -> None:
    """Of several ids retry() refuses, the error names the first given."""
    tasks = await one_of_each(store)
    failed, running = tasks[TaskStatus.FAILED], tasks[TaskStatus.RUNNING]
    with pytest.raises(TaskNotFoundError):
        await admin(store).retry([failed, UNKNOWN_ID, running])
    with pytest.raises(TaskConflictError) as caught:
        await admin(store).retry([failed, running, UNKNOWN_ID])
    assert caught.value.task_id == running
    assert (await store.get(failed)).status is TaskStatus.FAILED


async def test_retry_requeues_an_id_given_twice_once_and_nothing_for_no_ids(store: Store) -> None:
    """retry() returns each id once, where it was first given; retry([]) requeues nothing."""
    tasks = await one_of_each(store)
    before = await admin(store).list_tasks()
    assert await admin(store).retry([]) == []
    assert await admin(store).list_tasks() == before
    cancelled, failed = tasks[TaskStatus.CANCELLED], tasks[TaskStatus.FAILED]
    assert await admin(store).retry([cancelled, failed, cancelled]) == [cancelled, failed]
    assert await statuses(store, [cancelled, failed]) == [TaskStatus.QUEUED] * 2


@pytest.mark.parametrize(
    ("task_ids", "message"),
    [
        pytest.param(5, "`task_ids` must be a sequence of ints, not int", id="int"),
        pytest.param("12", "`task_ids` must be a sequence of ints, not str", id="str"),
        pytest.param({1, 2}, "`task_ids` must be a sequence of ints, not set", id="set"),
        pytest.param([1, "2"], r"`task_ids\[1\]` must be an int, not str", id="str-id"),
        pytest.param([True], r"`task_ids\[0\]` must be an int, not bool", id="bool-id"),
        pytest.param([1.0], r"`task_ids\[0\]` must be an int, not float", id="float-id"),
    ],
)
async def test_retry_refuses_ids_that_are_not_ints(store: Store, task_ids: Any, message: str) -> None:
    """retry() of something other than a sequence of ints is a TypeError naming it, and changes nothing."""
    await one_of_each(store)
    before = await admin(store).list_tasks()
    with pytest.raises(TypeError, match=message):
        await admin(store).retry(task_ids)
    assert await admin(store).list_tasks() == before


async def test_retry_dead_requeues_every_dead_task_and_no_other(store: Store, backend: Backend) -> None:
    """retry_dead() requeues afresh each dead task, however it died, returns their ids ascending, and no other task."""
    spent = await enqueue_one(store, job(retry=0))
    await backend.force(spent, attempts=1)
    assert await store.claim("w0", 1) == []  # buried: its attempts were used up
    tasks = await one_of_each(store)
    dead = [spent, tasks[TaskStatus.DEAD]]
    assert await statuses(store, dead) == [TaskStatus.DEAD] * 2
    others = [record for record in await admin(store).list_tasks() if record.id not in dead]
    assert len(others) == 5

    assert await admin(store).retry_dead() == dead
    for task_id in dead:
        record = await store.get(task_id)
        assert (record.status, record.attempts, record.error_type, record.finished_at) == (
            TaskStatus.QUEUED,
            0,
            None,
            None,
        )
    assert [record for record in await admin(store).list_tasks() if record.id not in dead] == others
    assert await admin(store).retry_dead() == []


async def test_oldest_queued_is_the_earliest_run_at_of_the_tasks_due(store: Store, backend: Backend) -> None:
    """oldest_queued() is the earliest run_at of the queued tasks due to run; a task not yet due does not count."""
    assert await admin(store).oldest_queued() is None
    now = time.time()
    later = await enqueue_one(store, run_at=now + 3600)
    await backend.force(later, created_at=now - 7200)  # the oldest of all, but not due
    assert await admin(store).oldest_queued() is None
    first, second = await store.enqueue([job(1), job(2)])
    # Made long ago, but due only since their run_at: as a retried or deferred task is.
    await backend.force(first, created_at=now - 9000, run_at=now - 600)
    await backend.force(second, created_at=now - 9500, run_at=now - 300)
    assert await admin(store).oldest_queued() == now - 600
    assert (await claim_one(store)).id == first  # running: no longer queued
    assert await admin(store).oldest_queued() == now - 300
    await store.cancel(second)
    assert await admin(store).oldest_queued() is None


# The SQL stores only: MemoryStore has no read-only mode.
@pytest.mark.parametrize("store", [kind for kind in STORE_KINDS if kind.values != ("memory",)], indirect=True)
async def test_a_read_only_store_lists_but_refuses_to_requeue(store: Store, backend: Backend) -> None:
    """A store opened read-only lists tasks and finds the oldest queued; retry() and retry_dead() raise StoreError."""
    tasks = await one_of_each(store)
    reader = admin(backend.make(None, read_only=True))
    await reader.init()
    before = await admin(store).list_tasks()
    assert await reader.list_tasks() == before
    assert await reader.list_tasks(status="dead") == [await store.get(tasks[TaskStatus.DEAD])]
    oldest = await reader.oldest_queued()
    assert oldest is not None
    assert oldest == (await store.get(tasks[TaskStatus.QUEUED])).run_at
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: reader.retry([tasks[TaskStatus.DEAD]]),
        lambda: reader.retry([UNKNOWN_ID]),
        reader.retry_dead,
    ]
    for call in calls:
        with trio.fail_after(HANG), pytest.raises(StoreError, match=r"read-?only"):
            await call()
    assert await admin(store).list_tasks() == before


async def finished_ago(store: Store, backend: Backend, ages: list[float]) -> list[int]:
    """Tasks cancelled as if ``ages[i]`` seconds ago, by the store's clock (give or take the test's run)."""
    ids = await store.enqueue([job(number) for number in range(len(ages))])
    now = time.time() if not isinstance(store, MemoryStore) else store.clock()
    for task_id, age in zip(ids, ages, strict=True):
        await store.cancel(task_id)
        await backend.force(task_id, finished_at=now - age)
    return ids


async def test_prune_deletes_only_final_tasks_finished_before_the_bound(store: Store, backend: Backend) -> None:
    """prune() deletes the final tasks that finished more than ``older_than`` ago, of every final status, and none
    queued or running, even with an old ``finished_at``; get() and wait() of a deleted task are TaskNotFoundError."""
    tasks = await one_of_each(store)
    now = time.time() if not isinstance(store, MemoryStore) else store.clock()
    ages = {
        TaskStatus.SUCCEEDED: 1000,
        TaskStatus.FAILED: 3000,
        TaskStatus.DEAD: 2000,
        TaskStatus.CANCELLED: 100,
        # As no store writes them, but a program might: their status alone keeps them.
        TaskStatus.QUEUED: 9000,
        TaskStatus.RUNNING: 9000,
    }
    for status, age in ages.items():
        await backend.force(tasks[status], finished_at=now - age)
    assert await admin(store).prune(older_than=1500) == 2
    pruned = [tasks[TaskStatus.FAILED], tasks[TaskStatus.DEAD]]
    for task_id in pruned:
        message = rf"^no task with id {task_id} \(it never existed, or was pruned\)$"
        with pytest.raises(TaskNotFoundError, match=message):
            await store.get(task_id)
        with trio.fail_after(HANG), pytest.raises(TaskNotFoundError, match=message):
            await store.wait(task_id, poll=0.01)
    assert await admin(store).prune(older_than=1500) == 0
    assert await admin(store).prune(older_than=datetime.timedelta(seconds=500)) == 1
    assert await present(store, list(tasks.values())) == [
        tasks[status] for status in (TaskStatus.RUNNING, TaskStatus.QUEUED, TaskStatus.CANCELLED)
    ]
    assert await store.stats() == StoreStatistics(queued=1, running=1, cancelled=1)
    assert await admin(store).prune(older_than=0) == 1
    assert await store.stats() == StoreStatistics(queued=1, running=1)


async def test_prune_deletes_at_most_limit_the_oldest_first(store: Store, backend: Backend) -> None:
    """prune(limit=n) deletes the n tasks that finished first, whatever their ids; called again, the next n."""
    # Oldest first: ids[2], ids[4], ids[0], ids[3], ids[1]; ids[5] is too recent.
    ids = await finished_ago(store, backend, [300, 100, 500, 200, 400, 10])
    assert await admin(store).prune(older_than=50, limit=2) == 2
    assert await present(store, ids) == [ids[0], ids[1], ids[3], ids[5]]
    assert await admin(store).prune(older_than=50, limit=2) == 2
    assert await present(store, ids) == [ids[1], ids[5]]
    assert await admin(store).prune(older_than=50, limit=2) == 1
    assert await admin(store).prune(older_than=50, limit=2) == 0
    assert await present(store, ids) == [ids[5]]


async def test_prune_deletes_1000_tasks_by_default(store: Store, backend: Backend) -> None:
    """Without a ``limit``, prune() deletes at most 1000 tasks in a call."""
    ids = await store.enqueue([job(number) for number in range(1003)])
    for task_id in ids:
        await store.cancel(task_id)
    await trio.sleep(0.01)  # finished before the call's "now", on any clock
    assert await admin(store).prune(older_than=0) == 1000
    assert await admin(store).prune(older_than=0) == 3
    assert await store.stats() == StoreStatistics()


async def test_prunes_at_once_delete_each_task_once(store: Store, backend: Backend) -> None:
    """Four prune() calls at once share 30 old tasks: together they delete each once, and report 30."""
    await finished_ago(store, backend, [100.0 + age for age in range(30)])
    counts: list[int] = []

    async def prune() -> None:
        while deleted := await admin(store).prune(older_than=50, limit=4):
            counts.append(deleted)

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(prune)
    assert sum(counts) == 30
    assert max(counts) <= 4
    assert await store.stats() == StoreStatistics()


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        pytest.param({"older_than": -1}, ValueError, "`older_than` must be non-negative and finite", id="negative"),
        pytest.param({"older_than": math.inf}, ValueError, "`older_than` must be non-negative and finite", id="inf"),
        pytest.param({"older_than": math.nan}, ValueError, "`older_than` must be non-negative and finite", id="nan"),
        pytest.param(
            {"older_than": "7d"}, TypeError, "`older_than` must be a number of seconds or a timedelta", id="str"
        ),
        pytest.param({"older_than": True}, TypeError, "`older_than` must be a number of seconds", id="bool"),
        pytest.param({"older_than": None}, TypeError, "`older_than` must be a number of seconds", id="none"),
        pytest.param({"older_than": 1, "limit": 0}, ValueError, "`limit` must be at least 1, got 0", id="limit-0"),
        pytest.param({"older_than": 1, "limit": 2**31}, ValueError, "`limit` must be at most", id="limit-huge"),
        pytest.param({"older_than": 1, "limit": 1.5}, TypeError, "`limit` must be an int, not float", id="limit-float"),
        pytest.param({"older_than": 1, "limit": None}, TypeError, "`limit` must be an int, not NoneType", id="l-none"),
    ],
)
async def test_prune_refuses_bad_arguments(
    store: Store, backend: Backend, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    """A bad prune() argument is a TypeError or ValueError naming it, and deletes nothing."""
    [task_id] = await finished_ago(store, backend, [9000])
    with pytest.raises(error, match=message):
        await admin(store).prune(**arguments)
    assert await present(store, [task_id]) == [task_id]


# The SQL stores only: MemoryStore has no read-only mode.
@pytest.mark.parametrize("store", [kind for kind in STORE_KINDS if kind.values != ("memory",)], indirect=True)
async def test_a_read_only_store_refuses_to_prune(store: Store, backend: Backend) -> None:
    """A store opened read-only refuses prune() with the StoreError its other writes raise, and deletes nothing."""
    [task_id] = await finished_ago(store, backend, [9000])
    reader = admin(backend.make(None, read_only=True))
    await reader.init()
    with trio.fail_after(HANG), pytest.raises(StoreError, match=r"read-?only"):
        await reader.prune(older_than=0)
    assert await present(store, [task_id]) == [task_id]


# -- concurrency and a random walk ------------------------------------------------------


async def test_concurrent_claimers_take_each_task_once(store: Store) -> None:
    """Two workers claiming from one store until it is empty take each of 100 tasks exactly once."""
    ids = await store.enqueue([job(number) for number in range(100)])
    claimed: list[int] = []

    async def claimer(worker_id: str) -> None:
        while batch := await store.claim(worker_id, 5):
            claimed.extend(record.id for record in batch)

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(claimer, "w1")
            nursery.start_soon(claimer, "w2")
    counts = collections.Counter(claimed)
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}
    assert await store.stats() == StoreStatistics(running=100)


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_random_operations_lose_no_task(store: Store, seed: int) -> None:
    """After 50 random operations, stats() counts every task enqueued, in the statuses get() reports."""
    rng = random.Random(seed)
    ids: list[int] = []
    workers = ["w1", "w2", None]
    for _ in range(50):
        operation = rng.choice(["enqueue", "claim", "complete", "fail", "cancel", "release", "heartbeat"])
        if operation == "enqueue" or not ids:
            batch = [job(len(ids) + n, retry=rng.randint(0, 2)) for n in range(rng.randint(1, 3))]
            ids.extend(await store.enqueue(batch, priority=rng.randint(-1, 1)))
            continue
        task_id = rng.choice(ids)
        worker_id = rng.choice(workers)
        with contextlib.suppress(TaskConflictError):
            if operation == "claim":
                await store.claim(rng.choice(["w1", "w2"]), rng.randint(1, 3), order=rng.choice(list(Order)))
            elif operation == "complete":
                await store.complete(task_id, {"seed": seed}, worker_id=worker_id)
            elif operation == "fail":
                retry_at = rng.choice([None, time.time() - 1.0])
                await store.fail(task_id, ValueError("boom"), retry_at, worker_id=worker_id, dead=rng.random() < 0.2)
            elif operation == "cancel":
                await store.cancel(task_id, worker_id=worker_id)
            elif operation == "release":
                await store.release([task_id], worker_id=worker_id)
            else:
                await store.heartbeat([task_id], worker_id=worker_id)
    stats = await store.stats()
    assert stats.total == len(ids)
    counts = collections.Counter(await statuses(store, ids))
    assert stats == StoreStatistics(**{status.value: counts[status] for status in TaskStatus})


# -- progress reports ----------------------------------------------------------------------


def reporting(store: Store) -> ProgressStore:
    assert isinstance(store, ProgressStore)
    return store


async def progress_of(store: Store, task_ids: list[int]) -> list[tuple[float | None, float | None]]:
    records = [await store.get(task_id) for task_id in task_ids]
    return [(record.progress_done, record.progress_total) for record in records]


async def test_record_progress_stores_the_reports_of_running_tasks(store: Store) -> None:
    """Each running task held by the worker keeps its latest report, as floats; get() and list_tasks() show it."""
    first, second, third = await store.enqueue([job(1), job(2), job(3)])
    await store.claim("w1", 3)
    assert await progress_of(store, [first, second, third]) == [(None, None)] * 3
    assert (await store.get(first)).progress is None
    await reporting(store).record_progress({first: Progress(3, 12), second: Progress(0.25)}, worker_id="w1")
    await reporting(store).record_progress({first: Progress(6, 12), third: Progress(1.5, 2.5)}, worker_id="w1")
    assert await progress_of(store, [first, second, third]) == [(6.0, 12.0), (0.25, None), (1.5, 2.5)]
    record = await store.get(first)
    assert (record.progress, record.progress.fraction if record.progress else None) == (Progress(6.0, 12.0), 0.5)
    assert [task.progress for task in await admin(store).list_tasks()] == [
        Progress(1.5, 2.5),
        Progress(0.25),
        Progress(6.0, 12.0),
    ]
    assert attrs.asdict(record)["progress_done"] == 6.0
    json.dumps(attrs.asdict(record, value_serializer=lambda _, __, value: getattr(value, "value", value)))


async def test_record_progress_ignores_tasks_the_worker_does_not_run(store: Store) -> None:
    """Queued, finished, unknown tasks and another worker's are left as they are, silently; no worker_id: any holder."""
    finished, others, own, queued = await store.enqueue([job(1), job(2), job(3), job(4)])
    assert (await claim_one(store, "w1")).id == finished
    await store.complete(finished, "done", worker_id="w1")
    assert (await claim_one(store, "w2")).id == others
    assert (await claim_one(store, "w1")).id == own
    reports = {task_id: Progress(1, 2) for task_id in (queued, finished, others, own, UNKNOWN_ID, 2**70)}
    await reporting(store).record_progress(reports, worker_id="w1")
    assert await progress_of(store, [finished, others, own, queued]) == [
        (None, None),
        (None, None),
        (1.0, 2.0),
        (None, None),
    ]
    await reporting(store).record_progress({others: Progress(4), own: Progress(5)})
    assert await progress_of(store, [finished, others, own, queued]) == [
        (None, None),
        (4.0, None),
        (5.0, None),
        (None, None),
    ]
    await reporting(store).record_progress({})
    assert await statuses(store, [finished, others, own, queued]) == [
        TaskStatus.SUCCEEDED,
        TaskStatus.RUNNING,
        TaskStatus.RUNNING,
        TaskStatus.QUEUED,
    ]


async def test_the_last_report_outlives_the_run_until_an_operator_retries(store: Store) -> None:
    """A report stays through a retry, a release, a completion and a death; an operator's retry() starts afresh."""
    retried, released, completed, failed = await store.enqueue([job(1, retry=1), job(2), job(3), job(4)])
    await store.claim("w1", 4)
    await reporting(store).record_progress(
        {task_id: Progress(task_id, 100) for task_id in (retried, released, completed, failed)}, worker_id="w1"
    )
    await store.fail(retried, ValueError("again"), time.time() + 3600, worker_id="w1")
    await store.release([released], worker_id="w1")
    await store.complete(completed, "done", worker_id="w1")
    await store.fail(failed, ValueError("boom"), worker_id="w1")
    assert await statuses(store, [retried, released, completed, failed]) == [
        TaskStatus.QUEUED,
        TaskStatus.QUEUED,
        TaskStatus.SUCCEEDED,
        TaskStatus.DEAD,
    ]
    kept = [(float(task_id), 100.0) for task_id in (retried, released, completed, failed)]
    assert await progress_of(store, [retried, released, completed, failed]) == kept
    assert (await claim_one(store, "w2")).progress == Progress(released, 100)  # the next attempt starts with it
    assert await admin(store).retry([failed]) == [failed]
    assert (await store.get(failed)).progress is None


@pytest.mark.parametrize(
    ("progress", "worker_id", "error", "message"),
    [
        ([(1, Progress(1))], None, TypeError, "`progress` must be a mapping of task ids to Progress values, not list"),
        ({"1": Progress(1)}, None, TypeError, "`progress` keys must be int task ids, not str"),
        ({True: Progress(1)}, None, TypeError, "`progress` keys must be int task ids, not bool"),
        ({1: (1, 2)}, None, TypeError, r"`progress\[1\]` must be a workerpoolxt.Progress, not tuple"),
        ({1: Progress(1)}, 7, TypeError, "`worker_id` must be a str or None, not int"),
        ({1: Progress(1)}, "w\x00", ValueError, "`worker_id` must not hold a NUL character"),
    ],
)
async def test_record_progress_refuses_what_is_not_a_report(
    store: Store, progress: Any, worker_id: Any, error: type[Exception], message: str
) -> None:
    """Reports not keyed by int ids, values that are not Progress, or a bad worker_id: refused, naming the parameter."""
    [task_id] = await store.enqueue([job()])
    await claim_one(store)
    with pytest.raises(error, match=message):
        await reporting(store).record_progress(progress, worker_id=worker_id)
    assert (await store.get(task_id)).progress is None


# The SQL stores only: MemoryStore has no read-only mode.
@pytest.mark.parametrize("store", [kind for kind in STORE_KINDS if kind.values != ("memory",)], indirect=True)
async def test_a_read_only_store_refuses_to_record_progress(store: Store, backend: Backend) -> None:
    """A store opened read-only refuses record_progress() with the StoreError its other writes raise."""
    task_id = await enqueue_one(store)
    await claim_one(store)
    reader = reporting(backend.make(None, read_only=True))
    await reader.init()
    with trio.fail_after(HANG), pytest.raises(StoreError, match=r"read-?only"):
        await reader.record_progress({task_id: Progress(1)})
    assert (await store.get(task_id)).progress is None


def test_a_store_without_record_progress_is_still_a_store() -> None:
    """ProgressStore is optional: a Store that lacks record_progress() is no ProgressStore; MemoryStore is one."""
    calls = [name for name in dir(Store) if not name.startswith("_")]
    minimal = type("MinimalStore", (), {name: getattr(MemoryStore, name) for name in calls})()
    assert isinstance(minimal, Store)
    assert not isinstance(minimal, ProgressStore)
    assert isinstance(MemoryStore(), ProgressStore)


# -- named queues, deduplication and locks ------------------------------------------------


def placed(number: int = 0, **placement: Any) -> Job[Any]:
    """A job of ``handler`` with a queue, dedup_key or lock."""
    return Job("handler", args={"number": number}, **placement)


async def test_enqueue_puts_each_task_in_its_job_queue_else_the_call_queue_else_default(store: Store) -> None:
    """A job's own queue wins over enqueue(queue=), which wins over "default"; the record keeps it."""
    [default] = await store.enqueue([job()])
    mail, reports = await store.enqueue([job(1), placed(2, queue="reports")], queue="mail")
    assert [(await store.get(task_id)).queue for task_id in (default, mail, reports)] == ["default", "mail", "reports"]
    assert (await store.get(reports)).job == {
        "task": "handler",
        "name": "handler",
        "args": {"number": 2},
        "retry": None,
        "timeout": None,
        "attempt_timeout": None,
        "backoff": None,
        "max_per_second": None,
    }


async def test_claim_takes_only_the_queues_named_in_one_order_across_them(store: Store) -> None:
    """claim(queues=[...]) takes those queues' tasks alone, oldest first across them all; None takes every queue."""
    ids = await store.enqueue([placed(n, queue=queue) for n, queue in enumerate(["a", "b", "c", "a", "b", "c"])])
    claimed = await store.claim("w1", 10, queues=["c", "a"])
    assert [record.id for record in claimed] == [ids[0], ids[2], ids[3], ids[5]]
    assert await store.claim("w2", 10, queues=["z"]) == []
    assert [record.id for record in await store.claim("w3", 10)] == [ids[1], ids[4]]


async def test_claim_for_some_queues_takes_back_only_their_expired_leases(store: Store) -> None:
    """A task whose worker died is taken over only by a worker of its own queue."""
    mail, reports = await store.enqueue([placed(1, queue="mail"), placed(2, queue="reports")])
    assert len(await store.claim("dead-worker", 2, lease=LEASE)) == 2
    await trio.sleep(EXPIRE)
    [taken] = await store.claim("w1", 10, lease=LEASE, queues=["mail"])
    assert (taken.id, taken.lost_leases, taken.worker_id) == (mail, 1, "w1")
    assert (await store.get(reports)).worker_id == "dead-worker"


@pytest.mark.parametrize(
    ("queues", "error", "message"),
    [
        ("mail", TypeError, "`queues` must be a sequence of queue names or None, not str"),
        ([], ValueError, "`queues` must name at least one queue, or be None for every queue"),
        (["mail", "no spaces"], ValueError, "`queues[]` must be 1 to 64 letters, digits or any of `_ . : -`"),
        ([7], TypeError, "`queues[]` must be a queue's name (a str), not int"),
    ],
)
async def test_claim_refuses_queues_that_are_not_names(
    store: Store, queues: Any, error: type[Exception], message: str
) -> None:
    """claim()'s queues must be a non-empty sequence of valid names: the error says which rule failed."""
    with pytest.raises(error, match=re.escape(message)):
        await store.claim("w1", 1, queues=queues)


async def test_enqueue_refuses_a_queue_that_is_not_a_name(store: Store) -> None:
    """enqueue(queue=) is checked as a job's queue is, and nothing is stored."""
    with pytest.raises(ValueError, match=re.escape("`queue` must be 1 to 64 letters")):
        await store.enqueue([job()], queue="a,b")
    assert await store.stats() == StoreStatistics()


async def test_list_tasks_and_queue_stats_break_down_by_queue(store: Store) -> None:
    """list_tasks(queue=) lists one queue's tasks; queue_stats() counts each queue's tasks by status."""
    assert isinstance(store, AdminStore)
    first, second, third = await store.enqueue([placed(1, queue="mail"), job(2), placed(3, queue="mail")])
    await claim_one(store, queues=["mail"])
    assert [record.id for record in await store.list_tasks(queue="mail")] == [third, first]
    assert [record.id for record in await store.list_tasks(queue="mail", status=TaskStatus.QUEUED)] == [third]
    assert [record.id for record in await store.list_tasks(queue="default")] == [second]
    assert await store.list_tasks(queue="nothing") == []
    assert await store.queue_stats() == {
        "default": StoreStatistics(queued=1),
        "mail": StoreStatistics(queued=1, running=1),
    }
    with pytest.raises(ValueError, match=re.escape("`queue` must be 1 to 64 letters")):
        await store.list_tasks(queue="")


async def test_dedup_key_gives_back_the_waiting_task_instead_of_a_new_one(store: Store) -> None:
    """While a task with a dedup_key waits for its first run, enqueueing the key again returns its id and stores
    nothing; within one batch too. Other keys, and jobs without one, are stored."""
    [first] = await store.enqueue([placed(1, dedup_key="user:42")])
    again, other, plain, same = await store.enqueue(
        [placed(2, dedup_key="user:42"), placed(3, dedup_key="user:7"), job(4), placed(5, dedup_key="user:7")]
    )
    assert (again, same) == (first, other)
    assert len({first, other, plain}) == 3
    assert await store.stats() == StoreStatistics(queued=3)
    assert (await store.get(first)).job["args"] == {"number": 1}  # the first job stays as it was
    assert (await store.get(first)).dedup_key == "user:42"


async def test_a_started_task_no_longer_holds_its_dedup_key(store: Store) -> None:
    """Once claimed, a task gives its key up: the key stores a new task, even when the first is queued again for a
    retry; and the new task then holds it."""
    [first] = await store.enqueue([placed(1, dedup_key="k", retry=1)])
    await claim_one(store)
    [second] = await store.enqueue([placed(2, dedup_key="k")])
    assert second != first
    await store.fail(first, ValueError("boom"), retry_at=time.time() + 60)
    record = await store.get(first)
    assert (record.status, record.dedup_key) == (TaskStatus.QUEUED, "k")
    assert await store.enqueue([placed(3, dedup_key="k")]) == [second]


async def test_an_operator_retry_gives_up_the_dedup_key(store: Store) -> None:
    """retry() begins a task afresh without its key, so a twin waiting with the key keeps it and nothing clashes."""
    assert isinstance(store, AdminStore)
    [first] = await store.enqueue([placed(1, dedup_key="k")])
    await claim_one(store)
    await store.fail(first, ValueError("boom"))
    [twin] = await store.enqueue([placed(2, dedup_key="k")])
    assert await store.retry([first]) == [first]
    assert (await store.get(first)).dedup_key is None
    assert await store.enqueue([placed(3, dedup_key="k")]) == [twin]


async def test_tasks_sharing_a_lock_run_one_at_a_time_in_the_order_enqueued(store: Store) -> None:
    """A claim takes one task of a lock, the oldest due, and none while one runs; other locks, and tasks without
    one, are claimed beside it. The next task of the lock is claimable once the first ends."""
    ids = await store.enqueue(
        [placed(0, lock="account:7"), placed(1, lock="account:7"), placed(2, lock="account:8"), job(3)]
    )
    claimed = await store.claim("w1", 10, order=Order.LIFO)
    assert sorted(record.id for record in claimed) == [ids[0], ids[2], ids[3]]
    assert await store.claim("w2", 10) == []
    await store.complete(ids[0], None)
    [next_one] = await store.claim("w2", 10)
    assert (next_one.id, next_one.lock) == (ids[1], "account:7")


async def test_a_lock_goes_by_enqueue_order_whatever_the_claim_order(store: Store) -> None:
    """Priority orders tasks across locks, but within a lock the oldest due task goes first."""
    low, high = (
        await store.enqueue([placed(0, lock="L")], priority=0),
        await store.enqueue([placed(1, lock="L")], priority=9),
    )
    [record] = await store.claim("w1", 10, order=Order.PRIORITY)
    assert record.id == low[0]
    assert await store.claim("w1", 10, order=Order.PRIORITY) == []
    assert (await store.get(high[0])).status is TaskStatus.QUEUED


async def test_a_task_deferred_for_later_does_not_hold_up_its_lock(store: Store) -> None:
    """Only due tasks wait their turn: a later one of the same lock runs first if it is due first."""
    [later] = await store.enqueue([placed(0, lock="L")], run_at=time.time() + 60)
    [now] = await store.enqueue([placed(1, lock="L")])
    assert (await claim_one(store)).id == now
    assert (await store.get(later)).status is TaskStatus.QUEUED


async def test_a_lock_stays_held_while_its_task_is_taken_over_after_a_lost_lease(store: Store) -> None:
    """A task whose worker died still holds its lock: another worker takes the task over, and no other task of the
    lock runs meanwhile."""
    first, second = await store.enqueue([placed(0, lock="L"), placed(1, lock="L")])
    await claim_one(store, "dead-worker", lease=LEASE)
    await trio.sleep(EXPIRE)
    [taken] = await store.claim("w1", 10, lease=LEASE)
    assert (taken.id, taken.lost_leases) == (first, 1)
    assert await store.claim("w2", 10, lease=LEASE) == []
    await store.complete(first, None, worker_id="w1")
    assert (await claim_one(store, "w2")).id == second


async def test_a_claim_that_buries_a_lock_s_next_task_takes_the_one_after(store: Store, backend: Backend) -> None:
    """A lock's oldest task whose attempts are used up is buried, and the same claim takes the lock's next task."""
    first, second = await store.enqueue([placed(0, lock="L"), placed(1, lock="L")])
    await backend.force(first, attempts=1)  # its one attempt used, as an older version could leave it
    [claimed] = await store.claim("w1", 10)
    assert claimed.id == second
    assert (await store.get(first)).status is TaskStatus.DEAD
