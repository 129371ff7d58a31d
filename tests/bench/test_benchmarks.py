"""Smoke test of the benchmark suite: ``python -m benchmarks --smoke`` keeps working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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
}


def test_smoke_run_reports_every_variant(tmp_path: Path) -> None:
    """A smoke run prints every row with a positive rate, and writes results.json and the chart."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", "--smoke", "--quiet", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
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
    assert [row["scenario"] for row in results["memory"]][:2] == ["baseline", "kept"]
    assert all(row["met"] in {True, False, None} for row in results["targets"])
    assert results["chart"] == "results.png"
    assert (tmp_path / "results.png").stat().st_size > 0


def test_smoke_run_leaves_the_committed_results_alone(tmp_path: Path) -> None:
    """Without --output, a smoke run writes to a new temporary folder and says which, not over benchmarks/results.*."""
    committed = {name: (ROOT / "benchmarks" / name).read_bytes() for name in ("results.json", "results.png")}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", "--smoke", "--parts", "throughput", "--sizes", "100"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    for name, content in committed.items():
        assert (ROOT / "benchmarks" / name).read_bytes() == content, f"the smoke run overwrote benchmarks/{name}"
    [output] = tmp_path.glob("wpxt-benchmarks-smoke-*")
    assert f"wrote {output / 'results.json'} and {output / 'results.png'}" in done.stderr
    assert json.loads((output / "results.json").read_text(encoding="utf-8"))["settings"]["smoke"] is True
    assert (output / "results.png").stat().st_size > 0
