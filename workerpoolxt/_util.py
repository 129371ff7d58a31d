"""Small helpers the core shares: what a callable is and what it is called."""

from __future__ import annotations

import functools
import inspect
import types


def task_name(task: object) -> str:
    """The name a task goes by: its ``__name__``, looking inside partials."""
    while isinstance(task, functools.partial):
        task = task.func
    return getattr(task, "__name__", None) or type(task).__name__


def is_async_callable(task: object) -> bool:
    if type(task) is types.FunctionType:  # the common case, without inspect's unwrapping
        return bool(task.__code__.co_flags & inspect.CO_COROUTINE)
    while isinstance(task, functools.partial):
        task = task.func
    return inspect.iscoroutinefunction(task) or inspect.iscoroutinefunction(getattr(task, "__call__", None))  # noqa: B004
