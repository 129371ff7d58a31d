"""The observer protocol of a Supervisor: a base class whose methods all do nothing, and the events they receive.

Modelled on trio's ``Instrument``: a method per event, every method optional,
and an error in an observer is caught and logged, so the services never feel it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, TypeVar

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._supervisor import ServiceStatus

__all__ = ["ExecutionEnded", "ExecutionStarted", "SupervisorObserver"]

_logger: Final = logging.getLogger("workerpoolxt")


@attrs.frozen(kw_only=True)
class ExecutionStarted:
    """An execution of a service is about to run; what ``SupervisorObserver.execution_started`` receives."""

    name: str
    """The service's name."""
    execution_id: str
    """The execution's id (a uuid4 hex), the same as ``current_service().execution_id`` in its task."""
    attempt: int
    """Which attempt this is, from 1."""
    retry: int
    """How many restarts after a failure the service may have: up to ``retry + 1`` attempts."""
    time: float
    """When it started, on the trio clock."""


@attrs.frozen(kw_only=True)
class ExecutionEnded:
    """An execution of a service has ended; what ``SupervisorObserver.execution_ended`` receives.

    Its ``name``, ``execution_id``, ``attempt`` and ``retry`` are those of the
    ``ExecutionStarted`` it ends.
    """

    name: str
    execution_id: str
    attempt: int
    retry: int
    time: float
    """When it ended, on the trio clock."""
    status: ServiceStatus
    """``SUCCESS`` (``run()`` returned), ``ERROR`` (it raised an Exception) or
    ``STOPPED`` (a stop or an outer cancellation ended it, or it raised a
    BaseException such as ``KeyboardInterrupt``)."""
    error: BaseException | None
    """What the run raised; None if it returned. With ``ERROR``, the Exception.
    With ``STOPPED``, what ended it: usually ``trio.Cancelled``, the service's
    own ``KeyboardInterrupt`` and the like, or an Exception its cleanup raised
    while it was being stopped."""
    restart_in: float | None
    """With ``ERROR`` and retries left, the seconds before the next attempt
    starts (0.0 for at once); None when no restart follows."""


_Event = TypeVar("_Event", ExecutionStarted, ExecutionEnded)


class SupervisorObserver:
    """Watches the executions of a Supervisor's services. Subclass it and override the methods you need.

    Every method here does nothing, and a Supervisor calls only the methods a
    subclass overrides. Attach an observer with ``Supervisor.add_observer()``.

    Both methods are called in the service's own task: ``execution_started``
    right before its ``run()`` begins, ``execution_ended`` right after the run
    ends, with nothing but the run in between. So an observer may set a context
    variable in ``execution_started``, which the run and the tasks it starts
    see, and reset it in ``execution_ended``: that is how
    ``OpenTelemetryTracing`` makes an execution's span current.
    ``current_service()`` already works in both.

    What a Supervisor promises its observers:

    - ``execution_ended`` is called exactly once after each
      ``execution_started``, however the run ends: it returned or raised, was
      stopped, was cancelled from outside, or raised a BaseException such as
      ``KeyboardInterrupt``.
    - Observers are told of a start in the order they were added, and of an
      end in the reverse order, so what they do around a run nests as
      ``with`` blocks do: two that make a span current restore the task's own.
    - Only runs produce events. A service stopped before its first attempt
      (while deferred, or before its task first ran) produces none; nor does a
      stop during the wait before a restart, whose execution has already
      ended (with ``restart_in`` set). The service's report tells those stops.
    - An observer added while an execution runs is told of the next
      execution, not of the end of this one.
    - An Exception raised by an observer's method is caught and logged on the
      ``workerpoolxt`` logger, with its traceback; the service, the other
      observers and the supervisor carry on, and the observer stays attached.

    The methods are plain functions called from the service's task: they must
    not block, and whatever they do delays the service.
    """

    __slots__ = ()

    def execution_started(self, event: ExecutionStarted) -> None:
        """Called in the service's task right before an execution runs."""

    def execution_ended(self, event: ExecutionEnded) -> None:
        """Called in the service's task right after that execution's run ends."""


@attrs.frozen
class _Hooks:
    """The observers of a Supervisor and the methods they override.

    ``started`` is in the order the observers were added, ``ended`` in the
    reverse order, so that what observers do around an execution nests: the
    first to set a context variable is the last to reset it. Frozen, so an
    execution keeps the hooks it started with, and the observers it told of
    its start are the ones it tells of its end.
    """

    observers: tuple[SupervisorObserver, ...] = ()
    started: tuple[Callable[[ExecutionStarted], object], ...] = ()
    ended: tuple[Callable[[ExecutionEnded], object], ...] = ()

    def adding(self, observer: SupervisorObserver) -> _Hooks:
        """Return the hooks with ``observer``'s added, or these if it is here already."""
        if not isinstance(observer, SupervisorObserver):
            raise TypeError(
                f"`observer` must be a SupervisorObserver (subclass it and override the methods you need), "
                f"not {type(observer).__name__}"
            )
        if any(known is observer for known in self.observers):
            return self
        return _Hooks(
            (*self.observers, observer),
            (*self.started, observer.execution_started) if _overrides(observer, "execution_started") else self.started,
            (observer.execution_ended, *self.ended) if _overrides(observer, "execution_ended") else self.ended,
        )


def _overrides(observer: SupervisorObserver, method: str) -> bool:
    # As trio's Instruments does: a method still bound to the base class's own
    # function was not overridden, so calling it would only cost time.
    return getattr(getattr(observer, method), "__func__", None) is not getattr(SupervisorObserver, method)


def notify(hooks: tuple[Callable[[_Event], object], ...], event: _Event) -> None:
    """Call each hook with ``event``; log, and otherwise ignore, the Exception any of them raises."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:  # an observer must never harm a service, nor keep the others from hearing
            _logger.exception(
                "observer %s failed for service %r",
                getattr(hook, "__qualname__", hook),
                event.name,
                extra={"service_name": event.name, "execution_id": event.execution_id, "attempt": event.attempt},
            )
