"""The observer protocol of a DurableWorker: what logging and metrics see of each task.

Modelled on trio's ``Instrument``, as the pool's and the supervisor's are: an
observer subclasses ``DurableObserver`` and overrides the methods for the
events it wants, each receiving one frozen event; the worker calls only those.
An Exception raised by an observer is logged on the ``workerpoolxt`` logger and
goes no further: observing a task never changes what the worker does.

Logging each task's outcome is itself an observer, the one every worker has
unless told not to (``log_outcomes=False``).
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

    from .. import Progress
    from ._store import StoreStatistics

__all__ = ["DurableObserver", "QueueDepth", "TaskClaimed", "TaskEnded", "TaskOutcome", "TaskProgress"]

_logger: Final = logging.getLogger("workerpoolxt")
_outcomes_logger: Final = logging.getLogger("workerpoolxt.durable")


class TaskOutcome(enum.StrEnum):
    """How a task's run on a worker ended, as the worker wrote it to the store."""

    SUCCEEDED = "succeeded"
    """The handler returned; the task is final."""
    RETRYING = "retrying"
    """The attempt failed and the task is queued for another one (``TaskEnded.retry_in`` says when)."""
    FAILED = "failed"
    """The attempt failed and the task is final, with attempts left (its result could not be stored, say)."""
    DEAD = "dead"
    """The task failed its last attempt, or can never run (its handler is unknown, say); it is final."""
    CANCELLED = "cancelled"
    """The handler raised ``CancelTask``, or the task was cancelled in the store while it ran."""
    RELEASED = "released"
    """A stop (or another task's BaseException) handed the task back to the queue, its attempt not counted."""
    LOST = "lost"
    """This worker no longer holds the task: its lease expired and another worker took it over (and writes its end),
    or the store ended it meanwhile; ``error`` then says what the store refused."""


@attrs.frozen(kw_only=True)
class TaskClaimed:
    """The worker took a task from the store; what ``DurableObserver.task_claimed`` receives."""

    task_id: int
    handler: str
    attempt: int
    """The attempt the claim starts, from 1 (a rerun after a lost lease repeats the attempt it interrupted)."""
    max_attempts: int
    """The task's ``retry + 1``."""
    worker_id: str
    time: float
    """When, on the trio clock."""


@attrs.frozen(kw_only=True)
class TaskProgress:
    """A running task's handler reported how far it is; what ``DurableObserver.task_progress`` receives.

    It comes as the handler calls ``current_job().progress()``; the store
    gets the task's latest report at the worker's next heartbeat.
    """

    task_id: int
    handler: str
    attempt: int
    worker_id: str
    progress: Progress
    """The report: ``done``, ``total`` (None if the handler did not say) and their ``fraction``."""
    time: float


@attrs.frozen(kw_only=True)
class TaskEnded:
    """A task's run on the worker ended and the store has its end; what ``DurableObserver.task_ended`` receives."""

    task_id: int
    handler: str
    attempt: int
    max_attempts: int
    worker_id: str
    outcome: TaskOutcome
    duration: float | None
    """Seconds the handler ran for this attempt; None if it did not run here to its end (released, lost, or
    cancelled in the store as a heartbeat found), or could not run at all."""
    error: BaseException | None
    """What the attempt raised, for ``RETRYING``, ``FAILED`` and ``DEAD``; else None."""
    retry_in: float | None
    """For ``RETRYING``, the seconds until the next attempt may start; else None."""
    time: float


@attrs.frozen(kw_only=True)
class QueueDepth:
    """How many tasks the store holds per status, as ``Store.stats()`` said after a heartbeat.

    What ``DurableObserver.queue_depth`` receives: the worker reads the counts
    as it starts and after each heartbeat, and only if an observer overrides
    that method, since counting may cost the store a query.
    """

    stats: StoreStatistics
    worker_id: str
    time: float


class DurableObserver:
    """Base class of a DurableWorker's observers; override the methods for the events to see.

    Add one with ``DurableWorker.add_observer()``. Every method is called
    synchronously from the worker's own tasks, so it must not block. An
    Exception an observer raises is logged, with its traceback, on the
    ``workerpoolxt`` logger; the worker, its tasks and the other observers
    carry on, and the observer stays attached.
    """

    __slots__ = ()

    def task_claimed(self, event: TaskClaimed) -> None:
        """The worker claimed a task (it may yet hand it back unrun, if a stop comes first)."""

    def task_progress(self, event: TaskProgress) -> None:
        """A running task's handler reported its progress."""

    def task_ended(self, event: TaskEnded) -> None:
        """A task's end is written: once per claim whose end this worker wrote or gave up (lost)."""

    def queue_depth(self, event: QueueDepth) -> None:
        """The store's counts per status, after a heartbeat."""


_METHODS: Final = ("task_claimed", "task_progress", "task_ended", "queue_depth")


@attrs.frozen
class Observers:
    """The observers of one worker, as bound methods per event, so an event nobody watches costs one check."""

    all: tuple[DurableObserver, ...] = ()
    task_claimed: tuple[Callable[[TaskClaimed], object], ...] = ()
    task_progress: tuple[Callable[[TaskProgress], object], ...] = ()
    task_ended: tuple[Callable[[TaskEnded], object], ...] = ()
    queue_depth: tuple[Callable[[QueueDepth], object], ...] = ()

    def adding(self, observer: DurableObserver) -> Observers:
        """Return these observers with ``observer`` added, or these if it is here already."""
        if not isinstance(observer, DurableObserver):
            raise TypeError(
                "`observer` must be a workerpoolxt.durable.DurableObserver (subclass it and override the methods "
                f"you need), not {type(observer).__name__}"
            )
        if any(known is observer for known in self.all):
            return self
        methods: dict[str, Any] = {}
        for method in _METHODS:
            known = getattr(self, method)
            # As trio's Instruments does: a method still the base class's own was not overridden.
            overridden = getattr(type(observer), method) is not getattr(DurableObserver, method)
            methods[method] = (*known, getattr(observer, method)) if overridden else known
        return Observers((*self.all, observer), **methods)


def notify(
    methods: tuple[Callable[[Any], object], ...], event: TaskClaimed | TaskProgress | TaskEnded | QueueDepth
) -> None:
    """Call each observer method with ``event``; log what one raises, and go on."""
    for method in methods:
        try:
            method(event)
        except Exception:  # metrics or logging must never take a task or the worker down
            _logger.exception("an observer of durable worker %s failed on %s", event.worker_id, type(event).__name__)


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


class OutcomeLog(DurableObserver):
    """Logs one line per task outcome on the ``workerpoolxt.durable`` logger: INFO, or WARNING for failures.

    The line's fields also go, under fixed names, to the record's attributes
    (``extra``), for a structured formatter: ``task_id``, ``handler``,
    ``attempt``, ``max_attempts``, ``status`` (the outcome's value),
    ``duration``, ``worker_id`` and ``error`` (``"Type: message"`` or None).
    """

    __slots__ = ()

    def task_ended(self, event: TaskEnded) -> None:
        outcome = event.outcome
        level = _LEVELS[outcome]
        if not _outcomes_logger.isEnabledFor(level):
            return
        error = _error_text(event.error)
        head = f"task {event.task_id} {event.handler}"
        attempts = f"{event.attempt}/{event.max_attempts}"
        if outcome is TaskOutcome.SUCCEEDED:
            message = f"{head} succeeded in {event.duration:.3f}s (attempt {attempts})"
        elif outcome is TaskOutcome.RETRYING:
            message = f"{head} failed attempt {attempts}, retrying in {event.retry_in:g}s: {error}"
        elif outcome is TaskOutcome.FAILED or outcome is TaskOutcome.DEAD:
            message = f"{head} {outcome.value} after {attempts} attempts: {error}"
        elif outcome is TaskOutcome.CANCELLED:
            message = f"{head} cancelled (attempt {attempts})"
        elif outcome is TaskOutcome.RELEASED:
            message = f"{head} released to the queue, attempt {attempts} not counted"
        else:
            message = f"{head} lost to another worker (attempt {attempts})"
            if event.error is not None:  # the store's word, when a final write found the task gone
                message += f": {error}"
        _outcomes_logger.log(
            level,
            message,
            extra={
                "task_id": event.task_id,
                "handler": event.handler,
                "attempt": event.attempt,
                "max_attempts": event.max_attempts,
                "status": outcome.value,
                "duration": event.duration,
                "worker_id": event.worker_id,
                "error": error,
            },
        )


# What went as hoped is INFO; a failed attempt, or a lease lost, is WARNING.
_LEVELS: Final = dict.fromkeys(TaskOutcome, logging.INFO) | {
    TaskOutcome.RETRYING: logging.WARNING,
    TaskOutcome.FAILED: logging.WARNING,
    TaskOutcome.DEAD: logging.WARNING,
    TaskOutcome.LOST: logging.WARNING,
}
