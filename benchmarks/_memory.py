"""Peak RSS scenarios, each run alone in a fresh process by the suite.

Every scenario returns ``(peak_rss_kib, collected)``. The peak is the process's
``ru_maxrss`` (KiB on Linux), so it includes the interpreter and its imports;
the ``baseline`` scenario measures just those, to subtract by eye.
"""

from __future__ import annotations

import resource
from typing import Any

import trio

import workerpoolxt as wpxt

from ._variants import CONCURRENCY

Outcome = tuple[int, int]
"""Peak RSS in KiB, and how many jobs ended with a correct result."""

# With max_queue, how many jobs may wait at once in the backpressured scenario.
BACKPRESSURE_QUEUE = 1024


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _task(options: Any) -> int:
    await trio.lowlevel.checkpoint()
    return options["i"]  # type: ignore[no-any-return]


def baseline(n: int) -> Outcome:
    """The interpreter with trio and workerpoolxt imported, and an empty pool run."""

    async def main() -> int:
        async with wpxt.WorkerPool(CONCURRENCY) as pool:
            pass
        return len(await pool.stop_wait())

    trio.run(main)
    return _peak_rss_kib(), n


def kept(n: int) -> Outcome:
    """``n`` jobs submitted first (each its own Job and options), then ``stop_wait()`` keeps every Result."""

    async def main() -> int:
        async with wpxt.WorkerPool(CONCURRENCY) as pool:
            for i in range(n):
                pool.submit(wpxt.Job(_task, options={"i": i}))
            results = await pool.stop_wait()
        return sum(1 for result in results if result.data == result.job_id)

    collected = trio.run(main)
    return _peak_rss_kib(), collected


def kept_shared_job(n: int) -> Outcome:
    """One Job submitted ``n`` times, results kept: the pool's own cost per job (handle and Result)."""

    async def main() -> int:
        job = wpxt.Job(_task, options={"i": 0})
        async with wpxt.WorkerPool(CONCURRENCY) as pool:
            for _ in range(n):
                pool.submit(job)
            results = await pool.stop_wait()
        return sum(1 for result in results if result.ok)

    collected = trio.run(main)
    return _peak_rss_kib(), collected


def streaming(n: int) -> Outcome:
    """``keep_results=False``: ``n`` jobs submitted first, ``results()`` consumed concurrently."""

    async def main() -> int:
        collected = 0

        async def consume(pool: wpxt.WorkerPool) -> None:
            nonlocal collected
            async for result in pool.results():
                collected += result.data == result.job_id

        async with wpxt.WorkerPool(CONCURRENCY, keep_results=False) as pool, trio.open_nursery() as nursery:
            nursery.start_soon(consume, pool)
            for i in range(n):
                pool.submit(wpxt.Job(_task, options={"i": i}))
            await pool.stop_wait()
        return collected

    collected = trio.run(main)
    return _peak_rss_kib(), collected


def streaming_backpressure(n: int) -> Outcome:
    """Streaming as above, but submitted with ``asubmit()`` under ``max_queue``, so the queue stays short."""

    async def main() -> int:
        collected = 0

        async def consume(pool: wpxt.WorkerPool) -> None:
            nonlocal collected
            async for result in pool.results():
                collected += result.data == result.job_id

        async with (
            wpxt.WorkerPool(CONCURRENCY, keep_results=False, max_queue=BACKPRESSURE_QUEUE) as pool,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(consume, pool)
            for i in range(n):
                await pool.asubmit(wpxt.Job(_task, options={"i": i}))
            await pool.stop_wait()
        return collected

    collected = trio.run(main)
    return _peak_rss_kib(), collected
