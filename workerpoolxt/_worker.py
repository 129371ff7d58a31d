"""The execution path: one worker task runs one job at a time.

A worker runs its jobs inside a long-lived cancel scope (an "epoch") instead of
opening a scope per job, because entering and leaving a scope costs more than a
trio checkpoint. A job with a deadline sets the epoch's deadline while it runs;
cancelling a job (its handle, its Context, an immediate stop) cancels the epoch.
Once an epoch has been cancelled the worker records why, then opens a new one
for the next job, so a cancellation never reaches a job it was not meant for.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, cast

import trio

from ._current import JobContext, running_entry, running_worker
from ._errors import JobCancelledError, JobTimeoutError
from ._job import EMPTY_OPTIONS
from ._result import Status

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._context import Context
    from ._handle import JobHandle
    from ._job import Job, Options
    from ._middleware import Middleware
    from ._pool import WorkerPool


_EVERYTHING = (Exception,)

# How long a worker may run jobs back to back before it takes a schedule point.
_FAIRNESS_INTERVAL = 0.001

_STALE_CALL_NEXT = "call_next() was called after its attempt had ended"


class _ThreadSlot:
    """Stands in for trio's limiter in ``to_thread.run_sync`` to see a thread's life.

    trio calls ``acquire_on_behalf_of`` just before it starts the thread and
    ``release_on_behalf_of`` once the thread has returned, even when the waiting
    task was cancelled and abandoned it. That tells the worker both whether a
    thread was started at all and when it ends, so it can hold its slot for
    exactly as long as the thread runs.
    """

    __slots__ = ("returned", "started")

    def __init__(self) -> None:
        self.started = False
        self.returned = trio.Event()

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        self.started = True

    def release_on_behalf_of(self, borrower: object) -> None:
        self.returned.set()


class Worker:
    """One of a pool's fixed worker tasks."""

    scope: trio.CancelScope  # the current epoch, opened by run()

    __slots__ = (
        "attempts",
        "context",
        "current",
        "deadline",
        "handed",
        "job_context",
        "last_error",
        "live_attempt",
        "middleware",
        "options",
        "pool",
        "scope",
        "started_at",
        "task",
        "thread",
        "turn",
        "wake_abort",
    )

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        # State of the job in hand, read when a cancellation interrupts it.
        self.current: JobHandle[Any] | None = None
        self.context: Context | None = None
        self.deadline = math.inf
        # None while a job waits for its rate-limited turn: it has not started.
        self.started_at: float | None = 0.0
        self.attempts = 0
        self.last_error: Exception | None = None
        self.options: Options = EMPTY_OPTIONS
        self.middleware: tuple[Middleware, ...] = ()
        # Made by current_job() on first use, so jobs that never ask cost nothing.
        self.job_context: JobContext | None = None
        # The attempt running through middleware now, or 0: what a call_next() checks it belongs to.
        self.live_attempt = 0
        # A thread that outlived its job (timed out or cancelled): the worker
        # starts nothing else until it returns.
        self.thread: _ThreadSlot | None = None
        # While idle: the trio task to wake, and the job handed to it (None to look again).
        self.task: trio.lowlevel.Task | None = None
        self.handed: JobHandle[Any] | None = None
        self.wake_abort = self._abort_idle  # made once: the idle wait is on the per-job path
        # The start booked with the job's rate limiter, if it has one.
        self.turn: float | None = None

    async def run(self) -> None:
        running_worker.set(self)
        self.task = trio.lowlevel.current_task()
        try:
            while True:
                with trio.CancelScope() as scope:
                    self.scope = scope
                    if await self._serve(scope):
                        return
                if self.current is not None:
                    self._finish_interrupted(self.current)
                    self._forget()
                    if self.thread is not None:
                        await self._wait_for_thread()
                    self.pool._release_slot()
        except BaseException as exc:
            # KeyboardInterrupt, SystemExit or an outer cancellation: the job in
            # hand still gets its one Result before the exception goes on. A
            # BaseException that arrived while the job ran (its task raised it,
            # or trio delivered a Ctrl-C there) fails the job with that very
            # exception, so a durable store records the attempt it ended; an
            # outer cancellation cancels it. Under a cancellation the worker
            # still waits for the job's thread, so no thread outlives the pool;
            # for anything harsher it does not.
            entry = self.current
            if entry is not None:
                if isinstance(exc, trio.Cancelled):
                    self._finish_cancelled(entry, entry._cancel_reason or "its pool was cancelled from outside")
                else:
                    self.current = None
                    self.pool._finish(entry, Status.FAILED, None, exc, self.attempts, self.started_at)
                self._forget()
                if self.thread is not None and isinstance(exc, trio.Cancelled):
                    await self._wait_for_thread()
                self.pool._release_slot()
            raise

    async def _serve(self, scope: trio.CancelScope) -> bool:
        """Run jobs in this epoch until it is cancelled (False) or the pool closes (True)."""
        pool = self.pool
        clock = pool._clock
        yielded_at = clock.current_time()
        entry: JobHandle[Any] | None = None
        while True:
            # Leave at once under an outer cancellation, before taking a job
            # that could then only be cancelled; a job handed over while this
            # worker idled and cancelled since ends here, never started.
            await trio.lowlevel.checkpoint_if_cancelled()
            if entry is None:
                entry = pool._take()
                if entry is None:
                    if pool._closed:
                        return True
                    # The last job's deadline must not fire while this worker idles.
                    if scope.deadline != math.inf:
                        scope.deadline = math.inf
                    entry = await self._idle()
                    yielded_at = clock.current_time()
                    continue
            finished_at = await self._execute(entry)
            entry = None
            if self.thread is not None:
                await self._wait_for_thread()
            pool._release_slot()
            if scope.cancel_called:
                return False
            # A task that never awaits would let this loop run job after job
            # without a schedule point and starve every other task. A trio
            # channel would yield on every receive; yielding once a worker has
            # held the loop for a millisecond bounds the starvation at a
            # fraction of the cost.
            if finished_at - yielded_at >= _FAIRNESS_INTERVAL:
                await trio.lowlevel.cancel_shielded_checkpoint()
                yielded_at = finished_at

    async def _idle(self) -> JobHandle[Any] | None:
        """Wait, parked in the pool's idle list, for a job handed over (or None: look again)."""
        self.pool._idle_workers.append(self)
        await trio.lowlevel.wait_task_rescheduled(self.wake_abort)
        entry, self.handed = self.handed, None
        return entry

    def _abort_idle(self, raise_cancel: object) -> trio.lowlevel.Abort:
        # Cancelled while idle: no job may be handed to this worker any more.
        self.pool._idle_workers.remove(self)
        return trio.lowlevel.Abort.SUCCEEDED

    def hand_over(self, entry: JobHandle[Any] | None) -> None:
        """Wake this idle worker with ``entry`` to run (the pool counted it running), or None to look again.

        The job is this worker's from now: until the worker runs, a
        cancellation finds it here as a job that has not started.
        """
        if entry is not None:
            self.turn = self._book(entry)
            self.current = entry
            self.attempts = 0
            self.started_at = None
            entry._scope = self.scope
        self.handed = entry
        assert self.task is not None
        trio.lowlevel.reschedule(self.task)

    def _book(self, entry: JobHandle[Any]) -> float | None:
        """Book the start of a job assigned to this worker with its rate limiter; None if it has none.

        Starts are booked as jobs are assigned, which is in queue order: a
        worker books the job it takes before anything else can run, and a job
        is handed to an idle worker only when none is queued ahead of it.
        """
        pool = self.pool
        job = entry._job
        assert job is not None
        if pool._rate is None and job.max_per_second is None:
            return None
        limiter = pool._rate_for(job)
        assert limiter is not None
        return limiter.reserve(pool._clock.current_time())

    def _forget(self) -> None:
        """Drop what the worker held of its last job, so nothing of it outlives its Result."""
        self.current = None
        self.context = None
        self.options = EMPTY_OPTIONS
        self.job_context = None
        self.last_error = None
        self.turn = None  # booked for a job cancelled before it ran: left unused

    async def _wait_for_thread(self) -> None:
        """Hold the slot until the thread a job left behind has returned."""
        assert self.thread is not None
        with trio.CancelScope(shield=True):
            await self.thread.returned.wait()
        self.thread = None

    async def _execute(self, entry: JobHandle[Any]) -> float:
        """Run one job to its Result and return the time it finished."""
        pool = self.pool
        job = entry._job
        assert job is not None
        turn = self.turn  # booked when the job was handed over
        if turn is None and (pool._rate is not None or job.max_per_second is not None):
            turn = self._book(entry)
        if turn is not None:
            self.turn = None
            await self._wait_for_turn(entry, job, turn)
        context = job.context if job.context is not None else pool._context
        now = pool._clock.current_time()
        deadline = math.inf
        if context is not None:
            if context.cancelled:
                entry._scope = self.current = None  # set if the job was handed over
                cancelled = JobCancelledError(name=job.name, reason="its Context was cancelled")
                return pool._finish(entry, Status.CANCELLED, None, cancelled, 0, None)
            deadline = context._deadline
            if deadline <= now:
                entry._scope = self.current = None
                expired = JobTimeoutError(name=job.name, deadline=deadline)
                return pool._finish(entry, Status.TIMED_OUT, None, expired, 0, None)
        timeout = job.timeout if job.timeout is not None else pool._timeout
        if timeout is not None and now + timeout < deadline:
            deadline = now + timeout
        options = job.options if job.options is not None else pool._options
        retries = job.retry if job.retry is not None else pool._retry
        middleware = pool._middleware + job.middleware if job.middleware else pool._middleware
        self.current = entry
        self.context = context
        self.deadline = deadline
        self.started_at = now
        self.last_error = None
        self.options = options
        self.middleware = middleware
        self.job_context = None
        running_entry.set(entry)
        scope = self.scope
        entry._scope = scope
        if scope.deadline != deadline:
            scope.deadline = deadline
        if context is not None:
            context._attach(scope)
        attempts = 0
        error: Exception | None
        try:
            while True:
                if self.thread is not None:
                    # The thread of an attempt that timed out still runs. Wait
                    # for it before the next attempt, outside that attempt's
                    # own limit, so a worker never runs two threads at once.
                    await self.thread.returned.wait()
                    self.thread = None
                attempts += 1
                self.attempts = attempts
                if self.job_context is not None:
                    self.job_context.code = None
                try:
                    if middleware:
                        job_context = self.job_context
                        if job_context is None:
                            job_context = self.job_context = JobContext(self, entry, job)
                        job_context._attempt_timeout = job.attempt_timeout
                        self.live_attempt = attempts
                        try:
                            data = await self._through_middleware(job_context, attempts, 0)
                        finally:
                            self.live_attempt = 0
                    elif job.attempt_timeout is not None:
                        data = await self._attempt_within(job, options, job.attempt_timeout)
                    elif job.is_async:
                        data = await job.task(options)  # type: ignore[operator]  # submit() resolved names
                    else:
                        data = await self._call_in_thread(job, options)
                except Exception as exc:  # user code: contained, never BaseException
                    self.last_error = exc
                    if attempts > retries or not isinstance(exc, job.retry_on or _EVERYTHING):
                        status = Status.TIMED_OUT if isinstance(exc, JobTimeoutError) else Status.FAILED
                        data, error = None, exc
                        break
                else:
                    status, error = Status.SUCCEEDED, None
                    break
                backoff = job.backoff if job.backoff is not None else pool._backoff
                delay = backoff.delay(attempts)
                if delay > 0:
                    # The epoch's deadline cuts this sleep short, and the job times out.
                    await trio.sleep(delay)
                if pool._clock.current_time() >= deadline:
                    status, data, error = Status.TIMED_OUT, None, self._timeout_error(entry.name)
                    break
            ended_at = None
            if deadline != math.inf:
                ended_at = pool._clock.current_time()
                if ended_at > deadline and status is not Status.TIMED_OUT:
                    # The task blocked past its deadline without a checkpoint, so
                    # no cancellation could reach it, then ended. It is as late as
                    # a thread that outlived its deadline, and ends the same way.
                    late = JobTimeoutError(name=job.name, deadline=deadline)
                    late.__cause__ = error
                    status, data, error = Status.TIMED_OUT, None, late
        finally:
            entry._scope = None
            if context is not None:
                context._detach(scope)
        # The task's own code counts when the task itself ended the job.
        job_context = self.job_context
        code = None if job_context is None or status is Status.TIMED_OUT else job_context.code
        # Nothing of the job may outlive its Result (as _forget(), inline on the per-job path).
        self.current = self.context = self.job_context = self.last_error = None
        self.options = EMPTY_OPTIONS
        return pool._finish(entry, status, data, error, attempts, now, code, ended_at)

    async def _wait_for_turn(self, entry: JobHandle[Any], job: Job[Any], start: float) -> None:
        """Hold ``entry`` until ``start``, the start its rate limiter booked, cancellable as a running job.

        A job cancelled while it waits does not hand its booking on: the jobs
        booked after it keep their times.
        """
        if start <= self.pool._clock.current_time():
            return
        context = job.context if job.context is not None else self.pool._context
        if context is not None and context.cancelled:
            return  # _execute() ends it now
        # A cancellation while waiting finds the job through these, as if it ran.
        self.current = entry
        self.context = context
        self.attempts = 0
        self.last_error = None
        self.started_at = None
        scope = entry._scope = self.scope
        # The previous job's deadline must not fire on this one while it waits.
        scope.deadline = math.inf
        if context is not None:
            context._attach(scope)
        try:
            await trio.sleep_until(start)
        finally:
            entry._scope = None
            if context is not None:
                context._detach(scope)
        # _execute() may still end the job without running it (its Context
        # expired meanwhile); nothing must then take it for the running job.
        self.current = None

    # Each call_next() is bound to its job's run and attempt: one kept and
    # called later must not run whatever job the worker holds by then. Both
    # steps of the chain check it (inline: this is the per-attempt path).

    async def _through_middleware(self, job_context: JobContext, attempt: int, index: int) -> Any:
        """Run the job's middleware from ``index`` inward, and the attempt inside them."""
        if self.job_context is not job_context or self.live_attempt != attempt:
            raise RuntimeError(_STALE_CALL_NEXT)
        middleware = self.middleware
        if index + 1 == len(middleware):
            call_next: Callable[[], Any] = functools.partial(self._run_attempt, job_context, attempt)
        else:
            call_next = functools.partial(self._through_middleware, job_context, attempt, index + 1)
        return await middleware[index](job_context, call_next)

    async def _run_attempt(self, job_context: JobContext, attempt: int) -> Any:
        """The innermost ``call_next()``: one attempt of the task, within its bound."""
        if self.job_context is not job_context or self.live_attempt != attempt:
            raise RuntimeError(_STALE_CALL_NEXT)
        job = job_context._job
        seconds = job_context._attempt_timeout
        if seconds is not None:
            return await self._attempt_within(job, self.options, seconds)
        if job.is_async:
            return await job.task(self.options)  # type: ignore[operator]  # submit() resolved names
        return await self._call_in_thread(job, self.options)

    async def _attempt_within(self, job: Job[Any], options: Options, seconds: float) -> Any:
        attempt_deadline = trio.current_time() + seconds
        with trio.CancelScope(deadline=attempt_deadline):
            if job.is_async:
                data = await job.task(options)  # type: ignore[operator]  # submit() resolved names
            else:
                data = await self._call_in_thread(job, options)
            # A task that blocked past the bound without a checkpoint ends late, not well.
            if trio.current_time() <= attempt_deadline:
                return data
        # Reached when the scope swallowed the cancellation, or the task came back late.
        raise JobTimeoutError(name=job.name, deadline=attempt_deadline)

    async def _call_in_thread(self, job: Job[Any], options: Options) -> Any:
        slot = _ThreadSlot()
        try:
            return await trio.to_thread.run_sync(
                cast("Callable[[Options], Any]", job.task),  # submit() resolved names
                options,
                abandon_on_cancel=True,
                limiter=cast("trio.CapacityLimiter", slot),
            )
        finally:
            if slot.started and not slot.returned.is_set():
                self.thread = slot

    def _timeout_error(self, name: str) -> JobTimeoutError:
        error = JobTimeoutError(name=name, deadline=self.deadline)
        error.__cause__ = self.last_error
        return error

    def _finish_cancelled(self, entry: JobHandle[Any], reason: str) -> None:
        error = JobCancelledError(name=entry.name, reason=reason)
        error.__cause__ = self.last_error
        self.current = None
        self.pool._finish(entry, Status.CANCELLED, None, error, self.attempts, self.started_at)

    def _finish_interrupted(self, entry: JobHandle[Any]) -> None:
        """Record the job that the epoch's cancellation stopped: cancelled, or out of time."""
        reason = entry._cancel_reason
        if reason is None and self.context is not None and self.context.cancelled:
            reason = "its Context was cancelled"
        if reason is not None:
            self._finish_cancelled(entry, reason)
            return
        self.current = None
        self.pool._finish(
            entry, Status.TIMED_OUT, None, self._timeout_error(entry.name), self.attempts, self.started_at
        )
