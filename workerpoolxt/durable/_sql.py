"""What the SQL stores share: their columns, claim orders, and the state machine written as SQL.

``SQLiteStore`` and ``PostgresStore`` speak the same dialect but for their
placeholders and clocks. Each gives a ``Dialect`` the SQL of the values the
checks read (``now``, ``worker_id``, ...); the Dialect then writes the
state machine's conditions (``where``) and the columns its transitions set
(``assignments``), so a status literal is never written by hand. Everything
here runs in the database, in one statement: no row passes through Python to
be decided.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from ._machine import Call, Check, TaskStatus, Transition, sources, transitions
from ._store import FRESH_START, RETRYABLE, Order, StoreStatistics, TaskRecord

__all__ = [
    "DEDUP_ROWS",
    "LOCK_ROWS",
    "LOCK_WAITING_ROWS",
    "ORDER_BY",
    "Dialect",
    "columns",
    "literal",
    "queue_statistics",
    "record_from_row",
]


def columns(json_as: str = "") -> str:
    """The task columns in the order ``record_from_row()`` reads them; ``json_as`` is appended to each JSON column.

    The column ``max_attempts`` holds ``retry + 1``, the attempts allowed;
    ``record_from_row()`` and the stores' inserts convert, and nothing else.
    """
    return (
        f"id, handler, job{json_as}, status, attempts, max_attempts, priority, created_at, run_at, started_at, "
        f"finished_at, worker_id, heartbeat_at, result{json_as}, error_type, error_message, lost_leases, "
        "progress_done, progress_total, queue, dedup_key, lock"
    )


def record_from_row(row: Sequence[Any]) -> TaskRecord:
    """Build a TaskRecord from a row of ``columns()``; JSON columns may come as text or decoded."""
    job, result = row[2], row[13]
    return TaskRecord(
        id=row[0],
        handler=row[1],
        job=json.loads(job) if isinstance(job, str) else job,
        status=TaskStatus(row[3]),
        attempts=row[4],
        retry=row[5] - 1,
        priority=row[6],
        created_at=row[7],
        run_at=row[8],
        started_at=row[9],
        finished_at=row[10],
        worker_id=row[11],
        heartbeat_at=row[12],
        result=json.loads(result) if isinstance(result, str) else result,
        error_type=row[14],
        error_message=row[15],
        lost_leases=row[16],
        progress_done=row[17],
        progress_total=row[18],
        queue=row[19],
        dedup_key=row[20],
        lock=row[21],
    )


ORDER_BY: Final = {
    Order.FIFO: "id",
    Order.LIFO: "id DESC",
    Order.PRIORITY: "priority DESC, id",
}
"""A claim's ORDER BY for each order."""


def literal(value: str) -> str:
    """A SQL string literal; the values quoted here are the package's own names, never a caller's."""
    return "'" + value.replace("'", "''") + "'"


DEDUP_ROWS: Final = f"status = {literal(TaskStatus.QUEUED)} AND started_at IS NULL AND dedup_key IS NOT NULL"
"""The rows that hold their ``dedup_key``: queued, and never started (a retry's rerun no longer does).

A unique index over these rows is what deduplicates, in every process.
"""

LOCK_ROWS: Final = f"status = {literal(TaskStatus.RUNNING)} AND lock IS NOT NULL"
"""The rows that hold their ``lock``: running. A unique index over them keeps two from running at once."""

LOCK_WAITING_ROWS: Final = f"status = {literal(TaskStatus.QUEUED)} AND lock IS NOT NULL"
"""The rows waiting for a lock, indexed by lock and id, so a claim finds each lock's next task at once."""


def queue_statistics(rows: Sequence[Sequence[Any]]) -> dict[str, StoreStatistics]:
    """``queue_stats()`` from rows of queue, status and count, by queue name."""
    counts: dict[str, dict[str, int]] = {}
    for queue, status, number in rows:
        counts.setdefault(queue, {})[status] = number
    return {queue: StoreStatistics(**counts[queue]) for queue in sorted(counts)}


# Each check as SQL, reading the old row (an UPDATE's SET and WHERE both see
# the row as it was). The {names} are the dialect's parameters.
_CHECKS: Final = {
    Check.HELD: "({worker_id} IS NULL OR worker_id = {worker_id})",
    Check.DUE: "run_at <= {now}",
    Check.LEASE_EXPIRED: "heartbeat_at < {stale}",
    Check.ATTEMPTS_USED: "attempts >= max_attempts",  # the column holds retry + 1
    Check.LEASES_USED: "lost_leases >= {max_lost_leases}",
    Check.DEAD: "{dead}",
    Check.RETRY: "{retry_at} IS NOT NULL",
}

# The errors a claim records when it buries a task, worded as MemoryStore's
# (exhausted_message() and lease_expired_message() in _store.py).
_BURIALS: Final = {
    "AttemptsExhausted": (
        "'all ' || attempts || ' of its ' || max_attempts || ' attempts were used before this claim' "
        "|| coalesce(' (last error ' || error_type || ': ' || error_message || ')', '')"
    ),
    "LeaseExpired": (
        "'worker ' || coalesce(worker_id, '?') || ' stopped heartbeating: the task lost its lease ' "
        "|| (lost_leases + 1) || ' times, more than max_lost_leases (' || {max_lost_leases} || ')'"
    ),
}


@attrs.frozen
class Dialect:
    """A SQL store's way of writing the state machine: the SQL text of each value the checks read.

    ``params`` maps ``now``, ``stale`` (now less the lease), ``worker_id``,
    ``max_lost_leases``, ``dead`` and ``retry_at`` to placeholders or
    expressions; a statement needs only those its checks read.
    """

    params: Mapping[str, str]

    def check(self, check: Check) -> str:
        """The SQL of ``check``."""
        return _CHECKS[check].format_map(self.params)

    def statuses(self, call: Call) -> str:
        """The condition that a row's status is one ``call`` moves a task from."""
        return _status_in(sources(call))

    def where(self, call: Call) -> str:
        """The rows ``call`` moves: its source statuses, each with the checks all of its transitions need.

        What tells these transitions apart is left to ``assignments()``.
        """
        groups: dict[tuple[Check, ...], list[TaskStatus]] = {}
        for status in sources(call):
            groups.setdefault(self._required(call, status), []).append(status)
        terms = [" AND ".join([_status_in(statuses), *map(self.check, checks)]) for checks, statuses in groups.items()]
        return terms[0] if len(terms) == 1 else " OR ".join(f"({term})" for term in terms)

    def assignments(self, call: Call, **more: Callable[[Transition], str]) -> str:
        """The SET list of ``call``: the columns the state machine keeps, and ``more``, for a row ``where()`` chose.

        ``more`` maps further columns to their value for each transition, as
        SQL that may hold ``{name}``s of the dialect's parameters.
        """
        columns: dict[str, Callable[[Transition], str]] = {
            "status": lambda transition: literal(transition.target),
            "attempts": lambda transition: _plus("attempts", transition.attempts),
            "lost_leases": lambda transition: _plus("lost_leases", transition.lost_leases),
            "finished_at": lambda transition: "{now}" if transition.target.final else "NULL",
            "heartbeat_at": lambda transition: "{now}" if transition.target is TaskStatus.RUNNING else "NULL",
        }
        moves = transitions(call)
        # A column no transition of the call changes is left out. finished_at
        # is set where a transition ends the task; on the rows the other calls
        # move it is NULL already. Every call stamps or clears heartbeat_at.
        changed = {
            "status": any(move.target is not move.source for move in moves),
            "attempts": any(move.attempts for move in moves),
            "lost_leases": any(move.lost_leases for move in moves),
            "finished_at": any(move.target.final for move in moves),
            "heartbeat_at": True,
        }
        sets = [f"{name} = {self._case(call, value)}" for name, value in columns.items() if changed[name]]
        sets += [f"{name} = {self._case(call, value)}" for name, value in more.items()]
        return ", ".join(sets).format_map(self.params)

    def _case(self, call: Call, value: Callable[[Transition], str]) -> str:
        """SQL for ``value(transition)`` of the transition ``call`` makes of a row ``where()`` chose.

        The arms follow the table's order, so the first whose condition holds
        is the transition ``step()`` finds; the last is the ELSE.
        """
        several = len(sources(call)) > 1
        arms: list[tuple[list[str], str]] = []
        for move in transitions(call):
            condition = [f"status = {literal(move.source)}"] if several else []
            condition += [_CHECKS[check] for check in move.checks if check not in self._required(call, move.source)]
            # An arm that gives the previous arm's value under a weaker condition takes its place.
            if arms and arms[-1][1] == value(move) and set(condition) <= set(arms[-1][0]):
                arms.pop()
            arms.append((condition, value(move)))
        # Arms before the ELSE that give its value are redundant.
        otherwise = arms.pop()[1]
        while arms and arms[-1][1] == otherwise:
            arms.pop()
        if not arms:
            return otherwise
        whens = " ".join(f"WHEN {' AND '.join(condition)} THEN {result}" for condition, result in arms)
        return f"CASE {whens} ELSE {otherwise} END"

    def claim_assignments(self) -> str:
        """The SET list of a claim: a claimed row is the worker's; a buried one keeps its holder, with the reason.

        RETURNING tells a buried row apart by its status, 'dead'.
        """
        return self.assignments(
            Call.CLAIM,
            worker_id=_when_running("{worker_id}", "worker_id"),
            started_at=_when_running("{now}", "started_at"),
            error_type=lambda move: "error_type" if move.error_type is None else literal(move.error_type),
            error_message=lambda move: "error_message" if move.error_type is None else _BURIALS[move.error_type],
        )

    def where_from(self, call: Call, status: TaskStatus) -> str:
        """The rows of ``status`` that ``call`` moves: that status, with the checks all its transitions from it need."""
        return " AND ".join([_status_in((status,)), *map(self.check, self._required(call, status))])

    def due(self) -> str:
        """The condition that a row is queued and its ``run_at`` has come: a task a claim would take now."""
        return f"{_status_in((TaskStatus.QUEUED,))} AND {self.check(Check.DUE)}"

    def lock_free(self, table: str, tasks: str) -> str:
        """The condition that a claim may take a row (of ``tasks``, named ``table`` in the query) as its lock allows.

        A queued row holding a lock is taken only while no task holding that
        lock runs, and only if it is the lowest id among the due rows waiting
        for it, so such tasks run one at a time, in the order they were
        enqueued (two of a batch never share a lock). The unique index on the
        running rows' locks enforces it, whatever a claim does. The subqueries
        state ``lock IS NOT NULL`` so that they read the partial indexes of the
        locked rows (``LOCK_ROWS``, ``LOCK_WAITING_ROWS``), never the others,
        and are correlated scalar lookups (``LIMIT 1``), which PostgreSQL would
        otherwise make a hashed scan of every running row.
        """
        queued = literal(TaskStatus.QUEUED)
        running = literal(TaskStatus.RUNNING)
        return (
            f"({table}.status <> {queued} OR {table}.lock IS NULL OR ("  # noqa: S608 - the package's own names
            f"(SELECT 1 FROM {tasks} AS holder WHERE holder.lock = {table}.lock "
            f"AND holder.status = {running} AND holder.lock IS NOT NULL LIMIT 1) IS NULL "
            f"AND {table}.id = (SELECT min(waiting.id) FROM {tasks} AS waiting WHERE waiting.lock = {table}.lock "
            f"AND waiting.status = {queued} AND waiting.lock IS NOT NULL AND waiting.run_at <= {self.params['now']})))"
        )

    def retryable(self) -> str:
        """The condition that ``retry()`` may requeue a row: it is final and did not succeed; and if it was
        cancelled after a claim, a lease has passed since (its worker has let go: see ``AdminStore.retry``)."""
        let_go = "worker_id IS NULL OR finished_at < {stale}".format_map(self.params)
        others = [status for status in RETRYABLE if status is not TaskStatus.CANCELLED]
        return f"({_status_in(others)} OR ({_status_in((TaskStatus.CANCELLED,))} AND ({let_go})))"

    def retry_assignments(self) -> str:
        """The SET list of ``retry()``: the task queued to run now, with a fresh start (``FRESH_START``)."""
        fresh = [f"{name} = {'NULL' if value is None else value}" for name, value in FRESH_START.items()]
        # A task begun afresh gives up its dedup_key: a twin may be waiting with it, whose id enqueue() now gives.
        sets = [f"status = {literal(TaskStatus.QUEUED)}", "run_at = {now}", *fresh, "dedup_key = NULL"]
        return ", ".join(sets).format_map(self.params)

    @staticmethod
    def _required(call: Call, status: TaskStatus) -> tuple[Check, ...]:
        """The checks every transition of ``call`` from ``status`` needs."""
        common = set.intersection(*(set(move.checks) for move in transitions(call) if move.source is status))
        return tuple(check for check in Check if check in common)


def _status_in(statuses: Sequence[TaskStatus]) -> str:
    names = ", ".join(map(literal, statuses))
    return f"status = {names}" if len(statuses) == 1 else f"status IN ({names})"


def _plus(column: str, amount: int) -> str:
    return column if not amount else f"{column} {'+' if amount > 0 else '-'} {abs(amount)}"


def _when_running(running: str, otherwise: str) -> Callable[[Transition], str]:
    return lambda move: running if move.target is TaskStatus.RUNNING else otherwise
