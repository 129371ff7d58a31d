"""The suite: which measurements to take, in what order, and how often.

Every measurement runs in a fresh process (``benchmarks._child``). Throughput
runs are interleaved: for each size, repetition ``r`` runs every variant once,
starting one variant further along the list than repetition ``r - 1``, so a
slow stretch on a shared machine hits every variant alike instead of one.

``--quick`` measures only the figures of the headline targets (no deadline and
per-job timeout against bare trio, the PostgreSQL store against pgqueuer, and
its claims after 100k finished tasks), in about a minute, and writes no files.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _report

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: children run from here so ``benchmarks`` is importable."""

RESULTS = Path(__file__).resolve().parent
"""Where a full run writes results.json and results.png by default, beside RESULTS.md."""

CHILD_TIMEOUT = 900
"""Seconds any one measurement may take before the suite gives up on it."""

TIMEOUT_SECONDS = 0.02


@dataclass(frozen=True)
class Variant:
    """One throughput row."""

    key: str
    label: str
    core: bool
    """Bare trio and the workerpoolxt rows: always measured with the full number of runs."""
    sync: bool = False
    """Thread-run rows, measured only up to ``--sync-max-n``."""
    slow_peer: bool = False
    """Peers that take about a minute per run at 1M jobs: see ``--slow-peer-large-runs``."""
    process: bool = False
    """Rows of about a millisecond of CPU per job in processes, measured only up to ``PROCESS_MAX_N``."""


VARIANTS: tuple[Variant, ...] = (
    Variant("trio_fixed", "bare trio: 16 workers + memory channel (the limit)", core=True),
    Variant("wpxt_plain", "workerpoolxt, no deadline", core=True),
    Variant("wpxt_timeout", "workerpoolxt, per-job timeout=60", core=True),
    Variant("wpxt_retry", "workerpoolxt, retry=3, no failures", core=True),
    Variant("wpxt_middleware", "workerpoolxt, one no-op middleware", core=True),
    Variant("wpxt_prometheus", "workerpoolxt, PrometheusMetrics attached", core=True),
    Variant("trio_limiter", "bare trio: nursery + CapacityLimiter, task per job", core=False),
    Variant("anyio_limiter", "anyio on trio: TaskGroup + CapacityLimiter", core=False, slow_peer=True),
    Variant("aiometer_run_all", "aiometer.run_all(max_at_once=16) on trio", core=False, slow_peer=True),
    Variant("asyncio_semaphore", "asyncio: TaskGroup + Semaphore", core=False),
    Variant("asyncio_semaphore_timeout", "asyncio: TaskGroup + Semaphore + asyncio.timeout", core=False),
    Variant("wpxt_sync", "workerpoolxt, plain functions (threads)", core=True, sync=True),
    Variant("trio_to_thread", "bare trio: 16 workers + to_thread.run_sync (threads)", core=False, sync=True),
    Variant("threadpool_map", "ThreadPoolExecutor(16).map", core=False, sync=True),
    Variant("wpxt_process", "workerpoolxt, 1 ms CPU jobs in processes, 1 worker per CPU", core=True, process=True),
    Variant("process_pool_executor", "ProcessPoolExecutor().map, same jobs", core=False, process=True),
    Variant("pebble_map", "pebble ProcessPool().map, same jobs", core=False, process=True),
)
PROCESS_MAX_N = 10_000
"""The largest size for the process rows: at a millisecond of CPU per job, 100k jobs take a minute per run."""
BASELINE = "trio_fixed"

# (key, label) of the peak-RSS scenarios in benchmarks._memory.
MEMORY_SCENARIOS: tuple[tuple[str, str], ...] = (
    ("baseline", "interpreter + trio + workerpoolxt, empty pool"),
    ("kept", "submit all, then stop_wait(), results kept"),
    ("kept_shared_job", "same, one shared Job submitted N times (pool's own cost)"),
    ("streaming", "keep_results=False, submit all, results() consumed concurrently"),
    ("streaming_backpressure", "keep_results=False, asubmit() with max_queue=1024, results() consumed"),
)


QUICK_VARIANTS = ("trio_fixed", "wpxt_plain", "wpxt_timeout")
"""The throughput rows of ``--quick``."""
QUICK_STORES = ("postgres", "pgqueuer_b64")
"""The durable-store rows of ``--quick``, and of its backlog rows, the PostgreSQL ones."""
QUICK_TARGETS = ("plain_vs_bare", "timeout_vs_bare", "postgres_vs_pgqueuer_b64", "postgres_backlog")
"""The targets ``--quick`` reports (keys of ``_report.targets`` rows)."""

PARTS = ("throughput", "memory", "objects", "timeouts", "stores", "backlog")


@dataclass
class Settings:
    """What to measure, from the command line."""

    sizes: list[int]
    runs: int
    large: int
    peer_large_runs: int
    slow_peer_large_runs: int
    sync_max_n: int
    memory_n: int
    objects_n: int
    timeout_n: int
    process_timeout_n: int
    """Jobs in the process tasks' timeout row, each of which kills a process and starts another."""
    store_n: int
    finished_n: int
    """Finished tasks in the table before the backlog rows' drains."""
    backlog_runs: int
    timeout_workers: list[int]
    parts: set[str]
    output: Path | None
    """Where results.json and results.png go; None: nowhere (``--quick``)."""
    smoke: bool
    quiet: bool
    quick: bool = False
    variants: list[Variant] = field(default_factory=lambda: list(VARIANTS))
    stores: tuple[str, ...] = ()
    """Keys of STORE_SCENARIOS and BACKLOG_STORES to measure; empty: all of them."""

    def runs_for(self, variant: Variant, n: int) -> int:
        """How many runs ``variant`` gets at size ``n`` (0: not measured)."""
        if (variant.sync and n > self.sync_max_n) or (variant.process and n > PROCESS_MAX_N):
            return 0
        if variant.core or n < self.large:
            return self.runs
        if variant.slow_peer:
            return min(self.runs, self.slow_peer_large_runs)
        return min(self.runs, self.peer_large_runs)


def _count(text: str) -> int:
    """Parse ``10k``, ``1M``, ``100_000`` or ``1e6`` into an int."""
    text = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}.get(text[-1:], 1)
    if scale != 1:
        text = text[:-1]
    value = float(text) * scale
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(value)


def _counts(text: str) -> list[int]:
    return [_count(part) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Read the command line into Settings."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark workerpoolxt against bare trio, anyio, asyncio, aiometer, threads and process pools.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny sizes and one run each: a check, not a measurement")
    mode.add_argument(
        "--quick",
        action="store_true",
        help="only the headline targets, in about a minute: no deadline and per-job timeout vs bare trio at "
        "N=100k (3 interleaved runs), the PostgreSQL store vs pgqueuer (batches of 64) at 10k tasks, and the "
        "PostgreSQL store's claims after 100k finished tasks (one run each); writes no files unless --output "
        "is given",
    )
    parser.add_argument("--sizes", type=_counts, help="throughput sizes, e.g. 10k,100k,1M (the default; --quick: 100k)")
    parser.add_argument("--runs", type=int, help="runs per cell; the median is reported (default 3)")
    parser.add_argument("--large", type=_count, default=1_000_000, help="sizes from here on are 'large' (1M)")
    parser.add_argument("--peer-large-runs", type=int, default=1, help="runs for the peers at large sizes (default 1)")
    parser.add_argument(
        "--slow-peer-large-runs",
        type=int,
        default=0,
        help="runs for anyio and aiometer at large sizes (default 0: about a minute per run)",
    )
    parser.add_argument("--sync-max-n", type=_count, help="largest size for the thread rows (default 100k)")
    parser.add_argument("--memory-n", type=_count, help="jobs in the peak-RSS scenarios (default 1M)")
    parser.add_argument(
        "--objects-n", type=_count, help="jobs queued to count the bytes of a queued job (default 100k)"
    )
    parser.add_argument("--timeout-n", type=_count, help="jobs in the timeout scenarios (default 10k)")
    parser.add_argument(
        "--parts",
        help=f"which parts to run, of {','.join(PARTS)} (default: all; --quick: throughput,stores,backlog)",
    )
    parser.add_argument(
        "--store-n",
        type=_count,
        help="tasks per durable-store run, and per backlog drain (default 20k, procrastinate 1/4; --quick: 10k)",
    )
    parser.add_argument(
        "--stores",
        help=f"which durable stores to measure, of {','.join(STORE_KEYS)} (default: all; --quick: "
        f"{','.join(QUICK_STORES)})",
    )
    parser.add_argument(
        "--finished-n",
        type=_count,
        help="finished tasks in the table before the backlog drains (default 1M; --quick: 100k)",
    )
    parser.add_argument(
        "--backlog-runs", type=int, help="runs of each backlog drain; the median is reported (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where results.json and results.png go (default: benchmarks/, a new temporary folder with --smoke, "
        "nowhere with --quick)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    smoke, quick = bool(args.smoke), bool(args.quick)
    timeout_n = args.timeout_n or (160 if smoke else 10_000)
    parts_text = args.parts or ("throughput,stores,backlog" if quick else ",".join(PARTS))
    parts = {part.strip() for part in parts_text.split(",") if part.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    stores = tuple(key.strip() for key in args.stores.split(",") if key.strip()) if args.stores else ()
    unknown = set(stores) - set(STORE_KEYS)
    if unknown:
        parser.error(f"unknown stores: {', '.join(sorted(unknown))}")
    if smoke:
        # A smoke run's figures mean nothing, so by default they stay out of the committed results.
        output: Path | None = args.output or Path(tempfile.mkdtemp(prefix="wpxt-benchmarks-smoke-"))
    else:
        # A quick run measures a few rows only: it must not replace the full run's results.
        output = args.output or (None if quick else RESULTS)
    return Settings(
        sizes=args.sizes or ([2_000] if smoke else [100_000] if quick else [10_000, 100_000, 1_000_000]),
        runs=args.runs or (1 if smoke else 3),
        large=args.large,
        peer_large_runs=args.peer_large_runs,
        slow_peer_large_runs=args.slow_peer_large_runs,
        sync_max_n=args.sync_max_n or (2_000 if smoke else 100_000),
        memory_n=args.memory_n or (5_000 if smoke else 1_000_000),
        objects_n=args.objects_n or (2_000 if smoke else 100_000),
        timeout_n=timeout_n,
        process_timeout_n=8 if smoke else 200,
        timeout_workers=[16, timeout_n],
        store_n=args.store_n or (200 if smoke else 10_000 if quick else 20_000),
        finished_n=args.finished_n or (2_000 if smoke else 100_000 if quick else 1_000_000),
        backlog_runs=args.backlog_runs or (1 if smoke or quick else 3),
        parts=parts,
        output=output,
        smoke=smoke,
        quiet=bool(args.quiet),
        quick=quick,
        variants=[variant for variant in VARIANTS if variant.key in QUICK_VARIANTS] if quick else list(VARIANTS),
        stores=stores or (QUICK_STORES if quick else ()),
    )


# -- running children ---------------------------------------------------------------


def run_child(kind: str, name: str, n: int, workers: int = 0) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return what it printed.

    Children run with ``-W error``, so a warning from a peer fails loudly
    instead of scrolling past.
    """
    command = [sys.executable, "-W", "error", "-m", "benchmarks._child", kind, name, str(n), str(workers)]
    done = subprocess.run(  # noqa: S603  # our own interpreter and module, fixed arguments
        command, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
    )
    if done.returncode != 0 or done.stderr.strip():
        raise RuntimeError(f"measurement {kind} {name} n={n} exited with {done.returncode}:\n{done.stderr.strip()}")
    measurement: dict[str, Any] = json.loads(done.stdout)
    if measurement["collected"] != n:
        raise RuntimeError(f"{kind} {name} n={n} collected {measurement['collected']} results, not {n}")
    return measurement


class Progress:
    """Progress lines on stderr, stamped with the time since the start."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


# -- the three parts ----------------------------------------------------------------


def measure_throughput(settings: Settings, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every variant at every size, interleaved; one row per (variant, size)."""
    rates: dict[tuple[str, int], list[float]] = {}
    for n in settings.sizes:
        for repetition in range(settings.runs):
            shift = repetition % len(settings.variants)
            for variant in settings.variants[shift:] + settings.variants[:shift]:
                if repetition >= settings.runs_for(variant, n):
                    continue
                measurement = run_child("throughput", variant.key, n)
                rate = n / measurement["seconds"]
                rates.setdefault((variant.key, n), []).append(rate)
                progress(f"throughput {variant.key} n={n:,} run {repetition + 1}: {rate:,.0f} jobs/s")
    rows: list[dict[str, Any]] = []
    for n in settings.sizes:
        base = rates.get((BASELINE, n))
        base_median = statistics.median(base) if base else None
        for variant in settings.variants:
            runs = rates.get((variant.key, n), [])
            median = statistics.median(runs) if runs else None
            rows.append(
                {
                    "variant": variant.key,
                    "label": variant.label,
                    "n": n,
                    "runs": len(runs),
                    "jobs_per_s": runs,
                    "median_jobs_per_s": median,
                    "ratio_to_bare": median / base_median if median and base_median else None,
                    "collected": n if runs else None,
                }
            )
    return rows


def measure_memory(settings: Settings, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Peak RSS of each scenario, each in its own process."""
    rows: list[dict[str, Any]] = []
    baseline_mib = 0.0
    n = settings.memory_n
    # A peak RSS does not depend on how fast the process runs, so these run two
    # at a time (a core each) to save the suite a minute.
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        measurements = executor.map(lambda scenario: run_child("memory", scenario[0], n), MEMORY_SCENARIOS)
        for (key, label), measurement in zip(MEMORY_SCENARIOS, measurements, strict=True):
            mib = measurement["peak_rss_kib"] / 1024
            if key == "baseline":
                baseline_mib = mib
            above = mib - baseline_mib
            rows.append(
                {
                    "scenario": key,
                    "label": label,
                    "n": n,
                    "peak_rss_mib": mib,
                    "above_baseline_mib": above,
                    "bytes_per_job": above * 1024 * 1024 / n if key != "baseline" else None,
                    "collected": measurement["collected"],
                }
            )
            progress(f"memory {key} n={n:,}: {mib:,.1f} MiB")
    return rows


def measure_objects(settings: Settings, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """The bytes of one queued job: its handle and queue entry, and all it allocates (one row)."""
    n = settings.objects_n
    measurement = run_child("objects", "queued_objects", n)
    if measurement["queued"] != n:
        raise RuntimeError(f"objects: {measurement['queued']} of {n} jobs were queued; the pool did not pause")
    row = {
        "scenario": "queued_shared_job",
        "label": "one shared Job queued N times in a paused pool, handles kept",
        "n": n,
        "handle_bytes": measurement["handle_bytes"],
        "entry_bytes": measurement["entry_bytes"],
        "handle_and_entry_bytes": measurement["handle_bytes"] + measurement["entry_bytes"],
        "job_id_bytes": measurement["job_id_bytes"],
        "queued_at_bytes": measurement["queued_at_bytes"],
        "traced_bytes_per_job": measurement["traced_bytes_per_job"],
        "collected": measurement["collected"],
    }
    progress(
        f"objects n={n:,}: handle + entry {row['handle_and_entry_bytes']} B, "
        f"{row['traced_bytes_per_job']:.0f} B per queued job in all"
    )
    return [row]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` in 0..1)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def measure_timeouts(settings: Settings, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Lateness of TIMED_OUT results, for workerpoolxt and for bare trio, staggered and all at once."""
    rows: list[dict[str, Any]] = []
    n = settings.timeout_n
    for workers in settings.timeout_workers:
        for key, label in (("pool_timeouts", "workerpoolxt"), ("bare_timeouts", "bare trio move_on_after")):
            row = _lateness_row(key, label, workers, n, run_child("timeouts", key, n, workers))
            rows.append(row)
            progress(
                f"timeouts {label} workers={workers:,}: p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
                f"{row['jobs_per_s']:,.0f} jobs/s"
            )
    # Process tasks, one worker per CPU as the process rows run: each timeout kills a process.
    n, workers = settings.process_timeout_n, os.cpu_count() or 1
    measurement = run_child("timeouts", "process_timeouts", n, workers)
    row = _lateness_row("process_timeouts", "workerpoolxt process tasks, killed", workers, n, measurement)
    rows.append(row)
    progress(f"timeouts process tasks workers={workers}: p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms")
    return rows


def _lateness_row(key: str, label: str, workers: int, n: int, measurement: dict[str, Any]) -> dict[str, Any]:
    lateness = measurement["lateness"]
    return {
        "scenario": key,
        "label": label,
        "workers": workers,
        "n": n,
        "all_at_once": workers >= n,
        "p50_ms": percentile(lateness, 0.50) * 1000,
        "p99_ms": percentile(lateness, 0.99) * 1000,
        "max_ms": max(lateness) * 1000,
        "seconds": measurement["seconds"],
        "jobs_per_s": n / measurement["seconds"],
        "collected": measurement["collected"],
    }


# (key, label, share of store_n): the durable-store rows. procrastinate runs a
# quarter of the tasks, as it is an order of magnitude slower.
STORE_SCENARIOS: tuple[tuple[str, str, int], ...] = (
    ("sqlite", "workerpoolxt SQLiteStore", 1),
    ("postgres", "workerpoolxt PostgresStore", 1),
    ("pgqueuer_b64", "pgqueuer, batches of 64 (same PostgreSQL)", 1),
    ("pgqueuer_b10", "pgqueuer, batches of 10, its default (same PostgreSQL)", 1),
    ("procrastinate", "procrastinate 3 (same PostgreSQL)", 4),
)


def _why(error: RuntimeError) -> str:
    """Why a child failed: the exception line of its traceback (the last unindented line), else the first line."""
    lines = str(error).splitlines()
    return next((line for line in reversed(lines[1:]) if line and not line[0].isspace()), lines[0])


def measure_stores(settings: Settings, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Durable-store throughput: enqueue and end to end, one worker process with 128 slots."""
    rows: list[dict[str, Any]] = []
    for key, label, divisor in STORE_SCENARIOS:
        if settings.stores and key not in settings.stores:
            continue
        n = max(settings.store_n // divisor, 1)
        try:
            measurement = run_child("stores", key, n)
        except RuntimeError as error:  # no server, or the optional peer missing: the row says so
            rows.append({"scenario": key, "label": label, "n": n, "error": _why(error)})
            progress(f"stores {label}: not measured ({rows[-1]['error']})")
            continue
        rows.append({"scenario": key, "label": label, "n": n, **measurement})
        progress(
            f"stores {label} n={n:,}: enqueue {measurement['enqueue_per_s']:,.0f}/s, "
            f"end to end {measurement['end_to_end_per_s']:,.0f}/s"
        )
    return rows


# (key, label): the stores of the backlog rows; each drains store_n tasks in three phases (BACKLOG_PHASES).
BACKLOG_STORES: tuple[tuple[str, str], ...] = (
    ("postgres", "workerpoolxt PostgresStore"),
    ("sqlite", "workerpoolxt SQLiteStore"),
)
STORE_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys([key for key, _, _ in STORE_SCENARIOS] + [key for key, _ in BACKLOG_STORES])
)
"""What ``--stores`` chooses from."""
# (key, label, with finished tasks, pruned while draining): the empty table first, the one the others are read against.
BACKLOG_PHASES: tuple[tuple[str, str, bool, bool], ...] = (
    ("empty", "empty table", False, False),
    ("finished", "finished tasks", True, False),
    ("pruning", "finished tasks, pruned meanwhile", True, True),
)


def measure_backlog(settings: Settings, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each store's drain on an empty table, after ``finished_n`` finished tasks, and with them pruned meanwhile.

    Runs are interleaved: repetition ``r`` starts one phase further along, so
    a slow stretch of the machine hits every phase alike.
    """
    n = settings.store_n
    stores = [(key, label) for key, label in BACKLOG_STORES if not settings.stores or key in settings.stores]
    rates: dict[tuple[str, str], list[float]] = {}
    pruned: dict[tuple[str, str], list[int]] = {}
    errors: dict[str, str] = {}
    batches: dict[str, int] = {}
    for repetition in range(settings.backlog_runs):
        shift = repetition % len(BACKLOG_PHASES)
        for key, label in stores:
            for phase, phase_label, finished, prune in BACKLOG_PHASES[shift:] + BACKLOG_PHASES[:shift]:
                if key in errors:
                    continue
                name = f"{key}_backlog_pruned" if prune else f"{key}_backlog"
                try:
                    measurement = run_child("backlog", name, n, settings.finished_n if finished else 0)
                except RuntimeError as error:  # no server: the store's rows say so, and it is tried no more
                    errors[key] = _why(error)
                    progress(f"backlog {label}: not measured ({errors[key]})")
                    continue
                rates.setdefault((key, phase), []).append(measurement["drain_per_s"])
                pruned.setdefault((key, phase), []).append(measurement["pruned"])
                batches[key] = measurement["prune_batch"]
                progress(
                    f"backlog {label}, {phase_label} run {repetition + 1}: {measurement['drain_per_s']:,.0f} tasks/s"
                    + (f", {measurement['pruned']:,} pruned meanwhile" if prune else "")
                )
    rows: list[dict[str, Any]] = []
    for key, label in stores:
        empty = rates.get((key, "empty"))
        for phase, phase_label, finished, prune in BACKLOG_PHASES:
            row: dict[str, Any] = {
                "store": key,
                "label": label,
                "phase": phase,
                "phase_label": phase_label,
                "finished": settings.finished_n if finished else 0,
                "pruning": prune,
                "n": n,
            }
            if key in errors:
                rows.append({**row, "error": errors[key]})
                continue
            runs = rates.get((key, phase), [])
            median = statistics.median(runs) if runs else None
            rows.append(
                {
                    **row,
                    "runs": len(runs),
                    "drain_per_s": runs,
                    "median_drain_per_s": median,
                    "ratio_to_empty": median / statistics.median(empty) if median and empty else None,
                    "pruned": pruned.get((key, phase), []),
                    "prune_batch": batches.get(key) if prune else None,
                }
            )
    return rows


# -- putting it together ------------------------------------------------------------


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": {
            name: _version(name)
            for name in (
                *("workerpoolxt", "trio", "attrs", "anyio", "aiometer", "matplotlib"),
                *("psycopg", "asyncpg", "procrastinate", "pgqueuer", "trio-parallel", "pebble"),
            )
        },
    }


def plan_notes(settings: Settings) -> list[str]:
    """Say which cells got fewer runs than the rest, and why."""
    notes: list[str] = []
    if settings.smoke:
        notes.append("Smoke run: tiny sizes and one run per cell. It checks the suite works; its figures mean nothing.")
    if settings.quick:
        notes.append(
            f"Quick run: {', '.join(QUICK_VARIANTS)} at N={', '.join(f'{n:,}' for n in settings.sizes)} "
            f"({settings.runs} interleaved run(s) each), {' and '.join(QUICK_STORES)} at {settings.store_n:,} "
            f"tasks, and the PostgreSQL drain after {settings.finished_n:,} finished tasks (one run each); only "
            "their targets are reported. `python -m benchmarks` measures everything."
        )
    if "throughput" not in settings.parts:
        return notes
    for n in settings.sizes:
        fewer: dict[int, list[str]] = {}
        for variant in settings.variants:
            runs = settings.runs_for(variant, n)
            if runs < settings.runs:
                fewer.setdefault(runs, []).append(variant.key)
        for runs, keys in sorted(fewer.items()):
            names = ", ".join(keys)
            if runs == 0:
                notes.append(f"N={n:,}: not measured for {names}.")
            else:
                notes.append(f"N={n:,}: {runs} run(s) instead of {settings.runs} for {names}.")
    if any(v.sync for v in settings.variants) and any(n > settings.sync_max_n for n in settings.sizes):
        notes.append(
            f"The thread rows stop at N={settings.sync_max_n:,}: at 10-15k jobs/s (one trio thread hand-off "
            "per job), each run of the two trio thread rows would take 70-110 s at 1M."
        )
    if any(n >= settings.large for n in settings.sizes) and not settings.smoke:
        notes.append(
            f"Why fewer runs from N={settings.large:,}: one run of the one-task-per-job peers takes 15-50 s there, "
            "and one run of anyio or aiometer 60-90 s, so three of each would take the suite well past its "
            "10-minute budget on 2 cores. Bare trio and the workerpoolxt rows keep every run, and the targets "
            f"against the peers are read at N={_report.TARGET_N:,}, where every variant has every run. "
            "`--peer-large-runs` and `--slow-peer-large-runs` change this."
        )
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite, print the Markdown report and write results.json and results.png (unless ``--quick``)."""
    settings = parse_args(argv)
    progress = Progress(settings.quiet)
    started = datetime.datetime.now(datetime.UTC)
    results: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "smoke": settings.smoke,
            "quick": settings.quick,
            "sizes": settings.sizes,
            "runs": settings.runs,
            "concurrency": 16,
            "memory_n": settings.memory_n,
            "objects_n": settings.objects_n,
            "timeout_n": settings.timeout_n,
            "store_n": settings.store_n,
            "finished_n": settings.finished_n,
            "backlog_runs": settings.backlog_runs,
            "timeout_seconds": TIMEOUT_SECONDS,
            "timeout_workers": settings.timeout_workers,
            "command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        },
        "throughput": [],
        "memory": [],
        "objects": [],
        "timeouts": [],
        "stores": [],
        "backlog": [],
    }
    if "throughput" in settings.parts:
        results["throughput"] = measure_throughput(settings, progress)
    if "memory" in settings.parts:
        results["memory"] = measure_memory(settings, progress)
    if "objects" in settings.parts:
        results["objects"] = measure_objects(settings, progress)
    if "timeouts" in settings.parts:
        results["timeouts"] = measure_timeouts(settings, progress)
    if "stores" in settings.parts:
        results["stores"] = measure_stores(settings, progress)
    if "backlog" in settings.parts:
        results["backlog"] = measure_backlog(settings, progress)
    results["scaling"] = _report.scaling(results["throughput"])
    results["targets"] = _report.targets(results)
    if settings.quick:
        results["targets"] = [row for row in results["targets"] if row["key"] in QUICK_TARGETS]
    results["notes"] = plan_notes(settings)
    results["wall_time_s"] = time.perf_counter() - progress.start

    if settings.output is None:
        results["chart"] = None
        print(_report.markdown(results))
        return 0
    settings.output.mkdir(parents=True, exist_ok=True)
    chart = settings.output / "results.png"
    chart_note = _report.chart(results, chart)
    if chart_note:
        results["notes"].append(chart_note)
    results["chart"] = None if chart_note else chart.name
    (settings.output / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(_report.markdown(results))
    progress(f"wrote {settings.output / 'results.json'}" + (f" and {chart}" if results["chart"] else ""))
    return 0
