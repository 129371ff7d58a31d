"""Retention: finished durable tasks are pruned, in bounded batches, and a pruned task says so.

Run it with ``python examples/retention.py``. A worker given
``WorkerApp(retention=timedelta(days=7))`` prunes like this by itself, as it
starts and every minute; ``workerpoolxt prune --older-than 7d`` does it from a
shell. Here the store is pruned by hand, so the example needs no wait.
"""

import tempfile
from pathlib import Path

import trio

import workerpoolxt as wpxt
from workerpoolxt.durable import DurableWorker, SQLiteStore, TaskNotFoundError, WorkerApp

registry = wpxt.Registry()


@registry.register("square")
async def square(n: int) -> int:
    return n * n


async def main():
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(Path(directory) / "tasks.db", registry=registry)
        await store.init()
        ids = await store.enqueue([wpxt.Job("square", args={"n": n}) for n in range(5)])
        await DurableWorker(store, WorkerApp(registry, burst=True, log_outcomes=False), poll=0.02).run()
        print("finished:", [(await store.get(task_id)).result for task_id in ids])
        # Every task finished just now: keep none of them, two per transaction.
        while deleted := await store.prune(older_than=0, limit=2):
            print("pruned", deleted)
        try:
            await store.get(ids[0])
        except TaskNotFoundError as error:
            print(error)
        await store.aclose()


if __name__ == "__main__":
    trio.run(main)
