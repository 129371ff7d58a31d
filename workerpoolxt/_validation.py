"""Argument checks shared by the public constructors.

Every message names the parameter, so a mistake is found where it was made
rather than deep inside a worker.
"""

from __future__ import annotations

import datetime
import math
from typing import Final

Seconds = float | int | datetime.timedelta

MAX_WORKERS: Final = 100_000
"""The most workers a pool may have: each is a trio task, started when the pool is entered."""


def number(value: object, name: str, what: str = "a number") -> float:
    """Return ``value``, an int or float (not a bool), as a float.

    An int too large for a float (``10**400``) is refused here, naming the
    parameter, rather than failing later with a bare ``OverflowError``.
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be {what}, not {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"`{name}` must be finite, got an int of {int(value).bit_length()} bits") from None


def _as_seconds(value: object, name: str) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return number(value, name, "a number of seconds or a timedelta")


def to_seconds(value: Seconds, name: str) -> float:
    """Return ``value`` as float seconds; it must be finite and positive."""
    kind = type(value)
    # The common case, a Job's timeout of some seconds: no more to check.
    if (kind is float or kind is int) and 0 < value < 1e18:  # type: ignore[operator]  # int or float, just checked
        return float(value)  # type: ignore[arg-type]  # likewise
    seconds = _as_seconds(value, name)
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"`{name}` must be positive and finite, got {value!r}")
    return seconds


def non_negative_seconds(value: object, name: str) -> float:
    """Return ``value`` as float seconds; it must be finite and zero or more."""
    seconds = _as_seconds(value, name)
    if not 0 <= seconds < math.inf:
        raise ValueError(f"`{name}` must be non-negative and finite, got {value!r}")
    return seconds


def finite_seconds(value: object, name: str) -> float:
    """Return ``value`` as float seconds; it must be finite, and may be zero or negative."""
    seconds = _as_seconds(value, name)
    if not math.isfinite(seconds):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    return seconds


def optional_seconds(value: Seconds | None, name: str) -> float | None:
    return None if value is None else to_seconds(value, name)


def count(value: object, name: str, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum`` and at most ``maximum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be at most {maximum:,}, got {value if value < 10**30 else 'a larger int'}")
    return value


def flag(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool: ``"no"`` or ``0`` for a flag is a mistake, not false."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, not {type(value).__name__}")
    return value


def rate(value: object, name: str) -> float:
    """Return ``value`` as a float rate per second; it must be finite and positive."""
    per_second = number(value, name, "a number of jobs per second")
    if not 0 < per_second < math.inf:
        raise ValueError(f"`{name}` must be positive and finite, got {value!r}")
    return per_second
