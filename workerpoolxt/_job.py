"""A unit of work and how it may run."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar, overload

import attrs

from ._context import Context
from ._middleware import NO_MIDDLEWARE, Middleware, freeze_middleware
from ._retry import Backoff
from ._serialize import EMPTY_ARGS, freeze_args, job_from_dict, job_to_dict
from ._util import is_async_callable, task_name
from ._validation import Seconds, count, rate, to_seconds

__all__ = ["Job", "Options"]

T = TypeVar("T")

Options = Mapping[str, Any]
"""The read-only mapping a task receives."""

Task = Callable[[Options], Awaitable[T]] | Callable[[Options], T]

EMPTY_OPTIONS: Options = types.MappingProxyType({})


def freeze_options(options: Mapping[str, Any] | None, name: str) -> Options | None:
    """Copy ``options`` into a read-only mapping, so later edits by the caller don't leak in."""
    if options is None:
        return None
    if type(options) is dict:  # the common case, spared the slower Mapping check
        return types.MappingProxyType(options.copy())
    if not isinstance(options, Mapping):
        raise TypeError(f"`{name}` must be a mapping or None, not {type(options).__name__}")
    return types.MappingProxyType(dict(options))


def retry_on_classes(value: type[Exception] | tuple[type[Exception], ...] | None) -> tuple[type[Exception], ...] | None:
    if value is None:
        return None
    classes = value if isinstance(value, tuple) else (value,)
    if not classes:
        raise ValueError("`retry_on` must name at least one exception class; use retry=0 to never retry")
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"`retry_on` must be an Exception subclass or a tuple of them, got {cls!r}")
    return classes


@attrs.frozen(init=False)
class Job(Generic[T]):
    """A task to run in a pool, with its name, limits and retry policy.

    The task is called as ``await task(options)``; a plain function runs in a
    thread instead. Fields left as None take the pool's default, and a
    job's ``options`` or ``context`` *replace* the pool's: they are never merged.

    Args:
        task: An ``async def`` function, or a plain function to run in a thread.
            It receives one argument, the effective read-only options. Or the
            name of a handler in the pool's ``Registry``.
        name: Defaults to the task's ``__name__``.
        context: A ``Context`` whose deadline and cancellation apply to the job.
        options: A mapping handed to the task, copied read-only at construction.
        args: JSON-compatible arguments, checked and copied at construction, and
            read by the task as ``current_job().args``.
        retry: Retries after a failed attempt, so up to ``retry + 1`` attempts.
        timeout: The job's budget in seconds from its first start, covering
            every attempt and backoff wait.
        attempt_timeout: A bound on each attempt. An attempt that outlives it
            fails with ``JobTimeoutError``, which is retried like any error.
        backoff: The wait between attempts.
        retry_on: The exception class or classes worth retrying; others end the
            job at once. Defaults to ``Exception``.
        middleware: Async callables wrapping each attempt, inside the pool's
            middleware; the first listed is outermost.
        max_per_second: Start jobs of this name at most this often, spaced
            evenly, in place of the pool's ``max_per_second``.

    Raises:
        TypeError, ValueError: A field has a wrong type or value; the message names it.
    """

    task: Task[T] | str
    name: str
    context: Context | None
    options: Options | None
    args: Mapping[str, Any] = attrs.field(hash=False)
    retry: int | None
    timeout: float | None
    attempt_timeout: float | None
    backoff: Backoff | None
    retry_on: tuple[type[Exception], ...] | None
    middleware: tuple[Middleware, ...] = attrs.field(repr=False)
    max_per_second: float | None
    is_async: bool = attrs.field(repr=False, eq=False)
    """True when the task is an ``async def`` function; otherwise it runs in a thread."""

    @overload
    def __init__(
        self: Job[Any],
        task: str,
        *,
        name: str | None = None,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        retry: int | None = None,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        middleware: Iterable[Middleware] | None = None,
        max_per_second: float | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        task: Callable[[Options], Awaitable[T]],
        *,
        name: str | None = None,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        retry: int | None = None,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        middleware: Iterable[Middleware] | None = None,
        max_per_second: float | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        task: Callable[[Options], T],
        *,
        name: str | None = None,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        retry: int | None = None,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        middleware: Iterable[Middleware] | None = None,
        max_per_second: float | None = None,
    ) -> None: ...

    def __init__(
        self,
        task: Task[T] | str,
        *,
        name: str | None = None,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        retry: int | None = None,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        middleware: Iterable[Middleware] | None = None,
        max_per_second: float | None = None,
    ) -> None:
        if isinstance(task, str):
            if not task:
                raise ValueError("`task` must name a handler, not be empty")
        elif not callable(task):
            raise TypeError(f"`task` must be callable or a handler's name, not {type(task).__name__}")
        if name is None and isinstance(task, str):
            name = task
        elif name is None:
            name = task_name(task)
        elif not isinstance(name, str):
            raise TypeError(f"`name` must be a str or None, not {type(name).__name__}")
        if context is not None and not isinstance(context, Context):
            raise TypeError(f"`context` must be a Context or None, not {type(context).__name__}")
        if retry is not None:
            count(retry, "retry", minimum=0)
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"`backoff` must be a Backoff or None, not {type(backoff).__name__}")
        # The None checks spare the common job four calls: Job() is on the hot path.
        self.__attrs_init__(
            task,
            name,
            context,
            None if options is None else freeze_options(options, "options"),
            EMPTY_ARGS if args is None else freeze_args(args),
            retry,
            None if timeout is None else to_seconds(timeout, "timeout"),
            None if attempt_timeout is None else to_seconds(attempt_timeout, "attempt_timeout"),
            backoff,
            None if retry_on is None else retry_on_classes(retry_on),
            NO_MIDDLEWARE if middleware is None else freeze_middleware(middleware, "middleware"),
            None if max_per_second is None else rate(max_per_second, "max_per_second"),
            not isinstance(task, str) and is_async_callable(task),
        )

    def _with_task(self, task: Callable[..., Any]) -> Job[Any]:
        """This job with its handler name replaced by the handler, already checked."""
        job: Job[Any] = object.__new__(Job)
        job.__attrs_init__(
            task,
            self.name,
            self.context,
            self.options,
            self.args,
            self.retry,
            self.timeout,
            self.attempt_timeout,
            self.backoff,
            self.retry_on,
            self.middleware,
            self.max_per_second,
            is_async_callable(task),
        )
        return job

    def to_dict(self) -> dict[str, Any]:
        """Describe this named job as JSON-compatible data.

        Only jobs naming a handler convert, and only with no ``options``,
        ``context`` or ``retry_on``, which are not data. ``Job.from_dict()`` gives
        back an equal Job.

        Raises:
            TypeError: The job holds a callable rather than a handler's name.
            ValueError: A field that is not data is set.
        """
        return job_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job[Any]:
        """Build the named job that ``to_dict()`` described."""
        return job_from_dict(cls, data)
