"""The pool's workers: each worker task takes one job at a time and runs it to its Result.

A worker runs its jobs inside a long-lived cancel scope (an "epoch") instead of
opening a scope per job, because entering and leaving a scope costs more than a
trio checkpoint. A job with a deadline sets the epoch's deadline while it runs;
cancelling a job (its handle, its Context, an immediate stop) cancels the epoch.
Once an epoch has been cancelled the worker records why, then opens a new one
for the next job, so a cancellation never reaches a job it was not meant for.

The attempts themselves, their retries and backoff, are the attempt engine's
(``_attempts.py``): each worker owns one engine and runs every job through it.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import trio

from ._attempts import Attempts
from ._current import RunningJob, running_entry, running_worker
from ._errors import JobCancelledError, JobTimeoutError
from ._handle import new_handle
from ._job import EMPTY_OPTIONS
from ._observer import AttemptEnded, AttemptStarted, JobStarted, notify
from ._result import Status

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._context import Context
    from ._handle import Entry
    from ._job import Job, Options
    from ._middleware import Middleware
    from ._pool import WorkerPool


# How long a worker may run jobs back to back before it takes a schedule point.
_FAIRNESS_INTERVAL = 0.001

# Read once, not looked up per job.
_INF = math.inf
_SUCCEEDED, _FAILED, _TIMED_OUT = Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT

_STALE_CALL_NEXT = "call_next() was called after its attempt had ended"


class Worker:
    """One of a pool's fixed worker tasks."""

    scope: trio.CancelScope  # the current epoch, opened by run()

    __slots__ = (
        "context",
        "current",
        "deadline",
        "engine",
        "handed",
        "live_attempt",
        "middleware",
        "options",
        "pool",
        "running_job",
        "scope",
        "started_at",
        "task",
        "turn",
        "wake_abort",
    )

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.engine = Attempts(pool._clock)
        # State of the job in hand, read when a cancellation interrupts it.
        self.current: Entry | None = None
        self.context: Context | None = None
        self.deadline = math.inf
        # None while a job waits for its rate-limited turn: it has not started.
        self.started_at: float | None = 0.0
        self.options: Options = EMPTY_OPTIONS
        self.middleware: tuple[Middleware, ...] = ()
        # Made by current_job() or the middleware on first use, so jobs that never ask cost nothing.
        self.running_job: RunningJob | None = None
        # The attempt running through middleware now, or 0: what a call_next() checks it belongs to.
        self.live_attempt = 0
        # While idle: the trio task to wake, and the job handed to it (None to look again).
        self.task: trio.lowlevel.Task | None = None
        self.handed: Entry | None = None
        self.wake_abort = self._abort_idle  # made once: the idle wait is on the per-job path
        # The start booked with the job's rate limiter, if it has one.
        self.turn: float | None = None

    async def run(self) -> None:
        running_worker.set(self)
        self.task = trio.lowlevel.current_task()
        engine = self.engine
        try:
            while True:
                with trio.CancelScope() as scope:
                    self.scope = scope
                    await self._serve(scope)
                    return  # the pool closed; a cancelled epoch raises out of _serve() instead
                if self.current is not None:
                    self._end_interrupted(self.current)
                    self._forget()
                    if engine.thread is not None:
                        await engine.wait_for_thread()
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
                    self._end_cancelled(entry, self._cancel_reason(entry) or "its pool was cancelled from outside")
                else:
                    self.current = None
                    self.pool._record_result(entry, Status.FAILED, None, exc, engine.attempt, self.started_at)
                self._forget()
                if engine.thread is not None and isinstance(exc, trio.Cancelled):
                    await engine.wait_for_thread()
                self.pool._release_slot()
            raise

    async def _serve(self, scope: trio.CancelScope) -> None:
        """Run jobs in this epoch until the pool closes; its cancellation ends it with ``trio.Cancelled``."""
        pool = self.pool
        clock = pool._clock
        engine = self.engine
        yielded_at = clock.current_time()
        # The clock reading that ended the last job, while nothing has run
        # since: the next job's start, one reading and one float fewer per job.
        last_end: float | None = None
        # The epoch's deadline as this loop last set it: reading trio's
        # property costs more than the comparison it serves.
        epoch_deadline = scope.deadline
        entry: Entry | None = None
        while True:
            # Leave at once under an outer cancellation, before taking a job
            # that could then only be cancelled; a job handed over while this
            # worker idled and cancelled since ends here, never started. An
            # epoch cancelled for the last job (which returned all the same)
            # ends here too, so the next job starts in a fresh one.
            await trio.lowlevel.checkpoint_if_cancelled()
            if entry is None:
                entry = pool._take()
                if entry is None:
                    if pool._closed:
                        return
                    # The last job's deadline must not fire while this worker idles.
                    if epoch_deadline != _INF:
                        scope.deadline = epoch_deadline = _INF
                    entry = await self._idle()
                    yielded_at = clock.current_time()
                    last_end = None
                    continue
            job: Job[Any] = entry.value  # type: ignore[assignment]  # taken and handed entries have no Result
            if self.turn is not None or pool._rate is not None or job.max_per_second is not None:
                await self._wait_for_turn(entry, job)
                epoch_deadline = scope.deadline  # the wait may have lifted it
                last_end = None
            # From here to the Result, all inline: this is the per-job path, and
            # a method call per step would cost more than the step.
            context = job.context if job.context is not None else pool._context
            now = clock.current_time() if last_end is None else last_end
            deadline = _INF
            if context is not None and (context.cancelled or context._deadline <= now):
                finished_at = self._end_unstarted(entry, job, context, now)
            else:
                if context is not None:
                    deadline = context._deadline
                timeout = job.timeout if job.timeout is not None else pool._timeout
                if timeout is not None and now + timeout < deadline:
                    deadline = now + timeout
                # No retry settings of its own: the pool's policy.
                plain = (
                    job.retry is None and job.backoff is None and job.retry_on is None and job.attempt_timeout is None
                )
                policy = pool._policy if plain else pool._policy_for(job)
                options = self.options = job.options if job.options is not None else pool._options
                middleware = self.middleware = pool._middleware + job.middleware if job.middleware else pool._middleware
                self.current = entry
                pool._held[entry] = self
                self.context = context
                self.deadline = deadline
                self.started_at = now  # running_job is None: the last job's end, or _forget(), cleared it
                running_entry.set(entry)
                if epoch_deadline != deadline:
                    scope.deadline = epoch_deadline = deadline
                if context is not None:
                    context._attach(scope)
                observers = pool._observers
                if observers.job_started:
                    notify(observers.job_started, JobStarted(new_handle(entry), now), "as it started")
                status = _SUCCEEDED
                error: Exception | None = None
                through = (
                    self._observed if observers.around_attempts else self._through_middleware if middleware else None
                )
                turns = pool._turns = pool._turns + 1
                try:
                    # The engine's run, with its first attempt made here (as
                    # Attempts.run() makes it): a coroutine fewer per job. A
                    # failure goes back to the engine, which alone decides
                    # what is retried.
                    engine.attempt = 1  # last_error is None since the last job's end
                    engine.ended_at = None
                    try:
                        if through is not None:
                            data = await through(1)
                        elif job.is_async and job.attempt_timeout is None:
                            data = await job._call(options)
                        else:
                            data = await engine.attempt_once(
                                job._call,
                                options,
                                job.is_async,
                                job.attempt_timeout,
                                job.name,
                            )
                    except Exception as exc:
                        data = await engine.after_failure(
                            policy,
                            deadline,
                            job.name,
                            job._call,
                            options,
                            job.is_async,
                            through,
                            exc,
                        )
                    else:
                        if deadline != _INF:  # as engine.check_late(), inline: a job with a deadline takes this path
                            engine.ended_at = ended_at = clock.current_time()
                            if ended_at > deadline:
                                raise JobTimeoutError(name=job.name, deadline=deadline)
                except Exception as exc:  # the task's, contained; or a timeout
                    status = _TIMED_OUT if isinstance(exc, JobTimeoutError) else _FAILED
                    data, error = None, exc
                finally:
                    if context is not None:
                        context._detach(scope)
                # The task's own code counts when the task itself ended the job.
                running = self.running_job
                code = None if running is None or status is _TIMED_OUT else running.code
                # Nothing of the job may outlive its Result (as _forget(), inline).
                self.current = self.context = self.running_job = engine.last_error = None
                self.options = EMPTY_OPTIONS
                finished_at = pool._record_result(
                    entry, status, data, error, engine.attempt, now, code, engine.ended_at
                )
                # Another worker took a job meanwhile, so this one's job let
                # the others run: the loop was not held since it started.
                if pool._turns != turns:
                    yielded_at = finished_at
                # Nor may this frame keep any of it while the worker idles.
                del data, error, running, options, middleware, policy, through
            entry = None  # gone with its Result
            del job
            last_end = finished_at
            if engine.thread is not None:
                await engine.wait_for_thread()
                last_end = None
            pool._running -= 1  # as pool._release_slot(), inline
            if not pool._running:
                pool._none_running()
            # A task that never awaits would let this loop run job after job
            # without a schedule point and starve every other task. A trio
            # channel would yield on every receive; yielding once a worker has
            # held the loop for a millisecond bounds the starvation at a
            # fraction of the cost.
            if finished_at - yielded_at >= _FAIRNESS_INTERVAL:
                await trio.lowlevel.cancel_shielded_checkpoint()
                yielded_at = finished_at
                last_end = None

    async def _idle(self) -> Entry | None:
        """Wait, parked in the pool's idle list, for a job handed over (or None: look again)."""
        self.pool._idle_workers.append(self)
        await trio.lowlevel.wait_task_rescheduled(self.wake_abort)
        entry, self.handed = self.handed, None
        return entry

    def _abort_idle(self, raise_cancel: object) -> trio.lowlevel.Abort:
        # Cancelled while idle: no job may be handed to this worker any more.
        self.pool._idle_workers.remove(self)
        return trio.lowlevel.Abort.SUCCEEDED

    def hand_over(self, entry: Entry | None) -> None:
        """Wake this idle worker with ``entry`` to run (the pool counted it running), or None to look again.

        The job is this worker's from now: until the worker runs, a
        cancellation finds it here as a job that has not started.
        """
        if entry is not None:
            self.turn = self._book(entry)
            self._hold_unstarted(entry)
        self.handed = entry
        assert self.task is not None
        trio.lowlevel.reschedule(self.task)

    def _hold_unstarted(self, entry: Entry) -> None:
        """Take ``entry`` as the job in hand before it starts, so a cancellation finds it with no attempt made."""
        self.current = entry
        self.pool._held[entry] = self
        self.engine.attempt = 0
        self.engine.last_error = None
        self.started_at = None

    def _book(self, entry: Entry) -> float | None:
        """Book the start of a job assigned to this worker with its rate limiter; None if it has none.

        Starts are booked as jobs are assigned, which is in queue order: a
        worker books the job it takes before anything else can run, and a job
        is handed to an idle worker only when none is queued ahead of it.
        """
        pool = self.pool
        job = entry.job
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
        self.running_job = None
        self.engine.last_error = None
        self.turn = None  # booked for a job cancelled before it ran: left unused

    def _end_unstarted(self, entry: Entry, job: Job[Any], context: Context, now: float) -> float:
        """Record the Result of a job whose Context was cancelled or out of time before it could start."""
        self.current = None  # set if the job was handed over
        if context.cancelled:
            cancelled = JobCancelledError(name=job.name, reason="its Context was cancelled")
            return self.pool._record_result(entry, Status.CANCELLED, None, cancelled, 0, None, None, now)
        expired = JobTimeoutError(name=job.name, deadline=context._deadline)
        return self.pool._record_result(entry, Status.TIMED_OUT, None, expired, 0, None, None, now)

    async def _wait_for_turn(self, entry: Entry, job: Job[Any]) -> None:
        """Hold ``entry`` until the start its rate limiter booked, cancellable as a running job.

        A job cancelled while it waits does not hand its booking on: the jobs
        booked after it keep their times.
        """
        start = self.turn  # booked when the job was handed over
        self.turn = None
        if start is None:
            start = self._book(entry)
        if start is None or start <= self.pool._clock.current_time():
            return
        context = job.context if job.context is not None else self.pool._context
        if context is not None and context.cancelled:
            return  # _serve() ends it now
        # A cancellation while waiting finds the job through these, as if it ran.
        self._hold_unstarted(entry)
        self.context = context
        scope = self.scope
        # The previous job's deadline must not fire on this one while it waits.
        scope.deadline = math.inf
        if context is not None:
            context._attach(scope)
        try:
            await trio.sleep_until(start)
        finally:
            if context is not None:
                context._detach(scope)
        # _serve() may still end the job without running it (its Context
        # expired meanwhile); nothing must then take it for the running job.
        self.current = None

    # -- one attempt, through the observers' hooks and the middleware -----------------

    async def _observed(self, attempt: int) -> Any:
        """Make attempt ``attempt`` of the job in hand between the observers' hooks, as the engine's ``through``."""
        entry = self.current
        assert entry is not None
        job = entry.job
        assert job is not None
        handle = new_handle(entry)
        observers = self.pool._observers
        # The observers told of the start are the ones told of the end.
        started, ended = observers.attempt_started, observers.attempt_ended
        if started:
            notify(started, AttemptStarted(handle, attempt, self.pool._clock.current_time()), "as an attempt started")
        try:
            if self.middleware:
                value = await self._through_middleware(attempt)
            else:
                value = await self.engine.attempt_once(
                    job._call,
                    self.options,
                    job.is_async,
                    job.attempt_timeout,
                    job.name,
                )
        except BaseException as exc:
            if ended:
                notify(
                    ended, AttemptEnded(handle, attempt, self.pool._clock.current_time(), exc), "as an attempt ended"
                )
            raise
        if ended:
            notify(ended, AttemptEnded(handle, attempt, self.pool._clock.current_time(), None), "as an attempt ended")
        return value

    # Each call_next() is bound to its job's run and attempt: one kept and
    # called later must not run whatever job the worker holds by then. Both
    # links of the middleware chain check it (inline: the per-attempt path).

    async def _through_middleware(self, attempt: int) -> Any:
        """Make attempt ``attempt`` of the job in hand inside its middleware, as the engine's ``through``."""
        running = self.running_job
        if running is None:
            entry = self.current
            assert entry is not None
            job: Job[Any] = entry.value  # type: ignore[assignment]  # running: no Result yet
            running = self.running_job = RunningJob(self, entry, job)
        else:
            running._attempt_timeout = running._job.attempt_timeout  # each attempt starts with the job's bound
        self.live_attempt = attempt
        try:
            return await self._next_middleware(running, attempt, 0)
        finally:
            self.live_attempt = 0

    def _next_middleware(self, running: RunningJob, attempt: int, index: int) -> Awaitable[Any]:
        """Call the job's middleware at ``index``, with a ``call_next`` for the rest of the chain and the attempt."""
        if self.running_job is not running or self.live_attempt != attempt:
            raise RuntimeError(_STALE_CALL_NEXT)
        middleware = self.middleware
        if index + 1 == len(middleware):
            call_next: Callable[[], Any] = functools.partial(self._run_attempt, running, attempt)
        else:
            call_next = functools.partial(self._next_middleware, running, attempt, index + 1)
        return middleware[index](running, call_next)

    async def _run_attempt(self, running: RunningJob, attempt: int) -> Any:
        """The innermost ``call_next()``: one attempt of the task, within its bound."""
        if self.running_job is not running or self.live_attempt != attempt:
            raise RuntimeError(_STALE_CALL_NEXT)
        job = running._job
        seconds = running._attempt_timeout
        if job.is_async and seconds is None:  # the common case, a coroutine fewer
            return await job._call(self.options)
        return await self.engine.attempt_once(
            job._call,
            self.options,
            job.is_async,
            seconds,
            job.name,
        )

    # -- a job a cancellation interrupted ----------------------------------------------

    def _cancel_reason(self, entry: Entry) -> str | None:
        """Why the pool or the caller cancelled ``entry``, if they did."""
        extras = self.pool._extras.get(entry)
        return None if extras is None else extras.cancel_reason

    def _end_cancelled(self, entry: Entry, reason: str) -> None:
        error = JobCancelledError(name=entry.name, reason=reason)
        error.__cause__ = self.engine.last_error
        self.current = None
        self.pool._record_result(entry, Status.CANCELLED, None, error, self.engine.attempt, self.started_at)

    def _end_interrupted(self, entry: Entry) -> None:
        """Record the job that the epoch's cancellation stopped: cancelled, or out of time."""
        reason = self._cancel_reason(entry)
        if reason is None and self.context is not None and self.context.cancelled:
            reason = "its Context was cancelled"
        if reason is not None:
            self._end_cancelled(entry, reason)
            return
        self.current = None
        timeout = self.engine.timeout_error(entry.name, self.deadline)
        self.pool._record_result(entry, Status.TIMED_OUT, None, timeout, self.engine.attempt, self.started_at)
