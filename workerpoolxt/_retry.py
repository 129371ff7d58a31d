"""How long to wait between attempts."""

from __future__ import annotations

import math
import random

import attrs

from ._validation import number

__all__ = ["Backoff"]


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    # Finite too: an infinite wait would hang a retried job with no deadline,
    # and 0 * inf makes a NaN delay.
    if not 0 <= number(value, attribute.name) < math.inf:
        raise ValueError(f"`{attribute.name}` must be non-negative and finite, got {value!r}")


@attrs.frozen
class Backoff:
    """Exponential backoff with jitter between a job's attempts.

    The wait before retry ``n`` (1 for the first retry) is
    ``initial * multiplier ** (n - 1)``, scaled by a random factor in
    ``[1 - jitter, 1 + jitter]`` and then capped at ``max``.

    Args:
        initial: The first wait, in seconds.
        multiplier: Growth per retry, at least 1.
        max: The longest wait, applied after jitter.
        jitter: The relative spread, between 0 and 1; 0.5 means ±50 %.

    Every value must be finite, so no wait is endless.

    The default, ``Backoff()``, waits 0.5 s, growing by a factor of 1.5 with ±50 % jitter up to 60 s.
    A job's own deadline always cuts a wait short.
    """

    initial: float = attrs.field(default=0.5, validator=_non_negative)
    multiplier: float = attrs.field(default=1.5, validator=_non_negative)
    max: float = attrs.field(default=60.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.5, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.multiplier < 1:
            raise ValueError(f"`multiplier` must be at least 1, got {self.multiplier!r}")
        if self.jitter > 1:
            raise ValueError(f"`jitter` must be between 0 and 1, got {self.jitter!r}")

    @classmethod
    def none(cls) -> Backoff:
        """Retry at once, with no wait."""
        return cls(initial=0.0, multiplier=1.0, max=0.0, jitter=0.0)

    def delay(self, retry: int) -> float:
        """Return the wait in seconds before retry number ``retry`` (counting from 1)."""
        try:
            base = self.initial * self.multiplier ** (retry - 1)
        except OverflowError:  # a long series outgrows floats long after it reached `max`
            base = math.inf if self.initial else 0.0
        if self.jitter:
            base *= 1.0 + random.uniform(-self.jitter, self.jitter)  # noqa: S311 - timing jitter, not crypto
        return min(base, self.max)
