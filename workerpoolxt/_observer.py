"""The pool's observer protocol: what metrics, tracing and logging see of each job.

Modelled on trio's ``Instrument``: an observer subclasses ``Observer`` and
overrides the methods for the events it wants; the pool calls only those. Each
method receives one frozen event. An error raised by an observer is logged on
the ``workerpoolxt`` logger and goes no further: observing a job never changes
what it does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._current import Progress
    from ._handle import JobHandle
    from ._result import Result

__all__ = ["AttemptEnded", "AttemptStarted", "JobFinished", "JobProgress", "JobQueued", "JobStarted", "Observer"]

_logger: Final = logging.getLogger("workerpoolxt")


@attrs.frozen
class JobQueued:
    """A job was submitted: queued, handed to an idle worker, or put aside until its start time."""

    handle: JobHandle[Any]
    """The job's handle: equal in every event of the job (and to the one ``submit()`` returned), so an observer
    can key its own state on it."""
    time: float
    """When, on the trio clock."""


@attrs.frozen
class JobStarted:
    """A worker is about to make the job's first attempt."""

    handle: JobHandle[Any]
    time: float


@attrs.frozen
class AttemptStarted:
    """An attempt is about to run: called in the job's own task, outside all middleware."""

    handle: JobHandle[Any]
    attempt: int
    """From 1, as ``current_job().attempt`` gives it."""
    time: float


@attrs.frozen
class AttemptEnded:
    """An attempt ended: called in the job's own task, right after it, whatever ended it."""

    handle: JobHandle[Any]
    attempt: int
    time: float
    error: BaseException | None
    """What the attempt raised, a ``trio.Cancelled`` included; None if it returned."""


@attrs.frozen
class JobProgress:
    """The job's task reported how far it is, with ``current_job().progress(done, total)``."""

    handle: JobHandle[Any]
    progress: Progress
    """The report: ``done``, ``total`` (None if the task did not say) and their ``fraction``."""
    time: float


@attrs.frozen
class JobFinished:
    """The job has its one Result: the last event of every job, whether it ran or not."""

    handle: JobHandle[Any]
    result: Result[Any]


class Observer:
    """Base class of a pool's observers; override the methods for the events to see.

    Add one with ``WorkerPool.add_observer()``. Every method is called
    synchronously, so it must not block. ``attempt_started`` and
    ``attempt_ended`` are called in the task that runs the attempt, in pairs,
    so an observer may set a context variable in the first (a tracing span,
    say) and reset it in the second; the attempt's task, and the tasks and
    threads it starts, see it. Observers hear of an attempt's start in the
    order they were added and of its end in the reverse order, so what they
    set nests; an observer added during an attempt hears of the next one.
    """

    def job_queued(self, event: JobQueued) -> None:
        """A job was submitted."""

    def job_started(self, event: JobStarted) -> None:
        """A job's first attempt is about to start."""

    def attempt_started(self, event: AttemptStarted) -> None:
        """An attempt is about to run, in its own task."""

    def attempt_ended(self, event: AttemptEnded) -> None:
        """An attempt ended, in its own task."""

    def job_progress(self, event: JobProgress) -> None:
        """A running job reported its progress (``current_job().progress()``): on trio's thread, as it reports.

        Only a pool with an observer that overrides it builds these events;
        a job may report often, so keep this method cheap.
        """

    def job_finished(self, event: JobFinished) -> None:
        """A job has its Result."""


JobEvent = JobQueued | JobStarted | AttemptStarted | AttemptEnded | JobProgress | JobFinished
"""Any of the events a pool's observers receive."""

_METHODS: Final = ("job_queued", "job_started", "attempt_started", "attempt_ended", "job_progress", "job_finished")


class Observers:
    """The observers of one pool, as bound methods per event, so an event nobody watches costs one check."""

    __slots__ = (*_METHODS, "all", "around_attempts")

    def __init__(self) -> None:
        self.all: tuple[Observer, ...] = ()
        self.job_queued: tuple[Callable[[JobQueued], object], ...] = ()
        self.job_started: tuple[Callable[[JobStarted], object], ...] = ()
        self.attempt_started: tuple[Callable[[AttemptStarted], object], ...] = ()
        self.attempt_ended: tuple[Callable[[AttemptEnded], object], ...] = ()
        self.job_progress: tuple[Callable[[JobProgress], object], ...] = ()
        self.job_finished: tuple[Callable[[JobFinished], object], ...] = ()
        # Whether each attempt must pass through the hooks: the worker's one check per job.
        self.around_attempts = False

    def add(self, observer: Observer) -> None:
        if not isinstance(observer, Observer):
            raise TypeError(f"`observer` must be a workerpoolxt.hooks.Observer, not {type(observer).__name__}")
        if observer in self.all:
            return
        self.all = (*self.all, observer)
        for method in _METHODS:
            if getattr(type(observer), method) is not getattr(Observer, method):
                bound = getattr(observer, method)
                # An attempt's end goes to the observers in the reverse order of
                # its start, so what they set around it nests: the first to set
                # a context variable is the last to reset it.
                known = getattr(self, method)
                setattr(self, method, (bound, *known) if method == "attempt_ended" else (*known, bound))
        self.around_attempts = bool(self.attempt_started or self.attempt_ended)


def notify(methods: tuple[Callable[[Any], object], ...], event: JobEvent, moment: str) -> None:
    """Call each observer method with ``event``; log what one raises, naming the job and ``moment``, and go on."""
    for method in methods:
        try:
            method(event)
        except Exception:  # metrics or tracing must never take a job, a worker or the pool down
            handle = event.handle
            _logger.exception("an observer of job %r (job_id %d) failed %s", handle.name, handle.job_id, moment)
