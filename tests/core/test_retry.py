"""Tests for retries, ``attempt_timeout`` and ``Backoff``."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

import workerpoolxt as wpxt
from workerpoolxt import Backoff, Status

NO_WAIT = Backoff.none()


class Flaky:
    """An async task that fails ``failures`` times, then returns "done"; it records every attempt."""

    def __init__(self, failures: float = math.inf, *, work: float = 0.0, error: type[Exception] = ValueError) -> None:
        self.failures = failures
        self.work = work
        self.error = error
        self.starts: list[float] = []
        self.raised: list[Exception] = []

    async def __call__(self, options: Any) -> str:
        self.starts.append(trio.current_time())
        if self.work:
            await trio.sleep(self.work)
        if len(self.starts) <= self.failures:
            error = self.error(f"attempt {len(self.starts)}")
            self.raised.append(error)
            raise error
        return "done"


async def run_one(job: wpxt.Job[Any], **pool_kwargs: Any) -> wpxt.Result[Any]:
    async with wpxt.WorkerPool(1, **pool_kwargs) as pool:
        return await pool.submit_wait(job)


# -- retry counts and errors ----------------------------------------------------


@pytest.mark.parametrize("retry", [0, 1, 4])
async def test_retry_n_means_n_plus_one_attempts(autojump_clock: trio.testing.MockClock, retry: int) -> None:
    """A job that always fails makes retry + 1 attempts and ends FAILED."""
    task = Flaky()
    result = await run_one(wpxt.Job(task, retry=retry, backoff=NO_WAIT))
    assert result.status is Status.FAILED
    assert result.attempts == retry + 1
    assert len(task.starts) == retry + 1


async def test_error_is_the_last_exception_object(autojump_clock: trio.testing.MockClock) -> None:
    """When retries run out, `error` is the very exception object the last attempt raised."""
    task = Flaky()
    result = await run_one(wpxt.Job(task, name="flaky", retry=2, backoff=NO_WAIT))
    assert len(task.raised) == 3
    assert result.error is task.raised[-1]
    assert result.name == "flaky"
    with pytest.raises(ValueError, match="attempt 3") as excinfo:
        result.unwrap()
    assert excinfo.value is task.raised[-1]


async def test_success_on_third_attempt(autojump_clock: trio.testing.MockClock) -> None:
    """A job failing twice and then succeeding ends SUCCEEDED after 3 attempts."""
    task = Flaky(failures=2)
    result = await run_one(wpxt.Job(task, retry=5, backoff=NO_WAIT))
    assert result.status is Status.SUCCEEDED
    assert result.data == "done"
    assert result.error is None
    assert result.attempts == 3


async def test_pool_retry_default(autojump_clock: trio.testing.MockClock) -> None:
    """A job that sets no retry uses the pool's retry."""
    task = Flaky()
    result = await run_one(wpxt.Job(task, backoff=NO_WAIT), retry=2)
    assert result.attempts == 3


async def test_job_retry_overrides_pool(autojump_clock: trio.testing.MockClock) -> None:
    """A job's retry=0 wins over the pool's retry."""
    task = Flaky()
    result = await run_one(wpxt.Job(task, retry=0, backoff=NO_WAIT), retry=5)
    assert result.attempts == 1


async def test_no_retry_by_default(autojump_clock: trio.testing.MockClock) -> None:
    """Without a retry anywhere, a failing job makes one attempt."""
    task = Flaky()
    result = await run_one(wpxt.Job(task))
    assert result.status is Status.FAILED
    assert result.attempts == 1


async def test_retry_on_non_matching_error_ends_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """An error that retry_on does not match ends the job after one attempt."""
    task = Flaky(error=KeyError)
    result = await run_one(wpxt.Job(task, retry=5, backoff=NO_WAIT, retry_on=ValueError))
    assert result.status is Status.FAILED
    assert result.attempts == 1
    assert result.error is task.raised[0]


async def test_retry_on_matching_error_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    """An error matching one class of a retry_on tuple is retried."""
    task = Flaky(failures=2, error=KeyError)
    result = await run_one(wpxt.Job(task, retry=5, backoff=NO_WAIT, retry_on=(ValueError, LookupError)))
    assert result.status is Status.SUCCEEDED
    assert result.attempts == 3


# -- the pool waits between attempts ---------------------------------------------


async def test_backoff_attempt_times(autojump_clock: trio.testing.MockClock) -> None:
    """With Backoff(initial=1, multiplier=2, jitter=0), attempts start at 0, 1, 3 and 7."""
    task = Flaky(failures=3)
    job = wpxt.Job(task, retry=3, backoff=Backoff(initial=1, multiplier=2, jitter=0))
    result = await run_one(job)
    assert task.starts == [0.0, 1.0, 3.0, 7.0]
    assert result.status is Status.SUCCEEDED
    assert result.attempts == 4
    assert result.duration == 7.0


async def test_pool_backoff_default(autojump_clock: trio.testing.MockClock) -> None:
    """A job that sets no backoff waits as the pool's backoff says."""
    task = Flaky()
    result = await run_one(wpxt.Job(task, retry=2), backoff=Backoff(initial=2, multiplier=1, jitter=0))
    assert task.starts == [0.0, 2.0, 4.0]
    assert result.duration == 4.0


async def test_job_backoff_overrides_pool(autojump_clock: trio.testing.MockClock) -> None:
    """A job's own backoff wins over the pool's."""
    task = Flaky()
    job = wpxt.Job(task, retry=2, backoff=Backoff(initial=0.5, multiplier=1, jitter=0))
    await run_one(job, backoff=Backoff(initial=2, multiplier=1, jitter=0))
    assert task.starts == [0.0, 0.5, 1.0]


async def test_default_backoff_in_pool(autojump_clock: trio.testing.MockClock) -> None:
    """Without any backoff set, the first retry waits 0.5 s ±50 %."""
    task = Flaky()
    await run_one(wpxt.Job(task, retry=1))
    assert len(task.starts) == 2
    assert 0.25 <= task.starts[1] <= 0.75


async def test_backoff_none_retries_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """Backoff.none() starts every attempt without waiting."""
    task = Flaky(work=0.5)
    await run_one(wpxt.Job(task, retry=3, backoff=NO_WAIT))
    assert task.starts == [0.0, 0.5, 1.0, 1.5]


# -- timeout beats retry ---------------------------------------------------------


async def test_job_timeout_covers_all_attempts(autojump_clock: trio.testing.MockClock) -> None:
    """The job timeout counts from the first start across attempts; no attempt starts after it."""
    task = Flaky(work=1)
    job = wpxt.Job(task, name="budget", retry=10, timeout=2.5, backoff=Backoff(initial=0.25, multiplier=1, jitter=0))
    result = await run_one(job)
    # Attempts start at 0, 1.25 and 2.5 would be too late: the third is cut at the deadline.
    assert task.starts == [0.0, 1.25]
    assert all(start < 2.5 for start in task.starts)
    assert result.status is Status.TIMED_OUT
    assert result.name == "budget"
    assert result.attempts == 2
    assert result.finished_at == 2.5
    assert result.duration == 2.5
    assert isinstance(result.error, wpxt.JobTimeoutError)
    assert result.error.name == "budget"
    assert result.error.deadline == 2.5
    assert result.error.__cause__ is task.raised[-1]


async def test_backoff_sleep_cut_short_by_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """A backoff wait running past the deadline is cut short there, and no attempt follows."""
    task = Flaky(work=1)
    job = wpxt.Job(task, name="cut", retry=5, timeout=2.5, backoff=Backoff(initial=4, jitter=0))
    async with wpxt.WorkerPool(1) as pool:
        result = await pool.submit_wait(job)
        assert trio.current_time() == 2.5
    assert task.starts == [0.0]
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 1
    assert result.finished_at == 2.5
    assert isinstance(result.error, wpxt.JobTimeoutError)
    assert result.error.deadline == 2.5
    assert result.error.__cause__ is task.raised[0]


async def test_timeout_ending_immediate_retries(autojump_clock: trio.testing.MockClock) -> None:
    """With no backoff wait, a failing attempt reaching the deadline still ends TIMED_OUT, not FAILED."""
    task = Flaky(work=1)
    result = await run_one(wpxt.Job(task, retry=10, timeout=3, backoff=NO_WAIT))
    assert task.starts == [0.0, 1.0, 2.0]
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 3
    assert result.finished_at == 3.0


async def test_pool_timeout_default_covers_retries(autojump_clock: trio.testing.MockClock) -> None:
    """The pool's timeout applies to a job that sets none, across its retries."""
    task = Flaky(work=1)
    result = await run_one(wpxt.Job(task, retry=10, backoff=NO_WAIT), timeout=1.5)
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 2
    assert result.finished_at == 1.5


async def test_context_deadline_beats_retry(autojump_clock: trio.testing.MockClock) -> None:
    """A context deadline also stops retries, keeping the last error as the cause."""
    task = Flaky(work=1)
    result = await run_one(wpxt.Job(task, retry=10, backoff=NO_WAIT, context=wpxt.Context(timeout=2.5)))
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 3
    assert result.finished_at == 2.5
    assert isinstance(result.error, wpxt.JobTimeoutError)
    assert result.error.__cause__ is task.raised[-1]


# -- attempt_timeout --------------------------------------------------------------


async def test_attempt_timeout_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    """An attempt outliving attempt_timeout is cancelled and retried; a later attempt can succeed."""
    starts: list[float] = []
    finished: list[int] = []

    async def slow_then_fast(options: Any) -> str:
        starts.append(trio.current_time())
        attempt = len(starts)
        await trio.sleep(10 if attempt == 1 else 0.5)
        finished.append(attempt)
        return f"attempt {attempt}"

    result = await run_one(wpxt.Job(slow_then_fast, retry=1, attempt_timeout=1, backoff=NO_WAIT))
    assert starts == [0.0, 1.0]
    assert finished == [2]
    assert result.status is Status.SUCCEEDED
    assert result.data == "attempt 2"
    assert result.attempts == 2
    assert result.duration == 1.5


async def test_attempt_timeout_error_is_job_timeout_error(autojump_clock: trio.testing.MockClock) -> None:
    """Each attempt cut by attempt_timeout fails with a JobTimeoutError; the last gives TIMED_OUT."""
    task = Flaky(work=10)
    result = await run_one(wpxt.Job(task, name="each", retry=1, attempt_timeout=1, backoff=NO_WAIT))
    assert task.starts == [0.0, 1.0]
    assert task.raised == []
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 2
    assert result.finished_at == 2.0
    assert isinstance(result.error, wpxt.JobTimeoutError)
    assert result.error.name == "each"
    assert result.error.deadline == 2.0


async def test_attempt_timeout_not_retried_unless_matched(autojump_clock: trio.testing.MockClock) -> None:
    """With retry_on=ValueError, an attempt's JobTimeoutError is not retried."""
    task = Flaky(work=10)
    result = await run_one(wpxt.Job(task, retry=5, attempt_timeout=1, retry_on=ValueError, backoff=NO_WAIT))
    assert task.starts == [0.0]
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 1
    assert result.finished_at == 1.0
    assert isinstance(result.error, wpxt.JobTimeoutError)


async def test_attempt_timeout_retried_with_timeout_error_in_retry_on(autojump_clock: trio.testing.MockClock) -> None:
    """retry_on=TimeoutError matches the JobTimeoutError of a slow attempt, so it is retried."""
    task = Flaky(work=10)
    result = await run_one(wpxt.Job(task, retry=2, attempt_timeout=1, retry_on=TimeoutError, backoff=NO_WAIT))
    assert task.starts == [0.0, 1.0, 2.0]
    assert result.attempts == 3


async def test_attempt_timeout_does_not_leave_attempt_running(autojump_clock: trio.testing.MockClock) -> None:
    """A timed-out attempt is really cancelled: code after its sleep never runs."""
    after: list[float] = []

    async def slow(options: Any) -> None:
        await trio.sleep(5)
        after.append(trio.current_time())

    async with wpxt.WorkerPool(1) as pool:
        pool.submit(wpxt.Job(slow, attempt_timeout=1))
    await trio.sleep(10)
    assert after == []


# -- Backoff -----------------------------------------------------------------------


def test_backoff_defaults() -> None:
    """Backoff() waits 0.5 s, growing by a factor of 1.5, capped at 60 s, with ±50 % jitter."""
    backoff = Backoff()
    assert backoff.initial == 0.5
    assert backoff.multiplier == 1.5
    assert backoff.max == 60
    assert backoff.jitter == 0.5


def test_backoff_without_jitter_is_exact() -> None:
    """Without jitter, delay(n) is initial * multiplier ** (n - 1)."""
    backoff = Backoff(jitter=0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [0.5, 0.75, 1.125, 1.6875]


def test_backoff_is_capped_at_max() -> None:
    """Without jitter, a delay beyond max is max."""
    backoff = Backoff(initial=1, multiplier=2, max=5, jitter=0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]


def test_backoff_jitter_spread() -> None:
    """With jitter, the delay stays within ±jitter of its base and reaches both sides."""
    backoff = Backoff(initial=1, multiplier=2, jitter=0.5)
    samples = [backoff.delay(2) for _ in range(2000)]
    assert all(1.0 <= sample <= 3.0 for sample in samples)
    assert any(sample < 2.0 for sample in samples)
    assert any(sample > 2.0 for sample in samples)
    assert min(samples) < 1.25
    assert max(samples) > 2.75


def test_backoff_cap_applies_after_jitter() -> None:
    """Jitter never lifts a delay above max, and a base beyond max always waits exactly max."""
    near = Backoff(initial=10, max=10, jitter=0.5)
    samples = [near.delay(1) for _ in range(1000)]
    assert all(sample <= 10 for sample in samples)
    assert any(sample < 10 for sample in samples)
    beyond = Backoff(initial=100, max=10, jitter=0.5)
    assert {beyond.delay(1) for _ in range(200)} == {10}


def test_backoff_none() -> None:
    """Backoff.none() never waits."""
    backoff = Backoff.none()
    assert [backoff.delay(n) for n in (1, 2, 10, 1000)] == [0, 0, 0, 0]


@pytest.mark.parametrize("retry", [10_000, 10**9])
def test_backoff_huge_retry_does_not_overflow(retry: int) -> None:
    """A retry number far past the cap returns max instead of overflowing."""
    assert Backoff(jitter=0).delay(retry) == 60
    assert Backoff(jitter=0.5).delay(retry) == 60
    assert Backoff(initial=0, jitter=0.5).delay(retry) == 0


@pytest.mark.parametrize(
    ("kwargs", "field", "error"),
    [
        ({"initial": -1}, "initial", ValueError),
        ({"multiplier": 0.5}, "multiplier", ValueError),
        ({"multiplier": -1}, "multiplier", ValueError),
        ({"max": -1}, "max", ValueError),
        ({"jitter": 1.5}, "jitter", ValueError),
        ({"jitter": -0.1}, "jitter", ValueError),
        ({"initial": math.nan}, "initial", ValueError),
        ({"initial": math.inf, "max": math.inf}, "initial", ValueError),
        ({"max": math.inf}, "max", ValueError),
        ({"multiplier": math.inf}, "multiplier", ValueError),
        ({"initial": 10**400}, "initial", ValueError),
        ({"initial": "1"}, "initial", TypeError),
        ({"multiplier": None}, "multiplier", TypeError),
        ({"max": True}, "max", TypeError),
        ({"jitter": "0.5"}, "jitter", TypeError),
    ],
)
def test_backoff_validation(kwargs: dict[str, Any], field: str, error: type[Exception]) -> None:
    """A bad Backoff argument is rejected with an error naming the field."""
    with pytest.raises(error, match=f"`{field}`"):
        Backoff(**kwargs)


def test_backoff_delay_is_never_nan_or_endless() -> None:
    """Every delay of every valid Backoff is a finite number, even from a zero start or a vast retry number."""
    for backoff in (Backoff(initial=0, multiplier=1e308, max=5), Backoff(initial=1e308, multiplier=1e308, max=1e308)):
        for retry in (1, 2, 3, 10**6):
            delay = backoff.delay(retry)
            assert math.isfinite(delay), (backoff, retry, delay)
