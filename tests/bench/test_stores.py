"""The durable-store rows of the benchmark suite run on a few tasks and collect every one."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import POSTGRES_DSN, requires_postgres

from benchmarks._suite import run_child

N = 300
"""More than two of pgqueuer's batches of 64 and of the worker's 128 slots, so several claims run."""


@requires_postgres
@pytest.mark.parametrize("name", ["pgqueuer_b64", "pgqueuer_b10", "postgres"])
def test_postgres_rows_collect_every_task(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """pgqueuer's rows, and ours, run every task once on the test server and report positive rates."""
    pytest.importorskip("pgqueuer")
    pytest.importorskip("asyncpg")
    monkeypatch.setenv("WPXT_BENCH_POSTGRES_DSN", POSTGRES_DSN or "")
    check(run_child("stores", name, N))


def test_sqlite_row_collects_every_task() -> None:
    """The SQLite row runs every task once, its ANALYZE included."""
    check(run_child("stores", "sqlite", N))


def check(result: dict[str, Any]) -> None:
    # run_child raises if the child wrote to stderr, failed, or collected other than N.
    assert result["collected"] == N
    assert result["enqueue_per_s"] > 0
    assert result["end_to_end_per_s"] > 0


FINISHED = 1_500
"""Finished tasks before a backlog drain: more than one of the pruner's batches of 1,000."""


def check_backlog(name: str) -> None:
    """A backlog row drains every task queued after its finished ones; a pruner deletes the finished ones only."""
    result = run_child("backlog", name, N, FINISHED)
    check(result)
    assert result["drain_per_s"] > result["end_to_end_per_s"]  # the drain alone, without the enqueue
    assert result["finished"] == FINISHED
    if name.endswith("_pruned"):
        # Its first batch ends before the drain is reported; collected == N shows no drained task was among them.
        assert FINISHED >= result["pruned"] >= result["prune_batch"] == 1_000
        assert result["prunes"] >= 1
    else:
        assert result["pruned"] == result["prunes"] == 0


@pytest.mark.parametrize("name", ["sqlite_backlog", "sqlite_backlog_pruned"])
def test_sqlite_backlog_rows(name: str) -> None:
    """SQLite's backlog rows drain every task, beside finished ones and while they are pruned."""
    check_backlog(name)


@requires_postgres
@pytest.mark.parametrize("name", ["postgres_backlog", "postgres_backlog_pruned"])
def test_postgres_backlog_rows(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's backlog rows drain every task, beside finished ones and while they are pruned."""
    monkeypatch.setenv("WPXT_BENCH_POSTGRES_DSN", POSTGRES_DSN or "")
    check_backlog(name)
