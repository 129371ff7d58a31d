"""The attempt engine: an attempt within its bound, then retries with backoff until the deadline.

Everything in the package that retries goes through here: a pool's jobs (each
worker owns an engine), the steps of a ``chain()``, a Supervisor's services,
and the durable worker, whose retries wait in the store for the delay that
``RetryPolicy.delay_after()`` gives. No other module asks a ``Backoff`` for a
delay, so there is one answer to "is this failure retried, and when".

What a caller brings is the deadline's enforcement: a pool worker runs its
jobs in a cancel scope whose deadline it sets per job, a step opens its own.
The engine checks the deadline where no cancellation can: after a backoff
wait, and after an attempt that blocked past it without a checkpoint (a late
answer is a timeout, not a success).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import trio

from ._errors import JobTimeoutError
from ._retry import Backoff
from ._trio_thread import ThreadCall, run_in_thread

__all__ = ["Attempts", "RetryPolicy"]

EVERYTHING: Final[tuple[type[Exception], ...]] = (Exception,)
_INF: Final = math.inf


@attrs.frozen
class RetryPolicy:
    """Which failures are retried, how often, and after how long.

    ``retry`` counts retries, so up to ``retry + 1`` attempts: the one word
    for it everywhere in the package (jobs, steps, services, durable tasks).
    """

    retry: int
    backoff: Backoff | None
    """None retries at once."""
    retry_on: tuple[type[BaseException], ...] = EVERYTHING
    attempt_timeout: float | None = None
    """The bound on each attempt; an attempt that outlives it fails with ``JobTimeoutError``."""

    def delay_after(self, attempt: int, error: BaseException) -> float | None:
        """The wait before the next attempt once attempt ``attempt`` (from 1) failed with ``error``; None: no retry."""
        if attempt > self.retry or not isinstance(error, self.retry_on):
            return None
        return 0.0 if self.backoff is None else self.backoff.delay(attempt)


class Attempts:
    """Runs the attempts of one piece of work at a time, and remembers how the last run went.

    A pool worker keeps one for all its jobs; a step makes one per run. What it
    remembers (the attempt under way, the last error, a thread that outlived
    its attempt) is what a caller reads when a cancellation interrupts a run.
    """

    __slots__ = ("attempt", "clock", "ended_at", "last_error", "thread")

    def __init__(self, clock: trio.abc.Clock) -> None:
        self.clock = clock
        self.attempt = 0
        """The attempt under way, or the last one made, from 1; 0 before the first."""
        self.last_error: BaseException | None = None
        """The error of the last failed attempt, the cause of a timeout that follows it."""
        self.thread: trio.Event | None = None
        """Set when the thread an attempt abandoned (it outlived its bound or was cancelled) returns."""
        self.ended_at: float | None = None
        """When the last run ended, if the engine read the clock to check it was not late."""

    async def run(
        self,
        policy: RetryPolicy,
        deadline: float,
        name: str,
        task: Callable[[Any], Any],
        argument: Any,
        is_async: bool,
        through: Callable[[int], Awaitable[Any]] | None = None,
        before_retry: Callable[[int, Exception, float], object] | None = None,
    ) -> Any:
        """Attempt ``task(argument)`` until it succeeds, a failure is not retried, or ``deadline`` passes.

        Args:
            policy: What is retried, how often and after how long, and the bound on each attempt.
            deadline: When the run is out of time, on the trio clock (``math.inf`` for never).
                The caller's cancel scope enforces it during attempts.
            name: What a timeout names.
            task: An ``async def`` function, or a plain one that runs in a thread.
            argument: What ``task`` is called with.
            is_async: Whether ``task`` is an ``async def`` function.
            through: If given, called with the attempt's number to make each
                attempt (middleware, hooks), and expected to reach ``attempt_once()``.
            before_retry: Called with the attempt's number, its error and the wait, before the wait.

        Returns:
            What the successful attempt returned.

        Raises:
            Exception: The last attempt's error, when it is not retried.
            JobTimeoutError: The deadline passed during a wait, or the last
                attempt ended past it; its ``__cause__`` is the last error.
        """
        if self.thread is not None:  # left by the last run: see after_failure()
            await self.thread.wait()
            self.thread = None
        self.attempt = 1
        self.last_error = None
        self.ended_at = None
        try:
            if through is not None:
                value = await through(1)
            else:
                value = await self.attempt_once(task, argument, is_async, policy.attempt_timeout, name)
        except Exception as exc:  # user code: contained, never BaseException
            return await self.after_failure(
                policy, deadline, name, task, argument, is_async, through, exc, before_retry
            )
        self.check_late(deadline, name, None)
        return value

    async def after_failure(
        self,
        policy: RetryPolicy,
        deadline: float,
        name: str,
        task: Callable[[Any], Any],
        argument: Any,
        is_async: bool,
        through: Callable[[int], Awaitable[Any]] | None,
        error: Exception,
        before_retry: Callable[[int, Exception, float], object] | None = None,
    ) -> Any:
        """Go on with a run whose attempt ``self.attempt`` failed with ``error``: retry it, or raise.

        ``run()`` comes here after a failed attempt; a caller that made the
        first attempt itself (the pool's worker does, to spare a coroutine per
        job) comes here in the same way, so every retry decision is made in
        this one place.
        Takes and returns as ``run()`` does.
        """
        attempt_timeout = policy.attempt_timeout
        while True:
            self.last_error = error
            delay = policy.delay_after(self.attempt, error)
            if delay is None:
                self.check_late(deadline, name, error)
                raise error
            if before_retry is not None:
                before_retry(self.attempt, error, delay)
            # A checkpoint even with no delay, so a run failing at once cannot starve other tasks.
            await trio.sleep(delay)
            if self.clock.current_time() >= deadline:
                raise self.timeout_error(name, deadline) from None
            if self.thread is not None:
                # The thread of an attempt that timed out still runs. Wait for
                # it before the next attempt, outside that attempt's own bound,
                # so one run never has two threads at once.
                await self.thread.wait()
                self.thread = None
            self.attempt += 1
            try:
                if through is not None:
                    value = await through(self.attempt)
                else:
                    value = await self.attempt_once(task, argument, is_async, attempt_timeout, name)
            except Exception as exc:  # user code: contained, never BaseException
                error = exc
                continue
            self.check_late(deadline, name, None)
            return value

    def check_late(self, deadline: float, name: str, error: Exception | None) -> None:
        """Raise a timeout if the attempt just ended came back past ``deadline``.

        A task that blocks past its deadline without a checkpoint cannot be
        cancelled, then ends: it is as late as a thread that outlived its
        deadline, and ends the same way.
        """
        if deadline == _INF:
            return
        self.ended_at = now = self.clock.current_time()
        if now > deadline:
            late = JobTimeoutError(name=name, deadline=deadline)
            raise late from error

    def timeout_error(self, name: str, deadline: float) -> JobTimeoutError:
        """The error of a run out of time: its cause is the last attempt's error."""
        error = JobTimeoutError(name=name, deadline=deadline)
        error.__cause__ = self.last_error
        return error

    async def attempt_once(
        self, task: Callable[[Any], Any], argument: Any, is_async: bool, attempt_timeout: float | None, name: str
    ) -> Any:
        """One attempt of ``task(argument)`` within ``attempt_timeout``, in a thread for a plain ``task``."""
        if attempt_timeout is not None:
            return await self.attempt_within(task, argument, is_async, attempt_timeout, name)
        if is_async:
            return await task(argument)
        return await self.in_thread(task, argument)

    async def attempt_within(
        self, task: Callable[[Any], Any], argument: Any, is_async: bool, seconds: float, name: str
    ) -> Any:
        attempt_deadline = trio.current_time() + seconds
        with trio.CancelScope(deadline=attempt_deadline):
            if is_async:
                value = await task(argument)
            else:
                value = await self.in_thread(task, argument)
            # A task that blocked past the bound without a checkpoint ends late, not well.
            if trio.current_time() <= attempt_deadline:
                return value
        # Reached when the scope swallowed the cancellation, or the task came back late.
        raise JobTimeoutError(name=name, deadline=attempt_deadline)

    async def in_thread(self, task: Callable[[Any], Any], argument: Any) -> Any:
        """Run a plain ``task(argument)`` in a thread that a cancellation abandons, and keep track of it."""
        call = ThreadCall(task, argument)
        try:
            return await run_in_thread(call)
        finally:
            # Abandoned and still running: whoever runs the attempts holds its
            # slot until the thread returns (wait_for_thread()).
            if call.returned is not None and not call.returned.is_set():
                self.thread = call.returned

    async def wait_for_thread(self) -> None:
        """Hold on, whatever cancels us, until the thread an attempt left behind has returned."""
        assert self.thread is not None
        with trio.CancelScope(shield=True):
            await self.thread.wait()
        self.thread = None
