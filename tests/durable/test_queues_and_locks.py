"""Deduplication and locks under contention from several processes, and what the databases enforce themselves.

Against SQLite and, when a server is there, PostgreSQL (a schema of the test's
own, dropped afterwards), on the real clock: the processes are real, started
with ``python`` on a script written to the test's directory.
"""

from __future__ import annotations

import collections
import itertools
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import attrs
import pytest
import trio
from helpers import POSTGRES_DSN, drop_schema, new_schema, requires_postgres

from workerpoolxt import Job
from workerpoolxt.durable import AdminStore, SQLiteStore, Store, StoreStatistics, TaskStatus

HANG: Final = 60.0
"""Real seconds after which a wait counts as hung."""

PROCESSES: Final = 4

KEYS: Final = 50
"""Dedup keys each enqueuing process goes through."""

LOCKS: Final = 4
TASKS_PER_LOCK: Final = 10
HOLD: Final = 0.03
"""Seconds a locked task's handler runs: long enough for other workers to try to claim its lock meanwhile."""

SCRIPT: Final = '''\
"""A process of tests/durable/test_queues_and_locks.py: enqueues dedup keys, or runs a worker."""

import json
import random
import sys
import time

import trio

import workerpoolxt as wpxt
from workerpoolxt.durable import DurableWorker, PostgresStore, SQLiteStore

registry = wpxt.Registry()


@registry.register("hold")
async def hold(lock: str, number: int) -> dict:
    start = time.time()
    await trio.sleep(HOLD)
    return {"lock": lock, "number": number, "start": start, "end": time.time()}


def open_store(kind, where, schema):
    return SQLiteStore(where, registry=registry) if kind == "sqlite" else PostgresStore(where, schema=schema)


async def enqueue_keys(store, start_at, name):
    keys = [f"user:{number}" for number in range(KEYS)]
    random.Random(name).shuffle(keys)
    await trio.sleep(max(0.0, start_at - time.time()))  # every process starts at once
    ids = {}
    for key in keys:
        [ids[key]] = await store.enqueue([wpxt.Job("hold", args={"lock": "", "number": 0}, dedup_key=key)])
    return ids


async def main(mode, kind, where, schema, argument):
    store = open_store(kind, where, schema)
    try:
        await store.init()
        if mode == "dedup":
            print(json.dumps(await enqueue_keys(store, float(argument), argument)))
        else:
            worker = DurableWorker(store, registry, concurrency=1, poll=0.01, heartbeat=1, lease=10, worker_id=argument)
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                print("ready", flush=True)
                await trio.to_thread.run_sync(sys.stdin.read)  # until the test closes stdin
                worker.stop()
    finally:
        await store.aclose()


trio.run(main, *sys.argv[1:])
'''.replace("HOLD", repr(HOLD)).replace("KEYS", repr(KEYS))


@attrs.frozen
class Backend:
    kind: str
    where: str
    """The SQLite file, or the PostgreSQL DSN."""
    schema: str

    def store(self) -> Store:
        if self.kind == "sqlite":
            return SQLiteStore(self.where)
        from workerpoolxt.durable import PostgresStore

        return PostgresStore(self.where, schema=self.schema)

    def args(self) -> list[str]:
        return [self.kind, self.where, self.schema]


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=requires_postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A store of each kind that a SQL database keeps: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "tasks.db"), "")
        return
    schema = new_schema()
    try:
        yield Backend("postgres", POSTGRES_DSN or "", schema)
    finally:
        drop_schema(schema)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.store()
    try:
        await opened.init()
        yield opened
    finally:
        await opened.aclose()


def script(directory: Path) -> Path:
    path = directory / "contender.py"
    path.write_text(SCRIPT)
    return path


async def test_dedup_under_four_enqueuing_processes_stores_each_key_once(
    backend: Backend, store: Store, tmp_path: Path
) -> None:
    """Four processes enqueue the same 50 keys at once, each in its own order: one task per key is stored, and every
    process is given that task's id for the key."""
    start_at = time.time() + 2.0  # after the processes have imported everything
    path = script(tmp_path)
    results: list[subprocess.CompletedProcess[bytes]] = []

    async def enqueue_keys(index: int) -> None:
        # Each process shuffles the keys by its own name: the start time, told apart by index.
        name = repr(start_at + index * 1e-9)
        command = [sys.executable, str(path), "dedup", *backend.args(), name]
        results.append(await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False))

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            for index in range(PROCESSES):
                nursery.start_soon(enqueue_keys, index)
    assert [(result.returncode, result.stderr.decode()) for result in results] == [(0, "")] * PROCESSES
    given = [json.loads(result.stdout) for result in results]
    assert all(ids == given[0] for ids in given)
    assert len(given[0]) == KEYS
    assert len(set(given[0].values())) == KEYS
    assert await store.stats() == StoreStatistics(queued=KEYS)
    for key, task_id in given[0].items():
        assert (await store.get(task_id)).dedup_key == key


async def test_locked_tasks_never_overlap_under_four_worker_processes(
    backend: Backend, store: Store, tmp_path: Path
) -> None:
    """Four worker processes, a task at a time each, run 40 tasks over 4 locks: tasks of one lock never run at once,
    they run in the order enqueued, and the locks are spread over several workers."""
    jobs = [
        Job("hold", args={"lock": f"account:{lock}", "number": number}, lock=f"account:{lock}")
        # A lock's tasks side by side in the queue: without the lock, four workers would take four of them at once.
        for lock in range(LOCKS)
        for number in range(TASKS_PER_LOCK)
    ]
    path = script(tmp_path)
    processes = [
        await trio.lowlevel.open_process(
            [sys.executable, str(path), "work", *backend.args(), f"worker-{index}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for index in range(PROCESSES)
    ]
    errors = []
    try:
        with trio.fail_after(HANG):
            # One task at a time each, and all of them ready: each lock has a worker of its own to go to.
            for process in processes:
                assert process.stdout is not None
                said = b""
                while not said.endswith(b"\n"):
                    said += await process.stdout.receive_some()
                assert said == b"ready\n"
            ids = await store.enqueue(jobs)
            # The tasks run in other processes: the store can only be polled.
            while (await store.stats()).succeeded < len(ids):  # noqa: ASYNC110
                await trio.sleep(0.05)
    finally:
        with trio.fail_after(HANG):
            for process in processes:
                assert process.stdin is not None
                assert process.stderr is not None
                await process.stdin.aclose()  # which stops the worker (see SCRIPT)
                errors.append(b"".join([chunk async for chunk in process.stderr]).decode())
                await process.wait()
    assert [(process.returncode, error) for process, error in zip(processes, errors, strict=True)] == [
        (0, "")
    ] * PROCESSES
    records = [await store.get(task_id) for task_id in ids]
    assert {record.status for record in records} == {TaskStatus.SUCCEEDED}
    runs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in records:
        runs[record.result["lock"]].append(record.result)
    for lock, results in runs.items():
        by_start = sorted(results, key=lambda result: result["start"])
        assert [result["number"] for result in by_start] == list(range(TASKS_PER_LOCK)), lock
        for earlier, later in itertools.pairwise(by_start):
            assert earlier["end"] <= later["start"], (lock, earlier, later)
    assert len({record.worker_id for record in records}) >= 2


async def test_the_database_refuses_two_running_tasks_of_a_lock(backend: Backend, store: Store) -> None:
    """The unique index on the running tasks' locks holds whatever writes the rows: a second running task of a lock
    is refused by the database itself."""
    first, second = await store.enqueue([Job("hold", lock="L"), Job("hold", lock="L")])
    [claimed] = await store.claim("w1", 10)
    assert claimed.id == first
    with pytest.raises(Exception, match=r"(?i)unique"):
        await trio.to_thread.run_sync(write, backend, "UPDATE {tasks} SET status = 'running' WHERE id = %s", second)


async def test_the_database_refuses_two_waiting_holders_of_a_dedup_key(backend: Backend, store: Store) -> None:
    """The unique index on the waiting tasks' dedup keys holds whatever writes the rows."""
    [keyed, plain] = await store.enqueue([Job("hold", dedup_key="k"), Job("hold")])
    assert keyed != plain
    with pytest.raises(Exception, match=r"(?i)unique"):
        await trio.to_thread.run_sync(write, backend, "UPDATE {tasks} SET dedup_key = 'k' WHERE id = %s", plain)


def write(backend: Backend, statement: str, task_id: int) -> None:
    """Run an UPDATE of one task behind the store's back, as another program could."""
    if backend.kind == "sqlite":
        connection = sqlite3.connect(backend.where)
        try:
            with connection:
                connection.execute(statement.format(tasks="wpxt_tasks").replace("%s", "?"), (task_id,))
        finally:
            connection.close()
        return
    import psycopg

    with psycopg.connect(backend.where, autocommit=True) as connection:
        connection.execute(statement.format(tasks=f'"{backend.schema}".wpxt_tasks'), (task_id,))  # type: ignore[arg-type]


async def test_a_retry_of_a_task_whose_key_a_twin_holds_runs_both(backend: Backend, store: Store) -> None:
    """An operator's retry begins a task afresh without its dedup key: its twin keeps the key, nothing clashes."""
    assert isinstance(store, AdminStore)
    [first] = await store.enqueue([Job("hold", dedup_key="k")])
    await store.claim("w1", 1)
    await store.fail(first, ValueError("boom"))
    [twin] = await store.enqueue([Job("hold", dedup_key="k")])
    assert await store.retry_dead() == [first]
    assert await store.enqueue([Job("hold", dedup_key="k")]) == [twin]
    assert await store.stats() == StoreStatistics(queued=2)


@requires_postgres
async def test_postgres_wakes_a_waiting_worker_only_for_news_of_its_queues(tmp_path: Path) -> None:
    """Work enqueued in another queue lets a waiter sleep on; work in one of its queues wakes it at once."""
    from workerpoolxt.durable import PostgresStore

    schema = new_schema()
    store = PostgresStore(POSTGRES_DSN or "", schema=schema)
    timeout = 2.0
    try:
        await store.init()

        async def enqueue_later() -> None:
            await trio.sleep(0.2)
            await store.enqueue([Job("hold")], queue="reports")
            await trio.sleep(0.4)
            await store.enqueue([Job("hold")], queue="mail")

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(enqueue_later)
            with trio.fail_after(HANG):
                await store.wait_for_work(timeout, queues=["mail", "other"])
            elapsed = trio.current_time() - start
        assert 0.6 - 0.05 <= elapsed < timeout - 0.5
    finally:
        await store.aclose()
        await trio.to_thread.run_sync(drop_schema, schema)


@requires_postgres
async def test_postgres_wakes_the_workers_of_a_lock_s_next_task_when_the_lock_is_freed() -> None:
    """A task of a lock that ends wakes the workers of the queue where the lock's next task waits, at once."""
    from workerpoolxt.durable import PostgresStore

    schema = new_schema()
    store = PostgresStore(POSTGRES_DSN or "", schema=schema)
    timeout = 3.0
    try:
        await store.init()
        [first] = await store.enqueue([Job("hold", lock="L")], queue="a")
        await store.enqueue([Job("hold", lock="L")], queue="b")
        assert [record.id for record in await store.claim("w1", 10, queues=["a", "b"])] == [first]

        async def complete_later() -> None:
            await trio.sleep(0.3)
            await store.complete(first, None, worker_id="w1")

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(complete_later)
            with trio.fail_after(HANG):
                await store.wait_for_work(timeout, queues=["b"])
            elapsed = trio.current_time() - start
        assert 0.3 - 0.05 <= elapsed < timeout - 1.0
        assert len(await store.claim("w2", 10, queues=["b"])) == 1
    finally:
        await store.aclose()
        await trio.to_thread.run_sync(drop_schema, schema)


@requires_postgres
async def test_postgres_claim_locks_only_the_tasks_it_takes() -> None:
    """A claim in a transaction still open holds only the rows it took: a claim beside it takes the others, of its
    queues or of every queue, rather than skipping rows the first locked and left."""
    import psycopg

    from workerpoolxt.durable import Order, PostgresStore
    from workerpoolxt.durable._store import Claim

    schema = new_schema()
    store = PostgresStore(POSTGRES_DSN or "", schema=schema)
    try:
        await store.init()
        orphan, first_a, first_b = await store.enqueue([Job("hold"), Job("hold", queue="a"), Job("hold", queue="b")])
        [taken] = await store.claim("dead-worker", 1, lease=0.2)
        assert taken.id == orphan
        await trio.sleep(0.3)  # its lease expires: it is orphaned

        def first_claim() -> psycopg.Connection[Any]:
            connection = psycopg.connect(POSTGRES_DSN or "")  # its transaction stays open until closed
            claim = Claim("w1", 1, Order.FIFO, 0.2, 3, ("a", "b"))
            assert [record.id for record in store._claim(connection, claim)] == [first_a]
            return connection

        holding = await trio.to_thread.run_sync(first_claim)
        try:
            assert [record.id for record in await store.claim("w2", 10, lease=0.2, queues=["b"])] == [first_b]
            assert [record.id for record in await store.claim("w3", 10, lease=0.2)] == [orphan]
        finally:
            await trio.to_thread.run_sync(holding.close)  # rolled back: first_a is queued again
        assert [record.id for record in await store.claim("w4", 10, lease=0.2)] == [first_a]
    finally:
        await store.aclose()
        await trio.to_thread.run_sync(drop_schema, schema)


@requires_postgres
async def test_postgres_claim_that_deadlocks_runs_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim the server ends with a deadlock (two claims locking tasks of two locks in opposite orders) is run
    again, as a lost race for a lock is; five in a row are a StoreError naming the race."""
    from psycopg import errors

    from workerpoolxt.durable import PostgresStore, StoreError

    schema = new_schema()
    store = PostgresStore(POSTGRES_DSN or "", schema=schema)
    try:
        await store.init()
        [task_id] = await store.enqueue([Job("hold")])
        real_run = store._run
        failures = [2]

        async def deadlocking(function: Any, *args: Any) -> Any:
            if failures[0]:
                failures[0] -= 1
                raise StoreError("test", "deadlock detected") from errors.DeadlockDetected("deadlock detected")
            return await real_run(function, *args)

        monkeypatch.setattr(store, "_run", deadlocking)
        assert [record.id for record in await store.claim("w1", 1)] == [task_id]
        failures[0] = 5
        with pytest.raises(StoreError, match="a claim lost a race for a lock 5 times: deadlock detected"):
            await store.claim("w1", 1)
    finally:
        await store.aclose()
        await trio.to_thread.run_sync(drop_schema, schema)
