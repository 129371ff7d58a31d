"""Durable-store throughput: enqueue, and end to end (enqueue, claim, run a no-op, complete).

Each function runs in a fresh process (``benchmarks._child``) and returns
``{"enqueue_per_s": ..., "end_to_end_per_s": ..., "collected": ...}``, where
``collected`` counts the tasks that ended succeeded, so no row can skip work.
PostgreSQL rows use the server at ``$WPXT_BENCH_POSTGRES_DSN`` (default: the
local one), each in a schema or database of its own, dropped afterwards.
procrastinate runs on the same server for comparison.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trio

CONCURRENCY = 128
"""Tasks a worker runs at once; claims are batched up to the free slots."""
ENQUEUE_BATCH = 1000

DSN = os.environ.get("WPXT_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def _drain(store: Any, n: int) -> dict[str, Any]:
    import workerpoolxt as wpxt
    import workerpoolxt.durable

    registry = wpxt.Registry()

    @registry.register("noop")
    async def noop(options: Any) -> None:
        return None

    await store.init()
    start = time.perf_counter()
    for first in range(0, n, ENQUEUE_BATCH):
        await store.enqueue([wpxt.Job("noop")] * min(ENQUEUE_BATCH, n - first))
    enqueued = time.perf_counter()
    async with wpxt.durable.DurableWorker(store, registry, concurrency=CONCURRENCY, poll=0.01):
        while (await store.stats()).succeeded < n:  # noqa: ASYNC110 - polling the database is the point
            await trio.sleep(0.01)
    done = time.perf_counter()
    collected = (await store.stats()).succeeded
    await store.aclose()
    return {
        "enqueue_per_s": n / (enqueued - start),
        "end_to_end_per_s": n / (done - start),
        "collected": collected,
    }


def sqlite(n: int) -> dict[str, Any]:
    """SQLiteStore in a fresh file, one worker process."""
    import workerpoolxt as wpxt
    import workerpoolxt.durable

    with tempfile.TemporaryDirectory() as directory:
        return trio.run(_drain, wpxt.durable.SQLiteStore(Path(directory) / "bench.db"), n)


def postgres(n: int) -> dict[str, Any]:
    """PostgresStore in a fresh schema, one worker process."""
    import psycopg

    import workerpoolxt as wpxt
    import workerpoolxt.durable

    schema = f"wpxt_bench_{uuid.uuid4().hex[:12]}"
    try:
        return trio.run(_drain, wpxt.durable.PostgresStore(DSN, schema=schema), n)
    finally:
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def procrastinate(n: int) -> dict[str, Any]:
    """procrastinate 3 on the same server, in a fresh database, one asyncio worker."""
    import asyncio

    import procrastinate as procrastinate_module
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    database = f"wpxt_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database}")
    conninfo = make_conninfo(**{**conninfo_to_dict(DSN), "dbname": database})
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
                await app.run_worker_async(wait=False, concurrency=CONCURRENCY, install_signal_handlers=False)
                done = time.perf_counter()
                async with await psycopg.AsyncConnection.connect(conninfo) as connection:
                    cursor = await connection.execute(
                        "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
                    )
                    row = await cursor.fetchone()
            return {
                "enqueue_per_s": n / (enqueued - start),
                "end_to_end_per_s": n / (done - start),
                "collected": row[0] if row else 0,
            }

        return asyncio.run(run())
    finally:
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
