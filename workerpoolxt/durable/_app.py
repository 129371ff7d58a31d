"""A durable worker's configuration in one value: ``WorkerApp``, as arq's WorkerSettings or procrastinate's App.

A module defines its app once (the handlers, how many run at once, what wraps
them, the resources they share), and every way of running a worker takes it:
``DurableWorker(store, app)`` in code, and the command line's ``worker``,
which loads it as ``module:app``.

The resources handlers share (a database pool, an HTTP client) come from the
app's ``lifespan``: an async context manager the worker enters before its
first claim and exits after the last task's end is written. What it yields,
the handlers reach with ``lifespan_value()``, as they reach their job with
``current_job()``: a context variable the worker sets around its pool, so the
value is there in handlers, their middleware, the tasks they start and the
threads they offload to, and nowhere else.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import attrs

from .. import Backoff, Registry
from .._job import freeze_options
from .._middleware import Middleware, freeze_middleware
from .._validation import MAX_WORKERS, Seconds, count, to_seconds
from ._periodic import Periodic, freeze_schedules

__all__ = ["WorkerApp", "lifespan_value"]

_DEFAULT_BACKOFF: Final = Backoff()

# What the running worker's lifespan yielded, boxed so that a lifespan that yields None is still told apart
# from no lifespan at all.
_LIFESPAN_VALUE: Final[contextvars.ContextVar[tuple[Any]]] = contextvars.ContextVar("workerpoolxt_lifespan_value")


def lifespan_value() -> Any:
    """Return what the lifespan of the ``WorkerApp`` running this task yielded.

    Call it in a handler, its middleware, or the tasks and threads it starts;
    it is how handlers reach what their worker opened once for all of them::

        @contextlib.asynccontextmanager
        async def lifespan(app: WorkerApp) -> AsyncIterator[Database]:
            async with Database.connect(DSN) as db:
                yield db

        app = WorkerApp(registry, lifespan=lifespan)

        @registry.register("send_email")
        async def send_email(options: Options) -> None:
            db: Database = lifespan_value()

    Raises:
        LookupError: Called outside the tasks of a worker whose app has a lifespan.
    """
    try:
        return _LIFESPAN_VALUE.get()[0]
    except LookupError:
        raise LookupError(
            "lifespan_value() is for the tasks of a DurableWorker whose WorkerApp has a lifespan"
        ) from None


def set_lifespan_value(value: Any) -> contextvars.Token[tuple[Any]]:
    return _LIFESPAN_VALUE.set((value,))


def reset_lifespan_value(token: contextvars.Token[tuple[Any]]) -> None:
    _LIFESPAN_VALUE.reset(token)


def _concurrency(value: int) -> int:
    return count(value, "concurrency", minimum=1, maximum=MAX_WORKERS)


def _middleware(value: Iterable[Middleware] | None) -> tuple[Middleware, ...]:
    return freeze_middleware(value, "middleware")


def _options(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return freeze_options(value, "options")


def _shutdown_timeout(value: Seconds | None) -> float | None:
    return None if value is None else to_seconds(value, "shutdown_timeout")


def _retention(value: Seconds | None) -> float | None:
    return None if value is None else to_seconds(value, "retention")


def _backoff(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Backoff):
        raise TypeError(f"`backoff` must be a Backoff, not {type(value).__name__}")


def _registry(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Registry):
        raise TypeError(f"`registry` must be a Registry, not {type(value).__name__}")


def _lifespan(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(
            "`lifespan` must be None or a callable taking the WorkerApp and returning an async context manager "
            f"(an @asynccontextmanager function, say), not {type(value).__name__}"
        )


def _metrics(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(getattr(value, "attach", None)):
        raise TypeError(
            "`metrics` must be None or have an attach(worker) method (a PrometheusMetrics, say), "
            f"not {type(value).__name__}"
        )


def _periodic(value: Sequence[Periodic]) -> tuple[Periodic, ...]:
    return freeze_schedules(value)


def _periodic_handlers(instance: WorkerApp, attribute: attrs.Attribute[Any], value: tuple[Periodic, ...]) -> None:
    # As a store given the registry checks at enqueue: a job no worker can run fails here, not at its tick.
    for schedule in value:
        instance.registry.check(schedule.job)


def _flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"`{attribute.name}` must be a bool, not {type(value).__name__}")


@attrs.frozen
class WorkerApp:
    """A durable worker's configuration: its handlers and how it runs them.

    ``DurableWorker(store, app)`` takes its settings from the app; a keyword
    given to ``DurableWorker`` as well wins over the app's field of that name,
    so a command line's flags override the app's defaults. Where the worker
    runs (its store, lease, heartbeat, poll, id) is not the app's: those stay
    ``DurableWorker``'s keywords. ``attrs.evolve(app, concurrency=16)`` makes
    a changed copy.

    Args:
        registry: The handlers that tasks name.
        concurrency: How many tasks run at once.
        middleware: Async callables wrapping every attempt, as for ``WorkerPool``.
        options: The options handed to tasks whose job sets none, as for ``WorkerPool``.
        backoff: The wait before a failed task's retry, for tasks that set none.
        lifespan: Called with the app, it returns an async context manager that
            the worker enters before its first claim and exits after the last
            task's end is written, whether the worker stopped or failed; what
            it yields, tasks reach with ``lifespan_value()``. An error as it
            enters stops the worker with that error, before any claim. Its
            exit is shielded from cancellation, so its cleanup may await even
            when the worker is cancelled, for at most the worker's
            ``final_write_timeout``.
        metrics: An object with an ``attach(worker)`` method, such as
            ``PrometheusMetrics``: the worker attaches itself to it as it is made.
        shutdown_timeout: Seconds a graceful stop waits for the running tasks;
            then they are cancelled and handed back to the store, as
            ``stop(cancel_running=True)`` does. None: wait as long as they run.
        burst: Stop by itself once nothing is left to claim now and nothing
            runs, after the retries it scheduled itself; ``run()`` then returns.
        log_outcomes: Log one line per task outcome on the
            ``workerpoolxt.durable`` logger (see ``DurableWorker``).
        retention: Seconds (or a ``timedelta``) to keep the finished tasks
            (succeeded, failed, cancelled, dead) in the store; the worker then
            deletes the older ones as it runs (see ``DurableWorker``), on a
            store that can (``AdminStore.prune()``). None: keep them forever.
        periodic: Jobs to enqueue on a schedule (``Periodic``), once per tick
            however many workers run the app: each worker that is not in burst
            mode runs them, on a store that can (``PeriodicStore``). Each has
            a name of its own.

    Raises:
        TypeError, ValueError: An argument is invalid; the message names it.
        UnknownHandlerError: A ``periodic`` job names a handler the registry lacks.
    """

    registry: Registry = attrs.field(validator=_registry)
    concurrency: int = attrs.field(default=8, converter=_concurrency, kw_only=True)
    middleware: tuple[Middleware, ...] = attrs.field(default=(), converter=_middleware, kw_only=True)
    options: Mapping[str, Any] | None = attrs.field(default=None, converter=_options, kw_only=True, hash=False)
    backoff: Backoff = attrs.field(default=_DEFAULT_BACKOFF, validator=_backoff, kw_only=True)
    lifespan: Callable[[WorkerApp], AbstractAsyncContextManager[Any]] | None = attrs.field(
        default=None, validator=_lifespan, kw_only=True
    )
    metrics: Any = attrs.field(default=None, validator=_metrics, kw_only=True, eq=False)
    shutdown_timeout: float | None = attrs.field(default=None, converter=_shutdown_timeout, kw_only=True)
    burst: bool = attrs.field(default=False, validator=_flag, kw_only=True)
    log_outcomes: bool = attrs.field(default=True, validator=_flag, kw_only=True)
    retention: float | None = attrs.field(default=None, converter=_retention, kw_only=True)
    periodic: tuple[Periodic, ...] = attrs.field(
        default=(), converter=_periodic, validator=_periodic_handlers, kw_only=True
    )
