"""Health reports: is a pool or a supervisor fit to take work?

A pool judges itself by its recent error ratio, in go-work's two ways: over
its last N jobs, or over the jobs that finished in the last T seconds. Too few
jobs to judge by count as healthy, so one early failure does not fail a
readiness probe. As in go-work, a task that sets a 5xx or 408 code and returns
is an error too.
"""

from __future__ import annotations

import collections
from typing import Final

import attrs

from ._result import Status
from ._validation import Seconds, count, to_seconds

__all__ = ["Health", "HealthPolicy"]

_ERRORS: Final = frozenset((Status.FAILED, Status.TIMED_OUT))
_SUCCEEDED: Final = Status.SUCCEEDED


@attrs.frozen
class Health:
    """A health report: healthy or not, and why not."""

    healthy: bool
    reasons: tuple[str, ...] = ()


def _ratio(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"`{attribute.name}` must be a number, not {type(value).__name__}")
    if not 0 <= value < 1:
        raise ValueError(f"`{attribute.name}` must be at least 0 and below 1, got {value!r}")


@attrs.frozen(init=False)
class HealthPolicy:
    """How a pool judges its health from the jobs that finished.

    A pool is unhealthy when more than ``max_error_ratio`` of the jobs judged
    ended in error, once at least ``min_jobs`` are there to judge. The jobs
    judged are the ``last`` N to finish, or, given ``window``, those that
    finished in the last ``window`` seconds.

    A job ended in error if it failed or timed out, whatever its code, or if
    its task returned with a 5xx or 408 code (``current_job().code = 503``).
    Cancelled and abandoned jobs are never errors, although their codes are
    499 and 503: they were withdrawn (by a handle, a Context or a stop), so
    they say nothing of how the work fares.

    Raises:
        TypeError, ValueError: An argument is invalid; the message names it.
    """

    max_error_ratio: float = attrs.field(validator=_ratio)
    min_jobs: int
    last: int | None
    window: float | None

    def __init__(
        self,
        *,
        max_error_ratio: float = 0.25,
        min_jobs: int = 3,
        last: int | None = None,
        window: Seconds | None = None,
    ) -> None:
        if last is not None and window is not None:
            raise ValueError("give `last` or `window`, not both")
        self.__attrs_init__(
            max_error_ratio,
            count(min_jobs, "min_jobs", minimum=1),
            None if last is None and window is not None else count(100 if last is None else last, "last", minimum=1),
            None if window is None else to_seconds(window, "window"),
        )


class HealthTracker:
    """The recent outcomes a pool keeps to judge its health."""

    __slots__ = ("_errors", "_times", "policy")

    def __init__(self, policy: HealthPolicy) -> None:
        self.policy = policy
        self._errors: collections.deque[bool] = collections.deque(maxlen=policy.last)
        # Finish times, kept only when judging by `window`.
        self._times: collections.deque[float] = collections.deque()

    def record(self, status: Status, code: int, now: float) -> None:
        # Called for every job: the common case, a success with its own code, decided in two comparisons.
        if status is _SUCCEEDED:
            self._errors.append(code >= 500 or code == 408)
        else:
            self._errors.append(status in _ERRORS)
        if self.policy.window is not None:
            self._times.append(now)
            self._forget_before(now)  # so memory stays bounded even if no one asks

    def _forget_before(self, now: float) -> None:
        assert self.policy.window is not None
        times, errors = self._times, self._errors
        while times and times[0] <= now - self.policy.window:
            times.popleft()
            errors.popleft()

    def judge(self, now: float) -> tuple[int, int]:
        """Return (jobs judged, errors among them)."""
        if self.policy.window is not None:
            self._forget_before(now)
        return len(self._errors), sum(self._errors)

    def health(self, now: float) -> Health:
        judged, errors = self.judge(now)
        policy = self.policy
        if judged < policy.min_jobs or errors / judged <= policy.max_error_ratio:
            return Health(True)
        scope = f"the last {judged} jobs" if policy.window is None else f"{judged} jobs in the last {policy.window:g}s"
        return Health(False, (f"{errors} of {scope} ended in error, over {policy.max_error_ratio:.0%}",))
