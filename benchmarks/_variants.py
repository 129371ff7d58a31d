"""The throughput variants: N trivial jobs at concurrency 16, every result collected.

Each job does one checkpoint and returns its index. Every variant is a plain
function ``run(n) -> (seconds, collected)``: it starts its own event loop,
times from the first submission to the moment it holds every result, and
returns how many correct results it collected, so the suite can check that no
variant skipped work. Peers are imported inside their variant, so a missing
optional extra fails only the rows that need it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import os
import time
from collections.abc import Callable
from typing import Any

import trio

CONCURRENCY = 16

Outcome = tuple[float, int]
"""Seconds from the first submission to the last result collected, and how many correct results."""


def _count_indices(values: list[Any]) -> int:
    """How many of ``values`` hold their own index: the check that every job ran and returned."""
    return sum(1 for index, value in enumerate(values) if value == index)


# -- workerpoolxt ----------------------------------------------------------------


async def _wpxt_task(options: Any) -> int:
    await trio.lowlevel.checkpoint()
    return options["i"]  # type: ignore[no-any-return]


def _wpxt_sync_task(options: Any) -> int:
    return options["i"]  # type: ignore[no-any-return]


def _run_wpxt(
    n: int,
    task: Callable[..., Any],
    pool_fields: dict[str, Any] | None = None,
    workers: int = CONCURRENCY,
    **job_fields: Any,
) -> Outcome:
    import workerpoolxt as wpxt

    async def main() -> Outcome:
        job_class = wpxt.Job
        start = time.perf_counter()
        fields = dict(pool_fields or {})
        metrics = fields.pop("metrics", None)
        pool = wpxt.WorkerPool(workers, **fields)
        if metrics is not None:
            metrics.attach(pool)
        async with pool:
            submit = pool.submit
            for i in range(n):
                submit(job_class(task, options={"i": i}, **job_fields))
            results = await pool.stop_wait()
        elapsed = time.perf_counter() - start
        values: list[Any] = [None] * n
        for result in results:
            if result.ok:
                values[result.job_id] = result.data
        return elapsed, _count_indices(values)

    return trio.run(main)


def wpxt_plain(n: int) -> Outcome:
    """workerpoolxt, no deadline."""
    return _run_wpxt(n, _wpxt_task)


def wpxt_timeout(n: int) -> Outcome:
    """workerpoolxt, a per-job ``timeout=60``."""
    return _run_wpxt(n, _wpxt_task, timeout=60)


def wpxt_retry(n: int) -> Outcome:
    """workerpoolxt, ``retry=3`` and no failures."""
    return _run_wpxt(n, _wpxt_task, retry=3)


async def _noop_middleware(job: Any, call_next: Callable[[], Any]) -> Any:
    return await call_next()


def wpxt_middleware(n: int) -> Outcome:
    """workerpoolxt, one no-op middleware on the pool."""
    return _run_wpxt(n, _wpxt_task, {"middleware": [_noop_middleware]})


def wpxt_prometheus(n: int) -> Outcome:
    """workerpoolxt, with PrometheusMetrics attached."""
    from workerpoolxt.observe import PrometheusMetrics

    return _run_wpxt(n, _wpxt_task, {"metrics": PrometheusMetrics()})


def wpxt_sync(n: int) -> Outcome:
    """workerpoolxt, plain functions run in threads."""
    return _run_wpxt(n, _wpxt_sync_task)


# -- bare trio -------------------------------------------------------------------


async def _trio_job(i: int) -> int:
    await trio.lowlevel.checkpoint()
    return i


def trio_fixed(n: int) -> Outcome:
    """Bare trio, the limit: 16 workers pulling from a memory channel."""

    async def main() -> Outcome:
        values: list[Any] = [None] * n
        start = time.perf_counter()
        send, receive = trio.open_memory_channel[int](math.inf)

        async def worker() -> None:
            async for i in receive:
                values[i] = await _trio_job(i)

        async with trio.open_nursery() as nursery:
            for _ in range(CONCURRENCY):
                nursery.start_soon(worker)
            with send:
                for i in range(n):
                    send.send_nowait(i)
        elapsed = time.perf_counter() - start
        receive.close()
        return elapsed, _count_indices(values)

    return trio.run(main)


def trio_limiter(n: int) -> Outcome:
    """Bare trio, the naive way: a nursery and a CapacityLimiter, one task per job."""

    async def main() -> Outcome:
        values: list[Any] = [None] * n
        limiter = trio.CapacityLimiter(CONCURRENCY)
        start = time.perf_counter()

        async def one(i: int) -> None:
            async with limiter:
                values[i] = await _trio_job(i)

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
        return time.perf_counter() - start, _count_indices(values)

    return trio.run(main)


# -- anyio and aiometer, on the trio backend ----------------------------------


def anyio_limiter(n: int) -> Outcome:
    """anyio on trio: a TaskGroup and a CapacityLimiter, one task per job."""
    import anyio

    async def job(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        return i

    async def main() -> Outcome:
        values: list[Any] = [None] * n
        limiter = anyio.CapacityLimiter(CONCURRENCY)
        start = time.perf_counter()

        async def one(i: int) -> None:
            async with limiter:
                values[i] = await job(i)

        async with anyio.create_task_group() as group:
            for i in range(n):
                group.start_soon(one, i)
        return time.perf_counter() - start, _count_indices(values)

    return anyio.run(main, backend="trio")


def aiometer_run_all(n: int) -> Outcome:
    """aiometer.run_all with max_at_once=16, on trio (aiometer runs on anyio)."""
    import aiometer

    async def main() -> Outcome:
        start = time.perf_counter()
        values = await aiometer.run_all([functools.partial(_trio_job, i) for i in range(n)], max_at_once=CONCURRENCY)
        return time.perf_counter() - start, _count_indices(values)

    return trio.run(main)


# -- asyncio -----------------------------------------------------------------------


async def _asyncio_job(i: int) -> int:
    await asyncio.sleep(0)
    return i


def asyncio_semaphore(n: int) -> Outcome:
    """asyncio: a TaskGroup and a Semaphore, one task per job."""

    async def main() -> Outcome:
        values: list[Any] = [None] * n
        semaphore = asyncio.Semaphore(CONCURRENCY)
        start = time.perf_counter()

        async def one(i: int) -> None:
            async with semaphore:
                values[i] = await _asyncio_job(i)

        async with asyncio.TaskGroup() as group:
            for i in range(n):
                group.create_task(one(i))
        return time.perf_counter() - start, _count_indices(values)

    return asyncio.run(main())


def asyncio_semaphore_timeout(n: int) -> Outcome:
    """asyncio: a TaskGroup and a Semaphore, with ``asyncio.timeout(60)`` per job."""

    async def main() -> Outcome:
        values: list[Any] = [None] * n
        semaphore = asyncio.Semaphore(CONCURRENCY)
        start = time.perf_counter()

        async def one(i: int) -> None:
            async with semaphore:
                async with asyncio.timeout(60):
                    values[i] = await _asyncio_job(i)

        async with asyncio.TaskGroup() as group:
            for i in range(n):
                group.create_task(one(i))
        return time.perf_counter() - start, _count_indices(values)

    return asyncio.run(main())


# -- threads ---------------------------------------------------------------------------


def _sync_job(i: int) -> int:
    return i


def threadpool_map(n: int) -> Outcome:
    """concurrent.futures.ThreadPoolExecutor(16).map, the reference for sync tasks."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as executor:
        values = list(executor.map(_sync_job, range(n)))
    return time.perf_counter() - start, _count_indices(values)


def trio_to_thread(n: int) -> Outcome:
    """Bare trio for sync tasks: 16 workers from a memory channel, each job through ``trio.to_thread.run_sync``.

    This is the floor of running each sync job on trio's threads, which is what
    workerpoolxt does; it separates trio's per-call thread hand-off from the
    pool's own cost.
    """

    async def main() -> Outcome:
        values: list[Any] = [None] * n
        limiter = trio.CapacityLimiter(CONCURRENCY)
        start = time.perf_counter()
        send, receive = trio.open_memory_channel[int](math.inf)

        async def worker() -> None:
            async for i in receive:
                values[i] = await trio.to_thread.run_sync(_sync_job, i, limiter=limiter)

        async with trio.open_nursery() as nursery:
            for _ in range(CONCURRENCY):
                nursery.start_soon(worker)
            with send:
                for i in range(n):
                    send.send_nowait(i)
        elapsed = time.perf_counter() - start
        receive.close()
        return elapsed, _count_indices(values)

    return trio.run(main)


# -- processes -------------------------------------------------------------------------

PROCESS_WORK = 20_000
"""Loop turns of each process row's job: about a millisecond of CPU."""

PROCESSES = os.cpu_count() or 1
"""The process rows' concurrency: one process per CPU, as ``ProcessPoolExecutor()`` has."""


def _cpu_job(i: int) -> int:
    total = 0
    for turn in range(PROCESS_WORK):
        total += turn
    return i if total else -1


def _wpxt_cpu_task(options: Any) -> int:
    return _cpu_job(options["i"])


def wpxt_process(n: int) -> Outcome:
    """workerpoolxt, plain functions in processes (run_in="process"), one worker per CPU, about 1 ms of CPU each."""
    return _run_wpxt(n, _wpxt_cpu_task, workers=PROCESSES, run_in="process")


def process_pool_executor(n: int) -> Outcome:
    """concurrent.futures.ProcessPoolExecutor().map over the same work, the reference for process tasks."""
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(PROCESSES) as executor:
        values = list(executor.map(_cpu_job, range(n)))
    return time.perf_counter() - start, _count_indices(values)


def pebble_map(n: int) -> Outcome:
    """pebble's ProcessPool, one worker per CPU, ``map`` over the same work, as its documentation shows."""
    import pebble

    start = time.perf_counter()
    with pebble.ProcessPool(max_workers=PROCESSES) as pool:
        values = list(pool.map(_cpu_job, range(n)).result())
    return time.perf_counter() - start, _count_indices(values)
