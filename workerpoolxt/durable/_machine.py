"""A durable task's state machine: the one description of which store call moves a task from which status to which.

Every store follows this table. ``MemoryStore`` looks each move up with
``step()``; the SQL stores build their conditions and status literals from it
(``_sql.py``); the contract tests walk it. The statuses and the moves::

    queued  -- claim ------------> running     (an attempt is counted)
    queued  -- claim ------------> dead        (its attempts were used up: AttemptsExhausted)
    running -- claim ------------> running     (reclaim: its lease expired; a lost lease is counted)
    running -- claim ------------> dead        (its lease expired once too often: LeaseExpired)
    running -- heartbeat --------> running
    running -- complete ---------> succeeded
    running -- fail -------------> dead        (dead=True, or its last attempt failed)
    running -- fail -------------> queued      (retry_at given, attempts left)
    running -- fail -------------> failed
    running -- release ----------> queued      (the claim's attempt is given back)
    queued, running -- cancel ---> cancelled

A call moves a task by the first of its transitions, in table order, whose
source is the task's status and whose checks all hold. If none does, the call
leaves the task alone (claim, heartbeat, release) or refuses it with
``TaskConflictError`` naming its status (complete, fail, cancel). A status no
transition leaves is final.

Every transition also keeps two columns in step with the status: a task has
``finished_at`` exactly when it is final, and ``heartbeat_at`` exactly when
it is running (a transition to running stamps it anew).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

import attrs

from .._errors import TaskConflictError

__all__ = ["Call", "Check", "TaskStatus", "Transition"]


class TaskStatus(enum.StrEnum):
    """Where a durable task stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD = "dead"

    @property
    def final(self) -> bool:
        """True for the statuses a task never leaves."""
        return self not in SOURCES


class Call(enum.StrEnum):
    """The Store methods that move a task."""

    CLAIM = "claim"
    HEARTBEAT = "heartbeat"
    COMPLETE = "complete"
    FAIL = "fail"
    RELEASE = "release"
    CANCEL = "cancel"


class Check(enum.Enum):
    """A condition a transition needs besides the task's status."""

    HELD = "the calling worker holds the task (a call without worker_id passes)"
    DUE = "its run_at has passed"
    LEASE_EXPIRED = "its heartbeat is older than the claim's lease: its worker is presumed dead"
    ATTEMPTS_USED = "attempts > retry: no attempt is left"
    LEASES_USED = "lost_leases >= max_lost_leases: losing this lease is once too often"
    DEAD = "fail(dead=True): the task can never run"
    RETRY = "fail() was given a retry_at"


@attrs.frozen
class Transition:
    """One move of a task: by ``call``, from ``source`` to ``target``, if every check holds."""

    name: str
    call: Call
    source: TaskStatus
    target: TaskStatus
    checks: tuple[Check, ...] = ()
    attempts: int = 0
    """What it adds to the task's attempts."""
    lost_leases: int = 0
    """What it adds to the task's lost leases."""
    error_type: str | None = None
    """The error it records itself, if any: why a claim buried the task."""


_Q, _R = TaskStatus.QUEUED, TaskStatus.RUNNING

TRANSITIONS: Final = (
    Transition(
        "exhausted", Call.CLAIM, _Q, TaskStatus.DEAD, (Check.DUE, Check.ATTEMPTS_USED), error_type="AttemptsExhausted"
    ),
    Transition("claim", Call.CLAIM, _Q, _R, (Check.DUE,), attempts=1),
    # A rerun after a lost lease repeats the attempt the dead worker interrupted: no attempt is counted.
    Transition(
        "orphaned",
        Call.CLAIM,
        _R,
        TaskStatus.DEAD,
        (Check.LEASE_EXPIRED, Check.LEASES_USED),
        lost_leases=1,
        error_type="LeaseExpired",
    ),
    Transition("reclaim", Call.CLAIM, _R, _R, (Check.LEASE_EXPIRED,), lost_leases=1),
    Transition("heartbeat", Call.HEARTBEAT, _R, _R, (Check.HELD,)),
    Transition("complete", Call.COMPLETE, _R, TaskStatus.SUCCEEDED, (Check.HELD,)),
    Transition("dead", Call.FAIL, _R, TaskStatus.DEAD, (Check.HELD, Check.DEAD)),
    Transition("last attempt", Call.FAIL, _R, TaskStatus.DEAD, (Check.HELD, Check.ATTEMPTS_USED)),
    Transition("retry", Call.FAIL, _R, _Q, (Check.HELD, Check.RETRY)),
    Transition("fail", Call.FAIL, _R, TaskStatus.FAILED, (Check.HELD,)),
    # Stopping is no fault of the task's: it must not cost an attempt.
    Transition("release", Call.RELEASE, _R, _Q, (Check.HELD,), attempts=-1),
    Transition("cancel queued", Call.CANCEL, _Q, TaskStatus.CANCELLED, (Check.HELD,)),
    Transition("cancel running", Call.CANCEL, _R, TaskStatus.CANCELLED, (Check.HELD,)),
)

SOURCES: Final = frozenset(transition.source for transition in TRANSITIONS)
"""The statuses some transition leaves: the ones that are not final."""

REFUSED_AS: Final[Mapping[Call, str]] = {Call.COMPLETE: "completed", Call.FAIL: "failed", Call.CANCEL: "cancelled"}
"""The calls that refuse a task they cannot move, and how ``TaskConflictError`` words what they could not do."""


def transitions(call: Call) -> tuple[Transition, ...]:
    """The transitions ``call`` makes, in table order."""
    return tuple(transition for transition in TRANSITIONS if transition.call is call)


def sources(call: Call) -> tuple[TaskStatus, ...]:
    """The statuses ``call`` may move a task from, in table order."""
    return tuple(dict.fromkeys(transition.source for transition in transitions(call)))


def step(call: Call, status: TaskStatus, holds: Mapping[Check, bool]) -> Transition | None:
    """The transition ``call`` makes from ``status`` when the checks in ``holds`` are as given; None if none."""
    for transition in transitions(call):
        if transition.source is status and all(holds[check] for check in transition.checks):
            return transition
    return None


def conflict(call: Call, task_id: int, status: TaskStatus | str) -> TaskConflictError:
    """The error of a refusing call (complete, fail, cancel) that could not move the task from ``status``."""
    return TaskConflictError(task_id, TaskStatus(status), REFUSED_AS[call])
