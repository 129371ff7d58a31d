"""Supervised services: start them, restart the ones that fail, stop them all, report on each.

A job is a unit of work that a pool runs and collects a Result for; a service
is meant to run until it is stopped (a queue consumer, a cache refresher). The
supervisor starts each one, possibly after a delay, runs it again when it
raises, as long as it has retries left, and keeps a report per service: its
status, its attempt, and a timeline of what happened.

"Service" is this wing's word for what it supervises: the package also has a
pool's worker tasks, durable workers and threads.
"""

from __future__ import annotations

import collections
import contextvars
import enum
import inspect
import logging
import math
import uuid
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs
import trio

from .._attempts import Attempts, RetryPolicy
from .._errors import ServiceExistsError, ServiceNotFoundError, SupervisorClosedError, exit_with_sole
from .._health import Health
from .._retry import Backoff
from .._validation import Seconds, count, non_negative_seconds
from ._observer import ExecutionEnded, ExecutionStarted, SupervisorObserver, _Hooks, notify

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Awaitable, Callable
    from types import TracebackType

__all__ = [
    "RunningService",
    "Service",
    "ServiceEvent",
    "ServiceExecution",
    "ServiceStatus",
    "Supervisor",
    "current_service",
]

_logger: Final = logging.getLogger("workerpoolxt")

MAX_EVENTS: Final = 100
"""How many events a service's report keeps: the latest, so a service restarted for days stays bounded."""


class Service(Protocol):
    """What ``Supervisor`` runs, besides plain async functions: a named object with ``async def run(self)``.

    ``run()`` is meant to run until the supervisor cancels it. Returning ends
    the service for good (status ``success``); raising an ``Exception`` ends
    the attempt and may restart it.
    """

    @property
    def name(self) -> str: ...

    async def run(self) -> object: ...


class ServiceStatus(enum.StrEnum):
    """Where a service stands. Members are strings (``ServiceStatus.ERROR == "error"``)."""

    UNKNOWN = "unknown"
    """Registered, but its supervisor has not started it yet."""
    DEFERRED = "deferred"
    """Waiting out ``defer`` before its first attempt."""
    RUNNING = "running"
    SUCCESS = "success"
    """``run()`` returned: the service is finished and is not restarted."""
    ERROR = "error"
    """Its last attempt raised. It stays ``error`` while it waits to restart, and once it has no retries left."""
    STOPPED = "stopped"
    """It was cancelled before it finished.

    The last event says how: ``"stopping on request"`` after ``stop()`` or
    leaving the block normally; ``"stopping: Cancelled"`` when the supervisor
    itself was torn down (the block raised, an outer scope was cancelled,
    another service raised ``KeyboardInterrupt``); ``"stopping: KeyboardInterrupt"``
    and the like when the service itself raised a BaseException.
    """


@attrs.frozen
class ServiceEvent:
    """One step in a service's timeline, such as ``"starting attempt 2/3"``."""

    time: float
    """When it happened, on the trio clock."""
    execution_id: str | None
    """The attempt it belongs to; None for a service stopped before its first."""
    message: str


@attrs.frozen
class ServiceExecution:
    """A snapshot of one service, from ``Supervisor.execution()``."""

    name: str
    status: ServiceStatus
    attempt: int
    """The current or last attempt, from 1; 0 before the first."""
    retry: int
    """How many restarts after a failure it may have: up to ``retry + 1`` attempts."""
    execution_id: str | None
    """A fresh id for each attempt (a uuid4 hex); None before the first."""
    events: tuple[ServiceEvent, ...]
    """The latest ``MAX_EVENTS`` events, oldest first."""


@attrs.frozen
class RunningService:
    """The service whose task is running, as ``current_service()`` gives it."""

    name: str
    execution_id: str
    attempt: int
    """This attempt, from 1."""
    retry: int
    """How many restarts after a failure it may have: up to ``retry + 1`` attempts."""


_running: contextvars.ContextVar[RunningService | None] = contextvars.ContextVar(
    "workerpoolxt_running_service", default=None
)


def current_service() -> RunningService:
    """Return the service whose task (or a task it started) is running.

    Raises:
        RuntimeError: The caller is not inside a supervised service.
    """
    service = _running.get()
    if service is None:
        raise RuntimeError("current_service() was called outside a supervised service")
    return service


@attrs.define(eq=False)
class _Entry:
    """A registered service, its options and its live state."""

    name: str
    run: Callable[[], Awaitable[object]]
    defer: float
    retry: int
    backoff: Backoff | None
    status: ServiceStatus = attrs.field(init=False, default=ServiceStatus.UNKNOWN)
    attempt: int = attrs.field(init=False, default=0)
    execution_id: str | None = attrs.field(init=False, default=None)
    error: str | None = attrs.field(init=False, default=None)
    events: collections.deque[ServiceEvent] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=MAX_EVENTS)
    )
    scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    done: bool = attrs.field(init=False, default=False)
    """True once the service has reached its final status."""

    def report(self) -> ServiceExecution:
        return ServiceExecution(self.name, self.status, self.attempt, self.retry, self.execution_id, tuple(self.events))


class Supervisor:
    """Runs long-lived services, restarts the ones that fail, and reports on each.

    Use it as an async context manager; it owns a nursery and starts every
    registered service on entering, each in its own task. Leaving the block
    calls ``stop()``: services run until stopped, so the supervisor does not
    wait for them to return on their own. Leaving it with an exception stops
    the services too, and re-raises that exception as it was.

    A service that returns is finished (``success``). One that raises an
    ``Exception`` runs again, after the backoff's wait before retry
    ``n``, up to ``retry`` times. Other exceptions (``KeyboardInterrupt``, an
    outer cancellation) are never caught: they stop every service and come
    out of the block. Observers (``add_observer()``) are told of each
    execution's start and end, in the service's own task.

    Args:
        *services: Services to register, as by ``add()`` with no options.
        defer: Seconds (or a timedelta) to wait before each service's first
            attempt; restarts are not deferred.
        retry: How many times a failing service is restarted, so up to
            ``retry + 1`` attempts; 0 runs it once.
        backoff: The wait between attempts; None restarts at once.

    Raises:
        TypeError, ValueError: An argument is invalid; the message names it.
        ServiceExistsError: Two services have the same name.
    """

    __slots__ = (
        "_backoff",
        "_defer",
        "_entered",
        "_entries",
        "_hooks",
        "_live",
        "_nursery",
        "_nursery_manager",
        "_retry",
        "_stopped",
        "_stopping",
    )

    def __init__(
        self,
        *services: Service | Callable[[], Awaitable[object]],
        defer: Seconds = 0.0,
        retry: int = 0,
        backoff: Backoff | None = None,
    ) -> None:
        self._defer = non_negative_seconds(defer, "defer")
        self._retry = count(retry, "retry", minimum=0)
        self._backoff = _backoff(backoff)
        self._entries: dict[str, _Entry] = {}
        self._hooks = _Hooks()
        self._entered = False
        self._stopping = False
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: contextlib.AbstractAsyncContextManager[trio.Nursery] | None = None
        self._live = 0  # service tasks not yet ended
        self._stopped = trio.Event()  # set once stopping and no service task is left
        for service in services:
            self.add(service)

    def add(
        self,
        service: Service | Callable[[], Awaitable[object]],
        *,
        name: str | None = None,
        defer: Seconds | None = None,
        retry: int | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Register ``service``; if the supervisor is running, start it now.

        A service added before entering starts on entering, in the order added.
        The options left as None take the supervisor's.

        Args:
            service: An async function taking no arguments, named by its
                ``__name__``, or an object with a ``name`` and ``async def run(self)``.
            name: The name to register it under instead.
            defer: Seconds to wait before its first attempt.
            retry: How many times it is restarted if it keeps failing.
            backoff: The wait between its attempts. None means the supervisor's,
                so a service cannot opt out of a supervisor's backoff here;
                ``Backoff.none()`` restarts at once.

        Raises:
            TypeError, ValueError: An argument is invalid; the message names it.
            ServiceExistsError: A service with this name is already registered.
            SupervisorClosedError: The supervisor is stopping or stopped.
        """
        run, service_name = _resolve(service, name)
        entry = _Entry(
            service_name,
            run,
            self._defer if defer is None else non_negative_seconds(defer, "defer"),
            self._retry if retry is None else count(retry, "retry", minimum=0),
            self._backoff if backoff is None else _backoff(backoff),
        )
        if self._stopping:
            raise SupervisorClosedError(f"cannot add service {service_name!r}: the supervisor is stopping or stopped")
        if service_name in self._entries:
            raise ServiceExistsError(service_name)
        self._entries[service_name] = entry
        if self._nursery is not None:
            self._start(entry)

    def add_observer(self, observer: SupervisorObserver) -> None:
        """Tell ``observer`` of every execution that starts from now on, and of its end.

        Adding the same observer again does nothing. See ``SupervisorObserver``
        for when its methods are called and what is promised.

        Raises:
            TypeError: ``observer`` is not a SupervisorObserver.
        """
        self._hooks = self._hooks.adding(observer)

    async def __aenter__(self) -> Supervisor:
        if self._entered:
            raise RuntimeError("a Supervisor can be entered only once; create a new one")
        self._entered = True
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        for entry in self._entries.values():
            self._start(entry)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        # Cancelling here and letting the nursery wait is what stop() does; the
        # nursery also delivers whatever the services raised.
        self._cancel_all(f"its Supervisor's `async with` block exited with {type(exc).__name__}" if exc else None)
        assert self._nursery_manager is not None
        try:
            return await self._nursery_manager.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # As WorkerPool does: a lone error, the block's own included, comes out bare.
            return exit_with_sole(group, exc)
        finally:
            self._nursery = None

    async def stop(self) -> None:
        """Cancel every service and wait until all have ended. Stopped services are not restarted.

        A service cancelled while deferred, running or waiting to restart gets
        status ``stopped``; one that already finished keeps its status. Calling
        it again, or after the block, returns at once.

        Raises:
            RuntimeError: The supervisor was never entered.
        """
        if not self._entered:
            raise RuntimeError("the supervisor is not running; enter it with `async with` first")
        self._cancel_all(None)
        if self._live:
            await self._stopped.wait()
        else:
            await trio.lowlevel.checkpoint()

    def execution(self, name: str) -> ServiceExecution:
        """Return a snapshot of the service registered as ``name``.

        Raises:
            ServiceNotFoundError: No service has that name.
        """
        try:
            entry = self._entries[name]
        except KeyError:
            raise ServiceNotFoundError(name) from None
        return entry.report()

    def executions(self) -> dict[str, ServiceExecution]:
        """Return a snapshot of every service, by name, in the order they were added."""
        return {name: entry.report() for name, entry in self._entries.items()}

    def health(self) -> Health:
        """Return unhealthy if any service has not started yet, or its last attempt failed.

        Deferred, running, finished and stopped services are healthy, so a
        service waiting to restart counts as failing until its next attempt starts.
        """
        # A service gets the ERROR status only together with its error's text.
        reasons = tuple(
            f"service {entry.name!r} has not started"
            if entry.status is ServiceStatus.UNKNOWN
            else f"service {entry.name!r} failed: {entry.error}"
            for entry in self._entries.values()
            if entry.status in (ServiceStatus.UNKNOWN, ServiceStatus.ERROR)
        )
        return Health(not reasons, reasons)

    # -- running -----------------------------------------------------------

    def _start(self, entry: _Entry) -> None:
        assert self._nursery is not None
        self._live += 1
        self._nursery.start_soon(self._supervise, entry, name=f"workerpoolxt service {entry.name!r}")

    def _cancel_all(self, why: str | None) -> None:
        self._stopping = True
        for entry in self._entries.values():
            entry.scope.cancel(reason=why or "its Supervisor was stopped")

    async def _supervise(self, entry: _Entry) -> None:
        try:
            with entry.scope:
                await self._attempts(entry)
        except BaseException as error:
            # An outer cancellation, or KeyboardInterrupt: note why the service
            # ended, and let it go on to end the supervisor. (A service that
            # reached its final status has returned, so it cannot be here.)
            self._end(entry, ServiceStatus.STOPPED, f"stopping: {type(error).__name__}")
            raise
        finally:
            self._live -= 1
            if self._stopping and not self._live:
                self._stopped.set()
        if not entry.done:  # the scope caught our own cancellation
            self._end(entry, ServiceStatus.STOPPED, "stopping on request")

    async def _attempts(self, entry: _Entry) -> None:
        # Stopped before its task first ran: don't let it run up to a checkpoint.
        if entry.scope.cancel_called:
            return
        entry.attempt = 1
        entry.execution_id = uuid.uuid4().hex
        if entry.defer:
            self._record(entry, ServiceStatus.DEFERRED, f"deferring {_seconds(entry.defer)}")
            await trio.sleep(entry.defer)
        # Restarts are the attempt engine's, as a job's retries are: it runs
        # execute() until it returns, or its error is not retried.
        engine = Attempts(trio.lowlevel.current_clock())
        # The execution under way, and the observers told of its start: they
        # are the ones told of its end, exactly once, whichever way it ends.
        under_way: list[tuple[RunningService, _Hooks]] = []

        async def execute(_: None) -> None:
            if engine.attempt > 1:
                entry.attempt = engine.attempt
                entry.execution_id = uuid.uuid4().hex
            self._record(entry, ServiceStatus.RUNNING, f"starting attempt {entry.attempt}/{entry.retry + 1}")
            assert entry.execution_id is not None
            service = RunningService(entry.name, entry.execution_id, entry.attempt, entry.retry)
            hooks = self._hooks
            under_way[:] = [(service, hooks)]
            token = _running.set(service)
            notify(hooks.started, _started(service))
            try:
                await entry.run()
            except Exception as error:
                entry.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                self._record(entry, ServiceStatus.ERROR, f"stopping with error: {entry.error}", error=error)
                if trio.current_effective_deadline() != -math.inf:
                    raise  # the engine decides on a restart: see restarting() and the end of _attempts()
                # It raised while being cancelled, by stop() or from outside: a
                # restart would only be cancelled in turn, so it ends here, stopped, as a stop promises.
                self._end(entry, ServiceStatus.STOPPED, f"stopping: {entry.error}")
                notify(hooks.ended, _ended(service, ServiceStatus.STOPPED, error, None))
            except BaseException as error:
                # Cancelled, or KeyboardInterrupt and the like: the service is
                # stopped, and _supervise records how as the error goes by.
                notify(hooks.ended, _ended(service, ServiceStatus.STOPPED, error, None))
                raise
            else:
                self._end(entry, ServiceStatus.SUCCESS, "stopping with success")
                notify(hooks.ended, _ended(service, ServiceStatus.SUCCESS, None, None))
            finally:
                _running.reset(token)

        def restarting(attempt: int, error: Exception, delay: float) -> None:
            [(service, hooks)] = under_way
            self._record(entry, ServiceStatus.ERROR, f"restarting in {_seconds(delay)}" if delay else "restarting")
            notify(hooks.ended, _ended(service, ServiceStatus.ERROR, error, delay))

        try:
            await engine.run(
                RetryPolicy(entry.retry, entry.backoff), math.inf, entry.name, execute, None, True, None, restarting
            )
        except Exception as error:  # no retry left
            [(service, hooks)] = under_way
            self._end(entry, ServiceStatus.ERROR, "no retries left", level=logging.ERROR)
            notify(hooks.ended, _ended(service, ServiceStatus.ERROR, error, None))

    def _record(
        self,
        entry: _Entry,
        status: ServiceStatus,
        message: str,
        *,
        level: int = logging.INFO,
        error: BaseException | None = None,
    ) -> None:
        entry.status = status
        entry.events.append(ServiceEvent(trio.current_time(), entry.execution_id, message))
        _logger.log(
            logging.ERROR if error is not None else level,
            "service %r: %s",
            entry.name,
            message,
            exc_info=error,
            extra={"service_name": entry.name, "execution_id": entry.execution_id, "attempt": entry.attempt},
        )

    def _end(self, entry: _Entry, status: ServiceStatus, message: str, *, level: int = logging.INFO) -> None:
        """Record the service's final status: it is done, and is never restarted."""
        self._record(entry, status, message, level=level)
        entry.done = True


def _started(service: RunningService) -> ExecutionStarted:
    return ExecutionStarted(
        name=service.name,
        execution_id=service.execution_id,
        attempt=service.attempt,
        retry=service.retry,
        time=trio.current_time(),
    )


def _ended(
    service: RunningService, status: ServiceStatus, error: BaseException | None, restart_in: float | None
) -> ExecutionEnded:
    return ExecutionEnded(
        name=service.name,
        execution_id=service.execution_id,
        attempt=service.attempt,
        retry=service.retry,
        time=trio.current_time(),
        status=status,
        error=error,
        restart_in=restart_in,
    )


def _resolve(service: object, name: str | None) -> tuple[Callable[[], Awaitable[object]], str]:
    """Return the coroutine function to run for ``service`` and the name to register it under."""
    run: Any = getattr(service, "run", None)
    if inspect.iscoroutinefunction(service):
        run, default = service, getattr(service, "__name__", None)
    elif inspect.iscoroutinefunction(run):
        default = getattr(service, "name", None)
    else:
        raise TypeError(f"`service` must be an async function or have an `async def run(self)` method, not {service!r}")
    if name is None:
        name = default
        if name is None:
            raise TypeError(
                f"`service` {service!r} has no name; give it a `name` attribute or use add(service, name=...)"
            )
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("`name` must not be empty")
    return run, name


def _backoff(value: object) -> Backoff | None:
    if value is not None and not isinstance(value, Backoff):
        raise TypeError(f"`backoff` must be a Backoff or None, not {type(value).__name__}; None restarts at once")
    return value


def _seconds(value: float) -> str:
    """Seconds in the shortest form, as every event and log line gives them: 1s, 0.5s, 1.25s."""
    return f"{value:g}s"
