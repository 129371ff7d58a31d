"""Calls that plain (thread-run) tasks may make back into the pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")


def in_trio_thread(function: Callable[[], T]) -> T:
    """Return ``function()``, run on trio's thread even when called from a worker thread.

    A plain task runs in a thread that trio started, and it may submit, cancel
    a handle or cancel a Context like any async task. Those calls touch trio's
    scheduler, which only trio's own thread may do, so they are handed over.

    Raises:
        RuntimeError: Called from a thread that trio did not start.
    """
    if trio.lowlevel.in_trio_run():
        return function()
    return trio.from_thread.run_sync(function)
