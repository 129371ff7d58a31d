"""Pool health: readiness from the recent error ratio, judged over the last N jobs or a time window."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from helpers import Task, noop, result_of, sleeper

import workerpoolxt as wpxt
from workerpoolxt import Health, HealthPolicy, Job, WorkerPool


async def fail(options: wpxt.Options) -> None:
    """A task that always fails."""
    raise ValueError("bad")


def coded(code: int) -> Task:
    """A task that sets ``code`` and returns."""

    async def set_code_and_return(options: wpxt.Options) -> None:
        wpxt.current_job().code = code

    return set_code_and_return


async def run_all(pool: WorkerPool, task: object, times: int) -> None:
    for _ in range(times):
        await pool.submit_wait(Job(task))  # type: ignore[call-overload]


async def test_go_work_sequence_over_the_last_four_jobs(autojump_clock: trio.testing.MockClock) -> None:
    """At 25 %, min 3, last 4: 1 bad is healthy, 10 bad is unhealthy, 3 good after them is healthy again."""
    async with WorkerPool(1, health=HealthPolicy(max_error_ratio=0.25, min_jobs=3, last=4)) as pool:
        assert pool.health() == Health(True)
        await run_all(pool, fail, 1)
        assert pool.health() == Health(True)
        await run_all(pool, fail, 9)
        assert pool.health() == Health(False, ("4 of the last 4 jobs ended in error, over 25%",))
        await run_all(pool, noop, 3)
        assert pool.health() == Health(True)  # 1 of the last 4: exactly 25 %, not over it


async def test_window_mode_forgets_old_failures(autojump_clock: trio.testing.MockClock) -> None:
    """Judged over 10 s, three failures at t=0 make the pool unhealthy until t=10, then it is healthy."""
    async with WorkerPool(1, health=HealthPolicy(window=10)) as pool:
        await run_all(pool, fail, 3)
        assert pool.health() == Health(False, ("3 of 3 jobs in the last 10s ended in error, over 25%",))
        await trio.sleep(9.5)
        assert not pool.health().healthy
        await trio.sleep(0.5)
        assert pool.health() == Health(True)


async def test_timeouts_count_as_errors_and_cancellations_do_not(autojump_clock: trio.testing.MockClock) -> None:
    """Timed-out jobs are errors; cancelled jobs are not."""
    async with WorkerPool(2, health=HealthPolicy(min_jobs=1, last=2)) as pool:
        handle = pool.submit(Job(sleeper(10)))
        await trio.testing.wait_all_tasks_blocked()
        handle.cancel()
        await pool.submit_wait(Job(noop))
        assert pool.health().healthy
        await pool.submit_wait(Job(sleeper(10), timeout=1))
        assert not pool.health().healthy  # 1 of 2 (the cancelled job and the timeout): 50 %


async def test_a_pool_not_running_or_stopped_is_unhealthy(autojump_clock: trio.testing.MockClock) -> None:
    """Before entering and once stopped, health says why it is not ready."""
    pool = WorkerPool(1)
    assert pool.health() == Health(False, ("the pool is not running yet",))
    async with pool:
        assert pool.health() == Health(True)
        await pool.stop()
        assert pool.health() == Health(False, ("the pool is stopped",))


async def test_health_none_judges_only_whether_the_pool_runs(autojump_clock: trio.testing.MockClock) -> None:
    """With health=None no outcomes are kept, and failures never make the pool unhealthy."""
    async with WorkerPool(1, health=None) as pool:
        await run_all(pool, fail, 5)
        assert pool.health() == Health(True)


@pytest.mark.parametrize(
    ("arguments", "error", "name"),
    [
        ({"max_error_ratio": 1.0}, ValueError, "max_error_ratio"),
        ({"max_error_ratio": "x"}, TypeError, "max_error_ratio"),
        ({"min_jobs": 0}, ValueError, "min_jobs"),
        ({"last": 0}, ValueError, "last"),
        ({"window": 0}, ValueError, "window"),
        ({"last": 5, "window": 5}, ValueError, "window"),
    ],
)
def test_bad_policy_arguments_name_the_parameter(
    arguments: dict[str, object], error: type[Exception], name: str
) -> None:
    """Each invalid HealthPolicy argument raises an error naming it."""
    with pytest.raises(error, match=name):
        HealthPolicy(**arguments)  # type: ignore[arg-type]


def test_pool_refuses_a_health_that_is_not_a_policy() -> None:
    """WorkerPool(health=...) must be a HealthPolicy or None."""
    with pytest.raises(TypeError, match="`health`"):
        WorkerPool(1, health=0.25)  # type: ignore[arg-type]


def test_default_policy() -> None:
    """The default judges the last 100 jobs, at 25 % with at least 3."""
    assert HealthPolicy() == HealthPolicy(max_error_ratio=0.25, min_jobs=3, last=100)
    assert HealthPolicy(window=60).last is None


async def test_window_mode_forgets_old_outcomes_even_unasked(autojump_clock: trio.testing.MockClock) -> None:
    """Judging by window, outcomes older than the window are dropped as jobs finish, health() called or not."""
    async with WorkerPool(1, health=HealthPolicy(window=10)) as pool:
        for _ in range(5):
            await pool.submit_wait(Job(noop))
        await trio.sleep(20)
        await pool.submit_wait(Job(noop))
        assert pool._health is not None
        assert pool._health.judge(trio.current_time()) == (1, 0)
        assert len(pool._health._times) == 1


@pytest.mark.parametrize("code", [500, 503, 408])
async def test_jobs_that_set_an_error_code_and_return_are_errors(
    autojump_clock: trio.testing.MockClock, code: int
) -> None:
    """11 jobs in a row that set 500, 503 or 408 and return make the pool unhealthy, as in go-work."""
    async with WorkerPool(1) as pool:
        await run_all(pool, coded(code), 11)
        assert pool.health() == Health(False, ("11 of the last 11 jobs ended in error, over 25%",))


async def test_other_codes_and_the_pools_own_withdrawals_are_not_errors(autojump_clock: trio.testing.MockClock) -> None:
    """404 and 444 are not errors, nor are a cancelled job (499) and jobs a stop abandons (503)."""
    async with WorkerPool(1, health=HealthPolicy(max_error_ratio=0, min_jobs=1)) as pool:
        await run_all(pool, coded(404), 1)
        await run_all(pool, coded(444), 1)
        running = pool.submit(Job(sleeper(1)))
        cancelled = pool.submit(Job(noop))
        abandoned = pool.submit(Job(noop))
        cancelled.cancel()
        await trio.testing.wait_all_tasks_blocked()
        await pool.stop()
        assert trio.current_time() == 1.0
        assert [(result_of(h).status, result_of(h).code) for h in (running, cancelled, abandoned)] == [
            (wpxt.Status.SUCCEEDED, 200),
            (wpxt.Status.CANCELLED, 499),
            (wpxt.Status.ABANDONED, 503),
        ]
        assert pool.health() == Health(False, ("the pool is stopped",))
        assert pool._health is not None
        assert pool._health.judge(trio.current_time()) == (5, 0)
