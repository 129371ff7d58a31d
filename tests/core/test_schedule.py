"""Scheduling: submit_at, submit_in, submit_every, submit_each, submit_batches, and what stops do to them."""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trio.testing
from helpers import Starts, bounded, noop, result_of, sleeper
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import wait_all_tasks_blocked

import workerpoolxt as wpxt
from workerpoolxt import (
    Job,
    JobAbandonedError,
    JobCancelledError,
    JobHandle,
    PoolClosedError,
    QueueFullError,
    Registry,
    Result,
    Series,
    Status,
    UnknownHandlerError,
    WorkerPool,
)


def never_started(result: Result[Any]) -> tuple[int, float | None, float]:
    """(attempts, started_at, duration): (0, None, 0.0) for a job that never started."""
    return (result.attempts, result.started_at, result.duration)


class VirtualTimeLog(logging.Handler):
    """Keeps each record of the ``workerpoolxt`` logger with the trio time it was logged at."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[float, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((trio.current_time(), record))

    def lines(self) -> list[tuple[float, int, str]]:
        return [(when, record.levelno, record.getMessage()) for when, record in self.records]


@pytest.fixture
def pool_log() -> Iterator[VirtualTimeLog]:
    """Records the ``workerpoolxt`` logger's output with virtual times."""
    logger = logging.getLogger("workerpoolxt")
    handler = VirtualTimeLog()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


Scheduler = Callable[[WorkerPool, Job[Any], trio.MemoryReceiveChannel[Any]], object]

SCHEDULERS: dict[str, Scheduler] = {
    "submit_at": lambda pool, job, channel: pool.submit_at(job, 5.0),
    "submit_in": lambda pool, job, channel: pool.submit_in(job, 5.0),
    "submit_every": lambda pool, job, channel: pool.submit_every(job, 5.0),
    "submit_each": lambda pool, job, channel: pool.submit_each(job, channel),
    "submit_batches": lambda pool, job, channel: pool.submit_batches(job, [1, 1], 5.0),
}
"""Each scheduling method, called with valid arguments."""

SERIES_SCHEDULERS = {name: SCHEDULERS[name] for name in ("submit_every", "submit_each", "submit_batches")}


# -- submit_in and submit_at -----------------------------------------------------------


@bounded
async def test_submit_in_queues_the_job_once_its_delay_has_passed(autojump_clock: trio.testing.MockClock) -> None:
    """A job from submit_in(job, 2) at t=0.5 waits outside the queue, then is queued and started at t=2.5."""
    async with WorkerPool(1) as pool:
        await trio.sleep(0.5)
        handle = pool.submit_in(Job(sleeper(1, "late"), name="later"), 2)
        assert (handle.job_id, handle.name, handle.done) == (0, "later", False)
        assert pool.waiting_queue_size == 0
        assert pool.statistics().submitted == 1
        await trio.sleep(1.75)
        assert (handle.done, pool.running, pool.waiting_queue_size) == (False, 0, 0)
        result = await handle.wait()
        assert trio.current_time() == 3.5
    assert (result.status, result.data, result.attempts) == (Status.SUCCEEDED, "late", 1)
    assert (result.queued_at, result.started_at, result.finished_at, result.duration) == (2.5, 2.5, 3.5, 1.0)


@bounded
async def test_submit_at_queues_the_job_at_that_clock_time(autojump_clock: trio.testing.MockClock) -> None:
    """submit_at(job, 4.0) called at t=1 starts the job at exactly t=4, and its queued_at is its due time."""
    starts = Starts()
    async with WorkerPool(2) as pool:
        await trio.sleep(1)
        handle = pool.submit_at(Job(starts.task("at")), 4)
        result = await handle.wait()
    assert starts.log == [("at", 4.0)]
    assert (result.queued_at, result.started_at, result.finished_at) == (4.0, 4.0, 4.0)


@bounded
async def test_submit_in_accepts_a_timedelta(autojump_clock: trio.testing.MockClock) -> None:
    """submit_in(job, timedelta(seconds=1.5)) starts the job at t=1.5."""
    async with WorkerPool(1) as pool:
        result = await pool.submit_in(Job(noop), datetime.timedelta(seconds=1.5)).wait()
    assert (result.status, result.queued_at, result.started_at) == (Status.SUCCEEDED, 1.5, 1.5)


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param(lambda pool, job: pool.submit_at(job, trio.current_time() - 5), id="submit_at-past"),
        pytest.param(lambda pool, job: pool.submit_at(job, trio.current_time()), id="submit_at-now"),
        pytest.param(lambda pool, job: pool.submit_at(job, -math.pi), id="submit_at-negative-clock-time"),
        pytest.param(lambda pool, job: pool.submit_in(job, 0), id="submit_in-zero"),
        pytest.param(lambda pool, job: pool.submit_in(job, -3), id="submit_in-negative"),
        pytest.param(lambda pool, job: pool.submit_in(job, datetime.timedelta(seconds=-1)), id="submit_in-timedelta"),
    ],
)
@bounded
async def test_a_time_that_has_come_queues_the_job_at_once(
    schedule: Callable[[WorkerPool, Job[Any]], JobHandle[Any]], autojump_clock: trio.testing.MockClock
) -> None:
    """A past or present time, or a delay of zero or less, submits the job during the call: the idle worker has it."""
    async with WorkerPool(1) as pool:
        await trio.sleep(2)
        handle = schedule(pool, Job(noop))
        assert (pool.running, pool.waiting_queue_size) == (1, 0)
        result = await handle.wait()
        assert trio.current_time() == 2.0
    assert (result.status, result.queued_at, result.started_at) == (Status.SUCCEEDED, 2.0, 2.0)


@bounded
async def test_scheduled_jobs_start_in_time_order_then_submission_order(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs are queued by due time, equal times in submission order, even when an earlier one is added later."""
    starts = Starts()
    async with WorkerPool(1) as pool:
        pool.submit_in(Job(starts.task("a")), 5)
        pool.submit_in(Job(starts.task("b")), 3)
        await trio.sleep(1)  # the timer task now sleeps until t=3
        pool.submit_in(Job(starts.task("d")), 0.5)  # earlier: it wakes the timer task sooner
        pool.submit_in(Job(starts.task("c")), 4)  # due at t=5, as "a" is
        pool.submit_in(Job(starts.task("e")), 10)  # later than the earliest: nothing to wake
        await trio.sleep(20)
        await pool.submit_in(Job(starts.task("f")), 1).wait()  # after the timer task has run dry
    assert starts.log == [("d", 1.5), ("b", 3.0), ("a", 5.0), ("c", 5.0), ("e", 11.0), ("f", 22.0)]


@bounded
async def test_scheduled_jobs_obey_max_workers(autojump_clock: trio.testing.MockClock) -> None:
    """Three jobs due at t=1 on two workers: two start at t=1 and the third when a worker is free."""
    async with WorkerPool(2) as pool:
        handles = [pool.submit_in(Job(sleeper(2)), 1) for _ in range(3)]
        for handle in handles:
            await handle.wait()
        assert trio.current_time() == 5.0
    assert [(r.queued_at, r.started_at, r.finished_at) for r in map(result_of, handles)] == [
        (1.0, 1.0, 3.0),
        (1.0, 1.0, 3.0),
        (1.0, 3.0, 5.0),
    ]


@bounded
async def test_max_queue_counts_a_scheduled_job_only_once_it_is_queued(autojump_clock: trio.testing.MockClock) -> None:
    """With a full queue, submit_in(job, 5) is accepted, while submit_in(job, 0) raises QueueFullError."""
    async with WorkerPool(1, max_queue=1) as pool:
        pool.submit(Job(sleeper(10)))
        await wait_all_tasks_blocked()
        pool.submit(Job(noop))
        later = pool.submit_in(Job(noop, name="later"), 5)
        assert pool.waiting_queue_size == 1
        with pytest.raises(QueueFullError):
            pool.submit_in(Job(noop), 0)
        with pytest.raises(QueueFullError):
            pool.submit_at(Job(noop), trio.current_time())
        result = await later.wait()
    assert (result.status, result.queued_at, result.started_at) == (Status.SUCCEEDED, 5.0, 10.0)


# -- cancelling a scheduled job ----------------------------------------------------------


@bounded
async def test_cancel_before_its_time_ends_the_job_cancelled_with_no_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """handle.cancel() at t=1 on a job due at t=5 ends it CANCELLED at t=1 with 0 attempts; it never runs."""
    starts = Starts()
    async with WorkerPool(1) as pool:
        handle = pool.submit_in(Job(starts.task("never"), name="planned"), 5)
        await trio.sleep(1)
        handle.cancel()
        assert handle.done
        await trio.sleep(10)  # its time passes
        assert pool.statistics().cancelled == 1
        results = await pool.stop_wait()
    assert starts.log == []
    assert results == [result_of(handle)]
    result = result_of(handle)
    assert (result.status, result.queued_at, result.finished_at) == (Status.CANCELLED, 0.0, 1.0)
    assert never_started(result) == (0, None, 0.0)
    assert isinstance(result.error, JobCancelledError)
    assert (result.error.name, result.error.reason) == ("planned", "its JobHandle was cancelled")


@bounded
async def test_a_cancelled_scheduled_job_is_not_ended_again_by_a_stop(autojump_clock: trio.testing.MockClock) -> None:
    """A scheduled job cancelled before a stop keeps its one CANCELLED Result; the stop does not abandon it."""
    async with WorkerPool(1) as pool:
        cancelled = pool.submit_in(Job(noop, name="cancelled"), 5)
        pending = pool.submit_in(Job(noop, name="pending"), 6)
        await trio.sleep(1)
        cancelled.cancel()
        results = await pool.stop()
    assert [(r.name, r.status, r.finished_at) for r in results] == [
        ("cancelled", Status.CANCELLED, 1.0),
        ("pending", Status.ABANDONED, 1.0),
    ]
    assert result_of(pending).status is Status.ABANDONED
    assert pool.statistics().abandoned == 1


@bounded
async def test_cancel_after_the_job_was_queued_cancels_it_as_a_queued_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once queued at its time behind a busy worker, a scheduled job cancels like any queued job."""
    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(10)))
        handle = pool.submit_in(Job(noop), 2)
        await trio.sleep(3)
        assert pool.waiting_queue_size == 1
        handle.cancel()
        assert pool.waiting_queue_size == 0
    result = result_of(handle)
    assert (result.status, result.queued_at, result.finished_at) == (Status.CANCELLED, 2.0, 3.0)
    assert never_started(result) == (0, None, 0.0)


# -- stops and scheduled jobs ------------------------------------------------------------


@bounded
async def test_stop_wait_abandons_jobs_waiting_for_their_time(autojump_clock: trio.testing.MockClock) -> None:
    """stop_wait() at t=1 ends a job due at t=10 ABANDONED at t=1 and returns when the running job ends at t=3."""
    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(3), name="running"))
        pending = pool.submit_in(Job(noop, name="pending"), 10)
        waited: list[Result[Any]] = []

        async def wait_for_pending() -> None:
            waited.append(await pending.wait())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_pending)
            await trio.sleep(1)
            results = await pool.stop_wait()
        assert trio.current_time() == 3.0
    assert [(r.name, r.status, r.finished_at) for r in results] == [
        ("pending", Status.ABANDONED, 1.0),
        ("running", Status.SUCCEEDED, 3.0),
    ]
    assert waited == [results[0]]
    assert never_started(results[0]) == (0, None, 0.0)
    assert isinstance(results[0].error, JobAbandonedError)
    assert results[0].error.name == "pending"


@bounded
async def test_leaving_the_block_abandons_jobs_waiting_for_their_time(autojump_clock: trio.testing.MockClock) -> None:
    """Leaving the block normally does not wait for a future time: the job ends ABANDONED at once."""
    async with WorkerPool(1) as pool:
        await trio.sleep(0.5)
        handle = pool.submit_in(Job(noop), 100)
    assert trio.current_time() == 0.5
    result = result_of(handle)
    assert (result.status, result.queued_at, result.finished_at) == (Status.ABANDONED, 0.5, 0.5)
    assert pool.statistics().abandoned == 1


@bounded
async def test_stop_abandons_jobs_waiting_for_their_time(autojump_clock: trio.testing.MockClock) -> None:
    """stop() ends a job still waiting for its time ABANDONED, and lets the running job finish."""
    async with WorkerPool(1) as pool:
        running = pool.submit(Job(sleeper(2)))
        pending = pool.submit_at(Job(noop), 50)
        await trio.sleep(1)
        await pool.stop()
        assert trio.current_time() == 2.0
    assert (result_of(pending).status, result_of(pending).finished_at) == (Status.ABANDONED, 1.0)
    assert result_of(running).status is Status.SUCCEEDED


@bounded
async def test_stop_cancel_running_cancels_jobs_waiting_for_their_time(autojump_clock: trio.testing.MockClock) -> None:
    """stop(cancel_running=True) ends a job waiting for its time CANCELLED, with 0 attempts."""
    async with WorkerPool(1) as pool:
        running = pool.submit(Job(sleeper(10)))
        pending = pool.submit_in(Job(noop, name="pending"), 5)
        await trio.sleep(1)
        results = await pool.stop(cancel_running=True)
    assert [(r.job_id, r.status, r.finished_at) for r in results] == [
        (1, Status.CANCELLED, 1.0),
        (0, Status.CANCELLED, 1.0),
    ]
    pending_result = result_of(pending)
    assert never_started(pending_result) == (0, None, 0.0)
    assert isinstance(pending_result.error, JobCancelledError)
    assert "cancel_running=True" in pending_result.error.reason
    assert result_of(running).attempts == 1


@bounded
async def test_an_exception_in_the_block_cancels_jobs_waiting_for_their_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A ValueError leaving the block ends a job waiting for its time CANCELLED, the reason naming the exit."""
    handles: list[JobHandle[Any]] = []

    async def run_pool() -> None:
        async with WorkerPool(1) as pool:
            handles.append(pool.submit(Job(sleeper(10))))
            handles.append(pool.submit_in(Job(noop), 5))
            await trio.sleep(1)
            raise ValueError("from the block")

    with pytest.raises(ValueError, match="from the block"):
        await run_pool()
    running, pending = map(result_of, handles)
    assert (running.status, pending.status) == (Status.CANCELLED, Status.CANCELLED)
    assert (pending.finished_at, never_started(pending)) == (1.0, (0, None, 0.0))
    assert isinstance(running.error, JobCancelledError)
    assert isinstance(pending.error, JobCancelledError)
    assert "exited with ValueError" in running.error.reason
    # The pool was not stopped with cancel_running=True: the reason should say what happened.
    assert "exited with ValueError" in pending.error.reason


@bounded
async def test_own_job_scheduling_while_draining(autojump_clock: trio.testing.MockClock) -> None:
    """While stop_wait drains, a job's submit_in(5) is ABANDONED at once, its submit_in(0) runs, its series fail."""
    pool = WorkerPool(2)
    seen: dict[str, object] = {}

    async def parent(options: wpxt.Options) -> None:
        await trio.sleep(1)
        future = pool.submit_in(Job(noop, name="future"), 5)
        seen["future done at once"] = future.done
        seen["future"] = future.result
        pool.submit_in(Job(sleeper(1), name="now"), 0)
        _send, receive = trio.open_memory_channel[int](0)
        for name, schedule in SERIES_SCHEDULERS.items():
            with pytest.raises(PoolClosedError, match="starts no new series"):
                schedule(pool, Job(noop), receive)
            seen[name] = "refused"

    async with pool:
        pool.submit(Job(parent, name="parent"))
        results = await pool.stop_wait()
        assert trio.current_time() == 2.0
    assert [(r.name, r.status, r.queued_at, r.started_at, r.finished_at) for r in results] == [
        ("future", Status.ABANDONED, 1.0, None, 1.0),
        ("parent", Status.SUCCEEDED, 0.0, 0.0, 1.0),
        ("now", Status.SUCCEEDED, 1.0, 1.0, 2.0),
    ]
    assert seen == {
        "future done at once": True,
        "future": results[0],
        "submit_every": "refused",
        "submit_each": "refused",
        "submit_batches": "refused",
    }


async def test_a_plain_task_may_schedule_from_its_thread(autojump_clock: trio.testing.MockClock) -> None:
    """A plain task's thread may call submit_in; the job runs 5 s after the call, with its due time as queued_at."""
    # Not @bounded: while a thread works the autojump clock jumps to the next deadline, which would be the bound's.
    pool = WorkerPool(2)

    def plain(options: wpxt.Options) -> JobHandle[None]:
        return pool.submit_in(Job(noop, name="child"), 5)

    async with pool:
        parent = await pool.submit_wait(Job(plain, name="parent"))
        assert parent.status is Status.SUCCEEDED
        assert isinstance(parent.data, JobHandle)
        child = await parent.data.wait()
    assert parent.started_at is not None
    assert child.status is Status.SUCCEEDED
    # The thread's call came between the parent's start and end; the clock may jump while a thread works.
    assert parent.started_at + 5 <= child.queued_at <= parent.finished_at + 5
    assert child.started_at == child.queued_at


# -- named handlers ----------------------------------------------------------------------


@bounded
async def test_scheduled_jobs_run_registry_handlers(autojump_clock: trio.testing.MockClock) -> None:
    """Job("greet") scheduled with submit_in runs the registered handler at its time."""
    registry = Registry()

    async def greet(options: wpxt.Options) -> str:
        return "hello"

    registry.register("greet", greet)
    async with WorkerPool(1, registry=registry) as pool:
        result = await pool.submit_in(Job("greet"), 2).wait()
    assert (result.name, result.data, result.started_at) == ("greet", "hello", 2.0)


@pytest.mark.parametrize("with_registry", [False, True], ids=["no-registry", "other-handlers"])
@pytest.mark.parametrize("method", SCHEDULERS)
@bounded
async def test_an_unknown_handler_fails_at_call_time(
    method: str, with_registry: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """Scheduling Job("missing") raises UnknownHandlerError during the call, and nothing is scheduled."""
    registry = Registry() if with_registry else None
    if registry is not None:
        registry.register("present", noop)
    _send, receive = trio.open_memory_channel[int](1)
    async with WorkerPool(1, registry=registry) as pool:
        with pytest.raises(UnknownHandlerError) as info:
            SCHEDULERS[method](pool, Job("missing"), receive)
        assert info.value.name == "missing"
        assert pool.statistics().submitted == 0
        await trio.sleep(20)
        assert pool.statistics().submitted == 0


# -- bad arguments and closed pools ---------------------------------------------------------


def receive_end() -> trio.MemoryReceiveChannel[int]:
    """The receive end of a new memory channel."""
    return trio.open_memory_channel[int](1)[1]


BAD_CALLS: list[Any] = [
    pytest.param(lambda p, j: p.submit_at(j, "x"), TypeError, "`when`", id="when-str"),
    pytest.param(lambda p, j: p.submit_at(j, True), TypeError, "`when`", id="when-bool"),
    pytest.param(lambda p, j: p.submit_at(j, datetime.timedelta(1)), TypeError, "`when`", id="when-timedelta"),
    pytest.param(lambda p, j: p.submit_at(j, math.nan), ValueError, "`when`", id="when-nan"),
    pytest.param(lambda p, j: p.submit_at(j, math.inf), ValueError, "`when`", id="when-inf"),
    pytest.param(lambda p, j: p.submit_at(j, -math.inf), ValueError, "`when`", id="when-minus-inf"),
    pytest.param(lambda p, j: p.submit_in(j, math.inf), ValueError, "`delay`", id="delay-inf"),
    pytest.param(lambda p, j: p.submit_in(j, -math.inf), ValueError, "`delay`", id="delay-minus-inf"),
    pytest.param(lambda p, j: p.submit_in(j, math.nan), ValueError, "`delay`", id="delay-nan"),
    pytest.param(lambda p, j: p.submit_in(j, "5"), TypeError, "`delay`", id="delay-str"),
    pytest.param(lambda p, j: p.submit_in(j, None), TypeError, "`delay`", id="delay-none"),
    pytest.param(lambda p, j: p.submit_at(noop, 5), TypeError, "`job`", id="submit_at-not-a-job"),
    pytest.param(lambda p, j: p.submit_in(noop, 5), TypeError, "`job`", id="submit_in-not-a-job"),
    pytest.param(lambda p, j: p.submit_every(j, 0), ValueError, "`interval`", id="interval-zero"),
    pytest.param(lambda p, j: p.submit_every(j, -1), ValueError, "`interval`", id="interval-negative"),
    pytest.param(lambda p, j: p.submit_every(j, math.inf), ValueError, "`interval`", id="interval-inf"),
    pytest.param(lambda p, j: p.submit_every(j, "1"), TypeError, "`interval`", id="interval-str"),
    pytest.param(lambda p, j: p.submit_every(j, 1, overlap=1), TypeError, "`overlap`", id="overlap-int"),
    pytest.param(
        lambda p, j: p.submit_every(j, 1, first_at_once=None), TypeError, "`first_at_once`", id="first_at_once-none"
    ),
    pytest.param(lambda p, j: p.submit_every(noop, 1), TypeError, "`job`", id="submit_every-not-a-job"),
    pytest.param(lambda p, j: p.submit_each(j, [1, 2]), TypeError, "`receive_channel`", id="channel-list"),
    pytest.param(
        lambda p, j: p.submit_each(j, trio.open_memory_channel[int](1)[0]),
        TypeError,
        "`receive_channel`",
        id="channel-send-end",
    ),
    pytest.param(lambda p, j: p.submit_each(noop, receive_end()), TypeError, "`job`", id="submit_each-not-a-job"),
    pytest.param(lambda p, j: p.submit_batches(j, "abc", 1), TypeError, "`counts`", id="counts-str"),
    pytest.param(lambda p, j: p.submit_batches(j, b"ab", 1), TypeError, "`counts`", id="counts-bytes"),
    pytest.param(lambda p, j: p.submit_batches(j, 3, 1), TypeError, "`counts`", id="counts-int"),
    pytest.param(lambda p, j: p.submit_batches(j, {1, 2}, 1), TypeError, "`counts`", id="counts-set"),
    pytest.param(lambda p, j: p.submit_batches(j, [1, -1], 1), ValueError, "`counts[1]`", id="counts-negative"),
    pytest.param(lambda p, j: p.submit_batches(j, [1.5], 1), TypeError, "`counts[0]`", id="counts-float"),
    pytest.param(lambda p, j: p.submit_batches(j, [2, True], 1), TypeError, "`counts[1]`", id="counts-bool"),
    pytest.param(lambda p, j: p.submit_batches(j, [1], 0), ValueError, "`tick`", id="tick-zero"),
    pytest.param(lambda p, j: p.submit_batches(j, [1], 10**400), ValueError, "`tick`", id="tick-huge"),
    pytest.param(lambda p, j: p.submit_in(j, 10**400), ValueError, "`delay` must be finite", id="delay-huge"),
    pytest.param(lambda p, j: p.submit_in(j, -math.inf), ValueError, "`delay` must be finite", id="delay-minus-inf"),
    pytest.param(lambda p, j: p.submit_at(j, 10**400), ValueError, "`when` must be finite", id="when-huge"),
    pytest.param(lambda p, j: p.submit_every(j, 10**400), ValueError, "`interval`", id="interval-huge"),
    pytest.param(lambda p, j: p.submit_batches(j, [1], "1"), TypeError, "`tick`", id="tick-str"),
    pytest.param(lambda p, j: p.submit_batches(j, [1], 1, on_complete=5), TypeError, "`on_complete`", id="callback"),
    pytest.param(lambda p, j: p.submit_batches(noop, [1], 1), TypeError, "`job`", id="submit_batches-not-a-job"),
]


@pytest.mark.parametrize(("call", "error", "name"), BAD_CALLS)
@bounded
async def test_bad_arguments_raise_naming_the_parameter(
    call: Callable[[WorkerPool, Job[Any]], object],
    error: type[Exception],
    name: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A bad argument raises TypeError/ValueError naming it, and schedules nothing."""
    async with WorkerPool(1) as pool:
        with pytest.raises(error) as info:
            call(pool, Job(noop))
        assert name in str(info.value)
        await trio.sleep(10)
        assert pool.statistics().submitted == 0


@pytest.mark.parametrize("method", SCHEDULERS)
async def test_scheduling_before_entering_raises_pool_closed_error(method: str) -> None:
    """Every scheduling method called before the pool is entered raises PoolClosedError."""
    pool = WorkerPool(1)
    with pytest.raises(PoolClosedError, match="not running yet"):
        SCHEDULERS[method](pool, Job(noop), receive_end())


@pytest.mark.parametrize("method", SCHEDULERS)
def test_scheduling_before_entering_from_sync_code_raises_pool_closed_error(method: str) -> None:
    """Outside trio.run, as submit() does, every scheduling method raises PoolClosedError for an unentered pool."""
    pool = WorkerPool(1)
    with pytest.raises(PoolClosedError, match="not running yet"):
        SCHEDULERS[method](pool, Job(noop), receive_end())


@pytest.mark.parametrize("method", SCHEDULERS)
@bounded
async def test_scheduling_after_the_pool_stopped_raises_pool_closed_error(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Every scheduling method called after leaving the block raises PoolClosedError."""
    async with WorkerPool(1) as pool:
        pass
    with pytest.raises(PoolClosedError):
        SCHEDULERS[method](pool, Job(noop), receive_end())


STOPS: dict[str, Callable[[WorkerPool], Awaitable[object]]] = {
    "stop_wait": lambda pool: pool.stop_wait(),
    "stop": lambda pool: pool.stop(),
    "stop-cancel_running": lambda pool: pool.stop(cancel_running=True),
}


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("method", SCHEDULERS)
@bounded
async def test_scheduling_from_outside_once_a_stop_is_called_raises_pool_closed_error(
    method: str, stop: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Once any stop is called, even while a job still runs, scheduling from outside the jobs raises PoolClosedError."""
    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(1)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(STOPS[stop], pool)
            await wait_all_tasks_blocked()
            assert pool.stopped
            with pytest.raises(PoolClosedError):
                SCHEDULERS[method](pool, Job(noop), receive_end())
    assert pool.statistics().submitted == 1


# -- submit_every ------------------------------------------------------------------------


@bounded
async def test_submit_every_runs_on_a_fixed_grid_from_the_call(autojump_clock: trio.testing.MockClock) -> None:
    """Called at t=0.25 with interval 1, runs start at 0.25, 1.25, 2.25 and 3.25 until the series is stopped."""
    starts = Starts()
    async with WorkerPool(2) as pool:
        await trio.sleep(0.25)
        series = pool.submit_every(Job(starts.task("run", 0.5), name="tick"), 1)
        assert isinstance(series, Series)
        assert series.name == "tick"
        await trio.sleep_until(3.5)
        assert (series.submitted, series.skipped, series.stopped, series.done) == (4, 0, False, False)
        series.stop()
        await series.wait()
        assert trio.current_time() == 3.75
        results = await pool.stop_wait()
    assert starts.times() == [0.25, 1.25, 2.25, 3.25]
    assert [(r.name, r.queued_at, r.finished_at) for r in results] == [
        ("tick", 0.25, 0.75),
        ("tick", 1.25, 1.75),
        ("tick", 2.25, 2.75),
        ("tick", 3.25, 3.75),
    ]
    assert (series.submitted, series.stopped, series.done) == (4, True, True)


@bounded
async def test_submit_every_not_first_at_once_starts_one_interval_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With first_at_once=False and interval 2 (a timedelta), runs start at 2, 4 and 6."""
    starts = Starts()
    async with WorkerPool(1) as pool:
        series = pool.submit_every(Job(starts.task("run")), datetime.timedelta(seconds=2), first_at_once=False)
        await trio.sleep(1.5)
        assert series.submitted == 0
        await trio.sleep_until(7)
        series.stop()
    assert starts.times() == [2.0, 4.0, 6.0]
    assert series.submitted == 3


@bounded
async def test_submit_every_keeps_its_grid_when_runs_start_late(autojump_clock: trio.testing.MockClock) -> None:
    """Runs delayed behind a busy worker are still queued exactly on the grid, and the grid does not drift."""
    starts = Starts()
    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(3), name="blocker"))
        series = pool.submit_every(Job(starts.task("run", 0.5), name="run"), 2, overlap=True)
        await trio.sleep_until(7)
        series.stop()
        results = await pool.stop_wait()
    runs = [r for r in results if r.name == "run"]
    assert [(r.queued_at, r.started_at) for r in runs] == [(0.0, 3.0), (2.0, 3.5), (4.0, 4.0), (6.0, 6.0)]


@bounded
async def test_submit_every_without_overlap_skips_ticks_while_a_run_is_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Runs of 2.5 s every 1 s with overlap=False start at 0, 3 and 6; four ticks in between are skipped."""
    starts = Starts()
    async with WorkerPool(2) as pool:
        series = pool.submit_every(Job(starts.task("run", 2.5)), 1)
        await trio.sleep_until(6.5)
        assert pool.running == 1
        series.stop()
        await series.wait()
        assert trio.current_time() == 8.5
    assert starts.times() == [0.0, 3.0, 6.0]
    assert (series.submitted, series.skipped) == (3, 4)
    assert repr(series) == "<Series 'record_then_sleep' done, 3 submitted, 4 skipped>"


@bounded
async def test_submit_every_without_overlap_skips_ticks_while_a_run_is_queued(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run still queued behind a blocker counts as not done: ticks 1-4 are skipped, the next run is queued at 5."""
    starts = Starts()
    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(4.5), name="blocker"))
        series = pool.submit_every(Job(starts.task("run", 0.25)), 1)
        await trio.sleep_until(5.5)
        series.stop()
    assert starts.times() == [4.5, 5.0]
    assert (series.submitted, series.skipped) == (2, 4)


@bounded
async def test_submit_every_with_overlap_runs_at_every_tick(autojump_clock: trio.testing.MockClock) -> None:
    """With overlap=True, runs of 2.5 s every 1 s start at every tick and three run at once."""
    starts = Starts()
    async with WorkerPool(3) as pool:
        series = pool.submit_every(Job(starts.task("run", 2.5)), 1, overlap=True)
        await trio.sleep_until(2.25)
        assert pool.running == 3
        await trio.sleep_until(3.5)
        series.stop()
        await series.wait()
        assert trio.current_time() == 5.5
    assert starts.times() == [0.0, 1.0, 2.0, 3.0]
    assert (series.submitted, series.skipped) == (4, 0)


@bounded
async def test_series_state_from_running_through_stopped_to_done(autojump_clock: trio.testing.MockClock) -> None:
    """stop() starts no more runs but lets a running one finish; wait() returns when it has, and done turns True."""
    async with WorkerPool(1) as pool:
        series = pool.submit_every(Job(sleeper(2), name="beat"), 10)
        await trio.sleep(0.5)
        assert repr(series) == "<Series 'beat' running, 1 submitted, 0 skipped>"
        series.stop()
        assert (series.stopped, series.done) == (True, False)
        assert repr(series) == "<Series 'beat' stopped, 1 submitted, 0 skipped>"
        await series.wait()
        assert trio.current_time() == 2.0
        assert (series.stopped, series.done) == (True, True)
        assert repr(series) == "<Series 'beat' done, 1 submitted, 0 skipped>"
        series.stop()  # stopping again changes nothing
        await series.wait()
        await trio.sleep(30)
        assert series.submitted == 1
        assert pool.statistics().submitted == 1


@bounded
async def test_a_series_stopped_before_its_first_tick_submits_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """series.stop() straight after submit_every(first_at_once=False), before its task ran, submits no run at all."""
    async with WorkerPool(1) as pool:
        series = pool.submit_every(Job(noop), 1, first_at_once=False)
        series.stop()
        await series.wait()
        assert trio.current_time() == 0.0
        await trio.sleep(5)
    assert (series.submitted, series.done) == (0, True)
    assert pool.statistics().submitted == 0


@bounded
async def test_each_run_is_an_ordinary_job_with_its_own_result(autojump_clock: trio.testing.MockClock) -> None:
    """The runs of a series appear in stop_wait's list with their own job ids, between the pool's other jobs."""
    async with WorkerPool(2) as pool:
        pool.submit(Job(sleeper(0.5), name="before"))
        series = pool.submit_every(Job(sleeper(0.25, "ran"), name="every"), 1)
        await trio.sleep(2.5)
        pool.submit(Job(sleeper(0.5), name="after"))
        series.stop()
        results = await pool.stop_wait()
    assert [(r.job_id, r.name, r.data, r.finished_at) for r in results] == [
        (1, "every", "ran", 0.25),
        (0, "before", None, 0.5),
        (2, "every", "ran", 1.25),
        (3, "every", "ran", 2.25),
        (4, "after", None, 3.0),
    ]


@bounded
async def test_stop_wait_stops_every_series_and_runs_their_queued_runs(autojump_clock: trio.testing.MockClock) -> None:
    """stop_wait at t=2.5 submits no more runs but still runs the two already queued, ending at t=9."""
    starts = Starts()
    async with WorkerPool(1) as pool:
        series = pool.submit_every(Job(starts.task("run", 3)), 1, overlap=True)
        other = pool.submit_every(Job(noop), 100)
        await trio.sleep(2.5)
        results = await pool.stop_wait()
        assert trio.current_time() == 9.0
    assert (series.stopped, series.done, series.submitted) == (True, True, 3)
    assert (other.stopped, other.done, other.submitted) == (True, True, 1)
    runs = [r for r in results if r.name == "record_then_sleep"]
    assert [(r.status, r.queued_at, r.started_at) for r in runs] == [
        (Status.SUCCEEDED, 0.0, 0.0),
        (Status.SUCCEEDED, 1.0, 3.0),
        (Status.SUCCEEDED, 2.0, 6.0),
    ]


@bounded
async def test_stop_stops_every_series_and_abandons_their_queued_runs(autojump_clock: trio.testing.MockClock) -> None:
    """stop() at t=2.5 abandons the two queued runs and returns once the running one ends at t=3."""
    async with WorkerPool(1) as pool:
        series = pool.submit_every(Job(sleeper(3)), 1, overlap=True)
        await trio.sleep(2.5)
        results = await pool.stop()
        assert trio.current_time() == 3.0
        await series.wait()
    assert [(r.job_id, r.status, r.finished_at) for r in results] == [
        (1, Status.ABANDONED, 2.5),
        (2, Status.ABANDONED, 2.5),
        (0, Status.SUCCEEDED, 3.0),
    ]
    assert (series.submitted, series.done) == (3, True)


@bounded
async def test_stop_cancel_running_stops_every_series_and_cancels_its_running_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """stop(cancel_running=True) at t=2.5 cancels the running run, abandons the queued ones and ends the series."""
    async with WorkerPool(1) as pool:
        series = pool.submit_every(Job(sleeper(3)), 1, overlap=True)
        await trio.sleep(2.5)
        results = await pool.stop(cancel_running=True)
        assert trio.current_time() == 2.5
        await series.wait()
    assert [(r.job_id, r.status, r.attempts, r.finished_at) for r in results] == [
        (1, Status.ABANDONED, 0, 2.5),
        (2, Status.ABANDONED, 0, 2.5),
        (0, Status.CANCELLED, 1, 2.5),
    ]
    assert (series.submitted, series.stopped, series.done) == (3, True, True)


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(lambda pool, job: pool.submit_every(job, 10), id="submit_every"),
        pytest.param(lambda pool, job: pool.submit_batches(job, [1, 1], 10), id="submit_batches"),
    ],
)
@bounded
async def test_leaving_the_block_still_runs_a_first_run_whose_time_has_come(
    start: Callable[[WorkerPool, Job[Any]], Series], autojump_clock: trio.testing.MockClock
) -> None:
    """A first run due at the call time is not in the future: leaving the block right after runs it, as submit_in(0)."""
    async with WorkerPool(1) as pool:
        series = start(pool, Job(sleeper(1), name="first"))
        handle = pool.submit_in(Job(sleeper(1), name="now"), 0)
    assert result_of(handle).status is Status.SUCCEEDED
    assert series.done
    assert series.submitted == 1
    assert pool.statistics().succeeded == 2


@bounded
async def test_series_wait_waits_for_runs_it_no_longer_tracks_closely(autojump_clock: trio.testing.MockClock) -> None:
    """After 70 runs, most already done and forgotten, wait() still waits for the one long run: until t=50."""

    async def item_seconds(options: wpxt.Options) -> None:
        await trio.sleep(wpxt.current_job().item)

    send, receive = trio.open_memory_channel[float](100)
    async with WorkerPool(100) as pool:
        series = pool.submit_each(Job(item_seconds), receive)
        async with send:
            await send.send(50)
            for _ in range(69):
                await send.send(0)
                await trio.sleep(0.125)
        await series.wait()
        assert trio.current_time() == 50.0
    assert (series.submitted, pool.statistics().succeeded) == (70, 70)


async def test_series_stop_from_a_plain_tasks_thread(autojump_clock: trio.testing.MockClock) -> None:
    """A plain task may stop a series from its thread, as it may cancel a handle: no run is submitted after."""
    # Not @bounded: the autojump clock jumps while the thread works, and could jump to the bound's deadline.
    async with WorkerPool(2) as pool:
        series = pool.submit_every(Job(noop, name="every"), 1)

        def stop_series(options: wpxt.Options) -> str:
            series.stop()
            return "stopped"

        await trio.sleep(2.5)
        stopper = await pool.submit_wait(Job(stop_series))
        await series.wait()
        results = await pool.stop_wait()
    assert (stopper.status, stopper.data) == (Status.SUCCEEDED, "stopped")
    runs = [r for r in results if r.name == "every"]
    assert len(runs) == series.submitted
    assert all(r.queued_at <= stopper.finished_at for r in runs)


# -- submit_each -------------------------------------------------------------------------


@bounded
async def test_submit_each_runs_once_per_item_until_the_channel_closes(autojump_clock: trio.testing.MockClock) -> None:
    """Each item sent becomes one run seeing it as current_job().item; closing the channel ends the series."""

    async def double(options: wpxt.Options) -> object:
        job = wpxt.current_job()
        assert (job.tick, job.index) == (None, None)
        return (trio.current_time(), job.item * 2)

    send, receive = trio.open_memory_channel[int](0)
    async with WorkerPool(2) as pool:
        series = pool.submit_each(Job(double, name="each"), receive)
        async with send:
            for item in (1, 2, 3):
                await send.send(item)
                await trio.sleep(1)
        await series.wait()
        assert trio.current_time() == 3.0
        assert (series.stopped, series.done, series.submitted) == (True, True, 3)
        results = await pool.stop_wait()
    assert [(r.name, r.data) for r in results] == [("each", (0.0, 2)), ("each", (1.0, 4)), ("each", (2.0, 6))]
    with pytest.raises(trio.ClosedResourceError):
        receive.receive_nowait()


@bounded
async def test_current_job_item_is_only_for_submit_each_runs(autojump_clock: trio.testing.MockClock) -> None:
    """current_job().item raises LookupError in other jobs, and their tick and index are None."""
    seen: list[object] = []

    async def look(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen.append((job.tick, job.index))
        with pytest.raises(LookupError, match="only submit_each"):
            job.item  # noqa: B018

    async with WorkerPool(1) as pool:
        first = pool.submit(Job(look))
        second = pool.submit_in(Job(look), 1)
        series = pool.submit_every(Job(look), 10)
        await trio.sleep(2)
        series.stop()
    assert seen == [(None, None)] * 3
    assert (result_of(first).status, result_of(second).status) == (Status.SUCCEEDED, Status.SUCCEEDED)
    assert pool.statistics().succeeded == 3


@bounded
async def test_submit_each_closes_its_end_when_stopped(autojump_clock: trio.testing.MockClock) -> None:
    """series.stop() closes the series' receive end: the sender's next send raises BrokenResourceError."""
    send, receive = trio.open_memory_channel[int](1)
    async with WorkerPool(1) as pool:
        series = pool.submit_each(Job(noop), receive)
        await send.send(1)
        await trio.sleep(1)
        series.stop()
        await series.wait()
        with pytest.raises(trio.BrokenResourceError):
            await send.send(2)
    assert series.submitted == 1


@bounded
async def test_a_pool_stop_ends_submit_each_and_closes_the_channel(autojump_clock: trio.testing.MockClock) -> None:
    """Leaving the block stops a series waiting for items at once and closes its end of the channel."""
    send, receive = trio.open_memory_channel[int](1)
    async with WorkerPool(1) as pool:
        series = pool.submit_each(Job(noop), receive)
        await trio.sleep(5)
    assert trio.current_time() == 5.0
    assert (series.stopped, series.done, series.submitted) == (True, True, 0)
    with pytest.raises(trio.BrokenResourceError):
        send.send_nowait(1)


@bounded
async def test_an_item_received_as_the_series_stops_starts_no_run(autojump_clock: trio.testing.MockClock) -> None:
    """An item handed over in the same step as series.stop() is not run: a stopped series starts nothing."""
    send, receive = trio.open_memory_channel[str](0)
    async with WorkerPool(1) as pool:
        series = pool.submit_each(Job(noop), receive)
        await send.send("first")
        await wait_all_tasks_blocked()
        send.send_nowait("late")  # the series' task is woken with it ...
        series.stop()  # ... but is stopped before it runs
        await series.wait()
    assert series.submitted == 1
    assert pool.statistics().submitted == 1


@pytest.mark.parametrize(
    ("max_queue", "send_times", "start_times"),
    [
        pytest.param(None, [0.0] * 5, [0.0, 10.0, 20.0, 30.0, 40.0], id="unbounded"),
        pytest.param(1, [0.0, 0.0, 10.0, 20.0, 30.0], [0.0, 10.0, 20.0, 30.0, 40.0], id="max_queue-1"),
    ],
)
@bounded
async def test_submit_each_waits_for_room_so_the_sender_feels_back_pressure(
    max_queue: int | None,
    send_times: list[float],
    start_times: list[float],
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With max_queue=1 and one 10 s worker, an item is taken only when the queue has room; without it, at once."""
    starts = Starts()
    sent: list[float] = []
    send, receive = trio.open_memory_channel[int](0)
    async with WorkerPool(1, max_queue=max_queue) as pool:
        series = pool.submit_each(Job(starts.task("run", 10)), receive)
        async with send:
            for item in range(5):
                await send.send(item)
                sent.append(trio.current_time())
        await series.wait()
    assert sent == send_times
    assert starts.times() == start_times


@bounded
async def test_cancelling_a_queued_job_makes_room_for_the_next_item(autojump_clock: trio.testing.MockClock) -> None:
    """With max_queue=1 full, submit_each holds its item; cancelling the queued job at t=1 lets it in at t=1."""
    starts = Starts()
    send, receive = trio.open_memory_channel[str](5)
    async with WorkerPool(1, max_queue=1) as pool:
        pool.submit(Job(sleeper(10), name="blocker"))
        await wait_all_tasks_blocked()
        queued = pool.submit(Job(noop, name="queued"))
        series = pool.submit_each(Job(starts.task("run")), receive)
        async with send:
            send.send_nowait("item")
        await trio.sleep(1)
        assert series.submitted == 0
        queued.cancel()
        await series.wait()
        results = await pool.stop_wait()
    assert [(r.name, r.status, r.queued_at, r.started_at) for r in results] == [
        ("queued", Status.CANCELLED, 0.0, None),
        ("blocker", Status.SUCCEEDED, 0.0, 0.0),
        ("record_then_sleep", Status.SUCCEEDED, 1.0, 10.0),
    ]


# -- submit_batches ----------------------------------------------------------------------


@bounded
async def test_submit_batches_starts_each_tick_on_time_and_reports_in_order(
    autojump_clock: trio.testing.MockClock, pool_log: VirtualTimeLog
) -> None:
    """counts=[3, 5, 2], tick=20 from t=0.5: 3 runs at 0.5, 5 at 20.5, 2 at 40.5; on_complete gets all 10 at 41.5."""
    started: list[tuple[float, int | None, int | None]] = []
    completed: list[tuple[float, list[object]]] = []

    async def run(options: wpxt.Options) -> object:
        job = wpxt.current_job()
        started.append((trio.current_time(), job.tick, job.index))
        await trio.sleep(1)
        return (job.tick, job.index)

    def on_complete(results: list[Result[Any]]) -> None:
        completed.append((trio.current_time(), [r.data for r in results]))

    async with WorkerPool(10) as pool:
        await trio.sleep(0.5)
        series = pool.submit_batches(Job(run, name="batch"), counts=[3, 5, 2], tick=20.0, on_complete=on_complete)
        await series.wait()
        assert trio.current_time() == 41.5
    expected = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0), (2, 1)]
    assert sorted(started) == [(0.5 + 20 * tick, tick, index) for tick, index in expected]
    assert completed == [(41.5, expected)]
    assert (series.submitted, series.stopped, series.done) == (10, True, True)
    assert pool_log.records == []


@bounded
async def test_submit_batches_results_in_tick_and_index_order_not_completion_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Runs ending in reverse order still reach an async on_complete in tick and index order, which wait() awaits."""
    received: list[list[object]] = []

    async def reverse(options: wpxt.Options) -> int:
        job = wpxt.current_job()
        assert job.index is not None
        await trio.sleep(3 - job.index)
        return job.index

    async def on_complete(results: list[Result[Any]]) -> None:
        await trio.sleep(5)
        received.append([r.data for r in results])

    async with WorkerPool(3) as pool:
        series = pool.submit_batches(Job(reverse), [3], datetime.timedelta(seconds=10), on_complete=on_complete)
        await series.wait()
        assert trio.current_time() == 8.0
    assert received == [[0, 1, 2]]


@bounded
async def test_a_batch_that_overruns_its_slot_is_logged_and_the_next_starts_on_time(
    autojump_clock: trio.testing.MockClock, pool_log: VirtualTimeLog
) -> None:
    """Runs of 15 s with tick 10: a warning at t=10 for tick 0 and at t=20 for tick 1, and tick 1 starts at 10."""
    starts = Starts()
    async with WorkerPool(10) as pool:
        series = pool.submit_batches(Job(starts.task("run", 15), name="slow"), [2, 1], 10)
        await series.wait()
        assert trio.current_time() == 25.0
    assert starts.times() == [0.0, 0.0, 10.0]
    assert pool_log.lines() == [
        (10.0, logging.WARNING, "tick 0 of 'slow' overran its 10s slot: 2 of 2 runs unfinished"),
        (20.0, logging.WARNING, "tick 1 of 'slow' overran its 10s slot: 1 of 1 runs unfinished"),
    ]
    record = pool_log.records[0][1]
    assert record.name == "workerpoolxt"
    assert (record.job_name, record.tick, record.unfinished) == ("slow", 0, 2)  # type: ignore[attr-defined]


@bounded
async def test_the_overrun_warning_counts_only_unfinished_runs(
    autojump_clock: trio.testing.MockClock, pool_log: VirtualTimeLog
) -> None:
    """Of three runs, one done in 5 s and two of 15 s, the tick-10 warning counts 2 of 3 unfinished."""

    async def by_index(options: wpxt.Options) -> None:
        await trio.sleep(5 if wpxt.current_job().index == 0 else 15)

    async with WorkerPool(3) as pool:
        series = pool.submit_batches(Job(by_index, name="mixed"), [3], 10)
        await series.wait()
    assert pool_log.lines() == [
        (10.0, logging.WARNING, "tick 0 of 'mixed' overran its 10s slot: 2 of 3 runs unfinished"),
    ]


@bounded
async def test_a_batch_finishing_exactly_at_its_slot_end_never_reports_zero_unfinished_runs(
    autojump_clock: trio.testing.MockClock, pool_log: VirtualTimeLog
) -> None:
    """A batch ending at the instant its slot ends may count as late, but never warns of 0 unfinished runs."""
    for _ in range(16):  # the two orders in which trio may run the run's end and the slot's end
        async with WorkerPool(1) as pool:
            await pool.submit_batches(Job(sleeper(10), name="exact"), [1], 10).wait()
    # Whether a run ending at the slot's end counts as late is a race; a warning of 0 unfinished runs is wrong.
    assert all(record.unfinished == 1 for _, record in pool_log.records)  # type: ignore[attr-defined]


@bounded
async def test_batches_queue_behind_max_workers_and_within_the_slot_log_nothing(
    autojump_clock: trio.testing.MockClock, pool_log: VirtualTimeLog
) -> None:
    """A batch of 3 runs of 4 s on 2 workers runs as ordinary jobs, 0/0/4, and ends within its 10 s slot."""
    starts = Starts()
    async with WorkerPool(2) as pool:
        series = pool.submit_batches(Job(starts.task("run", 4)), [3], 10)
        await series.wait()
        assert trio.current_time() == 8.0
    assert starts.times() == [0.0, 0.0, 4.0]
    assert pool_log.records == []


@bounded
async def test_batches_with_empty_ticks(autojump_clock: trio.testing.MockClock) -> None:
    """counts=[0, 2, 0] starts two runs at t=5 and nothing else; counts=[] calls on_complete([]) at once."""
    starts = Starts()
    calls: list[tuple[float, list[Result[Any]]]] = []
    async with WorkerPool(2) as pool:
        empty = pool.submit_batches(
            Job(noop), [], 5, on_complete=lambda results: calls.append((trio.current_time(), results))
        )
        series = pool.submit_batches(Job(starts.task("run")), (0, 2, 0), 5)
        await empty.wait()
        assert (trio.current_time(), empty.submitted, empty.done) == (0.0, 0, True)
        await series.wait()
        assert trio.current_time() == 10.0
    assert calls == [(0.0, [])]
    assert starts.times() == [5.0, 5.0]
    assert series.submitted == 2


@bounded
async def test_on_complete_is_not_called_when_the_series_is_stopped_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Stopping at t=25 of counts=[3, 5, 2], tick=20, leaves tick 2 unsubmitted and on_complete uncalled."""
    calls: list[object] = []
    async with WorkerPool(10) as pool:
        series = pool.submit_batches(Job(sleeper(1)), [3, 5, 2], 20, on_complete=calls.append)
        await trio.sleep(25)
        series.stop()
        await series.wait()
        assert trio.current_time() == 25.0
        await trio.sleep(50)
    assert calls == []
    assert (series.submitted, pool.statistics().submitted) == (8, 8)


@bounded
async def test_a_pool_stop_ends_batches_without_calling_on_complete(autojump_clock: trio.testing.MockClock) -> None:
    """stop_wait at t=5 runs tick 0's queued runs but submits no later tick, and on_complete is not called."""
    calls: list[object] = []
    async with WorkerPool(1) as pool:
        series = pool.submit_batches(Job(sleeper(3)), [3, 3], 20, on_complete=calls.append)
        await trio.sleep(5)
        results = await pool.stop_wait()
        assert trio.current_time() == 9.0
    assert [r.status for r in results] == [Status.SUCCEEDED] * 3
    assert (calls, series.submitted, series.done) == ([], 3, True)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@bounded
async def test_an_on_complete_error_is_logged_and_the_pool_keeps_going(
    is_async: bool, autojump_clock: trio.testing.MockClock, pool_log: VirtualTimeLog
) -> None:
    """on_complete raising ValueError is logged with its traceback at t=1; the series ends and later jobs run."""

    def sync_callback(results: list[Result[Any]]) -> None:
        raise ValueError("report failed")

    async def async_callback(results: list[Result[Any]]) -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("report failed")

    async with WorkerPool(1) as pool:
        series = pool.submit_batches(
            Job(sleeper(1), name="batch"), [1], 10, on_complete=async_callback if is_async else sync_callback
        )
        await series.wait()
        later = await pool.submit_wait(Job(sleeper(1, "later")))
    assert pool_log.lines() == [(1.0, logging.ERROR, "on_complete of the batches of 'batch' raised")]
    exc_info = pool_log.records[0][1].exc_info
    assert exc_info is not None
    assert isinstance(exc_info[1], ValueError)
    assert (series.done, later.data, later.finished_at) == (True, "later", 2.0)


# -- properties --------------------------------------------------------------------------

schedule_specs = st.lists(
    st.tuples(st.integers(min_value=0, max_value=40), st.none() | st.integers(min_value=0, max_value=40)),
    min_size=1,
    max_size=12,
)


async def run_scheduled_jobs(specs: list[tuple[int, int | None]], stop_quarter: int) -> None:
    """Schedule each (due quarter, cancel quarter) job, stop at ``stop_quarter`` + 1/16, and check every Result."""
    stop_at = stop_quarter / 4 + 1 / 16
    handles: list[JobHandle[Any]] = []

    async def cancel_at(when: float, handle: JobHandle[Any]) -> None:
        await trio.sleep_until(when)
        handle.cancel()

    async with WorkerPool(len(specs)) as pool, trio.open_nursery() as cancellers:
        for due_quarter, cancel_quarter in specs:
            handle = pool.submit_at(Job(noop), due_quarter / 4)
            handles.append(handle)
            if cancel_quarter is not None:
                cancellers.start_soon(cancel_at, cancel_quarter / 4 + 1 / 8, handle)
        await trio.sleep_until(stop_at)
        results = await pool.stop()

    assert sorted(r.job_id for r in results) == list(range(len(specs)))
    for (due_quarter, cancel_quarter), handle in zip(specs, handles, strict=True):
        due = due_quarter / 4
        cancel = math.inf if cancel_quarter is None else cancel_quarter / 4 + 1 / 8
        result = result_of(handle)
        if cancel < min(due, stop_at):
            assert (result.status, result.finished_at) == (Status.CANCELLED, cancel)
            assert never_started(result) == (0, None, 0.0)
        elif due < stop_at:
            assert (result.status, result.queued_at, result.started_at) == (Status.SUCCEEDED, due, due)
        else:
            assert (result.status, result.finished_at) == (Status.ABANDONED, stop_at)
            assert never_started(result) == (0, None, 0.0)


@settings(max_examples=60, deadline=None)
@given(specs=schedule_specs, stop_quarter=st.integers(min_value=0, max_value=44))
def test_property_every_scheduled_job_ends_in_one_result_at_the_right_time(
    specs: list[tuple[int, int | None]], stop_quarter: int
) -> None:
    """Any mix of due times, cancels and a stop: one Result each, run at its due time, cancelled or abandoned."""
    trio.run(run_scheduled_jobs, specs, stop_quarter, clock=trio.testing.MockClock(autojump_threshold=0))


# -- edges of the series ---------------------------------------------------------------


@bounded
async def test_submit_each_ends_quietly_when_its_owner_closes_the_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Closing the receive channel from outside ends the series; nothing escapes the block."""
    send, receive = trio.open_memory_channel[int](10)
    async with WorkerPool(2) as pool:
        series = pool.submit_each(Job(noop, name="each"), receive)
        await send.send(1)
        await wait_all_tasks_blocked()
        await receive.aclose()
        await series.wait()
        assert trio.current_time() == 0.0
    assert series.done
    assert series.submitted == 1


@bounded
async def test_submit_every_skips_a_tick_that_finds_the_queue_full(autojump_clock: trio.testing.MockClock) -> None:
    """A tick that finds the queue at max_queue is skipped and counted, and later ticks keep the grid."""
    starts: list[float] = []

    async def record(options: wpxt.Options) -> None:
        starts.append(trio.current_time())

    async with WorkerPool(1, max_queue=1) as pool:
        blocker = pool.submit(Job(sleeper(2.5), name="blocker"))
        await wait_all_tasks_blocked()  # the worker has taken it
        filler = pool.submit(Job(noop, name="filler"))  # queued: the queue is now full
        series = pool.submit_every(Job(record, name="tick"), 1, overlap=True, first_at_once=False)
        await trio.sleep(4.5)
        series.stop()
        await series.wait()
    assert result_of(blocker).status is Status.SUCCEEDED
    assert result_of(filler).started_at == 2.5
    # Ticks at 1 and 2 find the queue full; those at 3 and 4 run.
    assert series.skipped == 2
    assert starts == [3.0, 4.0]


@bounded
async def test_on_complete_fires_when_stop_wait_drains_the_last_batch(autojump_clock: trio.testing.MockClock) -> None:
    """With every batch submitted, stop_wait() waits for the runs and on_complete still fires, at the last run's end."""
    seen: list[tuple[float, list[Status]]] = []

    def complete(results: list[Result[Any]]) -> None:
        seen.append((trio.current_time(), [result.status for result in results]))

    async with WorkerPool(4) as pool:
        series = pool.submit_batches(Job(sleeper(3), name="batch"), [1, 2], 1, on_complete=complete)
        await trio.sleep(1.5)  # both batches are out
        assert series.stopped
        await pool.stop_wait()
        assert trio.current_time() == 4.0
    assert seen == [(4.0, [Status.SUCCEEDED] * 3)]


@bounded
async def test_series_stop_after_the_last_batch_still_fires_on_complete(autojump_clock: trio.testing.MockClock) -> None:
    """Stopping a series whose batches are all out starts nothing new, so on_complete still fires."""
    seen: list[float] = []
    async with WorkerPool(4) as pool:
        series = pool.submit_batches(
            Job(sleeper(3), name="batch"), [1, 1], 1, on_complete=lambda results: seen.append(trio.current_time())
        )
        await trio.sleep(1.5)
        series.stop()
        await series.wait()
        assert trio.current_time() == 4.0
    assert seen == [4.0]


@bounded
async def test_cancelled_far_future_jobs_do_not_pile_up_in_the_timers(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling most of many jobs scheduled far ahead drops their entries; the rest still run on time."""
    starts = Starts()
    async with WorkerPool(2) as pool:
        handles = [pool.submit_in(Job(starts.task(index)), 500) for index in range(200)]
        for handle in handles[:150]:
            handle.cancel()
        # Past half cancelled (101 of 200), the cancelled entries were dropped.
        assert len(pool._timers._heap) == 99
        assert sum(timer[2] in pool._timers._waiting for timer in pool._timers._heap) == 50
        await trio.sleep(501)  # past their time: their runs are queued before the block ends
    assert sorted(key for key, _ in starts.log) == list(range(150, 200))  # type: ignore[type-var]
    assert set(starts.times()) == {500.0}


# -- tiny intervals and shared room ------------------------------------------------------


class SeriesSteps(trio.abc.Instrument):
    """Counts the times trio runs a series' task: its wake-ups."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.startswith("workerpoolxt series"):
            self.steps += 1


TINY = 2**-16
"""An interval of about 15 microseconds, exact in binary, so tick times are exact too."""


@pytest.mark.parametrize(
    ("pool_fields", "overlap", "starts_at", "counts"),
    [
        # Runs of 1 s start at 0, 1 and 2; the 65,535 ticks while each runs are skipped.
        pytest.param({}, False, [0.0, 1.0, 2.0], (3, 2 * 65_535), id="previous-run"),
        # Runs queue at 0, 2**-16, 1 and 2 (the last starts at 3, as leaving the block drains it);
        # the ticks that find the queue full between are skipped.
        pytest.param({"max_queue": 1}, True, [0.0, 1.0, 2.0, 3.0], (4, 65_534 + 65_535), id="full-queue"),
    ],
)
@bounded
async def test_submit_every_with_a_tiny_interval_counts_the_ticks_it_skips(
    pool_fields: dict[str, Any],
    overlap: bool,
    starts_at: list[float],
    counts: tuple[int, int],
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Runs of 1 s every 2**-16 s: ticks blocked by the previous run or a full queue are counted, not woken for."""
    steps = SeriesSteps()
    starts = Starts()
    trio.lowlevel.add_instrument(steps)
    try:
        async with WorkerPool(1, **pool_fields) as pool:
            series = pool.submit_every(Job(starts.task("run", 1)), TINY, overlap=overlap)
            await trio.sleep_until(2.5)
            series.stop()
    finally:
        trio.lowlevel.remove_instrument(steps)
    assert starts.times() == starts_at
    assert (series.submitted, series.skipped) == counts
    assert steps.steps < 20  # a wake-up per run and a few more; not one per tick


@bounded
async def test_asubmit_gets_room_that_a_series_waiting_on_its_channel_was_woken_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A submit_each series parked first for room, then idle on its channel, does not keep the room from asubmit()."""
    starts = Starts()
    handles: list[wpxt.JobHandle[Any]] = []
    send, receive = trio.open_memory_channel[int](0)

    async def produce() -> None:
        for index in range(3):
            handles.append(await pool.asubmit(Job(starts.task(index, 1))))

    async with WorkerPool(1, max_queue=1) as pool, trio.open_nursery() as nursery:
        pool.submit(Job(sleeper(1), name="blocker"))
        await wait_all_tasks_blocked()  # the worker has taken it
        pool.submit(Job(noop, name="filler"))  # the queue is full
        series = pool.submit_each(Job(starts.task("item")), receive)
        await wait_all_tasks_blocked()  # the series waits for room first
        nursery.start_soon(produce)
        await trio.sleep(5)
        assert starts.times() == [1.0, 2.0, 3.0]
        assert [handle.queued_at for handle in handles] == [1.0, 1.0, 2.0]
        await send.aclose()
    assert series.submitted == 0
