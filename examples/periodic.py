"""Periodic tasks: jobs a worker enqueues on a schedule, once per tick however many workers run it.

Run it with ``python examples/periodic.py`` (the cron schedule needs
``pip install 'workerpoolxt[cron]'``). The app lists its schedules; every
worker running the app runs them, and the store lets exactly one enqueue
each tick, so start as many workers as you like:
``workerpoolxt worker --store sqlite:///tasks.db --app periodic:app``.
Here one worker runs until the cache was refreshed three times, a few tenths
of a second; the daily digest, at 06:00 in Paris, does not come in that time.
"""

import logging
import tempfile
from pathlib import Path

import trio

import workerpoolxt as wpxt
from workerpoolxt.durable import DurableWorker, Periodic, SQLiteStore, WorkerApp

registry = wpxt.Registry()
runs = 0
worker: DurableWorker | None = None


@registry.register("refresh_cache")
async def refresh_cache(region: str) -> None:
    global runs
    runs += 1
    print(f"refreshing the {region} cache (run {runs})")
    if runs == 3 and worker is not None:
        worker.stop()  # this run finishes; the worker then claims nothing more


@registry.register("send_digest")
async def send_digest() -> None:
    print("sending the daily digest")


app = WorkerApp(
    registry,
    concurrency=1,
    periodic=[
        # Every 0.2s, on the multiples of 0.2s since the epoch, so that every worker agrees on the ticks.
        Periodic(wpxt.Job("refresh_cache", args={"region": "eu"}), every=0.2),
        # At 06:00 in Paris each day; a worker starting after a 06:00 that no worker saw sends it late, once.
        Periodic(wpxt.Job("send_digest"), cron="0 6 * * *", timezone="Europe/Paris", missed="latest"),
    ],
)


async def main():
    global worker
    # At INFO, each tick's task is logged (on stderr) as it is enqueued:
    # "INFO workerpoolxt.durable: periodic refresh_cache: tick ... enqueued as task 1".
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(Path(directory) / "tasks.db", registry=registry)
        worker = DurableWorker(store, app, poll=0.02, log_outcomes=False)
        await worker.run()
        print("succeeded:", (await store.stats()).succeeded)
        await store.aclose()


if __name__ == "__main__":
    trio.run(main)
