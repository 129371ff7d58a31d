"""Peak RSS scenarios, and the objects behind one queued job, each run alone in a fresh process by the suite.

Every peak-RSS scenario returns ``(peak_rss_kib, collected)``. The peak is the
process's ``ru_maxrss`` (KiB on Linux), so it includes the interpreter and its
imports; the ``baseline`` scenario measures just those, to subtract by eye.
``queued_objects`` instead counts the bytes of the objects one queued job costs.
"""

from __future__ import annotations

import resource
import sys
import tracemalloc
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


def queued_objects(n: int) -> dict[str, Any]:
    """What one queued job costs the pool: its handle, its queue entry, and everything else it allocates.

    A paused pool queues ``n`` submissions of one shared Job, and the caller
    keeps every handle. Two figures come out. ``sys.getsizeof`` of a handle
    and of its queue entry (``JobHandle._entry``, private, read here only) is
    the pool's own record of the job. tracemalloc, started after the pool is
    open and with the caller's list of handles made beforehand, counts every
    byte the submissions allocate: the handle, the entry, the entry's job id
    (an int) and queue time (a float), which its Result later keeps, and the
    queue's deque slots. Then the pool resumes and runs every job, so the
    suite can check that all of them ran.
    """

    async def main() -> dict[str, Any]:
        job = wpxt.Job(_task, options={"i": 0})
        handles: list[Any] = [None] * n  # made before the tracing: the caller's list is not the pool's cost
        async with wpxt.WorkerPool(CONCURRENCY) as pool:
            async with pool.paused():
                tracemalloc.start()
                before = tracemalloc.get_traced_memory()[0]
                for i in range(n):
                    handles[i] = pool.submit(job)
                traced = tracemalloc.get_traced_memory()[0] - before
                tracemalloc.stop()
                queued = pool.waiting_queue_size
            results = await pool.stop_wait()
        entry = handles[-1]._entry
        return {
            "handle_bytes": sys.getsizeof(handles[-1]),
            "entry_bytes": sys.getsizeof(entry),
            "job_id_bytes": sys.getsizeof(entry.job_id),
            "queued_at_bytes": sys.getsizeof(entry.queued_at),
            "traced_bytes_per_job": traced / n,
            "queued": queued,
            "collected": sum(1 for result in results if result.ok),
        }

    return trio.run(main)
