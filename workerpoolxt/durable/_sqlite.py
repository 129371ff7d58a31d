"""The embedded durable store: SQLite, from the standard library, with no server.

Every call runs on one connection in a worker thread, one at a time (a
one-slot limiter), so trio never blocks on the database. The database is in
WAL mode, so readers never wait for the writer, and every write transaction
starts with ``BEGIN IMMEDIATE``: it takes SQLite's write lock up front, which
makes a claim atomic across all the processes on the machine that share the
file. Finalising writes from many tasks share one transaction (group commit).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import trio

from .._errors import StoreError, TaskNotFoundError
from .._validation import flag
from ._batch import GroupCommit
from ._store import (
    DEFAULT_MAX_LOST_LEASES,
    MAX_JSON_BYTES,
    Order,
    StoreStatistics,
    TaskRecord,
    TaskStatus,
    check_claim,
    check_final,
    check_max_json_bytes,
    check_priority,
    check_run_at,
    check_schema_version,
    encode_jobs,
    encode_result,
    error_fields,
    not_ready,
    poll_until_final,
    refusal,
)

if TYPE_CHECKING:
    from .._job import Job
    from .._registry import Registry

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_logger: Final = logging.getLogger("workerpoolxt")

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
)

_COLUMNS: Final = (
    "id, handler, job, status, attempts, max_attempts, priority, created_at, run_at, started_at, "
    "finished_at, worker_id, heartbeat_at, result, error_type, error_message, lost_leases"
)

_ORDER_BY: Final = {
    Order.FIFO: "id",
    Order.LIFO: "id DESC",
    Order.PRIORITY: "priority DESC, id",
}

_SORT_KEYS: Final[dict[Order, Callable[[TaskRecord], Any]]] = {
    Order.FIFO: lambda task: task.id,
    Order.LIFO: lambda task: -task.id,
    Order.PRIORITY: lambda task: (-task.priority, task.id),
}


def claim_set(*, now: str, worker_id: str, max_lost_leases: str) -> str:
    """The SET clause of a claim, in the dialect SQLite and PostgreSQL share, with the store's placeholders.

    A row the claim must not run is buried instead, and RETURNING tells it
    apart by its status, 'dead': a queued task whose attempts are used up, or
    an orphan (running, its lease expired) that lost its lease more than
    ``max_lost_leases`` times. Reclaiming an orphan counts a lost lease, not an
    attempt: the rerun repeats the attempt its dead worker interrupted. Every
    expression reads the row as it was before the update. The messages are
    worded as MemoryStore's (``exhausted_message``, ``lease_expired_message``).
    """
    doomed = (
        "((status = 'queued' AND attempts >= max_attempts) "
        f"OR (status = 'running' AND lost_leases >= {max_lost_leases}))"
    )
    return f"""
        status = CASE WHEN {doomed} THEN 'dead' ELSE 'running' END,
        attempts = attempts + CASE WHEN status = 'queued' AND NOT {doomed} THEN 1 ELSE 0 END,
        lost_leases = lost_leases + CASE WHEN status = 'running' THEN 1 ELSE 0 END,
        worker_id = CASE WHEN {doomed} THEN worker_id ELSE {worker_id} END,
        started_at = CASE WHEN {doomed} THEN started_at ELSE {now} END,
        heartbeat_at = CASE WHEN {doomed} THEN NULL ELSE {now} END,
        finished_at = CASE WHEN {doomed} THEN {now} END,
        error_type = CASE WHEN NOT {doomed} THEN error_type
            WHEN status = 'queued' THEN 'AttemptsExhausted' ELSE 'LeaseExpired' END,
        error_message = CASE WHEN NOT {doomed} THEN error_message
            WHEN status = 'queued' THEN 'all ' || attempts || ' of its ' || max_attempts
                || ' attempts were used before this claim'
                || coalesce(' (last error ' || error_type || ': ' || error_message || ')', '')
            ELSE 'worker ' || coalesce(worker_id, '?') || ' stopped heartbeating: the task lost its lease '
                || (lost_leases + 1) || ' times, more than max_lost_leases (' || {max_lost_leases} || ')' END
    """


# Runnable rows in claim order: queued and due, or running with an expired lease.
_CLAIMS: Final = {
    order: (
        f"UPDATE wpxt_tasks SET {claim_set(now=':now', worker_id=':worker_id', max_lost_leases=':max_lost_leases')} "  # noqa: S608 - fixed text
        f"WHERE id IN (SELECT id FROM wpxt_tasks WHERE (status = 'queued' AND run_at <= :now) "
        f"OR (status = 'running' AND heartbeat_at < :stale) ORDER BY {by} LIMIT :limit) RETURNING {_COLUMNS}"
    )
    for order, by in _ORDER_BY.items()
}


def record_from_row(row: Sequence[Any]) -> TaskRecord:
    """Build a TaskRecord from a row of ``_COLUMNS``; JSON columns may come as text or decoded."""
    job, result = row[2], row[13]
    return TaskRecord(
        id=row[0],
        handler=row[1],
        job=json.loads(job) if isinstance(job, str) else job,
        status=TaskStatus(row[3]),
        attempts=row[4],
        max_attempts=row[5],
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
    )


class SQLiteStore:
    """A durable task store in a SQLite file, safe for several processes on one machine.

    Args:
        path: The database file; created if missing.
        registry: If given, ``enqueue()`` refuses jobs naming a handler it lacks.
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
        self._finals: GroupCommit[tuple[str, tuple[Any, ...]]] = GroupCommit(self._write_finals, self._limiter)

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
            connection.execute("CREATE TABLE IF NOT EXISTS wpxt_schema (version INTEGER NOT NULL)")
            row = connection.execute("SELECT max(version) FROM wpxt_schema").fetchone()
            version = row[0] or 0
            for number, migration in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in migration.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute("INSERT INTO wpxt_schema (version) VALUES (?)", (number,))

    async def enqueue(self, jobs: Sequence[Job[Any]], *, priority: int = 0, run_at: float | None = None) -> list[int]:
        encoded = encode_jobs(jobs, self._registry, self._max_json_bytes)
        check_priority(priority)
        check_run_at(run_at)
        return await self._run(self._insert, encoded, priority, run_at)

    def _insert(self, encoded: list[tuple[str, str, int]], priority: int, run_at: float | None) -> list[int]:
        now = time.time()
        with self._transaction() as connection:
            ids = []
            for handler, job, max_attempts in encoded:
                cursor = connection.execute(
                    "INSERT INTO wpxt_tasks (handler, job, status, max_attempts, priority, created_at, run_at) "
                    "VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                    (handler, job, max_attempts, priority, now, now if run_at is None else run_at),
                )
                ids.append(cursor.lastrowid)
        return [task_id for task_id in ids if task_id is not None]

    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        order: Order = Order.FIFO,
        lease: float = 30.0,
        max_lost_leases: int = DEFAULT_MAX_LOST_LEASES,
    ) -> list[TaskRecord]:
        order = check_claim(worker_id, limit, order, lease, max_lost_leases)
        return await self._run(self._claim, worker_id, limit, order, lease, max_lost_leases)

    def _claim(self, worker_id: str, limit: int, order: Order, lease: float, max_lost_leases: int) -> list[TaskRecord]:
        now = time.time()
        params = {"worker_id": worker_id, "now": now, "stale": now - lease, "max_lost_leases": max_lost_leases}
        claimed: list[TaskRecord] = []
        with self._transaction() as connection:
            # Rows buried rather than claimed leave room in `limit`: claim again until it is filled or none is left.
            while True:
                wanted = limit - len(claimed)
                rows = connection.execute(_CLAIMS[order], {**params, "limit": wanted}).fetchall()
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
                if not buried or len(rows) < wanted:
                    break
        return sorted(claimed, key=_SORT_KEYS[order])

    async def heartbeat(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> list[int]:
        ids = list(task_ids)
        if not ids:
            await trio.lowlevel.checkpoint()
            return []
        return await self._run(self._heartbeat, ids, worker_id)

    def _heartbeat(self, task_ids: list[int], worker_id: str | None) -> list[int]:
        marks = ",".join("?" * len(task_ids))
        with self._transaction() as connection:
            rows = connection.execute(
                f"UPDATE wpxt_tasks SET heartbeat_at = ? WHERE id IN ({marks}) AND status = 'running' "  # noqa: S608
                "AND (? IS NULL OR worker_id = ?) RETURNING id",
                (time.time(), *task_ids, worker_id, worker_id),
            ).fetchall()
        return sorted(row[0] for row in rows)

    async def complete(self, task_id: int, result: Any, *, worker_id: str | None = None) -> None:
        check_final(task_id, worker_id)
        await self._finals.submit(("complete", (task_id, encode_result(result, self._max_json_bytes), worker_id)))

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
        check_run_at(retry_at)
        error_type, message = error_fields(error)
        await self._finals.submit(("fail", (task_id, error_type, message, retry_at, worker_id, dead)))

    async def cancel(self, task_id: int, *, worker_id: str | None = None) -> None:
        check_final(task_id, worker_id)
        await self._finals.submit(("cancel", (task_id, worker_id)))

    def _write_finals(self, batch: Sequence[tuple[str, tuple[Any, ...]]]) -> list[BaseException | None]:
        now = time.time()
        outcomes: list[BaseException | None] = []
        with self._reported(), self._transaction() as connection:
            for action, args in batch:
                outcomes.append(_FINALS[action](connection, now, *args))
        return outcomes

    async def release(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> None:
        ids = list(task_ids)
        if ids:
            await self._run(self._release, ids, worker_id)
        else:
            await trio.lowlevel.checkpoint()

    def _release(self, task_ids: list[int], worker_id: str | None) -> None:
        marks = ",".join("?" * len(task_ids))
        with self._transaction() as connection:
            connection.execute(
                f"UPDATE wpxt_tasks SET status = 'queued', heartbeat_at = NULL, "  # noqa: S608 - fixed text
                f"attempts = attempts - 1 WHERE id IN ({marks}) AND status = 'running' "
                "AND (? IS NULL OR worker_id = ?)",
                (*task_ids, worker_id, worker_id),
            )

    async def get(self, task_id: int) -> TaskRecord:
        return await self._run(self._get, task_id)

    def _get(self, task_id: int) -> TaskRecord:
        row = self._connect().execute(f"SELECT {_COLUMNS} FROM wpxt_tasks WHERE id = ?", (task_id,)).fetchone()  # noqa: S608
        if row is None:
            raise TaskNotFoundError(task_id)
        return record_from_row(row)

    async def wait(self, task_id: int, *, poll: float = 0.5) -> TaskRecord:
        return await poll_until_final(self.get, task_id, poll)

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - a poll interval, not a deadline
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

    async def aclose(self) -> None:
        await self._run(self._close)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


# -- finalising writes, one per action; each returns the caller's error or None -------------


def _bury_unreadable(connection: sqlite3.Connection, now: float, task_id: int, error: Exception) -> None:
    """A claimed row whose stored data cannot be read is dead on its own; the rest of its claim runs."""
    message = f"its stored data cannot be read: {error}"
    _logger.error("task %d is dead: %s: %s", task_id, type(error).__name__, message)
    connection.execute(
        "UPDATE wpxt_tasks SET status = 'dead', finished_at = ?, heartbeat_at = NULL, error_type = ?, "
        "error_message = ? WHERE id = ?",
        (now, type(error).__qualname__, message, task_id),
    )


def _conflict(connection: sqlite3.Connection, task_id: int, action: str) -> BaseException:
    row = connection.execute("SELECT status FROM wpxt_tasks WHERE id = ?", (task_id,)).fetchone()
    return refusal(task_id, row, action)


def _complete(
    connection: sqlite3.Connection, now: float, task_id: int, result: str, worker_id: str | None
) -> BaseException | None:
    cursor = connection.execute(
        "UPDATE wpxt_tasks SET status = 'succeeded', result = ?, finished_at = ?, heartbeat_at = NULL "
        "WHERE id = ? AND status = 'running' AND (? IS NULL OR worker_id = ?)",
        (result, now, task_id, worker_id, worker_id),
    )
    return None if cursor.rowcount else _conflict(connection, task_id, "completed")


def _fail(
    connection: sqlite3.Connection,
    now: float,
    task_id: int,
    error_type: str,
    message: str,
    retry_at: float | None,
    worker_id: str | None,
    dead: bool,
) -> BaseException | None:
    cursor = connection.execute(
        "UPDATE wpxt_tasks SET error_type = ?, error_message = ?, "
        "status = CASE WHEN ? THEN 'dead' "
        "  WHEN ? IS NOT NULL AND attempts < max_attempts THEN 'queued' "
        "  WHEN attempts >= max_attempts THEN 'dead' ELSE 'failed' END, "
        "run_at = CASE WHEN ? IS NOT NULL AND attempts < max_attempts AND NOT ? THEN ? ELSE run_at END, "
        "finished_at = CASE WHEN ? IS NOT NULL AND attempts < max_attempts AND NOT ? THEN NULL ELSE ? END, "
        "heartbeat_at = NULL "
        "WHERE id = ? AND status = 'running' AND (? IS NULL OR worker_id = ?)",
        (
            error_type,
            message,
            dead,
            retry_at,
            retry_at,
            dead,
            retry_at,
            retry_at,
            dead,
            now,
            task_id,
            worker_id,
            worker_id,
        ),
    )
    return None if cursor.rowcount else _conflict(connection, task_id, "failed")


def _cancel(connection: sqlite3.Connection, now: float, task_id: int, worker_id: str | None) -> BaseException | None:
    cursor = connection.execute(
        "UPDATE wpxt_tasks SET status = 'cancelled', finished_at = ?, heartbeat_at = NULL "
        "WHERE id = ? AND status IN ('queued', 'running') AND (? IS NULL OR worker_id = ?)",
        (now, task_id, worker_id, worker_id),
    )
    return None if cursor.rowcount else _conflict(connection, task_id, "cancelled")


_FINALS: Final[dict[str, Callable[..., BaseException | None]]] = {
    "complete": _complete,
    "fail": _fail,
    "cancel": _cancel,
}
