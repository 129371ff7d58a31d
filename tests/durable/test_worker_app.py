"""Tests for ``WorkerApp`` and what it brings a ``DurableWorker``: lifespan, bounded shutdown, burst mode, health.

A ``MemoryStore`` on the virtual clock under ``autojump_clock``, so stops,
timeouts and retries land at exact times.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import types
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import attrs
import pytest
import trio
import trio.testing
from helpers import bounded, present

import workerpoolxt as wpxt
from workerpoolxt import Backoff, Health, Job, Options, Registry
from workerpoolxt.durable import (
    DurableWorker,
    Order,
    Store,
    StoreError,
    StoreStatistics,
    TaskNotFoundError,
    TaskRecord,
    TaskStatus,
    WorkerApp,
    lifespan_value,
)
from workerpoolxt.durable._machine import Call
from workerpoolxt.durable._store import TaskEnd
from workerpoolxt.durable.testing import MemoryStore

NO_JITTER: Final = Backoff(initial=1.0, multiplier=1.0, jitter=0.0)
"""Exactly one second between attempts."""


async def noop(options: Options) -> None:
    """A handler that returns at once."""


def registry_of(**handlers: Any) -> Registry:
    registry = Registry()
    for name, handler in handlers.items():
        registry.register(name, handler)
    return registry


def sleeper(seconds: float) -> Any:
    async def sleep(options: Options) -> None:
        await trio.sleep(seconds)

    return sleep


class RecordingStore(MemoryStore):
    """A virtual-time MemoryStore that appends its claims, ends and releases to ``events``, as (call, time).

    With ``failing`` true, every claim raises StoreError.
    """

    def __init__(self, registry: Registry | None = None, events: list[tuple[str, float]] | None = None) -> None:
        super().__init__(registry=registry, clock=trio.current_time)
        self.events: list[tuple[str, float]] = [] if events is None else events
        self.failing = False

    def _note(self, call: str) -> None:
        self.events.append((call, trio.current_time()))

    async def claim(
        self, worker_id: str, limit: int, *, order: Order = Order.FIFO, lease: float = 30.0, max_lost_leases: int = 3
    ) -> list[TaskRecord]:
        self._note("claim")
        if self.failing:
            raise StoreError("memory", "the store is down")
        return await super().claim(worker_id, limit, order=order, lease=lease, max_lost_leases=max_lost_leases)

    async def finish_and_claim(
        self,
        ends: Sequence[TaskEnd],
        worker_id: str,
        limit: int,
        *,
        order: Order = Order.FIFO,
        lease: float = 30.0,
        max_lost_leases: int = 3,
    ) -> tuple[list[BaseException | None], list[TaskRecord]]:
        for end in ends:
            self._note(end.call.value)
        if limit > 0:
            self._note("claim")
            if self.failing:
                raise StoreError("memory", "the store is down")
        return await super().finish_and_claim(
            ends, worker_id, limit, order=order, lease=lease, max_lost_leases=max_lost_leases
        )

    async def complete(self, task_id: int, result: Any, *, worker_id: str | None = None) -> None:
        self._note(Call.COMPLETE.value)
        await super().complete(task_id, result, worker_id=worker_id)

    async def release(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> None:
        self._note("release")
        await super().release(task_ids, worker_id=worker_id)


# -- the app's fields --------------------------------------------------------------------


def test_app_defaults_and_frozen_fields() -> None:
    """A WorkerApp's defaults match DurableWorker's; middleware becomes a tuple, options a read-only copy."""
    registry = registry_of(job=noop)

    async def outer(job: wpxt.RunningJob, call_next: Any) -> Any:
        return await call_next()

    options = {"key": 1}
    app = WorkerApp(registry, middleware=[outer], options=options, shutdown_timeout=datetime.timedelta(seconds=3))
    options["key"] = 2
    assert app.middleware == (outer,)
    assert app.options == {"key": 1}
    assert isinstance(app.options, types.MappingProxyType)
    assert app.shutdown_timeout == 3.0
    bare = WorkerApp(registry)
    assert (bare.concurrency, bare.middleware, bare.options, bare.backoff) == (8, (), None, Backoff())
    assert (bare.lifespan, bare.metrics, bare.shutdown_timeout, bare.burst, bare.log_outcomes) == (
        None,
        None,
        None,
        False,
        True,
    )
    assert bare.retention is None
    assert WorkerApp(registry, retention=datetime.timedelta(days=7)).retention == 7 * 86400.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        app.concurrency = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("arguments", "error", "word"),
    [
        pytest.param({"registry": "jobs"}, TypeError, "`registry`", id="registry"),
        pytest.param({"concurrency": 0}, ValueError, "`concurrency`", id="concurrency-zero"),
        pytest.param({"concurrency": True}, TypeError, "`concurrency`", id="concurrency-bool"),
        pytest.param({"middleware": [print]}, TypeError, "`middleware[0]`", id="middleware-sync"),
        pytest.param({"options": ["x"]}, TypeError, "`options`", id="options"),
        pytest.param({"backoff": 1.0}, TypeError, "`backoff`", id="backoff"),
        pytest.param({"lifespan": "db"}, TypeError, "`lifespan`", id="lifespan"),
        pytest.param({"metrics": object()}, TypeError, "`metrics`", id="metrics"),
        pytest.param({"shutdown_timeout": 0}, ValueError, "`shutdown_timeout`", id="shutdown-timeout-zero"),
        pytest.param({"shutdown_timeout": "5"}, TypeError, "`shutdown_timeout`", id="shutdown-timeout-str"),
        pytest.param({"burst": 1}, TypeError, "`burst`", id="burst"),
        pytest.param({"log_outcomes": None}, TypeError, "`log_outcomes`", id="log-outcomes"),
        pytest.param({"retention": 0}, ValueError, "`retention`", id="retention-zero"),
        pytest.param({"retention": -1.0}, ValueError, "`retention`", id="retention-negative"),
        pytest.param({"retention": "7d"}, TypeError, "`retention`", id="retention-str"),
    ],
)
def test_bad_app_fields_are_refused(arguments: dict[str, Any], error: type[Exception], word: str) -> None:
    """An invalid field is a TypeError or ValueError whose message names it, from WorkerApp and DurableWorker alike."""
    call: dict[str, Any] = {"registry": registry_of(job=noop)} | arguments
    with pytest.raises(error) as caught:
        WorkerApp(**call)
    assert word in str(caught.value)
    if "registry" not in arguments and "lifespan" not in arguments and "metrics" not in arguments:
        with pytest.raises(error) as caught:
            DurableWorker(MemoryStore(), **call)
        assert word in str(caught.value)


def test_worker_takes_the_apps_settings_and_keywords_win() -> None:
    """DurableWorker(store, app) runs the app as given; a keyword passed too, its default value included, wins."""
    app = WorkerApp(registry_of(job=noop), concurrency=3, burst=True, shutdown_timeout=5)
    assert DurableWorker(MemoryStore(), app).app is app
    worker = DurableWorker(MemoryStore(), app, concurrency=8, shutdown_timeout=None, log_outcomes=False)
    assert worker.app == attrs.evolve(app, concurrency=8, shutdown_timeout=None, log_outcomes=False)
    assert (app.concurrency, app.shutdown_timeout, app.log_outcomes) == (3, 5.0, True)
    from_registry = DurableWorker(MemoryStore(), app.registry, concurrency=2)
    assert from_registry.app == WorkerApp(app.registry, concurrency=2)
    with pytest.raises(TypeError, match="`registry` must be a Registry or a WorkerApp"):
        DurableWorker(MemoryStore(), {"job": noop})  # type: ignore[arg-type]


@bounded
async def test_apps_concurrency_middleware_and_options_apply(autojump_clock: trio.testing.MockClock) -> None:
    """With an app of concurrency 1, three 1 s tasks end at 1, 2 and 3, each seeing the app's options and middleware."""
    seen: list[tuple[float, Any]] = []
    wrapped: list[str] = []

    async def record(options: Options) -> None:
        await trio.sleep(1)
        seen.append((trio.current_time(), options["tag"]))

    async def around(job: wpxt.RunningJob, call_next: Any) -> Any:
        wrapped.append(job.name)
        return await call_next()

    registry = registry_of(record=record)
    app = WorkerApp(registry, concurrency=1, middleware=[around], options={"tag": "app"})
    store = MemoryStore(registry=registry, clock=trio.current_time)
    ids = await store.enqueue([Job("record")] * 3)
    async with DurableWorker(store, app):
        for task_id in ids:
            await store.wait(task_id)
    assert seen == [(1.0, "app"), (2.0, "app"), (3.0, "app")]
    assert wrapped == ["record"] * 3


# -- lifespan ------------------------------------------------------------------------------


@bounded
async def test_lifespan_wraps_the_run_and_its_value_reaches_handlers(autojump_clock: trio.testing.MockClock) -> None:
    """The lifespan enters before the first claim, exits after the stop, the end written; handlers get its value."""
    events: list[tuple[str, float]] = []
    seen: list[Any] = []
    apps: list[WorkerApp] = []

    async def use(options: Options) -> None:
        await trio.sleep(1)
        seen.append(lifespan_value())

    @contextlib.asynccontextmanager
    async def lifespan(app: WorkerApp) -> AsyncIterator[dict[str, str]]:
        apps.append(app)
        events.append(("enter", trio.current_time()))
        yield {"db": "pool"}
        events.append(("exit", trio.current_time()))

    registry = registry_of(use=use)
    app = WorkerApp(registry, lifespan=lifespan)
    store = RecordingStore(registry, events)
    [task_id] = await store.enqueue([Job("use")])
    async with DurableWorker(store, app) as worker:
        await store.wait(task_id)
        await trio.sleep(0.5)
        assert events[0] == ("enter", 0.0)
    assert seen == [{"db": "pool"}]
    assert apps == [worker.app]
    # Claims after the first, made as the worker idles, left out.
    assert [events[0], *(event for event in events[1:] if event[0] != "claim")] == [
        ("enter", 0.0),
        ("complete", 1.0),
        ("exit", 1.5),
    ]
    assert events[1] == ("claim", 0.0)
    with pytest.raises(LookupError, match="lifespan_value"):
        lifespan_value()


@bounded
async def test_lifespan_exit_may_await_when_the_worker_is_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelled from outside at t=1, the worker still lets its lifespan's exit await: closing takes until t=3."""
    closed: list[float] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: WorkerApp) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await trio.sleep(2)  # closing a pool of connections, say
            closed.append(trio.current_time())

    registry = registry_of(job=sleeper(10))
    store = RecordingStore(registry)
    [task_id] = await store.enqueue([Job("job")])
    with trio.move_on_after(1):
        await DurableWorker(store, WorkerApp(registry, lifespan=lifespan)).run()
    assert closed == [3.0]
    assert trio.current_time() == 3.0
    record = await store.get(task_id)
    assert (record.status, record.attempts) == (TaskStatus.QUEUED, 0)


@bounded
async def test_lifespan_exit_is_bounded_as_a_final_write(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An exit that would take 60 s is cut short after final_write_timeout=5, with a warning."""

    @contextlib.asynccontextmanager
    async def lifespan(app: WorkerApp) -> AsyncIterator[None]:
        yield
        await trio.sleep(60)

    registry = registry_of(job=noop)
    worker = DurableWorker(RecordingStore(registry), WorkerApp(registry, lifespan=lifespan), final_write_timeout=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        worker.stop()
    assert trio.current_time() == 5.0
    [warning] = [record for record in caplog.records if "lifespan" in record.getMessage()]
    message = f"worker {worker.worker_id}: its lifespan's exit did not finish within 5s, and was cut short"
    assert (warning.levelno, warning.getMessage()) == (logging.WARNING, message)


async def test_lifespan_yielding_none_is_still_a_value() -> None:
    """A lifespan that yields None gives handlers None, in threads too; without a lifespan they get LookupError.

    On the real clock, with a short bound: a thread runs, which an autojump clock would not wait for.
    """
    seen: list[Any] = []

    async def look(options: Options) -> None:
        try:
            seen.append(lifespan_value())
            seen.append(await trio.to_thread.run_sync(lifespan_value))
        except LookupError as error:
            seen.append(type(error))

    @contextlib.asynccontextmanager
    async def lifespan(app: WorkerApp) -> AsyncIterator[None]:
        yield None

    registry = registry_of(look=look)
    store = MemoryStore(registry=registry, clock=trio.current_time)
    [first] = await store.enqueue([Job("look")])
    with trio.fail_after(10):
        async with DurableWorker(store, WorkerApp(registry, lifespan=lifespan)):
            await store.wait(first)
        [second] = await store.enqueue([Job("look")])
        async with DurableWorker(store, registry):
            await store.wait(second)
    assert seen == [None, None, LookupError]


@bounded
async def test_lifespan_that_fails_to_enter_stops_the_worker_before_any_claim(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An error as the lifespan enters comes out of run() and of the block; nothing was claimed, nor ready."""

    @contextlib.asynccontextmanager
    async def lifespan(app: WorkerApp) -> AsyncIterator[None]:
        await trio.sleep(1)
        raise ConnectionError("no database")
        yield  # pragma: no cover - never reached

    registry = registry_of(job=noop)
    store = RecordingStore(registry)
    [task_id] = await store.enqueue([Job("job")])
    app = WorkerApp(registry, lifespan=lifespan)
    worker = DurableWorker(store, app)

    async def while_entering() -> None:
        await trio.sleep(0.5)
        health.append(worker.health().reasons)

    health: list[str] = []
    with pytest.RaisesGroup(pytest.RaisesExc(ConnectionError, match="no database")):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(while_entering)
            await worker.run()
    assert trio.current_time() == 1.0
    assert health == [("starting",)]
    with pytest.raises(ConnectionError, match="no database"):
        async with DurableWorker(store, app):
            pytest.fail("the block ran")  # pragma: no cover
    assert store.events == []
    assert (await store.get(task_id)).status is TaskStatus.QUEUED
    assert worker.health() == Health(False, ("stopped",))


@bounded
async def test_lifespan_exits_after_the_running_task_is_released_on_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An error in the worker's block releases the running task, then exits the lifespan, then comes out."""
    events: list[tuple[str, float]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: WorkerApp) -> AsyncIterator[None]:
        events.append(("enter", trio.current_time()))
        try:
            yield
        finally:
            events.append(("exit", trio.current_time()))

    registry = registry_of(long=sleeper(10))
    store = RecordingStore(registry, events)
    [task_id] = await store.enqueue([Job("long")])
    with pytest.raises(KeyError, match="oops"):  # noqa: PT012 - the block's own error comes out bare
        async with DurableWorker(store, WorkerApp(registry, lifespan=lifespan)):
            await trio.sleep(2)
            raise KeyError("oops")
    assert [event for event in events if event[0] != "claim"] == [("enter", 0.0), ("release", 2.0), ("exit", 2.0)]
    assert (await store.get(task_id)).status is TaskStatus.QUEUED


@bounded
async def test_lifespan_must_return_an_async_context_manager(autojump_clock: trio.testing.MockClock) -> None:
    """A lifespan that returns something else is a TypeError from run(), naming it, before any claim."""

    def lifespan(app: WorkerApp) -> Any:
        return "not a context manager"

    registry = registry_of(job=noop)
    store = RecordingStore(registry)
    with pytest.raises(TypeError, match="`lifespan` must return an async context manager"):
        await DurableWorker(store, WorkerApp(registry, lifespan=lifespan)).run()
    assert store.events == []


# -- bounded shutdown --------------------------------------------------------------------


@bounded
async def test_shutdown_timeout_cancels_and_releases_the_running_task(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """stop() at t=1 with shutdown_timeout=2: the 10 s task runs on until t=3, then is cancelled and released."""
    cancelled_at: list[float] = []

    async def long(options: Options) -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise

    registry = registry_of(long=long)
    store = RecordingStore(registry)
    [task_id] = await store.enqueue([Job("long", retry=2)])
    worker = DurableWorker(store, WorkerApp(registry, shutdown_timeout=2))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        worker.stop()
        assert worker.statistics().running == 1
        await trio.sleep(1.5)
        assert (await store.get(task_id)).status is TaskStatus.RUNNING
        await worker.wait_stopped()
        assert trio.current_time() == 3.0
    assert cancelled_at == [3.0]
    record = await store.get(task_id)
    assert (record.status, record.attempts) == (TaskStatus.QUEUED, 0)
    assert store.events[-1] == ("release", 3.0)
    assert (worker.statistics().released, worker.statistics().running) == (1, 0)
    [warning] = [record for record in caplog.records if "after the stop" in record.getMessage()]
    message = f"worker {worker.worker_id}: 1 task(s) still running 2s after the stop; cancelling them"
    assert (warning.name, warning.levelno, warning.getMessage()) == ("workerpoolxt", logging.WARNING, message)


@bounded
async def test_tasks_ending_within_the_shutdown_timeout_finish(autojump_clock: trio.testing.MockClock) -> None:
    """With shutdown_timeout=5, a task ending 2 s after the stop succeeds, and run() returns then."""
    registry = registry_of(job=sleeper(3))
    store = MemoryStore(registry=registry, clock=trio.current_time)
    [task_id] = await store.enqueue([Job("job")])
    worker = DurableWorker(store, registry, shutdown_timeout=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        worker.stop()
        await worker.wait_stopped()
        assert trio.current_time() == 3.0
    assert (await store.get(task_id)).status is TaskStatus.SUCCEEDED


class SlowWriteStore(RecordingStore):
    """A RecordingStore whose writes of ends take 2 s."""

    async def finish_and_claim(self, ends: Sequence[TaskEnd], *args: Any, **kwargs: Any) -> Any:
        if ends:
            await trio.sleep(2)
        return await super().finish_and_claim(ends, *args, **kwargs)


@bounded
async def test_a_task_whose_end_is_being_written_is_not_cancelled_by_the_shutdown_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The task ends at t=1.5, its end written until t=3.5: the shutdown timeout at t=2 finds nothing running."""
    registry = registry_of(job=sleeper(1.5))
    store = SlowWriteStore(registry)
    [task_id] = await store.enqueue([Job("job")])
    worker = DurableWorker(store, WorkerApp(registry, shutdown_timeout=1))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        worker.stop()
        await worker.wait_stopped()
        assert trio.current_time() == 3.5
    assert (await store.get(task_id)).status is TaskStatus.SUCCEEDED
    assert [record for record in caplog.records if "after the stop" in record.getMessage()] == []


# -- burst mode ------------------------------------------------------------------------------


@bounded
async def test_burst_worker_on_an_empty_queue_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """In burst mode, run() on an empty store claims once and returns at t=0."""
    store = RecordingStore()
    worker = DurableWorker(store, registry_of(job=noop), burst=True)
    await worker.run()
    assert store.events == [("claim", 0.0)]
    assert worker.health() == Health(False, ("stopped",))


@bounded
async def test_burst_worker_runs_the_queue_then_returns(autojump_clock: trio.testing.MockClock) -> None:
    """Three 1 s tasks on a burst worker of concurrency 1 all succeed; run() returns at t=3."""
    registry = registry_of(job=sleeper(1))
    store = MemoryStore(registry=registry, clock=trio.current_time)
    ids = await store.enqueue([Job("job")] * 3)
    worker = DurableWorker(store, WorkerApp(registry, concurrency=1, burst=True))
    await worker.run()
    assert trio.current_time() == 3.0
    assert [(await store.get(task_id)).status for task_id in ids] == [TaskStatus.SUCCEEDED] * 3
    assert worker.statistics().succeeded == 3


@bounded
async def test_burst_worker_waits_for_its_own_retries_not_deferred_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A task failing at t=0 retries at t=1 (not at the 10 s poll) and succeeds; a task deferred to t=5 stays queued."""
    starts: list[float] = []

    async def flaky(options: Options) -> None:
        starts.append(trio.current_time())
        if len(starts) == 1:
            raise ValueError("first")

    registry = registry_of(flaky=flaky, later=noop)
    store = MemoryStore(registry=registry, clock=trio.current_time)
    [task_id] = await store.enqueue([Job("flaky", retry=1, backoff=NO_JITTER)])
    [deferred] = await store.enqueue([Job("later")], run_at=5.0)
    worker = DurableWorker(store, registry, burst=True, poll=10)
    await worker.run()
    assert trio.current_time() == 1.0
    assert starts == [0.0, 1.0]
    assert (await store.get(task_id)).status is TaskStatus.SUCCEEDED
    assert (await store.get(deferred)).status is TaskStatus.QUEUED


@pytest.mark.parametrize("pruned", [False, True], ids=["cancelled", "cancelled-and-pruned"])
@bounded
async def test_burst_worker_stops_waiting_for_a_retry_cancelled_meanwhile(
    autojump_clock: trio.testing.MockClock, pruned: bool
) -> None:
    """A retry due at t=1 and cancelled in the store at t=0.5 (and pruned at t=0.6, so the store no longer has it)
    is not waited for: run() returns at t=1."""

    async def fails(options: Options) -> None:
        raise ValueError("no")

    registry = registry_of(fails=fails)
    store = MemoryStore(registry=registry, clock=trio.current_time)
    [task_id] = await store.enqueue([Job("fails", retry=3, backoff=NO_JITTER)])
    worker = DurableWorker(store, registry, burst=True, poll=10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        await trio.sleep(0.5)
        assert (await store.get(task_id)).status is TaskStatus.QUEUED
        await store.cancel(task_id)
        if pruned:
            await trio.sleep(0.1)
            assert await store.prune(older_than=0) == 1
        await worker.wait_stopped()
        assert trio.current_time() == 1.0
    assert await present(store, [task_id]) == ([] if pruned else [task_id])
    assert worker.statistics().retried == 1


# -- retention ----------------------------------------------------------------------------


class PruningStore(MemoryStore):
    """A virtual-time MemoryStore that appends each prune() to ``prunes``, as (time, deleted or the error's name).

    Each of ``failures`` is raised by a prune, in turn, before it deletes anything; ``hold`` blocks every prune.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        super().__init__(registry=registry, clock=trio.current_time)
        self.prunes: list[tuple[float, int | str]] = []
        self.failures: list[Exception] = []
        self.hold = False
        self.delay = 0.0
        """Virtual seconds each prune takes."""

    async def prune(self, *, older_than: Any, limit: int = 1000) -> int:
        if self.hold:
            await trio.sleep_forever()
        await trio.sleep(self.delay)
        if self.failures:
            error = self.failures.pop(0)
            self.prunes.append((trio.current_time(), type(error).__name__))
            raise error
        deleted = await super().prune(older_than=older_than, limit=limit)
        self.prunes.append((trio.current_time(), deleted))
        return deleted


@bounded
async def test_retention_prunes_at_start_and_every_minute(autojump_clock: trio.testing.MockClock) -> None:
    """With a retention of 100 s, tasks that ended at t=0 and t=50 are deleted by the prunes at t=120 and t=180;
    the worker prunes at start and every 60 s (its heartbeat, 10 s, being shorter), and a queued task stays."""
    registry = registry_of(job=noop)
    store = PruningStore(registry)
    [first] = await store.enqueue([Job("job")])
    [waiting] = await store.enqueue([Job("job")], run_at=1000.0)
    async with DurableWorker(store, WorkerApp(registry, retention=100)) as worker:
        await trio.sleep(50)
        [second] = await store.enqueue([Job("job")])
        await trio.sleep(125 - 50)
        assert (await store.get(second)).status is TaskStatus.SUCCEEDED
        with pytest.raises(TaskNotFoundError, match=f"no task with id {first} "):
            await store.get(first)
        await trio.sleep(60)
        worker.stop()
    assert store.prunes == [(0.0, 0), (60.0, 0), (120.0, 1), (180.0, 1)]
    assert await present(store, [first, second, waiting]) == [waiting]


@bounded
async def test_retention_prunes_every_heartbeat_when_that_is_longer(autojump_clock: trio.testing.MockClock) -> None:
    """A worker whose heartbeat is 90 s prunes every 90 s; a retention given to DurableWorker wins over the app's."""
    registry = registry_of(job=noop)
    store = PruningStore(registry)
    app = WorkerApp(registry, retention=datetime.timedelta(days=7))
    async with DurableWorker(store, app, heartbeat=90, lease=300, retention=5) as worker:
        assert worker.app.retention == 5.0
        await trio.sleep(200)
    assert [at for at, _ in store.prunes] == [0.0, 90.0, 180.0]


@bounded
async def test_retention_prunes_full_batches_until_one_comes_back_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """2500 old tasks are deleted at start in batches of 1000, 1000 and 500, all at t=0; the next prune is at t=60."""
    registry = registry_of(job=noop)
    store = PruningStore(registry)
    ids = await store.enqueue([Job("job")] * 2500)
    for task_id in ids:
        await store.cancel(task_id)
    autojump_clock.jump(10)
    async with DurableWorker(store, registry, retention=5):
        await trio.sleep(61)
    assert store.prunes == [(10.0, 1000), (10.0, 1000), (10.0, 500), (70.0, 0)]
    assert await store.stats() == StoreStatistics()


@bounded
async def test_a_failing_prune_is_logged_on_one_line_and_tried_at_the_next_interval(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A prune raising StoreError at t=0 is logged as one ERROR line, and tried again at t=60, not before;
    the worker meanwhile runs a task."""
    registry = registry_of(job=noop)
    store = PruningStore(registry)
    store.failures.append(StoreError("memory", "the store is down"))
    [task_id] = await store.enqueue([Job("job")])
    async with DurableWorker(store, registry, retention=1000, worker_id="w1"):
        await trio.sleep(61)
        assert (await store.get(task_id)).status is TaskStatus.SUCCEEDED
    assert store.prunes == [(0.0, "StoreError"), (60.0, 0)]
    [record] = [record for record in caplog.records if "prune" in record.getMessage()]
    assert (record.levelno, record.exc_info) == (logging.ERROR, None)
    assert record.getMessage() == (
        "worker w1 could not prune finished tasks; trying again in 60s: memory: the store is down"
    )


@bounded
async def test_a_prune_that_never_returns_holds_up_no_heartbeat_or_claim(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With every prune stuck, a 25 s task keeps its lease by heartbeats and succeeds, the next task is claimed
    as it ends, and the worker stops."""
    registry = registry_of(job=sleeper(25))
    store = PruningStore(registry)
    store.hold = True
    first, second = await store.enqueue([Job("job")] * 2)
    async with DurableWorker(store, WorkerApp(registry, concurrency=1, retention=1), lease=15, heartbeat=5):
        await trio.sleep(46)
        record = await store.get(second)
        assert (record.status, record.started_at, record.heartbeat_at) == (TaskStatus.RUNNING, 25.0, 45.0)
        await trio.sleep(5)
    assert trio.current_time() == 51.0
    assert [(await store.get(task_id)).status for task_id in (first, second)] == [TaskStatus.SUCCEEDED] * 2
    assert (await store.get(second)).lost_leases == 0
    assert (await store.get(second)).finished_at == 50.0


@pytest.mark.parametrize(("delay", "stopped_at"), [(3.0, 3.0), (60.0, 10.0)], ids=["finished", "bounded"])
@bounded
async def test_a_burst_worker_with_nothing_to_do_lets_its_first_prune_finish(
    autojump_clock: trio.testing.MockClock, delay: float, stopped_at: float
) -> None:
    """A burst worker on an empty queue, whose prune takes 3 s, returns at t=3 with the old task pruned; a prune
    that takes longer than ``final_write_timeout`` (10 s) is cut short there."""
    registry = registry_of(job=noop)
    store = PruningStore(registry)
    store.delay = delay
    [task_id] = await store.enqueue([Job("job")])
    await store.cancel(task_id)
    autojump_clock.jump(100)
    await DurableWorker(store, WorkerApp(registry, burst=True, retention=50)).run()
    assert trio.current_time() == 100 + stopped_at
    assert store.prunes == ([(103.0, 1)] if delay == 3.0 else [])
    assert await present(store, [task_id]) == ([] if delay == 3.0 else [task_id])


def test_retention_needs_a_store_that_prunes() -> None:
    """A retention with a store that lacks prune() is a TypeError naming it, as the worker is made."""
    calls = [name for name in dir(Store) if not name.startswith("_")]
    minimal = type("MinimalStore", (), {name: getattr(MemoryStore, name) for name in calls})
    store = minimal()
    store.__dict__.update(MemoryStore().__dict__)
    with pytest.raises(TypeError, match="`retention` needs a store that can delete finished tasks"):
        DurableWorker(store, registry_of(job=noop), retention=60)
    DurableWorker(store, registry_of(job=noop))  # without a retention, any Store will do


# -- health ----------------------------------------------------------------------------------


@bounded
async def test_health_follows_the_worker_from_start_to_stop(autojump_clock: trio.testing.MockClock) -> None:
    """Not ready before run(), ready while it runs, unready while its claims fail and ready again, stopping, stopped."""
    registry = registry_of(job=sleeper(5))
    store = RecordingStore(registry)
    worker = DurableWorker(store, registry, worker_id="w1", poll=1)

    def health(ready: bool, reason: str, running: int = 0) -> Health:
        assert worker.statistics().running == running
        return Health(ready, (reason,) if reason else ())

    assert worker.health() == health(False, "not started")
    [task_id] = await store.enqueue([Job("job")])
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.testing.wait_all_tasks_blocked()
        assert worker.health() == health(True, "", running=1)
        await store.wait(task_id)  # t=5: its end is written in a transaction with the next claim
        store.failing = True
        await store.enqueue([Job("job")])  # wakes the worker: its claim fails at t=5
        await trio.sleep(2.5)
        failing = "its claims have failed for 2.5s: StoreError: memory: the store is down"
        assert worker.health() == health(False, failing)
        store.failing = False
        await trio.sleep(1)  # the next poll, at t=8, claims
        assert worker.health() == health(True, "", running=1)
        worker.stop()
        assert worker.health() == health(False, "stopping", running=1)
    assert worker.health() == health(False, "stopped")
    assert trio.current_time() == 13.0
