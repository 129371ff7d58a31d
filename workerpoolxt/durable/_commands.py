"""The ``workerpoolxt`` command's subcommands, on click (the ``cli`` extra).

Every option has help text and shows its default, and ``--store`` and
``--app`` also come from ``WPXT_STORE`` and ``WPXT_APP``. Errors are not
printed here: they rise to ``_cli.main()``, which gives them one format.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, TypeVar

import attrs
import click
import trio

from .. import Job
from ._app import WorkerApp
from ._cli import UserCodeError, load_app, load_registry, open_store
from ._store import DEFAULT_MAX_LOST_LEASES, PRUNE_LIMIT, AdminStore, Order, SQLStore, Store, TaskRecord, TaskStatus
from ._worker import DurableWorker

__all__ = ["run"]

F = TypeVar("F", bound=Callable[..., Any])

_LOG: Final = logging.getLogger("workerpoolxt")

# A task id as the stores keep it (a 64-bit signed int, from 1): a larger one is refused as a mistake, not an overflow.
_TASK_ID: Final = click.IntRange(1, 2**63 - 1)

# The fields of a task record that hold times, shown as ISO 8601.
_TIME_FIELDS: Final = ("created_at", "run_at", "started_at", "finished_at", "heartbeat_at")

# The extra fields a DurableWorker's outcome lines carry, which --log-format json emits.
_LOG_FIELDS: Final = ("task_id", "handler", "attempt", "max_attempts", "status", "duration", "worker_id", "error")


# A duration: a plain number of seconds, or a number and a unit, as in 30s, 15m, 12h, 7d.
_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_DURATION: Final = 100 * 365 * 86400
"""A century: longer is surely a typo."""


def _duration(*, allow_zero: bool) -> Callable[[click.Context, click.Parameter, str | None], float | None]:
    """An option's callback that reads a duration (``90``, ``30s``, ``15m``, ``12h``, ``7d``) as seconds.

    A callback rather than a ``click.ParamType``, which is generic in some click versions and not in others.
    """

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        match = _DURATION.fullmatch(value.strip().lower())
        if match is None:
            raise click.BadParameter(
                f"{value!r} is not a duration: give seconds, or a number and s, m, h or d (7d, 12h)", ctx, param
            )
        seconds = float(match[1]) * _UNITS[match[2]]
        if seconds > _MAX_DURATION:
            raise click.BadParameter(f"{value!r} is more than a century", ctx, param)
        if seconds == 0 and not allow_zero:
            raise click.BadParameter(f"{value!r} must be more than zero", ctx, param)
        return seconds

    return convert


def run(argv: Sequence[str] | None, prog_name: str) -> int:
    """Run the command line; return the exit status. click's own errors become ``ValueError``s, for main()."""
    try:
        result = cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C outside the worker, at a prompt
        return 130
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        raise ValueError(f"{error.format_message()}{hint}") from None
    except click.ClickException as error:
        raise ValueError(error.format_message()) from None
    # --help and --version end with their exit status; a command ends with its own.
    return result if isinstance(result, int) else 0


def _store_option(function: F) -> F:
    return click.option(
        "--store",
        "store_url",
        envvar="WPXT_STORE",
        show_envvar=True,
        required=True,
        metavar="URL",
        help="The store: sqlite:///path.db (relative) or sqlite:////abs/path.db, or postgresql://user@host/db "
        "with an optional ?schema=name.",
    )(function)


def _json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(function)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100},
)
@click.version_option(package_name="workerpoolxt", prog_name="workerpoolxt", message="%(prog)s %(version)s")
def cli() -> None:
    """Run durable workerpoolxt tasks, and look after the store that keeps them.

    A store is named by URL (--store or WPXT_STORE). A worker runs the tasks
    with the handlers of an app, a WorkerApp or a Registry named as
    module:attribute (--app or WPXT_APP).
    """


# -- worker ------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--app",
    "--registry",
    "app_spec",
    envvar="WPXT_APP",
    show_envvar=True,
    required=True,
    metavar="MODULE:ATTR",
    help="The WorkerApp to run, or a bare Registry, as module:attribute; the current directory is importable.",
)
@_store_option
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Tasks run at once.  [default: 8]")
@click.option(
    "--lease",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    help="Seconds without a heartbeat after which another worker may take a task.",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    help="Seconds between heartbeats; below --lease.",
)
@click.option(
    "--max-lost-leases",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_LOST_LEASES,
    help="Times a task's worker may die with the task still run again.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    help="Seconds between looks at a store that does not notify (SQLite).",
)
@click.option(
    "--order",
    type=click.Choice([order.value for order in Order]),
    default=Order.FIFO.value,
    help="Which queued tasks to claim first; 'priority' takes the highest --priority first.",
)
@click.option(
    "--queue",
    "queue_names",
    multiple=True,
    metavar="NAMES",
    help="Claim only the tasks of these queues: --queue mail,reports, or the flag again.  [default: every queue]",
)
@click.option(
    "--worker-id", default=None, help="How this worker names itself in the store.  [default: host:pid:random]"
)
@click.option(
    "--give-up-after",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    help="Seconds of failing claims, none succeeding, after which the worker exits with status 2.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds a stop waits for running tasks before it cancels them and hands them back.  [default: no limit]",
)
@click.option("--burst", is_flag=True, help="Run what is queued now, then exit.")
@click.option(
    "--retention",
    callback=_duration(allow_zero=False),
    default=None,
    metavar="DURATION",
    help="Delete the tasks that finished longer ago than this (30s, 15m, 12h, 7d, or seconds), every minute.  "
    "[default: keep them, or as the app says]",
)
@click.option("--host", default="127.0.0.1", help="The address --metrics-port and --health-port listen on.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve Prometheus metrics on /metrics at this port (the prometheus extra).",
)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve /ready (200 or 503) at this port, for probes (the http extra).",
)
@click.option("-v", "--verbose", count=True, help="Log more: -v adds debug lines.")
@click.option("-q", "--quiet", count=True, help="Log less: -q leaves warnings and errors, -qq errors only.")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="The log level; overrides -v and -q.  [default: INFO, or as -v and -q say]",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="Text lines, or one JSON object per line with the task's fields.",
)
def worker(app_spec: str, store_url: str, **settings: Any) -> int:
    """Run tasks from the store until SIGINT or SIGTERM.

    The first signal stops claiming and waits for the running tasks (at most
    --shutdown-timeout); a second one cancels them and hands them back to the
    store. Each task's outcome is logged, one line each.
    """
    logging_flags = [settings.pop(name) for name in ("verbose", "quiet", "log_level", "log_format")]
    app = load_app(app_spec)
    if settings["metrics_port"] is not None and getattr(app.metrics, "registry", None) is None:
        raise ValueError(
            f"--metrics-port serves the app's metrics, and {app_spec} has none: "
            "give it WorkerApp(..., metrics=PrometheusMetrics())"
        )
    if app.lifespan is not None:
        app = attrs.evolve(app, lifespan=_traced_lifespan(app.lifespan, app_spec))
    store = open_store(store_url, registry=app.registry)
    # Once the command line holds no mistake, so that one is reported on its own line, as every other command does.
    _configure_logging(*logging_flags)
    trio.run(_work, store, app, settings)
    return 0


def _traced_lifespan(
    lifespan: Callable[[WorkerApp], AbstractAsyncContextManager[Any]], spec: str
) -> Callable[[WorkerApp], AbstractAsyncContextManager[Any]]:
    """``lifespan``, whose errors as it enters are the user's code's: shown with their traceback, not as one line.

    A ValueError from a lifespan reading its configuration is a bug to find in
    the user's file, not a mistake on the command line.
    """

    @contextlib.asynccontextmanager
    async def traced(app: WorkerApp) -> AsyncIterator[Any]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                value = await stack.enter_async_context(lifespan(app))
            except Exception as error:
                raise UserCodeError(f"the lifespan of {spec}", error) from error
            yield value

    return traced


def _configure_logging(verbose: int, quiet: int, level: str | None, log_format: str) -> None:
    if level is None:
        level = ("DEBUG", "INFO", "WARNING", "ERROR")[max(0, min(3, 1 + quiet - verbose))]
    handler = logging.StreamHandler()
    handler.setFormatter(
        JSONFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601), level, logger and message, and a task's fields when it has them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _LOG_FIELDS:
            if field in record.__dict__:
                line[field] = record.__dict__[field]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# The worker's flags that are also WorkerApp fields: one left at its default keeps the app's value.
_APP_FLAGS: Final = ("concurrency", "shutdown_timeout", "retention")


def _queues(flags: Sequence[str]) -> list[str] | None:
    """The queues of the --queue flags, each a comma-separated list; None if none was given."""
    names = [name.strip() for flag in flags for name in flag.split(",") if name.strip()]
    if flags and not names:
        raise ValueError("--queue must name at least one queue")
    return names or None


async def _work(store: Store, app: WorkerApp, settings: dict[str, Any]) -> None:
    overrides = {name: settings[name] for name in _APP_FLAGS if settings[name] is not None}
    if settings["burst"]:
        overrides["burst"] = True
    worker = DurableWorker(
        store,
        app,
        lease=settings["lease"],
        heartbeat=settings["heartbeat"],
        max_lost_leases=settings["max_lost_leases"],
        poll=settings["poll"],
        order=settings["order"],
        queues=_queues(settings["queue_names"]),
        worker_id=settings["worker_id"],
        give_up_after=settings["give_up_after"],
        **overrides,
    )
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                if settings["metrics_port"] is not None:
                    await nursery.start(_serve_metrics, app, settings["host"], settings["metrics_port"])
                if settings["health_port"] is not None:
                    await nursery.start(_serve_health, worker, settings["host"], settings["health_port"])
                _LOG.info("worker %s started", worker.worker_id)
                nursery.start_soon(_stop_on_signals, worker, signals)
                await worker.wait_stopped()
                nursery.cancel_scope.cancel()
        _LOG.info("worker %s stopped: %s", worker.worker_id, worker.statistics())
    finally:
        await store.aclose()


async def _serve_metrics(
    app: WorkerApp, host: str, port: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the app's Prometheus registry on /metrics with prometheus-client's own server, until cancelled."""
    import prometheus_client

    server, thread = prometheus_client.start_http_server(port, addr=host, registry=app.metrics.registry)
    _LOG.info("serving Prometheus metrics on http://%s:%d/metrics", host, port)
    try:
        task_status.started()
        await trio.sleep_forever()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def _serve_health(
    worker: DurableWorker, host: str, port: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``worker.health()`` on /ready (200 or 503, with the reasons as JSON) through hypercorn, until cancelled."""
    try:
        import hypercorn.config
        import hypercorn.trio
    except ImportError as error:  # pragma: no cover - the extra is installed in CI
        raise ImportError("--health-port serves /ready with hypercorn: pip install 'workerpoolxt[http]'") from error
    config = hypercorn.config.Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = config.errorlog = None
    _LOG.info("serving readiness on http://%s:%d/ready", host, port)
    await hypercorn.trio.serve(_health_app(worker), config, task_status=task_status)  # type: ignore[arg-type]


def _health_app(worker: DurableWorker) -> Callable[..., Awaitable[None]]:
    """The smallest ASGI app hypercorn can serve: /ready, and 404 for anything else."""

    async def app(
        scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/ready":
            health = worker.health()
            status_code = 200 if health.healthy else 503
            body: dict[str, Any] = {
                "healthy": health.healthy,
                "reasons": list(health.reasons),
                "running": worker.statistics().running,
                "worker_id": worker.worker_id,
            }
        else:
            status_code, body = 404, {"error": f"no such path: {scope['path']}; try /ready"}
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status_code, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


async def _stop_on_signals(worker: DurableWorker, signals: Any) -> None:
    # The first signal stops gracefully; a second one cancels the running tasks too.
    cancel_running = False
    async for signum in signals:
        name = signal.Signals(signum).name
        running = worker.statistics().running
        tasks = "1 running task" if running == 1 else f"{running} running tasks"
        if cancel_running:
            _LOG.info("got %s: cancelling running tasks (%s)", name, tasks)
        elif running:
            them = "it" if running == 1 else "them"
            _LOG.info("got %s: stopping, waiting for %s; signal again to cancel %s", name, tasks, them)
        else:
            _LOG.info("got %s: stopping", name)
        worker.stop(cancel_running=cancel_running)
        cancel_running = True


# -- enqueue -----------------------------------------------------------------------------


@cli.command()
@_store_option
@click.argument("handler")
@click.option("--args", "args_json", default="{}", metavar="JSON", help="The task's arguments, a JSON object.")
@click.option("--retry", type=int, default=None, help="Retries after a failed attempt.  [default: 0]")
@click.option(
    "--timeout", type=float, default=None, help="Seconds the task may run, all attempts included.  [default: none]"
)
@click.option("--priority", type=int, default=0, help="Higher first, for workers run with --order priority.")
@click.option(
    "--in",
    "delay",
    type=click.FloatRange(0, 10 * 365 * 24 * 3600),
    default=None,
    help="Run it no sooner than this many seconds from now (at most ten years).  [default: now]",
)
@click.option(
    "--at",
    "at",
    default=None,
    metavar="WHEN",
    help="Run it no sooner than this ISO 8601 time (local time unless it has an offset).",
)
@click.option("--count", type=click.IntRange(1, 100_000), default=1, help="How many copies to add, in one transaction.")
@click.option("--queue", default=None, help="The queue to put it in.  [default: default]")
@click.option(
    "--dedup-key",
    default=None,
    metavar="KEY",
    help="If a task with this key waits for its first run, add nothing and print that task's id.",
)
@click.option("--lock", default=None, metavar="KEY", help="Run it only while no other task with this lock runs.")
@click.option(
    "--app",
    "--registry",
    "registry_spec",
    envvar="WPXT_APP",
    show_envvar=True,
    default=None,
    metavar="MODULE:ATTR",
    help="An app or Registry, to refuse unknown handlers and bad arguments before they are stored.",
)
def enqueue(store_url: str, handler: str, args_json: str, **settings: Any) -> int:
    """Add tasks to the store and print their ids, one per line."""
    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--args must be a JSON object: {exc}") from None
    if settings["delay"] is not None and settings["at"] is not None:
        raise ValueError("give --in or --at, not both")
    run_at = None
    if settings["delay"] is not None:
        run_at = time.time() + settings["delay"]
    elif settings["at"] is not None:
        run_at = _parse_time(settings["at"], "--at")
    registry = load_registry(settings["registry_spec"], "--app") if settings["registry_spec"] else None
    job = Job(
        handler,
        args=args,
        retry=settings["retry"],
        timeout=settings["timeout"],
        queue=settings["queue"],
        dedup_key=settings["dedup_key"],
        lock=settings["lock"],
    )
    store = open_store(store_url, registry=registry)
    ids = trio.run(_enqueue, store, [job] * settings["count"], settings["priority"], run_at)
    click.echo("\n".join(map(str, ids)))
    return 0


def _parse_time(text: str, option: str) -> float:
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"{option} must be an ISO 8601 time such as 2026-12-01T09:30:00+00:00, got {text!r}") from None


async def _enqueue(store: Store, jobs: list[Job[Any]], priority: int, run_at: float | None) -> list[int]:
    async with _opened(store):
        return await store.enqueue(jobs, priority=priority, run_at=run_at)


# -- reading and changing the store ------------------------------------------------------------


@cli.command()
@_store_option
@click.argument("task_ids", nargs=-1, type=_TASK_ID, metavar="[TASK_ID]...")
@_json_option
def status(store_url: str, task_ids: tuple[int, ...], as_json: bool) -> int:
    """Show the counts per status, how long the queue has waited and the running tasks; or the tasks named.

    Reads only: a store that does not exist is an error, and is not created.
    """
    store = open_store(store_url, read_only=True)
    if task_ids:
        records = trio.run(_read, store, lambda: _get_all(store, task_ids))
        _print_records(records, as_json)
    else:
        overview = trio.run(_read, store, lambda: _overview(_admin(store)))
        click.echo(json.dumps(overview) if as_json else _overview_table(overview))
    return 0


async def _get_all(store: Store, task_ids: Sequence[int]) -> list[TaskRecord]:
    return [await store.get(task_id) for task_id in task_ids]


# How many running tasks status lists; the rest it counts.
_RUNNING_SHOWN: Final = 50


async def _overview(store: AdminStore) -> dict[str, Any]:
    counts = attrs.asdict(await store.stats())
    queues = {name: attrs.asdict(statistics) for name, statistics in (await store.queue_stats()).items()}
    oldest = await store.oldest_queued()
    running = await store.list_tasks(status=TaskStatus.RUNNING, limit=_RUNNING_SHOWN)
    now = _clock(store)
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "waiting_since": _iso(oldest),
        "longest_wait": None if oldest is None else max(0.0, now - oldest),
        "queues": queues,
        "running": [
            {
                "id": record.id,
                "handler": record.handler,
                "queue": record.queue,
                "worker_id": record.worker_id,
                "attempt": record.attempts,
                "max_attempts": record.retry + 1,
                "started_at": _iso(record.started_at),
                "elapsed": None if record.started_at is None else max(0.0, now - record.started_at),
                "progress_done": record.progress_done,
                "progress_total": record.progress_total,
            }
            for record in running
        ],
    }


def _overview_table(overview: Mapping[str, Any]) -> str:
    counts = overview["counts"]
    lines = []
    for name, count in counts.items():
        line = f"{name:<10} {count:>8}"
        if name == "queued" and overview["longest_wait"] is not None:
            line += f"   longest waiting {_age(overview['longest_wait'])} (since {overview['waiting_since']})"
        lines.append(line)
    lines.append(f"{'total':<10} {overview['total']:>8}")
    queues = overview["queues"]
    if queues:
        names = list(counts)
        rows = [
            [queue, *(str(numbers[name]) for name in names), str(sum(numbers.values()))]
            for queue, numbers in queues.items()
        ]
        lines += ["", "by queue:", *_table(["QUEUE", *(name.upper() for name in names), "TOTAL"], rows)]
    running = overview["running"]
    if running:
        lines += ["", "running:"]
        rows = [
            [
                str(task["id"]),
                task["handler"],
                task["queue"],
                task["worker_id"] or "",
                _age(task["elapsed"]),
                _of(task),
                _progress(task["progress_done"], task["progress_total"]),
            ]
            for task in running
        ]
        lines += _table(["ID", "HANDLER", "QUEUE", "WORKER", "ELAPSED", "ATTEMPT", "PROGRESS"], rows)
        if counts["running"] > len(running):
            lines.append(f"... and {counts['running'] - len(running)} more")
    return "\n".join(lines)


@cli.command(name="list")
@_store_option
@click.option(
    "--status",
    "status_name",
    type=click.Choice([status.value for status in TaskStatus]),
    default=None,
    help="Only tasks in this status.  [default: any]",
)
@click.option("--queue", default=None, help="Only tasks in this queue.  [default: any]")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, help="At most this many tasks, the newest first.")
@_json_option
def list_(store_url: str, status_name: str | None, queue: str | None, limit: int, as_json: bool) -> int:
    """List the newest tasks, with their status, queue, attempts and last error."""
    store = open_store(store_url, read_only=True)
    wanted = None if status_name is None else TaskStatus(status_name)
    records = trio.run(_read, store, lambda: _admin(store).list_tasks(status=wanted, limit=limit, queue=queue))
    _print_records(records, as_json)
    return 0


@cli.command()
@_store_option
@click.argument("task_ids", nargs=-1, type=_TASK_ID, metavar="[TASK_ID]...")
@click.option("--all-dead", is_flag=True, help="Every dead task, instead of the ones named.")
@click.option(
    "--lease",
    type=click.FloatRange(0, min_open=True),
    default=30.0,
    help="The workers' --lease: a task cancelled while a worker ran it may be retried this long after.",
)
def retry(store_url: str, task_ids: tuple[int, ...], all_dead: bool, lease: float) -> int:
    """Put failed, dead or cancelled tasks back in the queue with a fresh attempt budget; print their ids.

    All or nothing: if one of the named tasks can't be retried (it is queued,
    running or succeeded, there is none, or it was cancelled under a worker
    that may still be running it), none is.
    """
    if bool(task_ids) == all_dead:
        raise ValueError("name the tasks to retry, or give --all-dead (not both)")
    store = _open_existing(store_url)
    admin = _admin(store)
    ids = trio.run(_read, store, admin.retry_dead if all_dead else lambda: admin.retry(task_ids, lease=lease))
    if ids:
        click.echo("\n".join(map(str, ids)))
    return 0


@cli.command()
@_store_option
@click.argument("task_ids", nargs=-1, type=_TASK_ID, required=True, metavar="TASK_ID...")
def cancel(store_url: str, task_ids: tuple[int, ...]) -> int:
    """Cancel queued or running tasks, in the order given; print each id as it is cancelled.

    A running task's worker cancels its handler as soon as it hears (at once on
    PostgreSQL, by its next heartbeat on SQLite). A task that is already final
    is an error, and the tasks after it are left alone.
    """
    store = _open_existing(store_url)

    async def cancel_each() -> None:
        for task_id in task_ids:
            await store.cancel(task_id)
            click.echo(task_id)

    trio.run(_read, store, cancel_each)
    return 0


@cli.command()
@_store_option
@click.option(
    "--older-than",
    callback=_duration(allow_zero=True),
    required=True,
    metavar="DURATION",
    help="Delete the tasks that finished longer ago than this: 30s, 15m, 12h, 7d, or seconds; 0 for all.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=PRUNE_LIMIT,
    help="Tasks deleted per transaction; each batch is committed before the next.",
)
def prune(store_url: str, older_than: float, batch: int) -> int:
    """Delete the finished tasks (succeeded, failed, cancelled, dead) that finished over --older-than ago.

    Queued and running tasks are never deleted. Prints how many tasks it
    deleted. A store that does not exist is an error, and is not created.
    """
    store = _open_existing(store_url)
    admin = _admin(store)

    async def prune_all() -> int:
        deleted = 0
        while True:
            pruned = await admin.prune(older_than=older_than, limit=batch)
            deleted += pruned
            if pruned < batch:
                return deleted

    deleted = trio.run(_read, store, prune_all)
    click.echo(f"deleted {deleted} finished task{'' if deleted == 1 else 's'}")
    return 0


@cli.command()
@_store_option
@click.option("--print/--apply", "print_only", default=True, help="Print the SQL that creates the store, or apply it.")
def schema(store_url: str, print_only: bool) -> int:
    """Print the SQL that creates the store's tables (for a DBA to review), or create or upgrade them."""
    store = open_store(store_url)
    if print_only:
        if not isinstance(store, SQLStore):
            raise TypeError(f"{type(store).__name__} is not an SQL store")
        click.echo(store.schema_sql())
        return 0

    async def apply() -> None:
        async with _opened(store):
            pass

    trio.run(apply)
    click.echo(f"the store at {_without_password(store_url)} is ready")
    return 0


@cli.command()
@click.option("--host", default="127.0.0.1", help="Where the worker's --health-port listens.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    envvar="WPXT_HEALTH_PORT",
    show_envvar=True,
    required=True,
    help="The worker's --health-port.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=2.0, help="Seconds to wait for the answer."
)
def healthcheck(host: str, port: int, timeout: float) -> int:
    """Exit 0 if the worker at --port says it is ready, 1 if not: a probe for containers."""
    url = f"http://{host}:{port}/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        click.echo(f"not ready: {url} answered {error.code}: {error.read().decode(errors='replace')}", err=True)
        return 1
    except OSError as error:
        click.echo(f"not ready: no answer from {url}: {error}", err=True)
        return 1
    click.echo(f"ready: {url}")
    return 0


# -- helpers -----------------------------------------------------------------------------


T = TypeVar("T")


@contextlib.asynccontextmanager
async def _opened(store: Store) -> AsyncIterator[Store]:
    """``init()`` the store, and close it after, whatever happens."""
    try:
        await store.init()
        yield store
    finally:
        await store.aclose()


async def _read(store: Store, call: Callable[[], Awaitable[T]]) -> T:
    async with _opened(store):
        return await call()


def _without_password(url: str) -> str:
    """``url`` fit to print: a password in it is starred out."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _open_existing(url: str) -> Store:
    """Open the store at ``url`` to change it, once a read-only look found it there: a typo creates nothing."""
    trio.run(_read, open_store(url, read_only=True), trio.lowlevel.checkpoint)
    return open_store(url)


def _admin(store: Store) -> AdminStore:
    if not isinstance(store, AdminStore):
        raise TypeError(f"{type(store).__name__} offers no admin operations (list_tasks, retry, oldest_queued, prune)")
    return store


def _clock(store: Store) -> float:
    # A store's own clock when it has one (MemoryStore's is virtual); wall time otherwise.
    clock: Callable[[], float] = getattr(store, "clock", time.time)
    return clock()


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None or not math.isfinite(timestamp):
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="milliseconds")


def _record_json(record: TaskRecord) -> dict[str, Any]:
    data = attrs.asdict(record)
    for field in _TIME_FIELDS:
        data[field] = _iso(data[field])
    return data


def _print_records(records: Sequence[TaskRecord], as_json: bool) -> None:
    if as_json:
        for record in records:
            click.echo(json.dumps(_record_json(record)))
        return
    rows = [
        [
            str(record.id),
            record.status.value,
            record.handler,
            record.queue,
            f"{record.attempts}/{record.retry + 1}",
            _iso(record.created_at) or "",
            record.worker_id or "",
            _progress(record.progress_done, record.progress_total),
            "" if record.error_type is None else f"{record.error_type}: {record.error_message}",
        ]
        for record in records
    ]
    click.echo(
        "\n".join(
            _table(["ID", "STATUS", "HANDLER", "QUEUE", "ATTEMPTS", "CREATED", "WORKER", "PROGRESS", "ERROR"], rows)
        )
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _of(task: Mapping[str, Any]) -> str:
    return f"{task['attempt']}/{task['max_attempts']}"


def _progress(done: float | None, total: float | None) -> str:
    """A task's last progress report: ``3/10 (30%)``, or ``3`` without a total; empty without a report."""
    if done is None:
        return ""
    if total is None:
        return f"{done:g}"
    return f"{done:g}/{total:g} ({done / total:.0%})"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
