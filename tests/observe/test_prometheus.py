"""Prometheus metrics: exact counter, histogram and gauge values after a scripted run."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from helpers import Task, noop, sleeper

import workerpoolxt as wpxt
import workerpoolxt.supervise
from workerpoolxt import Backoff, Job, Registry, WorkerPool
from workerpoolxt.durable import DurableWorker, WorkerApp
from workerpoolxt.durable.testing import MemoryStore

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


async def test_attaching_a_supervisor_twice_counts_once(autojump_clock: trio.testing.MockClock) -> None:
    """The same metrics attached twice to a supervisor count each execution once."""

    async def once() -> None:
        await trio.sleep(1)

    metrics = PrometheusMetrics()
    supervisor = wpxt.supervise.Supervisor(once)
    assert metrics.attach(metrics.attach(supervisor)) is supervisor
    async with supervisor:
        await trio.sleep(2)
    sample = metrics.registry.get_sample_value
    assert sample("workerpoolxt_service_executions_total", {"service": "once", "status": "started"}) == 1.0
    assert sample("workerpoolxt_service_executions_total", {"service": "once", "status": "success"}) == 1.0


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


async def test_service_executions_by_how_they_ended(autojump_clock: trio.testing.MockClock) -> None:
    """Failing both attempts gives started 2, restarted 1, error 2; others count one success and one stop."""

    async def broken() -> None:
        raise ValueError("down")

    async def once() -> None:
        await trio.sleep(1)

    async def forever() -> None:
        await trio.sleep_forever()

    async def deferred() -> None:
        await trio.sleep_forever()

    metrics = PrometheusMetrics()
    supervisor = wpxt.supervise.Supervisor(broken, once, forever, retry=1)
    supervisor.add(deferred, defer=10)
    async with metrics.attach(supervisor):
        await trio.sleep(5)
        assert supervisor.execution("broken").status is wpxt.supervise.ServiceStatus.ERROR
    sample = metrics.registry.get_sample_value
    statuses = ("started", "restarted", "success", "error", "stopped")
    counts = {
        (service, status): sample("workerpoolxt_service_executions_total", {"service": service, "status": status})
        for service in ("broken", "once", "forever", "deferred")
        for status in statuses
    }
    expected: dict[str, tuple[float | None, ...]] = {
        "broken": (2.0, 1.0, None, 2.0, None),
        "once": (1.0, None, 1.0, None, None),
        "forever": (1.0, None, None, None, 1.0),
        "deferred": (None, None, None, None, None),  # stopped before its first attempt: it never ran
    }
    assert counts == {
        (service, status): value
        for service, values in expected.items()
        for status, value in zip(statuses, values, strict=True)
    }


# -- durable workers ------------------------------------------------------------------------


async def test_durable_worker_tasks_by_outcome_and_queue_depth(autojump_clock: trio.testing.MockClock) -> None:
    """A WorkerApp's metrics count claims and outcomes per handler, and gauge the store's queue after heartbeats."""
    registry = Registry()
    registry.register("ok", sleeper(1))
    registry.register("bad", flaky_then_fails)
    metrics = PrometheusMetrics()
    app = WorkerApp(registry, metrics=metrics, backoff=Backoff(initial=1, multiplier=1, jitter=0))
    store = MemoryStore(registry=registry, clock=trio.current_time)
    await store.enqueue([Job("ok"), Job("ok"), Job("bad", retry=1), Job("ok")])
    await store.enqueue([Job("ok")], run_at=100.0)  # deferred: stays queued
    sample = metrics.registry.get_sample_value

    def tasks(handler: str, outcome: str) -> float | None:
        return sample("workerpoolxt_durable_tasks_total", {"handler": handler, "outcome": outcome})

    def depth() -> dict[str, float | None]:
        statuses = ("queued", "running", "succeeded", "failed", "cancelled", "dead")
        return {status: sample("workerpoolxt_durable_queue_depth", {"status": status}) for status in statuses}

    zero = dict.fromkeys(("queued", "running", "succeeded", "failed", "cancelled", "dead"), 0.0)

    async with DurableWorker(store, app, heartbeat=0.75, lease=5, poll=0.25, log_outcomes=False) as worker:
        assert metrics.attach(worker) is worker  # attached once already, by the app: counts stay single
        await trio.sleep(0.9)  # the heartbeat of t=0.75 counted "bad" queued for its retry at t=1
        assert depth() == zero | {"queued": 2.0, "running": 3.0}
        await trio.sleep(1.6)  # t=2.5: the heartbeat of t=2.25 counted the ends
        assert depth() == zero | {"queued": 1.0, "succeeded": 3.0, "dead": 1.0}
    assert (tasks("ok", "claimed"), tasks("ok", "succeeded")) == (3.0, 3.0)
    assert (tasks("bad", "claimed"), tasks("bad", "retrying"), tasks("bad", "dead")) == (2.0, 1.0, 1.0)
    assert tasks("bad", "succeeded") is None
    statistics = worker.statistics()
    assert (statistics.claimed, statistics.retried, statistics.failed) == (5, 1, 1)


async def test_durable_worker_released_task_is_counted(autojump_clock: trio.testing.MockClock) -> None:
    """A task a stop hands back counts as released, under its handler."""
    registry = Registry()
    registry.register("long", sleeper(10))
    metrics = PrometheusMetrics()
    store = MemoryStore(registry=registry, clock=trio.current_time)
    await store.enqueue([Job("long")])
    worker = metrics.attach(DurableWorker(store, registry, log_outcomes=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        worker.stop(cancel_running=True)
    sample = metrics.registry.get_sample_value
    assert sample("workerpoolxt_durable_tasks_total", {"handler": "long", "outcome": "claimed"}) == 1.0
    assert sample("workerpoolxt_durable_tasks_total", {"handler": "long", "outcome": "released"}) == 1.0
