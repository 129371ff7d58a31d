"""Deadlines and cancellation: a job timeout, a shared Context, and cancelling it.

Run it with ``python examples/timeouts_and_contexts.py``.
"""

import trio

import workerpoolxt as wpxt


async def nap(options):
    await trio.sleep(options["seconds"])
    return f"slept {options['seconds']} s"


async def main():
    async with wpxt.WorkerPool(4) as pool:
        # `timeout` is the job's own budget, counted from its first start.
        pool.submit(wpxt.Job(nap, name="fits", options={"seconds": 0.1}, timeout=1.0))
        pool.submit(wpxt.Job(nap, name="overruns", options={"seconds": 5}, timeout=0.2))

        # A Context is shared: its deadline is absolute, and cancel() stops every
        # job under it, or under any of its children, at once.
        batch = wpxt.Context(timeout=3.0)
        first = pool.submit(wpxt.Job(nap, name="batch-1", options={"seconds": 60}, context=batch))
        second = pool.submit(wpxt.Job(nap, name="batch-2", options={"seconds": 60}, context=batch.child()))
        await trio.sleep(0.3)
        batch.cancel()
        await first.wait()
        await second.wait()

        results = await pool.stop_wait()
    for r in sorted(results, key=lambda r: r.job_id):
        print(f"{r.name}: {r.status} after {r.duration:.1f} s ({r.error or r.data})")


if __name__ == "__main__":
    trio.run(main)
