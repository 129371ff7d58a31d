"""Streaming results: consume them as they finish, keeping none in the pool.

Run it with ``python examples/streaming_results.py``.
"""

import trio

import workerpoolxt as wpxt


async def square(options):
    await trio.lowlevel.checkpoint()
    return options["n"] ** 2


async def main():
    total = 0
    count = 0
    async with wpxt.WorkerPool(16, keep_results=False) as pool:

        async def consume():
            nonlocal total, count
            async for result in pool.results():
                total += result.unwrap()
                count += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for n in range(10_000):
                pool.submit(wpxt.Job(square, options={"n": n}))
            kept = await pool.stop_wait()
    print(f"{count} results, sum of squares {total}, results kept by the pool: {len(kept)}")


if __name__ == "__main__":
    trio.run(main)
