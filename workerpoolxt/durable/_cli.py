"""``python -m workerpoolxt``: run a durable worker, enqueue tasks, and look at a store.

python -m workerpoolxt worker --store sqlite:///jobs.db --registry mymodule:registry --concurrency 16
python -m workerpoolxt enqueue --store sqlite:///jobs.db send_email --args '{"to": "a@b"}'
python -m workerpoolxt status --store sqlite:///jobs.db [TASK_ID ...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from .._errors import WorkerPoolError, sole_exception
from .._job import Job
from .._registry import Registry
from ._store import DEFAULT_MAX_LOST_LEASES, Order, Store
from ._worker import DurableWorker

__all__ = ["main", "open_store"]


def open_store(url: str, *, registry: Registry | None = None, read_only: bool = False) -> Store:
    """Open the store a URL names; ``read_only`` opens an existing one, to read only (see ``SQLiteStore``).

    - ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``: a ``SQLiteStore``.
    - ``postgresql://user@host:port/db`` (or ``postgres://``), in any form
      libpq accepts, such as ``postgresql:///db`` for the local socket or
      ``postgresql:///db?host=/var/run/postgresql``, with an optional
      ``schema=name`` parameter (default ``workerpoolxt``): a ``PostgresStore``.
      The URL goes to libpq as given, without ``schema``.

    Raises:
        ValueError: The URL is malformed or names no known kind of store.
    """
    if not isinstance(url, str):
        raise TypeError(f"`url` must be a str, not {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise ValueError(
                f"a SQLite store URL is sqlite:///relative/path.db or sqlite:////absolute/path.db, got {url!r}"
            )
        from ._sqlite import SQLiteStore

        return SQLiteStore(parts.path[1:], registry=registry, read_only=read_only)
    if parts.scheme in ("postgresql", "postgres"):
        # The URL goes to libpq as given, but for `schema`, which is ours:
        # rebuilt, postgresql:///db (libpq's local socket) would lose its "//".
        base, _, query = url.partition("?")
        pairs = [pair.partition("=") for pair in query.split("&") if pair]
        names = {name for name, _, _ in pairs}
        if not parts.hostname and not parts.path.strip("/") and not names & {"host", "hostaddr"}:
            raise ValueError(f"a PostgreSQL store URL is postgresql://user@host:port/database, got {url!r}")
        schemas = [urllib.parse.unquote(value) for name, _, value in pairs if name == "schema"]
        schema = schemas[-1] if schemas else "workerpoolxt"
        kept = "&".join("".join(pair) for pair in pairs if pair[0] != "schema")
        dsn = f"{base}?{kept}" if kept else base
        from ._postgres import PostgresStore

        return PostgresStore(dsn, registry=registry, schema=schema, read_only=read_only)
    raise ValueError(f"unknown store URL {url!r}: use sqlite:///path.db or postgresql://user@host/database")


def load_registry(spec: str) -> Registry:
    """Import ``module:attribute`` and return it, if it is a Registry."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"--registry must look like module:attribute, got {spec!r}")
    # As `python -m` does for its module: the current directory is importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    registry = getattr(module, attribute, None)
    if not isinstance(registry, Registry):
        raise TypeError(f"{spec} must be a workerpoolxt.Registry, not {type(registry).__name__}")
    return registry


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workerpoolxt", description="Durable workerpoolxt tasks.")
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run tasks from a store until SIGINT or SIGTERM")
    worker.add_argument("--store", required=True, help="sqlite:///path.db or postgresql://user@host/db")
    worker.add_argument("--registry", required=True, help="module:attribute of the handlers' Registry")
    worker.add_argument("--concurrency", type=int, default=8)
    worker.add_argument("--lease", type=float, default=30.0, help="seconds before a silent worker's tasks are retaken")
    worker.add_argument("--heartbeat", type=float, default=10.0)
    worker.add_argument(
        "--max-lost-leases",
        type=int,
        default=DEFAULT_MAX_LOST_LEASES,
        help="times a task's worker may die with the task still run again",
    )
    worker.add_argument("--poll", type=float, default=1.0)
    worker.add_argument("--order", choices=[order.value for order in Order], default="fifo")
    worker.add_argument("--worker-id")
    worker.add_argument(
        "--give-up-after",
        type=float,
        default=300.0,
        help="seconds of failed claims, with none succeeding, after which the worker exits with status 2",
    )

    enqueue = commands.add_parser("enqueue", help="add tasks to a store and print their ids")
    enqueue.add_argument("--store", required=True)
    enqueue.add_argument("--registry", help="module:attribute, to refuse unknown handler names")
    enqueue.add_argument("handler")
    enqueue.add_argument("--args", default="{}", help="the task's arguments as a JSON object")
    enqueue.add_argument("--retry", type=int, default=None)
    enqueue.add_argument("--timeout", type=float, default=None)
    enqueue.add_argument("--priority", type=int, default=0)
    enqueue.add_argument("--count", type=int, default=1, help="how many copies to add")

    status = commands.add_parser("status", help="print the counts per status, or the given tasks as JSON")
    status.add_argument("--store", required=True)
    status.add_argument("task_ids", nargs="*", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        registry = load_registry(arguments.registry) if getattr(arguments, "registry", None) else None
        # status only reads: a mistyped store must not be created.
        store = open_store(arguments.store, registry=registry, read_only=arguments.command == "status")
        if arguments.command == "worker":
            assert registry is not None
            trio.run(_work, store, registry, arguments)
        elif arguments.command == "enqueue":
            trio.run(_enqueue, store, arguments)
        else:
            trio.run(_status, store, arguments)
    except BaseException as exc:
        # trio's nurseries wrap even a lone exception in a group.
        error = (sole_exception(exc, prefer=None) or exc) if isinstance(exc, BaseExceptionGroup) else exc
        if not isinstance(error, _USER_ERRORS):
            # Bare, not in trio's group: a handler's SystemExit(3) exits with 3, and no group traceback.
            raise error from None
        parser.exit(2, f"error: {error}\n")
    return 0


# What a command reports as a one-line error rather than a traceback.
_USER_ERRORS = (WorkerPoolError, ValueError, TypeError, ImportError, ConnectionError, OSError)


async def _work(store: Store, registry: Registry, arguments: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = DurableWorker(
        store,
        registry,
        concurrency=arguments.concurrency,
        lease=arguments.lease,
        heartbeat=arguments.heartbeat,
        max_lost_leases=arguments.max_lost_leases,
        poll=arguments.poll,
        order=arguments.order,
        worker_id=arguments.worker_id,
        give_up_after=arguments.give_up_after,
    )
    log = logging.getLogger("workerpoolxt")
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                log.info("worker %s started", worker.worker_id)
                nursery.start_soon(_stop_on_signals, worker, signals, log)
                await worker.wait_stopped()
                nursery.cancel_scope.cancel()
        log.info("worker %s stopped: %s", worker.worker_id, worker.statistics())
    finally:
        await store.aclose()


async def _stop_on_signals(worker: DurableWorker, signals: Any, log: logging.Logger) -> None:
    # The first signal stops gracefully; a second one cancels the running tasks too.
    cancel_running = False
    async for signum in signals:
        log.info(
            "got %s: %s", signal.Signals(signum).name, "cancelling running tasks" if cancel_running else "stopping"
        )
        worker.stop(cancel_running=cancel_running)
        cancel_running = True


async def _enqueue(store: Store, arguments: argparse.Namespace) -> None:
    try:
        args = json.loads(arguments.args)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--args must be a JSON object: {exc}") from None
    if arguments.count < 1:
        raise ValueError("--count must be at least 1")
    job = Job(arguments.handler, args=args, retry=arguments.retry, timeout=arguments.timeout)
    try:
        await store.init()
        ids = await store.enqueue([job] * arguments.count, priority=arguments.priority)
    finally:
        await store.aclose()
    print("\n".join(map(str, ids)))


async def _status(store: Store, arguments: argparse.Namespace) -> None:
    try:
        await store.init()  # read-only: checks that the store is there
        if not arguments.task_ids:
            print(json.dumps(attrs.asdict(await store.stats())))
            return
        for task_id in arguments.task_ids:
            print(json.dumps(attrs.asdict(await store.get(task_id))))
    finally:
        await store.aclose()
