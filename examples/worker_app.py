"""A durable worker app, deployed the way a service is: one module holding one WorkerApp.

Deploy it from this directory (``pip install 'workerpoolxt[cli,prometheus,http]'``)::

    export WPXT_STORE=sqlite:///mail.db WPXT_APP=worker_app:app
    workerpoolxt enqueue send_email --args '{"to": "ada@example.com", "subject": "Welcome"}'
    workerpoolxt worker --metrics-port 9100 --health-port 8001

The app holds what every worker of this service needs: its handlers, a
lifespan that opens the client they share once per worker, a middleware
around every attempt, Prometheus metrics and a bounded shutdown. Flags given
on the command line override its settings. ``python examples/worker_app.py``
runs the same app once, in burst mode, against a temporary store.
"""

import contextlib
import json
import logging
import tempfile
from pathlib import Path

import attrs
import trio

import workerpoolxt as wpxt
from workerpoolxt.durable import CancelTask, DurableWorker, SQLiteStore, WorkerApp, lifespan_value
from workerpoolxt.observe import PrometheusMetrics

registry = wpxt.Registry()


class Mailer:
    """The client the handlers share. A real one would hold connections; this one appends to an outbox file."""

    def __init__(self, outbox):
        self.outbox = Path(outbox)

    async def __aenter__(self):
        self._file = await trio.open_file(self.outbox, "a")
        return self

    async def __aexit__(self, *exc_info):
        await self._file.aclose()

    async def send(self, to, subject):
        await self._file.write(json.dumps({"to": to, "subject": subject}) + "\n")
        await self._file.flush()


@contextlib.asynccontextmanager
async def lifespan(app):
    # Entered once per worker, before its first claim; exited after its last task's end is written.
    async with Mailer(app.options["outbox"]) as mailer:
        yield mailer


async def timed(job, call_next):
    # Around every attempt of every task: warn of slow ones.
    started = trio.current_time()
    try:
        return await call_next()
    finally:
        if trio.current_time() - started > 5:
            logging.getLogger("worker_app").warning("task %s (%s) took over 5s", job.task_id, job.name)


@registry.register("send_email")
async def send_email(to: str, subject: str) -> str:
    # A keyword handler: the task's args arrive as arguments, checked when it is enqueued.
    if "@" not in to:
        raise CancelTask(f"not an address: {to!r}")  # nothing a retry could fix
    mailer: Mailer = lifespan_value()
    await mailer.send(to, subject)
    return f"sent to {to}"


app = WorkerApp(
    registry,
    concurrency=8,
    middleware=[timed],
    options={"outbox": "outbox.jsonl"},
    lifespan=lifespan,
    metrics=PrometheusMetrics(),
    shutdown_timeout=30,
)


async def main():
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(Path(directory) / "mail.db", registry=registry)
        await store.init()
        await store.enqueue(
            [
                wpxt.Job("send_email", args={"to": "ada@example.com", "subject": "Welcome"}),
                wpxt.Job("send_email", args={"to": "nobody", "subject": "Welcome"}),
            ]
        )
        # The app as deployed, but run once: its outbox in the temporary directory, and burst mode.
        once = attrs.evolve(app, options={"outbox": Path(directory) / "outbox.jsonl"}, burst=True, log_outcomes=False)
        await DurableWorker(store, once, poll=0.02).run()
        for record in await store.list_tasks():
            print(record.id, record.handler, record.status, record.result)
        print("outbox:", (Path(directory) / "outbox.jsonl").read_text().strip())
        await store.aclose()


if __name__ == "__main__":
    trio.run(main)
