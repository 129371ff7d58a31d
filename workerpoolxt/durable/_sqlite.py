"""The embedded durable store: SQLite, from the standard library, with no server.

Every call runs on one connection in a thread, one at a time (a
one-slot limiter), so trio never blocks on the database. The database is in
WAL mode, so readers never wait for the writer, and every write transaction
starts with ``BEGIN IMMEDIATE``: it takes SQLite's write lock up front, which
makes a claim atomic across all the processes on the machine that share the
file. Finalising writes from many tasks share one transaction (group commit).
"""

from __future__ import annotations

import logging
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import trio

from .._errors import StoreError, TaskNotFoundError
from .._job import DEFAULT_QUEUE
from .._validation import flag
from ._batch import GroupCommit
from ._machine import Call, Transition
from ._sql import (
    DEDUP_ROWS,
    LOCK_ROWS,
    LOCK_WAITING_ROWS,
    ORDER_BY,
    Dialect,
    columns,
    literal,
    queue_statistics,
    record_from_row,
)
from ._store import (
    DEFAULT_MAX_LOST_LEASES,
    FINAL,
    MAX_JSON_BYTES,
    PRUNE_LIMIT,
    SORT_KEYS,
    Claim,
    EncodedJob,
    EndBatch,
    Order,
    StoreStatistics,
    TaskEnd,
    TaskRecord,
    TaskStatus,
    check_claim,
    check_final,
    check_lease,
    check_listing,
    check_max_json_bytes,
    check_priority,
    check_progress,
    check_prune,
    check_queues,
    check_schema_version,
    check_task_ids,
    check_tick,
    check_time,
    encode_jobs,
    encode_result,
    error_fields,
    not_ready,
    poll_until_final,
    refusal,
    retry_refusal,
    storable_ids,
)

if TYPE_CHECKING:
    from .. import Progress
    from .._job import Job
    from .._registry import Registry
    from .._validation import Seconds

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_Final = tuple[str, Call, dict[str, Any]]
"""A finalising write for group commit: its statement, its call, and its parameters."""


_logger: Final = logging.getLogger("workerpoolxt")

_FINAL_ROWS: Final = f"status IN ({', '.join(map(literal, FINAL))})"
"""The condition that a row is final: prune()'s, and that of the index it reads, which SQLite then uses."""

_LIVE_ROWS: Final = f"status IN ({literal(TaskStatus.QUEUED)}, {literal(TaskStatus.RUNNING)})"
"""The condition that a row is queued or running: of the indexes a claim reads, which it states so SQLite uses them."""

# Each entry upgrades the schema by one version; init() applies the missing ones.
_MIGRATIONS: Final = (
    """
    CREATE TABLE wpxt_tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        handler TEXT NOT NULL,
        job TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        run_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        worker_id TEXT,
        heartbeat_at REAL,
        result TEXT,
        error_type TEXT,
        error_message TEXT
    );
    CREATE INDEX wpxt_tasks_queued ON wpxt_tasks (status, run_at, priority, id);
    CREATE INDEX wpxt_tasks_running ON wpxt_tasks (status, heartbeat_at);
    """,
    # 2: lost leases are counted apart from attempts.
    "ALTER TABLE wpxt_tasks ADD COLUMN lost_leases INTEGER NOT NULL DEFAULT 0",
    # 3: each task keeps its handler's latest progress report.
    """
    ALTER TABLE wpxt_tasks ADD COLUMN progress_done REAL;
    ALTER TABLE wpxt_tasks ADD COLUMN progress_total REAL
    """,
    # 4: prune() finds the oldest finished tasks without reading the others.
    f"CREATE INDEX wpxt_tasks_finished ON wpxt_tasks (finished_at) WHERE {_FINAL_ROWS}",
    # 5: named queues, deduplication and locks, each enforced by an index; the
    # periodic tasks' last ticks, one row per schedule. And the live rows
    # alone in claim order, as PostgreSQL has them: a claim reads those, never
    # the finished rows below them, however many a store keeps.
    f"""
    ALTER TABLE wpxt_tasks ADD COLUMN queue TEXT NOT NULL DEFAULT {literal(DEFAULT_QUEUE)};
    ALTER TABLE wpxt_tasks ADD COLUMN dedup_key TEXT;
    ALTER TABLE wpxt_tasks ADD COLUMN lock TEXT;
    CREATE INDEX wpxt_tasks_active ON wpxt_tasks (id) WHERE {_LIVE_ROWS};
    CREATE INDEX wpxt_tasks_active_priority ON wpxt_tasks (priority DESC, id) WHERE {_LIVE_ROWS};
    CREATE INDEX wpxt_tasks_active_queue ON wpxt_tasks (queue, id) WHERE {_LIVE_ROWS};
    CREATE UNIQUE INDEX wpxt_tasks_dedup ON wpxt_tasks (dedup_key) WHERE {DEDUP_ROWS};
    CREATE UNIQUE INDEX wpxt_tasks_lock ON wpxt_tasks (lock) WHERE {LOCK_ROWS};
    CREATE INDEX wpxt_tasks_lock_queued ON wpxt_tasks (lock, id) WHERE {LOCK_WAITING_ROWS};
    CREATE TABLE wpxt_schedules (name TEXT PRIMARY KEY, last_tick REAL NOT NULL)
    """,
)

_VERSIONS: Final = "CREATE TABLE IF NOT EXISTS wpxt_schema (version INTEGER NOT NULL)"
"""The table of the schema versions applied, which init() creates first."""


def _upgrade(version: int) -> list[str]:
    """The statements that bring the schema from ``version`` to the latest, each version recorded as it is reached."""
    statements = []
    for number, migration in enumerate(_MIGRATIONS[version:], start=version + 1):
        statements += [textwrap.dedent(statement).strip() for statement in migration.split(";") if statement.strip()]
        statements.append(f"INSERT INTO wpxt_schema (version) VALUES ({number})")  # noqa: S608 - an int
    return statements


_COLUMNS: Final = columns()

# The column max_attempts holds retry + 1, the attempts allowed.
_INSERT: Final = (
    "INSERT INTO wpxt_tasks (handler, job, status, max_attempts, priority, created_at, run_at, queue, dedup_key, lock) "  # noqa: S608 - fixed text
    f"VALUES (?, ?, {literal(TaskStatus.QUEUED)}, ? + 1, ?, ?, ?, ?, ?, ?)"
)
# The task a job's dedup_key names instead, if one holds it (the unique index's rows).
_DEDUPED: Final = f"SELECT id FROM wpxt_tasks WHERE dedup_key = ? AND {DEDUP_ROWS}"  # noqa: S608 - fixed text

# Every statement names its parameters; a claim's `stale` is now less the lease.
_DIALECT: Final = Dialect(
    {
        "now": ":now",
        "stale": ":stale",
        "worker_id": ":worker_id",
        "max_lost_leases": ":max_lost_leases",
        "dead": ":dead",
        "retry_at": ":retry_at",
    }
)

# Runnable rows in claim order: queued and due, or running with an expired
# lease; that their lock allows; and, for a worker of some queues only
# ({queues} filled in with placeholders, as {ids} is), in those queues. The
# index of the live rows in claim order is named, and its condition stated:
# without statistics, SQLite would rather walk the whole table in id order.
_CLAIM: Final = (
    f"UPDATE wpxt_tasks SET {_DIALECT.claim_assignments()} "  # noqa: S608 - fixed text
    "WHERE id IN (SELECT id FROM wpxt_tasks AS task INDEXED BY {index} "
    f"WHERE {_LIVE_ROWS} AND ({_DIALECT.where(Call.CLAIM)}) "
    f"AND {_DIALECT.lock_free('task', 'wpxt_tasks')}{{in_queues}} ORDER BY {{order}} LIMIT :limit) "
    f"RETURNING {_COLUMNS}"
)
_CLAIMS: Final = {
    (order, queues): _CLAIM.format(
        # Some queues: their rows alone, by the queue index (in id order within each; a sort merges them).
        index="wpxt_tasks_active_queue"
        if queues
        else "wpxt_tasks_active_priority"
        if order is Order.PRIORITY
        else "wpxt_tasks_active",
        order=by,
        in_queues=" AND queue IN ({queues})" if queues else "",
    )
    for order, by in ORDER_BY.items()
    for queues in (False, True)
}


def _moves(call: Call, rows: str, **more: Callable[[Transition], str]) -> str:
    """The UPDATE by ``call`` of the tasks ``rows`` names, among those it may move."""
    return f"UPDATE wpxt_tasks SET {_DIALECT.assignments(call, **more)} WHERE {rows} AND {_DIALECT.where(call)}"  # noqa: S608 - fixed text


def _ids(task_ids: Sequence[int]) -> tuple[str, dict[str, int]]:
    """Placeholders for the ids, to fill the ``{ids}`` of a statement, and their values."""
    names = [f"id{index}" for index in range(len(task_ids))]
    return ", ".join(f":{name}" for name in names), dict(zip(names, task_ids, strict=True))


# heartbeat() and release() take many ids: `{ids}` is filled in with as many placeholders (_ids()).
_HEARTBEAT: Final = _moves(Call.HEARTBEAT, "id IN ({ids})") + " RETURNING id"
_RELEASE: Final = _moves(Call.RELEASE, "id IN ({ids})")
# A report is written to the rows a heartbeat would refresh: running, and held by the worker.
_PROGRESS: Final = (
    "UPDATE wpxt_tasks SET progress_done = :done, progress_total = :total "  # noqa: S608 - fixed text
    f"WHERE id = :id AND {_DIALECT.where(Call.HEARTBEAT)}"
)
_COMPLETE: Final = _moves(Call.COMPLETE, "id = :id", result=lambda _: ":result")
_FAIL: Final = _moves(
    Call.FAIL,
    "id = :id",
    error_type=lambda _: ":error_type",
    error_message=lambda _: ":message",
    run_at=lambda move: "{retry_at}" if move.target is TaskStatus.QUEUED else "run_at",
)
_CANCEL: Final = _moves(Call.CANCEL, "id = :id")
_RETRY: Final = (
    f"UPDATE wpxt_tasks SET {_DIALECT.retry_assignments()} "  # noqa: S608 - fixed text
    "WHERE id IN ({ids}) AND " + _DIALECT.retryable() + " RETURNING id"
)
_RETRY_DEAD: Final = (
    f"UPDATE wpxt_tasks SET {_DIALECT.retry_assignments()} WHERE status = {literal(TaskStatus.DEAD)} RETURNING id"  # noqa: S608 - fixed text
)
_STATUSES: Final = "SELECT id, status FROM wpxt_tasks WHERE id IN ({ids})"
# A null :status or :queue matches every row.
_LIST: Final = (
    f"SELECT {_COLUMNS} FROM wpxt_tasks WHERE (:status IS NULL OR status = :status) "  # noqa: S608 - fixed text
    "AND (:queue IS NULL OR queue = :queue) ORDER BY id DESC LIMIT :limit"
)
_QUEUE_STATS: Final = "SELECT queue, status, count(*) FROM wpxt_tasks GROUP BY queue, status"
_OLDEST_QUEUED: Final = f"SELECT min(run_at) FROM wpxt_tasks WHERE {_DIALECT.due()}"  # noqa: S608 - fixed text
# The oldest finished tasks first, by the index on finished_at: named, as
# SQLite's planner, without statistics, would rather take the final rows by
# status from another index and sort them all.
_PRUNE: Final = (
    "DELETE FROM wpxt_tasks WHERE id IN (SELECT id FROM wpxt_tasks INDEXED BY wpxt_tasks_finished "  # noqa: S608 - fixed text
    f"WHERE {_FINAL_ROWS} AND finished_at < :cutoff ORDER BY finished_at LIMIT :limit)"
)
# A schedule's row: made with its first tick if missing; advanced to a tick only if that is later (the one
# writer under BEGIN IMMEDIATE, so no other can advance it between).
_REGISTER: Final = "INSERT INTO wpxt_schedules (name, last_tick) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
_LAST_TICK: Final = "SELECT last_tick FROM wpxt_schedules WHERE name = ?"
_ADVANCE: Final = (
    "INSERT INTO wpxt_schedules (name, last_tick) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
    "SET last_tick = excluded.last_tick WHERE wpxt_schedules.last_tick < excluded.last_tick RETURNING name"
)
_STATEMENTS: Final = {Call.COMPLETE: _COMPLETE, Call.FAIL: _FAIL, Call.CANCEL: _CANCEL}


class SQLiteStore:
    """A durable task store in a SQLite file, safe for several processes on one machine.

    Args:
        path: The database file; created if missing.
        registry: If given, ``enqueue()`` refuses jobs naming a handler it lacks, or
            whose args do not fit their handler's parameters (a TypeError naming them).
        busy_timeout: Seconds a write waits for another process's transaction.
        max_json_bytes: The most bytes of JSON a task's job (with its args) or
            result may take; ``enqueue()`` and ``complete()`` refuse more with a
            ValueError. 1 MiB by default.
        read_only: Open an existing store and never write to it: the file is
            opened read-only, ``init()`` only checks that the store is there
            and current, and a write raises ``StoreError``. For tools that
            only look, so that a mistyped path creates nothing.

    Its calls raise ``StoreError``, naming the file, when the database fails:
    the file is not SQLite or its directory is missing, another process holds
    the lock longer than ``busy_timeout``, a table is gone.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        registry: Registry | None = None,
        busy_timeout: float = 10.0,
        max_json_bytes: int = MAX_JSON_BYTES,
        read_only: bool = False,
    ) -> None:
        if not isinstance(path, str | Path):
            raise TypeError(f"`path` must be a str or a Path, not {type(path).__name__}")
        self.path = Path(path)
        self._name = f"SQLite store {self.path}"
        self._registry = registry
        self._busy_timeout = busy_timeout
        self._max_json_bytes = check_max_json_bytes(max_json_bytes)
        self._read_only = flag(read_only, "read_only")
        self._connection: sqlite3.Connection | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._finals: GroupCommit[_Final] = GroupCommit(self._write_finals, self._limiter)

    # -- plumbing --------------------------------------------------------------------

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        with self._reported():
            return await trio.to_thread.run_sync(function, *args, limiter=self._limiter)

    @contextmanager
    def _reported(self) -> Iterator[None]:
        """Report the database's failures (corrupt, locked, unwritable, a table missing) as StoreErrors."""
        try:
            yield
        except sqlite3.ProgrammingError:
            raise  # this code misused sqlite3: a bug, which keeps its traceback
        except sqlite3.DatabaseError as error:
            raise self._failed(str(error)) from error

    def _failed(self, reason: str) -> StoreError:
        return StoreError(self._name, reason)

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            if self._read_only:
                self._connection = self._connect_read_only()
                return self._connection
            # SQLite says only "unable to open database file".
            if not self.path.parent.is_dir():
                raise self._failed(f"its directory {self.path.parent} does not exist")
            connection = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._connection = connection
        return self._connection

    def _connect_read_only(self) -> sqlite3.Connection:
        # No pragmas: setting WAL mode is a write, to what may not even be a store.
        if not self.path.is_file():
            raise not_ready(self._name, "the file does not exist", "create it")
        return sqlite3.connect(
            f"{self.path.absolute().as_uri()}?mode=ro",
            uri=True,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- the Store interface -----------------------------------------------------------

    async def init(self) -> None:
        await self._run(self._check if self._read_only else self._migrate)

    def _check(self) -> None:
        connection = self._connect()
        version = None
        if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'wpxt_schema'").fetchone():
            version = connection.execute("SELECT max(version) FROM wpxt_schema").fetchone()[0] or 0
        check_schema_version(self._name, version, len(_MIGRATIONS))

    def _migrate(self) -> None:
        with self._transaction() as connection:
            connection.execute(_VERSIONS)
            row = connection.execute("SELECT max(version) FROM wpxt_schema").fetchone()
            for statement in _upgrade(row[0] or 0):
                connection.execute(statement)

    def schema_sql(self) -> str:
        """The SQL that ``init()`` applies to a new file: the store's tables and indexes, in one transaction.

        For ``sqlite3 path.db < schema.sql``; the store then opens the file
        without creating anything. See ``SQLStore``.
        """
        return "".join(f"{statement};\n" for statement in ["BEGIN", _VERSIONS, *_upgrade(0), "COMMIT"])

    async def enqueue(
        self, jobs: Sequence[Job[Any]], *, priority: int = 0, run_at: float | None = None, queue: str | None = None
    ) -> list[int]:
        encoded = encode_jobs(jobs, self._registry, self._max_json_bytes, queue)
        check_priority(priority)
        check_time(run_at, "run_at")
        return await self._run(self._insert, encoded, priority, run_at)

    def _insert(self, encoded: list[EncodedJob], priority: int, run_at: float | None) -> list[int]:
        now = time.time()
        with self._transaction() as connection:
            return [_insert_in(connection, job, priority, now, run_at) for job in encoded]

    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        order: Order = Order.FIFO,
        lease: float = 30.0,
        max_lost_leases: int = DEFAULT_MAX_LOST_LEASES,
        queues: Sequence[str] | None = None,
    ) -> list[TaskRecord]:
        order = check_claim(worker_id, limit, order, lease, max_lost_leases)
        names = check_queues(queues)
        return await self._run(self._claim, Claim(worker_id, limit, order, lease, max_lost_leases, names))

    def _claim(self, claim: Claim) -> list[TaskRecord]:
        with self._transaction() as connection:
            return _claim_in(connection, time.time(), claim)

    async def heartbeat(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> list[int]:
        ids = list(task_ids)
        if not ids:
            await trio.lowlevel.checkpoint()
            return []
        return await self._run(self._heartbeat, ids, worker_id)

    def _heartbeat(self, task_ids: list[int], worker_id: str | None) -> list[int]:
        marks, ids = _ids(task_ids)
        with self._transaction() as connection:
            rows = connection.execute(
                _HEARTBEAT.format(ids=marks), {**ids, "now": time.time(), "worker_id": worker_id}
            ).fetchall()
        return sorted(row[0] for row in rows)

    async def complete(self, task_id: int, result: Any, *, worker_id: str | None = None) -> None:
        check_final(task_id, worker_id)
        encoded = encode_result(result, self._max_json_bytes)
        await self._finals.submit(
            (_COMPLETE, Call.COMPLETE, {"id": task_id, "result": encoded, "worker_id": worker_id})
        )

    async def fail(
        self,
        task_id: int,
        error: BaseException,
        retry_at: float | None = None,
        *,
        worker_id: str | None = None,
        dead: bool = False,
    ) -> None:
        check_final(task_id, worker_id)
        check_time(retry_at, "retry_at")
        error_type, message = error_fields(error)
        params = {"id": task_id, "error_type": error_type, "message": message, "retry_at": retry_at, "dead": dead}
        await self._finals.submit((_FAIL, Call.FAIL, {**params, "worker_id": worker_id}))

    async def cancel(self, task_id: int, *, worker_id: str | None = None) -> None:
        check_final(task_id, worker_id)
        await self._finals.submit((_CANCEL, Call.CANCEL, {"id": task_id, "worker_id": worker_id}))

    def _write_finals(self, batch: Sequence[_Final]) -> list[BaseException | None]:
        with self._reported(), self._transaction() as connection:
            return _finalise(connection, time.time(), batch)

    async def finish_and_claim(
        self,
        ends: Sequence[TaskEnd],
        worker_id: str,
        limit: int,
        *,
        order: Order = Order.FIFO,
        lease: float = 30.0,
        max_lost_leases: int = DEFAULT_MAX_LOST_LEASES,
        queues: Sequence[str] | None = None,
    ) -> tuple[list[BaseException | None], list[TaskRecord]]:
        """Finalise ``ends`` and claim up to ``limit`` tasks in one transaction: see ``BatchingStore``."""
        order = check_claim(worker_id, max(limit, 1), order, lease, max_lost_leases)
        names = check_queues(queues)
        batch = EndBatch(ends, worker_id, self._max_json_bytes)
        writes = [(_STATEMENTS[call], call, params) for call, params in batch.writes]
        limit = batch.claim_limit(limit)
        if not writes and limit <= 0:
            await trio.lowlevel.checkpoint()
            return batch.outcomes, []
        claim = Claim(worker_id, limit, order, lease, max_lost_leases, names)
        written, claimed = await self._run(self._finish_and_claim, writes, claim)
        return batch.outcomes_of(written), claimed

    def _finish_and_claim(
        self, batch: Sequence[_Final], claim: Claim
    ) -> tuple[list[BaseException | None], list[TaskRecord]]:
        now = time.time()
        with self._transaction() as connection:
            outcomes = _finalise(connection, now, batch)
            claimed = _claim_in(connection, now, claim) if claim.limit > 0 else []
        return outcomes, claimed

    async def release(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> None:
        ids = list(task_ids)
        if ids:
            await self._run(self._release, ids, worker_id)
        else:
            await trio.lowlevel.checkpoint()

    def _release(self, task_ids: list[int], worker_id: str | None) -> None:
        marks, ids = _ids(task_ids)
        with self._transaction() as connection:
            connection.execute(_RELEASE.format(ids=marks), {**ids, "worker_id": worker_id})

    async def record_progress(self, progress: Mapping[int, Progress], *, worker_id: str | None = None) -> None:
        """Store the latest reports of the running tasks ``worker_id`` holds, ignore the rest: see ``ProgressStore``.

        Raises:
            StoreError: The store is read-only.
        """
        rows = check_progress(progress, worker_id)
        if rows:
            await self._run(self._record_progress, rows, worker_id)
        else:
            await trio.lowlevel.checkpoint()

    def _record_progress(self, rows: list[tuple[int, float, float | None]], worker_id: str | None) -> None:
        params = [
            {"id": task_id, "done": done, "total": total, "worker_id": worker_id} for task_id, done, total in rows
        ]
        with self._transaction() as connection:
            connection.executemany(_PROGRESS, params)

    async def get(self, task_id: int) -> TaskRecord:
        return await self._run(self._get, task_id)

    def _get(self, task_id: int) -> TaskRecord:
        row = self._connect().execute(f"SELECT {_COLUMNS} FROM wpxt_tasks WHERE id = ?", (task_id,)).fetchone()  # noqa: S608
        if row is None:
            raise TaskNotFoundError(task_id)
        return record_from_row(row)

    async def wait(self, task_id: int, *, poll: float = 0.5) -> TaskRecord:
        return await poll_until_final(self.get, task_id, poll)

    async def wait_for_work(self, timeout: float, *, queues: Sequence[str] | None = None) -> None:  # noqa: ASYNC109 - a poll interval
        """SQLite cannot notify: a worker with nothing to do polls after ``timeout``."""
        await trio.sleep(timeout)

    async def wait_for_cancellations(self) -> list[int]:
        """SQLite cannot notify: this never returns, and a worker finds a cancelled task at its next heartbeat."""
        await trio.sleep_forever()

    async def stats(self) -> StoreStatistics:
        return await self._run(self._stats)

    def _stats(self) -> StoreStatistics:
        rows = self._connect().execute("SELECT status, count(*) FROM wpxt_tasks GROUP BY status").fetchall()
        return StoreStatistics(**dict(rows))

    # -- the AdminStore interface ------------------------------------------------------

    async def list_tasks(
        self, *, status: TaskStatus | None = None, limit: int = 100, queue: str | None = None
    ) -> list[TaskRecord]:
        """The newest tasks first, at most ``limit``, of ``status`` and ``queue`` if given: see ``AdminStore``."""
        wanted = check_listing(status, limit, queue)
        return await self._run(self._list, wanted, limit, queue)

    def _list(self, status: TaskStatus | None, limit: int, queue: str | None) -> list[TaskRecord]:
        params = {"status": None if status is None else status.value, "queue": queue, "limit": limit}
        return [record_from_row(row) for row in self._connect().execute(_LIST, params).fetchall()]

    async def queue_stats(self) -> dict[str, StoreStatistics]:
        """Count the tasks in each status, queue by queue: see ``AdminStore``."""
        return await self._run(self._queue_stats)

    def _queue_stats(self) -> dict[str, StoreStatistics]:
        return queue_statistics(self._connect().execute(_QUEUE_STATS).fetchall())

    async def retry(self, task_ids: Sequence[int], *, lease: float = 30.0) -> list[int]:
        """Requeue failed, dead or cancelled tasks afresh, all or none: see ``AdminStore``.

        Raises:
            StoreError: The store is read-only.
        """
        ids = check_task_ids(task_ids)
        lease = check_lease(lease)
        if not ids:
            await trio.lowlevel.checkpoint()
            return []
        return await self._run(self._retry, ids, lease)

    def _retry(self, task_ids: list[int], lease: float) -> list[int]:
        marks, ids = _ids(storable_ids(task_ids))
        # Requeue first, then find out why any was refused: a read-only store
        # refuses the write whatever the ids, and a refusal rolls it back.
        with self._transaction() as connection:
            now = time.time()
            rows = connection.execute(_RETRY.format(ids=marks), {**ids, "now": now, "stale": now - lease}).fetchall()
            requeued = {row[0] for row in rows}
            if len(requeued) < len(task_ids):
                statuses = dict(connection.execute(_STATUSES.format(ids=marks), ids).fetchall())
                refused = retry_refusal(task_ids, requeued, statuses, lease)
                if refused is not None:
                    raise refused
        return task_ids

    async def retry_dead(self) -> list[int]:
        """Requeue every dead task afresh: see ``AdminStore``.

        Raises:
            StoreError: The store is read-only.
        """
        return await self._run(self._retry_dead)

    def _retry_dead(self) -> list[int]:
        with self._transaction() as connection:
            rows = connection.execute(_RETRY_DEAD, {"now": time.time()}).fetchall()
        return sorted(row[0] for row in rows)

    async def prune(self, *, older_than: Seconds, limit: int = PRUNE_LIMIT) -> int:
        """Delete at most ``limit`` tasks that finished more than ``older_than`` seconds ago, oldest first.

        See ``AdminStore``.

        Raises:
            StoreError: The store is read-only.
        """
        seconds, limit = check_prune(older_than, limit)
        return await self._run(self._prune, seconds, limit)

    def _prune(self, older_than: float, limit: int) -> int:
        with self._transaction() as connection:
            cursor = connection.execute(_PRUNE, {"cutoff": time.time() - older_than, "limit": limit})
        return cursor.rowcount

    async def oldest_queued(self) -> float | None:
        """Since when the longest-waiting due task has waited (its ``run_at``), or None: see ``AdminStore``."""
        return await self._run(self._oldest_queued)

    def _oldest_queued(self) -> float | None:
        oldest: float | None = self._connect().execute(_OLDEST_QUEUED, {"now": time.time()}).fetchone()[0]
        return oldest

    # -- the PeriodicStore interface ---------------------------------------------------

    async def last_tick(self, schedule: str, first: float) -> float:
        """Register ``schedule`` unless it is, and return its last tick: see ``PeriodicStore``."""
        check_tick(schedule, first, "first")
        return await self._run(self._last_tick, schedule, first)

    def _last_tick(self, schedule: str, first: float) -> float:
        with self._transaction() as connection:
            connection.execute(_REGISTER, (schedule, first))
            last: float = connection.execute(_LAST_TICK, (schedule,)).fetchone()[0]
        return last

    async def enqueue_tick(self, schedule: str, tick: float, job: Job[Any]) -> int | None:
        """Enqueue ``job`` for ``tick`` of ``schedule`` unless it had that tick: see ``PeriodicStore``."""
        check_tick(schedule, tick, "tick")
        [encoded] = encode_jobs([job], self._registry, self._max_json_bytes)
        return await self._run(self._enqueue_tick, schedule, tick, encoded)

    def _enqueue_tick(self, schedule: str, tick: float, job: EncodedJob) -> int | None:
        with self._transaction() as connection:
            if not connection.execute(_ADVANCE, (schedule, tick)).fetchall():
                return None
            return _insert_in(connection, job, 0, time.time(), None)

    async def aclose(self) -> None:
        await self._run(self._close)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


# -- finalising writes, one per action; each returns the caller's error or None -------------


def _insert_in(connection: sqlite3.Connection, job: EncodedJob, priority: int, now: float, run_at: float | None) -> int:
    """Insert ``job`` in the transaction under way and return its id, or that of the task holding its dedup_key."""
    if job.dedup_key is not None:
        # The write lock is held from BEGIN IMMEDIATE: no other writer can add a holder meanwhile.
        row = connection.execute(_DEDUPED, (job.dedup_key,)).fetchone()
        if row is not None:
            return int(row[0])
    values = (job.handler, job.job, job.retry, priority, now, now if run_at is None else run_at)
    cursor = connection.execute(_INSERT, (*values, job.queue, job.dedup_key, job.lock))
    assert cursor.lastrowid is not None  # an INSERT of one row into a table with an id
    return cursor.lastrowid


def _claim_in(connection: sqlite3.Connection, now: float, claim: Claim) -> list[TaskRecord]:
    """A claim, in the transaction under way."""
    order, lease, limit = claim.order, claim.lease, claim.limit
    params: dict[str, Any] = {
        "worker_id": claim.worker_id,
        "now": now,
        "stale": now - lease,
        "max_lost_leases": claim.max_lost_leases,
    }
    statement = _CLAIMS[order, claim.queues is not None]
    if claim.queues is not None:
        marks = [f"queue{index}" for index in range(len(claim.queues))]
        statement = statement.format(queues=", ".join(f":{mark}" for mark in marks))
        params.update(zip(marks, claim.queues, strict=True))
    claimed: list[TaskRecord] = []
    # Rows buried rather than claimed leave room in `limit`: claim again until it is filled or none is left.
    while True:
        wanted = limit - len(claimed)
        rows = connection.execute(statement, {**params, "limit": wanted}).fetchall()
        buried = 0
        for row in rows:
            if row[3] == TaskStatus.DEAD:
                buried += 1
            else:
                try:
                    claimed.append(record_from_row(row))
                except Exception as exc:  # any row that cannot be read is buried alone
                    _bury_unreadable(connection, now, row[0], exc)
                    buried += 1
        # A row buried may have held back the next task of its lock, which a claim again can take.
        if not buried or len(claimed) >= limit:
            break
    return sorted(claimed, key=SORT_KEYS[order])


def _finalise(connection: sqlite3.Connection, now: float, batch: Sequence[_Final]) -> list[BaseException | None]:
    """Group commit's writes, in the transaction under way; each one's outcome."""
    outcomes: list[BaseException | None] = []
    for statement, call, params in batch:
        cursor = connection.execute(statement, {**params, "now": now})
        outcomes.append(None if cursor.rowcount else _conflict(connection, params["id"], call))
    return outcomes


def _bury_unreadable(connection: sqlite3.Connection, now: float, task_id: int, error: Exception) -> None:
    """A claimed row whose stored data cannot be read is dead on its own; the rest of its claim runs."""
    message = f"its stored data cannot be read: {error}"
    _logger.error("task %d is dead: %s: %s", task_id, type(error).__name__, message)
    connection.execute(
        f"UPDATE wpxt_tasks SET status = {literal(TaskStatus.DEAD)}, finished_at = ?, heartbeat_at = NULL, "  # noqa: S608 - fixed text
        "error_type = ?, error_message = ? WHERE id = ?",
        (now, type(error).__qualname__, message, task_id),
    )


def _conflict(connection: sqlite3.Connection, task_id: int, call: Call) -> BaseException:
    row = connection.execute("SELECT status FROM wpxt_tasks WHERE id = ?", (task_id,)).fetchone()
    return refusal(task_id, row, call)
