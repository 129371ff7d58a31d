"""Prometheus metrics: exact counter, histogram and gauge values after a scripted run."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from helpers import Task, noop, sleeper

import workerpoolxt as wpxt
import workerpoolxt.supervise
from workerpoolxt import Backoff, Job, WorkerPool

prometheus_client = pytest.importorskip("prometheus_client", reason="the prometheus extra is not installed")

from workerpoolxt.observe import PrometheusMetrics  # noqa: E402 - after the extra is known to be there


async def flaky_then_fails(options: wpxt.Options) -> None:
    """A task whose every attempt fails."""
    raise ValueError("bad")


async def test_scripted_run_gives_exact_metric_values(autojump_clock: trio.testing.MockClock) -> None:
    """Three successes, one failure after 2 attempts and one timeout give these exact samples."""
    metrics = PrometheusMetrics()
    sample = metrics.registry.get_sample_value
    async with metrics.attach(WorkerPool(2)) as pool:
        pool.submit(Job(noop, name="ok"))
        pool.submit(Job(sleeper(2), name="ok"))
        pool.submit(Job(flaky_then_fails, name="bad", retry=1, backoff=Backoff.none()))
        pool.submit(Job(sleeper(10), name="slow", timeout=3))
        pool.submit(Job(sleeper(1), name="later"))
        await trio.testing.wait_all_tasks_blocked()  # "ok" (2 s) and "slow" run; "later" waits
        assert sample("workerpoolxt_running_workers") == 2.0
        assert sample("workerpoolxt_queue_size") == 1.0
    assert sample("workerpoolxt_jobs_total", {"name": "ok", "status": "succeeded", "code": "200"}) == 2.0
    assert sample("workerpoolxt_jobs_total", {"name": "bad", "status": "failed", "code": "500"}) == 1.0
    assert sample("workerpoolxt_jobs_total", {"name": "slow", "status": "timed_out", "code": "408"}) == 1.0
    assert sample("workerpoolxt_job_attempts_total", {"name": "bad"}) == 2.0
    assert sample("workerpoolxt_job_attempts_total", {"name": "ok"}) == 2.0
    assert sample("workerpoolxt_job_duration_seconds_count", {"name": "ok"}) == 2.0
    assert sample("workerpoolxt_job_duration_seconds_sum", {"name": "ok"}) == 2.0
    assert sample("workerpoolxt_job_duration_seconds_bucket", {"name": "slow", "le": "2.5"}) == 0.0
    assert sample("workerpoolxt_job_duration_seconds_bucket", {"name": "slow", "le": "5.0"}) == 1.0
    assert sample("workerpoolxt_jobs_total", {"name": "later", "status": "succeeded", "code": "200"}) == 1.0
    assert sample("workerpoolxt_running_workers") == 0.0
    assert sample("workerpoolxt_queue_size") == 0.0


async def test_jobs_total_counts_by_the_code_a_task_sets(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs of one name that return with 503, 444 or no code of their own count under each code."""

    def coded(code: int | None) -> Task:
        async def set_code_and_return(options: wpxt.Options) -> None:
            wpxt.current_job().code = code

        return set_code_and_return

    metrics = PrometheusMetrics()
    async with metrics.attach(WorkerPool(1)) as pool:
        for code in (503, 503, 444, None):
            pool.submit(Job(coded(code), name="fetch"))
    sample = metrics.registry.get_sample_value
    assert [
        sample("workerpoolxt_jobs_total", {"name": "fetch", "status": "succeeded", "code": code})
        for code in ("503", "444", "200")
    ] == [2.0, 1.0, 1.0]
    assert sample("workerpoolxt_job_duration_seconds_count", {"name": "fetch"}) == 4.0
    assert len(metrics._children) == 3


async def test_abandoned_jobs_count_without_attempts(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs a stop abandons count under status abandoned, with no attempts."""
    metrics = PrometheusMetrics(namespace="app", subsystem="pool")
    async with metrics.attach(WorkerPool(1)) as pool:
        pool.submit(Job(sleeper(1), name="first"))
        pool.submit(Job(noop, name="left"))
        await trio.testing.wait_all_tasks_blocked()
        await pool.stop()
    sample = metrics.registry.get_sample_value
    assert sample("app_pool_jobs_total", {"name": "left", "status": "abandoned", "code": "503"}) == 1.0
    assert sample("app_pool_job_attempts_total", {"name": "left"}) == 0.0


def test_global_registry_is_left_alone_unless_asked() -> None:
    """By default the metrics live in their own registry, not prometheus-client's global one."""
    metrics = PrometheusMetrics()
    assert metrics.registry is not prometheus_client.REGISTRY
    labels = {"name": "x", "status": "y", "code": "200"}
    assert prometheus_client.REGISTRY.get_sample_value("workerpoolxt_jobs_total", labels) is None


async def test_a_pool_attached_twice_counts_each_job_once(autojump_clock: trio.testing.MockClock) -> None:
    """Attaching a pool twice changes nothing: one job counts once, and the gauges count the pool once."""
    metrics = PrometheusMetrics()
    async with WorkerPool(1) as pool:
        assert metrics.attach(metrics.attach(pool)) is pool
        pool.submit(Job(sleeper(2), name="x"))
        pool.submit(Job(sleeper(2), name="x"))
        await trio.sleep(1)
        assert metrics.registry.get_sample_value("workerpoolxt_queue_size") == 1.0
        assert metrics.registry.get_sample_value("workerpoolxt_running_workers") == 1.0
    labels = {"name": "x", "status": "succeeded", "code": "200"}
    assert metrics.registry.get_sample_value("workerpoolxt_jobs_total", labels) == 2.0


def test_attach_twice_counts_once_and_worker_executions() -> None:
    """Worker executions count by worker and status."""
    metrics = PrometheusMetrics()
    metrics.worker_execution("poller", "started")
    metrics.worker_execution("poller", "started")
    metrics.worker_execution("poller", "error")
    sample = metrics.registry.get_sample_value
    assert sample("workerpoolxt_worker_executions_total", {"worker": "poller", "status": "started"}) == 2.0
    assert sample("workerpoolxt_worker_executions_total", {"worker": "poller", "status": "error"}) == 1.0


@pytest.mark.parametrize(
    ("arguments", "name"),
    [({"registry": object()}, "`registry`"), ({"namespace": 1}, "`namespace`"), ({"subsystem": None}, "`subsystem`")],
)
def test_bad_arguments_name_the_parameter(arguments: dict[str, object], name: str) -> None:
    """Bad constructor arguments raise a TypeError naming the parameter."""
    with pytest.raises(TypeError, match=name):
        PrometheusMetrics(**arguments)  # type: ignore[arg-type]


def test_attach_refuses_what_is_not_a_pool() -> None:
    """attach() takes a WorkerPool."""
    with pytest.raises(TypeError, match="`pool`"):
        PrometheusMetrics().attach(object())  # type: ignore[call-overload]


async def test_supervised_worker_executions_after_two_failing_attempts(autojump_clock: trio.testing.MockClock) -> None:
    """A worker failing both of its 2 attempts gives started 2, restarted 1, error 2; another succeeds once."""

    async def broken() -> None:
        raise ValueError("down")

    async def once() -> None:
        await trio.sleep(1)

    metrics = PrometheusMetrics()
    async with metrics.attach(wpxt.supervise.Supervisor(broken, once, max_attempts=2)) as supervisor:
        await trio.sleep(5)
        assert supervisor.execution("broken").status is wpxt.supervise.WorkerStatus.ERROR
    sample = metrics.registry.get_sample_value
    counts = {
        (worker, status): sample("workerpoolxt_worker_executions_total", {"worker": worker, "status": status})
        for worker in ("broken", "once")
        for status in ("started", "restarted", "success", "error")
    }
    assert counts == {
        ("broken", "started"): 2.0,
        ("broken", "restarted"): 1.0,
        ("broken", "success"): None,
        ("broken", "error"): 2.0,
        ("once", "started"): 1.0,
        ("once", "restarted"): None,
        ("once", "success"): 1.0,
        ("once", "error"): None,
    }
