"""Supervised long-running workers: start them, restart the ones that fail, stop them all, report on each.

A job is a unit of work that a pool runs and collects a Result for; a
supervised worker is a service that is meant to run until it is stopped (a
queue consumer, a cache refresher). The supervisor starts each one, possibly
after a delay, runs it again when it raises, up to its attempt limit, and keeps
a report per worker: its status, its attempt, and a timeline of what happened.
"""

from __future__ import annotations

import collections
import contextvars
import enum
import functools
import inspect
import logging
import math
import uuid
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs
import trio

from .._errors import PoolClosedError, WorkerExistsError, WorkerNotFoundError, exit_with_sole
from .._health import Health
from .._retry import Backoff
from .._validation import Seconds, count, non_negative_seconds

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Awaitable, Callable
    from types import TracebackType

__all__ = [
    "SupervisedWorker",
    "Supervisor",
    "WorkerContext",
    "WorkerEvent",
    "WorkerExecution",
    "WorkerStatus",
    "current_worker",
]

_logger: Final = logging.getLogger("workerpoolxt")

MAX_EVENTS: Final = 100
"""How many events a worker's report keeps: the latest, so a worker restarted for days stays bounded."""


class SupervisedWorker(Protocol):
    """What ``Supervisor`` runs, besides plain async functions: a named object with ``async def run(self)``.

    ``run()`` is meant to run until the supervisor cancels it. Returning ends
    the worker for good (status ``success``); raising an ``Exception`` ends the
    attempt and may restart it.
    """

    @property
    def name(self) -> str: ...

    async def run(self) -> object: ...


class WorkerStatus(enum.StrEnum):
    """Where a supervised worker stands. Members are strings (``WorkerStatus.ERROR == "error"``)."""

    UNKNOWN = "unknown"
    """Registered, but its supervisor has not started it yet."""
    DEFERRED = "deferred"
    """Waiting out ``defer`` before its first attempt."""
    RUNNING = "running"
    SUCCESS = "success"
    """``run()`` returned: the worker is finished and is not restarted."""
    ERROR = "error"
    """Its last attempt raised. It stays ``error`` while it waits to restart, and after its last attempt."""
    STOPPED = "stopped"
    """It was cancelled before it finished.

    The last event says how: ``"stopping on request"`` after ``stop()`` or
    leaving the block normally; ``"stopping: Cancelled"`` when the supervisor
    itself was torn down (the block raised, an outer scope was cancelled,
    another worker raised ``KeyboardInterrupt``); ``"stopping: KeyboardInterrupt"``
    and the like when the worker itself raised a BaseException.
    """


@attrs.frozen
class WorkerEvent:
    """One step in a worker's timeline, such as ``"starting attempt 2/3"``."""

    time: float
    """When it happened, on the trio clock."""
    execution_id: str | None
    """The attempt it belongs to; None for a worker stopped before its first."""
    message: str


@attrs.frozen
class WorkerExecution:
    """A snapshot of one supervised worker, from ``Supervisor.execution()``."""

    name: str
    status: WorkerStatus
    attempt: int
    """The current or last attempt, from 1; 0 before the first."""
    max_attempts: int
    execution_id: str | None
    """A fresh id for each attempt (a uuid4 hex); None before the first."""
    events: tuple[WorkerEvent, ...]
    """The latest ``MAX_EVENTS`` events, oldest first."""


@attrs.frozen
class WorkerContext:
    """The running supervised worker, as its task sees it through ``current_worker()``."""

    name: str
    execution_id: str
    attempt: int
    max_attempts: int


_running: contextvars.ContextVar[WorkerContext | None] = contextvars.ContextVar(
    "workerpoolxt_supervised_worker", default=None
)


def current_worker() -> WorkerContext:
    """Return the supervised worker whose task (or a task it started) is running.

    Raises:
        RuntimeError: The caller is not inside a supervised worker.
    """
    worker = _running.get()
    if worker is None:
        raise RuntimeError("current_worker() was called outside a supervised worker")
    return worker


@attrs.define(eq=False)
class _Entry:
    """A registered worker, its options and its live state."""

    name: str
    run: Callable[[], Awaitable[object]]
    defer: float
    max_attempts: int
    backoff: Backoff | None
    status: WorkerStatus = attrs.field(init=False, default=WorkerStatus.UNKNOWN)
    attempt: int = attrs.field(init=False, default=0)
    execution_id: str | None = attrs.field(init=False, default=None)
    error: str | None = attrs.field(init=False, default=None)
    events: collections.deque[WorkerEvent] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=MAX_EVENTS)
    )
    scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    done: bool = attrs.field(init=False, default=False)
    """True once the worker has reached its final status."""

    def report(self) -> WorkerExecution:
        return WorkerExecution(
            self.name, self.status, self.attempt, self.max_attempts, self.execution_id, tuple(self.events)
        )


class Supervisor:
    """Runs long-lived workers, restarts the ones that fail, and reports on each.

    Use it as an async context manager; it owns a nursery and starts every
    registered worker on entering, each in its own task. Leaving the block
    calls ``stop()``, as a service supervisor would: workers are services, so
    the supervisor does not wait for them to return on their own. Leaving it
    with an exception stops the workers too, and re-raises that exception as
    it was.

    A worker that returns is finished (``success``). One that raises an
    ``Exception`` runs again, after ``backoff.delay(n)`` seconds before retry
    ``n``, until it has made ``max_attempts`` attempts. Other exceptions
    (``KeyboardInterrupt``, an outer cancellation) are never caught: they stop
    every worker and come out of the block.

    Args:
        *workers: Workers to register, as by ``add()`` with no options.
        defer: Seconds (or a timedelta) to wait before each worker's first
            attempt; restarts are not deferred.
        max_attempts: How many times a failing worker runs in all, at least 1.
        backoff: The wait between attempts; None restarts at once.

    Raises:
        TypeError, ValueError: An argument is invalid; the message names it.
        WorkerExistsError: Two workers have the same name.
    """

    __slots__ = (
        "_backoff",
        "_defer",
        "_entered",
        "_entries",
        "_execution_middleware",
        "_execution_observers",
        "_live",
        "_max_attempts",
        "_nursery",
        "_nursery_manager",
        "_stopped",
        "_stopping",
    )

    def __init__(
        self,
        *workers: SupervisedWorker | Callable[[], Awaitable[object]],
        defer: Seconds = 0.0,
        max_attempts: int = 1,
        backoff: Backoff | None = None,
    ) -> None:
        self._defer = non_negative_seconds(defer, "defer")
        self._max_attempts = count(max_attempts, "max_attempts", minimum=1)
        self._backoff = _backoff(backoff)
        self._entries: dict[str, _Entry] = {}
        # Called with (worker name, "started" | "restarted" | "success" | "error" | "stopped",
        # execution id), for metrics and traces.
        self._execution_observers: list[Callable[[str, str, str | None], object]] = []
        # Wrap each execution in the worker's own task, the first outermost, as
        # middleware wraps a job's attempt (traces make their span current).
        self._execution_middleware: list[
            Callable[[WorkerContext, Callable[[], Awaitable[object]]], Awaitable[object]]
        ] = []
        self._entered = False
        self._stopping = False
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: contextlib.AbstractAsyncContextManager[trio.Nursery] | None = None
        self._live = 0  # worker tasks not yet ended
        self._stopped = trio.Event()  # set once stopping and no worker task is left
        for worker in workers:
            self.add(worker)

    def add(
        self,
        worker: SupervisedWorker | Callable[[], Awaitable[object]],
        *,
        name: str | None = None,
        defer: Seconds | None = None,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Register ``worker``; if the supervisor is running, start it now.

        A worker added before entering starts on entering, in the order added.
        The options left as None take the supervisor's.

        Args:
            worker: An async function taking no arguments, named by its
                ``__name__``, or an object with a ``name`` and ``async def run(self)``.
            name: The name to register it under instead.
            defer: Seconds to wait before its first attempt.
            max_attempts: How many times it runs in all if it keeps failing.
            backoff: The wait between its attempts. None means the supervisor's,
                so a worker cannot opt out of a supervisor's backoff here;
                ``Backoff.none()`` restarts at once.

        Raises:
            TypeError, ValueError: An argument is invalid; the message names it.
            WorkerExistsError: A worker with this name is already registered.
            PoolClosedError: The supervisor is stopping or stopped.
        """
        run, worker_name = _resolve(worker, name)
        entry = _Entry(
            worker_name,
            run,
            self._defer if defer is None else non_negative_seconds(defer, "defer"),
            self._max_attempts if max_attempts is None else count(max_attempts, "max_attempts", minimum=1),
            self._backoff if backoff is None else _backoff(backoff),
        )
        if self._stopping:
            raise PoolClosedError(f"cannot add worker {worker_name!r}: the supervisor is stopping or stopped")
        if worker_name in self._entries:
            raise WorkerExistsError(worker_name)
        self._entries[worker_name] = entry
        if self._nursery is not None:
            self._start(entry)

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
        # nursery also delivers whatever the workers raised.
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
        """Cancel every worker and wait until all have ended. Stopped workers are not restarted.

        A worker cancelled while deferred, running or waiting to restart gets
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

    def execution(self, name: str) -> WorkerExecution:
        """Return a snapshot of the worker registered as ``name``.

        Raises:
            WorkerNotFoundError: No worker has that name.
        """
        try:
            entry = self._entries[name]
        except KeyError:
            raise WorkerNotFoundError(name) from None
        return entry.report()

    def executions(self) -> dict[str, WorkerExecution]:
        """Return a snapshot of every worker, by name, in the order they were added."""
        return {name: entry.report() for name, entry in self._entries.items()}

    def health(self) -> Health:
        """Return unhealthy if any worker has not started yet, or its last attempt failed.

        Deferred, running, finished and stopped workers are healthy, so a
        worker waiting to restart counts as failing until its next attempt starts.
        """
        # A worker gets the ERROR status only together with its error's text.
        reasons = tuple(
            f"worker {entry.name!r} has not started"
            if entry.status is WorkerStatus.UNKNOWN
            else f"worker {entry.name!r} failed: {entry.error}"
            for entry in self._entries.values()
            if entry.status in (WorkerStatus.UNKNOWN, WorkerStatus.ERROR)
        )
        return Health(not reasons, reasons)

    # -- running -----------------------------------------------------------

    def _start(self, entry: _Entry) -> None:
        assert self._nursery is not None
        self._live += 1
        self._nursery.start_soon(self._supervise, entry, name=f"workerpoolxt supervised worker {entry.name!r}")

    def _cancel_all(self, why: str | None) -> None:
        self._stopping = True
        for entry in self._entries.values():
            entry.scope.cancel(reason=why or "its Supervisor was stopped")

    async def _supervise(self, entry: _Entry) -> None:
        try:
            with entry.scope:
                await self._attempts(entry)
        except BaseException as error:
            # An outer cancellation, or KeyboardInterrupt: note why the worker
            # ended, and let it go on to end the supervisor. (A worker that
            # reached its final status has returned, so it cannot be here.)
            self._settle(entry, WorkerStatus.STOPPED, f"stopping: {type(error).__name__}")
            self._observe(entry, "stopped")
            raise
        finally:
            self._live -= 1
            if self._stopping and not self._live:
                self._stopped.set()
        if not entry.done:  # the scope caught our own cancellation
            self._settle(entry, WorkerStatus.STOPPED, "stopping on request")
            self._observe(entry, "stopped")

    async def _attempts(self, entry: _Entry) -> None:
        # Stopped before its task first ran: don't let it run up to a checkpoint.
        if entry.scope.cancel_called:
            return
        entry.attempt = 1
        entry.execution_id = uuid.uuid4().hex
        if entry.defer:
            self._record(entry, WorkerStatus.DEFERRED, f"deferring {_seconds(entry.defer)}")
            await trio.sleep(entry.defer)
        while True:
            self._record(entry, WorkerStatus.RUNNING, f"starting attempt {entry.attempt}/{entry.max_attempts}")
            self._observe(entry, "started")
            worker = WorkerContext(entry.name, entry.execution_id, entry.attempt, entry.max_attempts)
            token = _running.set(worker)
            try:
                await self._run(entry, worker)
            except Exception as error:
                entry.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                self._record(entry, WorkerStatus.ERROR, f"stopping with error: {entry.error}", error=error)
                self._observe(entry, "error")
            else:
                self._settle(entry, WorkerStatus.SUCCESS, "stopping with success")
                self._observe(entry, "success")
                return
            finally:
                _running.reset(token)
            # It raised while being cancelled, by stop() or from outside: a
            # restart would only be cancelled in turn, so end it here.
            if trio.current_effective_deadline() == -math.inf:
                # Its error came from being stopped: it ends stopped, as a stop promises.
                self._settle(entry, WorkerStatus.STOPPED, f"stopping: {entry.error}")
                self._observe(entry, "stopped")
                return
            if entry.attempt >= entry.max_attempts:
                self._settle(entry, WorkerStatus.ERROR, "max attempts reached", level=logging.ERROR)
                return
            delay = 0.0 if entry.backoff is None else float(entry.backoff.delay(entry.attempt))
            self._record(entry, WorkerStatus.ERROR, f"restarting in {_seconds(delay)}" if delay else "restarting")
            self._observe(entry, "restarted")
            # A checkpoint even with no delay, so a worker failing at once cannot starve the others.
            await trio.sleep(delay)
            entry.attempt += 1
            entry.execution_id = uuid.uuid4().hex

    async def _run(self, entry: _Entry, worker: WorkerContext, index: int = 0) -> object:
        """Run ``entry``'s execution inside the execution middleware from ``index`` inward."""
        middleware = self._execution_middleware
        if index == len(middleware):
            return await entry.run()
        return await middleware[index](worker, functools.partial(self._run, entry, worker, index + 1))

    def _record(
        self,
        entry: _Entry,
        status: WorkerStatus,
        message: str,
        *,
        level: int = logging.INFO,
        error: BaseException | None = None,
    ) -> None:
        entry.status = status
        entry.events.append(WorkerEvent(trio.current_time(), entry.execution_id, message))
        _logger.log(
            logging.ERROR if error is not None else level,
            "worker %r: %s",
            entry.name,
            message,
            exc_info=error,
            extra={"worker_name": entry.name, "execution_id": entry.execution_id, "attempt": entry.attempt},
        )

    def _observe(self, entry: _Entry, status: str) -> None:
        for observe in self._execution_observers:
            try:
                observe(entry.name, status, entry.execution_id)
            except Exception:  # metrics or tracing must never take a worker down
                _logger.exception("an observer of worker %r failed", entry.name)

    def _settle(self, entry: _Entry, status: WorkerStatus, message: str, *, level: int = logging.INFO) -> None:
        self._record(entry, status, message, level=level)
        entry.done = True


def _resolve(worker: object, name: str | None) -> tuple[Callable[[], Awaitable[object]], str]:
    """Return the coroutine function to run for ``worker`` and the name to register it under."""
    run: Any = getattr(worker, "run", None)
    if inspect.iscoroutinefunction(worker):
        run, default = worker, getattr(worker, "__name__", None)
    elif inspect.iscoroutinefunction(run):
        default = getattr(worker, "name", None)
    else:
        raise TypeError(f"`worker` must be an async function or have an `async def run(self)` method, not {worker!r}")
    if name is None:
        name = default
        if name is None:
            raise TypeError(f"`worker` {worker!r} has no name; give it a `name` attribute or use add(worker, name=...)")
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
