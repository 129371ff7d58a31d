"""Middleware around every attempt: a pool-wide summary log, and a job's own middleware.

Run it with ``python examples/middleware.py``.
"""

import logging
import sys

import trio

import workerpoolxt as wpxt
from workerpoolxt.middleware import summary_log


async def per_tenant(job, call_next):
    # A job's own middleware: it hands the task a value, and skips the task
    # altogether when there is nothing to do.
    job.set("tenant", job.args["tenant"])
    if not job.args["items"]:
        job.code = wpxt.Code.NOTHING_TO_DO
        return 0
    return await call_next()


async def sync_items(options):
    job = wpxt.current_job()
    await trio.sleep(0.3)
    return f"{len(job.args['items'])} items for {job.get('tenant')}"


async def flaky(options):
    if wpxt.current_job().attempt == 1:
        raise ConnectionError("connection reset")
    await trio.sleep(0.25)
    return "ok"


async def main():
    # One summary line per attempt, for every job in the pool.
    async with wpxt.WorkerPool(2, middleware=[summary_log()]) as pool:
        for tenant, items in (("acme", [1, 2, 3]), ("initech", [])):
            args = {"tenant": tenant, "items": items}
            pool.submit(wpxt.Job(sync_items, name=tenant, args=args, middleware=[per_tenant]))
        pool.submit(wpxt.Job(flaky, retry=1, backoff=wpxt.Backoff.none()))
        results = await pool.stop_wait()
    for r in sorted(results, key=lambda r: r.job_id):
        print(f"{r.name}: {r.status} {r.code} {r.data!r}")


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(message)s")
    trio.run(main)
