"""Logging: quiet by default, structured when asked, with ids user code can share."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from helpers import noop, sleeper

import workerpoolxt as wpxt
import workerpoolxt.supervise
from workerpoolxt import Job, WorkerPool
from workerpoolxt.middleware import summary_log


async def fails(options: wpxt.Options) -> None:
    """A task that fails."""
    raise ValueError("bad")


async def test_a_pool_logs_nothing_per_job_by_default(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A thousand jobs, failures and timeouts included, log nothing at INFO or above."""
    caplog.set_level(logging.DEBUG, logger="workerpoolxt")
    async with WorkerPool(8) as pool:
        for index in range(1000):
            pool.submit(Job([noop, fails][index % 2]))
        pool.submit(Job(sleeper(10), timeout=1))
    assert [record for record in caplog.records if record.levelno >= logging.INFO] == []


async def test_summary_lines_carry_structured_fields(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each summary record has job_name, job_id, attempt, status, code and duration attributes."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")
    async with WorkerPool(2, middleware=[summary_log()]) as pool:
        pool.submit(Job(sleeper(1), name="ok"))
        pool.submit(Job(fails, name="bad"))
        pool.submit(Job(sleeper(10), name="slow", timeout=2))
    fields = sorted(
        (r.job_name, r.job_id, r.attempt, r.status, r.code, r.duration)  # type: ignore[attr-defined]
        for r in caplog.records
    )
    assert fields == [
        ("bad", 1, 1, "failed", 500, 0.0),
        ("ok", 0, 1, "succeeded", 200, 1.0),
        ("slow", 2, 1, "timed_out", 408, 2.0),
    ]


async def test_user_code_logs_with_the_same_ids(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task and a supervised service can put the pool's and supervisor's ids on their own records."""
    caplog.set_level(logging.INFO, logger="app")
    log = logging.getLogger("app")

    async def task(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        log.info("working", extra={"job_name": job.name, "job_id": job.job_id, "attempt": job.attempt})

    async def poller() -> None:
        me = wpxt.supervise.current_service()
        log.info("polling", extra={"service_name": me.name, "execution_id": me.execution_id})
        await trio.sleep_forever()

    async with WorkerPool(1) as pool:
        await pool.submit_wait(Job(task, name="report"))
    async with wpxt.supervise.Supervisor(poller) as supervisor:
        await trio.sleep(1)
        execution_id = supervisor.execution("poller").execution_id
    working, polling = caplog.records
    assert (working.job_name, working.job_id, working.attempt) == ("report", 0, 1)  # type: ignore[attr-defined]
    assert (polling.service_name, polling.execution_id) == ("poller", execution_id)  # type: ignore[attr-defined]
