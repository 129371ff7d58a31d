"""Plain tasks run in a worker process, which a deadline or a cancellation kills (``run_in="process"``).

A thread cannot be stopped: a plain task that overruns its deadline keeps its
worker until it returns. A job built with ``run_in="process"`` runs its task
in a process of trio-parallel's instead (an optional extra), through
``trio_parallel.run_sync(..., kill_on_cancel=True)``: the cancellation that a
deadline, ``handle.cancel()`` or ``stop(cancel_running=True)`` delivers kills
the process, and the worker is free as soon as it has died. The next call
finds a fresh process.

The job's call is then an async callable, a ``ProcessCall``, awaited on
trio's thread as an ``async def`` task is: the pool's worker, the attempt
engine and the middleware run it as they run any async task, so deadlines,
retries and cancellation need nothing of their own. The worker's slot is held
exactly while the call is awaited.

What crosses to the process is pickled here, not by trio-parallel, and what
comes back is unpickled here: a task, options, result or exception that does
not pickle then fails the job with an error naming it, rather than one that
could be the task's own. The task runs in the process with none of the trio
run: ``current_job()`` says so there.
"""

from __future__ import annotations

import inspect
import math
import pickle
import traceback
import types
from collections.abc import Callable, Mapping
from typing import Any, Final

import trio

from . import _current

__all__ = ["RUN_IN", "ProcessCall", "require_processes"]

RUN_IN: Final = ("thread", "process")
"""The values of ``run_in``."""

_INSTALL: Final = "run_in='process' needs trio-parallel: pip install 'workerpoolxt[process]'"

# How the task is called in the process (see _call.py).
_OPTIONS, _ARGS, _OPTIONS_AND_ARGS = 0, 1, 2

# What the process sends back, with its payload.
_RETURNED, _RAISED, _NOT_LOADED, _RESULT_NOT_PICKLED, _ERROR_NOT_PICKLED = range(5)


def require_processes() -> None:
    """Raise ImportError telling how to install trio-parallel, if it is not installed.

    Imported here, on first use, so that ``import workerpoolxt`` never loads it.
    """
    try:
        import trio_parallel  # noqa: F401
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc


def check_run_in(run_in: str | None, name: str) -> str | None:
    """Check a ``run_in`` value, and that processes can be used if it asks for them."""
    if run_in is None:
        return None
    if run_in not in RUN_IN:
        raise ValueError(f"`{name}` must be 'thread', 'process' or None, not {run_in!r}")
    if run_in == "process":
        require_processes()
    return run_in


_limiter: Final = trio.lowlevel.RunVar[trio.CapacityLimiter]("workerpoolxt processes")


def _no_limit() -> trio.CapacityLimiter:
    # The pool's workers bound the calls already; trio-parallel's default
    # limiter (one per CPU) would hold a worker's slot while it waits, with
    # no process working for it.
    try:
        return _limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(math.inf)
        _limiter.set(limiter)
        return limiter


class ProcessCall:
    """A plain task with its job's args, called with the options in a worker process; awaited as an async task."""

    __slots__ = ("args", "how", "name", "task")

    def __init__(self, task: Callable[..., Any], args: Mapping[str, Any], plain: bool, takes_options: bool, name: str):
        self.task = task
        self.args = dict(args)
        self.how = _OPTIONS if plain else _OPTIONS_AND_ARGS if takes_options else _ARGS
        self.name = name

    async def __call__(self, options: Mapping[str, Any]) -> Any:
        import trio_parallel  # loaded with the first process task, never by the import

        try:
            payload = pickle.dumps((self.task, self.how, dict(options), self.args), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"job {self.name!r}: its task or options could not be pickled to run in a process ({exc}); "
                "a task run in a process must be importable at module level"
            ) from exc
        kind, data = await trio_parallel.run_sync(_run_pickled, payload, kill_on_cancel=True, limiter=_no_limit())
        if kind in (_RETURNED, _RAISED):
            try:
                value = pickle.loads(data)  # noqa: S301  # what our own worker process sent
            except Exception as exc:
                what = "result" if kind == _RETURNED else "error"
                raise TypeError(
                    f"job {self.name!r}: its {what} could not be unpickled from its process ({exc})"
                ) from exc
            if kind == _RAISED:
                raise value
            return value
        if kind == _NOT_LOADED:
            raise TypeError(
                f"job {self.name!r}: its task could not be loaded in its process ({data}); "
                "a task run in a process must be importable at module level"
            )
        if kind == _RESULT_NOT_PICKLED:
            raise TypeError(f"job {self.name!r}: its result could not be pickled to leave its process ({data})")
        raise RuntimeError(f"job {self.name!r} raised, in its process, an error that does not pickle: {data}")


def _run_pickled(payload: bytes) -> tuple[int, Any]:
    """Run a pickled call, in the worker process, and return how it went, pickled."""
    try:
        task, how, options, args = pickle.loads(payload)  # noqa: S301  # what the pool's process sent
    except Exception as exc:
        return _NOT_LOADED, f"{type(exc).__name__}: {exc}"
    _current.in_process = True
    # The process is the boundary: SystemExit or KeyboardInterrupt from the
    # task would otherwise come back raised in the pool's worker.
    try:
        options = types.MappingProxyType(options)
        if how == _OPTIONS:
            value = task(options)
        elif how == _ARGS:
            value = task(**args)
        else:
            value = task(options, **args)
        if inspect.iscoroutine(value):
            value.close()  # no "never awaited" warning
            raise TypeError(
                f"{getattr(task, '__qualname__', task)!r} is a plain function but returned a coroutine; "
                "an async def task cannot run in a process"
            )
    except BaseException as exc:
        text = "".join(traceback.format_exception(exc))
        if isinstance(exc, Exception):
            exc.add_note(f"Raised in the job's process:\n{text}")
            try:
                return _RAISED, pickle.dumps(exc, pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: S110
                pass
        return _ERROR_NOT_PICKLED, f"{type(exc).__qualname__}: {exc}\n{text}"
    try:
        return _RETURNED, pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return _RESULT_NOT_PICKLED, f"{type(value).__name__}: {exc}"
