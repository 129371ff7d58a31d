"""Where the time goes, for RESULTS.md's profile findings.

``python -m benchmarks._profile VARIANT [N] [LINES]`` runs one throughput
variant under cProfile and prints the functions with the most own time.
cProfile adds a fixed cost to every Python call, so read the shares, not the
absolute times.

``python -m benchmarks._profile breakdown [N]`` times the phases of the
no-deadline workload without a profiler, in microseconds per job: building
the Jobs, submitting them, and running them to their Results, for bare trio and
for workerpoolxt, with the garbage collector on and off.
"""

from __future__ import annotations

import cProfile
import gc
import math
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

import workerpoolxt as wpxt

from . import _variants

Phases = tuple[float, float, float]
"""Seconds spent building jobs, submitting them, and running them to their results."""


async def _bare_phases(n: int) -> Phases:
    values: list[Any] = [None] * n
    send, receive = trio.open_memory_channel[int](math.inf)

    async def worker() -> None:
        async for i in receive:
            values[i] = await _variants._trio_job(i)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(_variants.CONCURRENCY):
            nursery.start_soon(worker)
        with send:
            for i in range(n):
                send.send_nowait(i)
            submitted = time.perf_counter()
    done = time.perf_counter()
    receive.close()
    assert values == list(range(n))
    return 0.0, submitted - start, done - submitted


async def _pool_phases(n: int, kind: str) -> Phases:
    task = _variants._wpxt_task
    start = time.perf_counter()
    if kind == "shared":
        jobs = [wpxt.Job(task, options={"i": 0})] * n
    elif kind == "timeout":
        jobs = [wpxt.Job(task, options={"i": i}, timeout=60) for i in range(n)]
    else:
        jobs = [wpxt.Job(task, options={"i": i}) for i in range(n)]
    built = time.perf_counter()
    async with wpxt.WorkerPool(_variants.CONCURRENCY) as pool:
        for job in jobs:
            pool.submit(job)
        submitted = time.perf_counter()
        results = await pool.stop_wait()
    done = time.perf_counter()
    assert len(results) == n
    assert all(result.ok for result in results)
    return built - start, submitted - built, done - submitted


def breakdown(n: int) -> None:
    """Print the per-job cost of each phase, best of three, with GC on and off."""
    runners: dict[str, Callable[[], Any]] = {
        "bare trio, 16 workers + channel": lambda: _bare_phases(n),
        "workerpoolxt, Job per job": lambda: _pool_phases(n, "plain"),
        "workerpoolxt, one shared Job": lambda: _pool_phases(n, "shared"),
        "workerpoolxt, Job per job, timeout=60": lambda: _pool_phases(n, "timeout"),
    }
    print(f"microseconds per job, N={n:,}, best of 3 by total")
    print(f"{'':40} {'gc':>4} {'build':>7} {'submit':>7} {'run':>7} {'total':>7}")
    for gc_on in (True, False):
        for label, runner in runners.items():
            if not gc_on:
                gc.disable()
            try:
                best = min((trio.run(runner) for _ in range(3)), key=sum)
            finally:
                gc.enable()
            cells = " ".join(f"{seconds / n * 1e6:7.2f}" for seconds in (*best, sum(best)))
            print(f"{label:40} {'on' if gc_on else 'off':>4} {cells}")


def profile(name: str, n: int, lines: int) -> None:
    """Run one variant under cProfile and print the top of the profile."""
    variant = getattr(_variants, name)
    variant(min(n, 1_000))  # warm up imports and caches outside the profile
    profiler = cProfile.Profile()
    seconds, collected = profiler.runcall(variant, n)
    assert collected == n, f"{name} collected {collected} of {n} results"
    print(f"{name}, N={n:,}: {n / seconds:,.0f} jobs/s under cProfile")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(lines)


def main(argv: list[str]) -> None:
    if argv[0] == "breakdown":
        breakdown(int(argv[1]) if len(argv) > 1 else 100_000)
    else:
        profile(argv[0], int(argv[1]) if len(argv) > 1 else 100_000, int(argv[2]) if len(argv) > 2 else 30)


if __name__ == "__main__":
    main(sys.argv[1:])
