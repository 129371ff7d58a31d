"""Tests for ``SQLiteStore`` alone: a database that fails, rows damaged behind its back, and upgrades.

``tests/test_store_contract.py`` runs the behaviour every store shares. Every
failure of the database is a one-line ``StoreError`` naming the file. These
tests use the real clock, and bound every wait with ``trio.fail_after``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from workerpoolxt import Job, Options, Progress, Registry, WorkerPoolError
from workerpoolxt.durable import DurableWorker, Order, SQLiteStore, StoreError, StoreStatistics, TaskStatus, _sqlite

HANG: Final = 10.0
"""Real seconds after which a call counts as hung."""


@pytest.fixture
def store(sqlite_store: SQLiteStore) -> SQLiteStore:
    """An initialised store on ``tasks.db``, closed afterwards."""
    return sqlite_store


async def failure(call: Callable[[], Awaitable[Any]]) -> StoreError:
    """The StoreError that ``call()`` raises."""
    with trio.fail_after(HANG), pytest.raises(StoreError) as caught:
        await call()
    return caught.value


def assert_one_line(error: StoreError, store: str, reason: str) -> None:
    """The error names the store and the driver's reason, on one line, and keeps the driver's error as its cause."""
    assert (error.store, error.reason) == (store, reason)
    assert str(error) == f"{store}: {reason}"
    assert "\n" not in str(error)
    assert isinstance(error, WorkerPoolError)
    assert isinstance(error.__cause__, sqlite3.DatabaseError)


async def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """init() on a file that is not SQLite raises a StoreError naming the file."""
    (tmp_path / "notes.db").write_text("not a database, " * 100)
    store = SQLiteStore(tmp_path / "notes.db")
    try:
        error = await failure(store.init)
    finally:
        await store.aclose()
    assert_one_line(error, f"SQLite store {tmp_path / 'notes.db'}", "file is not a database")


async def test_a_missing_directory(tmp_path: Path) -> None:
    """A store in a directory that does not exist raises a StoreError naming the directory, and creates nothing."""
    store = SQLiteStore(tmp_path / "no" / "such" / "tasks.db")
    try:
        error = await failure(store.init)
    finally:
        await store.aclose()
    assert error.store == f"SQLite store {tmp_path / 'no' / 'such' / 'tasks.db'}"
    assert error.reason == f"its directory {tmp_path / 'no' / 'such'} does not exist"
    assert not await trio.Path(tmp_path, "no").exists()


async def test_a_dropped_table(store: SQLiteStore) -> None:
    """Once its table is dropped, each call of the store raises a StoreError with SQLite's reason."""
    [task_id] = await store.enqueue([Job("handler")])
    with sqlite3.connect(store.path) as connection:
        connection.execute("DROP TABLE wpxt_tasks")
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.enqueue([Job("handler")]),
        lambda: store.claim("w1", 1),
        lambda: store.complete(task_id, 1, worker_id="w1"),
        lambda: store.get(task_id),
        store.stats,
    ]
    for call in calls:
        assert_one_line(await failure(call), f"SQLite store {store.path}", "no such table: wpxt_tasks")


async def test_a_database_locked_past_the_busy_timeout(store: SQLiteStore) -> None:
    """init() waiting longer than busy_timeout for another process's lock raises a StoreError saying it is locked."""
    with sqlite3.connect(store.path, isolation_level=None) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        waiting = SQLiteStore(store.path, busy_timeout=0.1)
        try:
            error = await failure(waiting.init)
        finally:
            await waiting.aclose()
            holder.execute("ROLLBACK")
    assert_one_line(error, f"SQLite store {store.path}", "database is locked")


# -- read-only ------------------------------------------------------------------------------


async def test_a_read_only_store_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    """A read-only store's init() and calls on a file that does not exist raise a StoreError; no file appears."""
    store = SQLiteStore(tmp_path / "typo.db", read_only=True)
    try:
        for call in (store.init, store.stats):
            error = await failure(call)
            assert error.store == f"SQLite store {tmp_path / 'typo.db'}"
            assert error.reason.startswith("the file does not exist; run `workerpoolxt schema --apply`")
    finally:
        await store.aclose()
    assert list(await trio.Path(tmp_path).iterdir()) == []


async def test_a_read_only_store_reads_and_refuses_writes(store: SQLiteStore) -> None:
    """A read-only store on an existing store reads its tasks; a write is a StoreError and changes nothing."""
    [task_id] = await store.enqueue([Job("handler")])
    reader = SQLiteStore(store.path, read_only=True)
    try:
        await reader.init()
        assert (await reader.get(task_id)).handler == "handler"
        error = await failure(lambda: reader.enqueue([Job("handler")]))
        assert error.reason == "attempt to write a readonly database"
        assert (await reader.stats()).queued == 1
    finally:
        await reader.aclose()


def test_read_only_must_be_a_bool(tmp_path: Path) -> None:
    """read_only that is not a bool is a TypeError naming it."""
    with pytest.raises(TypeError, match="`read_only` must be a bool, not str"):
        SQLiteStore(tmp_path / "tasks.db", read_only="yes")  # type: ignore[arg-type]


# -- rows damaged behind the store's back, and upgrades ----------------------------------


def execute(path: Path, query: str, *params: Any) -> list[Any]:
    """Run one statement on the database file behind the store's back, and return its rows."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            return connection.execute(query, params).fetchall()
    finally:
        connection.close()


async def test_an_unreadable_row_is_dead_alone_and_the_rest_of_its_claim_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A row whose job is not JSON is dead on its own at its claim; the seven claimed with it run to success."""
    registry = Registry()
    ran: list[int | None] = []

    @registry.register("work")
    async def work(options: Options) -> str:
        from workerpoolxt import current_job

        ran.append(current_job().task_id)
        return "done"

    path = tmp_path / "tasks.db"
    store = SQLiteStore(path)
    try:
        with trio.fail_after(HANG):
            await store.init()
            ids = await store.enqueue([Job("work") for _ in range(8)])
            broken = ids[2]
            await trio.to_thread.run_sync(
                execute, path, "UPDATE wpxt_tasks SET job = '{\"task\": ' WHERE id = ?", broken
            )
            good = [task_id for task_id in ids if task_id != broken]
            async with DurableWorker(store, registry, concurrency=8, poll=0.05) as worker:
                records = [await store.wait(task_id, poll=0.05) for task_id in good]
            # get() cannot build its record either; its columns say what happened.
            [(status, error_type, message, attempts)] = await trio.to_thread.run_sync(
                execute, path, "SELECT status, error_type, error_message, attempts FROM wpxt_tasks WHERE id = ?", broken
            )
            assert await store.stats() == StoreStatistics(succeeded=7, dead=1)
    finally:
        await store.aclose()
    assert (status, error_type, attempts) == ("dead", "JSONDecodeError", 1)
    assert message.startswith("its stored data cannot be read: ")
    assert [(record.status, record.result, record.attempts) for record in records] == [
        (TaskStatus.SUCCEEDED, "done", 1)
    ] * 7
    assert sorted(ran) == good
    # The store buried the row itself: the worker claimed only the seven it could read, and never failed a claim.
    assert worker.statistics().claimed == 7
    assert [entry.getMessage() for entry in caplog.records if entry.levelno >= logging.WARNING] == [
        f"task {broken} is dead: JSONDecodeError: {message}"
    ]


async def test_claim_of_an_unreadable_row_fills_its_limit_with_the_next(tmp_path: Path) -> None:
    """A claim of 2 whose first row cannot be read buries it and returns the next two."""
    path = tmp_path / "tasks.db"
    store = SQLiteStore(path)
    try:
        with trio.fail_after(HANG):
            await store.init()
            broken, second, third, fourth = await store.enqueue([Job("work", args={"n": n}) for n in range(4)])
            await trio.to_thread.run_sync(execute, path, "UPDATE wpxt_tasks SET job = 'x' WHERE id = ?", broken)
            claimed = await store.claim("w1", 2)
            assert [record.id for record in claimed] == [second, third]
            assert (await store.get(fourth)).status is TaskStatus.QUEUED
            assert await store.stats() == StoreStatistics(queued=1, running=2, dead=1)
    finally:
        await store.aclose()


async def old_enqueue(path: Path, count: int) -> list[int]:
    """Insert ``count`` queued tasks of the handler ``work`` as an older version did, with the columns of version 1."""

    def insert() -> list[int]:
        now = time.time()
        rows = [("work", '{"task": "work", "name": "work", "args": {}}', "queued", 1, now, now)] * count
        connection = sqlite3.connect(path)
        try:
            with connection:
                ids = [
                    connection.execute(
                        "INSERT INTO wpxt_tasks (handler, job, status, max_attempts, created_at, run_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        row,
                    ).lastrowid
                    for row in rows
                ]
        finally:
            connection.close()
        return [task_id for task_id in ids if task_id is not None]

    return await trio.to_thread.run_sync(insert)


async def test_init_upgrades_a_database_of_schema_version_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """init() adds the lost-lease count to a database an older version made, keeping its tasks."""
    path = tmp_path / "tasks.db"
    old = SQLiteStore(path)
    monkeypatch.setattr(_sqlite, "_MIGRATIONS", _sqlite._MIGRATIONS[:1])
    try:
        with trio.fail_after(HANG):
            await old.init()
            [task_id] = await old_enqueue(path, 1)
    finally:
        await old.aclose()
    monkeypatch.undo()
    store = SQLiteStore(path)
    try:
        with trio.fail_after(HANG):
            await store.init()
            [claimed] = await store.claim("w1", 1)
            assert (claimed.id, claimed.attempts, claimed.lost_leases) == (task_id, 1, 0)
    finally:
        await store.aclose()
    assert execute(path, "SELECT version FROM wpxt_schema ORDER BY version") == [(1,), (2,), (3,), (4,), (5,)]


async def test_init_upgrades_a_database_of_schema_version_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only store asks for the progress columns; init() adds them, and the running task then takes reports."""
    path = tmp_path / "tasks.db"
    old = SQLiteStore(path)
    monkeypatch.setattr(_sqlite, "_MIGRATIONS", _sqlite._MIGRATIONS[:2])
    try:
        with trio.fail_after(HANG):
            await old.init()
            [running, queued] = await old_enqueue(path, 2)
    finally:
        await old.aclose()
    monkeypatch.undo()
    reader = SQLiteStore(path, read_only=True)
    try:
        error = await failure(reader.init)
    finally:
        await reader.aclose()
    assert str(error).startswith(
        f"SQLite store {path}: its tables are at schema version 2, older than this workerpoolxt's 5; "
    )
    store = SQLiteStore(path)
    try:
        with trio.fail_after(HANG):
            await store.init()
            assert [(await store.get(task_id)).progress for task_id in (running, queued)] == [None, None]
            assert [record.id for record in await store.claim("w1", 1)] == [running]
            await store.record_progress({running: Progress(2, 8), queued: Progress(1)}, worker_id="w1")
            record = await store.get(running)
            assert (record.status, record.attempts, record.progress) == (TaskStatus.RUNNING, 1, Progress(2.0, 8.0))
            assert (await store.get(queued)).progress is None
    finally:
        await store.aclose()
    assert execute(path, "SELECT version FROM wpxt_schema ORDER BY version") == [(1,), (2,), (3,), (4,), (5,)]


async def test_init_upgrades_a_database_of_schema_version_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only store asks for the index on finished tasks; init() adds it, and prune() deletes the old tasks."""
    path = tmp_path / "tasks.db"
    old = SQLiteStore(path)
    monkeypatch.setattr(_sqlite, "_MIGRATIONS", _sqlite._MIGRATIONS[:3])
    try:
        with trio.fail_after(HANG):
            await old.init()
            [done, queued] = await old_enqueue(path, 2)
            # Cancelled as an older version did, with the columns it had.
            await trio.to_thread.run_sync(
                execute,
                path,
                "UPDATE wpxt_tasks SET status = 'cancelled', finished_at = ? WHERE id = ?",
                time.time() - 1,
                done,
            )
    finally:
        await old.aclose()
    monkeypatch.undo()
    assert execute(path, "SELECT name FROM sqlite_master WHERE name = 'wpxt_tasks_finished'") == []
    reader = SQLiteStore(path, read_only=True)
    try:
        error = await failure(reader.init)
    finally:
        await reader.aclose()
    assert "its tables are at schema version 3, older than this workerpoolxt's 5; " in str(error)
    store = SQLiteStore(path)
    try:
        with trio.fail_after(HANG):
            await store.init()
            assert await store.prune(older_than=0) == 1
            assert await store.stats() == StoreStatistics(queued=1)
            assert (await store.get(queued)).status is TaskStatus.QUEUED
    finally:
        await store.aclose()
    assert execute(path, "SELECT name FROM sqlite_master WHERE name = 'wpxt_tasks_finished'") == [
        ("wpxt_tasks_finished",)
    ]
    assert execute(path, "SELECT version FROM wpxt_schema ORDER BY version") == [(1,), (2,), (3,), (4,), (5,)]


# -- the schema as SQL ---------------------------------------------------------------------


def run_script(path: Path, text: str) -> None:
    """Run a SQL script on a database file with the sqlite3 module, as an administrator would."""
    connection = sqlite3.connect(path)
    try:
        connection.executescript(text)
    finally:
        connection.close()


def schema_of(path: Path) -> tuple[list[Any], list[Any]]:
    """A database's tables and indexes as SQLite keeps their SQL, and the schema versions it records."""
    tables = execute(path, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
    return tables, execute(path, "SELECT version FROM wpxt_schema ORDER BY version")


async def test_schema_sql_applied_by_hand_makes_the_store_init_would(store: SQLiteStore, tmp_path: Path) -> None:
    """schema_sql() run by sqlite3 on a new file makes what init() makes; the store then opens on it and runs tasks."""
    text = store.schema_sql()
    assert (text.startswith("BEGIN;\n"), text.endswith("COMMIT;\n")) == (True, True)
    path = tmp_path / "by_hand.db"
    await trio.to_thread.run_sync(run_script, path, text)
    made_by_init = schema_of(store.path)
    assert made_by_init[1] == [(1,), (2,), (3,), (4,), (5,)]
    assert schema_of(path) == made_by_init
    reader, writer = SQLiteStore(path, read_only=True), SQLiteStore(path)
    try:
        with trio.fail_after(HANG):
            await reader.init()  # it checks that the tables are there, at the latest version
            await writer.init()  # nothing is left for it to do
            [task_id] = await writer.enqueue([Job("work")])
            [claimed] = await writer.claim("w1", 1)
            await writer.complete(task_id, "done", worker_id="w1")
            assert (claimed.id, claimed.attempts, (await reader.get(task_id)).result) == (task_id, 1, "done")
    finally:
        await reader.aclose()
        await writer.aclose()
    assert schema_of(path) == made_by_init


@pytest.mark.parametrize("order", list(Order))
def test_a_claim_reads_the_index_of_the_live_rows_never_the_finished_ones(tmp_path: Path, order: Order) -> None:
    """Every claim walks an index of the queued and running rows (in its order; for some queues, by queue), so a
    store that keeps many finished tasks claims as fast as an empty one (benchmarks: the backlog part), and a claim
    for a small queue never reads the others' rows."""
    path = tmp_path / "plan.db"
    run_script(path, SQLiteStore(path).schema_sql())
    for queues in (False, True):
        if queues:
            expected = "wpxt_tasks_active_queue"  # the rows of the queues named alone
        else:
            expected = "wpxt_tasks_active_priority" if order is Order.PRIORITY else "wpxt_tasks_active"
        statement = _sqlite._CLAIMS[order, queues].format(queues=":queue0")
        names = ("now", "stale", "worker_id", "max_lost_leases", "limit", "queue0")
        connection = sqlite3.connect(path)
        try:
            plan = connection.execute("EXPLAIN QUERY PLAN " + statement, dict.fromkeys(names)).fetchall()
        finally:
            connection.close()
        # SCAN (in claim order) for every queue; SEARCH (queue=?) for some queues.
        assert any(f"task USING INDEX {expected}" in row[3] for row in plan), plan
