"""Argument checks shared by the public constructors.

Every message names the parameter, so a mistake is found where it was made
rather than deep inside a worker.
"""

from __future__ import annotations

import datetime
import math

Seconds = float | int | datetime.timedelta


def _as_seconds(value: object, name: str) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"`{name}` must be a number of seconds or a timedelta, not {type(value).__name__}")


def to_seconds(value: Seconds, name: str) -> float:
    """Return ``value`` as float seconds; it must be finite and positive."""
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


def optional_seconds(value: Seconds | None, name: str) -> float | None:
    return None if value is None else to_seconds(value, name)


def count(value: object, name: str, *, minimum: int) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}")
    return value


def rate(value: object, name: str) -> float:
    """Return ``value`` as a float rate per second; it must be finite and positive."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a number of jobs per second, not {type(value).__name__}")
    if not 0 < value < math.inf:
        raise ValueError(f"`{name}` must be positive and finite, got {value!r}")
    return float(value)
