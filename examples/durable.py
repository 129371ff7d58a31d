"""Durable tasks: enqueue named jobs in a SQLite file and run them with a DurableWorker.

Run it with ``python examples/durable.py``. The same code runs on PostgreSQL
with ``wpxt.durable.PostgresStore("postgresql://user@host/db")``, and many workers, in
many processes on many machines, can share the store.
"""

import tempfile
from pathlib import Path

import trio

import workerpoolxt as wpxt
import workerpoolxt.durable

registry = wpxt.Registry()


@registry.register("resize")
async def resize(options):
    args = wpxt.current_job().args
    if args["width"] <= 0:
        # Nothing a retry could fix: finalise the task as cancelled.
        raise wpxt.durable.CancelTask(f"bad width {args['width']}")
    await trio.sleep(0.01)
    return {"image": args["image"], "width": args["width"]}


@registry.register("flaky_upload")
async def flaky_upload(options):
    # The store counts attempts across workers and processes: the retry may run anywhere.
    if wpxt.current_job().attempt == 1:
        raise ConnectionError("upload failed")
    return "uploaded"


async def main():
    with tempfile.TemporaryDirectory() as directory:
        store = wpxt.durable.SQLiteStore(Path(directory) / "tasks.db", registry=registry)
        await store.init()
        ids = await store.enqueue(
            [
                wpxt.Job("resize", args={"image": "cat.png", "width": 200}),
                wpxt.Job("resize", args={"image": "dog.png", "width": 0}),
                wpxt.Job("flaky_upload", retry=2, backoff=wpxt.Backoff(initial=0.05, jitter=0)),
            ]
        )
        # Leaving the block stops the worker gracefully: running tasks finish.
        async with wpxt.durable.DurableWorker(store, registry, concurrency=4, poll=0.02):
            records = [await store.wait(task_id, poll=0.02) for task_id in ids]
        for record in records:
            print(record.id, record.handler, record.status, f"attempts={record.attempts}", record.result)
        print(await store.stats())
        await store.aclose()


if __name__ == "__main__":
    trio.run(main)
