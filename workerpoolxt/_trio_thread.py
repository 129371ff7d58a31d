"""Calls that plain (thread-run) tasks may make back into the pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")


def in_trio_thread(function: Callable[[], T], call: str) -> T:
    """Return ``function()``, run on trio's thread even when called from a thread.

    A plain task runs in a thread that trio started, and it may submit, cancel
    a handle or cancel a Context like any async task. Those calls touch trio's
    scheduler, which only trio's own thread may do, so they are handed over.

    Args:
        function: What to run on trio's thread.
        call: The public call being made, such as ``"pool.submit()"``, for the error.

    Raises:
        RuntimeError: Called from a thread that trio did not start.
    """
    if trio.lowlevel.in_trio_run():
        return function()
    # trio.from_thread finds the run only from threads trio started; from any
    # other its error speaks of a `trio_token` keyword that our calls lack.
    if not _started_by_trio():
        raise RuntimeError(
            f"{call} was called from a thread that trio did not start, so it cannot reach the pool's trio run; "
            "make the call through trio instead: trio.from_thread.run_sync(<the call>, trio_token=token), "
            "with the token that trio.lowlevel.current_trio_token() gives inside the run"
        )
    return trio.from_thread.run_sync(function)


def _started_by_trio() -> bool:
    """Whether this thread was started by ``trio.to_thread``, so ``trio.from_thread`` finds the run."""
    try:
        trio.from_thread.check_cancelled()
    except RuntimeError:
        return False
    except trio.Cancelled:  # started by trio, and its task was cancelled meanwhile
        return True
    return True
