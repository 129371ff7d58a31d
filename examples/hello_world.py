"""Hello, world: three jobs, one of them too slow for its timeout.

Run it with ``python examples/hello_world.py``.
"""

import trio

import workerpoolxt as wpxt


async def hello(options):
    return "Hello, world!"


async def slow(options):
    await trio.sleep(10)


async def main():
    async with wpxt.WorkerPool(10, options={"greeting": "hi"}) as pool:
        pool.submit(wpxt.Job(hello, name="My first job"))
        pool.submit(wpxt.Job(slow, name="too slow", timeout=0.5))
        pool.submit(wpxt.Job(hello, name="with retry", retry=3, context=wpxt.Context(timeout=2.0)))
        results = await pool.stop_wait()
    for r in results:
        print(r.name, r.status, r.data, r.error, r.duration, r.attempts)


if __name__ == "__main__":
    trio.run(main)
