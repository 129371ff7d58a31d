"""Options: pool defaults, per-job replacements, and a plain function in a thread.

Run it with ``python examples/options.py``.
"""

import trio

import workerpoolxt as wpxt


async def greet(options):
    return f"{options['greeting']}, {options.get('name', 'stranger')}"


def shout(options):
    # A plain function runs in a thread, so blocking calls are fine here.
    return options["text"].upper()


async def main():
    async with wpxt.WorkerPool(2, options={"greeting": "Hello"}) as pool:
        pool.submit(wpxt.Job(greet, name="default options"))
        # A job's options replace the pool's entirely: nothing is merged.
        pool.submit(wpxt.Job(greet, name="own options", options={"greeting": "Hi", "name": "Ada"}))
        pool.submit(wpxt.Job(shout, options={"text": "threads too"}))
        results = await pool.stop_wait()
    for r in sorted(results, key=lambda r: r.job_id):
        print(f"{r.name}: {r.data}")


if __name__ == "__main__":
    trio.run(main)
