"""The attempt engine's retry policy: the one answer to "is this failure retried, and after how long"."""

from __future__ import annotations

import pytest

from workerpoolxt import Backoff
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
