"""Start-rate limiting with the generic cell rate algorithm (GCRA).

GCRA keeps one number, the theoretical arrival time (TAT): the earliest time
the next start conforms. Each start at ``t`` moves it to ``max(TAT, t) + T``,
where ``T = 1 / rate``. With no burst allowance, as here, that spaces starts at
least ``T`` apart and exactly ``T`` apart under load, so a test under trio's
``MockClock`` sees exact times. See https://en.wikipedia.org/wiki/Generic_cell_rate_algorithm
(the "virtual scheduling" form).
"""

from __future__ import annotations

__all__ = ["Gcra"]


class Gcra:
    """A start-rate limiter for one stream of jobs."""

    __slots__ = ("interval", "theoretical_arrival")

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.theoretical_arrival = -float("inf")

    def reserve(self, now: float) -> float:
        """Claim the next start and return its time, ``now`` or later.

        Claiming is synchronous, so workers that ask in turn get successive
        slots without racing each other.
        """
        start = max(now, self.theoretical_arrival)
        self.theoretical_arrival = start + self.interval
        return start
