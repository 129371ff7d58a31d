"""Fixtures shared by the test modules."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing


@pytest.fixture
def virtual_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the examples' own ``trio.run`` use an autojump clock, so they finish at once."""
    monkeypatch.setattr(trio, "run", functools.partial(trio.run, clock=trio.testing.MockClock(autojump_threshold=0)))
