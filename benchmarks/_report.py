"""Turning measurements into the targets table, the Markdown report and the chart."""

from __future__ import annotations

import functools
import operator
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_N = 100_000
"""The size the throughput targets are read at."""

# Targets stated once, for the targets table and for the chart's target lines.
PLAIN_VS_BARE = 0.75
TIMEOUT_VS_BARE = 0.5
PROCESS_VS_PEERS = 0.8
"""workerpoolxt's process tasks against ProcessPoolExecutor and against pebble, on the same CPU-bound jobs."""

PROCESS_LATENESS_MS = 50
"""How late, at most, the TIMED_OUT result of a process task killed at its deadline may come (p99)."""
KEPT_SHARED_JOB_MIB = 200
HANDLE_AND_ENTRY_BYTES = 100
POSTGRES_JOBS_PER_S = 10_000
SQLITE_JOBS_PER_S = 5_000
BACKLOG_VS_EMPTY = 0.8
"""Claims hold steady: draining beside many finished tasks at least this fast as on an empty table (within 20 %)."""


def _medians(throughput: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    return {(row["variant"], row["n"]): row["median_jobs_per_s"] for row in throughput if row["median_jobs_per_s"]}


def scaling(throughput: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Throughput at the largest size over the smallest, for every variant measured at both."""
    medians = _medians(throughput)
    rows: list[dict[str, Any]] = []
    seen: list[str] = []
    for row in throughput:
        if row["variant"] not in seen:
            seen.append(row["variant"])
    for variant in seen:
        sizes = sorted(n for (key, n) in medians if key == variant)
        if len(sizes) < 2:
            continue
        small, large = sizes[0], sizes[-1]
        rows.append(
            {
                "variant": variant,
                "small_n": small,
                "large_n": large,
                "small_jobs_per_s": medians[variant, small],
                "large_jobs_per_s": medians[variant, large],
                "ratio": medians[variant, large] / medians[variant, small],
            }
        )
    return rows


def _pick_n(medians: dict[tuple[str, int], float], *variants: str) -> int | None:
    """TARGET_N if every variant was measured there, else the largest size where they all were."""
    common = set.intersection(*({n for (key, n) in medians if key == variant} for variant in variants))
    if not common:
        return None
    return TARGET_N if TARGET_N in common else max(common)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, each with the measured figure and whether it is met (None: not measured).

    Each row has a ``key`` too, so that ``--quick`` can pick its few.
    """
    medians = _medians(results["throughput"])
    rows: list[dict[str, Any]] = []

    def add(key: str, figure: str, target: str, value: float | None, met: Callable[[float], bool], shown: str) -> None:
        rows.append(
            {
                "key": key,
                "figure": figure,
                "target": target,
                "value": value,
                "measured": shown if value is not None else "not measured",
                "met": None if value is None else bool(met(value)),
            }
        )

    def ratio(key: str, figure: str, numerator: str, denominator: str, minimum: float, of: str = "") -> None:
        n = _pick_n(medians, numerator, denominator)
        value = None if n is None else medians[numerator, n] / medians[denominator, n]
        figure = f"{figure}, N={n:,}" if n else figure
        add(key, figure, f"≥ {minimum:g} x{of}", value, lambda v: v >= minimum, f"{value or 0:.2f}x")

    ratio("plain_vs_bare", "no deadline, results kept", "wpxt_plain", "trio_fixed", PLAIN_VS_BARE, " bare trio")
    ratio("timeout_vs_bare", "per-job timeout", "wpxt_timeout", "trio_fixed", TIMEOUT_VS_BARE, " bare trio")
    ratio(
        "timeout_vs_asyncio",
        "per-job timeout vs asyncio TaskGroup+Semaphore+asyncio.timeout",
        "wpxt_timeout",
        "asyncio_semaphore_timeout",
        1.5,
    )
    ratio("plain_vs_aiometer", "no deadline vs aiometer.run_all", "wpxt_plain", "aiometer_run_all", 3.0)
    ratio("plain_vs_anyio", "no deadline vs anyio TaskGroup+CapacityLimiter", "wpxt_plain", "anyio_limiter", 3.0)
    ratio("middleware_vs_plain", "one no-op middleware vs the plain pool", "wpxt_middleware", "wpxt_plain", 0.8)
    ratio("prometheus_vs_plain", "PrometheusMetrics attached vs the plain pool", "wpxt_prometheus", "wpxt_plain", 0.7)
    ratio("sync_vs_threadpool", "sync tasks vs ThreadPoolExecutor(16).map", "wpxt_sync", "threadpool_map", 0.3)
    ratio(
        "process_vs_executor",
        "1 ms CPU tasks in processes vs ProcessPoolExecutor().map",
        "wpxt_process",
        "process_pool_executor",
        PROCESS_VS_PEERS,
    )
    ratio(
        "process_vs_pebble",
        "1 ms CPU tasks in processes vs pebble ProcessPool().map",
        "wpxt_process",
        "pebble_map",
        PROCESS_VS_PEERS,
    )

    # The rows with a Job per job are reported without a target: a caller's
    # Jobs cost what they hold (a million Job(task, options={...}) take about
    # 430 MiB before any pool exists), so the pool's own cost is judged with one
    # shared Job, and bounded memory with asubmit() under max_queue.
    memory = {row["scenario"]: row for row in results["memory"]}
    for scenario, figure, limit in (
        ("kept_shared_job", "queued jobs of one shared Job, results kept: peak RSS", KEPT_SHARED_JOB_MIB),
        ("streaming_backpressure", "streaming, asubmit() with max_queue: peak RSS", 100),
    ):
        row = memory.get(scenario)
        value = row["peak_rss_mib"] if row else None
        name = f"{row['n']:,} {figure}" if row else figure
        add(
            f"memory_{scenario}",
            name,
            f"≤ {limit} MiB",
            value,
            functools.partial(operator.ge, limit),
            f"{value or 0:.0f} MiB",
        )

    objects = next(iter(results.get("objects") or []), None)
    value = objects["handle_and_entry_bytes"] if objects else None
    add(
        "handle_and_entry",
        f"handle and queue entry of each of {objects['n']:,} queued jobs" if objects else "handle and queue entry",
        f"≤ {HANDLE_AND_ENTRY_BYTES} B",
        value,
        functools.partial(operator.ge, HANDLE_AND_ENTRY_BYTES),
        # The whole cost beside it, so the figure does not read as all a queued job takes.
        f"{value} B ({objects['traced_bytes_per_job']:.0f} B per queued job in all)" if objects else "",
    )

    scale = next(
        (row for row in results.get("scaling") or scaling(results["throughput"]) if row["variant"] == "wpxt_plain"),
        None,
    )
    value = scale["ratio"] if scale else None
    figure = (
        f"no deadline: {scale['large_n']:,} vs {scale['small_n']:,} throughput" if scale else "1M vs 10k throughput"
    )
    add(
        "scaling",
        figure,
        "within 20 %",
        value,
        lambda v: abs(v - 1) <= 0.2,
        f"{value or 0:.2f}x ({((value or 0) - 1) * 100:+.0f} %)",
    )

    staggered = next(
        (row for row in results["timeouts"] if row["scenario"] == "pool_timeouts" and not row["all_at_once"]), None
    )
    value = staggered["p99_ms"] if staggered else None
    figure = (
        f"timeout lateness p99, {staggered['n']:,} jobs on {staggered['workers']} workers"
        if staggered
        else "timeout lateness p99"
    )
    add("timeout_lateness", figure, "≤ 2 ms", value, lambda v: v <= 2.0, f"{value or 0:.2f} ms")
    killed = next((row for row in results["timeouts"] if row["scenario"] == "process_timeouts"), None)
    value = killed["p99_ms"] if killed else None
    add(
        "process_timeout_lateness",
        "process tasks: timeout lateness p99, each process killed",
        f"≤ {PROCESS_LATENESS_MS} ms",
        value,
        lambda v: v <= PROCESS_LATENESS_MS,
        f"{value or 0:.2f} ms",
    )

    stores = {row["scenario"]: row for row in results.get("stores", []) if "error" not in row}

    def end_to_end(key: str) -> float | None:
        row = stores.get(key)
        return None if row is None else float(row["end_to_end_per_s"])

    for key, name, minimum in (
        ("postgres", "PostgreSQL", POSTGRES_JOBS_PER_S),
        ("sqlite", "SQLite", SQLITE_JOBS_PER_S),
    ):
        value = end_to_end(key)
        add(
            key,
            f"{name} store end to end",
            f"≥ {minimum:,} jobs/s",
            value,
            functools.partial(operator.le, minimum),
            f"{value or 0:,.0f} jobs/s",
        )
    ours, theirs = end_to_end("postgres"), end_to_end("procrastinate")
    value = None if ours is None or theirs is None else ours / theirs
    add(
        "postgres_vs_procrastinate",
        "PostgreSQL store end to end vs procrastinate",
        "≥ 10 x",
        value,
        lambda v: v >= 10,
        f"{value or 0:.1f}x",
    )
    theirs = end_to_end("pgqueuer_b64")
    value = None if ours is None or theirs is None else ours / theirs
    add(
        "postgres_vs_pgqueuer_b64",
        "PostgreSQL store end to end vs pgqueuer (batches of 64)",
        "≥ 1.0 x",
        value,
        lambda v: v >= 1.0,
        f"{value or 0:.2f}x",
    )

    backlog = {(row["store"], row["phase"]): row for row in results.get("backlog") or [] if row.get("ratio_to_empty")}
    for key, name in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        row = backlog.get((key, "finished"))
        value = row["ratio_to_empty"] if row else None
        finished = f"{_short(row['finished'])} finished tasks" if row else "many finished tasks"
        add(
            f"{key}_backlog",
            f"{name} store: claims after {finished} vs an empty table",
            f"≥ {BACKLOG_VS_EMPTY:g} x",
            value,
            functools.partial(operator.le, BACKLOG_VS_EMPTY),
            f"{value or 0:.2f}x",
        )
    return rows


# -- Markdown -------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _short(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def _met(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[met]


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    machine = results["machine"]
    versions = machine["versions"]
    settings = results["settings"]
    lines = ["# workerpoolxt benchmarks", ""]
    peers = ", ".join(f"{name} {versions[name]}" for name in ("anyio", "aiometer", "pebble") if versions.get(name))
    lines += [
        f"- Machine: {machine['cores']} cores ({machine['cpu'] or 'unknown CPU'}), {machine['platform']}",
        f"- Python {machine['python']} ({machine['python_implementation']}), trio {versions['trio']}, "
        f"workerpoolxt {versions['workerpoolxt']}; peers: {peers or 'none installed'}",
        f"- Date: {results['date']}; command: `{settings['command']}`; suite wall time {results['wall_time_s']:.0f} s",
        "",
    ]

    throughput = results["throughput"]
    if throughput:
        sizes = settings["sizes"]
        lines += [
            "## Throughput",
            "",
            f"N trivial async jobs (one checkpoint each, returning the index), concurrency {settings['concurrency']}, "
            "every result collected and checked. Jobs/s is the median of the runs (run count after the slash); "
            "x is the ratio to bare trio fixed workers at the same N. Each run is a fresh process, and runs are "
            "interleaved across variants.",
            "",
        ]
        header = ["variant"]
        for n in sizes:
            header += [f"N={_short(n)} jobs/s", "x"]
        by_variant: dict[str, dict[int, dict[str, Any]]] = {}
        for row in throughput:
            by_variant.setdefault(row["variant"], {})[row["n"]] = row
        rows = []
        for cells in by_variant.values():
            first = next(iter(cells.values()))
            line = [first["label"]]
            for n in sizes:
                cell = cells.get(n)
                if not cell or not cell["median_jobs_per_s"]:
                    line += ["—", "—"]
                    continue
                line += [f"{cell['median_jobs_per_s']:,.0f} /{cell['runs']}", f"{cell['ratio_to_bare']:.2f}"]
            rows.append(line)
        lines += [*_table(header, rows), ""]

    if results.get("scaling"):
        lines += ["## Scaling", "", "Throughput at the largest N over the smallest (1.00 is flat).", ""]
        rows = [
            [
                row["variant"],
                f"{row['small_jobs_per_s']:,.0f}",
                f"{row['large_jobs_per_s']:,.0f}",
                f"{row['ratio']:.2f}",
            ]
            for row in results["scaling"]
        ]
        first = results["scaling"][0]
        header = ["variant", f"N={_short(first['small_n'])} jobs/s", f"N={_short(first['large_n'])} jobs/s", "ratio"]
        lines += [*_table(header, rows), ""]

    if results["memory"]:
        lines += [
            "## Peak RSS",
            "",
            "Each scenario in a fresh process; `ru_maxrss` of the whole process, so it includes the interpreter "
            "(the baseline row). Each job is `Job(task, options={'i': i})` unless said otherwise.",
            "",
        ]
        rows = [
            [
                row["label"],
                f"{row['n']:,}" if row["scenario"] != "baseline" else "—",
                f"{row['peak_rss_mib']:,.1f}",
                f"{row['above_baseline_mib']:,.1f}" if row["scenario"] != "baseline" else "—",
                f"{row['bytes_per_job']:,.0f}" if row["bytes_per_job"] is not None else "—",
            ]
            for row in results["memory"]
        ]
        lines += [*_table(["scenario", "jobs", "peak RSS MiB", "above baseline MiB", "bytes/job"], rows), ""]

    for row in results.get("objects") or []:
        lines += [
            "## Bytes per queued job",
            "",
            f"{row['n']:,} submissions of one shared Job queued in a paused pool, every handle kept, in a fresh "
            "process. The handle and the queue entry are `sys.getsizeof` of each; all in all is what tracemalloc "
            "counts the submissions allocate, over N: the handle, the entry, the entry's job id "
            f"({row['job_id_bytes']} B) and queue time ({row['queued_at_bytes']} B), and the queue's deque slot.",
            "",
            f"- handle + entry: {row['handle_and_entry_bytes']} B "
            f"(handle {row['handle_bytes']} B, entry {row['entry_bytes']} B)",
            f"- per queued job in all, with the id and queue time that its Result later keeps: "
            f"{row['traced_bytes_per_job']:.0f} B",
            "",
        ]

    if results["timeouts"]:
        lines += [
            "## Timeout precision (real clock)",
            "",
            f"Each job sleeps forever under a {settings['timeout_seconds'] * 1000:.0f} ms timeout; lateness is "
            "`finished_at - (started_at + timeout)`. With as many workers as jobs, every job times out at once; "
            "jobs/s is jobs over the wall time from the first submit to the last result. The process tasks' row: "
            'plain functions that spin the CPU forever in worker processes (`run_in="process"`), one worker per '
            "CPU, under a 100 ms timeout that kills the process; the next job gets a fresh one.",
            "",
        ]
        rows = [
            [
                row["label"],
                f"{row['workers']:,}",
                f"{row['n']:,}",
                f"{row['p50_ms']:.2f}",
                f"{row['p99_ms']:.2f}",
                f"{row['max_ms']:.2f}",
                f"{row['jobs_per_s']:,.0f}",
            ]
            for row in results["timeouts"]
        ]
        header = ["runner", "workers", "jobs", "p50 late ms", "p99 late ms", "max late ms", "jobs/s"]
        lines += [*_table(header, rows), ""]

    if results.get("stores"):
        lines += [
            "## Durable stores",
            "",
            "Enqueue: tasks stored in batches of 1,000. End to end: from the first enqueue until every task has "
            "been claimed, run (a no-op) and completed, by one worker process with 128 slots. Each row in a fresh "
            "file, schema or database; PostgreSQL is the local server. Every row ANALYZEs its tables after the "
            "enqueue, outside the timed window.",
            "",
        ]
        rows = [
            [row["label"], f"{row['n']:,}", "not measured", row["error"]]
            if "error" in row
            else [row["label"], f"{row['n']:,}", f"{row['enqueue_per_s']:,.0f}", f"{row['end_to_end_per_s']:,.0f}"]
            for row in results["stores"]
        ]
        lines += [*_table(["store", "tasks", "enqueue jobs/s", "end to end jobs/s"], rows), ""]

    if results.get("backlog"):
        batch = next((row["prune_batch"] for row in results["backlog"] if row.get("prune_batch")), None)
        lines += [
            "## Claims after many finished tasks",
            "",
            "One worker process with 128 slots drains the tasks queued in a fresh table or file, timed from its "
            "start until every task is done: on an empty table; after the finished (succeeded) tasks were written "
            "into it in one INSERT ... SELECT (and, in PostgreSQL, VACUUM ANALYZE, as autovacuum would have "
            f"done); and with them while a second store prunes them in batches of {batch or 0:,} as fast as it "
            "can, as `workerpoolxt prune` catching up would. Tasks/s is the median of the runs (run count after "
            "the slash), interleaved; x is the ratio to the empty table.",
            "",
        ]
        drains: list[list[str]] = []
        for row in results["backlog"]:
            columns = [row["label"], row["phase_label"], f"{row['finished']:,}", f"{row['n']:,}"]
            if "error" in row:
                drains.append([*columns, "not measured", row["error"], ""])
                continue
            median = row["median_drain_per_s"]
            pruned = f"{statistics.median(row['pruned']):,.0f}" if row["pruning"] and row["pruned"] else "—"
            ratio = row["ratio_to_empty"]
            drains.append(
                [*columns, f"{median:,.0f} /{row['runs']}" if median else "—", f"{ratio:.2f}" if ratio else "—", pruned]
            )
        header = ["store", "table", "finished tasks", "tasks drained", "drain tasks/s", "x empty", "pruned meanwhile"]
        lines += [*_table(header, drains, "llrrrrr"), ""]

    lines += ["## Targets", ""]
    rows = [[row["figure"], row["target"], row["measured"], _met(row["met"])] for row in results["targets"]]
    lines += [*_table(["figure", "target", "measured", "status"], rows, "llrl"), ""]

    if results["notes"]:
        lines += ["## Notes", "", *(f"- {note}" for note in results["notes"]), ""]
    return "\n".join(lines)


# -- the chart --------------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> str | None:
    """Draw results.png, a panel per measured part with its target lines; a note instead without matplotlib."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if path.exists():
            path.unlink()  # a chart from an earlier run would not match this report
        return "matplotlib is not installed (`pip install -e .[bench]`), so there is no chart."

    panels = [name for name in ("throughput", "memory", "timeouts", "stores") if results.get(name)]
    if not panels:
        return "Nothing was measured, so there is no chart."
    heights = {"throughput": 2.0, "memory": 1.0, "timeouts": 1.0, "stores": 0.8}
    figure, axes = plt.subplots(
        len(panels),
        1,
        figsize=(11, 1 + 4 * sum(heights[panel] for panel in panels)),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"height_ratios": [heights[panel] for panel in panels]},
    )
    for axis, panel in zip(axes[:, 0], panels, strict=True):
        draw = {
            "throughput": _throughput_panel,
            "memory": _memory_panel,
            "timeouts": _timeouts_panel,
            "stores": _stores_panel,
        }[panel]
        draw(axis, results)
    machine = results["machine"]
    figure.suptitle(
        f"workerpoolxt benchmarks: {machine['cores']} cores, Python {machine['python']}, "
        f"trio {machine['versions']['trio']}, {results['date'][:10]}"
    )
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return None


def _target_line(axis: Any, value: float, color: str, label: str) -> None:
    axis.axvline(value, color=color, linestyle="--", linewidth=0.8, label=f"target, {label}")


def _throughput_panel(axis: Any, results: dict[str, Any]) -> None:
    sizes = results["settings"]["sizes"]
    labels: list[str] = []
    by_variant: dict[str, dict[int, float]] = {}
    for row in results["throughput"]:
        if row["label"] not in labels:
            labels.append(row["label"])
        if row["ratio_to_bare"]:
            by_variant.setdefault(row["label"], {})[row["n"]] = row["ratio_to_bare"]
    height = 0.8 / len(sizes)
    for index, n in enumerate(sizes):
        positions = [y + index * height for y in range(len(labels))]
        values = [by_variant.get(label, {}).get(n, 0.0) for label in labels]
        axis.barh(positions, values, height=height, label=f"N={_short(n)}")
    axis.set_yticks([y + height * (len(sizes) - 1) / 2 for y in range(len(labels))], labels, fontsize=8)
    axis.invert_yaxis()
    axis.axvline(1.0, color="black", linewidth=0.8)
    _target_line(axis, PLAIN_VS_BARE, "tab:red", f"no deadline: {PLAIN_VS_BARE}")
    _target_line(axis, TIMEOUT_VS_BARE, "tab:orange", f"per-job timeout: {TIMEOUT_VS_BARE}")
    axis.set_xlabel("throughput / bare trio fixed workers (higher is better)")
    axis.set_title("Throughput, 16 at once (missing bar: not measured)")
    axis.legend(loc="lower right", fontsize=8)


def _memory_panel(axis: Any, results: dict[str, Any]) -> None:
    rows = results["memory"]
    labels = [row["label"] for row in rows]
    axis.barh(range(len(rows)), [row["peak_rss_mib"] for row in rows], color="tab:purple")
    axis.set_yticks(range(len(rows)), labels, fontsize=8)
    axis.invert_yaxis()
    _target_line(axis, KEPT_SHARED_JOB_MIB, "tab:green", f"kept, one shared Job: {KEPT_SHARED_JOB_MIB} MiB")
    _target_line(axis, 100, "tab:orange", "streaming under max_queue: 100 MiB")
    axis.set_xlabel("peak RSS, MiB (lower is better)")
    axis.set_title(f"Peak RSS, {rows[0]['n']:,} jobs")
    axis.legend(loc="lower right", fontsize=8)


def _timeouts_panel(axis: Any, results: dict[str, Any]) -> None:
    rows = results["timeouts"]
    labels = [f"{row['label']}, {row['workers']:,} workers" for row in rows]
    positions = range(len(rows))
    axis.barh([y - 0.2 for y in positions], [row["p50_ms"] for row in rows], height=0.4, label="p50")
    axis.barh([y + 0.2 for y in positions], [row["p99_ms"] for row in rows], height=0.4, label="p99")
    axis.set_yticks(list(positions), labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    _target_line(axis, 2.0, "tab:red", "p99: 2 ms")
    axis.set_xlabel("lateness of the TIMED_OUT result, ms (log scale, lower is better)")
    axis.set_title(f"Timeout precision, {rows[0]['n']:,} jobs with a 20 ms timeout")
    axis.legend(loc="best", fontsize=8)


def _stores_panel(axis: Any, results: dict[str, Any]) -> None:
    rows = results["stores"]
    labels = [f"{row['label']}, {row['n']:,} tasks" + (" (not measured)" if "error" in row else "") for row in rows]
    values = [0.0 if "error" in row else row["end_to_end_per_s"] for row in rows]
    axis.barh(range(len(rows)), values, color="tab:cyan")
    axis.set_yticks(range(len(rows)), labels, fontsize=8)
    axis.invert_yaxis()
    _target_line(axis, POSTGRES_JOBS_PER_S, "tab:red", f"PostgreSQL: {POSTGRES_JOBS_PER_S:,} jobs/s")
    _target_line(axis, SQLITE_JOBS_PER_S, "tab:orange", f"SQLite: {SQLITE_JOBS_PER_S:,} jobs/s")
    axis.set_xlabel("end to end jobs/s: enqueue, claim, run a no-op, complete (higher is better)")
    axis.set_title("Durable stores, one worker process with 128 slots")
    axis.legend(loc="lower right", fontsize=8)  # beside the last row, procrastinate's short bar
