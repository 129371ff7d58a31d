"""Retries with backoff, and which errors are worth retrying.

Run it with ``python examples/retry.py``.
"""

import trio

import workerpoolxt as wpxt

calls = {"flaky": 0}


async def flaky(options):
    calls["flaky"] += 1
    if calls["flaky"] < 3:
        raise ConnectionError(f"attempt {calls['flaky']} failed")
    return "third time lucky"


async def broken(options):
    raise ValueError("bad input is not worth retrying")


async def sluggish(options):
    await trio.sleep(10)


async def main():
    quick = wpxt.Backoff(initial=0.1, multiplier=2, jitter=0)
    async with wpxt.WorkerPool(4, backoff=quick) as pool:
        pool.submit(wpxt.Job(flaky, retry=5))
        pool.submit(wpxt.Job(broken, retry=5, retry_on=ConnectionError))
        # Each attempt may take 0.2 s; the whole job may take 1 s.
        pool.submit(wpxt.Job(sluggish, retry=10, attempt_timeout=0.2, timeout=1.0))
        results = await pool.stop_wait()
    for r in sorted(results, key=lambda r: r.job_id):
        print(f"{r.name}: {r.status} after {r.attempts} attempt(s): {r.error!r}" if r.error else f"{r.name}: {r.data}")


if __name__ == "__main__":
    trio.run(main)
