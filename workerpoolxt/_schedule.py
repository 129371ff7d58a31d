"""Jobs that start later, on an interval, per channel item or in tick batches.

None of this is a second execution engine. A scheduled run is an ordinary Job
put in the pool's ordinary queue when its time comes, so it obeys the pool's
concurrency, rate limit and stops, and ends in an ordinary Result.

The rule for stopping: no stop waits for a time that has not come. Every stop
(``stop_wait()`` and leaving the ``async with`` block included) ends every
series at once, and a one-off job still waiting for its time ends
``ABANDONED``, or ``CANCELLED`` under an immediate stop. Runs already in the
queue are handled as the stop handles any queued job.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import trio

from ._current import RunInfo
from ._trio_thread import in_trio_thread
from ._util import is_async_callable
from ._validation import Seconds, count, finite_seconds, number

if TYPE_CHECKING:
    from ._handle import Entry, JobHandle
    from ._job import Job
    from ._pool import WorkerPool
    from ._result import Result

__all__ = ["Series"]

_logger: Final = logging.getLogger("workerpoolxt")


def clock_time(value: object, name: str) -> float:
    """Check ``value`` is a finite time on the trio clock (any sign)."""
    at = number(value, name, "a time on the trio clock (a number, as trio.current_time() gives)")
    if not math.isfinite(at):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    return at


def any_delay(value: Seconds, name: str) -> float:
    """Check ``value`` is a finite number of seconds or a timedelta; zero and negative mean now."""
    return max(finite_seconds(value, name), 0.0)


class Timers:
    """The one-off jobs of ``submit_at``/``submit_in`` waiting for their time.

    One service task sleeps until the earliest, instead of a task per job.
    """

    __slots__ = ("_cancelled", "_counter", "_heap", "_pool", "_running", "_sleep", "_waiting")

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._heap: list[tuple[float, int, Entry]] = []
        # The entries still waiting for their time; the heap may also hold cancelled ones.
        self._waiting: set[Entry] = set()
        self._counter = 0  # keeps equal times in submission order
        self._cancelled = 0  # entries whose job was cancelled while it waited
        self._sleep: trio.CancelScope | None = None
        self._running = False

    def add(self, entry: Entry, when: float) -> None:
        heapq.heappush(self._heap, (when, self._counter, entry))
        self._counter += 1
        self._waiting.add(entry)
        if not self._running:
            self._running = True
            self._pool._start_service(self._run, name="workerpoolxt timers")
        elif self._sleep is not None and when < self._sleep.deadline:
            self._sleep.deadline = when

    def withdraw(self, entry: Entry) -> bool:
        """Take ``entry`` off its wait, if it still waits; cancelled entries leave the heap once they are most of it."""
        if entry not in self._waiting:
            return False
        self._waiting.remove(entry)
        self._cancelled += 1
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            self._heap[:] = [timer for timer in self._heap if timer[2] in self._waiting]
            heapq.heapify(self._heap)
            self._cancelled = 0
        return True

    def end_all(self, finish: Callable[[Entry], object]) -> None:
        """End every job still waiting for its time with ``finish``."""
        heap, self._heap = self._heap, []
        waiting, self._waiting = self._waiting, set()
        for _, _, entry in sorted(heap, key=lambda timer: timer[:2]):
            if entry in waiting:
                finish(entry)
        if self._sleep is not None:
            self._sleep.cancel()

    async def _run(self) -> None:
        pool = self._pool
        while True:
            now = trio.current_time()
            heap = self._heap  # end_all() swaps in a new list
            while heap and heap[0][0] <= now:
                _, _, entry = heapq.heappop(heap)
                if entry in self._waiting:  # not cancelled meanwhile
                    self._waiting.remove(entry)
                    entry.queued_at = now
                    pool._enqueue_entry(entry)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None


class Series:
    """The runs that one ``submit_every()``, ``submit_each()`` or ``submit_batches()`` starts.

    Each run is an ordinary job in the pool with its own Result. Stopping the
    series starts no more runs and leaves those already submitted alone. Any
    stop of the pool stops its series.
    """

    __slots__ = ("_done", "_epilogue", "_pending", "_pool", "_scope", "_stopped", "name", "skipped", "submitted")

    def __init__(self, pool: WorkerPool, name: str) -> None:
        self._pool = pool
        self.name = name
        """The name of the series' job."""
        self.submitted = 0
        """Runs submitted to the pool so far."""
        self.skipped = 0
        """Ticks skipped: by ``submit_every(overlap=False)`` while the previous run
        was not done, or because the queue was at ``max_queue``."""
        self._stopped = False
        self._scope: trio.CancelScope | None = None
        self._done = trio.Event()
        # Runs not known to be done, kept so wait() can wait for them.
        self._pending: list[JobHandle[Any]] = []
        # What runs once every run is done, if the series got that far (on_complete).
        self._epilogue: Callable[[], Awaitable[None]] | None = None

    @property
    def stopped(self) -> bool:
        """True once the series starts no more runs: stopped, exhausted, or its pool stopped."""
        return self._stopped

    @property
    def done(self) -> bool:
        """True once the series has stopped and every run it submitted has its Result."""
        return self._done.is_set()

    def stop(self) -> None:
        """Start no more runs. Runs already submitted go on; ``wait()`` waits for them.

        A plain task may call it from its thread.
        """
        in_trio_thread(self._stop, "series.stop()")

    async def wait(self) -> None:
        """Wait until the series is done: stopped, and every run it submitted finished."""
        await self._done.wait()

    def __repr__(self) -> str:
        state = "done" if self.done else "stopped" if self._stopped else "running"
        return f"<Series {self.name!r} {state}, {self.submitted} submitted, {self.skipped} skipped>"

    # -- the pool's side -------------------------------------------------------

    def _stop(self) -> None:
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel(reason=f"workerpoolxt series {self.name!r} was stopped")

    def _submit(self, job: Job[Any], info: RunInfo | None) -> JobHandle[Any] | None:
        """Submit one run, or return None (and stop) if the pool no longer takes runs."""
        if self._stopped or self._pool._stop_level:
            self._stop()
            return None
        handle = self._pool._enqueue(job, info)
        self.submitted += 1
        pending = self._pending
        if len(pending) >= 64:
            pending[:] = [run for run in pending if not run.done]
        pending.append(handle)
        return handle

    async def _run(self, body: Callable[[], Awaitable[None]]) -> None:
        try:
            with trio.CancelScope() as self._scope:
                if self._stopped:
                    self._scope.cancel()
                await body()
            self._stopped = True
            self._scope = None
            # Outside the stop's reach: every run submitted gets waited for.
            for handle in self._pending:
                await handle.wait()
            if self._epilogue is not None:
                await self._epilogue()
        finally:
            self._stopped = True
            self._pending = []
            self._done.set()
            self._pool._series.discard(self)


async def run_every(
    series: Series,
    job: Job[Any],
    origin: float,
    interval: float,
    overlap: bool,
    previous: JobHandle[Any] | None,
) -> None:
    """Submit ``job`` at ``origin + k * interval`` for k = 1, 2, ..., on a grid that never drifts.

    The caller has submitted the run at ``origin`` already, if there is one.
    """
    pool = series._pool
    tick = 1
    while True:
        await trio.sleep_until(origin + tick * interval)
        # A tick runs on time or not at all. Rather than wake for every tick
        # that cannot run (its previous run not done, under overlap=False, or
        # the queue full), wait for what blocks it, then count the ticks that
        # passed meanwhile as skipped: a tiny interval costs no more than a
        # long one.
        if not overlap and previous is not None and not previous.done:
            await previous.wait()
        elif pool._max_queue is not None and pool._waiting >= pool._max_queue:
            await pool._wait_for_room()
        else:
            due = _tick_at_or_after(origin, interval, trio.current_time())
            if due > tick + 1:  # woken late, on the real clock: the ticks missed are skipped
                series.skipped += due - tick - 1
                tick = due - 1
            previous = series._submit(job, None)
            if previous is None:
                return
            tick += 1
            continue
        due = _tick_at_or_after(origin, interval, trio.current_time())
        series.skipped += due - tick
        tick = due


def _tick_at_or_after(origin: float, interval: float, now: float) -> int:
    """The first k with ``origin + k * interval >= now``, computed as ``sleep_until`` will see the times."""
    k = math.ceil((now - origin) / interval)
    # The division may round either way; the grid's own times decide.
    while origin + (k - 1) * interval >= now:
        k -= 1
    while origin + k * interval < now:
        k += 1
    return k


async def run_each(series: Series, job: Job[Any], channel: trio.abc.ReceiveChannel[Any]) -> None:
    """Submit ``job`` once per item received, until the channel closes; then close our end."""
    pool = series._pool
    with contextlib.suppress(trio.ClosedResourceError, trio.EndOfChannel):  # closed: the series ends
        async with channel:
            while True:
                # With max_queue set, wait for room before taking an item, so
                # the sender feels the back-pressure and no item is held and lost.
                await pool._wait_for_room()
                if series._stopped or pool._stop_level:
                    return
                # No local keeps the item: once its run has a Result, nothing holds it.
                series._submit(job, RunInfo(item=await channel.receive()))


def submit_batch(series: Series, job: Job[Any], tick: int, runs: int) -> list[JobHandle[Any]] | None:
    """Submit one tick's batch, or return None if the series or the pool has stopped."""
    batch = []
    for index in range(runs):
        handle = series._submit(job, RunInfo(tick=tick, index=index))
        if handle is None:
            return None
        batch.append(handle)
    return batch


async def run_batches(
    series: Series,
    job: Job[Any],
    origin: float,
    counts: Sequence[int],
    tick: float,
    on_complete: Callable[[list[Result[Any]]], Any] | None,
    first: list[JobHandle[Any]],
) -> None:
    """Submit ``counts[i]`` runs at ``origin + i * tick``; warn of ticks that overrun their slot.

    The caller has submitted the first batch already.
    """
    every_run = list(first)
    pool = series._pool
    async with trio.open_nursery() as watchers:
        watchers.start_soon(_watch_tick, series.name, 0, first, origin + tick, tick)
        for index in range(1, len(counts)):
            await trio.sleep_until(origin + index * tick)
            if counts[index]:
                await pool._wait_for_room()
            batch = submit_batch(series, job, index, counts[index])
            if batch is None:
                return
            every_run.extend(batch)
            watchers.start_soon(_watch_tick, series.name, index, batch, origin + (index + 1) * tick, tick)
        # Every batch is out: the series starts nothing more, whatever the watchers still see.
        series._stopped = True
        if on_complete is not None:
            series._epilogue = functools.partial(_complete, series.name, on_complete, every_run)


async def _complete(
    name: str, on_complete: Callable[[list[Result[Any]]], Any], every_run: list[JobHandle[Any]]
) -> None:
    results = [handle.result for handle in every_run]
    try:
        outcome = on_complete(results)  # type: ignore[arg-type]  # every handle is done
        if is_async_callable(on_complete):
            await outcome
    except Exception:
        _logger.exception("on_complete of the batches of %r raised", name)


async def _watch_tick(name: str, index: int, batch: list[JobHandle[Any]], slot_end: float, tick: float) -> None:
    with trio.move_on_at(slot_end):
        for handle in batch:
            await handle.wait()
        return
    unfinished = sum(not handle.done for handle in batch)
    if not unfinished:  # the last run ended at the very end of the slot
        return
    _logger.warning(
        "tick %d of %r overran its %gs slot: %d of %d runs unfinished",
        index,
        name,
        tick,
        unfinished,
        len(batch),
        extra={"job_name": name, "tick": index, "unfinished": unfinished},
    )


def check_counts(counts: object) -> tuple[int, ...]:
    if isinstance(counts, str | bytes) or not isinstance(counts, Sequence):
        raise TypeError(f"`counts` must be a sequence of ints, not {type(counts).__name__}")
    return tuple(count(runs, f"counts[{index}]", minimum=0) for index, runs in enumerate(counts))
