"""Tests for ``DurableWorker``: tasks claimed from a store, run on a pool, finalised in the store.

Unit tests drive a ``MemoryStore`` on the virtual clock (``clock=trio.current_time``)
under ``autojump_clock``, so leases, heartbeats, retries and polls land at exact
times. A ``ScriptedStore`` records the claims and can make a call fail, hang or
stop the worker at a chosen moment.

Integration tests run the worker on ``SQLiteStore`` and ``PostgresStore`` with
the real clock, short leases and a ``trio.fail_after`` bound. The PostgreSQL run
needs a server (tests/postgres_server.py says which, or why it skips); each test
then gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import pytest
import trio
import trio.testing
from helpers import POSTGRES_DSN, bounded, drop_schema, new_schema, requires_postgres

import workerpoolxt as wpxt
import workerpoolxt.durable
from workerpoolxt import Backoff, Job, Options, Registry
from workerpoolxt.durable import (
    CancelTask,
    DurableWorker,
    DurableWorkerStatistics,
    Order,
    SQLiteStore,
    Store,
    StoreError,
    StoreStatistics,
    TaskRecord,
    TaskStatus,
)
from workerpoolxt.durable._machine import Call
from workerpoolxt.durable._store import BatchingStore, TaskEnd
from workerpoolxt.durable.testing import MemoryStore

NO_JITTER: Final = Backoff(initial=1.0, multiplier=1.0, jitter=0.0)
"""Exactly one second between attempts."""

POLL: Final = 0.25
"""A poll that divides every retry time used here, so a retry starts exactly when it is due."""

Hook = Callable[[], Awaitable[None]]


def counters(**counts: int) -> DurableWorkerStatistics:
    """A ``DurableWorkerStatistics`` with ``counts`` and zero everywhere else."""
    zeros = {field.name: 0 for field in attrs.fields(DurableWorkerStatistics)}
    return DurableWorkerStatistics(**(zeros | counts))


def virtual_store(registry: Registry | None = None) -> MemoryStore:
    return MemoryStore(registry=registry, clock=trio.current_time)


async def never_called(options: Options) -> None:
    """A handler that is registered, never run."""
    raise AssertionError("never_called ran")


def some_registry() -> Registry:
    registry = Registry()
    registry.register("job", never_called)
    return registry


def raising(error: BaseException) -> Hook:
    """A hook that raises ``error``."""

    async def raise_error() -> None:
        raise error

    return raise_error


class ScriptedStore(MemoryStore):
    """A virtual-time MemoryStore that records claims and runs scripted hooks.

    ``hooks[method]`` is a queue: each call of ``claim``, ``heartbeat`` or
    ``complete`` pops its first entry and, unless it is None, awaits it before
    doing its work; ``hooks["claimed"]`` runs after a claim took its tasks.
    ``claims`` holds ``(limit, tasks the claimer already held)`` per claim.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        super().__init__(registry=registry, clock=trio.current_time)
        self.claims: list[tuple[int, int]] = []
        self.hooks: dict[str, list[Hook | None]] = collections.defaultdict(list)

    async def _hook(self, method: str) -> None:
        queue = self.hooks[method]
        if queue:
            hook = queue.pop(0)
            if hook is not None:
                await hook()

    async def claim(
        self, worker_id: str, limit: int, *, order: Order = Order.FIFO, lease: float = 30.0, max_lost_leases: int = 3
    ) -> list[TaskRecord]:
        held = sum(task.status is TaskStatus.RUNNING and task.worker_id == worker_id for task in self._tasks.values())
        self.claims.append((limit, held))
        await self._hook("claim")
        records = await super().claim(worker_id, limit, order=order, lease=lease, max_lost_leases=max_lost_leases)
        await self._hook("claimed")
        return records

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
        """The ends by the scripted calls, then the claim; a claim hook that raises fails it all, before any write."""
        if limit > 0:
            # What the claimer holds once its ends are written, as in one transaction.
            ending = {end.task_id for end in ends}
            held = sum(
                task.status is TaskStatus.RUNNING and task.worker_id == worker_id and task.id not in ending
                for task in self._tasks.values()
            )
            self.claims.append((limit, held))
            await self._hook("claim")
        outcomes: list[BaseException | None] = []
        for end in ends:
            try:
                if end.call is Call.COMPLETE:
                    await self.complete(end.task_id, end.result, worker_id=worker_id)
                elif end.call is Call.FAIL:
                    assert end.error is not None
                    await self.fail(end.task_id, end.error, end.retry_at, worker_id=worker_id)
                else:
                    await self.cancel(end.task_id, worker_id=worker_id)
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        if limit <= 0:
            return outcomes, []
        records = await MemoryStore.claim(
            self, worker_id, limit, order=order, lease=lease, max_lost_leases=max_lost_leases
        )
        await self._hook("claimed")
        return outcomes, records

    async def heartbeat(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> list[int]:
        await self._hook("heartbeat")
        return await super().heartbeat(task_ids, worker_id=worker_id)

    async def complete(self, task_id: int, result: Any, *, worker_id: str | None = None) -> None:
        await self._hook("complete")
        await super().complete(task_id, result, worker_id=worker_id)


class PlainStore(ScriptedStore):
    """A ScriptedStore without ``finish_and_claim()``, as a store of one's own may be: the worker calls each method.

    A protocol's method set to None counts as missing, as ``__hash__ = None`` does.
    """

    finish_and_claim = None  # type: ignore[assignment]

    async def fail(
        self,
        task_id: int,
        error: BaseException,
        retry_at: float | None = None,
        *,
        worker_id: str | None = None,
        dead: bool = False,
    ) -> None:
        await self._hook("fail")
        await super().fail(task_id, error, retry_at, worker_id=worker_id, dead=dead)


def steal(store: MemoryStore, task_id: int) -> TaskRecord:
    """Hand a running task to worker "thief", as if it had claimed the task after an expired lease."""
    stolen = attrs.evolve(store._tasks[task_id], worker_id="thief", heartbeat_at=trio.current_time())
    store._tasks[task_id] = stolen
    return stolen


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The records of the ``workerpoolxt`` logger whose message contains ``text``."""
    return [record for record in caplog.records if record.name == "workerpoolxt" and text in record.getMessage()]


# -- running a task -------------------------------------------------------------------


@bounded
async def test_task_succeeds_with_its_json_result(autojump_clock: trio.testing.MockClock) -> None:
    """The handler sees its args and task id; the record is SUCCEEDED with its result at the time it returned."""
    registry = Registry()
    seen: list[tuple[dict[str, Any], int | None]] = []

    @registry.register("add")
    async def add(options: Options) -> dict[str, Any]:
        job = wpxt.current_job()
        seen.append((dict(job.args), job.task_id))
        await trio.sleep(1.5)
        return {"sum": job.args["a"] + job.args["b"], "items": [1, "two", None, 2.5]}

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("add", args={"a": 2, "b": 3})])
    async with DurableWorker(store, registry, worker_id="w1") as worker:
        record = await store.wait(task_id)
        assert trio.current_time() == 1.5
    assert seen == [({"a": 2, "b": 3}, task_id)]
    assert record.status is TaskStatus.SUCCEEDED
    assert record.result == {"sum": 5, "items": [1, "two", None, 2.5]}
    assert (record.attempts, record.started_at, record.finished_at) == (1, 0.0, 1.5)
    assert (record.worker_id, record.heartbeat_at, record.error_type, record.error_message) == ("w1", None, None, None)
    assert worker.statistics() == counters(claimed=1, succeeded=1)


@bounded
async def test_concurrency_bounds_claims_and_runs(autojump_clock: trio.testing.MockClock) -> None:
    """With concurrency=2, five 1 s tasks run two at a time, finishing at 1, 1, 2, 2, 3; no claim asks for more."""
    registry = Registry()
    running = peak = 0

    @registry.register("work")
    async def work(options: Options) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await trio.sleep(1)
        finally:
            running -= 1

    store = ScriptedStore(registry)
    ids = await store.enqueue([Job("work") for _ in range(5)])
    async with DurableWorker(store, registry, concurrency=2, worker_id="w1") as worker:
        await trio.sleep(0.5)
        assert worker.statistics().running == 2
        records = [await store.wait(task_id) for task_id in ids]
        assert trio.current_time() == 3.0
    assert [record.started_at for record in records] == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert [record.finished_at for record in records] == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert {record.status for record in records} == {TaskStatus.SUCCEEDED}
    assert peak == 2
    assert store.claims
    assert all(1 <= limit <= 2 - held for limit, held in store.claims), store.claims
    assert worker.statistics() == counters(claimed=5, succeeded=5)


@bounded
async def test_a_store_without_batching_has_each_end_written(autojump_clock: trio.testing.MockClock) -> None:
    """A store that cannot write ends and claim at once has each end written by its call; no claim asks for more."""
    registry = Registry()

    @registry.register("ok")
    async def ok(options: Options) -> int:
        await trio.sleep(1)
        return 1

    @registry.register("flaky")
    async def flaky(options: Options) -> None:
        await trio.sleep(1)
        raise ValueError("flaky")

    @registry.register("quit")
    async def quit_(options: Options) -> None:
        await trio.sleep(1)
        raise CancelTask("not wanted")

    @registry.register("odd")
    async def odd(options: Options) -> object:
        await trio.sleep(1)
        return object()

    store = PlainStore(registry)
    assert not isinstance(store, BatchingStore)
    slow: list[str] = []

    async def slow_fail() -> None:
        slow.append("fail")
        await trio.sleep(0.5)

    store.hooks["fail"] = [slow_fail]
    ok_id, flaky_id, quit_id, odd_id, last_id = await store.enqueue(
        [Job("ok"), Job("flaky", retry=1, backoff=NO_JITTER), Job("quit"), Job("odd"), Job("ok")]
    )
    async with DurableWorker(store, registry, concurrency=2, poll=POLL) as worker:
        records = {task_id: await store.wait(task_id) for task_id in (ok_id, flaky_id, quit_id, odd_id, last_id)}
    assert {task_id: record.status for task_id, record in records.items()} == {
        ok_id: TaskStatus.SUCCEEDED,
        flaky_id: TaskStatus.DEAD,
        quit_id: TaskStatus.CANCELLED,
        odd_id: TaskStatus.DEAD,  # its one attempt failed, its result not JSON
        last_id: TaskStatus.SUCCEEDED,
    }
    assert records[flaky_id].attempts == 2
    # t=1: ok ends, flaky's first attempt fails, its write taking 0.5 s; their successors start once both are written.
    assert (records[quit_id].started_at, records[odd_id].started_at) == (1.5, 1.5)
    assert slow == ["fail"]
    assert all(1 <= limit <= 2 - held for limit, held in store.claims), store.claims
    assert worker.statistics() == counters(claimed=6, succeeded=2, retried=1, failed=2, cancelled=1)


@bounded
async def test_free_slot_takes_new_work_within_a_poll(autojump_clock: trio.testing.MockClock) -> None:
    """With 7 of 8 slots busy for 100 s, a task enqueued at t=2 starts within one poll, not when a long task ends."""
    registry = Registry()

    @registry.register("sleep")
    async def sleep(options: Options) -> None:
        await trio.sleep(wpxt.current_job().args["seconds"])

    store = virtual_store(registry)
    await store.enqueue([Job("sleep", args={"seconds": 100}) for _ in range(7)])
    await store.enqueue([Job("sleep", args={"seconds": 1})])
    async with DurableWorker(store, registry, concurrency=8, poll=1) as worker:
        await trio.sleep(2)
        assert worker.statistics().running == 7
        [late] = await store.enqueue([Job("sleep", args={"seconds": 1})])
        record = await store.wait(late)
    assert record.status is TaskStatus.SUCCEEDED
    assert record.started_at is not None
    assert record.started_at <= 3.0


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        pytest.param(Order.FIFO, ["a", "b", "c"], id="fifo"),
        pytest.param(Order.LIFO, ["c", "b", "a"], id="lifo"),
        pytest.param(Order.PRIORITY, ["b", "c", "a"], id="priority"),
        pytest.param("lifo", ["c", "b", "a"], id="lifo-as-str"),
    ],
)
@bounded
async def test_order_picks_the_next_task(
    autojump_clock: trio.testing.MockClock, order: Order | str, expected: list[str]
) -> None:
    """A one-slot worker runs queued tasks in its ``order``: oldest, newest or highest priority first."""
    registry = Registry()
    ran: list[str] = []

    @registry.register("named")
    async def named(options: Options) -> None:
        ran.append(wpxt.current_job().args["name"])
        await trio.sleep(1)

    store = virtual_store(registry)
    ids = [
        *await store.enqueue([Job("named", args={"name": "a"})], priority=0),
        *await store.enqueue([Job("named", args={"name": "b"})], priority=5),
        *await store.enqueue([Job("named", args={"name": "c"})], priority=1),
    ]
    async with DurableWorker(store, registry, concurrency=1, order=order):
        for task_id in ids:
            await store.wait(task_id)
    assert ran == expected
    assert trio.current_time() == 3.0


@bounded
async def test_enqueue_wakes_an_idle_worker(autojump_clock: trio.testing.MockClock) -> None:
    """With poll=10, tasks enqueued at t=1 and t=4.5 start at once: the MemoryStore notifies the worker."""
    registry = Registry()
    starts: list[float] = []

    @registry.register("note")
    async def note(options: Options) -> None:
        starts.append(trio.current_time())

    store = virtual_store(registry)
    async with DurableWorker(store, registry, poll=10):
        await trio.sleep(1)
        [first] = await store.enqueue([Job("note")])
        await store.wait(first)
        await trio.sleep_until(4.5)
        [second] = await store.enqueue([Job("note")])
        await store.wait(second)
    assert starts == [1.0, 4.5]
    assert [(await store.get(task_id)).started_at for task_id in (first, second)] == [1.0, 4.5]


@bounded
async def test_middleware_and_options_apply_to_tasks(autojump_clock: trio.testing.MockClock) -> None:
    """The worker's middleware wraps each task run and its options reach the handler."""
    registry = Registry()
    events: list[tuple[str, str, int | None]] = []

    async def record(job: wpxt.RunningJob, call_next: wpxt.middleware.CallNext) -> Any:
        events.append(("before", job.name, job.task_id))
        value = await call_next()
        events.append(("after", job.name, job.task_id))
        return value

    @registry.register("greet")
    async def greet(options: Options) -> str:
        events.append(("run", "greet", wpxt.current_job().task_id))
        return f"{options['greeting']}, {wpxt.current_job().args['who']}"

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("greet", args={"who": "Ada"})])
    async with DurableWorker(store, registry, middleware=[record], options={"greeting": "Hello"}):
        record_ = await store.wait(task_id)
    assert (record_.status, record_.result) == (TaskStatus.SUCCEEDED, "Hello, Ada")
    assert events == [("before", "greet", task_id), ("run", "greet", task_id), ("after", "greet", task_id)]


# -- failures and retries --------------------------------------------------------------


@bounded
async def test_failed_attempts_are_retried_through_the_store(autojump_clock: trio.testing.MockClock) -> None:
    """A task failing twice with retry=2 is requeued for t=1 and t=2 with its error; attempt 3 (store count) wins."""
    registry = Registry()
    store = virtual_store(registry)
    attempts: list[tuple[float, int, int, float, str | None]] = []

    @registry.register("flaky")
    async def flaky(options: Options) -> str:
        task_id = wpxt.current_job().task_id
        assert task_id is not None
        record = await store.get(task_id)
        attempt = wpxt.current_job().attempt
        attempts.append((trio.current_time(), attempt, record.attempts, record.run_at, record.error_message))
        if record.attempts < 3:
            raise ValueError(f"attempt {record.attempts}")
        return "third time lucky"

    [task_id] = await store.enqueue([Job("flaky", retry=2, backoff=NO_JITTER)])
    async with DurableWorker(store, registry, poll=POLL) as worker:
        record = await store.wait(task_id)
    assert attempts == [(0.0, 1, 1, 0.0, None), (1.0, 2, 2, 1.0, "attempt 1"), (2.0, 3, 3, 2.0, "attempt 2")]
    assert (record.status, record.result, record.attempts, record.retry) == (
        TaskStatus.SUCCEEDED,
        "third time lucky",
        3,
        2,
    )
    assert (record.started_at, record.finished_at) == (2.0, 2.0)
    assert worker.statistics() == counters(claimed=3, retried=2, succeeded=1)


@bounded
async def test_retry_waits_grow_with_the_attempt_count(autojump_clock: trio.testing.MockClock) -> None:
    """The wait before retry n is the backoff's delay(n): 1, 2 and 4 s, so attempts start at 0, 1, 3 and 7."""
    registry = Registry()
    starts: list[float] = []

    @registry.register("fails")
    async def fails(options: Options) -> None:
        starts.append(trio.current_time())
        raise ValueError("no")

    store = virtual_store(registry)
    backoff = Backoff(initial=1.0, multiplier=2.0, jitter=0.0)
    [task_id] = await store.enqueue([Job("fails", retry=3, backoff=backoff)])
    async with DurableWorker(store, registry, poll=POLL):
        record = await store.wait(task_id)
    assert starts == [0.0, 1.0, 3.0, 7.0]
    assert (record.status, record.attempts, record.finished_at) == (TaskStatus.DEAD, 4, 7.0)


@pytest.mark.parametrize(
    ("job_backoff", "second_start"),
    [pytest.param(None, 2.0, id="worker-backoff"), pytest.param(NO_JITTER, 1.0, id="job-backoff-wins")],
)
@bounded
async def test_worker_backoff_is_for_tasks_that_set_none(
    autojump_clock: trio.testing.MockClock, job_backoff: Backoff | None, second_start: float
) -> None:
    """A task without a backoff waits the worker's (2 s) before its retry; one with its own waits that (1 s)."""
    registry = Registry()
    starts: list[float] = []

    @registry.register("once")
    async def once(options: Options) -> None:
        starts.append(trio.current_time())
        if len(starts) == 1:
            raise ValueError("first")

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("once", retry=1, backoff=job_backoff)])
    worker_backoff = Backoff(initial=2.0, multiplier=1.0, jitter=0.0)
    async with DurableWorker(store, registry, poll=POLL, backoff=worker_backoff):
        record = await store.wait(task_id)
    assert starts == [0.0, second_start]
    assert (record.status, record.attempts) == (TaskStatus.SUCCEEDED, 2)


@bounded
async def test_task_failing_every_attempt_is_dead_with_its_last_error(autojump_clock: trio.testing.MockClock) -> None:
    """A task failing all three attempts ends DEAD with the type and message of the third error."""
    registry = Registry()
    calls = 0

    @registry.register("broken")
    async def broken(options: Options) -> None:
        nonlocal calls
        calls += 1
        raise KeyError(f"attempt {calls}")

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("broken", retry=2, backoff=NO_JITTER)])
    async with DurableWorker(store, registry, poll=POLL) as worker:
        record = await store.wait(task_id)
        await trio.sleep(10)
    assert calls == 3
    assert (record.status, record.attempts, record.retry) == (TaskStatus.DEAD, 3, 2)
    assert (record.error_type, record.error_message) == ("KeyError", "'attempt 3'")
    assert (record.finished_at, record.heartbeat_at, record.result) == (2.0, None, None)
    assert worker.statistics() == counters(claimed=3, retried=2, failed=1)


@pytest.mark.parametrize("retry", [None, 0])
@bounded
async def test_task_without_retries_is_dead_after_one_failure(
    autojump_clock: trio.testing.MockClock, retry: int | None
) -> None:
    """A task with no retries that fails once is DEAD at once: its one attempt made (retry 0), never rerun."""
    registry = Registry()
    calls = 0

    @registry.register("once")
    async def once(options: Options) -> None:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        raise OSError("disk on fire")

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("once", retry=retry)])
    async with DurableWorker(store, registry) as worker:
        record = await store.wait(task_id)
        await trio.sleep(10)
    assert calls == 1
    assert (record.status, record.attempts, record.retry, record.finished_at) == (TaskStatus.DEAD, 1, 0, 1.0)
    assert (record.error_type, record.error_message) == ("OSError", "disk on fire")
    assert worker.statistics() == counters(claimed=1, failed=1)


@pytest.mark.parametrize("limit", ["timeout", "attempt_timeout"])
@bounded
async def test_job_timeout_fails_the_attempt(autojump_clock: trio.testing.MockClock, limit: str) -> None:
    """An attempt outliving the task's timeout (2 s) fails with JobTimeoutError, is retried at t=3, then is DEAD."""
    registry = Registry()
    starts: list[float] = []

    @registry.register("slow")
    async def slow(options: Options) -> None:
        starts.append(trio.current_time())
        await trio.sleep(10)

    store = virtual_store(registry)
    limits: dict[str, Any] = {limit: 2.0}
    job = Job("slow", retry=1, backoff=NO_JITTER, **limits)
    [task_id] = await store.enqueue([job])
    async with DurableWorker(store, registry, poll=POLL) as worker:
        record = await store.wait(task_id)
    assert starts == [0.0, 3.0]
    assert (record.status, record.attempts, record.finished_at) == (TaskStatus.DEAD, 2, 5.0)
    assert record.error_type == "JobTimeoutError"
    assert record.error_message is not None
    assert "slow" in record.error_message
    assert worker.statistics() == counters(claimed=2, retried=1, failed=1)


@bounded
async def test_cancel_task_cancels_without_retry(autojump_clock: trio.testing.MockClock) -> None:
    """A handler raising CancelTask ends its task CANCELLED at that time, despite retries left."""
    registry = Registry()
    calls = 0

    @registry.register("withdraw")
    async def withdraw(options: Options) -> None:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        raise CancelTask("no longer wanted")

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("withdraw", retry=3, backoff=NO_JITTER)])
    async with DurableWorker(store, registry, poll=POLL) as worker:
        record = await store.wait(task_id)
        await trio.sleep(10)
    assert calls == 1
    assert (record.status, record.attempts, record.finished_at, record.heartbeat_at) == (
        TaskStatus.CANCELLED,
        1,
        1.0,
        None,
    )
    assert await store.get(task_id) == record
    assert worker.statistics() == counters(claimed=1, cancelled=1)


@bounded
async def test_unknown_handler_is_dead_and_the_worker_goes_on(autojump_clock: trio.testing.MockClock) -> None:
    """A task naming a handler the worker lacks is DEAD alone; the tasks around it run."""
    registry = Registry()
    ran: list[int] = []

    @registry.register("known")
    async def known(options: Options) -> None:
        task_id = wpxt.current_job().task_id
        assert task_id is not None
        ran.append(task_id)

    store = virtual_store()  # no registry: enqueue() accepts any name
    ids = await store.enqueue([Job("known"), Job("missing", retry=3), Job("known")])
    async with DurableWorker(store, registry, concurrency=1, poll=POLL) as worker:
        records = [await store.wait(task_id) for task_id in ids]
        [later] = await store.enqueue([Job("known")])
        await store.wait(later)
    assert [record.status for record in records] == [TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.SUCCEEDED]
    dead = records[1]
    assert (dead.error_type, dead.attempts, dead.finished_at) == ("UnknownHandlerError", 1, 0.0)
    assert dead.error_message is not None
    assert "missing" in dead.error_message
    assert ran == [ids[0], ids[2], later]
    assert worker.statistics() == counters(claimed=4, succeeded=3, failed=1)


async def test_keyword_handlers_get_their_args() -> None:
    """Handlers taking parameters get the task's args as keywords, async and plain, defaults filled, options beside.

    On the real clock, with a short bound: a plain handler runs in a thread, which an autojump clock would not wait for.
    """
    registry = Registry()

    @registry.register("send")
    async def send(to: str, subject: str = "hi") -> list[Any]:
        await trio.lowlevel.checkpoint()
        return [to, subject, wpxt.current_job().task_id]

    @registry.register("count")
    def count(words: list[str]) -> int:  # a plain handler: in a thread
        return len(words)

    @registry.register("both")
    async def both(options: Options, *, n: int) -> list[Any]:
        return [dict(options), n]

    store = MemoryStore(registry=registry)
    ids = await store.enqueue(
        [Job("send", args={"to": "ada"}), Job("count", args={"words": ["a", "b"]}), Job("both", args={"n": 2})]
    )
    with trio.fail_after(10):
        async with DurableWorker(store, registry, options={"o": 1}):
            records = [await store.wait(task_id) for task_id in ids]
    assert [record.status for record in records] == [TaskStatus.SUCCEEDED] * 3
    assert [record.result for record in records] == [["ada", "hi", ids[0]], 2, [{"o": 1}, 2]]


@bounded
async def test_task_whose_args_do_not_fit_is_dead_and_the_worker_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stored task whose args do not fit its handler is DEAD, with a TypeError naming the argument and the handler."""
    registry = Registry()

    @registry.register("mail")
    async def send(to: str) -> str:  # registered under another name, which errors use
        return to

    store = virtual_store()  # no registry: enqueue() checks nothing
    bad, good = await store.enqueue(
        [Job("mail", args={"to": "ada", "cc": "bob"}, retry=3), Job("mail", args={"to": "x"})]
    )
    async with DurableWorker(store, registry, concurrency=1) as worker:
        bad_record, good_record = await store.wait(bad), await store.wait(good)
    assert (bad_record.status, bad_record.error_type, bad_record.attempts) == (TaskStatus.DEAD, "TypeError", 1)
    assert bad_record.error_message == "mail() got an unexpected keyword argument 'cc'"
    assert (good_record.status, good_record.result) == (TaskStatus.SUCCEEDED, "x")
    assert worker.statistics() == counters(claimed=2, succeeded=1, failed=1)


@pytest.mark.parametrize(
    ("job", "error_type", "words"),
    [
        pytest.param({"task": "h", "bogus": 1}, "ValueError", "bogus", id="unknown-field"),
        pytest.param({"task": "h", "timeout": "soon"}, "TypeError", "timeout", id="bad-timeout"),
        pytest.param({"name": "h"}, "ValueError", "task", id="no-task"),
    ],
)
@bounded
async def test_corrupted_task_is_dead_and_the_worker_goes_on(
    autojump_clock: trio.testing.MockClock, job: dict[str, Any], error_type: str, words: str
) -> None:
    """A task whose stored job cannot be rebuilt is DEAD with the reason; the next task runs."""
    registry = Registry()
    ran: list[int | None] = []

    @registry.register("h")
    async def h(options: Options) -> None:
        ran.append(wpxt.current_job().task_id)

    store = virtual_store(registry)
    corrupt, good = await store.enqueue([Job("h", retry=2), Job("h")])
    store._tasks[corrupt] = attrs.evolve(store._tasks[corrupt], job=job)
    async with DurableWorker(store, registry, concurrency=1) as worker:
        bad_record, good_record = await store.wait(corrupt), await store.wait(good)
    assert (bad_record.status, bad_record.error_type, bad_record.attempts) == (TaskStatus.DEAD, error_type, 1)
    assert bad_record.error_message is not None
    assert words in bad_record.error_message
    assert good_record.status is TaskStatus.SUCCEEDED
    assert ran == [good]
    assert worker.statistics() == counters(claimed=2, succeeded=1, failed=1)


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        pytest.param(object(), "TypeError", id="object"),
        pytest.param({1, 2}, "TypeError", id="set"),
        pytest.param({"x": float("nan")}, "ValueError", id="nan"),
    ],
)
@pytest.mark.parametrize(("retry", "status"), [(0, TaskStatus.DEAD), (2, TaskStatus.FAILED)])
@bounded
async def test_result_json_cannot_hold_fails_the_task(
    autojump_clock: trio.testing.MockClock, value: object, error_type: str, retry: int, status: TaskStatus
) -> None:
    """A handler returning what JSON cannot hold fails its task, unretried, with the error; the next task runs."""
    registry = Registry()
    calls = 0

    @registry.register("odd")
    async def odd(options: Options) -> object:
        nonlocal calls
        calls += 1
        return value

    @registry.register("fine")
    async def fine(options: Options) -> int:
        return 7

    store = virtual_store(registry)
    odd_id, fine_id = await store.enqueue([Job("odd", retry=retry), Job("fine")])
    async with DurableWorker(store, registry, concurrency=1, poll=POLL) as worker:
        odd_record, fine_record = await store.wait(odd_id), await store.wait(fine_id)
        await trio.sleep(10)
    assert calls == 1
    assert (odd_record.status, odd_record.error_type, odd_record.attempts, odd_record.result) == (
        status,
        error_type,
        1,
        None,
    )
    assert (fine_record.status, fine_record.result) == (TaskStatus.SUCCEEDED, 7)
    assert worker.statistics() == counters(claimed=2, succeeded=1, failed=1)


@bounded
async def test_result_over_the_size_cap_fails_the_task(autojump_clock: trio.testing.MockClock) -> None:
    """A result whose JSON exceeds the store's max_json_bytes fails its task with a ValueError saying so."""
    registry = Registry()

    @registry.register("big")
    async def big(options: Options) -> str:
        return "x" * 199

    store = MemoryStore(registry=registry, clock=trio.current_time, max_json_bytes=200)
    [task_id] = await store.enqueue([Job("big")])
    async with DurableWorker(store, registry, poll=POLL) as worker:
        record = await store.wait(task_id)
    assert (record.status, record.error_type, record.result) == (TaskStatus.DEAD, "ValueError", None)
    assert record.error_message is not None
    assert record.error_message.startswith(
        "`result` is 201 bytes of JSON, more than the store's `max_json_bytes` (200)"
    )
    assert worker.statistics() == counters(claimed=1, failed=1)


# -- leases and heartbeats ----------------------------------------------------------------


@bounded
async def test_heartbeat_keeps_the_lease_of_a_long_task(autojump_clock: trio.testing.MockClock) -> None:
    """A 20 s task under a 5 s lease keeps it: the heartbeat refreshes it each second and no rival can claim it."""
    registry = Registry()

    @registry.register("long")
    async def long(options: Options) -> str:
        await trio.sleep(20)
        return "done"

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("long")])
    async with DurableWorker(store, registry, lease=5, heartbeat=1, worker_id="w1") as worker:
        await trio.sleep(10)
        assert await store.claim("rival", 1, lease=5) == []
        await trio.sleep(0.5)
        held = await store.get(task_id)
        assert (held.status, held.worker_id, held.heartbeat_at) == (TaskStatus.RUNNING, "w1", 10.0)
        assert await store.claim("rival", 1, lease=5) == []
        record = await store.wait(task_id)
    assert (record.status, record.result, record.attempts, record.finished_at) == (
        TaskStatus.SUCCEEDED,
        "done",
        1,
        20.0,
    )
    assert worker.statistics() == counters(claimed=1, succeeded=1)


@pytest.mark.parametrize("lease", [5, datetime.timedelta(seconds=5)])
@bounded
async def test_stolen_task_is_cancelled_and_left_to_the_thief(
    autojump_clock: trio.testing.MockClock, lease: float | datetime.timedelta
) -> None:
    """A task another worker took at t=2.5 is cancelled at the next heartbeat (t=3); its record stays the thief's."""
    registry = Registry()
    cancelled_at: list[float] = []

    @registry.register("long")
    async def long(options: Options) -> None:
        try:
            await trio.sleep(20)
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("long", retry=3)])
    async with DurableWorker(store, registry, lease=lease, heartbeat=datetime.timedelta(seconds=1)) as worker:
        await trio.sleep(2.5)
        stolen = steal(store, task_id)
        await trio.sleep(3)  # the thief's own lease lasts until t=7.5
        assert worker.statistics() == counters(claimed=1, lost=1)
        assert await store.get(task_id) == stolen
    assert cancelled_at == [3.0]
    assert worker.statistics() == counters(claimed=1, lost=1)


@bounded
async def test_lost_task_counts_once_while_its_cancellation_is_slow(autojump_clock: trio.testing.MockClock) -> None:
    """A stolen task whose handler takes 2.5 s to honour its cancellation still counts as one lost task."""
    registry = Registry()

    @registry.register("stubborn")
    async def stubborn(options: Options) -> None:
        try:
            await trio.sleep(20)
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(2.5)  # cleanup that outlives two more heartbeats

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("stubborn")])
    async with DurableWorker(store, registry, lease=5, heartbeat=1) as worker:
        await trio.sleep(2.5)
        stolen = steal(store, task_id)
        await trio.sleep(4)  # the cleanup ends at t=5.5; the thief's own lease lasts until t=7.5
        assert await store.get(task_id) == stolen
        assert worker.statistics() == counters(claimed=1, lost=1)


@bounded
async def test_final_write_after_losing_the_lease_is_refused(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task ending after another worker took it, before a heartbeat noticed, leaves the thief's record alone."""
    registry = Registry()

    @registry.register("quick")
    async def quick(options: Options) -> str:
        await trio.sleep(2.75)
        return "mine"

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("quick")])
    async with DurableWorker(store, registry, lease=5, heartbeat=1, worker_id="w1") as worker:
        await trio.sleep(2.5)
        stolen = steal(store, task_id)
        await trio.sleep(1)
    assert await store.get(task_id) == stolen
    assert (worker.statistics().succeeded, worker.statistics().lost) == (0, 1)
    # One line, the task's outcome, with what the store refused.
    [warning] = [record for record in caplog.records if "cannot be completed" in record.getMessage()]
    assert (warning.name, warning.levelno, warning.worker_id) == ("workerpoolxt.durable", logging.WARNING, "w1")
    assert warning.getMessage() == (
        f"task {task_id} quick lost to another worker (attempt 1/1): "
        f"TaskConflictError: task {task_id} cannot be completed: it is running"
    )


@pytest.mark.parametrize("retry", [None, 1])
@bounded
async def test_task_of_a_dead_worker_runs_again_after_its_lease(
    autojump_clock: trio.testing.MockClock, retry: int | None
) -> None:
    """A task whose worker died at t=0 reruns at the first poll after its 5 s lease, as the same attempt, any retry."""
    registry = Registry()
    runs: list[tuple[float, int, int]] = []
    store = virtual_store(registry)

    @registry.register("resume")
    async def resume(options: Options) -> None:
        task_id = wpxt.current_job().task_id
        assert task_id is not None
        runs.append((trio.current_time(), wpxt.current_job().attempt, (await store.get(task_id)).attempts))
        await trio.sleep(1)

    [task_id] = await store.enqueue([Job("resume", retry=retry)])
    [orphan] = await store.claim("dead", 1, lease=5)
    assert (orphan.attempts, orphan.lost_leases) == (1, 0)
    async with DurableWorker(store, registry, lease=5, heartbeat=1, poll=POLL, worker_id="w1") as worker:
        record = await store.wait(task_id)
    assert runs == [(5.25, 1, 1)]
    assert (record.status, record.attempts, record.lost_leases, record.worker_id) == (TaskStatus.SUCCEEDED, 1, 1, "w1")
    assert (record.started_at, record.finished_at) == (5.25, 6.25)
    assert worker.statistics() == counters(claimed=1, succeeded=1)


@bounded
async def test_task_whose_workers_keep_dying_is_dead_past_max_lost_leases(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With max_lost_leases=1, a task whose second worker dies too is DEAD (LeaseExpired) once that lease expires."""
    registry = Registry()
    calls = 0

    @registry.register("deadly")
    async def deadly(options: Options) -> None:
        nonlocal calls
        calls += 1

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("deadly", retry=5)])
    await store.claim("first", 1, lease=5)
    await trio.sleep(5.5)
    [again] = await store.claim("second", 1, lease=5, max_lost_leases=1)
    assert (again.attempts, again.lost_leases) == (1, 1)
    async with DurableWorker(store, registry, lease=5, heartbeat=1, poll=POLL, max_lost_leases=1) as worker:
        record = await store.wait(task_id)
    assert calls == 0
    assert (record.status, record.error_type, record.attempts, record.lost_leases, record.finished_at) == (
        TaskStatus.DEAD,
        "LeaseExpired",
        1,
        2,
        10.75,
    )
    assert record.error_message == (
        "worker second stopped heartbeating: the task lost its lease 2 times, more than max_lost_leases (1)"
    )
    assert worker.statistics() == counters()


# -- cancelling a running task ------------------------------------------------------------


class SilentStore(MemoryStore):
    """A virtual-time MemoryStore that announces no cancellation, as SQLite cannot: the heartbeat must find it."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry=registry, clock=trio.current_time)

    async def wait_for_cancellations(self) -> list[int]:
        await trio.sleep_forever()


@pytest.mark.parametrize(
    ("store_class", "cancelled_at"),
    [(functools.partial(MemoryStore, clock=trio.current_time), [2.5, 3.5]), (SilentStore, [3.0, 4.0])],
    ids=["announced", "at-the-heartbeat"],
)
@bounded
async def test_cancelling_a_running_task_in_the_store_cancels_its_handler(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    store_class: Callable[..., MemoryStore],
    cancelled_at: list[float],
) -> None:
    """store.cancel() at t=2.5, then 3.5, cancels the running handler: at once if announced, else at a heartbeat."""
    registry = Registry()
    seen: list[float] = []

    @registry.register("long")
    async def long(options: Options) -> str:
        try:
            await trio.sleep(20)
        except trio.Cancelled:
            seen.append(trio.current_time())
            raise
        return "done"

    store = store_class(registry=registry)
    [task_id, later] = await store.enqueue([Job("long", retry=3), Job("long")])
    async with DurableWorker(store, registry, concurrency=1, lease=5, heartbeat=1) as worker:
        await trio.sleep(2.5)
        await store.cancel(task_id)
        await trio.sleep(1)
        assert seen == cancelled_at[:1]
        assert worker.statistics() == counters(claimed=2, cancelled=1, running=1)  # the next task took its slot
        record = await store.get(task_id)
        await store.cancel(later)
    assert (record.status, record.attempts, record.finished_at) == (TaskStatus.CANCELLED, 1, 2.5)
    assert seen == cancelled_at
    assert worker.statistics() == counters(claimed=2, cancelled=2)
    assert [entry.getMessage() for entry in caplog.records if entry.levelno >= logging.WARNING] == []


@bounded
async def test_task_cancelled_as_it_ends_counts_as_cancelled(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task cancelled in the store just before its worker writes its end stays cancelled, counted so, unwarned."""
    registry = Registry()

    @registry.register("quick")
    async def quick(options: Options) -> str:
        await trio.sleep(1)
        return "done"

    store = ScriptedStore(registry)
    [task_id] = await store.enqueue([Job("quick")])

    async def cancel_first() -> None:
        await store.cancel(task_id)

    store.hooks["complete"] = [cancel_first]
    async with DurableWorker(store, registry) as worker:
        record = await store.wait(task_id)
    assert (record.status, record.result, record.finished_at) == (TaskStatus.CANCELLED, None, 1.0)
    assert worker.statistics() == counters(claimed=1, cancelled=1)
    assert [entry.getMessage() for entry in caplog.records if entry.levelno >= logging.WARNING] == []


# -- stopping ---------------------------------------------------------------------------


@bounded
async def test_leaving_the_block_lets_the_running_task_finish(autojump_clock: trio.testing.MockClock) -> None:
    """Leaving ``async with`` at t=1 waits for the running 3 s task to succeed, and claims nothing more."""
    registry = Registry()

    @registry.register("job")
    async def job(options: Options) -> str:
        await trio.sleep(3)
        return "finished"

    store = virtual_store(registry)
    running, waiting = await store.enqueue([Job("job"), Job("job")])
    async with DurableWorker(store, registry, concurrency=1) as worker:
        await trio.sleep(1)
    assert trio.current_time() == 3.0
    record = await store.get(running)
    assert (record.status, record.result, record.finished_at) == (TaskStatus.SUCCEEDED, "finished", 3.0)
    queued = await store.get(waiting)
    assert (queued.status, queued.attempts, queued.worker_id) == (TaskStatus.QUEUED, 0, None)
    assert worker.statistics() == counters(claimed=1, succeeded=1)


@bounded
async def test_stop_stops_claiming(autojump_clock: trio.testing.MockClock) -> None:
    """After stop() at t=1 the running task finishes at t=2, then run() returns; a task enqueued later stays queued."""
    registry = Registry()

    @registry.register("job")
    async def job(options: Options) -> None:
        await trio.sleep(2)

    store = virtual_store(registry)
    [first] = await store.enqueue([Job("job")])
    worker = DurableWorker(store, registry)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        worker.stop()
        await trio.sleep(0.5)
        [later] = await store.enqueue([Job("job")])
        await worker.wait_stopped()
        assert trio.current_time() == 2.0
    assert (await store.get(first)).status is TaskStatus.SUCCEEDED
    record = await store.get(later)
    assert (record.status, record.attempts, record.started_at) == (TaskStatus.QUEUED, 0, None)
    assert worker.statistics() == counters(claimed=1, succeeded=1)


@bounded
async def test_stop_cancel_running_releases_the_task(autojump_clock: trio.testing.MockClock) -> None:
    """stop(cancel_running=True) at t=1 cancels the running task and releases it, its attempt not counted."""
    registry = Registry()
    cancelled_at: list[float] = []

    @registry.register("long")
    async def long(options: Options) -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("long", retry=2)])
    worker = DurableWorker(store, registry)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        worker.stop(cancel_running=True)
        await worker.wait_stopped()
        assert trio.current_time() == 1.0
    assert cancelled_at == [1.0]
    record = await store.get(task_id)
    assert (record.status, record.attempts, record.heartbeat_at, record.finished_at) == (
        TaskStatus.QUEUED,
        0,
        None,
        None,
    )
    assert worker.statistics() == counters(claimed=1, released=1)
    [again] = await store.claim("w2", 1)  # no worker holds it: anyone may claim it now
    assert (again.id, again.attempts) == (task_id, 1)


@bounded
async def test_stop_before_run_claims_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """A worker stopped before it runs returns from run() at once and leaves the queue alone."""
    registry = some_registry()
    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("job")])
    worker = DurableWorker(store, registry)
    worker.stop()
    await worker.run()
    assert trio.current_time() == 0.0
    assert (await store.get(task_id)).status is TaskStatus.QUEUED
    assert worker.statistics() == counters()


@bounded
async def test_stop_after_a_claim_lets_its_task_finish(autojump_clock: trio.testing.MockClock) -> None:
    """A task claimed just before stop() went to the pool's idle worker at once: it runs and is finalised."""
    registry = Registry()
    calls = 0

    @registry.register("job")
    async def job(options: Options) -> None:
        nonlocal calls
        calls += 1

    store = ScriptedStore(registry)
    [task_id] = await store.enqueue([Job("job")])
    worker = DurableWorker(store, registry, concurrency=2)

    async def stop_worker() -> None:
        worker.stop()

    async def pool_idle() -> None:
        await trio.sleep(0.5)  # long enough for the pool's workers to wait for jobs

    # The first claim takes the task and hands it to the pool; the second, made before it runs, stops the worker.
    store.hooks["claim"] = [pool_idle, stop_worker]
    await worker.run()
    assert calls == 1
    record = await store.get(task_id)
    assert (record.status, record.attempts, record.finished_at) == (TaskStatus.SUCCEEDED, 1, 0.5)
    assert worker.statistics() == counters(claimed=1, succeeded=1)


@bounded
async def test_claim_that_returns_after_stop_is_released(autojump_clock: trio.testing.MockClock) -> None:
    """Tasks a claim returns after stop() are released uncounted and never run."""
    registry = Registry()
    calls = 0

    @registry.register("job")
    async def job(options: Options) -> None:
        nonlocal calls
        calls += 1

    store = ScriptedStore(registry)
    ids = await store.enqueue([Job("job"), Job("job")])
    worker = DurableWorker(store, registry)

    async def stop_worker() -> None:
        worker.stop()

    store.hooks["claimed"] = [stop_worker]
    await worker.run()
    assert calls == 0
    for task_id in ids:
        record = await store.get(task_id)
        assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
    statistics = worker.statistics()
    assert statistics.claimed == statistics.released
    assert statistics.running == 0


@bounded
async def test_outer_cancellation_lets_a_final_write_under_way_finish(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the scope around run() at t=1.5, during a 1 s final write, lets the write finish at t=2."""
    registry = Registry()

    @registry.register("job")
    async def job(options: Options) -> str:
        await trio.sleep(1)
        return "done"

    async def slow_write() -> None:
        await trio.sleep(1)

    store = ScriptedStore(registry)
    store.hooks["complete"] = [slow_write]
    [task_id] = await store.enqueue([Job("job")])
    worker = DurableWorker(store, registry)
    with trio.move_on_after(1.5) as scope:
        await worker.run()
    assert scope.cancelled_caught
    assert trio.current_time() == 2.0
    record = await store.get(task_id)
    assert (record.status, record.result, record.finished_at) == (TaskStatus.SUCCEEDED, "done", 2.0)
    assert worker.statistics() == counters(claimed=1, succeeded=1)


@bounded
async def test_outer_cancellation_of_run_releases_the_running_task(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the scope around run() at t=3 releases the running task rather than leaving it running."""
    registry = Registry()

    @registry.register("long")
    async def long(options: Options) -> None:
        await trio.sleep(10)

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("long", retry=2)])
    worker = DurableWorker(store, registry)
    with trio.move_on_after(3) as scope:
        await worker.run()
    assert scope.cancelled_caught
    record = await store.get(task_id)
    assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
    assert worker.statistics().released == 1


@bounded
async def test_outer_cancellation_of_the_block_releases_the_running_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling the scope around ``async with DurableWorker`` at t=3 releases the running task."""
    registry = Registry()

    @registry.register("long")
    async def long(options: Options) -> None:
        await trio.sleep(10)

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("long", retry=2)])
    with trio.move_on_after(3) as scope:
        async with DurableWorker(store, registry) as worker:
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() == 3.0
    record = await store.get(task_id)
    assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
    assert worker.statistics().released == 1


@bounded
async def test_error_in_the_block_releases_the_running_task(autojump_clock: trio.testing.MockClock) -> None:
    """An exception leaving ``async with DurableWorker`` reaches the caller, and the running task is released."""
    registry = Registry()

    @registry.register("long")
    async def long(options: Options) -> None:
        await trio.sleep(10)

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("long", retry=2)])
    boom = ValueError("boom")
    with pytest.raises(ValueError, match="boom") as raised:  # noqa: PT012 - the block's own error comes out bare
        async with DurableWorker(store, registry):
            await trio.sleep(1)
            raise boom
    assert raised.value is boom
    record = await store.get(task_id)
    assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)


@bounded
async def test_interrupt_in_the_claim_loop_releases_the_running_task(autojump_clock: trio.testing.MockClock) -> None:
    """A KeyboardInterrupt raised in a claim at t=1 reaches run()'s caller, and the running task is released at once."""
    registry = Registry()
    cancelled_at: list[float] = []

    @registry.register("long")
    async def long(options: Options) -> None:
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise

    store = ScriptedStore(registry)
    # Claims at t=0 take the task and find nothing more; the next, one poll later, is interrupted.
    store.hooks["claim"] = [None, None, raising(KeyboardInterrupt())]
    [task_id] = await store.enqueue([Job("long", retry=2)])
    worker = DurableWorker(store, registry, poll=1)
    with pytest.raises(KeyboardInterrupt):
        await worker.run()
    assert trio.current_time() == 1.0
    assert cancelled_at == [1.0]
    record = await store.get(task_id)
    assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
    assert worker.statistics() == counters(claimed=1, released=1)


# -- a handler's BaseException ------------------------------------------------------------


class Interrupt(BaseException):
    """A BaseException of the user's own."""


@pytest.mark.parametrize(
    "error",
    [SystemExit(3), KeyboardInterrupt(), Interrupt("stop")],
    ids=["SystemExit", "KeyboardInterrupt", "user"],
)
@bounded
async def test_base_exception_in_a_handler_fails_its_attempt_and_frees_the_others(
    autojump_clock: trio.testing.MockClock, error: BaseException
) -> None:
    """A handler's BaseException leaves each worker bare, failing only its own attempt; the others run in the end."""
    registry = Registry()
    runs: list[tuple[float, int]] = []

    @registry.register("poison")
    async def poison(options: Options) -> None:
        await trio.sleep(1)
        raise error

    @registry.register("slow")
    async def slow(options: Options) -> str:
        runs.append((trio.current_time(), wpxt.current_job().attempt))
        await trio.sleep(5)
        return "done"

    store = virtual_store(registry)
    poison_id, *innocent = await store.enqueue([Job("poison", retry=1, backoff=NO_JITTER)] + [Job("slow")] * 3)

    # t=1: the poison fails its first attempt (retried at t=2); the three tasks running beside it go back uncounted.
    with pytest.raises(type(error)) as raised:
        async with DurableWorker(store, registry, concurrency=4, poll=POLL, worker_id="w1") as first:
            await trio.sleep_forever()
    assert raised.value is error
    assert trio.current_time() == 1.0
    record = await store.get(poison_id)
    assert (record.status, record.attempts, record.run_at, record.error_type) == (
        TaskStatus.QUEUED,
        1,
        2.0,
        type(error).__qualname__,
    )
    for task_id in innocent:
        record = await store.get(task_id)
        assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
    assert first.statistics() == counters(claimed=4, retried=1, released=3)

    # t=2: a new worker, running the three since t=1, claims the poison again; at t=3 it is dead, its attempts used.
    with pytest.raises(type(error)) as raised:
        async with DurableWorker(store, registry, concurrency=4, poll=POLL, worker_id="w2") as second:
            await trio.sleep_forever()
    assert raised.value is error
    assert trio.current_time() == 3.0
    dead = await store.get(poison_id)
    assert (dead.status, dead.attempts, dead.finished_at, dead.error_type) == (
        TaskStatus.DEAD,
        2,
        3.0,
        type(error).__qualname__,
    )
    assert second.statistics() == counters(claimed=4, failed=1, released=3)

    # A third worker runs the three to their end, each as its first attempt: no interruption cost them one.
    async with DurableWorker(store, registry, concurrency=4, poll=POLL, worker_id="w3") as third:
        records = [await store.wait(task_id) for task_id in innocent]
    assert [(record.status, record.attempts, record.finished_at) for record in records] == [
        (TaskStatus.SUCCEEDED, 1, 8.0)
    ] * 3
    assert runs == [(0.0, 1)] * 3 + [(1.0, 1)] * 3 + [(3.0, 1)] * 3
    assert third.statistics() == counters(claimed=3, succeeded=3)
    assert await store.get(poison_id) == dead


# -- a misbehaving store -----------------------------------------------------------------


@bounded
async def test_failed_claim_is_logged_and_retried_after_poll(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A claim that raises is logged; the worker claims again one poll later and runs the task."""
    registry = Registry()
    starts: list[float] = []

    @registry.register("job")
    async def job(options: Options) -> None:
        starts.append(trio.current_time())

    store = ScriptedStore(registry)
    store.hooks["claim"] = [raising(OSError("database is down"))]
    [task_id] = await store.enqueue([Job("job")])
    async with DurableWorker(store, registry, poll=0.5, worker_id="w1"):
        record = await store.wait(task_id)
    assert starts == [0.5]
    assert record.status is TaskStatus.SUCCEEDED
    [error] = logged(caplog, "could not claim tasks")
    assert error.levelno == logging.ERROR
    assert error.exc_info is not None
    assert isinstance(error.exc_info[1], OSError)


@bounded
async def test_failed_heartbeat_is_logged_and_the_next_one_keeps_the_lease(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A heartbeat that raises at t=1 is logged; the one at t=2 refreshes the lease, so no rival takes the task."""
    registry = Registry()

    @registry.register("job")
    async def job(options: Options) -> str:
        await trio.sleep(3)
        return "kept"

    store = ScriptedStore(registry)
    store.hooks["heartbeat"] = [raising(OSError("connection reset"))]
    [task_id] = await store.enqueue([Job("job")])
    async with DurableWorker(store, registry, lease=2.5, heartbeat=1) as worker:
        await trio.sleep(1.5)
        assert (await store.get(task_id)).heartbeat_at == 0.0
        await trio.sleep(1.25)
        assert await store.claim("rival", 1, lease=2.5) == []
        record = await store.wait(task_id)
    assert (record.status, record.result) == (TaskStatus.SUCCEEDED, "kept")
    assert worker.statistics() == counters(claimed=1, succeeded=1)
    [error] = logged(caplog, "could not send its heartbeat")
    assert error.levelno == logging.ERROR


@bounded
async def test_failed_final_write_is_logged_and_the_worker_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A final write that raises is logged, and the worker goes on to its next task."""
    registry = Registry()

    @registry.register("job")
    async def job(options: Options) -> int:
        await trio.sleep(1)
        return 1

    store = ScriptedStore(registry)
    store.hooks["complete"] = [raising(RuntimeError("disk full"))]
    first, second = await store.enqueue([Job("job"), Job("job")])
    async with DurableWorker(store, registry, concurrency=1) as worker:
        record = await store.wait(second)
    assert (record.status, record.started_at, record.finished_at) == (TaskStatus.SUCCEEDED, 1.0, 2.0)
    assert (await store.get(first)).status is TaskStatus.RUNNING  # nothing could record its end
    assert worker.statistics() == counters(claimed=2, succeeded=1)
    [error] = logged(caplog, "could not write a task's status")
    assert error.levelno == logging.ERROR


@pytest.mark.parametrize(
    ("method", "text"),
    [
        pytest.param("claim", "worker w1 could not claim tasks; trying again in 0.5s", id="claim"),
        pytest.param("heartbeat", "worker w1 could not send its heartbeat", id="heartbeat"),
        pytest.param("complete", "worker w1 could not write a task's status", id="final-write"),
    ],
)
@bounded
async def test_a_store_error_is_logged_on_one_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, method: str, text: str
) -> None:
    """A StoreError from a claim, a heartbeat or a final write is logged as one line with its message, no traceback."""
    registry = Registry()

    @registry.register("job")
    async def job(options: Options) -> int:
        await trio.sleep(1.5)
        return 1

    store = ScriptedStore(registry)
    store.hooks[method] = [raising(StoreError("SQLite store tasks.db", "disk I/O error"))]
    await store.enqueue([Job("job")])
    async with DurableWorker(store, registry, lease=2.5, heartbeat=1, poll=0.5, worker_id="w1"):
        await trio.sleep(3)
    [error] = logged(caplog, "could not")
    assert error.getMessage() == f"{text}: SQLite store tasks.db: disk I/O error"
    assert (error.levelno, error.exc_info) == (logging.ERROR, None)


BROKEN: Final = StoreError("SQLite store tasks.db", "database disk image is malformed")


@bounded
async def test_a_worker_whose_claims_only_fail_gives_up_after_its_bound(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Claims failing every poll from t=0: at t=5 (give_up_after) run() raises the last error, logged on one line."""
    store = ScriptedStore(some_registry())
    store.hooks["claim"] = [raising(BROKEN)] * 100
    worker = DurableWorker(store, some_registry(), poll=1, give_up_after=5, worker_id="w1")
    with pytest.raises(StoreError) as caught:
        await worker.run()
    assert caught.value is BROKEN
    assert trio.current_time() == 5.0
    assert len(store.claims) == 6
    assert len(logged(caplog, "could not claim tasks")) == 5
    [gave_up] = logged(caplog, "gives up")
    assert gave_up.getMessage() == f"worker w1 gives up: its claims failed for 5.0s: {BROKEN}"
    assert (gave_up.levelno, gave_up.exc_info) == (logging.ERROR, None)


@bounded
async def test_a_successful_claim_restarts_the_bound(autojump_clock: trio.testing.MockClock) -> None:
    """Claims fail at t=0..3, succeed at t=4 and fail from t=5: the worker gives up at t=10, not t=5."""
    store = ScriptedStore(some_registry())
    store.hooks["claim"] = [raising(BROKEN)] * 4 + [None] + [raising(BROKEN)] * 100
    worker = DurableWorker(store, some_registry(), poll=1, give_up_after=5)
    with pytest.raises(StoreError):
        await worker.run()
    assert trio.current_time() == 10.0


@bounded
async def test_a_worker_that_gives_up_releases_its_running_tasks(autojump_clock: trio.testing.MockClock) -> None:
    """Giving up cancels the running tasks and hands them back to the store, their attempt given back."""
    registry = Registry()

    @registry.register("slow")
    async def slow(options: Options) -> None:
        await trio.sleep(100)

    store = ScriptedStore(registry)
    [task_id] = await store.enqueue([Job("slow", retry=1)])
    store.hooks["claim"] = [None] + [raising(BROKEN)] * 100
    with pytest.raises(StoreError):
        async with DurableWorker(store, registry, concurrency=2, poll=1, give_up_after=5) as worker:
            await trio.sleep_forever()
    assert trio.current_time() == 5.0
    record = await store.get(task_id)
    assert (record.status, record.attempts, record.worker_id) == (TaskStatus.QUEUED, 0, worker.worker_id)
    assert worker.statistics() == counters(claimed=1, released=1)


@bounded
async def test_hung_final_write_is_given_up_after_its_bound(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A final write that hangs is abandoned after final_write_timeout (2 s), and the next task starts then."""
    registry = Registry()

    @registry.register("job")
    async def job(options: Options) -> int:
        await trio.sleep(1)
        return 1

    store = ScriptedStore(registry)
    store.hooks["complete"] = [trio.sleep_forever]
    first, second = await store.enqueue([Job("job"), Job("job")])
    async with DurableWorker(store, registry, concurrency=1, final_write_timeout=2):
        record = await store.wait(second)
    assert (record.status, record.started_at, record.finished_at) == (TaskStatus.SUCCEEDED, 3.0, 4.0)
    assert (await store.get(first)).status is TaskStatus.RUNNING
    [error] = logged(caplog, "gave up writing a task's status after 2s")
    assert error.levelno == logging.ERROR


# -- construction and lifecycle -----------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        pytest.param({"store": object()}, TypeError, ["`store`"], id="store"),
        pytest.param({"store": None}, TypeError, ["`store`"], id="store-none"),
        pytest.param({"registry": {"job": print}}, TypeError, ["`registry`"], id="registry"),
        pytest.param({"concurrency": 0}, ValueError, ["`concurrency`"], id="concurrency-zero"),
        pytest.param({"concurrency": 1.5}, TypeError, ["`concurrency`"], id="concurrency-float"),
        pytest.param({"lease": 0}, ValueError, ["`lease`"], id="lease-zero"),
        pytest.param({"heartbeat": "1"}, TypeError, ["`heartbeat`"], id="heartbeat-str"),
        pytest.param({"max_lost_leases": -1}, ValueError, ["`max_lost_leases`"], id="max-lost-leases-negative"),
        pytest.param({"max_lost_leases": True}, TypeError, ["`max_lost_leases`"], id="max-lost-leases-bool"),
        pytest.param({"lease": 5, "heartbeat": 5}, ValueError, ["`heartbeat`", "`lease`"], id="heartbeat-equal"),
        pytest.param({"lease": 2, "heartbeat": 3}, ValueError, ["`heartbeat`", "`lease`"], id="heartbeat-longer"),
        pytest.param({"poll": -1}, ValueError, ["`poll`"], id="poll-negative"),
        pytest.param({"order": "x"}, ValueError, ["`order`", "fifo"], id="order"),
        pytest.param({"worker_id": ""}, TypeError, ["`worker_id`"], id="worker-id-empty"),
        pytest.param({"worker_id": 7}, TypeError, ["`worker_id`"], id="worker-id-int"),
        pytest.param({"backoff": 1.0}, TypeError, ["`backoff`"], id="backoff"),
        pytest.param({"final_write_timeout": 0}, ValueError, ["`final_write_timeout`"], id="final-write-timeout"),
        pytest.param({"give_up_after": 0}, ValueError, ["`give_up_after`"], id="give-up-after-zero"),
        pytest.param({"give_up_after": None}, TypeError, ["`give_up_after`"], id="give-up-after-none"),
        pytest.param({"middleware": [print]}, TypeError, ["`middleware[0]`"], id="middleware-sync"),
        pytest.param({"options": ["x"]}, TypeError, ["`options`"], id="options"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, Any], error: type[Exception], words: list[str]) -> None:
    """An invalid argument is a TypeError or ValueError whose message names it."""
    call: dict[str, Any] = {"store": MemoryStore(), "registry": some_registry()} | arguments
    with pytest.raises(error) as caught:
        DurableWorker(**call)
    for word in words:
        assert word in str(caught.value)


def test_default_worker_id_names_host_and_process() -> None:
    """Without a worker_id, a worker names itself host:pid:random, different for each worker."""
    first = DurableWorker(MemoryStore(), some_registry())
    second = DurableWorker(MemoryStore(), some_registry())
    host, pid, suffix = first.worker_id.rsplit(":", 2)
    assert host
    assert pid == str(os.getpid())
    assert len(suffix) == 8
    assert first.worker_id != second.worker_id


@bounded
async def test_run_twice_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    """run() on a worker that runs, or ran, raises RuntimeError."""
    store = virtual_store()
    worker = DurableWorker(store, some_registry())
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        with pytest.raises(RuntimeError, match="runs only once"):
            await worker.run()
        worker.stop()
    with pytest.raises(RuntimeError, match="runs only once"):
        await worker.run()


# -- integration: real stores, real clock -------------------------------------------------


LEASE: Final = 1.0
HEARTBEAT: Final = 0.2
REAL_POLL: Final = 0.05
HANG: Final = 20.0
"""Real seconds after which an integration test counts as hung."""


@attrs.frozen
class RealStores:
    """Stores of one kind on one shared database, and a way to open more on it."""

    kind: str
    store: Store
    """Initialised; more may be opened with ``make()``."""
    make: Callable[[], Store]


# A mark, not pytest.skip() in the fixture: pytest-trio re-raises a skip from an
# async fixture without its reason. With the variable set, an unreachable server fails.
REAL_STORE_KINDS: Final = [
    pytest.param("sqlite"),
    pytest.param("postgres", marks=requires_postgres),
]


@pytest.fixture(params=REAL_STORE_KINDS)
async def real(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RealStores]:
    """A SQLite file or a PostgreSQL schema of the test's own, and stores on it, all closed (and dropped) after."""
    kind: str = request.param
    async with contextlib.AsyncExitStack() as cleanup, contextlib.AsyncExitStack() as stores:
        construct: Callable[[], Store]
        drop: Callable[[], Awaitable[None]] | None = None
        if kind == "postgres":
            from workerpoolxt.durable import PostgresStore

            dsn = POSTGRES_DSN
            schema = new_schema()
            drop = functools.partial(trio.to_thread.run_sync, drop_schema, schema)
            construct = functools.partial(PostgresStore, dsn, schema=schema)
        else:
            construct = functools.partial(SQLiteStore, tmp_path / "tasks.db")

        def make() -> Store:
            opened = construct()
            stores.push_async_callback(opened.aclose)
            return opened

        main = make()
        await main.init()
        if drop is not None:
            cleanup.push_async_callback(drop)
        yield RealStores(kind, main, make)


async def drained(store: Store, total: int) -> StoreStatistics:
    """Wait until the store holds ``total`` tasks, none queued or running, and return its statistics."""
    while True:
        statistics = await store.stats()
        if statistics.total == total and not statistics.queued and not statistics.running:
            return statistics
        await trio.sleep(REAL_POLL)


def real_worker(store: Store, registry: Registry, **options: Any) -> DurableWorker:
    return DurableWorker(store, registry, lease=LEASE, heartbeat=HEARTBEAT, poll=REAL_POLL, **options)


async def test_real_store_runs_each_task_to_one_success(real: RealStores) -> None:
    """50 tasks, every fifth failing once, and a CancelTask task: each succeeds exactly once, the other is cancelled."""
    registry = Registry()
    attempts: collections.Counter[int] = collections.Counter()
    successes: collections.Counter[int] = collections.Counter()

    @registry.register("flaky")
    async def flaky(options: Options) -> int:
        job = wpxt.current_job()
        task_id = job.task_id
        assert task_id is not None
        attempts[task_id] += 1
        await trio.sleep(0.001)
        if job.args["flaky"] and attempts[task_id] == 1:
            raise ConnectionError("try again")
        successes[task_id] += 1
        doubled: int = job.args["n"] * 2
        return doubled

    @registry.register("withdraw")
    async def withdraw(options: Options) -> None:
        raise CancelTask("not wanted")

    store = real.store
    with trio.fail_after(HANG):
        ids = await store.enqueue(
            [Job("flaky", args={"n": n, "flaky": n % 5 == 0}, retry=1, backoff=Backoff.none()) for n in range(50)]
        )
        [withdrawn] = await store.enqueue([Job("withdraw", retry=2)])
        async with real_worker(store, registry) as worker:
            statistics = await drained(store, 51)
    assert statistics == StoreStatistics(succeeded=50, cancelled=1)
    assert successes == dict.fromkeys(ids, 1)
    for n, task_id in enumerate(ids):
        record = await store.get(task_id)
        expected_attempts = 2 if n % 5 == 0 else 1
        assert (record.status, record.result, record.attempts) == (TaskStatus.SUCCEEDED, n * 2, expected_attempts)
        assert attempts[task_id] == expected_attempts
    cancelled = await store.get(withdrawn)
    assert (cancelled.status, cancelled.attempts) == (TaskStatus.CANCELLED, 1)
    assert worker.statistics() == counters(claimed=61, succeeded=50, retried=10, cancelled=1)


async def test_two_workers_complete_each_task_once(real: RealStores) -> None:
    """Two workers, each on its own store over one database, drain 200 tasks, each completed exactly once."""
    registry = Registry()
    completions: collections.Counter[int] = collections.Counter()
    by_worker: collections.Counter[str] = collections.Counter()

    @registry.register("work")
    async def work(options: Options) -> int:
        task_id = wpxt.current_job().task_id
        assert task_id is not None
        await trio.sleep(0.01)
        completions[task_id] += 1
        by_worker[options["worker"]] += 1
        return task_id

    other = real.make()
    with trio.fail_after(HANG):
        async with (
            real_worker(real.store, registry, concurrency=4, options={"worker": "a"}) as first,
            real_worker(other, registry, concurrency=4, options={"worker": "b"}) as second,
        ):
            ids = await real.store.enqueue([Job("work") for _ in range(200)])
            statistics = await drained(real.store, 200)
    assert statistics == StoreStatistics(succeeded=200)
    assert await other.stats() == statistics
    assert completions == dict.fromkeys(ids, 1)
    assert by_worker["a"] > 0
    assert by_worker["b"] > 0
    assert first.statistics().claimed + second.statistics().claimed == 200
    assert first.statistics().succeeded + second.statistics().succeeded == 200
    for task_id in ids[::20]:
        assert (await other.get(task_id)).result == task_id


async def test_real_store_reclaims_the_task_of_a_dead_worker(real: RealStores) -> None:
    """A task whose worker died mid-run reruns on a live worker once its 1 s lease expired, as the same attempt 1."""
    registry = Registry()
    runs: list[tuple[float, int]] = []

    @registry.register("resume")
    async def resume(options: Options) -> str:
        task_id = wpxt.current_job().task_id
        assert task_id is not None
        runs.append((time.time(), (await real.store.get(task_id)).attempts))
        return "resumed"

    with trio.fail_after(HANG):
        [task_id] = await real.store.enqueue([Job("resume")])
        [orphan] = await real.store.claim("dead", 1, lease=LEASE)
        async with real_worker(real.store, registry) as worker:
            record = await real.store.wait(task_id, poll=REAL_POLL)
    assert orphan.heartbeat_at is not None
    [(started, attempt)] = runs
    assert attempt == 1
    assert started >= orphan.heartbeat_at + LEASE
    assert (record.status, record.result, record.attempts, record.lost_leases) == (
        TaskStatus.SUCCEEDED,
        "resumed",
        1,
        1,
    )
    assert record.worker_id == worker.worker_id
    assert worker.statistics() == counters(claimed=1, succeeded=1)


async def test_real_store_stop_cancel_running_releases(real: RealStores) -> None:
    """stop(cancel_running=True) releases the running task to the store, its attempt not counted."""
    registry = Registry()
    started = trio.Event()

    @registry.register("long")
    async def long(options: Options) -> None:
        started.set()
        await trio.sleep(HANG)

    with trio.fail_after(HANG):
        [task_id] = await real.store.enqueue([Job("long", retry=2)])
        worker = real_worker(real.store, registry)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await started.wait()
            worker.stop(cancel_running=True)
        record = await real.store.get(task_id)
    assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
    # A claim in flight when the stop came may take the released task once more
    # and hand it straight back, counted both ways: on a real store that race is real.
    statistics = worker.statistics()
    assert statistics.claimed == statistics.released >= 1
    assert statistics == counters(claimed=statistics.claimed, released=statistics.released)
    assert await real.store.stats() == StoreStatistics(queued=1)


async def test_real_store_cancelling_a_running_task_stops_its_handler(
    real: RealStores, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelling a running task elsewhere stops its handler: at once on PostgreSQL, at a heartbeat on SQLite."""
    registry = Registry()
    started, stopped = trio.Event(), trio.Event()

    @registry.register("long")
    async def long(options: Options) -> None:
        started.set()
        try:
            await trio.sleep(HANG)
        finally:
            stopped.set()

    # PostgreSQL's heartbeat comes far too late to explain a prompt stop: only its notification can.
    heartbeat, bound = (HEARTBEAT, HEARTBEAT + 0.5) if real.kind == "sqlite" else (10.0, 1.0)
    operator = real.make()
    with trio.fail_after(HANG):
        [task_id] = await real.store.enqueue([Job("long", retry=2)])
        async with DurableWorker(
            real.store, registry, lease=3 * heartbeat, heartbeat=heartbeat, poll=REAL_POLL
        ) as worker:
            await started.wait()
            if isinstance(real.store, wpxt.durable.PostgresStore):
                await listening(real.store)
            cancelled_at = time.monotonic()
            await operator.cancel(task_id)
            await stopped.wait()
            elapsed = time.monotonic() - cancelled_at
    assert elapsed < bound
    record = await real.store.get(task_id)
    assert (record.status, record.attempts, record.worker_id) == (TaskStatus.CANCELLED, 1, worker.worker_id)
    assert worker.statistics() == counters(claimed=1, cancelled=1)
    assert [entry.getMessage() for entry in caplog.records if entry.levelno >= logging.WARNING] == []


async def listening(store: wpxt.durable.PostgresStore) -> None:
    """Wait until the store's listener runs: a notification sent before then would go unheard."""
    while store._listener is None or not store._listener.running:  # noqa: ASYNC110 - a thread's state to poll
        await trio.sleep(REAL_POLL)


@bounded
async def test_a_retry_wakes_an_idle_worker_before_its_poll(autojump_clock: trio.testing.MockClock) -> None:
    """With poll=10 and a 1 s backoff, the retry runs at its time, not at the next poll."""
    registry = Registry()
    starts: list[float] = []

    @registry.register("flaky")
    async def flaky(options: Options) -> str:
        starts.append(trio.current_time())
        if len(starts) == 1:
            raise ConnectionError("down")
        return "ok"

    store = virtual_store(registry)
    [task_id] = await store.enqueue([Job("flaky", retry=1, backoff=Backoff(initial=1, multiplier=1, jitter=0))])
    async with DurableWorker(store, registry, poll=10):
        record = await store.wait(task_id)
    assert record.status is TaskStatus.SUCCEEDED
    assert starts == [0.0, 1.0]


@bounded
async def test_a_retry_wakes_the_worker_though_another_end_cut_its_wait_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A retry due at t=1.5 still starts then when another task's end, at t=1.25, wakes the idle worker first."""
    registry = Registry()
    starts: list[float] = []

    @registry.register("flaky")
    async def flaky(options: Options) -> None:
        starts.append(trio.current_time())
        await trio.sleep(1)
        if len(starts) == 1:
            raise ConnectionError("down")

    @registry.register("other")
    async def other(options: Options) -> None:
        await trio.sleep(1.25)

    store = virtual_store(registry)
    backoff = Backoff(initial=0.5, multiplier=1, jitter=0)
    [task_id, _] = await store.enqueue([Job("flaky", retry=1, backoff=backoff), Job("other")])
    async with DurableWorker(store, registry, poll=10):
        record = await store.wait(task_id)
    assert record.status is TaskStatus.SUCCEEDED
    assert starts == [0.0, 1.5]


class FailingWaitStore(MemoryStore):
    """A virtual-time MemoryStore whose first wait_for_work() raises, as a lost LISTEN connection would."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry=registry, clock=trio.current_time)
        self.failures = 1

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - the store's interface
        if self.failures:
            self.failures -= 1
            raise ConnectionError("listener lost")
        await super().wait_for_work(timeout)


@bounded
async def test_a_failing_wait_for_work_is_logged_and_the_worker_polls_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """wait_for_work() raising is logged; the worker sleeps one poll and then runs work enqueued meanwhile."""
    registry = Registry()

    @registry.register("ok")
    async def ok(options: Options) -> str:
        return "ok"

    store = FailingWaitStore(registry)
    async with DurableWorker(store, registry, poll=2):
        await trio.sleep(0.5)
        [task_id] = await store.enqueue([Job("ok")])
        record = await store.wait(task_id)
        assert trio.current_time() == 2.0
    assert record.status is TaskStatus.SUCCEEDED
    assert logged(caplog, "could not wait for work")


class UnreachableStore(MemoryStore):
    """A store whose init() fails, as a database that is down would."""

    async def init(self) -> None:
        raise ConnectionError("database is down")


async def test_a_worker_that_cannot_start_raises_its_error_and_closes_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A store failing at init() makes `async with DurableWorker` raise that error; the run goes on cleanly."""
    registry = some_registry()
    with pytest.raises(ConnectionError, match="database is down"):
        async with DurableWorker(UnreachableStore(registry=registry, clock=trio.current_time), registry):
            pytest.fail("the block must not run")  # pragma: no cover
    await trio.sleep(1)  # the trio run is intact: no nursery was left open
    assert trio.current_time() == 1.0
