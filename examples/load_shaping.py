"""Load shaping: ramp workers up slowly, cap the start rate, and send load in tick batches.

Run it with ``python examples/load_shaping.py``.
"""

import logging
import sys

import trio

import workerpoolxt as wpxt


async def query(options):
    await trio.sleep(options.get("seconds", 0.05))


async def request(options):
    job = wpxt.current_job()
    # One slow request in the second batch makes that tick overrun its slot.
    await trio.sleep(0.3 if (job.tick, job.index) == (1, 2) else 0.05)
    return f"{job.tick}/{job.index}"


def started(results, start):
    return ", ".join(f"{r.started_at - start:.1f}" for r in sorted(results, key=lambda r: r.started_at))


async def ramp_up():
    # A cold database gets one worker at first, and one more every 0.1 s.
    start = trio.current_time()
    async with wpxt.WorkerPool(4, ramp_up=0.1) as pool:
        for _ in range(4):
            pool.submit(wpxt.Job(query, options={"seconds": 0.4}))
        results = await pool.stop_wait()
    print(f"ramp_up: queries started at {started(results, start)}")


async def rate_limits():
    # The API allows 5 calls a second, and its geocoder only 2: a job's own
    # max_per_second replaces the pool's, shared by the jobs of that name.
    start = trio.current_time()
    async with wpxt.WorkerPool(10, max_per_second=5) as pool:
        for _ in range(5):
            pool.submit(wpxt.Job(query, name="api"))
        for _ in range(3):
            pool.submit(wpxt.Job(query, name="geocode", max_per_second=2))
        results = await pool.stop_wait()
    for name in ["api", "geocode"]:
        print(f"{name}: started at {started([r for r in results if r.name == name], start)}")


def report(results):
    # Called once every run is done, with the Results in tick and index order.
    slowest = max(results, key=lambda r: r.duration)
    print(f"on_complete: {len(results)} runs {[r.data for r in results]}, slowest {slowest.data}")


async def batches():
    # A load test: 2 requests now, 3 at 0.2 s, 1 at 0.4 s.
    async with wpxt.WorkerPool(4) as pool:
        load = pool.submit_batches(wpxt.Job(request), [2, 3, 1], 0.2, on_complete=report)
        await load.wait()  # any stop ends a series, so wait for it first
        await pool.stop_wait()


async def main():
    await ramp_up()
    await rate_limits()
    await batches()


if __name__ == "__main__":
    # The overrun warning goes to the "workerpoolxt" logger.
    logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
    trio.run(main)
