"""Tests for what a ``DurableWorker`` tells of its tasks: one log line per outcome, and its observers' events.

A ``MemoryStore`` on the virtual clock under ``autojump_clock``, so durations and
retry waits in the lines are exact.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import attrs
import pytest
import trio
import trio.testing
from helpers import bounded, noop

import workerpoolxt as wpxt
from workerpoolxt import Backoff, Job, Options, Registry
from workerpoolxt.durable import (
    CancelTask,
    DurableObserver,
    DurableWorker,
    QueueDepth,
    StoreError,
    StoreStatistics,
    TaskClaimed,
    TaskEnded,
    TaskOutcome,
    TaskRecord,
    TaskStatus,
    WorkerApp,
)
from workerpoolxt.durable.testing import MemoryStore

NO_JITTER: Final = Backoff(initial=0.5, multiplier=1.0, jitter=0.0)
"""Exactly half a second between attempts."""

FIELDS: Final = ("task_id", "handler", "attempt", "max_attempts", "status", "duration", "worker_id", "error")
"""The ``extra`` fields of every outcome line."""


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, dict[str, Any]]]:
    """The ``workerpoolxt.durable`` records: (level, message, extra fields)."""
    return [
        (record.levelno, record.getMessage(), {name: getattr(record, name) for name in FIELDS})
        for record in caplog.records
        if record.name == "workerpoolxt.durable"
    ]


def fields(task_id: int, handler: str, attempt: int, max_attempts: int, status: str, **rest: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "handler": handler,
        "attempt": attempt,
        "max_attempts": max_attempts,
        "status": status,
        "duration": rest.get("duration"),
        "worker_id": "w1",
        "error": rest.get("error"),
    }


def registry_of(**handlers: Any) -> Registry:
    registry = Registry()
    for name, handler in handlers.items():
        registry.register(name, handler)
    return registry


def virtual_store(registry: Registry) -> MemoryStore:
    return MemoryStore(registry=registry, clock=trio.current_time)


async def run_one(registry: Registry, job: Job[Any], store: MemoryStore | None = None, **worker: Any) -> TaskRecord:
    """Enqueue ``job``, run it on worker "w1" until it is final, and return its record."""
    store = virtual_store(registry) if store is None else store
    [task_id] = await store.enqueue([job])
    async with DurableWorker(store, registry, worker_id="w1", **worker):
        return await store.wait(task_id)


class Recorder(DurableObserver):
    """Keeps every event it is told of."""

    def __init__(self) -> None:
        self.events: list[TaskClaimed | TaskEnded | QueueDepth] = []

    def task_claimed(self, event: TaskClaimed) -> None:
        self.events.append(event)

    def task_ended(self, event: TaskEnded) -> None:
        self.events.append(event)

    def queue_depth(self, event: QueueDepth) -> None:
        self.events.append(event)


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workerpoolxt")


# -- one line per outcome ----------------------------------------------------------------


@bounded
async def test_success_is_one_info_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task returning after 1.25 s logs its id, handler, duration and attempt at INFO, its fields as extra."""
    registry = Registry()

    @registry.register("send_email")
    async def send_email(options: Options) -> None:
        await trio.sleep(1.25)

    task_id = (await run_one(registry, Job("send_email", retry=2))).id
    assert lines(caplog) == [
        (
            logging.INFO,
            f"task {task_id} send_email succeeded in 1.250s (attempt 1/3)",
            fields(task_id, "send_email", 1, 3, "succeeded", duration=1.25),
        )
    ]


@bounded
async def test_retries_then_dead_are_warnings(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task failing both its attempts logs a retry in 0.5 s, then its death, both WARNING, with the error."""
    registry = Registry()

    @registry.register("send_email")
    async def send_email(options: Options) -> None:
        raise ValueError("boom")

    record = await run_one(registry, Job("send_email", retry=1, backoff=NO_JITTER), poll=0.25)
    task_id = record.id
    assert record.status is TaskStatus.DEAD
    error = "ValueError: boom"
    assert lines(caplog) == [
        (
            logging.WARNING,
            f"task {task_id} send_email failed attempt 1/2, retrying in 0.5s: ValueError: boom",
            fields(task_id, "send_email", 1, 2, "retrying", duration=0.0, error=error),
        ),
        (
            logging.WARNING,
            f"task {task_id} send_email dead after 2/2 attempts: ValueError: boom",
            fields(task_id, "send_email", 2, 2, "dead", duration=0.0, error=error),
        ),
    ]


@bounded
async def test_result_json_cannot_hold_is_failed_with_attempts_left(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A result JSON cannot hold fails the task with attempts left: status failed, WARNING, with the store's error."""
    registry = Registry()

    @registry.register("odd")
    async def odd(options: Options) -> object:
        return {1, 2}

    record = await run_one(registry, Job("odd", retry=2))
    task_id = record.id
    assert record.status is TaskStatus.FAILED
    error = f"{record.error_type}: {record.error_message}"
    assert lines(caplog) == [
        (
            logging.WARNING,
            f"task {task_id} odd failed after 1/3 attempts: {error}",
            fields(task_id, "odd", 1, 3, "failed", duration=0.0, error=error),
        )
    ]


@bounded
async def test_unknown_handler_is_a_dead_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task naming no handler the worker has is dead on its first attempt, without a duration."""
    registry = Registry()
    registry.register("somebody", lambda options: None)
    record = await run_one(registry, Job("nobody"), MemoryStore(clock=trio.current_time))
    task_id = record.id
    error = f"UnknownHandlerError: {record.error_message}"
    assert lines(caplog) == [
        (
            logging.WARNING,
            f"task {task_id} nobody dead after 1/1 attempts: {error}",
            fields(task_id, "nobody", 1, 1, "dead", error=error),
        )
    ]


@bounded
async def test_cancel_task_is_an_info_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler raising CancelTask after 2 s logs its cancellation at INFO, with its duration."""
    registry = Registry()

    @registry.register("maybe")
    async def maybe(options: Options) -> None:
        await trio.sleep(2)
        raise CancelTask("not needed")

    task_id = (await run_one(registry, Job("maybe"))).id
    assert lines(caplog) == [
        (
            logging.INFO,
            f"task {task_id} maybe cancelled (attempt 1/1)",
            fields(task_id, "maybe", 1, 1, "cancelled", duration=2.0),
        )
    ]


@bounded
async def test_cancelled_in_the_store_and_released_lines(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task cancelled in the store as it runs, and one a stop cancels and releases: INFO each, no duration."""
    registry = Registry()

    @registry.register("long")
    async def long(options: Options) -> None:
        await trio.sleep(10)

    store = virtual_store(registry)
    first, second = await store.enqueue([Job("long"), Job("long")])
    worker = DurableWorker(store, registry, worker_id="w1")
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        await store.cancel(first)
        await trio.sleep(1)
        worker.stop(cancel_running=True)
    assert lines(caplog) == [
        (logging.INFO, f"task {first} long cancelled (attempt 1/1)", fields(first, "long", 1, 1, "cancelled")),
        (
            logging.INFO,
            f"task {second} long released to the queue, attempt 1/1 not counted",
            fields(second, "long", 1, 1, "released"),
        ),
    ]


@bounded
async def test_lost_lease_is_a_warning_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task another worker took over is logged as lost at the heartbeat that finds it, at WARNING."""
    registry = Registry()

    @registry.register("long")
    async def long(options: Options) -> None:
        await trio.sleep(10)

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("long")])
    async with DurableWorker(store, registry, worker_id="w1", lease=5, heartbeat=1):
        await trio.sleep(0.5)
        store._tasks[task_id] = attrs.evolve(store._tasks[task_id], worker_id="thief")
        await trio.sleep(1)
    assert lines(caplog) == [
        (
            logging.WARNING,
            f"task {task_id} long lost to another worker (attempt 1/1)",
            fields(task_id, "long", 1, 1, "lost"),
        )
    ]


@bounded
async def test_log_outcomes_false_logs_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With log_outcomes=False, on the worker or its app, no outcome line is logged."""
    registry = Registry()
    registry.register("job", noop)  # async: the autojump clock does not wait for a plain function's thread
    store = virtual_store(registry)
    ids = await store.enqueue([Job("job"), Job("job")])
    async with DurableWorker(store, registry, log_outcomes=False):
        await store.wait(ids[0])
    async with DurableWorker(store, WorkerApp(registry, log_outcomes=False)):
        await store.wait(ids[1])
    assert lines(caplog) == []


# -- observers ---------------------------------------------------------------------------


@bounded
async def test_observer_sees_claims_ends_and_queue_depth(autojump_clock: trio.testing.MockClock) -> None:
    """An observer hears of the store's counts at start and after each heartbeat, and of each claim and end."""
    registry = Registry()

    failures = [KeyError("first")]

    @registry.register("job")
    async def job(options: Options) -> None:
        first = wpxt.current_job().task_id == 1
        await trio.sleep(1.125 if first else 1.25)
        if first and failures:
            raise failures.pop()

    store = virtual_store(registry)
    recorder = Recorder()
    worker = DurableWorker(store, registry, worker_id="w1", heartbeat=1, lease=5, log_outcomes=False)
    worker.add_observer(recorder)
    worker.add_observer(recorder)  # once only
    await store.enqueue([Job("job", retry=1, backoff=NO_JITTER), Job("job")])
    async with worker:
        await trio.sleep(2.5)
    [error] = [event.error for event in recorder.events if isinstance(event, TaskEnded) and event.error]
    assert isinstance(error, KeyError)
    common = {"handler": "job", "worker_id": "w1"}

    def ended(task_id: int, attempt: int, max_attempts: int, time: float, duration: float, **rest: Any) -> TaskEnded:
        outcome = TaskOutcome.RETRYING if rest else TaskOutcome.SUCCEEDED
        error, retry_in = rest.get("error"), rest.get("retry_in")
        return TaskEnded(
            task_id=task_id,
            attempt=attempt,
            max_attempts=max_attempts,
            outcome=outcome,
            duration=duration,
            error=error,
            retry_in=retry_in,
            time=time,
            **common,
        )

    def depth(time: float, **counts: int) -> QueueDepth:
        return QueueDepth(stats=StoreStatistics(**counts), worker_id="w1", time=time)

    # Task 1 fails at t=1.125 and is claimed again as its retry falls due, at 1.625; the block ends at t=2.5,
    # and the stop lets it end at 2.75. The counts come from the heartbeat's task, in order among themselves.
    assert [event for event in recorder.events if not isinstance(event, QueueDepth)] == [
        TaskClaimed(task_id=1, attempt=1, max_attempts=2, time=0.0, **common),
        TaskClaimed(task_id=2, attempt=1, max_attempts=1, time=0.0, **common),
        ended(1, 1, 2, 1.125, 1.125, error=error, retry_in=0.5),
        ended(2, 1, 1, 1.25, 1.25),
        TaskClaimed(task_id=1, attempt=2, max_attempts=2, time=1.625, **common),
        ended(1, 2, 2, 2.75, 1.125),
    ]
    assert [event for event in recorder.events if isinstance(event, QueueDepth)] == [
        depth(0.0, running=2),
        depth(1.0, running=2),
        depth(2.0, running=1, succeeded=1),
    ]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        recorder.events[0].time = 1.0  # type: ignore[misc]


@bounded
async def test_an_observer_error_is_logged_and_contained(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An observer that raises is logged with its traceback; the task succeeds and the next observer still hears."""

    class Broken(DurableObserver):
        def task_ended(self, event: TaskEnded) -> None:
            raise RuntimeError("observer bug")

    registry = Registry()
    registry.register("job", noop)  # async: the autojump clock does not wait for a plain function's thread
    store = virtual_store(registry)
    recorder = Recorder()
    [task_id] = await store.enqueue([Job("job")])
    worker = DurableWorker(store, registry, worker_id="w1", log_outcomes=False)
    worker.add_observer(Broken())
    worker.add_observer(recorder)
    async with worker:
        record = await store.wait(task_id)
    assert record.status is TaskStatus.SUCCEEDED
    assert [type(event) for event in recorder.events if not isinstance(event, QueueDepth)] == [TaskClaimed, TaskEnded]
    [logged] = [record for record in caplog.records if "observer" in record.getMessage()]
    assert logged.getMessage() == "an observer of durable worker w1 failed on TaskEnded"
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], RuntimeError)


def test_add_observer_refuses_what_is_not_one() -> None:
    """add_observer() of a pool's Observer is a TypeError naming `observer`."""
    worker = DurableWorker(MemoryStore(), Registry())
    with pytest.raises(TypeError, match=r"`observer` must be a workerpoolxt\.durable\.DurableObserver"):
        worker.add_observer(wpxt.hooks.Observer())  # type: ignore[arg-type]


class SlowCountStore(MemoryStore):
    """A virtual-time MemoryStore whose ``stats()`` takes 20 s, and which notes each heartbeat's time."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry=registry, clock=trio.current_time)
        self.heartbeats: list[float] = []

    async def stats(self) -> StoreStatistics:
        await trio.sleep(20)
        return await super().stats()

    async def heartbeat(self, task_ids: Any, *, worker_id: str | None = None) -> list[int]:
        self.heartbeats.append(trio.current_time())
        return await super().heartbeat(task_ids, worker_id=worker_id)


@bounded
async def test_a_slow_count_of_the_store_never_holds_up_the_heartbeat(autojump_clock: trio.testing.MockClock) -> None:
    """With an observer of queue depth, a 20 s stats() leaves the heartbeats on time: the 12 s task keeps its lease."""
    starts: list[float] = []

    async def long(options: Options) -> None:
        starts.append(trio.current_time())
        await trio.sleep(12)

    store = SlowCountStore(registry_of(long=long))
    [task_id] = await store.enqueue([Job("long")])
    worker = DurableWorker(store, registry_of(long=long), lease=5, heartbeat=1, worker_id="w1")
    worker.add_observer(Recorder())
    async with worker:
        record = await store.wait(task_id)
    assert (record.status, record.lost_leases, starts) == (TaskStatus.SUCCEEDED, 0, [0.0])
    assert store.heartbeats == [float(second) for second in range(1, 13)]
    assert worker.statistics().lost == 0


class StopAtClaimStore(MemoryStore):
    """A virtual-time MemoryStore whose claims stop the worker as they return, and whose releases fail."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry=registry, clock=trio.current_time)
        self.worker: DurableWorker | None = None

    async def finish_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        written, records = await super().finish_and_claim(*args, **kwargs)
        if records and self.worker is not None:
            self.worker.stop()
        return written, records

    async def release(self, task_ids: Any, *, worker_id: str | None = None) -> None:
        raise StoreError("memory", "the store is down")


@bounded
async def test_a_hand_back_that_fails_to_write_is_not_counted_released(autojump_clock: trio.testing.MockClock) -> None:
    """A task claimed as the worker stops goes back; if that write fails, it counts as claimed, not released."""
    registry = registry_of(job=noop)
    store = StopAtClaimStore(registry)
    [task_id] = await store.enqueue([Job("job")])
    worker = DurableWorker(store, registry, worker_id="w1", log_outcomes=False)
    store.worker = worker
    recorder = Recorder()
    worker.add_observer(recorder)
    await worker.run()
    statistics = worker.statistics()
    assert (statistics.claimed, statistics.released) == (1, 0)
    assert [type(event) for event in recorder.events if not isinstance(event, QueueDepth)] == [TaskClaimed]
    assert (await store.get(task_id)).status is TaskStatus.RUNNING  # left to its lease
