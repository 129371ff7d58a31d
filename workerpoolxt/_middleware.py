"""Middleware: code that wraps every attempt of a job, in the manner of ASGI.

A middleware is ``async def mw(job, call_next)``. ``job`` is the running job's
``RunningJob`` (what ``current_job()`` returns) and ``await call_next()`` runs
the rest of the chain and then the task, returning the task's value. Whatever
the outermost middleware returns is the attempt's value; whatever it raises is
the attempt's error, retried and reported like a task's own.

The pool's middleware wraps the job's, and within each list the first listed is
outermost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

import trio

from ._errors import JobTimeoutError
from ._util import is_async_callable
from ._validation import Seconds, to_seconds

if TYPE_CHECKING:
    from ._current import RunningJob

__all__ = ["CallNext", "Middleware", "attempt_timeout", "summary_log"]

CallNext = Callable[[], Awaitable[Any]]
"""What a middleware awaits to run the rest of the chain and the task."""

Middleware = Callable[["RunningJob", CallNext], Awaitable[Any]]
"""``async def mw(job: RunningJob, call_next: CallNext) -> Any``."""

NO_MIDDLEWARE: Final[tuple[Middleware, ...]] = ()

_logger: Final = logging.getLogger("workerpoolxt")


def freeze_middleware(middleware: Iterable[Middleware] | None, name: str) -> tuple[Middleware, ...]:
    """Check ``middleware`` is a sequence of async callables and return it as a tuple."""
    if middleware is None:
        return NO_MIDDLEWARE
    if callable(middleware) or isinstance(middleware, str | bytes) or not isinstance(middleware, Iterable):
        raise TypeError(f"`{name}` must be a list of middleware, not a single {type(middleware).__name__}")
    frozen = tuple(middleware)
    for index, item in enumerate(frozen):
        if not callable(item):
            raise TypeError(f"`{name}[{index}]` must be an async callable, not {type(item).__name__}")
        if not is_async_callable(item):
            raise TypeError(f"`{name}[{index}]` must be an `async def` callable taking (job, call_next), got {item!r}")
    return frozen


def summary_log(
    logger: logging.Logger | None = None,
    *,
    log_successes: bool = True,
    log_nothing_to_do: bool = True,
) -> Middleware:
    """Return a middleware that logs one summary line per attempt.

    The line gives the job's name, status code, latency, attempt and job id,
    also as the record's ``job_name``, ``job_id``, ``attempt``, ``status``
    (succeeded, failed, timed_out or cancelled), ``code`` and ``duration``
    attributes for structured handlers. Successes (2xx, and 444,
    "nothing to do") log at INFO, everything else at WARNING. A timeout logs
    408 and a cancellation 499, whatever code the task had set. A job that
    makes one attempt, which is most of them, logs one line.

    Args:
        logger: Where to log; defaults to the ``workerpoolxt`` logger.
        log_successes: False drops the lines of successful attempts, 444 included.
        log_nothing_to_do: False drops the lines of 444 attempts only.
    """
    if logger is not None and not isinstance(logger, logging.Logger):
        raise TypeError(f"`logger` must be a logging.Logger or None, not {type(logger).__name__}")
    for flag, value in (("log_successes", log_successes), ("log_nothing_to_do", log_nothing_to_do)):
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be a bool, not {type(value).__name__}")
    log = _logger if logger is None else logger

    async def summary_log(job: RunningJob, call_next: CallNext) -> Any:
        started = trio.current_time()
        try:
            value = await call_next()
        except BaseException as exc:
            _write(log, job, _failure_code(job, exc), trio.current_time() - started, exc)
            raise
        code = 200 if job.code is None else job.code
        if _is_success(code) and not (log_successes and (log_nothing_to_do or code != 444)):
            return value
        _write(log, job, code, trio.current_time() - started, None)
        return value

    return summary_log


def _is_success(code: int) -> bool:
    return 200 <= code < 300 or code == 444


def _failure_code(job: RunningJob, exc: BaseException) -> int:
    # A timeout or a cancellation overrides any code the task set, as in the Result.
    if isinstance(exc, JobTimeoutError):
        return 408
    if isinstance(exc, trio.Cancelled):
        # The job's own deadline cancels it as a timeout; anything else is a withdrawal.
        return 408 if trio.current_time() >= job.deadline else 499
    return 500 if job.code is None else job.code


def _attempt_status(code: int, error: BaseException | None) -> str:
    """How the attempt ended, in the words of ``Status``."""
    if error is None:
        return "succeeded"
    if code == 408:
        return "timed_out"
    if code == 499:
        return "cancelled"
    return "failed"


def _write(log: logging.Logger, job: RunningJob, code: int, duration: float, error: BaseException | None) -> None:
    level = logging.INFO if _is_success(code) else logging.WARNING
    if not log.isEnabledFor(level):
        return
    outcome = "" if error is None else f": {type(error).__name__}: {error}"
    log.log(
        level,
        "job %r %d in %.3fs, attempt %d, job_id %d%s",
        job.name,
        code,
        duration,
        job.attempt,
        job.job_id,
        outcome,
        extra={
            "job_name": job.name,
            "job_id": job.job_id,
            "attempt": job.attempt,
            "status": _attempt_status(code, error),
            "code": code,
            "duration": duration,
        },
    )


def attempt_timeout(seconds: Seconds | Callable[[RunningJob], Seconds | None]) -> Middleware:
    """Return a middleware that sets the bound on each attempt it wraps.

    It replaces the job's own ``attempt_timeout`` (longer or shorter) for the
    attempts it wraps. ``seconds`` may be a callable that picks the bound per
    attempt from the ``RunningJob``, for example a longer one for later
    attempts; returning None lifts the bound. An attempt that outlives the
    bound fails with ``JobTimeoutError`` and is retried like any error. The
    job's overall ``timeout`` and Context still apply.
    """
    if callable(seconds):
        choose = seconds
    else:
        fixed = to_seconds(seconds, "seconds")

        def choose(job: RunningJob) -> Seconds | None:
            return fixed

    async def attempt_timeout(job: RunningJob, call_next: CallNext) -> Any:
        chosen = choose(job)
        job.attempt_timeout = None if chosen is None else to_seconds(chosen, "attempt_timeout")
        return await call_next()

    return attempt_timeout
