"""Helpers shared by the test modules: tasks, a hang guard and result access."""

from __future__ import annotations

import functools
import logging
import runpy
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec

import postgres_server
import pytest
import trio

import workerpoolxt as wpxt
from workerpoolxt import JobHandle, Result
from workerpoolxt.durable import TaskNotFoundError

Task = Callable[[wpxt.Options], Awaitable[Any]]
P = ParamSpec("P")


async def present(store: Any, task_ids: list[int]) -> list[int]:
    """Those of ``task_ids`` that a durable store still holds: the others were pruned, or never were."""
    kept = []
    for task_id in task_ids:
        try:
            await store.get(task_id)
        except TaskNotFoundError:
            continue
        kept.append(task_id)
    return kept


HANG = 1_000.0
"""Virtual seconds after which a test counts as hung; under the autojump clock a lost wakeup fails at once."""


def bounded(test: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
    """Make ``test`` fail with TooSlowError, rather than hang, if it outlives HANG virtual seconds."""

    @functools.wraps(test)
    async def run_bounded(*args: P.args, **kwargs: P.kwargs) -> None:
        with trio.fail_after(HANG):
            await test(*args, **kwargs)

    return run_bounded


async def noop(options: wpxt.Options) -> None:
    """Return at once."""


def sleeper(seconds: float, value: object = None) -> Task:
    """A task that sleeps ``seconds`` on the trio clock, then returns ``value``."""

    async def sleep_then_return(options: wpxt.Options) -> object:
        await trio.sleep(seconds)
        return value

    return sleep_then_return


class Starts:
    """Tasks that record when they start, then sleep; ``log`` holds (key, virtual start time)."""

    def __init__(self) -> None:
        self.log: list[tuple[object, float]] = []

    def task(self, key: object, seconds: float = 0) -> Task:
        async def record_then_sleep(options: wpxt.Options) -> object:
            self.log.append((key, trio.current_time()))
            await trio.sleep(seconds)
            return key

        return record_then_sleep

    def times(self, key: object = None) -> list[float]:
        """Start times, of every task or of those recorded under ``key``."""
        return [when for k, when in self.log if key is None or k == key]


def result_of(handle: JobHandle[Any]) -> Result[Any]:
    """The handle's Result, which must be there."""
    assert handle.result is not None, f"{handle!r} has no result"
    return handle.result


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run an example as ``__main__`` and return its stdout lines.

    An example may call ``logging.basicConfig``, which does nothing while the
    root logger has handlers, as it does under pytest; so the root logger runs
    the example with none, and gets its own handlers and level back afterwards.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    return capsys.readouterr().out.splitlines()


# -- PostgreSQL ----------------------------------------------------------------------

POSTGRES_DSN, POSTGRES_REASON = postgres_server.choose()
"""The test server's DSN ("" when the PostgreSQL tests skip), and why; tests/postgres_server.py chooses."""

# A mark, not pytest.skip() in a fixture: pytest-trio re-raises a skip from an
# async fixture without its reason.
requires_postgres = pytest.mark.skipif(not POSTGRES_DSN, reason=POSTGRES_REASON)


def new_schema() -> str:
    """A schema name no other test uses."""
    return f"wpxt_test_{uuid.uuid4().hex}"


def drop_schema(schema: str) -> None:
    """Drop a test's schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# -- HTTP, for the servers a worker starts ----------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, just now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fetch(url: str) -> tuple[int, str]:
    """GET ``url``; return the status and the body, for error statuses too."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=20) as response:  # real seconds: a local server that hangs
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
