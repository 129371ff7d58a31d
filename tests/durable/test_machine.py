"""Tests for the state machine's table itself, and for the SQL the stores write from it.

``test_store_contract.py`` walks the table against every store; here the
table is checked for the properties the stores rely on.
"""

from __future__ import annotations

import re

import pytest

from workerpoolxt.durable import TaskConflictError, TaskStatus, _postgres
from workerpoolxt.durable._machine import REFUSED_AS, TRANSITIONS, Call, Check, conflict, sources, step, transitions
from workerpoolxt.durable._sql import Dialect

SQLITE = Dialect({"now": ":now", "stale": ":stale", "worker_id": ":worker_id", "max_lost_leases": ":max"})


def test_the_final_statuses_are_those_no_transition_leaves() -> None:
    """succeeded, failed, cancelled and dead are final; queued and running are not."""
    final = {status for status in TaskStatus if status.final}
    assert final == {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.DEAD}


def test_every_call_moves_some_task_and_only_finalising_calls_refuse() -> None:
    """Each Store call has a transition; complete, fail and cancel refuse what they cannot move, in their words."""
    assert {move.call for move in TRANSITIONS} == set(Call)
    assert REFUSED_AS == {Call.COMPLETE: "completed", Call.FAIL: "failed", Call.CANCEL: "cancelled"}
    assert all(move.source in sources(move.call) for move in TRANSITIONS)


def test_no_transition_is_shadowed_by_an_earlier_one() -> None:
    """A transition is reachable: no earlier transition of its call and source needs only checks it needs too."""
    for index, move in enumerate(TRANSITIONS):
        for earlier in TRANSITIONS[:index]:
            if (earlier.call, earlier.source) == (move.call, move.source):
                assert not set(earlier.checks) <= set(move.checks), (earlier.name, move.name)


def test_transition_names_are_unique() -> None:
    """Each transition has its own name."""
    names = [move.name for move in TRANSITIONS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("dead", "used", "retry", "expected"),
    [
        pytest.param(True, False, True, "dead", id="dead-wins-over-retry"),
        pytest.param(False, True, True, "last attempt", id="last-attempt-wins-over-retry"),
        pytest.param(False, False, True, "retry", id="retry"),
        pytest.param(False, False, False, "fail", id="fail"),
    ],
)
def test_step_takes_the_first_transition_whose_checks_hold(dead: bool, used: bool, retry: bool, expected: str) -> None:
    """fail() is dead if told so, then dead on its last attempt, then queued if given a retry time, else failed."""
    facts = {Check.HELD: True, Check.DEAD: dead, Check.ATTEMPTS_USED: used, Check.RETRY: retry}
    move = step(Call.FAIL, TaskStatus.RUNNING, facts)
    assert move is not None
    assert move.name == expected


def test_step_finds_nothing_from_a_status_the_call_does_not_leave_or_when_a_check_fails() -> None:
    """No transition completes a queued task, or a running one another worker holds."""
    assert step(Call.COMPLETE, TaskStatus.QUEUED, {Check.HELD: True}) is None
    assert step(Call.COMPLETE, TaskStatus.RUNNING, {Check.HELD: False}) is None


def test_claim_counts_an_attempt_reclaim_a_lost_lease_and_release_gives_the_attempt_back() -> None:
    """The counters each transition moves, as the README promises them."""
    counts = {move.name: (move.attempts, move.lost_leases) for move in TRANSITIONS if move.attempts or move.lost_leases}
    assert counts == {"claim": (1, 0), "orphaned": (0, 1), "reclaim": (0, 1), "release": (-1, 0)}


def test_conflict_names_the_task_its_status_and_the_call() -> None:
    """A refusal is a TaskConflictError whose status is a TaskStatus, with the call's word."""
    error = conflict(Call.CANCEL, 7, "succeeded")
    assert isinstance(error, TaskConflictError)
    assert (error.task_id, error.status, error.action) == (7, TaskStatus.SUCCEEDED, "cancelled")
    assert str(error) == "task 7 cannot be cancelled: it is succeeded"


def test_where_selects_each_source_with_the_checks_all_its_transitions_need() -> None:
    """A claim takes queued tasks that are due and running ones whose lease expired; a cancel, held tasks of either."""
    assert SQLITE.where(Call.CLAIM) == (
        "(status = 'queued' AND run_at <= :now) OR (status = 'running' AND heartbeat_at < :stale)"
    )
    assert SQLITE.where(Call.CANCEL) == (
        "status IN ('queued', 'running') AND (:worker_id IS NULL OR worker_id = :worker_id)"
    )


def test_assignments_set_only_what_the_transitions_change() -> None:
    """A heartbeat only stamps heartbeat_at; a release requeues, gives the attempt back and clears the heartbeat."""
    assert SQLITE.assignments(Call.HEARTBEAT) == "heartbeat_at = :now"
    assert SQLITE.assignments(Call.RELEASE) == "status = 'queued', attempts = attempts - 1, heartbeat_at = NULL"


def test_assignments_decide_between_transitions_in_table_order() -> None:
    """A claim's status is a CASE whose arms follow the table: the first transition whose checks hold."""
    arms = [f"status = '{move.source}'" for move in transitions(Call.CLAIM)]
    status = SQLITE.assignments(Call.CLAIM).split(", attempts = ")[0]
    assert status == (
        f"status = CASE WHEN {arms[0]} AND attempts >= max_attempts THEN 'dead' WHEN {arms[1]} THEN 'running' "
        f"WHEN {arms[2]} AND lost_leases >= :max THEN 'dead' ELSE 'running' END"
    )


def test_the_postgres_partial_indexes_hold_every_status_a_claim_reads() -> None:
    """The claim's rows must lie in the partial indexes, whose predicate a migration fixed: queued and running."""
    predicates = re.findall(r"WHERE status IN \(([^)]*)\)", " ".join(_postgres._MIGRATIONS[0]))
    assert predicates == ["'queued', 'running'"] * 2
    assert set(sources(Call.CLAIM)) == {TaskStatus.QUEUED, TaskStatus.RUNNING}
