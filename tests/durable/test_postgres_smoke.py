"""Smoke tests for ``PostgresStore`` against a real server (tests/postgres_server.py chooses which).

Each test gets a schema of its own, dropped afterwards, and runs on the real
clock with every wait bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import pytest
import trio
from helpers import POSTGRES_DSN, POSTGRES_REASON, drop_schema, new_schema

from workerpoolxt import Job, Progress, Registry
from workerpoolxt.durable import Order, StoreError, StoreStatistics, TaskConflictError, TaskNotFoundError, TaskStatus

pytest.importorskip("psycopg", reason="PostgresStore needs psycopg: pip install workerpoolxt[postgres]")

from workerpoolxt.durable._postgres import PostgresConnectionError, PostgresStore

DSN: Final = POSTGRES_DSN


HANG: Final = 10.0
LEASE: Final = 0.2
EXPIRE: Final = 0.3


def job(number: int = 0, *, retry: int | None = None) -> Job[Any]:
    return Job("handler", args={"number": number}, retry=retry)


@pytest.fixture
def dsn() -> str:
    """The test server's DSN, or a skip saying how to get one."""
    if not DSN:
        pytest.skip(POSTGRES_REASON)
    return DSN


@pytest.fixture
async def open_store(dsn: str) -> AsyncIterator[Callable[..., PostgresStore]]:
    """Opens stores on one fresh schema; closes them all and drops the schema afterwards."""
    schema = new_schema()
    opened: list[PostgresStore] = []

    def make(**options: Any) -> PostgresStore:
        store = PostgresStore(dsn, schema=schema, **options)
        opened.append(store)
        return store

    try:
        with trio.fail_after(HANG):
            yield make
    finally:
        with trio.fail_after(HANG):
            for store in opened:
                await store.aclose()
            await trio.to_thread.run_sync(drop_schema, schema)


@pytest.fixture
async def store(open_store: Callable[..., PostgresStore]) -> PostgresStore:
    """An initialised store on a fresh schema."""
    store = open_store()
    await store.init()
    return store


async def claim_one(store: PostgresStore, worker_id: str = "w1", **options: Any) -> int:
    [record] = await store.claim(worker_id, 1, **options)
    return record.id


async def test_init_twice_keeps_tasks(open_store: Callable[..., PostgresStore]) -> None:
    """init() twice, and from two stores at once, keeps the schema and the tasks in it."""
    first, second = open_store(), open_store()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.init)
        nursery.start_soon(second.init)
    [task_id] = await first.enqueue([job()])
    await first.init()
    assert (await second.get(task_id)).status is TaskStatus.QUEUED


async def test_init_upgrades_a_schema_of_version_1(
    open_store: Callable[..., PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """init() adds the lost-lease count to a schema an older version made, keeping its tasks."""
    from workerpoolxt.durable import _postgres

    old = open_store()
    monkeypatch.setattr(_postgres, "_MIGRATIONS", _postgres._MIGRATIONS[:1])
    await old.init()
    [task_id] = await old_enqueue(old, 1)
    monkeypatch.undo()
    store = open_store()
    await store.init()
    [claimed] = await store.claim("w1", 1)
    assert (claimed.id, claimed.attempts, claimed.lost_leases) == (task_id, 1, 0)
    versions = await trio.to_thread.run_sync(read, f'SELECT version FROM "{store.schema}".wpxt_schema ORDER BY version')
    assert versions == [(1,), (2,), (3,), (4,), (5,)]


async def test_init_upgrades_a_schema_of_version_2(
    open_store: Callable[..., PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only store asks for the progress columns; init() adds them, and the running task then takes reports."""
    from workerpoolxt.durable import _postgres

    old = open_store()
    monkeypatch.setattr(_postgres, "_MIGRATIONS", _postgres._MIGRATIONS[:2])
    await old.init()
    [running, queued] = await old_enqueue(old, 2)
    monkeypatch.undo()
    reader = open_store(read_only=True)
    with pytest.raises(StoreError, match="its tables are at schema version 2, older than this workerpoolxt's 5; "):
        await reader.init()
    store = open_store()
    await store.init()
    assert [(await store.get(task_id)).progress for task_id in (running, queued)] == [None, None]
    assert await claim_one(store) == running
    await store.record_progress({running: Progress(2, 8), queued: Progress(1)}, worker_id="w1")
    record = await store.get(running)
    assert (record.status, record.attempts, record.progress) == (TaskStatus.RUNNING, 1, Progress(2.0, 8.0))
    assert (await store.get(queued)).progress is None
    await reader.init()  # current now
    versions = await trio.to_thread.run_sync(read, f'SELECT version FROM "{store.schema}".wpxt_schema ORDER BY version')
    assert versions == [(1,), (2,), (3,), (4,), (5,)]


async def test_init_upgrades_a_schema_of_version_3(
    open_store: Callable[..., PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only store asks for the index on finished tasks; init() adds it, and prune() deletes the old tasks."""
    from workerpoolxt.durable import _postgres

    old = open_store()
    monkeypatch.setattr(_postgres, "_MIGRATIONS", _postgres._MIGRATIONS[:3])
    await old.init()
    [done, queued] = await old_enqueue(old, 2)
    # Cancelled as an older version did, with the columns it had.
    await trio.to_thread.run_sync(
        read,
        f"UPDATE \"{old.schema}\".wpxt_tasks SET status = 'cancelled', finished_at = extract(epoch FROM now()) - 1 "
        f"WHERE id = {done} RETURNING id",
    )
    monkeypatch.undo()
    reader = open_store(read_only=True)
    with pytest.raises(StoreError, match="its tables are at schema version 3, older than this workerpoolxt's 5; "):
        await reader.init()
    store = open_store()
    await store.init()
    index = (
        f"SELECT indexname FROM pg_indexes WHERE schemaname = '{store.schema}' AND indexname = 'wpxt_tasks_finished'"
    )
    assert await trio.to_thread.run_sync(read, index) == [("wpxt_tasks_finished",)]
    assert await store.prune(older_than=0) == 1
    assert await store.stats() == StoreStatistics(queued=1)
    assert (await store.get(queued)).status is TaskStatus.QUEUED
    await reader.init()  # current now
    versions = await trio.to_thread.run_sync(read, f'SELECT version FROM "{store.schema}".wpxt_schema ORDER BY version')
    assert versions == [(1,), (2,), (3,), (4,), (5,)]


async def old_enqueue(store: PostgresStore, count: int) -> list[int]:
    """Insert ``count`` queued tasks of ``handler`` as an older version did, with the columns of version 1."""

    def insert() -> list[int]:
        import psycopg

        with psycopg.connect(DSN, autocommit=True) as connection:
            rows = connection.execute(
                f'INSERT INTO "{store.schema}".wpxt_tasks (handler, job, status, max_attempts, created_at, run_at) '
                "SELECT 'handler', jsonb_build_object('task', 'handler', 'name', 'handler', 'args', "
                "jsonb_build_object('number', n)), 'queued', 1, extract(epoch FROM now()), extract(epoch FROM now()) "
                "FROM generate_series(1, %s) AS n ORDER BY n RETURNING id",
                (count,),
            ).fetchall()
        return sorted(row[0] for row in rows)

    return await trio.to_thread.run_sync(insert)


def read(query: str) -> list[Any]:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as connection:
        return connection.execute(query).fetchall()  # type: ignore[arg-type]


async def test_a_store_whose_clock_runs_fast_takes_no_live_lease(
    open_store: Callable[..., PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store on a machine whose clock runs 20 s fast neither takes a live lease nor stamps times with its clock."""
    healthy, fast = open_store(), open_store()
    await healthy.init()
    [held] = await healthy.enqueue([job(0, retry=3)])
    await healthy.claim("healthy", 1, lease=5.0)
    real_time = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real_time() + 20.0)
        assert await fast.claim("fast", 10, lease=5.0) == []
        assert ((record := await fast.get(held)).status, record.worker_id) == (TaskStatus.RUNNING, "healthy")
        [own] = await fast.enqueue([job(1)])
        [claimed] = await fast.claim("fast", 10, lease=5.0)
        assert claimed.id == own
        assert await fast.heartbeat([held, own], worker_id="fast") == [own]
        await fast.complete(own, "done", worker_id="fast")
    record = await fast.get(own)
    now = time.time()
    for stamp in (record.created_at, record.run_at, record.started_at, record.finished_at):
        assert stamp is not None
        assert now - 1.0 < stamp <= now
    assert await healthy.heartbeat([held], worker_id="healthy") == [held]
    assert (await healthy.get(held)).worker_id == "healthy"


async def test_round_trip(store: PostgresStore) -> None:
    """A task enqueued, claimed and completed comes back succeeded with its JSON result."""
    ids = await store.enqueue([job(n) for n in range(5)], priority=3)
    assert ids == sorted(ids)
    assert [(await store.get(task_id)).job["args"]["number"] for task_id in ids] == list(range(5))
    [record] = await store.claim("w1", 1)
    assert (record.id, record.status, record.attempts, record.worker_id) == (ids[0], TaskStatus.RUNNING, 1, "w1")
    assert record.job == Job("handler", args={"number": 0}).to_dict()
    result = {"text": "done", "list": [1, 2.5, None, True]}
    await store.complete(record.id, result, worker_id="w1")
    done = await store.get(record.id)
    assert (done.status, done.result, done.priority) == (TaskStatus.SUCCEEDED, result, 3)
    assert done.finished_at is not None
    assert await store.stats() == StoreStatistics(queued=4, succeeded=1)


async def test_string_results_round_trip(store: PostgresStore) -> None:
    """A JSON string or null result comes back as itself."""
    ids = await store.enqueue([job(0), job(1)])
    await store.claim("w1", 2)
    await store.complete(ids[0], "done")
    await store.complete(ids[1], None)
    assert [(await store.get(task_id)).result for task_id in ids] == ["done", None]


@pytest.mark.parametrize(
    ("order", "expected"),
    [(Order.FIFO, [0, 1, 2, 3]), (Order.LIFO, [3, 2, 1, 0]), (Order.PRIORITY, [1, 3, 0, 2])],
)
async def test_claim_order(store: PostgresStore, order: Order, expected: list[int]) -> None:
    """FIFO takes the oldest first, LIFO the newest, PRIORITY the highest priority then the oldest."""
    ids = [(await store.enqueue([job(n)], priority=p))[0] for n, p in enumerate([1, 5, 0, 5])]
    assert [await claim_one(store, order=order) for _ in ids] == [ids[i] for i in expected]
    many = await store.enqueue([job(n) for n in range(4)])
    records = await store.claim("w1", 4, order=order)
    assert [record.id for record in records] == (many[::-1] if order is Order.LIFO else many)


async def test_double_complete_conflicts(store: PostgresStore) -> None:
    """A second complete() is a TaskConflictError; an unknown id is TaskNotFoundError."""
    task_id = await claim_one_new(store)
    await store.complete(task_id, 1)
    with pytest.raises(TaskConflictError) as caught:
        await store.complete(task_id, 2)
    assert (caught.value.task_id, caught.value.status, caught.value.action) == (task_id, "succeeded", "completed")
    with pytest.raises(TaskNotFoundError):
        await store.complete(987_654_321, None)
    assert (await store.get(task_id)).result == 1


async def claim_one_new(store: PostgresStore, task: Job[Any] | None = None, worker_id: str = "w1") -> int:
    [task_id] = await store.enqueue([job() if task is None else task])
    assert await claim_one(store, worker_id) == task_id
    return task_id


async def test_batched_finals_keep_their_own_outcomes(store: PostgresStore) -> None:
    """Finalising calls made at once share a transaction, yet each caller gets its own outcome."""
    ids = await store.enqueue([job(n) for n in range(20)])
    await store.claim("w1", 20)
    outcomes: dict[int, str] = {}

    async def finish(index: int, task_id: int) -> None:
        try:
            if index % 3 == 0:
                await store.complete(task_id, index, worker_id="w2")  # not its holder
            else:
                await store.complete(task_id, index, worker_id="w1")
            outcomes[task_id] = "ok"
        except TaskConflictError:
            outcomes[task_id] = "conflict"

    async with trio.open_nursery() as nursery:
        for index, task_id in enumerate(ids):
            nursery.start_soon(finish, index, task_id)
    assert [outcomes[task_id] for task_id in ids] == ["conflict" if i % 3 == 0 else "ok" for i in range(20)]
    assert await store.stats() == StoreStatistics(running=7, succeeded=13)


async def test_fail_with_and_without_retry(store: PostgresStore) -> None:
    """fail() requeues with attempts left and a retry time; is failed without one; dead on the last attempt."""
    requeued = await claim_one_new(store, job(retry=1))
    await store.fail(requeued, ValueError("boom"), time.time() - 1, worker_id="w1")
    record = await store.get(requeued)
    assert (record.status, record.error_type, record.error_message) == (TaskStatus.QUEUED, "ValueError", "boom")
    assert record.finished_at is None
    assert await claim_one(store, "w2") == requeued
    await store.fail(requeued, ValueError("again"), time.time(), worker_id="w2")
    assert (await store.get(requeued)).status is TaskStatus.DEAD

    failed = await claim_one_new(store, job(retry=2))
    await store.fail(failed, KeyError("missing"), worker_id="w1")
    record = await store.get(failed)
    assert (record.status, record.error_message) == (TaskStatus.FAILED, "'missing'")
    assert record.finished_at is not None


async def test_fail_dead(store: PostgresStore) -> None:
    """fail(dead=True) is dead despite attempts left and a retry time."""
    task_id = await claim_one_new(store, job(retry=3))
    await store.fail(task_id, LookupError("no handler"), time.time(), worker_id="w1", dead=True)
    assert (await store.get(task_id)).status is TaskStatus.DEAD
    assert await store.claim("w1", 10) == []


async def test_fail_message_with_nul(store: PostgresStore) -> None:
    """An error message holding NUL is stored with the NUL escaped, not refused."""
    task_id = await claim_one_new(store)
    await store.fail(task_id, ValueError("a\x00b"))
    assert (await store.get(task_id)).error_message == "a\\x00b"


async def test_nul_in_result_or_job_is_refused(store: PostgresStore) -> None:
    """jsonb cannot hold NUL: a result or job holding one is a ValueError, and the task stays running."""
    with pytest.raises(ValueError, match=r"`jobs\[0\]`"):
        await store.enqueue([Job("handler", args={"text": "a\x00b"})])
    task_id = await claim_one_new(store)
    with pytest.raises(ValueError, match="`result`"):
        await store.complete(task_id, "a\x00b")
    await store.complete(task_id, "a\\u0000b")  # an escaped backslash is fine
    assert (await store.get(task_id)).result == "a\\u0000b"


async def test_cancel(store: PostgresStore) -> None:
    """Queued and running tasks can be cancelled; a final one cannot."""
    queued = (await store.enqueue([job()]))[0]
    await store.cancel(queued)
    running = await claim_one_new(store)
    with pytest.raises(TaskConflictError):
        await store.cancel(running, worker_id="w2")
    await store.cancel(running, worker_id="w1")
    with pytest.raises(TaskConflictError) as caught:
        await store.cancel(running)
    assert caught.value.status == "cancelled"
    assert await store.stats() == StoreStatistics(cancelled=2)


async def test_release(store: PostgresStore) -> None:
    """release() requeues, taking back the claim's attempt; only the holder can."""
    task_id = await claim_one_new(store, job(retry=1))
    await store.release([task_id], worker_id="w2")
    assert (await store.get(task_id)).status is TaskStatus.RUNNING
    await store.release([task_id], worker_id="w1")
    assert ((record := await store.get(task_id)).status, record.attempts) == (TaskStatus.QUEUED, 0)
    assert await claim_one(store, "w2") == task_id
    await store.release([])


async def test_heartbeat(store: PostgresStore) -> None:
    """heartbeat() refreshes and returns only the running tasks the worker holds."""
    held, finished, other = await store.enqueue([job(0), job(1), job(2)])
    await store.claim("w1", 2)
    await claim_one(store, "w2")
    await store.complete(finished, None)
    before = (await store.get(held)).heartbeat_at
    await trio.sleep(0.05)
    assert await store.heartbeat([other, finished, held, 987_654_321], worker_id="w1") == [held]
    after = (await store.get(held)).heartbeat_at
    assert before is not None
    assert after is not None
    assert after > before
    assert await store.heartbeat([held, other, finished]) == [held, other]
    assert await store.heartbeat([]) == []


async def test_expired_lease_is_reclaimed(store: PostgresStore) -> None:
    """A task whose heartbeat is older than the lease is claimed again, as the same attempt; its old worker lost it."""
    task_id = await claim_one_new(store, job(retry=1))
    assert await store.claim("w2", 10, lease=LEASE) == []
    await trio.sleep(EXPIRE)
    [record] = await store.claim("w2", 10, lease=LEASE)
    assert (record.id, record.attempts, record.lost_leases, record.worker_id) == (task_id, 1, 1, "w2")
    with pytest.raises(TaskConflictError):
        await store.complete(task_id, "late", worker_id="w1")


async def test_concurrent_claims_from_two_stores(open_store: Callable[..., PostgresStore]) -> None:
    """Two stores claiming at once from 200 tasks take each exactly once."""
    first, second = open_store(max_size=2), open_store(max_size=2)
    await first.init()
    ids = await first.enqueue([job(n) for n in range(200)])
    claimed: list[int] = []

    async def claimer(store: PostgresStore, worker_id: str) -> None:
        while batch := await store.claim(worker_id, 7):
            claimed.extend(record.id for record in batch)

    async with trio.open_nursery() as nursery:
        for number, store in enumerate([first, second, first, second]):
            nursery.start_soon(claimer, store, f"w{number}")
    counts = collections.Counter(claimed)
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}


async def test_wait_for_work_wakes_on_enqueue_elsewhere(open_store: Callable[..., PostgresStore]) -> None:
    """wait_for_work() returns soon after another store enqueues, and after its timeout otherwise."""
    waiter, producer = open_store(), open_store()
    await waiter.init()
    start = trio.current_time()
    await waiter.wait_for_work(0.2)
    assert trio.current_time() - start >= 0.19

    async def enqueue_later() -> None:
        await trio.sleep(0.2)
        await producer.enqueue([job()])

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(enqueue_later)
        await waiter.wait_for_work(5.0)
    assert 0.19 <= trio.current_time() - start < 1.0


async def test_wait_for_work_wakes_on_release_and_requeue(store: PostgresStore) -> None:
    """Releasing a task and requeueing a failed one wake waiters too."""
    task_id = await claim_one_new(store, job(retry=3))
    for wake in [
        lambda: store.release([task_id], worker_id="w1"),
        lambda: store.fail(task_id, ValueError("boom"), time.time(), worker_id="w1"),
    ]:
        await store.wait_for_work(0.01)  # the listener is running
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wake)
            await store.wait_for_work(5.0)
        assert trio.current_time() - start < 1.0
        assert await claim_one(store) == task_id


async def test_wait(store: PostgresStore) -> None:
    """wait() returns the record once the task is final."""
    task_id = await claim_one_new(store)

    async def complete_later() -> None:
        await trio.sleep(0.1)
        await store.complete(task_id, "done")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(complete_later)
        record = await store.wait(task_id, poll=0.05)
    assert (record.status, record.result) == (TaskStatus.SUCCEEDED, "done")


async def test_unreachable_server_is_a_clear_error() -> None:
    """A server that refuses connections gives a ConnectionError naming host and port, quickly (needs no server)."""
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", schema="wpxt_unreachable")
    start = time.monotonic()
    with trio.fail_after(HANG), pytest.raises(PostgresConnectionError, match=r"127\.0\.0\.1:1\b") as caught:
        await store.init()
    assert isinstance(caught.value, ConnectionError)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", "1")
    assert time.monotonic() - start < HANG
    with trio.fail_after(HANG), pytest.raises(PostgresConnectionError):
        await store.wait_for_work(1.0)
    await store.aclose()


async def test_a_dropped_table_is_a_one_line_store_error(store: PostgresStore) -> None:
    """Once its table is dropped, each call raises a StoreError naming the server and schema, on one line."""
    import psycopg
    from psycopg import conninfo, errors, sql

    [task_id] = await store.enqueue([job()])
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(store.schema, "wpxt_tasks")))
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.enqueue([job()]),
        lambda: store.claim("w1", 1),
        lambda: store.complete(task_id, 1, worker_id="w1"),
        lambda: store.get(task_id),
        store.stats,
    ]
    params = conninfo.conninfo_to_dict(DSN)
    server = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"
    for call in calls:
        with trio.fail_after(HANG), pytest.raises(StoreError) as caught:
            await call()
        error = caught.value
        assert error.store == f"PostgreSQL store {server} schema {store.schema}"
        assert error.reason == f'relation "{store.schema}.wpxt_tasks" does not exist'
        assert str(error) == f"{error.store}: {error.reason}"
        assert isinstance(error.__cause__, errors.UndefinedTable)


async def test_a_read_only_store_of_a_missing_schema_creates_nothing(dsn: str) -> None:
    """A read-only store's init() on a schema that does not exist raises a StoreError, and creates no schema."""
    import psycopg

    schema = new_schema()
    store = PostgresStore(dsn, schema=schema, read_only=True)
    try:
        with trio.fail_after(HANG), pytest.raises(StoreError) as caught:
            await store.init()
    finally:
        with trio.fail_after(HANG):
            await store.aclose()
    assert caught.value.reason.startswith("there are no workerpoolxt tables; run `workerpoolxt schema --apply`")
    with psycopg.connect(dsn) as connection:
        assert connection.execute("SELECT to_regnamespace(%s)", (schema,)).fetchone() == (None,)


async def test_a_read_only_store_reads_and_refuses_writes(
    store: PostgresStore, open_store: Callable[..., PostgresStore]
) -> None:
    """A read-only store on an existing schema reads its tasks; a write is a StoreError and changes nothing."""
    [task_id] = await store.enqueue([job()])
    reader = open_store(read_only=True)
    await reader.init()
    assert (await reader.get(task_id)).handler == "handler"
    with pytest.raises(StoreError, match="read-only transaction"):
        await reader.enqueue([job()])
    assert await reader.stats() == StoreStatistics(queued=1)


def catalog(schema: str) -> tuple[list[Any], ...]:
    """A schema's columns, indexes (their definitions with the schema's name as S) and recorded schema versions."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(DSN) as connection:
        columns = connection.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
            "FROM information_schema.columns WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (schema,),
        ).fetchall()
        indexes = connection.execute(
            "SELECT indexname, replace(indexdef, %s, 'S') FROM pg_indexes WHERE schemaname = %s ORDER BY indexname",
            (schema, schema),
        ).fetchall()
        versions = connection.execute(
            sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(schema, "wpxt_schema"))
        ).fetchall()
    return columns, indexes, versions


async def test_schema_sql_applied_by_hand_makes_the_store_init_would(store: PostgresStore, dsn: str) -> None:
    """schema_sql() run by psycopg on a new schema makes what init() makes; the store then opens on it, runs tasks."""
    import psycopg

    by_hand = new_schema()
    writer = PostgresStore(dsn, schema=by_hand)
    reader = PostgresStore(dsn, schema=by_hand, read_only=True)
    text = writer.schema_sql()
    assert f'CREATE SCHEMA IF NOT EXISTS "{by_hand}";' in text
    assert f'CREATE TABLE "{by_hand}"."wpxt_tasks" (' in text
    assert "workerpoolxt" not in text
    assert (text.startswith("BEGIN;\n"), text.endswith("COMMIT;\n")) == (True, True)

    def apply() -> None:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(text)

    try:
        await trio.to_thread.run_sync(apply)
        made_by_init = await trio.to_thread.run_sync(catalog, store.schema)
        assert made_by_init[2] == [(1,), (2,), (3,), (4,), (5,)]
        assert await trio.to_thread.run_sync(catalog, by_hand) == made_by_init
        await reader.init()  # it checks that the tables are there, at the latest version
        await writer.init()  # nothing is left for it to do
        [task_id] = await writer.enqueue([job()])
        assert await claim_one(writer) == task_id
        await writer.complete(task_id, "done", worker_id="w1")
        assert (await reader.get(task_id)).result == "done"
        assert await trio.to_thread.run_sync(catalog, by_hand) == made_by_init
    finally:
        await reader.aclose()
        await writer.aclose()
        await trio.to_thread.run_sync(drop_schema, by_hand)


async def test_aclose_is_prompt_and_wakes_waiters(open_store: Callable[..., PostgresStore]) -> None:
    """aclose() stops the listener and the pool within a second, and a parked waiter returns."""
    store = open_store()
    await store.init()
    await store.wait_for_work(0.01)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.wait_for_work, 30.0)
        await trio.sleep(0.1)
        start = trio.current_time()
        with trio.fail_after(2.0):
            await store.aclose()
    assert trio.current_time() - start < 1.5
    # Closed stores open again on use, as SQLiteStore does.
    assert await store.stats() == StoreStatistics()


async def test_registry_is_checked(open_store: Callable[..., PostgresStore]) -> None:
    """With a registry, enqueue() refuses an unknown handler."""
    registry = Registry()
    registry.register("handler", lambda options: None)
    store = open_store(registry=registry)
    await store.init()
    with pytest.raises(LookupError, match="'other'"):
        await store.enqueue([job(), Job("other")])
    assert (await store.stats()).total == 0


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"dsn": 5}, TypeError, "`dsn`"),
        ({"dsn": "host=x port"}, ValueError, "`dsn`"),
        ({"schema": "bad-name"}, ValueError, "`schema`"),
        ({"schema": 'x"; DROP'}, ValueError, "`schema`"),
        ({"schema": "a" * 59}, ValueError, "`schema`"),
        ({"schema": 3}, TypeError, "`schema`"),
        ({"min_size": -1}, ValueError, "`min_size`"),
        ({"max_size": 0}, ValueError, "`max_size`"),
        ({"min_size": 3, "max_size": 2}, ValueError, "`max_size`"),
        ({"max_size": 2.0}, TypeError, "`max_size`"),
        ({"connect_timeout": 0}, ValueError, "`connect_timeout`"),
        ({"connect_timeout": "5"}, TypeError, "`connect_timeout`"),
        ({"registry": {}}, TypeError, "`registry`"),
    ],
)
def test_constructor_checks_arguments(options: dict[str, Any], error: type[Exception], match: str) -> None:
    """Each wrong argument is refused with an error naming it (needs no server)."""
    dsn = options.pop("dsn", "postgresql://postgres@127.0.0.1:5432/test")
    with pytest.raises(error, match=match):
        PostgresStore(dsn, **options)
