"""Durable workers under faults: workers killed mid-task, a handler that raises SystemExit, and contention.

Workers are real processes (``python -m workerpoolxt worker``), on the real
clock, against SQLite and, when a server is there, PostgreSQL (in a schema of
the test's own, dropped afterwards; tests/postgres_server.py says which server,
or why those runs skip).

Delivery is at least once, so what a handler does can happen twice; the
store's final status must not. To see both, each handler records its
completion in a table apart from the store's, as its very last step: a run
killed before then records nothing, and a task whose completion is recorded
twice ran its body to the end twice.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import attrs
import pytest
import trio
from helpers import POSTGRES_DSN, drop_schema, new_schema, requires_postgres

from workerpoolxt import Backoff, Job, Registry
from workerpoolxt.durable import DurableWorker, SQLiteStore, Store, StoreStatistics, TaskRecord, TaskStatus
from workerpoolxt.durable._store import TaskEnd

HANG: Final = 20.0
"""Real seconds after which a wait counts as hung."""

POLL: Final = 0.05
"""Real seconds between two looks at the store or at a worker's log."""

LEASE: Final = 1.0
HEARTBEAT: Final = 0.2
SLOW: Final = 2.0
"""How long the slow handler sleeps before it records its completion."""

CONTENDED_TASKS: Final = 10_000
BATCH: Final = 1_000
CONTENDED_HEARTBEAT: Final = 0.1
"""Frequent heartbeats contend with the claims and the final writes; the lease stays at its default, 30s."""
DRAIN_LIMIT: Final = 120.0
"""Real seconds three workers may take to drain the contended store before the test fails."""

HANDLERS: Final = '''\
"""Handlers for the worker processes of tests/test_durable_faults.py.

Each run records (task id, worker id) in a completions table apart from the
store, as its very last step, and returns its worker's id.
"""

import os
import sqlite3
import threading

import trio

import workerpoolxt as wpxt

WORKER_ID = os.environ["WPXT_TEST_WORKER_ID"]
SINK = os.environ["WPXT_TEST_SINK"]  # SQLite: a directory for one file per worker; PostgreSQL: the DSN
SCHEMA = os.environ.get("WPXT_TEST_SINK_SCHEMA")  # PostgreSQL: the schema holding `completions`

registry = wpxt.Registry()
_lock = threading.Lock()
_sink = None


def _open():
    if SCHEMA is None:
        connection = sqlite3.connect(
            os.path.join(SINK, WORKER_ID + ".db"), isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")  # a killed process loses nothing it committed
        connection.execute("CREATE TABLE IF NOT EXISTS completions (task_id INTEGER NOT NULL, worker_id TEXT NOT NULL)")
        return connection, "INSERT INTO completions (task_id, worker_id) VALUES (?, ?)"
    import psycopg
    from psycopg import sql

    connection = psycopg.connect(SINK, autocommit=True)
    insert = sql.SQL("INSERT INTO {} (task_id, worker_id) VALUES (%s, %s)").format(
        sql.Identifier(SCHEMA, "completions")
    )
    return connection, insert


def _record(task_id):
    global _sink
    with _lock:
        if _sink is None:
            _sink = _open()
        connection, insert = _sink
        connection.execute(insert, (task_id, WORKER_ID))


async def record_completion():
    await trio.to_thread.run_sync(_record, wpxt.current_job().task_id)
    return WORKER_ID


@registry.register("quick")
async def quick(options):
    return await record_completion()


@registry.register("slow")
async def slow(options):
    await trio.sleep(wpxt.current_job().args["seconds"])
    # The last step: a run killed while it sleeps has recorded nothing.
    return await record_completion()


@registry.register("exit")
async def exit_(options):
    await trio.sleep(wpxt.current_job().args["after"])
    raise SystemExit(wpxt.current_job().args["code"])
'''


# -- backends --------------------------------------------------------------------------------


@attrs.frozen
class Backend:
    """A store the workers share, and how to read what the handlers and the store recorded."""

    kind: str
    url: str
    """The store's URL for ``--store``; relative to the workers' working directory."""
    store: Store
    """The test's own connection to the store, initialised."""
    env: Mapping[str, str]
    """Tells the handlers where to record completions."""
    completions: Callable[[], list[tuple[int, str]]]
    """Every (task id, worker id) the handlers recorded, in no order (blocking: call it in a thread)."""
    tasks: Callable[[], list[tuple[int, str, int, str | None]]]
    """Every task's (id, status, attempts, worker id), straight from the store's table (blocking)."""


def read_sqlite(path: Path, query: str) -> list[Any]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def read_postgres(dsn: str, query: Any) -> list[Any]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        return connection.execute(query).fetchall()


def sqlite_backend(directory: Path) -> Backend:
    sink = directory / "completions"
    sink.mkdir()
    database = directory / "tasks.db"

    def completions() -> list[tuple[int, str]]:
        rows: list[tuple[int, str]] = []
        for path in sorted(sink.glob("*.db")):
            rows += read_sqlite(path, "SELECT task_id, worker_id FROM completions")
        return rows

    def tasks() -> list[tuple[int, str, int, str | None]]:
        return read_sqlite(database, "SELECT id, status, attempts, worker_id FROM wpxt_tasks ORDER BY id")

    return Backend(
        "sqlite", "sqlite:///tasks.db", SQLiteStore(database), {"WPXT_TEST_SINK": str(sink)}, completions, tasks
    )


def postgres_backend(dsn: str, schema: str) -> Backend:
    from psycopg import sql

    from workerpoolxt.durable import PostgresStore

    def completions() -> list[tuple[int, str]]:
        return read_postgres(
            dsn, sql.SQL("SELECT task_id, worker_id FROM {}").format(sql.Identifier(schema, "completions"))
        )

    def tasks() -> list[tuple[int, str, int, str | None]]:
        return read_postgres(
            dsn,
            sql.SQL("SELECT id, status, attempts, worker_id FROM {} ORDER BY id").format(
                sql.Identifier(schema, "wpxt_tasks")
            ),
        )

    separator = "&" if "?" in dsn else "?"
    return Backend(
        "postgres",
        f"{dsn}{separator}schema={schema}",
        PostgresStore(dsn, schema=schema),
        {"WPXT_TEST_SINK": dsn, "WPXT_TEST_SINK_SCHEMA": schema},
        completions,
        tasks,
    )


def create_completions(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE TABLE {} (task_id BIGINT NOT NULL, worker_id TEXT NOT NULL)").format(
                sql.Identifier(schema, "completions")
            )
        )


# The PostgreSQL skip is a mark, not pytest.skip() in the fixture: pytest-trio
# re-raises a skip from an async fixture without its reason. With the variable
# set, an unreachable server fails the tests.
@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=requires_postgres),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh store of each kind with a completions table beside it, and ``handlers.py`` in ``tmp_path``."""
    (tmp_path / "handlers.py").write_text(HANDLERS)
    if request.param == "sqlite":
        made = sqlite_backend(tmp_path)
        try:
            await made.store.init()
            yield made
        finally:
            await made.store.aclose()
        return
    dsn = POSTGRES_DSN
    schema = new_schema()
    made = postgres_backend(dsn, schema)
    try:
        await made.store.init()  # creates the schema
        await trio.to_thread.run_sync(create_completions, dsn, schema)
        yield made
    finally:
        with trio.fail_after(HANG):
            await made.store.aclose()
            await trio.to_thread.run_sync(drop_schema, schema)


# -- worker processes ----------------------------------------------------------------------


async def wait_until(condition: Callable[[], Awaitable[bool]], what: Callable[[], str], seconds: float = HANG) -> None:
    """Poll ``condition`` until it holds; fail with ``what()`` if it does not within ``seconds``."""
    # Other processes change what we wait for, so there is no trio.Event to wait on: poll.
    with trio.move_on_after(seconds):
        while True:
            if await condition():
                return
            await trio.sleep(POLL)
    pytest.fail(f"not within {seconds}s: {what()}")


@attrs.define(eq=False)
class WorkerProcess:
    """One ``python -m workerpoolxt worker`` subprocess, its output in a log file."""

    worker_id: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def send_signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def wait_started(self) -> None:
        """Wait until the worker says it started; fail if it exits instead."""

        async def started() -> bool:
            await trio.lowlevel.checkpoint()
            if self.process.poll() is not None:
                pytest.fail(f"worker {self.worker_id} exited with {self.process.returncode}:\n{self.log()}")
            return f"worker {self.worker_id} started" in self.log()

        await wait_until(started, lambda: f"worker {self.worker_id} starts; its log:\n{self.log()}")

    async def wait_exit(self, seconds: float = HANG) -> int:
        """Wait until the process exits and return its exit status; fail if it outlives ``seconds``."""

        async def exited() -> bool:
            await trio.lowlevel.checkpoint()
            return self.process.poll() is not None

        await wait_until(exited, lambda: f"worker {self.worker_id} exits; its log:\n{self.log()}", seconds)
        assert self.process.returncode is not None
        return self.process.returncode


class WorkerProcesses:
    """Starts worker processes on a backend; on exit, kills those still running and reaps them all."""

    def __init__(self, directory: Path, backend: Backend) -> None:
        self._directory = directory
        self._backend = backend
        self.workers: dict[str, WorkerProcess] = {}

    def start(self, worker_id: str, *options: str) -> WorkerProcess:
        log_path = self._directory / f"{worker_id}.log"
        command = [sys.executable, "-m", "workerpoolxt", "worker", "--store", self._backend.url]
        command += ["--registry", "handlers:registry", "--worker-id", worker_id, *options]
        env = {**os.environ, **self._backend.env, "WPXT_TEST_WORKER_ID": worker_id}
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, cwd=self._directory, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.workers[worker_id] = worker = WorkerProcess(worker_id, process, log_path)
        return worker

    async def wait_started(self) -> None:
        """Wait until every worker says it started: it runs tasks, and handles SIGINT and SIGTERM, from then on."""
        for worker in self.workers.values():
            await worker.wait_started()

    def logs(self) -> str:
        return "\n".join(f"--- {worker.worker_id}:\n{worker.log()}" for worker in self.workers.values())

    def __enter__(self) -> WorkerProcesses:
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.kill()
        for worker in self.workers.values():
            worker.process.wait(HANG)


def assert_no_errors_logged(worker: WorkerProcess) -> None:
    """The worker logged no error and no traceback."""
    log = worker.log()
    for marker in ("Traceback", " ERROR "):
        assert marker not in log, f"worker {worker.worker_id} logged {marker.strip()}:\n{log}"


LOST_LEASE: Final = re.compile(r"task (\d+) \S+ lost to another worker")
"""The outcome line of a task whose lease this worker lost: one line per outcome, in each worker's own log."""


def test_lost_lease_reads_the_outcome_line_a_worker_logs(caplog: pytest.LogCaptureFixture) -> None:
    """LOST_LEASE finds the line a worker logs for a lost lease: the fault tests below would pass blind without it."""
    from workerpoolxt.durable import TaskEnded, TaskOutcome
    from workerpoolxt.durable._observer import OutcomeLog

    caplog.set_level(logging.INFO, logger="workerpoolxt")
    event = TaskEnded(
        task_id=7,
        handler="long",
        attempt=1,
        max_attempts=1,
        worker_id="w1",
        outcome=TaskOutcome.LOST,
        duration=None,
        error=None,
        retry_in=None,
        time=0.0,
    )
    OutcomeLog().task_ended(event)
    assert LOST_LEASE.findall(caplog.text) == ["7"]


def assert_no_lease_lost(worker: WorkerProcess, credited: Mapping[int, str | None]) -> None:
    """The worker reported no lost lease; ``credited`` says which worker the store credits with each task."""
    log = worker.log()
    lost = [int(task_id) for task_id in LOST_LEASE.findall(log)]
    # A lease is lost to another worker; a task this worker itself finished was not lost.
    kept = [task_id for task_id in lost if credited.get(task_id) == worker.worker_id]
    assert not lost, (
        f"worker {worker.worker_id} reported {len(lost)} lost lease(s), though the store credits it with "
        f"{len(kept)} of those tasks (it finished them itself): {kept[:10]}...\n{log}"
    )
    assert " lost=0," in log.splitlines()[-1], log


async def records(store: Store, task_ids: list[int]) -> list[TaskRecord]:
    return [await store.get(task_id) for task_id in task_ids]


# -- workers killed mid-task -----------------------------------------------------------------


@pytest.mark.parametrize("retry", [None, 2], ids=["default-retry", "retry-2"])
async def test_tasks_of_killed_workers_run_again_until_one_finishes_them(
    backend: Backend, tmp_path: Path, retry: int | None
) -> None:
    """SIGKILL a worker mid-task, then the one that took its tasks over: a third runs them; each succeeds once."""
    store = backend.store
    options = ("--lease", str(LEASE), "--heartbeat", str(HEARTBEAT), "--poll", str(POLL))
    started = time.monotonic()
    with WorkerProcesses(tmp_path, backend) as workers:
        first = workers.start("w1", *options)
        await first.wait_started()

        # 30 tasks, every tenth one slow, all on w1, the only worker yet.
        slow_positions = {4, 14, 24}
        jobs = [
            Job("slow", args={"seconds": SLOW}, retry=retry)
            if position in slow_positions
            else Job("quick", retry=retry)
            for position in range(30)
        ]
        ids = await store.enqueue(jobs)
        slow_ids = [ids[position] for position in sorted(slow_positions)]
        quick_ids = [task_id for task_id in ids if task_id not in slow_ids]

        # Kill only once every quick task is done, so each killed worker is in the middle of slow tasks and
        # nothing else: a quick task killed between its completion row and its store write would, rightly,
        # run twice.
        async def slow_ones_run_on(worker_id: str, lost_leases: int) -> bool:
            quick_done = all(record.status is TaskStatus.SUCCEEDED for record in await records(store, quick_ids))
            return quick_done and all(
                (record.status, record.worker_id, record.lost_leases) == (TaskStatus.RUNNING, worker_id, lost_leases)
                for record in await records(store, slow_ids)
            )

        await wait_until(functools.partial(slow_ones_run_on, "w1", 0), lambda: f"w1 runs them\n{workers.logs()}")
        second = workers.start("w2", *options)
        await second.wait_started()  # idle: w1 holds every task
        first.process.kill()
        assert await first.wait_exit() == -signal.SIGKILL
        orphans = await records(store, slow_ids)

        # w2 takes them over once w1's lease expired, and is killed at once, long before it could finish one.
        await wait_until(functools.partial(slow_ones_run_on, "w2", 1), lambda: f"w2 takes them over\n{workers.logs()}")
        second.process.kill()
        assert await second.wait_exit() == -signal.SIGKILL
        retaken = await records(store, slow_ids)
        third = workers.start("w3", *options)

        async def all_final() -> bool:
            statistics = await store.stats()
            return statistics.queued == statistics.running == 0

        await wait_until(all_final, lambda: f"every task is final\n{workers.logs()}", seconds=LEASE + SLOW + HANG)
        third.send_signal(signal.SIGINT)
        assert await third.wait_exit() == 0
    elapsed = time.monotonic() - started

    # No task lost, none dead: each orphan ran again, as the same attempt, whatever its retry.
    assert await store.stats() == StoreStatistics(succeeded=30)
    final = {record.id: record for record in await records(store, ids)}
    for task_id, record in final.items():
        # The handler returns the id of the worker that ran it to the end: the one the store credits.
        assert record.result == record.worker_id
        assert (record.attempts, record.lost_leases) == ((1, 2) if task_id in slow_ids else (1, 0)), record
    for orphan, rerun, finished in zip(orphans, retaken, (final[task_id] for task_id in slow_ids), strict=True):
        assert finished.worker_id == "w3"
        # Each taken over only after the dead worker's lease ran out.
        assert orphan.heartbeat_at is not None
        assert rerun.started_at is not None
        assert rerun.heartbeat_at is not None
        assert finished.started_at is not None
        assert rerun.started_at >= orphan.heartbeat_at + LEASE
        assert finished.started_at >= rerun.heartbeat_at + LEASE

    # Every task ran its body to the end exactly once: the killed runs recorded nothing, and none finished twice.
    completions = await trio.to_thread.run_sync(backend.completions)
    assert collections.Counter(task_id for task_id, _ in completions) == dict.fromkeys(ids, 1)
    assert dict(completions) == {task_id: record.worker_id for task_id, record in final.items()}
    assert_no_errors_logged(third)
    assert "cannot be" not in third.log()  # no finalisation refused
    print(f"\n{backend.kind}, retry={retry}: killed w1 then w2 holding 3 tasks; all 30 done in {elapsed:.2f}s")


# -- a handler that raises SystemExit --------------------------------------------------------


async def test_a_handler_raising_system_exit_does_not_block_the_queue(backend: Backend, tmp_path: Path) -> None:
    """A handler's SystemExit(3) ends each worker with status 3 until its attempts are used; the rest all succeed."""
    store = backend.store
    options = ("--lease", "5", "--heartbeat", "1", "--poll", str(POLL))
    poison_id, *innocent = await store.enqueue(
        [Job("exit", args={"code": 3, "after": 0.2}, retry=2, backoff=Backoff.none())]
        + [Job("slow", args={"seconds": 1.0}) for _ in range(7)]
    )
    exits: list[int] = []
    with WorkerProcesses(tmp_path, backend) as workers:
        while not (await store.get(poison_id)).final:
            worker = workers.start(f"w{len(exits) + 1}", *options)
            exits.append(await worker.wait_exit())
            if len(exits) == 1:
                # All eight were claimed together; the seven beside the poison went back unharmed.
                for record in await records(store, innocent):
                    assert (record.status, record.attempts, record.worker_id) == (TaskStatus.QUEUED, 0, "w1")
                    assert record.started_at is not None
            assert len(exits) <= 3, workers.logs()
        last = workers.start("w4", *options)
        await last.wait_started()

        async def all_final() -> bool:
            statistics = await store.stats()
            return statistics.queued == statistics.running == 0

        await wait_until(all_final, lambda: f"every task is final\n{workers.logs()}")
        last.send_signal(signal.SIGINT)
        assert await last.wait_exit() == 0

    assert exits == [3, 3, 3], workers.logs()
    for worker in workers.workers.values():
        assert_no_errors_logged(worker)
        assert "ExceptionGroup" not in worker.log()
    poison = await store.get(poison_id)
    assert (poison.status, poison.attempts, poison.error_type, poison.error_message) == (
        TaskStatus.DEAD,
        3,
        "SystemExit",
        "3",
    )
    assert await store.stats() == StoreStatistics(succeeded=7, dead=1)
    for record in await records(store, innocent):
        assert (record.status, record.attempts, record.lost_leases) == (TaskStatus.SUCCEEDED, 1, 0)
    completions = await trio.to_thread.run_sync(backend.completions)
    assert collections.Counter(task_id for task_id, _ in completions) == dict.fromkeys(innocent, 1)


# -- contention ------------------------------------------------------------------------------


async def test_three_workers_drain_10000_tasks_exactly_once(backend: Backend, tmp_path: Path) -> None:
    """Three workers of 16 slots drain 10,000 tasks from one store: each task completes once, by one worker."""
    store = backend.store
    worker_ids = ["w1", "w2", "w3"]
    with WorkerProcesses(tmp_path, backend) as workers:
        for worker_id in worker_ids:
            workers.start(
                worker_id, "--concurrency", "16", "--poll", str(POLL), "--heartbeat", str(CONTENDED_HEARTBEAT)
            )
        await workers.wait_started()

        started = time.monotonic()
        ids: list[int] = []
        for _ in range(CONTENDED_TASKS // BATCH):
            ids += await store.enqueue([Job("quick")] * BATCH)
        enqueued = time.monotonic()
        assert len(set(ids)) == CONTENDED_TASKS

        statistics = StoreStatistics()

        async def drained() -> bool:
            nonlocal statistics
            statistics = await store.stats()
            assert statistics.failed == statistics.dead == statistics.cancelled == 0, statistics
            return statistics.succeeded == CONTENDED_TASKS

        await wait_until(
            drained,
            lambda: f"three workers drain {CONTENDED_TASKS} tasks; the store holds {statistics}\n{workers.logs()}",
            seconds=DRAIN_LIMIT,
        )
        drained_at = time.monotonic()
        for worker in workers.workers.values():
            worker.send_signal(signal.SIGINT)
        for worker in workers.workers.values():
            assert await worker.wait_exit() == 0

    print(
        f"\n{backend.kind}: enqueued {CONTENDED_TASKS} in {enqueued - started:.2f}s, "
        f"all done {drained_at - started:.2f}s after the first batch"
    )
    assert await store.stats() == StoreStatistics(succeeded=CONTENDED_TASKS)
    tasks = await trio.to_thread.run_sync(backend.tasks)
    assert [task_id for task_id, *_ in tasks] == ids
    assert {(status, attempts) for _, status, attempts, _ in tasks} == {("succeeded", 1)}
    completions = await trio.to_thread.run_sync(backend.completions)
    assert len(completions) == CONTENDED_TASKS
    assert len({task_id for task_id, _ in completions}) == CONTENDED_TASKS
    assert {task_id for task_id, _ in completions} == set(ids)
    # The worker that recorded the completion is the one the store credits with it.
    credited = {task_id: worker_id for task_id, _, _, worker_id in tasks}
    assert dict(completions) == credited
    shares = collections.Counter(worker_id for _, worker_id in completions)
    assert set(shares) == set(worker_ids), shares  # all three took part
    print(f"{backend.kind}: tasks per worker {dict(sorted(shares.items()))}")
    for worker in workers.workers.values():
        assert_no_errors_logged(worker)
        assert_no_lease_lost(worker, credited)


# -- a heartbeat racing a completion -------------------------------------------------------


class RacingStore(SQLiteStore):
    """A SQLiteStore on which a worker's heartbeat races its task's completion, every time.

    The first heartbeat that names a task reaches the database only after that
    task's completion has committed, so it finds the task no longer running;
    the completion returns to the worker only after that heartbeat returned.
    Without the hold-ups this happens now and then, above all on PostgreSQL,
    where a heartbeat's ``FOR UPDATE`` waits for the final write's row lock.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.committed = trio.Event()
        self.beat_returned = trio.Event()
        self.raced: list[int] = []
        """The task ids the racing heartbeat asked about and the store no longer had running."""

    async def heartbeat(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> list[int]:
        if not task_ids or self.beat_returned.is_set():
            return await super().heartbeat(task_ids, worker_id=worker_id)
        await self.committed.wait()
        held = await super().heartbeat(task_ids, worker_id=worker_id)
        self.raced = sorted(set(task_ids) - set(held))
        self.beat_returned.set()
        return held

    async def complete(self, task_id: int, result: Any, *, worker_id: str | None = None) -> None:
        await super().complete(task_id, result, worker_id=worker_id)
        await self._race()

    async def finish_and_claim(
        self, ends: Sequence[TaskEnd], worker_id: str, limit: int, **options: Any
    ) -> tuple[list[BaseException | None], list[TaskRecord]]:
        """As the worker writes its tasks' ends: the completion and the next claim, in one transaction."""
        written = await super().finish_and_claim(ends, worker_id, limit, **options)
        if ends:
            await self._race()
        return written

    async def _race(self) -> None:
        self.committed.set()
        with trio.move_on_after(HANG):
            await self.beat_returned.wait()


async def test_heartbeat_racing_a_completion_loses_no_lease(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A heartbeat that finds a task finished because this very worker just finished it reports no lost lease."""
    registry = Registry()

    @registry.register("work")
    async def work(options: Any) -> str:
        await trio.sleep(0.3)  # several heartbeats long
        return "done"

    store = RacingStore(tmp_path / "race.db")
    try:
        with trio.fail_after(HANG):
            await store.init()
            [task_id] = await store.enqueue([Job("work")])
            async with DurableWorker(store, registry, lease=5, heartbeat=0.05, poll=0.05) as worker:
                record = await store.wait(task_id, poll=0.05)
    finally:
        await store.aclose()
    assert (record.status, record.result, record.worker_id) == (TaskStatus.SUCCEEDED, "done", worker.worker_id)
    assert store.raced == [task_id]  # the race happened: the heartbeat found the task finished
    statistics = worker.statistics()
    assert (statistics.claimed, statistics.succeeded, statistics.lost) == (1, 1, 0), statistics
    assert [entry.getMessage() for entry in caplog.records if entry.levelno >= logging.WARNING] == []
