"""``SQLiteStore`` on a database that fails: every failure is a one-line ``StoreError`` naming the file.

The contract every store keeps is in test_store_contract.py; these are the
failures only a real SQLite file has. The store runs in a thread, on the real
clock, with every wait bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from workerpoolxt import Job, SQLiteStore, StoreError, WorkerPoolError

HANG: Final = 10.0
"""Real seconds after which a call counts as hung."""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An initialised store on ``tasks.db``, closed afterwards."""
    opened = SQLiteStore(tmp_path / "tasks.db")
    try:
        await opened.init()
        yield opened
    finally:
        await opened.aclose()


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
            assert error.reason.startswith("the file does not exist; run `python -m workerpoolxt worker` or `enqueue`")
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
