"""Tests for ``SQLiteStore`` alone: rows damaged behind its back, and upgrading a database made by an older version.

``tests/test_store_contract.py`` runs the behaviour every store shares. These
tests use the real clock, and bound every wait with ``trio.fail_after``.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from workerpoolxt import DurableWorker, Job, Options, Registry, SQLiteStore, StoreStatistics, TaskStatus, _sqlite

HANG: Final = 10.0
"""Real seconds after which a wait counts as hung."""


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


async def test_init_upgrades_a_database_of_schema_version_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """init() adds the lost-lease count to a database an older version made, keeping its tasks."""
    path = tmp_path / "tasks.db"
    old = SQLiteStore(path)
    monkeypatch.setattr(_sqlite, "_MIGRATIONS", _sqlite._MIGRATIONS[:1])
    try:
        with trio.fail_after(HANG):
            await old.init()
            [task_id] = await old.enqueue([Job("work")])
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
    assert execute(path, "SELECT version FROM wpxt_schema ORDER BY version") == [(1,), (2,)]
