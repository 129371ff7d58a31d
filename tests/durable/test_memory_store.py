"""Tests for ``MemoryStore`` alone: exact virtual times under the autojump clock, and argument checks.

``tests/test_store_contract.py`` runs the behaviour every store shares; here the
store reads ``trio.current_time``, so leases and wake-ups land at exact times.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

from workerpoolxt import Backoff, Job, Options, Registry, current_job
from workerpoolxt.durable import DurableWorker
from workerpoolxt.durable._store import StoreStatistics, TaskStatus
from workerpoolxt.durable.testing import MemoryStore


def virtual_store() -> MemoryStore:
    return MemoryStore(clock=trio.current_time)


async def test_lease_expires_at_exact_virtual_times(autojump_clock: trio.testing.MockClock) -> None:
    """A heartbeat exactly ``lease`` old still holds; a moment later another worker reclaims, then it is dead."""
    store = virtual_store()
    [task_id] = await store.enqueue([Job("handler", retry=1)])
    [first] = await store.claim("w1", 1, lease=2.0, max_lost_leases=1)
    assert (first.started_at, first.heartbeat_at) == (0.0, 0.0)
    await trio.sleep(2.0)
    assert await store.claim("w2", 1, lease=2.0, max_lost_leases=1) == []
    await trio.sleep(0.5)
    [second] = await store.claim("w2", 1, lease=2.0, max_lost_leases=1)
    assert (second.id, second.attempts, second.lost_leases, second.worker_id) == (task_id, 1, 1, "w2")
    assert (second.started_at, second.heartbeat_at) == (2.5, 2.5)
    await trio.sleep(1.5)
    assert await store.heartbeat([task_id], worker_id="w2") == [task_id]
    assert (await store.get(task_id)).heartbeat_at == 4.0
    await trio.sleep(2.0)
    assert await store.claim("w3", 1, lease=2.0, max_lost_leases=1) == []
    assert (await store.get(task_id)).status is TaskStatus.RUNNING
    await trio.sleep(0.25)
    assert await store.claim("w3", 1, lease=2.0, max_lost_leases=1) == []
    dead = await store.get(task_id)
    assert (dead.status, dead.error_type, dead.lost_leases, dead.finished_at) == (
        TaskStatus.DEAD,
        "LeaseExpired",
        2,
        6.25,
    )
    assert trio.current_time() == 6.25


async def test_wait_wakes_when_another_task_completes(autojump_clock: trio.testing.MockClock) -> None:
    """wait() returns exactly when another task completes the task, at t=3.0."""
    store = virtual_store()
    [task_id] = await store.enqueue([Job("handler")])
    await store.claim("w1", 1)

    async def complete_at_three() -> None:
        await trio.sleep(3.0)
        await store.complete(task_id, "done", worker_id="w1")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(complete_at_three)
        record = await store.wait(task_id)
        assert trio.current_time() == 3.0
    assert (record.status, record.result, record.finished_at) == (TaskStatus.SUCCEEDED, "done", 3.0)


async def test_wait_for_work_wakes_at_enqueue(autojump_clock: trio.testing.MockClock) -> None:
    """wait_for_work() returns exactly when a task is enqueued, long before its timeout."""
    store = virtual_store()

    async def enqueue_at(when: float) -> None:
        await trio.sleep_until(when)
        await store.enqueue([Job("handler")])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(enqueue_at, 1.25)
        await store.wait_for_work(10.0)
        assert trio.current_time() == 1.25
    assert await store.stats() == StoreStatistics(queued=1)


async def test_wait_for_work_times_out_exactly(autojump_clock: trio.testing.MockClock) -> None:
    """With nothing happening, wait_for_work() returns at its timeout exactly."""
    store = virtual_store()
    await store.wait_for_work(2.0)
    assert trio.current_time() == 2.0


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        pytest.param({"limit": 0}, ValueError, "`limit`", id="limit-zero"),
        pytest.param({"limit": True}, ValueError, "`limit`", id="limit-bool"),
        pytest.param({"lease": 0}, ValueError, "`lease`", id="lease-zero"),
        pytest.param({"lease": math.inf}, ValueError, "`lease`", id="lease-inf"),
        pytest.param({"order": "random"}, ValueError, "`order`", id="order-unknown"),
        pytest.param({"order": 1}, TypeError, "`order`", id="order-int"),
        pytest.param({"worker_id": ""}, TypeError, "`worker_id`", id="worker-id-empty"),
        pytest.param({"worker_id": None}, TypeError, "`worker_id`", id="worker-id-none"),
        pytest.param({"max_lost_leases": -1}, ValueError, "`max_lost_leases`", id="max-lost-leases-negative"),
        pytest.param({"max_lost_leases": 2**31}, ValueError, "`max_lost_leases`", id="max-lost-leases-huge"),
        pytest.param({"max_lost_leases": 1.0}, TypeError, "`max_lost_leases`", id="max-lost-leases-float"),
    ],
)
async def test_claim_checks_arguments(arguments: dict[str, Any], error: type[Exception], message: str) -> None:
    """A bad claim() argument is a TypeError or ValueError naming it, and claims nothing."""
    store = virtual_store()
    await store.enqueue([Job("handler")])
    call: dict[str, Any] = {"worker_id": "w1", "limit": 1} | arguments
    with pytest.raises(error, match=message):
        await store.claim(**call)
    assert await store.stats() == StoreStatistics(queued=1)


@pytest.mark.parametrize("priority", ["x", 1.5, True])
async def test_enqueue_checks_priority(priority: Any) -> None:
    """A priority that is not an int is a TypeError naming `priority`, and stores nothing."""
    store = virtual_store()
    with pytest.raises(TypeError, match="`priority`"):
        await store.enqueue([Job("handler")], priority=priority)
    assert await store.stats() == StoreStatistics()


async def test_wait_for_cancellations_returns_at_the_cancel(autojump_clock: trio.testing.MockClock) -> None:
    """wait_for_cancellations() returns exactly when a running task is cancelled by another than its worker."""
    store = virtual_store()
    running, own, queued = await store.enqueue([Job("handler"), Job("handler"), Job("handler")])
    await store.claim("w1", 2)

    async def cancel_at(when: float, task_id: int, worker_id: str | None = None) -> None:
        await trio.sleep_until(when)
        await store.cancel(task_id, worker_id=worker_id)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_at, 0.5, own, "w1")  # by its own worker: nothing to tell
        nursery.start_soon(cancel_at, 0.75, queued)  # not running: no worker to tell
        nursery.start_soon(cancel_at, 1.25, running)
        assert await store.wait_for_cancellations() == [running]
        assert trio.current_time() == 1.25


async def test_a_task_retried_runs_at_once_on_an_idle_worker(autojump_clock: trio.testing.MockClock) -> None:
    """A dead task retried at t=5 starts at t=5 on a worker polling every 60 s, as the first attempt of a new budget."""
    registry = Registry()
    attempts: list[tuple[float, int]] = []

    @registry.register("flaky")
    async def flaky(options: Options) -> str:
        attempt = current_job().attempt
        attempts.append((trio.current_time(), attempt))
        if trio.current_time() < 5:
            raise ValueError(f"attempt {attempt}")
        return "done"

    store = MemoryStore(registry=registry, clock=trio.current_time)
    [task_id] = await store.enqueue([Job("flaky", retry=1)])
    async with DurableWorker(store, registry, poll=60, backoff=Backoff(initial=1.0, multiplier=1.0, jitter=0.0)):
        dead = await store.wait(task_id)
        assert (dead.status, dead.attempts, dead.finished_at) == (TaskStatus.DEAD, 2, 1.0)
        await trio.sleep_until(5.0)
        assert await store.retry([task_id]) == [task_id]
        record = await store.wait(task_id)
    assert attempts == [(0.0, 1), (1.0, 2), (5.0, 1)]
    assert (record.status, record.result, record.attempts, record.started_at, record.run_at) == (
        TaskStatus.SUCCEEDED,
        "done",
        1,
        5.0,
        5.0,
    )
    assert record.created_at == 0.0


async def test_oldest_queued_counts_a_task_from_its_run_at(autojump_clock: trio.testing.MockClock) -> None:
    """A task created at t=1 to run at t=3 is not the oldest queued at t=2.5; from t=3 on, its creation, 1.0, is."""
    store = virtual_store()
    await trio.sleep(1.0)
    await store.enqueue([Job("handler")], run_at=3.0)
    await trio.sleep(1.5)
    assert await store.oldest_queued() is None
    await trio.sleep_until(3.0)
    assert await store.oldest_queued() == 1.0
