"""Load shaping: ramp-up of a pool's concurrency, and start-rate limits for the pool and per job name."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
import trio
import trio.testing
from helpers import Starts, bounded, noop, result_of, sleeper
from hypothesis import given, settings
from hypothesis import strategies as st

import workerpoolxt as wpxt
from workerpoolxt import Context, Job, JobCancelledError, Status, WorkerPool


async def sample_running(pool: WorkerPool, times: list[float], into: list[tuple[float, int]]) -> None:
    """Record (time, pool.running) at each of ``times``."""
    for when in times:
        await trio.sleep_until(when)
        into.append((when, pool.running))


# -- ramp-up ---------------------------------------------------------------------------


@bounded
async def test_ramp_up_adds_one_worker_per_interval(autojump_clock: trio.testing.MockClock) -> None:
    """3 workers, ramp_up=5, four 100 s jobs at t=0: they start at 0, 5, 10 and 100."""
    async with WorkerPool(3, ramp_up=5) as pool:
        handles = [pool.submit(Job(sleeper(100))) for _ in range(4)]
    assert trio.current_time() == 200.0
    assert [result_of(handle).started_at for handle in handles] == [0.0, 5.0, 10.0, 100.0]


@bounded
async def test_ramp_up_concurrency_over_time(autojump_clock: trio.testing.MockClock) -> None:
    """With 4 workers and ramp_up=2, pool.running is 1, 2, 3, 4, 4 at t=1, 3, 5, 7, 9 under a long queue."""
    samples: list[tuple[float, int]] = []
    async with WorkerPool(4, ramp_up=2) as pool:
        for _ in range(8):
            pool.submit(Job(sleeper(100)))
        await sample_running(pool, [1, 3, 5, 7, 9], samples)
        assert pool.waiting_queue_size == 4
        await pool.stop()
    assert samples == [(1, 1), (3, 2), (5, 3), (7, 4), (9, 4)]


@bounded
async def test_ramp_up_limits_concurrency_not_starts(autojump_clock: trio.testing.MockClock) -> None:
    """Ten 1 s jobs on 3 workers with ramp_up=5 run one at a time until t=5, then two at a time."""
    starts = Starts()
    async with WorkerPool(3, ramp_up=5) as pool:
        for index in range(10):
            pool.submit(Job(starts.task(index, 1)))
    assert starts.times() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0]
    assert trio.current_time() == 8.0


@bounded
async def test_ramp_up_counts_from_entering_the_pool(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs first submitted at t=7 with ramp_up=5 find two workers allowed already; the third joins at t=10."""
    async with WorkerPool(3, ramp_up=5) as pool:
        await trio.sleep(7)
        handles = [pool.submit(Job(sleeper(100))) for _ in range(3)]
    assert [result_of(handle).started_at for handle in handles] == [7.0, 7.0, 10.0]


@bounded
async def test_ramp_up_accepts_a_timedelta(autojump_clock: trio.testing.MockClock) -> None:
    """ramp_up=timedelta(seconds=2.5) lets the second worker start at t=2.5."""
    async with WorkerPool(2, ramp_up=datetime.timedelta(seconds=2.5)) as pool:
        handles = [pool.submit(Job(sleeper(10))) for _ in range(2)]
    assert [result_of(handle).started_at for handle in handles] == [0.0, 2.5]


@bounded
async def test_ramp_up_with_one_worker_changes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """A one-worker pool with ramp_up runs as without it: two 1 s jobs start at 0 and 1."""
    async with WorkerPool(1, ramp_up=5) as pool:
        handles = [pool.submit(Job(sleeper(1))) for _ in range(2)]
    assert [result_of(handle).started_at for handle in handles] == [0.0, 1.0]
    assert trio.current_time() == 2.0


@bounded
async def test_ramp_up_goes_on_while_draining(autojump_clock: trio.testing.MockClock) -> None:
    """Leaving the block with three 100 s jobs queued runs them at the ramp's pace: starts 0, 5, 10; exit at 110."""
    async with WorkerPool(3, ramp_up=5) as pool:
        handles = [pool.submit(Job(sleeper(100))) for _ in range(3)]
    assert trio.current_time() == 110.0
    assert [result_of(handle).started_at for handle in handles] == [0.0, 5.0, 10.0]


@bounded
async def test_ramp_steps_during_a_pause_start_nothing_until_it_ends(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs queued in a pause from t=0 to t=20 all start at t=20 on the three workers the ramp allows by then."""
    async with WorkerPool(3, ramp_up=5) as pool, pool.paused():
        handles = [pool.submit(Job(sleeper(100))) for _ in range(4)]
        await trio.sleep(20)
        assert pool.running == 0
    assert [result_of(handle).started_at for handle in handles] == [20.0, 20.0, 20.0, 120.0]


@bounded
async def test_leaving_a_ramped_pool_at_once_does_not_wait_for_the_ramp(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block of an idle ramped pool straight after entering returns at t=0, not when the ramp ends."""
    async with WorkerPool(3, ramp_up=5):
        pass
    assert trio.current_time() == 0.0


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(math.inf, ValueError, id="inf"),
        pytest.param(math.nan, ValueError, id="nan"),
        pytest.param(datetime.timedelta(0), ValueError, id="zero-timedelta"),
        pytest.param("5", TypeError, id="str"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
def test_bad_ramp_up_raises_naming_it(value: Any, error: type[Exception]) -> None:
    """WorkerPool(ramp_up=...) with a non-positive, non-finite or non-number value raises naming `ramp_up`."""
    with pytest.raises(error, match="`ramp_up`"):
        WorkerPool(2, ramp_up=value)


@settings(max_examples=40, deadline=None)
@given(
    max_workers=st.integers(min_value=1, max_value=6),
    interval=st.sampled_from([0.25, 0.5, 1.0, 2.5]),
    extra_jobs=st.integers(min_value=0, max_value=3),
)
def test_property_ramp_up_starts_the_kth_worker_at_k_intervals(
    max_workers: int, interval: float, extra_jobs: int
) -> None:
    """With long jobs queued, the k-th of max_workers jobs starts at exactly k * ramp_up, and no more start."""

    async def run() -> list[float | None]:
        async with WorkerPool(max_workers, ramp_up=interval) as pool:
            handles = [pool.submit(Job(sleeper(1_000))) for _ in range(max_workers + extra_jobs)]
            await trio.sleep(max_workers * interval + 1)
            await pool.stop(cancel_running=True)
        return [result_of(handle).started_at for handle in handles]

    started = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    assert started == [k * interval for k in range(max_workers)] + [None] * extra_jobs


# -- the pool's rate limit -------------------------------------------------------------


@bounded
async def test_pool_rate_spaces_starts_exactly(autojump_clock: trio.testing.MockClock) -> None:
    """max_per_second=2 on 4 workers starts six queued jobs at 0, 0.5, 1.0, 1.5, 2.0 and 2.5."""
    starts = Starts()
    async with WorkerPool(4, max_per_second=2) as pool:
        handles = [pool.submit(Job(starts.task(index))) for index in range(6)]
    expected = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [result_of(handle).started_at for handle in handles] == expected
    assert starts.log == list(enumerate(expected))
    assert trio.current_time() == 2.5


@bounded
async def test_pool_rate_with_one_worker(autojump_clock: trio.testing.MockClock) -> None:
    """max_per_second=4 on one worker starts four no-op jobs 0.25 s apart."""
    async with WorkerPool(1, max_per_second=4) as pool:
        handles = [pool.submit(Job(noop)) for _ in range(4)]
    assert [result_of(handle).started_at for handle in handles] == [0.0, 0.25, 0.5, 0.75]


@bounded
async def test_pool_rate_has_no_burst_after_idling(autojump_clock: trio.testing.MockClock) -> None:
    """After idling, the next job starts at once and the one after it 1/rate later: no saved-up burst."""
    async with WorkerPool(3, max_per_second=2) as pool:
        first = pool.submit(Job(noop))
        await trio.sleep(5)
        later = [pool.submit(Job(noop)) for _ in range(3)]
    assert result_of(first).started_at == 0.0
    assert [result_of(handle).started_at for handle in later] == [5.0, 5.5, 6.0]


@bounded
async def test_a_job_waiting_for_its_turn_holds_its_worker(autojump_clock: trio.testing.MockClock) -> None:
    """At t=0.5 with max_per_second=1 on 2 workers, one job waits for its turn on a worker and one is queued."""
    async with WorkerPool(2, max_per_second=1) as pool:
        handles = [pool.submit(Job(noop)) for _ in range(4)]
        await trio.sleep(0.5)
        assert (pool.running, pool.waiting_queue_size) == (2, 1)
        assert [handle.done for handle in handles] == [True, False, False, False]
    assert [result_of(handle).started_at for handle in handles] == [0.0, 1.0, 2.0, 3.0]


@bounded
async def test_pool_rate_applies_while_draining(autojump_clock: trio.testing.MockClock) -> None:
    """stop_wait runs the queued jobs at the pool's rate: starts at 0, 0.5 and 1.0."""
    async with WorkerPool(3, max_per_second=2) as pool:
        for _ in range(3):
            pool.submit(Job(noop))
        results = await pool.stop_wait()
        assert trio.current_time() == 1.0
    assert [r.started_at for r in results] == [0.0, 0.5, 1.0]


@bounded
async def test_scheduled_and_series_runs_obey_the_rate(autojump_clock: trio.testing.MockClock) -> None:
    """Three jobs due at t=5 under max_per_second=1 start at 5, 6 and 7, as queued jobs do."""
    async with WorkerPool(3, max_per_second=1) as pool:
        handles = [pool.submit_in(Job(noop), 5) for _ in range(3)]
        for handle in handles:
            await handle.wait()
    assert [(r.queued_at, r.started_at) for r in map(result_of, handles)] == [(5.0, 5.0), (5.0, 6.0), (5.0, 7.0)]


# -- a job's own rate limit ------------------------------------------------------------


@bounded
async def test_job_rate_replaces_the_pool_rate_and_is_shared_by_name(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs named "api" at 4/s, "other" at 4/s and plain ones at the pool's 1/s each keep their own pace."""
    starts = Starts()
    async with WorkerPool(8, max_per_second=1) as pool:
        for index in range(3):
            pool.submit(Job(starts.task("api"), name="api", max_per_second=4))
            if index < 2:
                pool.submit(Job(starts.task("other"), name="other", max_per_second=4))
                pool.submit(Job(starts.task("plain"), name="plain"))
    assert starts.times("api") == [0.0, 0.25, 0.5]
    assert starts.times("other") == [0.0, 0.25]
    assert starts.times("plain") == [0.0, 1.0]


@bounded
async def test_job_rate_without_a_pool_rate(autojump_clock: trio.testing.MockClock) -> None:
    """In a pool with no rate, jobs with max_per_second=2 start 0.5 s apart while other jobs start at once."""
    starts = Starts()
    async with WorkerPool(5) as pool:
        for _ in range(3):
            pool.submit(Job(starts.task("paced"), name="paced", max_per_second=2))
        for _ in range(2):
            pool.submit(Job(starts.task("free"), name="free"))
    assert starts.times("paced") == [0.0, 0.5, 1.0]
    assert starts.times("free") == [0.0, 0.0]


@bounded
async def test_job_rate_is_shared_across_submissions(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs of one name submitted at different times share one limiter: starts at 0, 2, 4 at max_per_second=0.5."""
    async with WorkerPool(3) as pool:
        first = pool.submit(Job(noop, name="slow", max_per_second=0.5))
        await trio.sleep(1)
        second = pool.submit(Job(noop, name="slow", max_per_second=0.5))
        await trio.sleep(2)
        third = pool.submit(Job(noop, name="slow", max_per_second=0.5))
    assert [result_of(handle).started_at for handle in (first, second, third)] == [0.0, 2.0, 4.0]


# -- cancelling while waiting for a turn -------------------------------------------------


@bounded
async def test_cancel_while_waiting_for_its_turn(autojump_clock: trio.testing.MockClock) -> None:
    """handle.cancel() at t=0.5 on a job whose turn is at t=1 ends it CANCELLED then, with 0 attempts; it never runs."""
    starts = Starts()
    async with WorkerPool(2, max_per_second=1) as pool:
        first = pool.submit(Job(starts.task("first")))
        waiting = pool.submit(Job(starts.task("waiting"), name="waiting"))
        await trio.sleep(0.5)
        waiting.cancel()
        result = await waiting.wait()
        assert trio.current_time() == 0.5
        after = await pool.submit_wait(Job(sleeper(1, "after")))
    assert starts.log == [("first", 0.0)]
    assert (result.status, result.attempts, result.finished_at) == (Status.CANCELLED, 0, 0.5)
    assert isinstance(result.error, JobCancelledError)
    assert (result.error.name, result.error.reason) == ("waiting", "its JobHandle was cancelled")
    assert result_of(first).status is Status.SUCCEEDED
    # The worker goes on: the next job keeps the 1 s spacing after the last start.
    assert after.status is Status.SUCCEEDED
    assert after.started_at is not None
    assert after.started_at >= 1.0


@bounded
async def test_a_job_cancelled_before_its_turn_never_started(autojump_clock: trio.testing.MockClock) -> None:
    """A job cancelled while waiting for its turn has started_at None and duration 0.0, as any job that never ran."""
    async with WorkerPool(2, max_per_second=1) as pool:
        pool.submit(Job(noop))
        waiting = pool.submit(Job(noop))
        await trio.sleep(0.5)
        waiting.cancel()
    result = result_of(waiting)
    assert (result.status, result.attempts) == (Status.CANCELLED, 0)
    assert (result.started_at, result.duration) == (None, 0.0)


@bounded
async def test_stop_cancel_running_cancels_jobs_waiting_for_their_turn(autojump_clock: trio.testing.MockClock) -> None:
    """stop(cancel_running=True) at t=0.5 ends the jobs waiting for their turn CANCELLED with 0 attempts."""
    starts = Starts()
    async with WorkerPool(3, max_per_second=1) as pool:
        handles = [pool.submit(Job(starts.task(index, 10))) for index in range(4)]
        await trio.sleep(0.5)
        await pool.stop(cancel_running=True)
        assert trio.current_time() == 0.5
    assert starts.log == [(0, 0.0)]
    assert [(r.status, r.attempts, r.finished_at) for r in map(result_of, handles)] == [
        (Status.CANCELLED, 1, 0.5),
        (Status.CANCELLED, 0, 0.5),
        (Status.CANCELLED, 0, 0.5),
        (Status.ABANDONED, 0, 0.5),
    ]


# -- timeouts and rate waits -------------------------------------------------------------


@bounded
async def test_timeout_counts_from_after_the_rate_wait(autojump_clock: trio.testing.MockClock) -> None:
    """With max_per_second=1 and timeout=0.75, jobs of 0.5 s succeed at every turn, and a 1 s job times out."""
    async with WorkerPool(3, max_per_second=1) as pool:
        quick = [pool.submit(Job(sleeper(0.5, "ok"), timeout=0.75)) for _ in range(2)]
        slow = pool.submit(Job(sleeper(1), timeout=0.75))
    assert [(r.status, r.started_at, r.finished_at) for r in map(result_of, quick)] == [
        (Status.SUCCEEDED, 0.0, 0.5),
        (Status.SUCCEEDED, 1.0, 1.5),
    ]
    slow_result = result_of(slow)
    assert (slow_result.status, slow_result.started_at, slow_result.finished_at) == (Status.TIMED_OUT, 2.0, 2.75)
    assert (slow_result.attempts, slow_result.duration) == (1, 0.75)


@bounded
async def test_a_pool_timeout_counts_from_after_the_rate_wait(autojump_clock: trio.testing.MockClock) -> None:
    """The pool's timeout=0.75 also runs from each job's actual start, not from when a worker took it."""
    async with WorkerPool(3, max_per_second=2, timeout=0.75) as pool:
        handles = [pool.submit(Job(sleeper(0.5))) for _ in range(3)]
    assert [(r.status, r.started_at) for r in map(result_of, handles)] == [
        (Status.SUCCEEDED, 0.0),
        (Status.SUCCEEDED, 0.5),
        (Status.SUCCEEDED, 1.0),
    ]


@bounded
async def test_an_earlier_jobs_deadline_does_not_fire_on_a_job_waiting_for_its_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One worker at max_per_second=0.25: a job with timeout=1 ends at 0.5; the next waits until t=4 and runs."""
    async with WorkerPool(1, max_per_second=0.25) as pool:
        bounded_job = pool.submit(Job(sleeper(0.5), timeout=1))
        unbounded = pool.submit(Job(sleeper(0.5, "ran")))
    assert (result_of(bounded_job).status, result_of(bounded_job).finished_at) == (Status.SUCCEEDED, 0.5)
    result = result_of(unbounded)
    assert (result.status, result.data, result.started_at, result.finished_at) == (Status.SUCCEEDED, "ran", 4.0, 4.5)


@bounded
async def test_a_context_deadline_that_passed_during_the_wait_times_the_job_out_unstarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A job whose Context deadline (t=0.5) passes while it waits for its turn (t=1) ends TIMED_OUT, never started."""
    started = Starts()
    async with WorkerPool(2, max_per_second=1) as pool:
        pool.submit(Job(noop))
        late = pool.submit(Job(started.task("late"), context=Context(deadline=0.5)))
    result = result_of(late)
    assert (result.status, result.attempts, result.started_at) == (Status.TIMED_OUT, 0, None)
    assert started.log == []


@pytest.mark.parametrize("context_ends", ["deadline", "cancel"])
@bounded
async def test_an_outer_cancellation_after_a_job_ended_at_its_turn_keeps_one_result_each(
    context_ends: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A job whose Context ended while it waited for its turn keeps its one Result when the block is cancelled later."""
    context = Context(deadline=0.5) if context_ends == "deadline" else Context()
    with trio.move_on_after(2) as scope:
        async with WorkerPool(1, max_per_second=1) as pool:
            first = pool.submit(Job(noop))
            ended = pool.submit(Job(noop, context=context))
            if context_ends == "cancel":
                await trio.sleep(0.5)
                context.cancel()
            await trio.sleep(5)
    assert scope.cancelled_caught
    assert trio.current_time() == 2.0
    result = result_of(ended)
    expected = Status.TIMED_OUT if context_ends == "deadline" else Status.CANCELLED
    assert (result.status, result.attempts, result.started_at) == (expected, 0, None)
    assert result_of(first).status is Status.SUCCEEDED
    stats = pool.statistics()
    assert (stats.running, stats.succeeded, stats.timed_out + stats.cancelled) == (0, 1, 1)


# -- arguments -------------------------------------------------------------------------

BAD_RATES = [
    pytest.param(0, ValueError, id="zero"),
    pytest.param(-2, ValueError, id="negative"),
    pytest.param(math.inf, ValueError, id="inf"),
    pytest.param(10**400, ValueError, id="huge-int"),
    pytest.param(math.nan, ValueError, id="nan"),
    pytest.param("x", TypeError, id="str"),
    pytest.param(True, TypeError, id="bool"),
    pytest.param(datetime.timedelta(seconds=1), TypeError, id="timedelta"),
]


@pytest.mark.parametrize(("value", "error"), BAD_RATES)
def test_bad_pool_max_per_second_raises_naming_it(value: Any, error: type[Exception]) -> None:
    """WorkerPool(max_per_second=...) that is not a positive finite number raises naming `max_per_second`."""
    with pytest.raises(error, match="`max_per_second`"):
        WorkerPool(2, max_per_second=value)


@pytest.mark.parametrize(("value", "error"), BAD_RATES)
def test_bad_job_max_per_second_raises_naming_it(value: Any, error: type[Exception]) -> None:
    """Job(max_per_second=...) that is not a positive finite number raises naming `max_per_second`."""
    with pytest.raises(error, match="`max_per_second`"):
        Job(noop, max_per_second=value)


def test_max_per_second_accepts_ints_and_fractions() -> None:
    """An int or a fractional rate is accepted and kept as a float on the Job."""
    assert Job(noop, max_per_second=3).max_per_second == 3.0
    assert Job(noop, max_per_second=0.5).max_per_second == 0.5
    assert Job(noop).max_per_second is None
    WorkerPool(1, max_per_second=0.5)


# -- properties ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1, 2, 4, 8]),
    max_workers=st.integers(min_value=1, max_value=6),
    jobs=st.integers(min_value=1, max_value=12),
)
def test_property_rate_starts_are_exactly_one_interval_apart(rate: float, max_workers: int, jobs: int) -> None:
    """Any rate, worker count and number of queued no-op jobs: the k-th start is at exactly k / rate."""

    async def run() -> list[float]:
        async with WorkerPool(max_workers, max_per_second=rate) as pool:
            handles = [pool.submit(Job(noop)) for _ in range(jobs)]
        return sorted(s for s in (result_of(handle).started_at for handle in handles) if s is not None)

    started = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    assert started == [k * (1 / rate) for k in range(jobs)]


async def test_cancelling_the_context_of_a_job_waiting_for_its_turn_cancels_it_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A Context cancelled while its job waits for its rate turn ends the job then, not at its turn."""
    context = wpxt.Context()
    async with WorkerPool(2, max_per_second=0.1) as pool:
        first = pool.submit(Job(noop, name="first"))
        waiting = pool.submit(Job(noop, name="waiting", context=context))
        await trio.sleep(1)
        context.cancel()
        result = await waiting.wait()
        assert trio.current_time() == 1.0
    assert result_of(first).status is Status.SUCCEEDED
    assert (result.status, result.attempts, result.started_at) == (Status.CANCELLED, 0, None)
    assert "Context" in str(result.error)


async def test_a_job_whose_context_is_already_cancelled_ends_without_waiting_for_its_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A job reaching its rate wait with a cancelled Context ends CANCELLED at once, not at its turn."""
    context = wpxt.Context()
    context.cancel()
    async with WorkerPool(2, max_per_second=0.1) as pool:
        pool.submit(Job(noop, name="first"))
        doomed = pool.submit(Job(noop, name="doomed", context=context))
        result = await doomed.wait()
        assert trio.current_time() == 0.0
    assert (result.status, result.attempts) == (Status.CANCELLED, 0)


# -- limiters for many names ---------------------------------------------------------------


@bounded
async def test_limiters_of_names_that_can_no_longer_be_delayed_are_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """5,000 uniquely named paced jobs, one after another, leave no more than a sweep's worth of limiters."""
    async with WorkerPool(1) as pool:
        for index in range(5_000):
            pool.submit(Job(sleeper(0.01), name=f"job {index}", max_per_second=1_000))
    assert pool.statistics().succeeded == 5_000
    assert len(pool._job_rates) <= 65  # the limiters are private; their count is the point of this test


@bounded
async def test_a_limiter_still_pacing_survives_a_sweep(autojump_clock: trio.testing.MockClock) -> None:
    """A sweep made while a name's next start is still ahead keeps its limiter: its next job waits its turn."""
    async with WorkerPool(4) as pool:
        first = pool.submit(Job(noop, name="paced", max_per_second=1))
        await trio.sleep(0.5)
        for index in range(200):  # each limiter idle 0.01 s after its job starts at 0.5
            pool.submit(Job(noop, name=f"job {index}", max_per_second=100))
        await trio.sleep(0.25)
        for index in range(200, 400):  # these sweep away the first 200, not "paced"
            pool.submit(Job(noop, name=f"job {index}", max_per_second=100))
        await trio.testing.wait_all_tasks_blocked()  # the workers have started them all
        second = pool.submit(Job(noop, name="paced", max_per_second=1))
    assert [result_of(handle).started_at for handle in (first, second)] == [0.0, 1.0]
    assert len(pool._job_rates) < 401  # a sweep did run, and dropped only idle limiters
