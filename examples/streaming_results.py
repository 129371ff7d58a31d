"""Streaming results in bounded memory: back-pressure from the reader to the producer.

Run it with ``python examples/streaming_results.py``.

The queue holds at most ``max_queue`` jobs, so ``asubmit()`` waits for room;
the pool keeps no results (``keep_results=False``), and at most ``max_unread``
wait for the reader, so a reader slower than the workers holds the workers
back, and through them the producer. Memory stays bounded however many jobs run.
"""

import trio

import workerpoolxt as wpxt


async def square(options):
    await trio.lowlevel.checkpoint()
    return options["n"] ** 2


async def main():
    total = 0
    count = 0
    peak_unread = 0
    async with wpxt.WorkerPool(16, max_queue=256, keep_results=False, max_unread=256) as pool:

        async def consume():
            nonlocal total, count, peak_unread
            async for result in pool.results():
                total += result.unwrap()
                count += 1
                peak_unread = max(peak_unread, pool.statistics().unread)
                await trio.lowlevel.checkpoint()  # a reader with work of its own to do

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for n in range(10_000):
                await pool.asubmit(wpxt.Job(square, options={"n": n}))
            kept = await pool.stop_wait()
    print(f"{count} results, sum of squares {total}, results kept by the pool: {len(kept)}")
    print(f"unread results never passed max_unread plus the workers: {peak_unread <= 256 + 16}")


if __name__ == "__main__":
    trio.run(main)
