"""The worker pool: a queue, a fixed set of worker tasks, and every Result."""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import threading
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import trio

from ._attempts import EVERYTHING, RetryPolicy
from ._context import Context
from ._current import DEFAULT_CODES, RunInfo, running_pool
from ._errors import (
    JobAbandonedError,
    JobCancelledError,
    PoolClosedError,
    QueueFullError,
    UnknownHandlerError,
    exit_with_sole,
)
from ._handle import Entry, Extras, JobHandle, entry_class, new_handle
from ._health import Health, HealthPolicy, HealthTracker
from ._job import EMPTY_OPTIONS, Job, freeze_options
from ._middleware import Middleware, freeze_middleware
from ._observer import JobFinished, JobQueued, Observer, Observers, notify
from ._process import check_run_in
from ._rate import Gcra
from ._registry import Registry
from ._result import Result, ResultBuilder, Status
from ._retry import Backoff
from ._schedule import (
    Series,
    Timers,
    any_delay,
    check_counts,
    clock_time,
    run_batches,
    run_each,
    run_every,
    submit_batch,
)
from ._trio_thread import in_trio_thread
from ._validation import MAX_WORKERS, Seconds, count, flag, optional_seconds, rate, to_seconds
from ._worker import Worker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
    from types import TracebackType

__all__ = ["PoolStatistics", "ResultStream", "WorkerPool"]

T = TypeVar("T")

_logger: Final = logging.getLogger("workerpoolxt")

_DEFAULT_BACKOFF: Final = Backoff()
_DEFAULT_HEALTH: Final = HealthPolicy()
_MIN_RATE_SWEEP: Final = 64  # per-name limiters kept before the first sweep of idle ones
_new_object: Final = object.__new__
_thread_id: Final = threading.get_ident
_set_attribute: Final = object.__setattr__

# How far a pool has been asked to stop. Each level includes the ones below it,
# and a later call can only raise the level, never lower it.
_OPEN: Final = 0
_DRAINING: Final = 1  # stop_wait(): run what is queued, accept no new outside jobs
_STOPPING: Final = 2  # stop(): abandon what is queued, let running jobs finish
_HALTING: Final = 3  # stop(cancel_running=True): also cancel running jobs


@attrs.frozen
class PoolStatistics:
    """A snapshot of a pool's state and counters, from ``WorkerPool.statistics()``."""

    max_workers: int
    running: int
    """Workers busy with a job, or with a thread a finished job left running."""
    waiting: int
    """Jobs queued and not yet started."""
    submitted: int
    succeeded: int
    failed: int
    timed_out: int
    cancelled: int
    abandoned: int
    unread: int
    """Results waiting to be read: with ``keep_results=False``, every result the pool holds; otherwise
    those ``results()`` has not yielded yet (0 before it is called)."""


class WorkerPool:
    """Runs Jobs on a fixed number of workers and collects every Result.

    Use it as an async context manager; it owns a nursery for its workers.
    Leaving the block normally waits as ``stop_wait()`` does. Leaving it with an
    exception abandons queued jobs, cancels running ones and re-raises that
    exception as it was.

    Args:
        max_workers: How many jobs may run at once, from 1 to ``WorkerPool.MAX_WORKERS`` (100,000).
        context: The Context for jobs that set none.
        options: The options for jobs that set none (never merged with a job's).
        timeout: The budget in seconds for jobs that set none, from their first start.
        retry: Retries for jobs that set none.
        backoff: The wait between attempts for jobs that set none.
        max_queue: Bounds the number of queued jobs; ``submit()`` then raises
            ``QueueFullError`` when full and ``asubmit()`` waits for room.
        keep_results: If False, the pool keeps only results not yet yielded by
            ``results()``, and the stops return ``[]``, so memory stays bounded.
        max_unread: With ``keep_results=False``, how many results may wait
            unread while ``results()`` is being read: at this many, workers
            start no more jobs until the reader catches up, which holds back
            ``asubmit()`` in turn once ``max_queue`` is reached.
        registry: The handlers that jobs naming one (``Job("send_email")``) run.
        middleware: Async callables wrapping every attempt of every job,
            outside each job's own middleware; the first listed is outermost.
        ramp_up: Start with one worker and let one more take jobs every
            ``ramp_up`` seconds from entering the pool, until ``max_workers``.
        health: How ``health()`` judges the pool from its recent error ratio;
            by default, more than 25 % of the last 100 jobs failing or timing
            out (with at least 3 to judge) is unhealthy. None turns it off.
        max_per_second: Start at most this many jobs per second, spaced evenly
            (GCRA with no burst). A job with its own ``max_per_second`` is
            limited by that instead, shared with the jobs of the same name.
        run_in: Where plain tasks run for jobs that set no ``run_in`` (nor
            their handler): ``"thread"`` (None is the same) or ``"process"``,
            a worker process that a deadline or a cancellation kills (see ``Job``).

    Raises:
        TypeError, ValueError: An argument is invalid; the message names it.
        ImportError: ``run_in="process"`` without trio-parallel installed.
    """

    __slots__ = (
        "_backlogged",
        "_backoff",
        "_clock",
        "_closed",
        "_closed_event",
        "_context",
        "_counts",
        "_entered",
        "_entry_class",
        "_extras",
        "_health",
        "_held",
        "_idle",
        "_idle_workers",
        "_job_rates",
        "_job_rates_sweep_at",
        "_keep_results",
        "_last_policy",
        "_limit",
        "_max_queue",
        "_max_unread",
        "_max_workers",
        "_middleware",
        "_next_id",
        "_nursery",
        "_nursery_manager",
        "_observers",
        "_options",
        "_pause_depth",
        "_policy",
        "_process_default",
        "_queue",
        "_ramp_up",
        "_rate",
        "_reading",
        "_registry",
        "_results",
        "_results_ready",
        "_retry",
        "_room",
        "_running",
        "_series",
        "_services",
        "_start_limit",
        "_stop_level",
        "_stream",
        "_thread",
        "_timeout",
        "_timers",
        "_turns",
        "_unread",
        "_waiting",
        "_workers",
    )

    MAX_WORKERS: Final = MAX_WORKERS
    """The largest ``max_workers``: each worker is a trio task, started when the pool is entered."""

    _clock: trio.abc.Clock  # set on entering, when there is a trio run to read it from

    def __init__(
        self,
        max_workers: int,
        *,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        timeout: Seconds | None = None,
        retry: int = 0,
        backoff: Backoff = _DEFAULT_BACKOFF,
        max_queue: int | None = None,
        keep_results: bool = True,
        max_unread: int = 1024,
        registry: Registry | None = None,
        middleware: Iterable[Middleware] | None = None,
        ramp_up: Seconds | None = None,
        max_per_second: float | None = None,
        health: HealthPolicy | None = _DEFAULT_HEALTH,
        run_in: str | None = None,
    ) -> None:
        self._max_workers = count(max_workers, "max_workers", minimum=1, maximum=MAX_WORKERS)
        if context is not None and not isinstance(context, Context):
            raise TypeError(f"`context` must be a Context or None, not {type(context).__name__}")
        self._context = context
        self._options = freeze_options(options, "options") or EMPTY_OPTIONS
        self._timeout = optional_seconds(timeout, "timeout")
        self._retry = count(retry, "retry", minimum=0)
        if not isinstance(backoff, Backoff):
            raise TypeError(
                f"`backoff` must be a Backoff, not {type(backoff).__name__}; Backoff.none() retries at once"
            )
        self._backoff = backoff
        self._max_queue = None if max_queue is None else count(max_queue, "max_queue", minimum=1)
        self._keep_results = flag(keep_results, "keep_results")
        self._max_unread = count(max_unread, "max_unread", minimum=1)
        if registry is not None and not isinstance(registry, Registry):
            raise TypeError(f"`registry` must be a Registry or None, not {type(registry).__name__}")
        self._registry = registry
        # Plain tasks of jobs that set no run_in run in a process: resolved on submitting (_check_accepts()).
        self._process_default = check_run_in(run_in, "run_in") == "process"
        self._middleware = freeze_middleware(middleware, "middleware")
        self._ramp_up = optional_seconds(ramp_up, "ramp_up")
        self._rate = None if max_per_second is None else Gcra(rate(max_per_second, "max_per_second"))
        # One limiter per (name, rate) of jobs that set their own max_per_second,
        # swept of idle ones whenever it grows to _job_rates_sweep_at.
        self._job_rates: dict[tuple[str, float], Gcra] = {}
        self._job_rates_sweep_at = _MIN_RATE_SWEEP
        if health is not None and not isinstance(health, HealthPolicy):
            raise TypeError(f"`health` must be a HealthPolicy or None, not {type(health).__name__}")
        self._health = None if health is None else HealthTracker(health)
        # Metrics, traces: an event nobody observes costs one check.
        self._observers = Observers()
        # How the jobs that set no retry policy of their own retry; and the
        # policy last made for a job that set some of its own (_policy_for()).
        self._policy = self._last_policy = RetryPolicy(self._retry, self._backoff)
        # How many jobs may run at once now: below max_workers while ramping up.
        self._limit = self._max_workers
        # The same, and 0 while paused or while results() has max_unread
        # results to read: the one number a worker checks before it starts a job.
        self._start_limit = self._max_workers

        self._queue: collections.deque[Entry] = collections.deque()
        self._entry_class = entry_class(self)
        # What the entries that need more than their slots hold: see Extras.
        self._extras: dict[Entry, Extras] = {}
        # The worker that holds each job handed over or started, until its
        # Result: how a cancellation finds the epoch to cancel.
        self._held: dict[Entry, Worker] = {}
        self._waiting = 0
        self._running = 0
        self._next_id = 0
        self._thread: int | None = None  # the run's, once entered
        # Jobs started so far, by all workers: a worker that sees it move while
        # its job ran knows the job let others run (see Worker._serve).
        self._turns = 0
        self._counts = dict.fromkeys(Status, 0)
        self._results: list[Result[Any]] = []
        self._unread: collections.deque[Result[Any]] = collections.deque()
        self._stream: ResultStream | None = None  # what results() returned
        self._reading = False  # results() is being iterated, so max_unread applies
        self._backlogged = False  # ... and that many results wait unread
        self._pause_depth = 0
        self._stop_level = _OPEN
        self._entered = False
        self._closed = False
        self._workers: list[Worker] = []
        self._nursery_manager: contextlib.AbstractAsyncContextManager[trio.Nursery] | None = None
        self._nursery: trio.Nursery | None = None
        # Cancel scopes of the pool's own background tasks, cancelled when it closes.
        self._services: set[trio.CancelScope] = set()
        self._timers = Timers(self)
        self._series: set[Series] = set()
        # Workers waiting for a job, the latest last. A job submitted while one
        # waits is handed to it directly, and is running from that moment.
        self._idle_workers: list[Worker] = []
        # Tasks parked here: asubmit() callers waiting for room; paused()
        # callers waiting for running jobs to end; results() waiting.
        self._room = trio.lowlevel.ParkingLot()
        self._idle = trio.lowlevel.ParkingLot()
        self._results_ready = trio.lowlevel.ParkingLot()
        self._closed_event = trio.Event()

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> WorkerPool:
        if self._entered:
            raise RuntimeError("a WorkerPool can be entered only once; create a new one")
        self._entered = True
        # The clock never changes within a run; reading it directly skips the
        # lookups behind trio.current_time() on the per-job path.
        self._clock = trio.lowlevel.current_clock()
        # The run's thread: submit() compares it to tell a plain task's thread
        # from trio's, cheaper than asking trio whether a run is on.
        self._thread = threading.get_ident()
        self._nursery_manager = trio.open_nursery()
        nursery = self._nursery = await self._nursery_manager.__aenter__()
        for index in range(self._max_workers):
            worker = Worker(self)
            self._workers.append(worker)
            nursery.start_soon(worker.run, name=f"workerpoolxt worker {index}")
        if self._ramp_up is not None and self._max_workers > 1:
            self._limit = 1
            self._update_start_limit()
            self._start_service(self._ramp, self._ramp_up, name="workerpoolxt ramp-up")
        return self

    def _start_service(
        self, function: Callable[..., Awaitable[object]], *args: object, name: str, until_closed: bool = True
    ) -> None:
        """Run ``function(*args)`` in the pool's nursery.

        With ``until_closed`` it is cancelled when the pool closes; otherwise
        the pool's exit waits for it, as it waits for its workers.
        """
        nursery = self._nursery
        assert nursery is not None
        # Registered now, not when the task first runs, so a close in between
        # still reaches it.
        scope = trio.CancelScope()
        if until_closed:
            self._services.add(scope)
            if self._closed:
                scope.cancel()

        async def service() -> None:
            try:
                with scope:
                    await function(*args)
            finally:
                self._services.discard(scope)

        nursery.start_soon(service, name=name)

    async def _ramp(self, interval: float) -> None:
        while self._limit < self._max_workers:
            await trio.sleep(interval)
            self._limit += 1
            self._update_start_limit()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        # `bool | None` rather than `bool`: type checkers then know the block
        # does not swallow exceptions, so code after it is reachable.
        pending = exc
        if exc is None:
            try:
                await self.stop_wait()
            except BaseException as error:  # an outer cancellation or KeyboardInterrupt while draining
                pending = error
        if pending is not None:
            self._escalate(_HALTING, f"its pool's `async with` block exited with {type(pending).__name__}")
        assert self._nursery_manager is not None
        try:
            if pending is None:
                swallowed = await self._nursery_manager.__aexit__(None, None, None)
            else:
                swallowed = await self._nursery_manager.__aexit__(type(pending), pending, pending.__traceback__)
        except BaseExceptionGroup as group:
            return exit_with_sole(group, exc, prefer=pending)
        finally:
            self._end_after_exit()
        if swallowed:  # the exception was a cancellation of the pool's own nursery
            return True
        if pending is not None and pending is not exc:
            raise pending
        return None

    def _end_after_exit(self) -> None:
        """Abandon whatever is still queued once the workers are gone, and close."""
        self._stop_level = _HALTING
        self._end_timers(_STOPPING)
        self._abandon_queued()
        self._close()

    # -- submitting --------------------------------------------------------

    def submit(self, job: Job[T], *, info: RunInfo | None = None) -> JobHandle[T]:
        """Queue ``job`` and return its handle. Never blocks.

        If a worker is idle and nothing is queued, the worker takes the job at
        once: it is running, not queued, from this call on. A plain task may
        call it from its thread.

        Raises:
            TypeError: ``job`` is not a Job.
            PoolClosedError: The pool is not running, or a stop was called.
                While ``stop_wait()`` drains, the pool's own jobs may still submit.
            QueueFullError: ``max_queue`` jobs are already waiting.

        Args:
            job: The job to run.
            info: What the run carries besides the job, for its task to read
                through ``current_job().info``.
        """
        if (
            type(job) is not Job
            or self._stop_level
            or not self._entered
            or type(job.task) is str
            or self._process_default
        ):
            job = self._check_accepts(job)
        if info is not None and not isinstance(info, RunInfo):
            raise TypeError(f"`info` must be a RunInfo or None, not {type(info).__name__}")
        if _thread_id() != self._thread:  # a plain task, from its thread
            return in_trio_thread(lambda: self.submit(job, info=info), "pool.submit()")
        if self._max_queue is not None and self._waiting >= self._max_queue:
            raise QueueFullError(
                f"the queue holds max_queue={self._max_queue} jobs; use `await pool.asubmit(job)` to wait for room"
            )
        entry = self._new_entry(job, info)  # as _enqueue() does, a call nearer: the per-job path
        self._enqueue_entry(entry)
        handle: JobHandle[T] = _new_object(JobHandle)  # as new_handle(), inline
        handle._entry = entry
        return handle

    async def asubmit(self, job: Job[T]) -> JobHandle[T]:
        """Queue ``job``, waiting for room if ``max_queue`` jobs are already waiting.

        Raises the same errors as ``submit()``, except ``QueueFullError``.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        job = self._check_accepts(job)
        while self._max_queue is not None and self._waiting >= self._max_queue:
            await self._room.park()
            self._check_accepts(job)
        handle = self._enqueue(job)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return handle

    async def submit_wait(self, job: Job[T]) -> Result[T]:
        """Submit ``job``, wait for its Result and return it.

        If this call is cancelled, the job is cancelled too, as if it had been
        called directly.
        """
        handle = await self.asubmit(job)
        try:
            return await handle.wait()
        except BaseException:
            handle.cancel()
            raise

    def _check_accepts(self, job: Job[T]) -> Job[T]:
        """Return ``job``, with a handler name resolved, if the pool accepts it now."""
        if not isinstance(job, Job):
            raise TypeError(f"`job` must be a workerpoolxt.Job, not {type(job).__name__}")
        if self._stop_level != _OPEN:
            if not (self._stop_level == _DRAINING and not self._closed and running_pool() is self):
                raise PoolClosedError("the pool is stopped and accepts no more jobs")
        elif not self._entered:
            raise PoolClosedError("the pool is not running yet: submit inside `async with WorkerPool(...)`")
        if isinstance(job.task, str):
            if job.queue is not None or job.dedup_key is not None or job.lock is not None:
                # Only a job naming its handler takes them (see Job), so the per-job path never looks.
                raise ValueError(
                    f"job {job.name!r} sets `queue`, `dedup_key` or `lock`, which a durable store keeps: "
                    "a WorkerPool runs jobs in this process; enqueue it in a store for a DurableWorker"
                )
            if self._registry is None:
                raise UnknownHandlerError(job.task)
            job = job._with_task(self._registry[job.task], self._registry._run_in.get(job.task))
        if self._process_default and job.run_in is None and not job.is_async:
            job = job._in_process()
        return job

    def _enqueue(self, job: Job[T], info: RunInfo | None = None) -> JobHandle[T]:
        entry = self._new_entry(job, info)
        self._enqueue_entry(entry)
        return new_handle(entry)

    def _new_entry(self, job: Job[Any], info: RunInfo | None = None) -> Entry:
        """Number a job and make its entry, for the queue or for a timer."""
        now = self._clock.current_time()
        # Made field by field, with no __init__ to call: this is the per-job path.
        entry: Entry = _new_object(self._entry_class)
        entry.value = job
        entry.job_id = self._next_id
        entry.queued_at = now
        self._next_id += 1
        if info is not None:
            self._extra(entry).info = info
        if self._observers.job_queued:
            notify(self._observers.job_queued, JobQueued(new_handle(entry), now), "as it was queued")
        return entry

    def _extra(self, entry: Entry) -> Extras:
        """What ``entry`` holds besides its slots, made on first use."""
        extras = self._extras.get(entry)
        if extras is None:
            extras = self._extras[entry] = Extras()
        return extras

    def _done_event(self, entry: Entry) -> trio.Event:
        """The event set when ``entry`` has its Result, for ``JobHandle.wait()``."""
        extras = self._extra(entry)
        if extras.done_event is None:
            extras.done_event = trio.Event()
        return extras.done_event

    def _enqueue_entry(self, entry: Entry) -> None:
        # An idle worker takes the job now, as a trio channel hands a value to a
        # waiting receiver: it is running, not queued, so a stop that abandons
        # queued jobs lets it run (Go's workerpool does the same). Only when
        # nothing is queued ahead of it, so jobs still start in order.
        if self._idle_workers and not self._waiting and self._running < self._start_limit:
            self._running += 1
            self._idle_workers.pop().hand_over(entry)
            return
        self._queue.append(entry)
        self._waiting += 1

    async def _wait_for_room(self) -> None:
        """Wait until the queue has room (or the pool stops), for a series, which may not take it at once.

        Room is handed out one wake-up per freed slot. A series woken for it
        may then wait on its channel or its next tick before it submits, so it
        passes the wake-up on: an ``asubmit()`` caller parked behind it must
        not wait for room that is there.
        """
        max_queue = self._max_queue
        while max_queue is not None and self._waiting >= max_queue and not self._stop_level:
            await self._room.park()
            if self._room and self._waiting < max_queue:
                self._room.unpark()

    # -- scheduling ----------------------------------------------------------

    def submit_at(self, job: Job[T], when: float) -> JobHandle[T]:
        """Queue ``job`` at ``when``, a time on the trio clock (``trio.current_time()``).

        A time that has passed, or is now, queues the job at once, as
        ``submit()`` does. Until its time the job waits outside the queue, so
        ``max_queue`` does not count it, and it joins the queue when its time
        comes even if the queue is full; ``handle.cancel()`` ends it
        ``CANCELLED``. No stop waits for its time: any stop ends it
        ``ABANDONED``, or ``CANCELLED`` under ``stop(cancel_running=True)``.

        Raises the same errors as ``submit()``, ``QueueFullError`` only when
        queued at once.
        """
        at = clock_time(when, "when")
        checked = self._check_accepts(job)
        return in_trio_thread(lambda: self._submit_at(checked, at, 0.0), "pool.submit_at()")

    def submit_in(self, job: Job[T], delay: Seconds) -> JobHandle[T]:
        """Queue ``job`` after ``delay`` seconds (a number or a timedelta); see ``submit_at()``.

        A delay of zero or less queues the job at once.
        """
        seconds = any_delay(delay, "delay")
        checked = self._check_accepts(job)
        return in_trio_thread(lambda: self._submit_at(checked, None, seconds), "pool.submit_in()")

    def _submit_at(self, job: Job[T], when: float | None, delay: float) -> JobHandle[T]:
        job = self._check_accepts(job)  # again: the pool may have stopped while a thread handed this over
        now = self._clock.current_time()
        if when is None:
            when = now + delay
        if when <= now:
            return self.submit(job)
        entry = self._new_entry(job)
        if self._stop_level:  # one of the pool's own jobs, while stop_wait() drains
            self._abandon(entry)
        else:
            self._timers.add(entry, when)
        return new_handle(entry)

    def submit_every(
        self,
        job: Job[Any],
        interval: Seconds,
        *,
        overlap: bool = False,
        first_at_once: bool = True,
    ) -> Series:
        """Submit ``job`` every ``interval`` seconds until the series or the pool stops.

        Runs start on a fixed grid, ``interval`` apart from this call (or from
        one interval after it, if ``first_at_once`` is false), so they never
        drift. With ``overlap`` false, a tick that finds the previous run not
        done (still queued or running) is skipped and counted in
        ``Series.skipped``, as is a tick that finds the queue at ``max_queue``.
        Each run is an ordinary job with its own Result. A first run at once is
        submitted by this call itself, so it runs even if the pool stops next.
        """
        seconds = to_seconds(interval, "interval")
        flag(overlap, "overlap")
        flag(first_at_once, "first_at_once")

        self._check_series(job)

        def start() -> Series:
            checked = self._check_series(job)
            series = Series(self, checked.name)
            origin = self._clock.current_time()
            # The first run is submitted now, as submit() would, so leaving the block at once still runs it.
            previous = series._submit(checked, None) if first_at_once else None
            return self._start_series(series, run_every, checked, origin, seconds, overlap, previous)

        return in_trio_thread(start, "pool.submit_every()")

    def submit_each(self, job: Job[Any], receive_channel: trio.abc.ReceiveChannel[Any]) -> Series:
        """Submit ``job`` once per item received from ``receive_channel``, as ``current_job().item``.

        The series ends when the channel closes, or is closed by its owner
        (it then closes its own end), or when it or the pool stops. With ``max_queue`` set it waits
        for room before receiving more, so the sender feels the back-pressure.
        """
        if not isinstance(receive_channel, trio.abc.ReceiveChannel):
            raise TypeError(f"`receive_channel` must be a trio ReceiveChannel, not {type(receive_channel).__name__}")

        self._check_series(job)

        def start() -> Series:
            checked = self._check_series(job)
            return self._start_series(Series(self, checked.name), run_each, checked, receive_channel)

        return in_trio_thread(start, "pool.submit_each()")

    def submit_batches(
        self,
        job: Job[Any],
        counts: Sequence[int],
        tick: Seconds,
        *,
        on_complete: Callable[[list[Result[Any]]], object] | None = None,
    ) -> Series:
        """Submit ``counts[i]`` copies of ``job`` at ``i * tick`` seconds from now.

        Each run sees ``current_job().tick`` (``i``) and ``.index`` (its place in
        the batch). A batch still unfinished when the next tick's slot begins
        is logged as a warning on the ``workerpoolxt`` logger; the next batch
        starts on time anyway. The first batch is submitted by this call
        itself, and a later one waits for room if ``max_queue`` is reached.
        ``on_complete(results)``, a plain or async callable, gets every run's
        Result in tick and index order once all runs are done, unless the
        series was stopped before its last batch was out; if it raises, the
        error is logged.
        """
        checked_counts = check_counts(counts)
        seconds = to_seconds(tick, "tick")
        if on_complete is not None and not callable(on_complete):
            raise TypeError(f"`on_complete` must be callable or None, not {type(on_complete).__name__}")

        self._check_series(job)

        def start() -> Series:
            checked = self._check_series(job)
            series = Series(self, checked.name)
            origin = self._clock.current_time()
            # The first batch is submitted now, as submit() would, so leaving the block at once still runs it.
            # A new series on a running pool takes every run, so this is never None.
            first = (submit_batch(series, checked, 0, checked_counts[0]) if checked_counts else None) or []
            return self._start_series(series, run_batches, checked, origin, checked_counts, seconds, on_complete, first)

        return in_trio_thread(start, "pool.submit_batches()")

    def _check_series(self, job: Job[T]) -> Job[T]:
        checked = self._check_accepts(job)
        if self._stop_level:
            raise PoolClosedError("the pool is stopping and starts no new series")
        return checked

    def _start_series(self, series: Series, body: Callable[..., Awaitable[None]], *args: Any) -> Series:
        self._series.add(series)
        run = functools.partial(body, series, *args)
        # Not cancelled on close: a series' last step, on_complete, runs after its runs end.
        self._start_service(series._run, run, name=f"workerpoolxt series {series.name!r}", until_closed=False)
        return series

    # -- stopping ----------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """True from the moment any stop is called."""
        return self._stop_level != _OPEN

    async def stop_wait(self) -> list[Result[Any]]:
        """Accept no more jobs, run everything queued, and return every Result.

        Jobs the pool's own running jobs submit meanwhile are still run. Results
        come in completion order, for the pool's whole life. Any number of tasks
        may call it; each waits until the pool is done.
        """
        self._check_waitable("stop_wait")
        self._escalate(_DRAINING)
        return await self._wait_closed()

    async def stop(self, *, cancel_running: bool = False) -> list[Result[Any]]:
        """Accept no more jobs, abandon queued ones, and return every Result.

        Running jobs finish, unless ``cancel_running`` is true: then they are
        cancelled, even while a ``stop_wait()`` is draining. Abandoned jobs end
        ``ABANDONED``, so no one waiting on a handle hangs.
        """
        flag(cancel_running, "cancel_running")
        self._check_waitable("stop")
        self.request_stop(cancel_running=cancel_running)
        return await self._wait_closed()

    def request_stop(self, *, cancel_running: bool = False) -> None:
        """Begin a stop without waiting for it, from a plain function: ``stop()`` is this, then the wait.

        Queued jobs are abandoned and running ones finish, or are cancelled
        with ``cancel_running``. A pool that has not been entered is left alone.
        """
        flag(cancel_running, "cancel_running")
        if self._entered:
            self._escalate(_HALTING if cancel_running else _STOPPING, "its pool was stopped with cancel_running=True")

    def _check_waitable(self, method: str) -> None:
        if not self._entered:
            raise RuntimeError(f"{method}() needs a running pool: call it inside `async with WorkerPool(...)`")
        if running_pool() is self:
            raise RuntimeError(f"{method}() from inside one of the pool's own jobs would wait for itself")

    async def _wait_closed(self) -> list[Result[Any]]:
        await self._closed_event.wait()
        return list(self._results)

    def _escalate(self, level: int, reason: str = "") -> None:
        if level <= self._stop_level:
            return
        self._stop_level = level
        self._pause_depth = 0
        for series in list(self._series):
            series._stop()
        self._end_timers(level, reason)
        if level >= _STOPPING:
            self._abandon_queued()
        if level == _HALTING:
            for worker in self._workers:  # each holds its own job: no search for its worker
                if worker.current is not None and type(worker.current.value) is not Result:
                    self._cancel_held(worker, worker.current, reason)
        self._update_start_limit()  # the pause, if any, is over
        self._room.unpark_all()
        self._maybe_close()

    def _end_timers(self, level: int, reason: str = "") -> None:
        """End the jobs still waiting for their time: no stop waits for a time to come."""
        if level == _HALTING:
            why = f"{reason} before its time came"
            self._timers.end_all(lambda entry: self._cancel_unstarted(entry, why))
        else:
            self._timers.end_all(self._abandon)

    def _abandon_queued(self) -> None:
        queue = self._queue
        while queue:
            entry = queue.popleft()
            if type(entry.value) is not Result:
                self._abandon(entry)
        self._waiting = 0

    def _maybe_close(self) -> None:
        if self._stop_level and not self._waiting and not self._running:
            self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closed_event.set()
        for scope in self._services:
            scope.cancel(reason="its workerpoolxt pool closed")
        while self._idle_workers:  # each sees the pool closed, and returns
            self._idle_workers.pop().hand_over(None)
        self._results_ready.unpark_all()
        self._room.unpark_all()
        self._idle.unpark_all()

    # -- pausing -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold the workers: no job starts inside the block, not even queued ones.

        Entering waits until running jobs have finished. Queued jobs start when
        the block exits. A stop ends the pause.
        """
        self._check_waitable("paused")
        if self._stop_level:
            raise PoolClosedError("the pool is stopped; there is nothing to pause")
        self._pause_depth += 1
        self._update_start_limit()
        try:
            while self._running and self._pause_depth:
                await self._idle.park()
            yield
        finally:
            if self._pause_depth:
                self._pause_depth -= 1
                self._update_start_limit()

    # -- the workers' side ---------------------------------------------------

    def _take(self) -> Entry | None:
        """Pop the next queued job for a worker, or None if none may start now."""
        if self._running >= self._start_limit:
            return None
        queue = self._queue
        while queue:
            entry = queue.popleft()
            if type(entry.value) is not Result:  # not cancelled while it waited
                self._waiting -= 1
                self._running += 1
                if self._max_queue is not None and self._room:
                    self._room.unpark()
                return entry
        return None

    def _update_start_limit(self) -> None:
        """Recompute how many jobs may run for another to start, and hand queued jobs to idle workers."""
        self._start_limit = 0 if self._pause_depth or self._backlogged else self._limit
        while self._idle_workers:
            entry = self._take()
            if entry is None:
                return
            self._idle_workers.pop().hand_over(entry)

    def _release_slot(self) -> None:
        self._running -= 1
        if not self._running:
            self._none_running()

    def _none_running(self) -> None:
        """No job runs any more: wake who waits for that, and close the pool if it is stopping."""
        if self._idle:
            self._idle.unpark_all()
        self._maybe_close()

    def _cancel_entry(self, entry: Entry, reason: str) -> None:
        if type(entry.value) is Result:
            return
        if self._timers.withdraw(entry):  # it was waiting for its time, outside the queue
            self._cancel_unstarted(entry, reason)
            return
        worker = self._held.get(entry)
        if worker is not None and worker.current is entry:  # running, or handed over and not started yet
            self._cancel_held(worker, entry, reason)
            return
        # Still queued: it ends now, and its worker will skip it.
        self._waiting -= 1
        if self._room:
            self._room.unpark()
        self._cancel_unstarted(entry, reason)
        self._maybe_close()

    def _cancel_held(self, worker: Worker, entry: Entry, reason: str) -> None:
        """Cancel ``entry``, which ``worker`` holds, through the worker's epoch; the worker records why."""
        self._extra(entry).cancel_reason = reason
        worker.scope.cancel(reason=f"workerpoolxt job {entry.name!r}: {reason}")

    def _record_result(
        self,
        entry: Entry,
        status: Status,
        data: Any,
        error: BaseException | None,
        attempts: int,
        started_at: float | None,
        code: int | None = None,
        now: float | None = None,
    ) -> float:
        """Record ``entry``'s one Result and return the time it finished (``now``, if the caller read the clock)."""
        if now is None:
            now = self._clock.current_time()
        name = entry.value.name
        if code is None:
            code = DEFAULT_CODES[status]
        built: ResultBuilder[Any] = _new_object(ResultBuilder)
        built.job_id = entry.job_id
        built.name = name
        built.data = data
        built.error = error
        built.status = status
        built.code = code
        built.attempts = attempts
        built.queued_at = entry.queued_at
        built.started_at = started_at
        built.finished_at = now
        result: Result[Any] = built  # type: ignore[assignment]  # a Result from the next line on
        _set_attribute(result, "__class__", Result)  # see ResultBuilder
        entry.value = result  # the entry keeps only the Result, not the Job
        self._held.pop(entry, None)
        self._counts[status] += 1
        if self._health is not None:
            self._health.record(status, code, now)
        if self._observers.job_finished:
            notify(self._observers.job_finished, JobFinished(new_handle(entry), result), "as it ended")
        # Nor its extras: its run's info (a channel item, say), its cancel reason.
        extras = self._extras.pop(entry, None) if self._extras else None
        if self._keep_results:
            self._results.append(result)
        else:
            unread = self._unread
            unread.append(result)
            if self._reading and len(unread) >= self._max_unread and not self._backlogged:
                self._backlogged = True
                self._update_start_limit()
        if extras is not None and extras.done_event is not None:
            extras.done_event.set()
        if self._stream is not None and self._results_ready:
            self._results_ready.unpark_all()
        return now

    def _abandon(self, entry: Entry) -> None:
        """End a job that never started because the pool stopped."""
        self._record_result(entry, Status.ABANDONED, None, JobAbandonedError(name=entry.name), 0, None)

    def _cancel_unstarted(self, entry: Entry, reason: str) -> None:
        """End a job cancelled before it started."""
        self._record_result(entry, Status.CANCELLED, None, JobCancelledError(name=entry.name, reason=reason), 0, None)

    def _policy_for(self, job: Job[Any]) -> RetryPolicy:
        """The retry policy of a job that sets some of its own, the pool's filling in the rest.

        Jobs come in batches alike, so the last policy made is kept and given
        again while the jobs ask for the same one: no policy object per job.
        """
        retry = self._retry if job.retry is None else job.retry
        backoff = self._backoff if job.backoff is None else job.backoff
        retry_on = EVERYTHING if job.retry_on is None else job.retry_on
        last = self._last_policy
        if (
            last.retry == retry
            and (last.backoff is backoff or last.backoff == backoff)
            and last.retry_on == retry_on
            and last.attempt_timeout == job.attempt_timeout
        ):
            return last
        policy = self._last_policy = RetryPolicy(retry, backoff, retry_on, job.attempt_timeout)
        return policy

    def _rate_for(self, job: Job[Any]) -> Gcra | None:
        """The limiter that paces ``job``'s starts, if any."""
        per_second = job.max_per_second
        if per_second is None:
            return self._rate
        key = (job.name, per_second)
        limiter = self._job_rates.get(key)
        if limiter is None:
            if len(self._job_rates) >= self._job_rates_sweep_at:
                self._drop_idle_rates()
            limiter = self._job_rates[key] = Gcra(per_second)
        return limiter

    def _drop_idle_rates(self) -> None:
        """Forget the limiters that can no longer delay a start.

        A limiter whose next conforming time has passed would let a job start
        now, just as a new one would, so forgetting it changes nothing. The
        next sweep comes once the survivors have doubled: amortised, a new
        name costs O(1), and jobs with endless distinct names hold only the
        limiters still pacing someone.
        """
        now = self._clock.current_time()
        rates = self._job_rates
        for key in [key for key, limiter in rates.items() if limiter.theoretical_arrival <= now]:
            del rates[key]
        self._job_rates_sweep_at = max(_MIN_RATE_SWEEP, 2 * len(rates))

    # -- observing -----------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        """Have ``observer`` see this pool's jobs from now on: see ``workerpoolxt.hooks``.

        Adding the same observer again changes nothing. An observer's errors
        are logged, never passed on to a job or the pool.

        Raises:
            TypeError: ``observer`` is not a ``workerpoolxt.hooks.Observer``.
        """
        self._observers.add(observer)

    @property
    def max_workers(self) -> int:
        """The most jobs that run at once."""
        return self._max_workers

    @property
    def running(self) -> int:
        """Workers busy now, including any held by a thread that outlived its job."""
        return self._running

    @property
    def waiting_queue_size(self) -> int:
        """Jobs queued and not yet started."""
        return self._waiting

    def health(self) -> Health:
        """Report whether the pool is fit to take work: running, and not failing too often.

        See ``HealthPolicy`` for how the error ratio is judged.
        """
        reasons: list[str] = []
        if not self._entered:
            reasons.append("the pool is not running yet")
        elif self._stop_level:
            reasons.append("the pool is stopped" if self._closed else "the pool is stopping")
        if self._health is not None:
            reasons.extend(self._health.health(self._clock.current_time() if self._entered else 0.0).reasons)
        return Health(not reasons, tuple(reasons))

    def statistics(self) -> PoolStatistics:
        """Return a frozen snapshot of the pool's state and counters."""
        counts = self._counts
        return PoolStatistics(
            max_workers=self._max_workers,
            running=self._running,
            waiting=self._waiting,
            submitted=self._next_id,
            succeeded=counts[Status.SUCCEEDED],
            failed=counts[Status.FAILED],
            timed_out=counts[Status.TIMED_OUT],
            cancelled=counts[Status.CANCELLED],
            abandoned=counts[Status.ABANDONED],
            unread=len(self._unread) if self._stream is None else self._stream._unread(),
        )

    def results(self) -> ResultStream:
        """Iterate over every Result in completion order, from the pool's first job.

        The iterator ends once the pool has stopped and every result has been
        yielded, or once it is closed with ``aclose()``. It has a single
        consumer: a second call raises RuntimeError. With
        ``keep_results=False``, once it is being iterated, ``max_unread``
        unread results hold the workers back until the reader catches up.

        Raises:
            RuntimeError: The pool was never entered, or ``results()`` was already called.
        """
        if not self._entered:
            raise RuntimeError("results() needs a running pool: call it inside `async with WorkerPool(...)`")
        if self._stream is not None:
            raise RuntimeError("results() was already called: a pool's results have a single consumer")
        self._stream = ResultStream(self)
        return self._stream


class ResultStream:
    """Every Result of a pool in completion order, as ``WorkerPool.results()`` gives them.

    An async iterator with a single consumer. It ends once the pool has
    stopped and every result was yielded, or once ``aclose()`` is called.
    """

    __slots__ = ("_closed", "_next_index", "_pool")

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._next_index = 0
        self._closed = False

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> Result[Any]:
        pool = self._pool
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise StopAsyncIteration
        # Reading has begun: from now on, results that pile up unread hold the workers back.
        pool._reading = True
        while True:
            result = self._pop()
            if result is not None:
                # Shielded, so a cancellation here cannot drop a result already taken.
                await trio.lowlevel.cancel_shielded_checkpoint()
                return result
            if pool._closed or self._closed:
                raise StopAsyncIteration
            await pool._results_ready.park()

    async def aclose(self) -> None:
        """Stop reading: the iteration ends, and unread results no longer hold the workers back.

        Leaving an ``async for`` early (``break``) does not close the stream by
        itself, as with a trio channel; use ``contextlib.aclosing()`` or call this.
        """
        self._closed = True
        pool = self._pool
        pool._reading = False
        pool._results_ready.unpark_all()  # a read under way ends too
        if pool._backlogged:
            pool._backlogged = False
            pool._update_start_limit()
        await trio.lowlevel.checkpoint()

    def _pop(self) -> Result[Any] | None:
        pool = self._pool
        if pool._keep_results:
            if self._next_index < len(pool._results):
                self._next_index += 1
                return pool._results[self._next_index - 1]
            return None
        unread = pool._unread
        if not unread:
            return None
        result = unread.popleft()
        if pool._backlogged and len(unread) < pool._max_unread:
            pool._backlogged = False
            pool._update_start_limit()
        return result

    def _unread(self) -> int:
        """Results not yielded yet."""
        pool = self._pool
        return len(pool._results) - self._next_index if pool._keep_results else len(pool._unread)
