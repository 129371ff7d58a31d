"""Named queues, deduplication and locks in a durable store.

Run it with ``python examples/queues_and_locks.py``. A worker serves the
``mail`` queue alone, and leaves the report to the workers of ``reports``; a
refresh enqueued twice while it waits is stored once; and three charges to one
account run one at a time, in the order they were enqueued, though the worker
could run all three at once.
"""

import tempfile
from pathlib import Path

import trio

import workerpoolxt as wpxt
from workerpoolxt.durable import DurableWorker, SQLiteStore, WorkerApp

registry = wpxt.Registry()
running = 0
most_at_once = 0


@registry.register("send_email")
async def send_email(to: str) -> str:
    return f"sent to {to}"


@registry.register("build_report")
async def build_report(month: str) -> str:
    return f"report for {month}"


@registry.register("refresh_profile")
async def refresh_profile(user: int) -> str:
    return f"refreshed user {user}"


@registry.register("charge")
async def charge(account: int, cents: int) -> int:
    global running, most_at_once
    running += 1
    most_at_once = max(most_at_once, running)
    await trio.sleep(0.05)  # the other charges' turn would come now, were it not for the lock
    running -= 1
    return cents


async def main():
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(Path(directory) / "tasks.db", registry=registry)
        await store.init()
        app = WorkerApp(registry, concurrency=3, burst=True, log_outcomes=False)

        # Queues: the job says where it goes, or enqueue() does for jobs that say nothing.
        mail = await store.enqueue([wpxt.Job("send_email", args={"to": "ada@example.com"})], queue="mail")
        report = await store.enqueue([wpxt.Job("build_report", args={"month": "2026-11"}, queue="reports")])
        await DurableWorker(store, app, queues=["mail"], poll=0.02).run()
        for task_id in mail + report:
            record = await store.get(task_id)
            print(record.queue, record.handler, record.status.value)

        # Deduplication: while the first refresh waits, the second is the same task.
        first = await store.enqueue([wpxt.Job("refresh_profile", args={"user": 42}, dedup_key="profile:42")])
        second = await store.enqueue([wpxt.Job("refresh_profile", args={"user": 42}, dedup_key="profile:42")])
        print("the same task:", first == second)

        # Locks: one charge of account 7 at a time, across every worker of the store.
        charges = await store.enqueue(
            [wpxt.Job("charge", args={"account": 7, "cents": cents}, lock="account:7") for cents in (100, 250, 75)]
        )
        await DurableWorker(store, app, poll=0.02).run()  # every queue, the reports' too
        records = [await store.get(task_id) for task_id in charges]
        print("charged in order:", [record.result for record in sorted(records, key=lambda record: record.started_at)])
        print("charges running at once, at most:", most_at_once)
        print(await store.queue_stats())
        await store.aclose()


if __name__ == "__main__":
    trio.run(main)
