"""A DurableWorker's tasks report progress: the observers hear each report, the store gets the latest at a heartbeat.

The worker drives a ``MemoryStore`` on the virtual clock (``clock=trio.current_time``)
under ``autojump_clock``, so heartbeats land at exact times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from helpers import bounded

import workerpoolxt as wpxt
from workerpoolxt import Job, Options, Progress, Registry
from workerpoolxt.durable import DurableObserver, DurableWorker, ProgressStore, StoreError, TaskProgress, TaskStatus
from workerpoolxt.durable.testing import MemoryStore


class RecordingStore(MemoryStore):
    """A MemoryStore on the virtual clock that records each record_progress() call, and can fail the next ones."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry=registry, clock=trio.current_time)
        self.writes: list[tuple[float, dict[int, Progress], str | None]] = []
        self.failures = 0

    async def record_progress(self, progress: Mapping[int, Progress], *, worker_id: str | None = None) -> None:
        self.writes.append((trio.current_time(), dict(progress), worker_id))
        if self.failures:
            self.failures -= 1
            raise StoreError("test store", "the disk is full")
        await super().record_progress(progress, worker_id=worker_id)


class ProgressLog(DurableObserver):
    """Records each task_progress event as (task id, attempt, done, total, time)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def task_progress(self, event: TaskProgress) -> None:
        progress = event.progress
        self.events.append((event.task_id, event.attempt, progress.done, progress.total, progress.fraction, event.time))


def reporter(*steps: tuple[float, float, float | None], end: float | None = None) -> Any:
    """A handler that, for each (time, done, total), sleeps until that time and reports.

    It returns at ``end``, by default a second after its last report.
    """

    async def report(options: Options) -> str:
        for at, done, total in steps:
            await trio.sleep_until(at)
            wpxt.current_job().progress(done, total)
        await trio.sleep_until(steps[-1][0] + 1.0 if end is None else end)
        return "done"

    return report


@bounded
async def test_reports_reach_the_observers_at_once_and_the_store_at_the_heartbeat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three reports before t=1 are one write at the t=1 heartbeat (the latest); none at t=2; the next at t=3."""
    registry = Registry()
    registry.register("count", reporter((0.0, 1, 4), (0.25, 2, 4), (0.5, 3, 4), (2.5, 4, 4)))
    store = RecordingStore(registry)
    log = ProgressLog()
    [task_id] = await store.enqueue([Job("count")])
    worker = DurableWorker(store, registry, lease=5, heartbeat=1, worker_id="w1")
    worker.add_observer(log)
    async with worker:
        await trio.sleep(0.9)
        assert (await store.get(task_id)).progress is None
        await trio.sleep(0.2)
        assert (await store.get(task_id)).progress == Progress(3.0, 4.0)
        record = await store.wait(task_id)
    assert store.writes == [(1.0, {task_id: Progress(3, 4)}, "w1"), (3.0, {task_id: Progress(4, 4)}, "w1")]
    assert (record.status, record.finished_at, record.progress) == (TaskStatus.SUCCEEDED, 3.5, Progress(4.0, 4.0))
    assert log.events == [
        (task_id, 1, 1, 4, 0.25, 0.0),
        (task_id, 1, 2, 4, 0.5, 0.25),
        (task_id, 1, 3, 4, 0.75, 0.5),
        (task_id, 1, 4, 4, 1.0, 2.5),
    ]


@bounded
async def test_only_the_tasks_the_worker_still_holds_are_written(autojump_clock: trio.testing.MockClock) -> None:
    """A task that ended, or that another worker took, before the heartbeat is left out of its write."""
    registry = Registry()
    registry.register("ends", reporter((0.25, 1, None), end=0.75))
    registry.register("stolen", reporter((0.25, 1, 10), (1.5, 2, 10), (4.0, 3, 10)))
    registry.register("kept", reporter((0.5, 7, None), (1.75, 8, None), (2.5, 9, None)))
    store = RecordingStore(registry)
    ends, stolen, kept = await store.enqueue([Job("ends"), Job("stolen"), Job("kept")])
    async with DurableWorker(store, registry, lease=5, heartbeat=1, worker_id="w1"):
        await trio.sleep(1.25)
        # Another worker takes `stolen` over, as if w1's lease had run out; w1 learns of it at t=2's heartbeat.
        store._tasks[stolen] = attrs.evolve(store._tasks[stolen], worker_id="thief", heartbeat_at=1.25)
        await store.wait(kept)
    assert store.writes == [
        (1.0, {stolen: Progress(1, 10), kept: Progress(7)}, "w1"),
        (2.0, {kept: Progress(8)}, "w1"),
        (3.0, {kept: Progress(9)}, "w1"),
    ]
    assert [(await store.get(task_id)).progress for task_id in (ends, stolen, kept)] == [
        None,
        Progress(1.0, 10.0),
        Progress(9.0),
    ]


@bounded
async def test_a_failed_write_is_logged_and_made_at_the_next_heartbeat(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The t=1 write fails: logged; the t=2 heartbeat writes the latest report, and the task runs on."""
    registry = Registry()
    registry.register("count", reporter((0.5, 1, 3), (1.5, 2, 3), (2.5, 3, 3)))
    store = RecordingStore(registry)
    store.failures = 1
    [task_id] = await store.enqueue([Job("count")])
    async with DurableWorker(store, registry, lease=5, heartbeat=1, worker_id="w1"):
        record = await store.wait(task_id)
    assert store.writes == [
        (1.0, {task_id: Progress(1, 3)}, "w1"),
        (2.0, {task_id: Progress(2, 3)}, "w1"),
        (3.0, {task_id: Progress(3, 3)}, "w1"),
    ]
    assert (record.status, record.progress) == (TaskStatus.SUCCEEDED, Progress(3.0, 3.0))
    [error] = [record for record in caplog.records if "progress" in record.getMessage()]
    assert error.getMessage() == "worker w1 could not write its tasks' progress: test store: the disk is full"


@bounded
async def test_a_failed_write_is_made_again_if_no_newer_report_came(autojump_clock: trio.testing.MockClock) -> None:
    """A report whose write failed is written at the next heartbeat, though the task reported nothing since."""
    registry = Registry()
    registry.register("quiet", reporter((0.5, 1, 3), (2.5, 2, 3)))
    store = RecordingStore(registry)
    store.failures = 1
    [task_id] = await store.enqueue([Job("quiet")])
    async with DurableWorker(store, registry, lease=5, heartbeat=1, worker_id="w1"):
        await store.wait(task_id)
    assert [write[:2] for write in store.writes] == [
        (1.0, {task_id: Progress(1, 3)}),
        (2.0, {task_id: Progress(1, 3)}),
        (3.0, {task_id: Progress(2, 3)}),
    ]


@bounded
async def test_a_store_without_record_progress_still_tells_the_observers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """On a store that is no ProgressStore, the worker writes nothing and its observers still hear every report."""

    class Plain(MemoryStore):
        record_progress = None  # type: ignore[assignment]

    registry = Registry()
    registry.register("count", reporter((0.5, 1, 2), (1.5, 2, 2)))
    store = Plain(registry=registry, clock=trio.current_time)
    assert not isinstance(store, ProgressStore)
    log = ProgressLog()
    [task_id] = await store.enqueue([Job("count")])
    worker = DurableWorker(store, registry, lease=5, heartbeat=1, worker_id="w1")
    worker.add_observer(log)
    async with worker:
        record = await store.wait(task_id)
    assert (record.status, record.progress) == (TaskStatus.SUCCEEDED, None)
    assert [event[2:] for event in log.events] == [(1, 2, 0.5, 0.5), (2, 2, 1.0, 1.5)]


@bounded
async def test_a_retried_task_keeps_its_last_report_until_the_next_attempt_reports(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Attempt 1 reports and fails; the store keeps its report through the retry, and attempt 2's replaces it."""
    registry = Registry()

    @registry.register("flaky")
    async def flaky(options: Options) -> None:
        job = wpxt.current_job()
        job.progress(job.attempt, 2)
        await trio.sleep(1.5)
        if job.attempt == 1:
            raise ValueError("once")

    store = RecordingStore(registry)
    log = ProgressLog()
    [task_id] = await store.enqueue([Job("flaky", retry=1, backoff=wpxt.Backoff(initial=2.0, jitter=0.0))])
    worker = DurableWorker(store, registry, lease=5, heartbeat=1, poll=0.25, worker_id="w1")
    worker.add_observer(log)
    async with worker:
        await trio.sleep(3.0)
        queued = await store.get(task_id)
        assert (queued.status, queued.progress) == (TaskStatus.QUEUED, Progress(1.0, 2.0))
        record = await store.wait(task_id)
    assert (record.status, record.attempts, record.progress) == (TaskStatus.SUCCEEDED, 2, Progress(2.0, 2.0))
    assert [event[:3] for event in log.events] == [(task_id, 1, 1), (task_id, 2, 2)]
    assert [write[0] for write in store.writes] == [1.0, 4.0]
