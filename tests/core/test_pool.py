"""WorkerPool with async tasks: counts, limits, order, results, options, stops, handles, pausing, streaming, errors."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from helpers import Starts, Task, bounded, noop, result_of, sleeper
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import wait_all_tasks_blocked

import workerpoolxt as wpxt
from workerpoolxt import (
    Backoff,
    Context,
    Job,
    JobAbandonedError,
    JobCancelledError,
    JobHandle,
    JobTimeoutError,
    PoolClosedError,
    PoolStatistics,
    QueueFullError,
    Result,
    Status,
    WorkerPool,
    WorkerPoolError,
)


def raiser(error: BaseException, after: float = 0) -> Task:
    """A task that sleeps ``after`` seconds, then raises ``error``."""

    async def sleep_then_raise(options: wpxt.Options) -> None:
        await trio.sleep(after)
        raise error

    return sleep_then_raise


class Gauge:
    """Counts the tasks running at once, keeps the peak, and records the order they start and end in."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.started: list[object] = []
        self.completed: list[object] = []

    def task(self, key: object, seconds: float, error: Exception | None = None) -> Task:
        async def tracked(options: wpxt.Options) -> object:
            self.started.append(key)
            self.current += 1
            self.peak = max(self.peak, self.current)
            try:
                await trio.sleep(seconds)
            finally:
                self.current -= 1
            self.completed.append(key)
            if error is not None:
                raise error
            return key

        return tracked


def timeline(results: list[Result[Any]]) -> list[tuple[int, Status, float]]:
    """Each result as (job_id, status, finished_at), in the order given."""
    return [(r.job_id, r.status, r.finished_at) for r in results]


async def enter_pause(pool: WorkerPool) -> None:
    """Enter and leave ``pool.paused()``."""
    async with pool.paused():
        pass


# -- counts ported from Go's tests -----------------------------------------------------


async def run_noop_jobs(count: int, max_workers: int) -> list[Result[Any]]:
    """Run ``count`` no-op jobs on ``max_workers`` workers and return stop_wait's results."""
    job = Job(noop)
    async with WorkerPool(max_workers) as pool:
        for _ in range(count):
            pool.submit(job)
        results = await pool.stop_wait()
    return results


async def test_three_jobs_give_three_results() -> None:
    """Three jobs give three SUCCEEDED results with job_ids 0, 1, 2."""
    results = await run_noop_jobs(3, 10)
    assert sorted(r.job_id for r in results) == [0, 1, 2]
    assert all(r.status is Status.SUCCEEDED for r in results)


async def test_five_hundred_jobs_give_five_hundred_results() -> None:
    """500 jobs give 500 SUCCEEDED results, one per job_id."""
    results = await run_noop_jobs(500, 10)
    assert sorted(r.job_id for r in results) == list(range(500))
    assert all(r.status is Status.SUCCEEDED for r in results)


async def test_hundred_thousand_jobs_on_a_thousand_workers() -> None:
    """100_000 jobs on 1_000 workers give 100_000 SUCCEEDED results, job_ids 0..N-1 all present."""
    count = 100_000
    results = await run_noop_jobs(count, 1_000)
    assert len(results) == count
    assert sorted(r.job_id for r in results) == list(range(count))
    assert all(r.status is Status.SUCCEEDED for r in results)


# -- the concurrency limit -------------------------------------------------------------


@bounded
async def test_two_workers_run_exactly_two_of_six_jobs_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """With max_workers=2 and 6 one-second jobs the peak is exactly 2 and the pool takes 3 s."""
    gauge = Gauge()
    async with WorkerPool(2) as pool:
        for index in range(6):
            pool.submit(Job(gauge.task(index, 1)))
        results = await pool.stop_wait()
    assert gauge.peak == 2
    assert trio.current_time() == 3.0
    assert sorted(r.finished_at for r in results) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert sorted(r.duration for r in results) == [1.0] * 6


@bounded
async def test_concurrency_limit_holds_after_timeouts(autojump_clock: trio.testing.MockClock) -> None:
    """Timed-out jobs are really stopped, so the jobs started after them never push the peak over max_workers."""
    gauge = Gauge()
    async with WorkerPool(2) as pool:
        for index in range(4):
            pool.submit(Job(gauge.task(f"slow{index}", 10), timeout=0.5))
        for index in range(4):
            pool.submit(Job(gauge.task(index, 1)))
        results = await pool.stop_wait()
    assert gauge.peak == 2
    assert gauge.current == 0
    assert sorted(gauge.completed, key=str) == [0, 1, 2, 3]  # no slow job ever finished its sleep
    by_id = sorted(results, key=lambda r: r.job_id)
    assert [(r.status, r.started_at, r.finished_at) for r in by_id] == [
        (Status.TIMED_OUT, 0.0, 0.5),
        (Status.TIMED_OUT, 0.0, 0.5),
        (Status.TIMED_OUT, 0.5, 1.0),
        (Status.TIMED_OUT, 0.5, 1.0),
        (Status.SUCCEEDED, 1.0, 2.0),
        (Status.SUCCEEDED, 1.0, 2.0),
        (Status.SUCCEEDED, 2.0, 3.0),
        (Status.SUCCEEDED, 2.0, 3.0),
    ]


# -- start order -----------------------------------------------------------------------


@bounded
async def test_one_worker_starts_jobs_in_submission_order(autojump_clock: trio.testing.MockClock) -> None:
    """With max_workers=1 jobs start in the order they were submitted."""
    gauge = Gauge()
    async with WorkerPool(1) as pool:
        for index in range(10):
            pool.submit(Job(gauge.task(index, (index % 3 + 1) / 4)))
    assert gauge.started == list(range(10))


@bounded
async def test_several_workers_start_jobs_in_submission_order(autojump_clock: trio.testing.MockClock) -> None:
    """With several workers and jobs of mixed length, jobs start in submission order though they end in another."""
    gauge = Gauge()
    async with WorkerPool(3) as pool:
        for index in range(12):
            pool.submit(Job(gauge.task(index, (index * 7 % 5 + 1) / 4)))
        results = await pool.stop_wait()
    assert gauge.started == list(range(12))
    assert gauge.completed != list(range(12))
    assert [r.job_id for r in results] == gauge.completed


# -- results ---------------------------------------------------------------------------


@bounded
async def test_stop_wait_returns_exact_results_in_completion_order(autojump_clock: trio.testing.MockClock) -> None:
    """stop_wait returns Results in completion order, with every field exact on the virtual clock."""
    async with WorkerPool(2) as pool:
        await trio.sleep(0.5)
        pool.submit(Job(sleeper(3, "a"), name="a"))
        pool.submit(Job(sleeper(1, "b"), name="b"))
        pool.submit(Job(sleeper(0.5, "c"), name="c"))
        results = await pool.stop_wait()
    assert trio.current_time() == 3.5
    assert results == [
        Result(
            job_id=1,
            name="b",
            data="b",
            error=None,
            status=Status.SUCCEEDED,
            code=200,
            attempts=1,
            queued_at=0.5,
            started_at=0.5,
            finished_at=1.5,
        ),
        Result(
            job_id=2,
            name="c",
            data="c",
            error=None,
            status=Status.SUCCEEDED,
            code=200,
            attempts=1,
            queued_at=0.5,
            started_at=1.5,
            finished_at=2.0,
        ),
        Result(
            job_id=0,
            name="a",
            data="a",
            error=None,
            status=Status.SUCCEEDED,
            code=200,
            attempts=1,
            queued_at=0.5,
            started_at=0.5,
            finished_at=3.5,
        ),
    ]
    assert [result.duration for result in results] == [1.0, 0.5, 3.0]


async def test_job_name_defaults_to_the_task_name() -> None:
    """A job without a name reports its task's __name__ in the Result."""
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(noop))
    assert result.name == "noop"


# -- options ---------------------------------------------------------------------------


async def test_job_options_replace_pool_options_without_merging() -> None:
    """A job's options replace the pool's entirely; jobs without options see the pool's."""
    seen: dict[str, dict[str, Any]] = {}

    def recorder(key: str) -> Task:
        async def record(options: wpxt.Options) -> None:
            seen[key] = dict(options)

        return record

    async with WorkerPool(1, options={"a": 1, "b": 2}) as pool:
        pool.submit(Job(recorder("default")))
        pool.submit(Job(recorder("own"), options={"b": 20, "c": 3}))
        pool.submit(Job(recorder("empty"), options={}))
    assert seen == {"default": {"a": 1, "b": 2}, "own": {"b": 20, "c": 3}, "empty": {}}


async def test_task_sees_an_empty_mapping_when_nobody_sets_options() -> None:
    """With no options on the pool or the job, the task receives an empty mapping."""
    seen: list[dict[str, Any]] = []

    async def record(options: wpxt.Options) -> None:
        seen.append(dict(options))

    async with WorkerPool(1) as pool:
        pool.submit(Job(record))
    assert seen == [{}]


async def test_options_are_read_only_inside_the_task() -> None:
    """Assigning into the options mapping raises TypeError, so the job ends FAILED with that TypeError."""

    async def mutate(options: wpxt.Options) -> None:
        options["x"] = 1  # type: ignore[index]

    async with WorkerPool(1, options={"a": 1}) as pool:
        pool_default = pool.submit(Job(mutate))
        own = pool.submit(Job(mutate, options={"b": 2}))
    for handle in (pool_default, own):
        result = result_of(handle)
        assert result.status is Status.FAILED
        assert type(result.error) is TypeError


async def test_pool_copies_options_at_construction() -> None:
    """Mutating the caller's dicts after building the pool and the job does not reach the task."""
    pool_options = {"a": 1}
    job_options = {"b": 2}
    seen: list[dict[str, Any]] = []

    async def record(options: wpxt.Options) -> None:
        seen.append(dict(options))

    pool = WorkerPool(1, options=pool_options)
    job = Job(record, options=job_options)
    pool_options["a"] = 100
    pool_options["leak"] = True
    job_options["b"] = 200
    job_options["leak"] = True
    async with pool:
        pool.submit(Job(record))
        pool.submit(job)
    assert seen == [{"a": 1}, {"b": 2}]


# -- pool defaults ---------------------------------------------------------------------


@bounded
async def test_pool_timeout_applies_unless_the_job_sets_one(autojump_clock: trio.testing.MockClock) -> None:
    """The pool's timeout bounds jobs that set none; a job's own timeout replaces it."""
    async with WorkerPool(2, timeout=1) as pool:
        default = pool.submit(Job(sleeper(5), name="default"))
        own = pool.submit(Job(sleeper(5), name="own", timeout=2))
    assert (result_of(default).status, result_of(default).finished_at) == (Status.TIMED_OUT, 1.0)
    assert (result_of(own).status, result_of(own).finished_at) == (Status.TIMED_OUT, 2.0)
    error = result_of(default).error
    assert isinstance(error, JobTimeoutError)
    assert (error.name, error.deadline) == ("default", 1.0)


@bounded
async def test_pool_retry_and_backoff_apply_unless_the_job_sets_them(autojump_clock: trio.testing.MockClock) -> None:
    """The pool's retry and backoff apply to jobs that set none; a job's own values replace them."""
    calls: dict[str, int] = {}

    def failing(key: str) -> Task:
        async def fail(options: wpxt.Options) -> None:
            calls[key] = calls.get(key, 0) + 1
            raise ValueError(key)

        return fail

    async with WorkerPool(4, retry=2, backoff=Backoff(initial=1, multiplier=1, jitter=0)) as pool:
        default = pool.submit(Job(failing("default")))
        no_retry = pool.submit(Job(failing("no_retry"), retry=0))
        own_backoff = pool.submit(Job(failing("own_backoff"), backoff=Backoff(initial=0.25, multiplier=1, jitter=0)))
    assert calls == {"default": 3, "no_retry": 1, "own_backoff": 3}
    assert [(r.attempts, r.finished_at) for r in map(result_of, (default, no_retry, own_backoff))] == [
        (3, 2.0),
        (1, 0.0),
        (3, 0.5),
    ]


@bounded
async def test_pool_context_applies_unless_the_job_sets_one(autojump_clock: trio.testing.MockClock) -> None:
    """A cancelled pool context fails every job without a context; a job's own context replaces it."""
    default_context = Context()
    default_context.cancel()
    ran: list[str] = []

    def record(key: str) -> Task:
        async def run(options: wpxt.Options) -> str:
            ran.append(key)
            return key

        return run

    async with WorkerPool(2, context=default_context) as pool:
        first = pool.submit(Job(record("first")))
        second = pool.submit(Job(record("second")))
        own = pool.submit(Job(record("own"), context=Context()))
    for handle in (first, second):
        result = result_of(handle)
        assert (result.status, result.attempts, result.started_at) == (Status.CANCELLED, 0, None)
        assert isinstance(result.error, JobCancelledError)
    assert result_of(own).data == "own"
    assert ran == ["own"]


@bounded
async def test_job_context_deadline_replaces_the_pool_context_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """A job's later-deadline context replaces the pool's earlier one rather than being merged with it."""
    async with WorkerPool(2, context=Context(deadline=1.0)) as pool:
        default = pool.submit(Job(sleeper(5)))
        own = pool.submit(Job(sleeper(5), context=Context(deadline=2.0)))
    assert (result_of(default).status, result_of(default).finished_at) == (Status.TIMED_OUT, 1.0)
    assert (result_of(own).status, result_of(own).finished_at) == (Status.TIMED_OUT, 2.0)


# -- repeated and concurrent stops -----------------------------------------------------


@bounded
async def test_stop_wait_twice_returns_the_same_results(autojump_clock: trio.testing.MockClock) -> None:
    """A second stop_wait returns at once with the same results as the first."""
    async with WorkerPool(2) as pool:
        pool.submit(Job(sleeper(1)))
        pool.submit(Job(sleeper(2)))
        first = await pool.stop_wait()
        assert trio.current_time() == 2.0
        second = await pool.stop_wait()
        assert trio.current_time() == 2.0
    assert second == first
    assert timeline(first) == [(0, Status.SUCCEEDED, 1.0), (1, Status.SUCCEEDED, 2.0)]


@bounded
async def test_concurrent_stop_waits_all_return_the_same_results(autojump_clock: trio.testing.MockClock) -> None:
    """Three tasks calling stop_wait at once all wait until the pool is done and get the same list."""
    returned: list[tuple[float, list[Result[Any]]]] = []

    async def stop_waiter(pool: WorkerPool) -> None:
        results = await pool.stop_wait()
        returned.append((trio.current_time(), results))

    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(1)))
        pool.submit(Job(sleeper(1)))
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(stop_waiter, pool)
    expected = [(0, Status.SUCCEEDED, 1.0), (1, Status.SUCCEEDED, 2.0)]
    assert len(returned) == 3
    for finished, results in returned:
        assert finished == 2.0
        assert timeline(results) == expected
        assert results == returned[0][1]


@bounded
async def test_stop_after_stop_wait_returns_the_same_results(autojump_clock: trio.testing.MockClock) -> None:
    """stop() after a finished stop_wait returns at once with the same results and abandons nothing."""
    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(1)))
        drained = await pool.stop_wait()
        stopped = await pool.stop()
        assert trio.current_time() == 1.0
    assert stopped == drained
    assert timeline(stopped) == [(0, Status.SUCCEEDED, 1.0)]


@bounded
async def test_stop_wait_after_stop_never_runs_abandoned_jobs(autojump_clock: trio.testing.MockClock) -> None:
    """stop_wait after stop does not downgrade it: queued jobs stay ABANDONED and are never run."""
    gauge = Gauge()
    async with WorkerPool(1) as pool:
        running = pool.submit(Job(gauge.task("running", 1)))
        queued = pool.submit(Job(gauge.task("queued", 1)))
        await wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.stop)
            await wait_all_tasks_blocked()
            results = await pool.stop_wait()
        assert trio.current_time() == 1.0
    assert gauge.started == ["running"]
    assert result_of(queued).status is Status.ABANDONED
    assert result_of(running).status is Status.SUCCEEDED
    assert timeline(results) == [(1, Status.ABANDONED, 0.0), (0, Status.SUCCEEDED, 1.0)]


@bounded
async def test_stop_wait_after_stop_does_not_reopen_nested_submits(autojump_clock: trio.testing.MockClock) -> None:
    """After stop(), a later stop_wait() does not let the pool's own jobs submit again, as a drain would."""
    pool = WorkerPool(1)
    nested_errors: list[BaseException] = []

    async def submits_later(options: wpxt.Options) -> None:
        await trio.sleep(1)
        try:
            pool.submit(Job(noop))
        except PoolClosedError as error:
            nested_errors.append(error)

    async with pool:
        pool.submit(Job(submits_later))
        await wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.stop)
            await wait_all_tasks_blocked()
            results = await pool.stop_wait()
    assert len(nested_errors) == 1
    assert [r.job_id for r in results] == [0]


@bounded
async def test_stop_cancel_running_escalates_a_draining_stop_wait(autojump_clock: trio.testing.MockClock) -> None:
    """stop(cancel_running=True) during a draining stop_wait abandons queued, cancels running, and both return."""
    returned: list[tuple[str, float, list[Result[Any]]]] = []

    async def call(name: str, stop: Callable[[], Awaitable[list[Result[Any]]]]) -> None:
        results = await stop()
        returned.append((name, trio.current_time(), results))

    async with WorkerPool(1) as pool:
        running = pool.submit(Job(sleeper(10)))
        queued = [pool.submit(Job(sleeper(10))) for _ in range(2)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "stop_wait", pool.stop_wait)
            await trio.sleep(1)
            assert pool.running == 1
            assert pool.waiting_queue_size == 2
            await call("stop", lambda: pool.stop(cancel_running=True))
    expected = [(1, Status.ABANDONED, 1.0), (2, Status.ABANDONED, 1.0), (0, Status.CANCELLED, 1.0)]
    assert sorted(name for name, _, _ in returned) == ["stop", "stop_wait"]
    for _, finished, results in returned:
        assert finished == 1.0
        assert timeline(results) == expected
    cancelled = result_of(running)
    assert (cancelled.attempts, cancelled.started_at, cancelled.duration) == (1, 0.0, 1.0)
    assert isinstance(cancelled.error, JobCancelledError)
    assert all(isinstance(result_of(h).error, JobAbandonedError) for h in queued)


# -- stop() abandons queued jobs -------------------------------------------------------


@bounded
async def test_stop_abandons_queued_jobs_and_lets_running_ones_finish(autojump_clock: trio.testing.MockClock) -> None:
    """stop() turns queued jobs into exact ABANDONED results, lets running jobs succeed, and returns them all."""
    async with WorkerPool(1) as pool:
        running = pool.submit(Job(sleeper(1, "done"), name="running"))
        queued = [pool.submit(Job(sleeper(1), name=f"queued{index}")) for index in range(2)]
        await trio.sleep(0.5)
        results = await pool.stop()
        assert trio.current_time() == 1.0
    assert timeline(results) == [(1, Status.ABANDONED, 0.5), (2, Status.ABANDONED, 0.5), (0, Status.SUCCEEDED, 1.0)]
    assert result_of(running).data == "done"
    for index, handle in enumerate(queued):
        result = result_of(handle)
        assert (result.name, result.attempts, result.started_at, result.duration, result.queued_at) == (
            f"queued{index}",
            0,
            None,
            0.0,
            0.0,
        )
        assert isinstance(result.error, JobAbandonedError)
        assert result.error.name == f"queued{index}"
        assert not result.ok


@bounded
async def test_waiters_of_abandoned_jobs_do_not_hang(autojump_clock: trio.testing.MockClock) -> None:
    """Tasks already waiting on queued jobs' handles get the ABANDONED result when stop() is called."""
    woke: list[tuple[int, Status, float]] = []

    async def wait_for(handle: JobHandle[Any]) -> None:
        result = await handle.wait()
        woke.append((result.job_id, result.status, trio.current_time()))

    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(1)))
        queued = [pool.submit(Job(sleeper(1))) for _ in range(2)]
        async with trio.open_nursery() as nursery:
            for handle in queued:
                nursery.start_soon(wait_for, handle)
            await trio.sleep(0.5)
            await pool.stop()
    assert sorted(woke) == [(1, Status.ABANDONED, 0.5), (2, Status.ABANDONED, 0.5)]


# -- queue size and statistics ---------------------------------------------------------


@bounded
async def test_queue_size_while_running(autojump_clock: trio.testing.MockClock) -> None:
    """With 2 workers and 5 sleeping jobs, 2 run and 3 wait; a second later 2 run and 1 waits."""
    async with WorkerPool(2) as pool:
        for _ in range(5):
            pool.submit(Job(sleeper(1)))
        assert pool.waiting_queue_size == 5
        await wait_all_tasks_blocked()
        assert (pool.max_workers, pool.running, pool.waiting_queue_size) == (2, 2, 3)
        assert pool.statistics() == PoolStatistics(
            max_workers=2,
            running=2,
            waiting=3,
            submitted=5,
            succeeded=0,
            failed=0,
            timed_out=0,
            cancelled=0,
            abandoned=0,
            unread=0,
        )
        await trio.sleep(1)
        await wait_all_tasks_blocked()
        assert (pool.running, pool.waiting_queue_size) == (2, 1)
    assert (pool.running, pool.waiting_queue_size) == (0, 0)


@bounded
async def test_statistics_count_every_status_in_a_frozen_snapshot(autojump_clock: trio.testing.MockClock) -> None:
    """statistics() counts each status and returns a frozen snapshot that later changes do not touch."""
    async with WorkerPool(1) as pool:
        pool.submit(Job(raiser(ValueError("boom"))))
        pool.submit(Job(sleeper(10), timeout=1))
        pool.submit(Job(sleeper(1)))
        pool.submit(Job(sleeper(1))).cancel()
        pool.submit(Job(sleeper(1)))
        await trio.sleep(1.5)
        midway = pool.statistics()
        await pool.stop()
        assert trio.current_time() == 2.0
        final = pool.statistics()
    assert midway == PoolStatistics(
        max_workers=1,
        running=1,
        waiting=1,
        submitted=5,
        succeeded=0,
        failed=1,
        timed_out=1,
        cancelled=1,
        abandoned=0,
        unread=0,
    )
    assert final == PoolStatistics(
        max_workers=1,
        running=0,
        waiting=0,
        submitted=5,
        succeeded=1,
        failed=1,
        timed_out=1,
        cancelled=1,
        abandoned=1,
        unread=0,
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        midway.running = 0  # type: ignore[misc]


# -- submitting errors, stopped, entering twice ----------------------------------------


async def test_submit_after_stop_raises_pool_closed_error() -> None:
    """submit() after a stop, and after the block, raises PoolClosedError, which is a RuntimeError."""
    async with WorkerPool(1) as pool:
        await pool.stop()
        with pytest.raises(PoolClosedError, match="stopped") as info:
            pool.submit(Job(noop))
        assert isinstance(info.value, RuntimeError)
        assert isinstance(info.value, WorkerPoolError)
    with pytest.raises(PoolClosedError):
        pool.submit(Job(noop))


def test_submit_before_entering_raises_pool_closed_error() -> None:
    """submit() on a pool that was never entered raises PoolClosedError."""
    with pytest.raises(PoolClosedError, match="not running yet"):
        WorkerPool(1).submit(Job(noop))


async def test_submit_of_a_non_job_raises_type_error() -> None:
    """submit() of anything but a Job raises TypeError naming `job`, and queues nothing."""
    async with WorkerPool(1) as pool:
        with pytest.raises(TypeError, match="`job`"):
            pool.submit(noop)  # type: ignore[arg-type]
        assert pool.statistics().submitted == 0


@bounded
async def test_stopped_is_true_from_the_moment_a_stop_is_called(autojump_clock: trio.testing.MockClock) -> None:
    """pool.stopped is False until a stop is called, then True while that stop still waits, seen from a job too."""
    pool = WorkerPool(1)
    seen_by_job: list[bool] = []

    async def observe(options: wpxt.Options) -> None:
        seen_by_job.append(pool.stopped)
        await trio.sleep(1)
        seen_by_job.append(pool.stopped)

    assert not pool.stopped
    async with pool:
        handle = pool.submit(Job(observe))
        await wait_all_tasks_blocked()
        assert not pool.stopped
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.stop_wait)
            await wait_all_tasks_blocked()
            assert pool.stopped
            assert not handle.done
    assert seen_by_job == [False, True]
    assert pool.stopped


async def test_entering_a_pool_twice_raises_runtime_error() -> None:
    """A pool can be entered once: entering again, inside the block or after it, raises RuntimeError."""
    pool = WorkerPool(1)
    async with pool:
        with pytest.raises(RuntimeError, match="entered only once"):
            await pool.__aenter__()
    with pytest.raises(RuntimeError, match="entered only once"):
        await pool.__aenter__()


# -- nested submits --------------------------------------------------------------------


@bounded
async def test_a_job_may_fan_out_into_its_own_pool(autojump_clock: trio.testing.MockClock) -> None:
    """A running job submits children to its own pool and collects their results."""
    pool = WorkerPool(4)

    async def child(options: wpxt.Options) -> int:
        await trio.sleep(options["n"])
        return int(options["n"]) * 10

    async def parent(options: wpxt.Options) -> list[object]:
        handles = [pool.submit(Job(child, options={"n": n})) for n in (1, 2, 3)]
        return [(await handle.wait()).data for handle in handles]

    async with pool:
        result = await pool.submit_wait(Job(parent))
    assert (result.status, result.data, result.finished_at) == (Status.SUCCEEDED, [10, 20, 30], 3.0)
    assert pool.statistics().submitted == 4


@bounded
async def test_jobs_submitted_by_running_jobs_while_draining_still_run(autojump_clock: trio.testing.MockClock) -> None:
    """While stop_wait drains, a running job's submit is accepted and run, but an outside submit is refused."""
    pool = WorkerPool(2)

    async def parent(options: wpxt.Options) -> None:
        await trio.sleep(1)
        pool.submit(Job(sleeper(1), name="child"))

    async with pool:
        pool.submit(Job(parent, name="parent"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.stop_wait)
            await wait_all_tasks_blocked()
            with pytest.raises(PoolClosedError):
                pool.submit(Job(noop))
        results = await pool.stop_wait()
        assert trio.current_time() == 2.0
    assert [(r.name, r.status, r.started_at, r.finished_at) for r in results] == [
        ("parent", Status.SUCCEEDED, 0.0, 1.0),
        ("child", Status.SUCCEEDED, 1.0, 2.0),
    ]


@bounded
async def test_stopping_from_inside_a_pool_job_fails_that_job(autojump_clock: trio.testing.MockClock) -> None:
    """stop_wait()/stop() called from one of the pool's own jobs raise RuntimeError, contained as FAILED."""
    pool = WorkerPool(2)

    async def calls_stop_wait(options: wpxt.Options) -> object:
        return await pool.stop_wait()

    async def calls_stop(options: wpxt.Options) -> object:
        return await pool.stop()

    async with pool:
        handles = [pool.submit(Job(calls_stop_wait)), pool.submit(Job(calls_stop))]
        await wait_all_tasks_blocked()
        assert not pool.stopped
        later = await pool.submit_wait(Job(sleeper(1, "still running")))
    assert later.data == "still running"
    for handle in handles:
        result = result_of(handle)
        assert result.status is Status.FAILED
        assert type(result.error) is RuntimeError
        assert "would wait for itself" in str(result.error)


# -- JobHandle -------------------------------------------------------------------------


@bounded
async def test_handle_reports_id_name_and_result_once_done(autojump_clock: trio.testing.MockClock) -> None:
    """A handle has job_id from 0 and the name; result is None until done, then wait() returns it."""
    async with WorkerPool(1) as pool:
        first = pool.submit(Job(sleeper(1, "x"), name="first"))
        second = pool.submit(Job(sleeper(1, "y"), name="second"))
        assert (first.job_id, second.job_id) == (0, 1)
        assert (first.name, second.name) == ("first", "second")
        assert (first.done, first.result) == (False, None)
        result = await first.wait()
        assert trio.current_time() == 1.0
        assert first.done
        assert first.result is result
        assert (result.job_id, result.name, result.data) == (0, "first", "x")
        assert (second.done, second.result) == (False, None)
        assert await first.wait() is result


@bounded
async def test_cancel_on_a_queued_job_gives_a_cancelled_result_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """handle.cancel() on a queued job makes it CANCELLED at once, with no attempt, and it never runs."""
    gauge = Gauge()
    async with WorkerPool(1) as pool:
        pool.submit(Job(gauge.task("first", 1)))
        await trio.sleep(0.25)
        queued = pool.submit(Job(gauge.task("queued", 1), name="queued"))
        queued.cancel()
        assert queued.done
        result = result_of(queued)
        assert (result.status, result.attempts, result.started_at, result.duration) == (Status.CANCELLED, 0, None, 0.0)
        assert (result.queued_at, result.finished_at) == (0.25, 0.25)
        assert isinstance(result.error, JobCancelledError)
        assert result.error.name == "queued"
        assert pool.waiting_queue_size == 0
    assert gauge.started == ["first"]


@bounded
async def test_cancel_on_a_running_job_ends_it_at_the_cancel_time(autojump_clock: trio.testing.MockClock) -> None:
    """handle.cancel() on a running job cancels it at that exact virtual time with JobCancelledError."""
    gauge = Gauge()
    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(gauge.task("running", 10), name="running"))
        after = pool.submit(Job(sleeper(1, "after")))
        await trio.sleep(0.25)
        handle.cancel()
        result = await handle.wait()
        assert trio.current_time() == 0.25
    assert (result.status, result.attempts, result.started_at, result.finished_at, result.duration) == (
        Status.CANCELLED,
        1,
        0.0,
        0.25,
        0.25,
    )
    assert isinstance(result.error, JobCancelledError)
    assert gauge.current == 0
    assert gauge.completed == []
    assert (result_of(after).status, result_of(after).started_at) == (Status.SUCCEEDED, 0.25)


@bounded
async def test_cancel_on_a_done_job_changes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """handle.cancel() after the job finished leaves its SUCCEEDED result and the counters as they were."""
    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(sleeper(1, "kept")))
        result = await handle.wait()
        handle.cancel()
        assert handle.result is result
        assert pool.statistics().cancelled == 0
    assert result.status is Status.SUCCEEDED


@bounded
async def test_submit_wait_returns_the_result(autojump_clock: trio.testing.MockClock) -> None:
    """await pool.submit_wait(job) returns the job's Result once it is done."""
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(1.5, "value"), name="waited"))
        assert trio.current_time() == 1.5
    assert (result.name, result.status, result.data, result.finished_at) == ("waited", Status.SUCCEEDED, "value", 1.5)


@bounded
async def test_a_job_cancelled_as_it_returns_leaves_the_next_job_alone(autojump_clock: trio.testing.MockClock) -> None:
    """A job whose handle is cancelled while it runs, and which returns before any checkpoint, does not cancel the next.

    Its worker's epoch was cancelled all the same: the worker must notice and start the next job in a fresh one.
    """
    handles: list[wpxt.JobHandle[Any]] = []

    async def first(options: wpxt.Options) -> str:
        handles[0].cancel()  # cancels its own epoch, then returns with no checkpoint that would see it
        return "first"

    async def second(options: wpxt.Options) -> str:
        await trio.sleep(1)
        return "second"

    async with WorkerPool(1) as pool:
        handles.append(pool.submit(Job(first)))
        later = pool.submit(Job(second))
    assert (handles[0].result.status, handles[0].result.data) == (Status.SUCCEEDED, "first")  # type: ignore[union-attr]
    result = later.result
    assert result is not None
    assert (result.status, result.data, result.started_at, result.finished_at) == (Status.SUCCEEDED, "second", 0.0, 1.0)


@bounded
async def test_cancelling_submit_wait_cancels_the_job(autojump_clock: trio.testing.MockClock) -> None:
    """A submit_wait cancelled by move_on_after cancels its job, which ends CANCELLED at that time."""
    async with WorkerPool(1) as pool:
        with trio.move_on_after(1) as scope:
            await pool.submit_wait(Job(sleeper(10), name="abandoned wait"))
        assert scope.cancelled_caught
        results = await pool.stop_wait()
        assert trio.current_time() == 1.0
    assert timeline(results) == [(0, Status.CANCELLED, 1.0)]
    assert isinstance(results[0].error, JobCancelledError)


# -- backpressure ----------------------------------------------------------------------


@bounded
async def test_submit_on_a_full_queue_raises_queue_full_error(autojump_clock: trio.testing.MockClock) -> None:
    """With max_queue=1, a second queued job makes submit raise QueueFullError, a RuntimeError and WorkerPoolError."""
    async with WorkerPool(1, max_queue=1) as pool:
        pool.submit(Job(sleeper(1)))
        await wait_all_tasks_blocked()
        pool.submit(Job(sleeper(1)))
        with pytest.raises(QueueFullError, match="max_queue=1") as info:
            pool.submit(Job(sleeper(1)))
        assert isinstance(info.value, RuntimeError)
        assert isinstance(info.value, WorkerPoolError)
        assert pool.statistics().submitted == 2


@bounded
async def test_asubmit_waits_until_a_worker_takes_a_queued_job(autojump_clock: trio.testing.MockClock) -> None:
    """asubmit on a full queue returns a handle at the exact time a worker takes the queued job."""
    async with WorkerPool(1, max_queue=1) as pool:
        pool.submit(Job(sleeper(1)))
        await wait_all_tasks_blocked()
        pool.submit(Job(sleeper(2)))
        third = await pool.asubmit(Job(sleeper(1), name="third"))
        assert trio.current_time() == 1.0
        assert (third.job_id, third.name, pool.waiting_queue_size) == (2, "third", 1)
    third_result = result_of(third)
    assert (third_result.queued_at, third_result.started_at, third_result.finished_at) == (1.0, 3.0, 4.0)


@bounded
async def test_asubmit_waiting_when_the_pool_stops_raises_pool_closed_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An asubmit still waiting for room when the pool stops raises PoolClosedError at the stop time."""
    raised: list[tuple[type[BaseException], float]] = []

    async def submit_when_room(pool: WorkerPool) -> None:
        try:
            await pool.asubmit(Job(noop))
        except PoolClosedError as error:
            raised.append((type(error), trio.current_time()))

    async with WorkerPool(1, max_queue=1) as pool:
        pool.submit(Job(sleeper(1)))
        await wait_all_tasks_blocked()
        pool.submit(Job(sleeper(1)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit_when_room, pool)
            await trio.sleep(0.5)
            assert raised == []
            results = await pool.stop()
    assert raised == [(PoolClosedError, 0.5)]
    assert [r.job_id for r in results] == [1, 0]


# -- paused() --------------------------------------------------------------------------


@bounded
async def test_paused_waits_for_running_jobs_and_starts_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """paused() returns once running jobs end; queued and newly submitted jobs start only when the block exits."""
    async with WorkerPool(2) as pool:
        pool.submit(Job(sleeper(1)))
        pool.submit(Job(sleeper(2)))
        await wait_all_tasks_blocked()
        queued = pool.submit(Job(sleeper(1)))
        async with pool.paused():
            assert trio.current_time() == 2.0
            assert (pool.running, pool.waiting_queue_size) == (0, 1)
            submitted = pool.submit(Job(sleeper(1)))
            await trio.sleep(3)
            assert (pool.running, pool.waiting_queue_size) == (0, 2)
            assert not queued.done
        await wait_all_tasks_blocked()
        assert pool.running == 2
    for handle in (queued, submitted):
        assert (result_of(handle).started_at, result_of(handle).finished_at) == (5.0, 6.0)


@bounded
async def test_paused_holds_jobs_queued_before_a_worker_took_them(autojump_clock: trio.testing.MockClock) -> None:
    """A job submitted just before paused() is not started inside the block but at its exit."""
    gauge = Gauge()
    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(gauge.task("held", 1)))
        async with pool.paused():
            assert trio.current_time() == 0.0
            await trio.sleep(1)
            assert gauge.started == []
    assert (result_of(handle).started_at, result_of(handle).finished_at) == (1.0, 2.0)


@bounded
async def test_a_stop_ends_a_pause(autojump_clock: trio.testing.MockClock) -> None:
    """stop_wait called while another task holds paused() ends the pause and runs the queued jobs."""
    entered = trio.Event()
    release = trio.Event()

    async def hold(pool: WorkerPool) -> None:
        async with pool.paused():
            entered.set()
            await release.wait()

    async with trio.open_nursery() as nursery, WorkerPool(1) as pool:
        nursery.start_soon(hold, pool)
        await entered.wait()
        handle = pool.submit(Job(sleeper(1)))
        await trio.sleep(1)
        assert not handle.done
        results = await pool.stop_wait()
        assert trio.current_time() == 2.0
        release.set()
    assert timeline(results) == [(0, Status.SUCCEEDED, 2.0)]
    assert result_of(handle).started_at == 1.0


async def test_paused_after_stop_raises_pool_closed_error() -> None:
    """paused() on a stopped pool raises PoolClosedError, inside the block and after it."""
    async with WorkerPool(1) as pool:
        await pool.stop()
        with pytest.raises(PoolClosedError):
            await enter_pause(pool)
    with pytest.raises(PoolClosedError):
        await enter_pause(pool)


# -- results() -------------------------------------------------------------------------


@bounded
async def test_results_yields_in_completion_order_and_ends_when_the_pool_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """results() yields each Result as it completes, through the drain, and ends once the stopped pool is done."""
    seen: list[tuple[int, float]] = []
    ended: list[float] = []

    async def consume(pool: WorkerPool) -> None:
        async for result in pool.results():
            seen.append((result.job_id, trio.current_time()))
        ended.append(trio.current_time())

    async with trio.open_nursery() as nursery, WorkerPool(3) as pool:
        nursery.start_soon(consume, pool)
        for seconds in (3, 1, 2):
            pool.submit(Job(sleeper(seconds)))
        await trio.sleep(4)
        assert ended == []  # every result so far was yielded, but the pool is still open
        pool.submit(Job(sleeper(1)))
        pool.submit(Job(sleeper(3)))
    assert seen == [(1, 1.0), (2, 2.0), (0, 3.0), (3, 5.0), (4, 7.0)]
    assert ended == [7.0]


async def test_results_has_a_single_consumer() -> None:
    """A second call to results() raises RuntimeError."""
    async with WorkerPool(1) as pool:
        pool.results()
        with pytest.raises(RuntimeError, match="single consumer"):
            pool.results()


@bounded
async def test_results_started_late_yields_from_the_first_job(autojump_clock: trio.testing.MockClock) -> None:
    """results() called after jobs already finished still yields them first, in completion order."""
    async with WorkerPool(2) as pool:
        pool.submit(Job(sleeper(2)))
        pool.submit(Job(sleeper(1)))
        await trio.sleep(3)
        pool.submit(Job(sleeper(1)))
        stream = pool.results()
        first = [await anext(stream), await anext(stream)]
        assert trio.current_time() == 3.0
    rest = [result async for result in stream]
    assert timeline(first) == [(1, Status.SUCCEEDED, 1.0), (0, Status.SUCCEEDED, 2.0)]
    assert timeline(rest) == [(2, Status.SUCCEEDED, 4.0)]


async def test_results_without_keeping_them_yields_everything() -> None:
    """With keep_results=False the stops return [] while results() yields all 1000 results."""
    seen: list[int] = []

    async def consume(pool: WorkerPool) -> None:
        async for result in pool.results():
            seen.append(result.job_id)

    job = Job(noop)
    async with trio.open_nursery() as nursery, WorkerPool(10, keep_results=False) as pool:
        for _ in range(500):
            pool.submit(job)
        await wait_all_tasks_blocked()
        nursery.start_soon(consume, pool)
        for _ in range(500):
            pool.submit(job)
        assert await pool.stop_wait() == []
        assert await pool.stop() == []
    assert sorted(seen) == list(range(1000))


# -- errors are contained, BaseExceptions are not --------------------------------------


async def test_task_exception_is_the_result_error_and_the_pool_keeps_going() -> None:
    """A task's ValueError becomes its FAILED result's error, the same object, and other jobs still run."""
    error = ValueError("boom")
    async with WorkerPool(1) as pool:
        failing = pool.submit(Job(raiser(error)))
        before = pool.submit(Job(sleeper(0, "before")))
        await failing.wait()
        after = pool.submit(Job(sleeper(0, "after")))
    result = result_of(failing)
    assert (result.status, result.attempts) == (Status.FAILED, 1)
    assert result.error is error
    with pytest.raises(ValueError, match="boom"):
        result.unwrap()
    assert [result_of(h).data for h in (before, after)] == ["before", "after"]


class Halt(BaseException):
    """A BaseException of the user's own."""


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit, Halt])
@bounded
async def test_base_exception_from_a_task_leaves_the_block_bare(
    kind: type[BaseException], autojump_clock: trio.testing.MockClock
) -> None:
    """A task's BaseException leaves the block as itself, after failing its job; every handle gets a result."""
    exception = kind("from the task")
    handles: dict[str, JobHandle[Any]] = {}
    woke: list[tuple[str, Status, float]] = []

    async def wait_for(key: str) -> None:
        result = await handles[key].wait()
        woke.append((key, result.status, trio.current_time()))

    async def run_pool(nursery: trio.Nursery) -> None:
        async with WorkerPool(2) as pool:
            handles["raiser"] = pool.submit(Job(raiser(exception, after=1)))
            handles["running"] = pool.submit(Job(sleeper(10)))
            handles["queued"] = pool.submit(Job(sleeper(10)))
            for key in handles:
                nursery.start_soon(wait_for, key)

    async with trio.open_nursery() as nursery:
        with pytest.raises(kind) as info:
            await run_pool(nursery)
    assert info.value is exception
    assert trio.current_time() == 1.0
    assert sorted(woke) == [
        ("queued", Status.ABANDONED, 1.0),
        ("raiser", Status.FAILED, 1.0),
        ("running", Status.CANCELLED, 1.0),
    ]
    assert result_of(handles["raiser"]).error is exception
    assert result_of(handles["raiser"]).attempts == 1


# -- leaving the block with an exception -----------------------------------------------


@bounded
async def test_exception_in_the_block_propagates_as_is_and_cancels_jobs(autojump_clock: trio.testing.MockClock) -> None:
    """A ValueError raised in the block leaves it as that object; running jobs end CANCELLED, queued ones ABANDONED."""
    error = ValueError("from the block")
    handles: list[JobHandle[Any]] = []

    async def run_pool() -> None:
        async with WorkerPool(2) as pool:
            handles.extend(pool.submit(Job(sleeper(10))) for _ in range(3))
            await trio.sleep(0.5)
            raise error

    with pytest.raises(ValueError, match="from the block") as info:
        await run_pool()
    assert info.value is error
    assert not isinstance(info.value, BaseExceptionGroup)
    assert trio.current_time() == 0.5
    assert [(r.status, r.started_at, r.finished_at) for r in map(result_of, handles)] == [
        (Status.CANCELLED, 0.0, 0.5),
        (Status.CANCELLED, 0.0, 0.5),
        (Status.ABANDONED, None, 0.5),
    ]


# -- an outer cancellation -------------------------------------------------------------


@bounded
async def test_outer_cancellation_while_draining_cancels_the_block_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """move_on_after(1) around the block cancels its drain at t=1: running jobs CANCELLED, queued ones ABANDONED."""
    handles: list[JobHandle[Any]] = []
    with trio.move_on_after(1) as scope:
        async with WorkerPool(2) as pool:
            handles.extend(pool.submit(Job(sleeper(10))) for _ in range(3))
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0
    assert [(r.status, r.finished_at) for r in map(result_of, handles)] == [
        (Status.CANCELLED, 1.0),
        (Status.CANCELLED, 1.0),
        (Status.ABANDONED, 1.0),
    ]


@bounded
async def test_outer_cancellation_of_the_block_body_cancels_jobs(autojump_clock: trio.testing.MockClock) -> None:
    """move_on_after(1) around a block still sleeping cancels it at t=1: running jobs CANCELLED, queued ABANDONED."""
    handles: list[JobHandle[Any]] = []
    with trio.move_on_after(1) as scope:
        async with WorkerPool(1) as pool:
            handles.extend(pool.submit(Job(sleeper(10))) for _ in range(2))
            await trio.sleep(10)
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0
    assert [(r.status, r.finished_at) for r in map(result_of, handles)] == [
        (Status.CANCELLED, 1.0),
        (Status.ABANDONED, 1.0),
    ]


async def exit_with_value_error(pool: WorkerPool) -> None:
    """Leave the pool's block by raising ValueError while two jobs run."""

    async def run() -> None:
        async with pool:
            pool.submit(Job(sleeper(10)))
            pool.submit(Job(sleeper(10)))
            await trio.sleep(1)
            raise ValueError("leave")

    with pytest.raises(ValueError, match="leave"):
        await run()


async def exit_by_outer_cancellation(pool: WorkerPool) -> None:
    """Leave the pool's block through a move_on_after while two jobs run."""
    with trio.move_on_after(1):
        async with pool:
            pool.submit(Job(sleeper(10)))
            pool.submit(Job(sleeper(10)))


async def exit_by_keyboard_interrupt(pool: WorkerPool) -> None:
    """Leave the pool's block through a task's KeyboardInterrupt while another job runs."""

    async def run() -> None:
        async with pool:
            pool.submit(Job(raiser(KeyboardInterrupt(), after=1)))
            pool.submit(Job(sleeper(10)))

    with pytest.raises(KeyboardInterrupt):
        await run()


@pytest.mark.parametrize("leave", [exit_with_value_error, exit_by_outer_cancellation, exit_by_keyboard_interrupt])
@bounded
async def test_no_job_counts_as_running_after_an_abnormal_exit(
    leave: Callable[[WorkerPool], Awaitable[None]], autojump_clock: trio.testing.MockClock
) -> None:
    """Once the block is left by an exception or a cancellation, every job has its result and none counts as running."""
    pool = WorkerPool(2)
    await leave(pool)
    assert trio.current_time() == 1.0
    stats = pool.statistics()
    # The task that raised KeyboardInterrupt failed with it; every other job was cancelled.
    assert (stats.cancelled, stats.failed) == ((1, 1) if leave is exit_by_keyboard_interrupt else (2, 0))
    assert (pool.running, pool.waiting_queue_size) == (0, 0)
    assert (stats.running, stats.waiting) == (0, 0)


# -- property: one Result per job, bounded concurrency ---------------------------------

KINDS = ("succeed", "fail", "slow", "cancel_handle", "cancel_context")

job_specs = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(min_value=0, max_value=4), st.integers(min_value=0, max_value=8)),
    max_size=40,
)


@bounded
async def run_mixed_jobs(max_workers: int, specs: list[tuple[str, int, int]]) -> None:
    """Run one job per spec (kind, length in quarter seconds, cancel time in quarter seconds) and check the outcome."""
    gauge = Gauge()
    handles: list[tuple[str, int, float, JobHandle[Any]]] = []

    async def cancel_at(when: float, cancel: Callable[[], None]) -> None:
        await trio.sleep_until(when)
        cancel()

    async with trio.open_nursery() as cancellers:
        async with WorkerPool(max_workers) as pool:
            for index, (kind, quarters, cancel_quarters) in enumerate(specs):
                seconds, when = quarters / 4, cancel_quarters / 4
                if kind == "fail":
                    job = Job(gauge.task(index, seconds, error=ValueError(index)))
                elif kind == "slow":
                    job = Job(gauge.task(index, 5), timeout=1 if quarters % 2 else None)
                elif kind == "cancel_context":
                    context = Context()
                    job = Job(gauge.task(index, seconds), context=context)
                    cancellers.start_soon(cancel_at, when, context.cancel)
                else:
                    job = Job(gauge.task(index, seconds))
                handle = pool.submit(job)
                if kind == "cancel_handle":
                    cancellers.start_soon(cancel_at, when, handle.cancel)
                handles.append((kind, quarters, when, handle))
            results = await pool.stop_wait()
        stats = pool.statistics()

    assert sorted(r.job_id for r in results) == list(range(len(specs)))
    assert gauge.peak <= max_workers
    assert gauge.current == 0
    assert stats.submitted == len(specs)
    counted = stats.succeeded + stats.failed + stats.timed_out + stats.cancelled + stats.abandoned
    assert counted == len(specs)
    by_id = {r.job_id: r for r in results}
    for kind, quarters, when, handle in handles:
        result = by_id[handle.job_id]
        assert handle.result is result
        if kind == "succeed":
            assert result.status is Status.SUCCEEDED
        elif kind == "fail":
            assert result.status is Status.FAILED
            assert result.error is not None
            assert result.error.args == (handle.job_id,)
        elif kind == "slow":
            assert result.status is (Status.TIMED_OUT if quarters % 2 else Status.SUCCEEDED)
        elif result.status is Status.CANCELLED:
            assert result.finished_at >= when
            if kind == "cancel_handle":
                assert result.finished_at == when
        else:
            assert result.status is Status.SUCCEEDED
            assert result.finished_at <= when


@settings(max_examples=60, deadline=None)
@given(max_workers=st.integers(min_value=1, max_value=8), specs=job_specs)
def test_property_one_result_per_job_and_bounded_concurrency(
    max_workers: int, specs: list[tuple[str, int, int]]
) -> None:
    """Any mix of succeeding, failing, slow and cancelled jobs on 1..8 workers: one Result each, peak <= max_workers."""
    trio.run(run_mixed_jobs, max_workers, specs, clock=trio.testing.MockClock(autojump_threshold=0))


# -- bad input ----------------------------------------------------------------------------


def test_max_workers_has_a_documented_upper_bound() -> None:
    """max_workers up to WorkerPool.MAX_WORKERS is accepted; beyond it a ValueError names `max_workers`."""
    assert WorkerPool.MAX_WORKERS == 100_000
    assert WorkerPool(WorkerPool.MAX_WORKERS).max_workers == 100_000
    for value in (WorkerPool.MAX_WORKERS + 1, 10**100):
        with pytest.raises(ValueError, match="`max_workers` must be at most 100,000"):
            WorkerPool(value)


@pytest.mark.parametrize("value", ["no", 1, 0, None])
@bounded
async def test_stop_flag_must_be_a_bool(value: object, autojump_clock: trio.testing.MockClock) -> None:
    """stop(cancel_running=...) that is not a bool is a TypeError naming it, and the pool neither stops nor cancels."""
    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(sleeper(1, "done")))
        with pytest.raises(TypeError, match="`cancel_running` must be a bool"):
            await pool.stop(cancel_running=value)  # type: ignore[arg-type]
        assert not pool.stopped
    assert (result_of(handle).status, result_of(handle).data) == (Status.SUCCEEDED, "done")


async def test_results_of_a_pool_never_entered_raises() -> None:
    """results() on a pool that was never entered raises RuntimeError at once instead of waiting forever."""
    with pytest.raises(RuntimeError, match=r"results\(\) needs a running pool"):
        WorkerPool(1).results()


# -- a task that blocks past its deadline ---------------------------------------------


def overrunning(clock: trio.testing.MockClock, seconds: float, outcome: object = "late") -> Callable[..., Any]:
    """An async task that blocks for ``seconds`` without a checkpoint (no cancellation can reach it), then ends."""

    async def block_then_end(options: wpxt.Options) -> object:
        clock.jump(seconds)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return block_then_end


@pytest.mark.parametrize("bound", ["timeout", "context"])
@bounded
async def test_an_async_task_returning_after_its_deadline_timed_out(
    bound: str, autojump_clock: trio.testing.MockClock
) -> None:
    """An async task that blocks past its deadline and then returns is TIMED_OUT, its value dropped, as a thread is."""
    limit: dict[str, Any] = {"timeout": 0.1} if bound == "timeout" else {"context": wpxt.Context(deadline=0.1)}
    async with WorkerPool(1) as pool:
        late = pool.submit(Job(overrunning(autojump_clock, 0.3), **limit))
        on_time = pool.submit(Job(overrunning(autojump_clock, 0.05, "on time"), timeout=0.1))
    result = result_of(late)
    assert (result.status, result.data, result.code, result.attempts) == (Status.TIMED_OUT, None, 408, 1)
    assert result.duration == 0.3
    assert isinstance(result.error, JobTimeoutError)
    assert result.error.deadline == 0.1
    assert result.error.__cause__ is None
    assert (result_of(on_time).status, result_of(on_time).data) == (Status.SUCCEEDED, "on time")


@pytest.mark.parametrize("retry", [0, 3])
@bounded
async def test_an_async_task_failing_after_its_deadline_timed_out(
    retry: int, autojump_clock: trio.testing.MockClock
) -> None:
    """An async task that blocks past its deadline and then raises is TIMED_OUT, with its error as the cause."""
    error = ValueError("too late anyway")
    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(overrunning(autojump_clock, 0.3, error), timeout=0.1, retry=retry))
    result = result_of(handle)
    assert (result.status, result.attempts) == (Status.TIMED_OUT, 1)
    assert isinstance(result.error, JobTimeoutError)
    assert result.error.__cause__ is error


@bounded
async def test_an_attempt_returning_after_attempt_timeout_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    """An attempt that blocks past attempt_timeout and returns fails with JobTimeoutError and is retried."""
    attempts: list[float] = []

    async def slow_then_quick(options: wpxt.Options) -> str:
        attempts.append(trio.current_time())
        if len(attempts) == 1:
            autojump_clock.jump(0.3)
        return f"attempt {len(attempts)}"

    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(slow_then_quick, attempt_timeout=0.1, retry=1, backoff=wpxt.Backoff.none()))
    result = result_of(handle)
    assert (result.status, result.data, result.attempts) == (Status.SUCCEEDED, "attempt 2", 2)
    assert attempts == [0.0, 0.3]


# -- an idle worker takes a job at submit() -----------------------------------------------


@pytest.mark.parametrize("submit", ["submit", "asubmit"])
@bounded
async def test_an_immediate_stop_lets_the_jobs_idle_workers_took_run(
    submit: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Go's TestOverflow: 64 jobs submitted to 2 idle workers, then stop(): 2 run, 62 are abandoned."""
    async with WorkerPool(2) as pool:
        await trio.sleep(1)  # both workers are idle
        handles = []
        for index in range(64):
            job = Job(sleeper(1, index))
            handles.append(pool.submit(job) if submit == "submit" else await pool.asubmit(job))
        results = await pool.stop()
        assert trio.current_time() == 2.0
    statuses = [result_of(handle).status for handle in handles]
    assert statuses == [Status.SUCCEEDED] * 2 + [Status.ABANDONED] * 62
    assert [result_of(handle).data for handle in handles[:2]] == [0, 1]
    assert len(results) == 64


@bounded
async def test_a_job_submitted_to_an_idle_worker_is_running_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """A job submitted while a worker idles counts as running, not waiting, before the worker even wakes."""
    async with WorkerPool(2) as pool:
        await trio.sleep(1)
        first = pool.submit(Job(sleeper(1)))
        assert (pool.running, pool.waiting_queue_size) == (1, 0)
        second = pool.submit(Job(sleeper(1)))
        third = pool.submit(Job(sleeper(1)))  # no idle worker left: it queues
        assert (pool.running, pool.waiting_queue_size) == (2, 1)
    assert [result_of(handle).started_at for handle in (first, second, third)] == [1.0, 1.0, 2.0]


@pytest.mark.parametrize("cancel", ["handle", "stop"])
@bounded
async def test_a_job_handed_over_and_cancelled_before_its_worker_woke_never_started(
    cancel: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A job cancelled between its hand-over and its worker waking ends CANCELLED with no attempt and no start."""
    ran: list[float] = []

    async def record(options: wpxt.Options) -> None:
        ran.append(trio.current_time())

    async with WorkerPool(1) as pool:
        await trio.sleep(1)
        handle = pool.submit(Job(record))
        if cancel == "handle":
            handle.cancel()
        else:
            await pool.stop(cancel_running=True)
        after = pool.submit(Job(record)) if cancel == "handle" else None
    result = result_of(handle)
    assert (result.status, result.attempts, result.started_at, result.duration) == (Status.CANCELLED, 0, None, 0.0)
    assert isinstance(result.error, JobCancelledError)
    # The worker was not harmed: it runs the next job.
    assert ran == ([1.0] if after is not None else [])
    if after is not None:
        assert result_of(after).ok


@bounded
async def test_jobs_queued_during_a_pause_start_before_one_submitted_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The pause's end hands the queue's head to the idle worker; a job submitted next queues behind the rest."""
    starts = Starts()
    async with WorkerPool(1) as pool:
        await trio.sleep(1)
        async with pool.paused():
            for index in range(2):
                pool.submit(Job(starts.task(index, 1)))
        assert (pool.running, pool.waiting_queue_size) == (1, 1)
        pool.submit(Job(starts.task(2, 1)))
    assert starts.log == [(0, 1.0), (1, 2.0), (2, 3.0)]


# -- back-pressure from results() -------------------------------------------------------


@pytest.mark.parametrize("max_unread", [8, 64])
@bounded
async def test_a_slow_reader_holds_the_workers_back(max_unread: int, autojump_clock: trio.testing.MockClock) -> None:
    """The bounded-memory recipe with a reader slower than the workers: unread results never pass the bound."""
    total = 2_000
    peak_unread = 0
    read: list[int] = []

    async def produce() -> None:
        for index in range(total):
            await pool.asubmit(Job(sleeper(0.001, index)))

    pool = WorkerPool(16, max_queue=64, keep_results=False, max_unread=max_unread)
    async with pool, trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        async for result in pool.results():
            read.append(result.data)
            peak_unread = max(peak_unread, pool.statistics().unread)
            await trio.sleep(0.01)  # ten times slower than the workers
            if len(read) == total:
                break
    assert sorted(read) == list(range(total))
    # A worker does not start a job once the bound is reached; those running then may still end.
    assert peak_unread <= max_unread + 16
    assert pool.statistics().unread == 0


@bounded
async def test_closing_the_stream_lets_the_workers_go_on(autojump_clock: trio.testing.MockClock) -> None:
    """A reader that stops early and closes its stream no longer holds the workers: the pool drains."""
    async with WorkerPool(4, keep_results=False, max_unread=4) as pool:
        for index in range(100):
            pool.submit(Job(sleeper(1, index)))
        stream = pool.results()
        first = await stream.__anext__()
        await trio.sleep(10)
        held = pool.statistics()
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
    # Held back: 4 ran, then 4 more while the bound was reached (running jobs end), and no more.
    assert first.started_at == 0.0
    assert (held.succeeded, held.running, held.unread) == (8, 0, 7)
    assert pool.statistics().succeeded == 100
    # The first result came at 1, the reader slept until 11, then the 92 left ran 4 at a time.
    assert trio.current_time() == 1 + 10 + 23


@bounded
async def test_a_stream_not_yet_iterated_holds_nothing_back(autojump_clock: trio.testing.MockClock) -> None:
    """Before results() is first iterated, no bound applies: 20 jobs on 4 workers end at 5, all unread."""
    async with WorkerPool(4, keep_results=False, max_unread=2) as pool:
        stream = pool.results()  # created, never iterated
        for _ in range(20):
            pool.submit(Job(sleeper(1)))
    assert trio.current_time() == 5.0
    assert pool.statistics().unread == 20
    assert len([result async for result in stream]) == 20


@bounded
async def test_a_slow_reader_of_kept_results_holds_nothing_back(autojump_clock: trio.testing.MockClock) -> None:
    """With keep_results=True the pool keeps every result anyway, so a slow reader does not hold the workers."""
    read: list[float] = []
    async with WorkerPool(4, max_unread=2) as pool, trio.open_nursery() as nursery:

        async def read_slowly() -> None:
            async for _ in pool.results():
                read.append(trio.current_time())
                await trio.sleep(10)

        nursery.start_soon(read_slowly)
        for _ in range(20):
            pool.submit(Job(sleeper(1)))
        await trio.sleep(5)
        await wait_all_tasks_blocked()  # the last four, which end at 5 too
        assert pool.statistics().succeeded == 20
        assert pool.statistics().unread == 19  # the reader has taken one
        await pool.stop()
    assert len(read) == 20


def test_max_unread_must_be_a_positive_int() -> None:
    """max_unread below 1 or not an int raises, naming it."""
    with pytest.raises(ValueError, match="`max_unread`"):
        WorkerPool(1, max_unread=0)
    with pytest.raises(TypeError, match="`max_unread`"):
        WorkerPool(1, max_unread=1.5)  # type: ignore[arg-type]


# -- a finished job leaves nothing behind ------------------------------------------------


class Payload:
    """An object whose lifetime a test watches."""


@bounded
async def test_a_finished_job_leaves_nothing_but_its_result(autojump_clock: trio.testing.MockClock) -> None:
    """Once a job has its Result, its options, Context, current_job() values, item and errors are all freed."""
    refs: dict[str, weakref.ref[Any]] = {}

    def watch(name: str, value: Any) -> Any:
        refs[name] = weakref.ref(value)
        return value

    async def task(options: wpxt.Options) -> str:
        job = wpxt.current_job()
        job.set("value", watch(f"value {job.attempt}", Payload()))
        if job.attempt == 1:
            raise watch("error", ValueError("the first attempt fails"))
        return "done"

    async def item_task(options: wpxt.Options) -> None:
        assert isinstance(wpxt.current_job().item, Payload)

    send, receive = trio.open_memory_channel[Payload](0)
    async with WorkerPool(1) as pool:
        handle = pool.submit(
            Job(
                task,
                options={"payload": watch("options", Payload())},
                context=watch("context", wpxt.Context()),
                retry=1,
                backoff=wpxt.Backoff.none(),
            )
        )
        series = pool.submit_each(Job(item_task), receive)
        await send.send(watch("item", Payload()))
        result = await handle.wait()
        await trio.sleep(1)  # the series' run is done too, and the workers idle
        gc.collect()
        alive = sorted(name for name, ref in refs.items() if ref() is not None)
        assert alive == []
        await send.aclose()
    assert (result.status, result.data, result.attempts) == (Status.SUCCEEDED, "done", 2)
    assert series.submitted == 1


@bounded
async def test_closing_the_stream_ends_a_read_under_way(autojump_clock: trio.testing.MockClock) -> None:
    """aclose() from another task ends the reader's wait for the next result at once."""
    ended: list[float] = []
    async with WorkerPool(1, keep_results=False) as pool:
        stream = pool.results()

        async def read() -> None:
            async for _ in stream:
                pass
            ended.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            pool.submit(Job(sleeper(5)))
            await trio.sleep(1)
            await stream.aclose()
    assert ended == [1.0]


@bounded
async def test_nothing_of_a_job_stays_beside_its_entry_once_it_has_its_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the pool keeps aside for some jobs (cancel reasons, wait events, run info, start times, holders) goes
    with their Results: after a mixed run the pool keeps none of it."""
    async with WorkerPool(2) as pool:
        running = pool.submit(Job(sleeper(5, "running")))
        waited = pool.submit(Job(sleeper(1, "waited")))
        queued = pool.submit(Job(sleeper(1, "queued")))
        later = pool.submit_in(Job(sleeper(1, "later")), 10)
        never = pool.submit_in(Job(sleeper(1, "never")), 100)
        informed = pool.submit(Job(sleeper(1, "informed")), info=wpxt.RunInfo(item="x"))
        await trio.sleep(0.5)
        assert pool._held  # the two running jobs' workers
        running.cancel()
        queued.cancel()
        never.cancel()
        assert (await waited.wait()).data == "waited"
        assert (await informed.wait()).data == "informed"
        assert (await later.wait()).data == "later"
    statuses = [handle.result.status for handle in (running, waited, queued, later, never, informed)]  # type: ignore[union-attr]
    assert statuses == [
        Status.CANCELLED,
        Status.SUCCEEDED,
        Status.CANCELLED,
        Status.SUCCEEDED,
        Status.CANCELLED,
        Status.SUCCEEDED,
    ]
    assert pool._held == {}
    assert pool._extras == {}
    assert pool._timers._waiting == set()
