"""The benchmark suite: ``--smoke`` and ``--quick`` keep working, and the targets say what they should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import POSTGRES_DSN, requires_postgres

from benchmarks import _report
from benchmarks._suite import RESULTS, parse_args

ROOT = Path(__file__).resolve().parents[2]

TARGETS = {
    "plain_vs_bare": "≥ 0.75 x bare trio",
    "timeout_vs_bare": "≥ 0.5 x bare trio",
    "timeout_vs_asyncio": "≥ 1.5 x",
    "plain_vs_aiometer": "≥ 3 x",
    "plain_vs_anyio": "≥ 3 x",
    "middleware_vs_plain": "≥ 0.8 x",
    "prometheus_vs_plain": "≥ 0.7 x",
    "sync_vs_threadpool": "≥ 0.3 x",
    "process_vs_executor": "≥ 0.8 x",
    "process_vs_pebble": "≥ 0.8 x",
    "memory_kept_shared_job": "≤ 200 MiB",
    "memory_streaming_backpressure": "≤ 100 MiB",
    "handle_and_entry": "≤ 100 B",
    "scaling": "within 20 %",
    "timeout_lateness": "≤ 2 ms",
    "process_timeout_lateness": "≤ 50 ms",
    "postgres": "≥ 10,000 jobs/s",
    "sqlite": "≥ 5,000 jobs/s",
    "postgres_vs_procrastinate": "≥ 10 x",
    "postgres_vs_pgqueuer_b64": "≥ 1.0 x",
    "postgres_backlog": "≥ 0.8 x",
    "sqlite_backlog": "≥ 0.8 x",
}
"""Every target of a full run, by key, as the report states it."""

QUICK_FIGURES = [
    "no deadline, results kept",
    "per-job timeout",
    "PostgreSQL store end to end vs pgqueuer (batches of 64)",
    "PostgreSQL store: claims after 500 finished tasks vs an empty table",
]

VARIANTS = {
    "trio_fixed",
    "wpxt_plain",
    "wpxt_timeout",
    "wpxt_retry",
    "wpxt_middleware",
    "wpxt_prometheus",
    "wpxt_sync",
    "trio_limiter",
    "anyio_limiter",
    "aiometer_run_all",
    "asyncio_semaphore",
    "asyncio_semaphore_timeout",
    "trio_to_thread",
    "threadpool_map",
    "wpxt_process",
    "process_pool_executor",
    "pebble_map",
}


def _benchmarks(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m benchmarks`` with ``args`` and the extra environment ``env``; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_smoke_run_reports_every_variant(tmp_path: Path) -> None:
    """A smoke run prints every row with a positive rate, and writes results.json and the chart."""
    done = _benchmarks("--smoke", "--quiet", "--output", str(tmp_path))
    assert done.stderr == ""

    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    labels = {row["variant"]: row["label"] for row in results["throughput"]}
    assert set(labels) == VARIANTS
    table = [line.strip("| ").split(" | ") for line in done.stdout.splitlines() if line.startswith("| ")]
    first_cells = {cells[0]: cells for cells in table}
    for key, label in labels.items():
        cells = first_cells[label]
        rate = float(cells[1].split(" /")[0].replace(",", ""))
        assert rate > 0, key

    assert {"date", "machine", "settings", "throughput", "memory", "timeouts", "scaling", "targets", "notes"} <= set(
        results
    )
    assert {"cores", "python", "versions"} <= set(results["machine"])
    assert results["machine"]["versions"]["trio"]
    for row in results["throughput"]:
        assert row["collected"] == row["n"], row
        assert all(rate > 0 for rate in row["jobs_per_s"]), row
        assert row["median_jobs_per_s"] > 0, row
    for row in results["memory"] + results["timeouts"]:
        assert row["collected"] == row["n"], row
    # The process tasks' timeout row: every one of its jobs killed and TIMED_OUT, the lateness measured.
    [killed] = [row for row in results["timeouts"] if row["scenario"] == "process_timeouts"]
    assert (killed["n"], killed["collected"]) == (8, 8)
    assert 0 <= killed["p50_ms"] <= killed["p99_ms"] <= killed["max_ms"]
    # The backlog rows: SQLite's always, PostgreSQL's where a server answers; every phase of each in order.
    phases = [(row["store"], row["phase"]) for row in results["backlog"]]
    assert phases == [(store, phase) for store in ("postgres", "sqlite") for phase in ("empty", "finished", "pruning")]
    empty = {row["store"]: row.get("median_drain_per_s") for row in results["backlog"] if row["phase"] == "empty"}
    for row in results["backlog"]:
        assert row["n"] == 200
        assert row["finished"] == (0 if row["phase"] == "empty" else 2_000)
        if "error" in row:
            assert row["store"] == "postgres", row
            continue
        assert row["runs"] == 1
        assert row["median_drain_per_s"] > 0
        assert row["ratio_to_empty"] == row["median_drain_per_s"] / empty[row["store"]]
        assert (row["pruned"][0] > 0) is row["pruning"], row
    assert [row["scenario"] for row in results["memory"]][:2] == ["baseline", "kept"]
    assert all(row["met"] in {True, False, None} for row in results["targets"])
    assert {row["key"]: row["target"] for row in results["targets"]} == TARGETS
    assert results["chart"] == "results.png"
    assert (tmp_path / "results.png").stat().st_size > 0

    # The bytes of a queued job: the suite's check that all 2,000 were queued passed, and the figures add up.
    [objects] = results["objects"]
    assert objects["n"] == objects["collected"] == 2_000
    assert objects["handle_bytes"] > 0
    assert objects["entry_bytes"] > 0
    assert objects["handle_and_entry_bytes"] == objects["handle_bytes"] + objects["entry_bytes"]
    # tracemalloc counts the handle and the entry too, and more besides, but not thousands of bytes a job.
    assert objects["handle_and_entry_bytes"] < objects["traced_bytes_per_job"] < 1_000
    [target] = [row for row in results["targets"] if row["key"] == "handle_and_entry"]
    assert target["value"] == objects["handle_and_entry_bytes"]
    assert target["met"] is (objects["handle_and_entry_bytes"] <= 100)
    assert f"- handle + entry: {objects['handle_and_entry_bytes']} B" in done.stdout
    assert (
        "- per queued job in all, with the id and queue time that its Result later keeps: "
        f"{objects['traced_bytes_per_job']:.0f} B"
    ) in done.stdout


def test_smoke_run_leaves_the_committed_results_alone(tmp_path: Path) -> None:
    """Without --output, a smoke run writes to a new temporary folder and says which, not over benchmarks/results.*."""
    committed = {name: (ROOT / "benchmarks" / name).read_bytes() for name in ("results.json", "results.png")}
    done = _benchmarks("--smoke", "--parts", "throughput", "--sizes", "100", TMPDIR=str(tmp_path))

    for name, content in committed.items():
        assert (ROOT / "benchmarks" / name).read_bytes() == content, f"the smoke run overwrote benchmarks/{name}"
    [output] = tmp_path.glob("wpxt-benchmarks-smoke-*")
    assert f"wrote {output / 'results.json'} and {output / 'results.png'}" in done.stderr
    assert json.loads((output / "results.json").read_text(encoding="utf-8"))["settings"]["smoke"] is True
    assert (output / "results.png").stat().st_size > 0


def _throughput_row(variant: str, median: float) -> dict[str, Any]:
    return {"variant": variant, "label": variant, "n": 100_000, "median_jobs_per_s": median, "ratio_to_bare": None}


def test_targets_are_met_at_their_bounds_and_not_beyond() -> None:
    """Each new target is met at its bound exactly and not met just past it."""
    results: dict[str, Any] = {
        "throughput": [
            _throughput_row("trio_fixed", 1_000.0),
            _throughput_row("wpxt_plain", 750.0),
            _throughput_row("wpxt_timeout", 499.0),
            _throughput_row("threadpool_map", 1_000.0),
            _throughput_row("wpxt_sync", 300.0),
            _throughput_row("wpxt_process", 800.0),
            _throughput_row("process_pool_executor", 1_000.0),
            _throughput_row("pebble_map", 1_000.5),
        ],
        "memory": [
            {"scenario": "kept_shared_job", "n": 1_000_000, "peak_rss_mib": 200.5},
            {"scenario": "kept", "n": 1_000_000, "peak_rss_mib": 200.5},
            {"scenario": "streaming_backpressure", "n": 1_000_000, "peak_rss_mib": 100.0},
        ],
        "objects": [{"n": 100_000, "handle_and_entry_bytes": 100, "traced_bytes_per_job": 160.0}],
        "timeouts": [],
        "stores": [
            {"scenario": "postgres", "end_to_end_per_s": 10_000.0},
            {"scenario": "pgqueuer_b64", "end_to_end_per_s": 10_001.0},
            {"scenario": "procrastinate", "error": "ModuleNotFoundError: No module named 'procrastinate'"},
        ],
        "backlog": [
            {"store": "postgres", "phase": "empty", "finished": 0, "ratio_to_empty": 1.0},
            {"store": "postgres", "phase": "finished", "finished": 1_000_000, "ratio_to_empty": 0.8},
            {"store": "sqlite", "phase": "empty", "finished": 0, "ratio_to_empty": 1.0},
            {"store": "sqlite", "phase": "finished", "finished": 1_000_000, "ratio_to_empty": 0.79},
        ],
    }
    met = {row["key"]: row["met"] for row in _report.targets(results)}
    assert met["plain_vs_bare"] is True
    assert met["timeout_vs_bare"] is False
    assert met["sync_vs_threadpool"] is True
    assert met["process_vs_executor"] is True
    assert met["process_vs_pebble"] is False
    assert met["memory_kept_shared_job"] is False
    assert met["memory_streaming_backpressure"] is True
    assert "memory_kept" not in met  # a Job per job has no target: the caller's Jobs cost what they hold
    assert met["handle_and_entry"] is True
    assert met["postgres"] is True
    assert met["postgres_vs_pgqueuer_b64"] is False
    assert met["postgres_vs_procrastinate"] is None
    assert met["postgres_backlog"] is True
    assert met["sqlite_backlog"] is False
    [row] = [row for row in _report.targets(results) if row["key"] == "postgres_backlog"]
    assert row["figure"] == "PostgreSQL store: claims after 1M finished tasks vs an empty table"
    [row] = [row for row in _report.targets(results) if row["key"] == "handle_and_entry"]
    assert row["measured"] == "100 B (160 B per queued job in all)"


def test_chart_draws_the_durable_stores_alone(tmp_path: Path) -> None:
    """With only store rows, one of them not measured, the chart still has a panel to draw."""
    pytest.importorskip("matplotlib")
    results: dict[str, Any] = {
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {"cores": 2, "python": "3.11", "versions": {"trio": "0"}},
        "throughput": [],
        "memory": [],
        "timeouts": [],
        "stores": [
            {"scenario": "postgres", "label": "workerpoolxt PostgresStore", "n": 10, "end_to_end_per_s": 1.0},
            {"scenario": "pgqueuer_b64", "label": "pgqueuer", "n": 10, "error": "no server"},
        ],
    }
    assert _report.chart(results, tmp_path / "results.png") is None
    assert (tmp_path / "results.png").stat().st_size > 0


def test_quick_settings() -> None:
    """--quick: bare trio, no deadline and per-job timeout at 100k, 3 runs; PostgreSQL and pgqueuer at 10k; no files."""
    settings = parse_args(["--quick"])
    assert settings.quick is True
    assert settings.smoke is False
    assert settings.sizes == [100_000]
    assert settings.runs == 3
    assert [variant.key for variant in settings.variants] == ["trio_fixed", "wpxt_plain", "wpxt_timeout"]
    assert settings.parts == {"throughput", "stores", "backlog"}
    assert settings.stores == ("postgres", "pgqueuer_b64")
    assert settings.store_n == 10_000
    assert settings.finished_n == 100_000
    assert settings.backlog_runs == 1
    assert settings.output is None

    full = parse_args([])
    assert full.output == RESULTS
    assert (full.finished_n, full.backlog_runs, full.stores) == (1_000_000, 3, ())
    assert parse_args(["--stores", "sqlite", "--finished-n", "2k"]).stores == ("sqlite",)
    with pytest.raises(SystemExit):
        parse_args(["--stores", "mysql"])
    assert parse_args(["--quick", "--output", "here"]).output == Path("here")
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--smoke"])


TINY = ["--sizes", "300", "--runs", "2", "--store-n", "150", "--finished-n", "500"]
"""A --quick run in seconds: two runs of each throughput row, so the interleaving runs too."""


def _quick_run(tmp_path: Path, dsn: str) -> tuple[str, dict[str, list[str]]]:
    """A --quick run on tiny sizes, through the same code path; its stdout and its Markdown tables by heading."""
    committed = {name: (RESULTS / name).read_bytes() for name in ("results.json", "results.png")}
    done = _benchmarks("--quick", "--quiet", *TINY, TMPDIR=str(tmp_path), WPXT_BENCH_POSTGRES_DSN=dsn)
    assert done.stderr == ""
    # It writes nothing: no temporary folder, and the committed results stay as they were.
    assert list(tmp_path.iterdir()) == []
    for name, content in committed.items():
        assert (RESULTS / name).read_bytes() == content, f"the quick run overwrote benchmarks/{name}"
    tables: dict[str, list[str]] = {}
    heading = ""
    for line in done.stdout.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("| ") and not line.startswith("| ---"):
            tables.setdefault(heading, []).append(line)
    return done.stdout, tables


def _first_cells(lines: list[str]) -> list[list[str]]:
    return [line.strip("| ").split(" | ") for line in lines[1:]]  # without the header


@requires_postgres
def test_quick_run_reports_its_four_targets(tmp_path: Path) -> None:
    """A tiny --quick run measures its three rows, two stores and PostgreSQL's backlog, and reports their targets."""
    stdout, tables = _quick_run(tmp_path, POSTGRES_DSN)
    assert [cells[0] for cells in _first_cells(tables["Throughput"])] == [
        "bare trio: 16 workers + memory channel (the limit)",
        "workerpoolxt, no deadline",
        "workerpoolxt, per-job timeout=60",
    ]
    assert all(cells[1].endswith(" /2") for cells in _first_cells(tables["Throughput"]))
    stores = _first_cells(tables["Durable stores"])
    assert [cells[0] for cells in stores] == ["workerpoolxt PostgresStore", "pgqueuer, batches of 64 (same PostgreSQL)"]
    assert all(cells[1] == "150" and float(cells[3].replace(",", "")) > 0 for cells in stores)
    backlog = _first_cells(tables["Claims after many finished tasks"])
    assert [cells[:4] for cells in backlog] == [
        ["workerpoolxt PostgresStore", "empty table", "0", "150"],
        ["workerpoolxt PostgresStore", "finished tasks", "500", "150"],
        ["workerpoolxt PostgresStore", "finished tasks, pruned meanwhile", "500", "150"],
    ]
    assert all(cells[4].endswith(" /1") and float(cells[4].split(" /")[0].replace(",", "")) > 0 for cells in backlog)
    assert backlog[0][5] == "1.00"
    # The pruner's first batch ends before the drain is reported, so at least that much was pruned.
    assert 500 >= int(backlog[2][6].replace(",", "")) > 0
    targets = _first_cells(tables["Targets"])
    assert [cells[0] for cells in targets] == [
        f"{QUICK_FIGURES[0]}, N=300",
        f"{QUICK_FIGURES[1]}, N=300",
        QUICK_FIGURES[2],
        QUICK_FIGURES[3],
    ]
    assert [cells[1] for cells in targets] == ["≥ 0.75 x bare trio", "≥ 0.5 x bare trio", "≥ 1.0 x", "≥ 0.8 x"]
    assert all(cells[3] in {"met", "**not met**"} for cells in targets)
    assert "Quick run:" in stdout


def test_quick_run_without_postgres_says_not_measured(tmp_path: Path) -> None:
    """With no PostgreSQL server, the quick run still succeeds, and its store target says "not measured"."""
    _, tables = _quick_run(tmp_path, "postgresql://postgres@127.0.0.1:1/test")
    stores = _first_cells(tables["Durable stores"])
    assert [cells[2] for cells in stores] == ["not measured", "not measured"]
    assert all(cells[3] for cells in stores)  # why, in place of the rate
    targets = _first_cells(tables["Targets"])
    assert targets[2] == [QUICK_FIGURES[2], "≥ 1.0 x", "not measured", "not measured"]
    assert targets[3] == [
        "PostgreSQL store: claims after many finished tasks vs an empty table",
        "≥ 0.8 x",
        "not measured",
        "not measured",
    ]
    backlog = _first_cells(tables["Claims after many finished tasks"])
    assert [cells[1] for cells in backlog] == ["empty table", "finished tasks", "finished tasks, pruned meanwhile"]
    assert all(cells[4] == "not measured" and cells[5] for cells in backlog)  # why, in place of the ratio
    assert all(cells[3] in {"met", "**not met**"} for cells in targets[:2])
