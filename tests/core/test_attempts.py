"""The attempt engine's retry policy: the one answer to "is this failure retried, and after how long"."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from helpers import result_of

import workerpoolxt as wpxt
from workerpoolxt import Backoff, Job, WorkerPool
from workerpoolxt._attempts import RetryPolicy


@pytest.mark.parametrize(("attempt", "expected"), [(1, 2.0), (2, 4.0), (3, None)])
def test_a_policy_retries_up_to_retry_times_with_its_backoff(attempt: int, expected: float | None) -> None:
    """retry=2 allows attempts 1 and 2 to be retried, after the backoff's delay for each; attempt 3 is the last."""
    policy = RetryPolicy(2, Backoff(initial=2, multiplier=2, jitter=0))
    assert policy.delay_after(attempt, ValueError("x")) == expected


def test_a_policy_retries_only_what_retry_on_names() -> None:
    """An error outside retry_on is not retried, even with retries left."""
    policy = RetryPolicy(5, Backoff.none(), (KeyError,))
    assert policy.delay_after(1, KeyError("k")) == 0.0
    assert policy.delay_after(1, ValueError("v")) is None


def test_a_policy_without_backoff_retries_at_once() -> None:
    """No backoff means a restart at once: a delay of 0, not None."""
    assert RetryPolicy(1, None).delay_after(1, RuntimeError()) == 0.0


async def test_jobs_in_a_row_each_get_their_own_policy(autojump_clock: trio.testing.MockClock) -> None:
    """The pool reuses the last policy it made only for a job that asks for the same one."""

    async def fails(options: wpxt.Options) -> None:
        raise KeyError("always")

    none = Backoff.none()
    jobs = [
        Job(fails, retry=1, backoff=none),
        Job(fails, retry=1, backoff=Backoff.none()),  # an equal backoff: the same policy
        Job(fails, retry=3, backoff=none),
        Job(fails, retry=3, backoff=none, retry_on=ValueError),  # KeyError is not retried
        Job(fails, retry=3, backoff=none, attempt_timeout=5),
        Job(fails, retry=2, backoff=Backoff(initial=1, multiplier=1, jitter=0)),
    ]
    async with WorkerPool(1) as pool:
        handles = [pool.submit(job) for job in jobs]
    assert [result_of(handle).attempts for handle in handles] == [2, 2, 4, 1, 4, 3]
    assert trio.current_time() == 2.0  # the last job's two one-second waits
