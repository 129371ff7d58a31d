"""Fixtures shared by the test modules."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import coverage
import postgres_server
import pytest
import trio
import trio.testing

from workerpoolxt.durable import SQLiteStore


def pytest_report_header() -> str:
    """Say at the top of the run whether the PostgreSQL tests run, and why."""
    dsn, reason = postgres_server.choose()
    if dsn:
        return f"PostgreSQL tests: run, as {reason}"
    if coverage.Coverage.current() is not None:
        reason += "; coverage leaves workerpoolxt/durable/_postgres.py out"
    return f"PostgreSQL tests: skipped, as {reason}"


@pytest.fixture
def virtual_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the examples' own ``trio.run`` use an autojump clock, so they finish at once."""
    monkeypatch.setattr(trio, "run", functools.partial(trio.run, clock=trio.testing.MockClock(autojump_threshold=0)))


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An initialised SQLiteStore on ``tmp_path / "tasks.db"``, closed afterwards."""
    opened = SQLiteStore(tmp_path / "tasks.db")
    try:
        await opened.init()
        yield opened
    finally:
        await opened.aclose()
