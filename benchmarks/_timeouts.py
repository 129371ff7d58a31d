"""Timeout precision on the real clock: how late a ``TIMED_OUT`` result comes.

Each job sleeps forever under a 20 ms timeout. Lateness is
``finished_at - (started_at + 0.02)``, from the Result's own timestamps (the
trio clock, which is the real clock here). Every scenario returns
``(wall_seconds, collected, lateness_seconds)``; ``collected`` counts the jobs
that really ended ``TIMED_OUT``.

``process_timeouts`` is the same for process tasks: a plain function that
spins the CPU forever, run in a worker process (``run_in="process"``) under a
100 ms timeout, which kills its process; the next job gets a fresh one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import trio

import workerpoolxt as wpxt

TIMEOUT = 0.02
PROCESS_TIMEOUT = 0.1

Outcome = tuple[float, int, list[float]]


async def _sleep_forever(options: Any) -> None:
    await trio.sleep_forever()


def _run_pool(n: int, workers: int, job: Callable[[], wpxt.Job[Any]], timeout: float) -> Outcome:
    """``n`` jobs made by ``job()``, each with ``timeout``, on a pool of ``workers``; the lateness of each.

    A Job per job, as a caller would submit them.
    """

    async def main() -> Outcome:
        start = time.perf_counter()
        async with wpxt.WorkerPool(workers) as pool:
            for _ in range(n):
                pool.submit(job())
            results = await pool.stop_wait()
        elapsed = time.perf_counter() - start
        timed_out = [r for r in results if r.status is wpxt.Status.TIMED_OUT and r.started_at is not None]
        lateness = [r.finished_at - (r.started_at + timeout) for r in timed_out if r.started_at is not None]
        return elapsed, len(timed_out), lateness

    return trio.run(main)


def _run_bare(n: int, workers: int) -> Outcome:
    """The same on bare trio: ``workers`` tasks pulling from a channel, each job under ``move_on_after``."""

    async def main() -> Outcome:
        lateness: list[float] = []
        start = time.perf_counter()
        send, receive = trio.open_memory_channel[int](math.inf)

        async def worker() -> None:
            async for _ in receive:
                started_at = trio.current_time()
                with trio.move_on_after(TIMEOUT) as scope:
                    await trio.sleep_forever()
                if scope.cancelled_caught:
                    lateness.append(trio.current_time() - (started_at + TIMEOUT))

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker)
            with send:
                for i in range(n):
                    send.send_nowait(i)
        elapsed = time.perf_counter() - start
        receive.close()
        return elapsed, len(lateness), lateness

    return trio.run(main)


def pool_timeouts(n: int, workers: int) -> Outcome:
    """workerpoolxt: ``n`` timed-out jobs on ``workers`` workers."""
    return _run_pool(n, workers, lambda: wpxt.Job(_sleep_forever, timeout=TIMEOUT), TIMEOUT)


def bare_timeouts(n: int, workers: int) -> Outcome:
    """Bare trio: ``n`` ``move_on_after`` scopes on ``workers`` workers."""
    return _run_bare(n, workers)


def _spin() -> None:
    """A CPU-bound task that never ends: only killing its process stops it."""
    while True:
        pass


def process_timeouts(n: int, workers: int) -> Outcome:
    """workerpoolxt: ``n`` process tasks that spin forever, each killed at its timeout, on ``workers`` workers."""
    return _run_pool(n, workers, lambda: wpxt.Job(_spin, run_in="process", timeout=PROCESS_TIMEOUT), PROCESS_TIMEOUT)
