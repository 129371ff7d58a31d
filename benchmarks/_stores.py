"""Durable-store throughput: enqueue, and end to end (enqueue, claim, run a no-op, complete).

Each function runs in a fresh process (``benchmarks._child``) and returns
``{"enqueue_per_s": ..., "end_to_end_per_s": ..., "collected": ...}``, where
``collected`` counts the tasks that ended succeeded, so no row can skip work.
PostgreSQL rows use the server at ``$WPXT_BENCH_POSTGRES_DSN`` (default: the
local one), each in a schema or database of its own, dropped afterwards.
procrastinate and pgqueuer run on the same server for comparison.

Every row, ours and the peers', runs ``ANALYZE`` on its queue tables once the
tasks are enqueued, so that each planner sees the real table and each queue
is measured at its best. The ``ANALYZE`` is outside the timed window for all
of them: end to end is the enqueue time plus the drain time (from the
worker's start until every task is done), without the pause between.

The backlog rows (``*_backlog``) ask whether claims slow down as finished
tasks pile up: the same drain, measured alone, on a fresh table, after
``finished`` succeeded tasks were written straight into it (one INSERT ...
SELECT, far faster than enqueueing and running them), and with those rows
while a second store prunes them in batches of ``PRUNE_BATCH``, as an
operator's ``workerpoolxt prune`` would.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

CONCURRENCY = 128
"""Tasks a worker runs at once; claims are batched up to the free slots."""
ENQUEUE_BATCH = 1000

DSN = os.environ.get("WPXT_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

PRUNE_BATCH = 1000
"""Tasks each prune of the backlog rows deletes: ``prune()``'s default limit."""
RETENTION = 3600.0
"""Seconds the backlog rows' pruner keeps finished tasks; the finished rows written before the drain are older."""


def _analyze_postgres(conninfo: str, *tables: str) -> None:
    """``ANALYZE`` the given tables (quoted names), on a connection of its own."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"ANALYZE {', '.join(tables)}")


async def _drain(
    store: Any,
    n: int,
    analyze: Callable[[], None],
    fill: Callable[[int], None] | None = None,
    pruner: Any = None,
) -> dict[str, Any]:
    """Enqueue ``n`` no-op tasks, then time one worker running them all.

    ``fill``, given the id of a template task, writes the finished rows of a
    backlog row before the enqueue; ``pruner``, a second store on the same
    tasks, prunes them in a loop of its own while the worker drains.
    """
    import workerpoolxt as wpxt
    import workerpoolxt.durable

    registry = wpxt.Registry()

    @registry.register("noop")
    async def noop(options: Any) -> None:
        return None

    await store.init()
    finished = 0
    if fill is not None:
        # The finished rows copy a real task's handler and job, and take lower ids than the queued ones, as old
        # tasks do. Nothing else runs yet, so the blocking writes hold up no one.
        [template] = await store.enqueue([wpxt.Job("noop")])
        fill(template)
        finished = (await store.stats()).succeeded
    start = time.perf_counter()
    for first in range(0, n, ENQUEUE_BATCH):
        await store.enqueue([wpxt.Job("noop")] * min(ENQUEUE_BATCH, n - first))
    enqueued = time.perf_counter()
    analyze()
    pruning = _PruneLoop(pruner)
    async with trio.open_nursery() as nursery:
        if pruner is not None:
            await pruner.init()
            nursery.start_soon(pruning.run)
        drain = time.perf_counter()
        async with wpxt.durable.DurableWorker(store, registry, concurrency=CONCURRENCY, poll=0.01) as worker:
            # The worker counts a task once its completion is written; the store's
            # own count, read below, is what the row reports. Asking the store
            # instead, a count(*) every few milliseconds, would load the server.
            while worker.statistics().succeeded < n:  # noqa: ASYNC110 - a look at a counter, not a wait on the store
                await trio.sleep(0.001)
        done = time.perf_counter()
        pruning.stop = True
    if pruner is not None:
        await pruner.aclose()
    # The pruner deletes only the finished rows written before (they are older
    # than its retention): what else succeeded is what the worker ran.
    collected = (await store.stats()).succeeded - (finished - pruning.pruned)
    await store.aclose()
    return {
        **_rates(n, enqueued - start, done - drain, collected),
        "drain_per_s": n / (done - drain),
        "finished": finished,
        "pruned": pruning.pruned,
        "prunes": pruning.prunes,
        "prune_batch": PRUNE_BATCH,
    }


class _PruneLoop:
    """Prune a store in batches until told to stop, between batches so that no prune is cut short."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.stop = False
        self.pruned = 0
        self.prunes = 0

    async def run(self) -> None:
        while not self.stop:
            pruned = await self.store.prune(older_than=RETENTION, limit=PRUNE_BATCH)
            self.pruned += pruned
            self.prunes += 1
            if not pruned:
                await trio.sleep(0.01)  # all pruned: look again later, as a periodic prune would


def _rates(n: int, enqueueing: float, draining: float, collected: int) -> dict[str, Any]:
    return {
        "enqueue_per_s": n / enqueueing,
        "end_to_end_per_s": n / (enqueueing + draining),
        "collected": collected,
    }


def sqlite(n: int) -> dict[str, Any]:
    """SQLiteStore in a fresh file, one worker process."""
    import workerpoolxt as wpxt
    import workerpoolxt.durable

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"

        def analyze() -> None:
            with contextlib.closing(sqlite3.connect(path)) as connection:
                connection.execute("ANALYZE")

        return trio.run(_drain, wpxt.durable.SQLiteStore(path), n, analyze)


def postgres(n: int) -> dict[str, Any]:
    """PostgresStore in a fresh schema, one worker process."""
    import psycopg

    import workerpoolxt as wpxt
    import workerpoolxt.durable

    schema = f"wpxt_bench_{uuid.uuid4().hex[:12]}"
    try:
        analyze = functools.partial(_analyze_postgres, DSN, f'"{schema}".wpxt_tasks')
        return trio.run(_drain, wpxt.durable.PostgresStore(DSN, schema=schema), n, analyze)
    finally:
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- claims after many finished tasks ---------------------------------------------


def _finished_rows(now: float, finished: int) -> dict[str, Any]:
    """The parameters of the statements that write ``finished`` succeeded tasks, in the hour before the retention."""
    from workerpoolxt.durable import TaskStatus

    return {
        "status": TaskStatus.SUCCEEDED.value,
        "finished": finished,
        "first": now - 2 * RETENTION,
        "step": RETENTION / max(finished, 1),
    }


def _fill_postgres(schema: str, finished: int, template: int) -> None:
    """Write ``finished`` succeeded copies of task ``template`` in one statement, then drop the template."""
    import psycopg

    tasks = f'"{schema}".wpxt_tasks'
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(
            f"""
            INSERT INTO {tasks} (handler, job, status, attempts, max_attempts, priority,
                                 created_at, run_at, started_at, finished_at, worker_id, heartbeat_at, result)
            SELECT handler, job, %(status)s, 1, max_attempts, priority, at, at, at, at, 'backlog', at, 'null'::jsonb
            FROM {tasks}, generate_series(1, %(finished)s) AS i, LATERAL (SELECT %(first)s + i * %(step)s AS at) AS t
            WHERE id = %(template)s
            """,  # noqa: S608 - our own schema name
            {**_finished_rows(time.time(), finished), "template": template},
        )
        connection.execute(f"DELETE FROM {tasks} WHERE id = %(template)s", {"template": template})  # noqa: S608
        # Autovacuum would pass over a million new rows some time later, perhaps during the drain; a table that
        # has held its finished tasks for a while has been vacuumed already.
        connection.execute(f"VACUUM (ANALYZE) {tasks}")


def _postgres_backlog(n: int, finished: int, prune: bool) -> dict[str, Any]:
    import psycopg

    import workerpoolxt.durable

    schema = f"wpxt_bench_{uuid.uuid4().hex[:12]}"
    try:
        store = workerpoolxt.durable.PostgresStore(DSN, schema=schema)
        pruner = workerpoolxt.durable.PostgresStore(DSN, schema=schema) if prune else None
        analyze = functools.partial(_analyze_postgres, DSN, f'"{schema}".wpxt_tasks')
        fill = functools.partial(_fill_postgres, schema, finished) if finished else None
        return trio.run(_drain, store, n, analyze, fill, pruner)
    finally:
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def postgres_backlog(n: int, finished: int) -> dict[str, Any]:
    """PostgresStore: drain ``n`` tasks from a fresh table that holds ``finished`` succeeded tasks (or none)."""
    return _postgres_backlog(n, finished, prune=False)


def postgres_backlog_pruned(n: int, finished: int) -> dict[str, Any]:
    """PostgresStore: the same, while a second store prunes the finished tasks in batches."""
    return _postgres_backlog(n, finished, prune=True)


def _fill_sqlite(path: Path, finished: int, template: int) -> None:
    """Write ``finished`` succeeded copies of task ``template`` in one statement, then drop the template."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute(
            """
            WITH RECURSIVE series (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM series WHERE i < :finished)
            INSERT INTO wpxt_tasks (handler, job, status, attempts, max_attempts, priority,
                                    created_at, run_at, started_at, finished_at, worker_id, heartbeat_at, result)
            SELECT handler, job, :status, 1, max_attempts, priority, at, at, at, at, 'backlog', at, 'null'
            FROM (SELECT handler, job, max_attempts, priority, :first + i * :step AS at
                  FROM wpxt_tasks, series WHERE id = :template)
            """,
            {**_finished_rows(time.time(), finished), "template": template},
        )
        connection.execute("DELETE FROM wpxt_tasks WHERE id = :template", {"template": template})


def _sqlite_backlog(n: int, finished: int, prune: bool) -> dict[str, Any]:
    import workerpoolxt.durable

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"

        def analyze() -> None:
            with contextlib.closing(sqlite3.connect(path)) as connection:
                connection.execute("ANALYZE")

        store = workerpoolxt.durable.SQLiteStore(path)
        pruner = workerpoolxt.durable.SQLiteStore(path) if prune else None
        fill = functools.partial(_fill_sqlite, path, finished) if finished else None
        return trio.run(_drain, store, n, analyze, fill, pruner)


def sqlite_backlog(n: int, finished: int) -> dict[str, Any]:
    """SQLiteStore: drain ``n`` tasks from a fresh file that holds ``finished`` succeeded tasks (or none)."""
    return _sqlite_backlog(n, finished, prune=False)


def sqlite_backlog_pruned(n: int, finished: int) -> dict[str, Any]:
    """SQLiteStore: the same, while a second store prunes the finished tasks in batches."""
    return _sqlite_backlog(n, finished, prune=True)


def procrastinate(n: int) -> dict[str, Any]:
    """procrastinate 3 on the same server, in a fresh database, one asyncio worker."""
    import asyncio

    import procrastinate as procrastinate_module
    import psycopg

    database, conninfo = _create_database()
    try:
        app = procrastinate_module.App(connector=procrastinate_module.PsycopgConnector(conninfo=conninfo))

        @app.task(name="noop")
        async def noop() -> None:
            return None

        async def run() -> dict[str, Any]:
            async with app.open_async():
                await app.schema_manager.apply_schema_async()
                start = time.perf_counter()
                for first in range(0, n, ENQUEUE_BATCH):
                    await noop.batch_defer_async(*({} for _ in range(min(ENQUEUE_BATCH, n - first))))
                enqueued = time.perf_counter()
                await asyncio.to_thread(_analyze_postgres, conninfo, "procrastinate_jobs")
                drain = time.perf_counter()
                await app.run_worker_async(wait=False, concurrency=CONCURRENCY, install_signal_handlers=False)
                done = time.perf_counter()
                async with await psycopg.AsyncConnection.connect(conninfo) as connection:
                    cursor = await connection.execute(
                        "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
                    )
                    row = await cursor.fetchone()
            return _rates(n, enqueued - start, done - drain, row[0] if row else 0)

        return asyncio.run(run())
    finally:
        _drop_database(database)


def pgqueuer_b64(n: int) -> dict[str, Any]:
    """pgqueuer, dequeueing batches of 64 with 128 jobs at once."""
    return _pgqueuer(n, batch_size=64)


def pgqueuer_b10(n: int) -> dict[str, Any]:
    """pgqueuer with its default batch of 10, 128 jobs at once."""
    return _pgqueuer(n, batch_size=10)


def _pgqueuer(n: int, batch_size: int) -> dict[str, Any]:
    """pgqueuer on the same server, in a fresh database, one asyncio QueueManager on asyncpg.

    ``max_concurrent_tasks`` caps the jobs the manager holds, as our worker's
    slots do; ``mode=drain`` returns once the queue is empty and the last
    job's status is logged. ``collected`` counts the jobs logged as successful.

    asyncpg is pgqueuer's first driver. Its psycopg driver shares one
    connection between queries and a ``notifies()`` reader that holds the
    connection for up to a second at a time: about 400 jobs/s here.
    """
    import asyncio

    import asyncpg
    from pgqueuer import Queries, QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.types import QueueExecutionMode

    database, conninfo = _create_database()
    try:
        ran = 0

        async def run() -> dict[str, Any]:
            connection = await asyncpg.connect(DSN, database=database)
            try:
                queries = Queries(AsyncpgDriver(connection))
                await queries.install()
                manager = QueueManager(queries)

                @manager.entrypoint("noop")
                async def noop(job: Any) -> None:
                    nonlocal ran
                    ran += 1

                start = time.perf_counter()
                for first in range(0, n, ENQUEUE_BATCH):
                    size = min(ENQUEUE_BATCH, n - first)
                    await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
                enqueued = time.perf_counter()
                await asyncio.to_thread(_analyze_postgres, conninfo, "pgqueuer", "pgqueuer_log")
                drain = time.perf_counter()
                await manager.run(
                    batch_size=batch_size, max_concurrent_tasks=CONCURRENCY, mode=QueueExecutionMode.drain
                )
                done = time.perf_counter()
                logged = await connection.fetchval("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")
            finally:
                await connection.close()
            # Every job must have run, and been logged as successful.
            return _rates(n, enqueued - start, done - drain, min(logged, ran))

        return asyncio.run(run())
    finally:
        _drop_database(database)


def _create_database() -> tuple[str, str]:
    """A fresh database on the server: its name and its conninfo."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    database = f"wpxt_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database}")
    return database, make_conninfo(**{**conninfo_to_dict(DSN), "dbname": database})


def _drop_database(database: str) -> None:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
