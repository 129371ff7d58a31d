"""Tests for ``Context``: deadlines, cancellation, and how a pool honours them."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
import trio
import trio.testing

import workerpoolxt as wpxt
from workerpoolxt import Status

# -- the Context object ------------------------------------------------------


def test_deadline_is_inf_without_bounds() -> None:
    """A context with no timeout, deadline or parent has deadline math.inf."""
    assert wpxt.Context().deadline == math.inf
    assert wpxt.Context().child().deadline == math.inf


async def test_timeout_counts_from_creation(autojump_clock: trio.testing.MockClock) -> None:
    """Context(timeout=2) has the absolute deadline now + 2 on the trio clock."""
    await trio.sleep(1.5)
    context = wpxt.Context(timeout=2)
    assert context.deadline == 3.5
    assert context.deadline == trio.current_time() + 2


async def test_timeout_accepts_timedelta(autojump_clock: trio.testing.MockClock) -> None:
    """A timedelta timeout counts from creation like a number of seconds."""
    await trio.sleep(1)
    assert wpxt.Context(timeout=datetime.timedelta(milliseconds=500)).deadline == 1.5


def test_timeout_outside_trio_is_a_clear_runtime_error() -> None:
    """Context(timeout=...) outside trio.run raises RuntimeError saying there is no trio run."""
    with pytest.raises(RuntimeError, match=r"inside trio\.run") as excinfo:
        wpxt.Context(timeout=2)
    assert "deadline" in str(excinfo.value)


def test_deadline_outside_trio_is_fine() -> None:
    """An absolute deadline needs no running trio clock."""
    context = wpxt.Context(deadline=12.5)
    assert context.deadline == 12.5
    assert not context.cancelled


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1, ValueError), ("1", TypeError), (10**400, ValueError)]
)
def test_bad_timeout(value: object, error: type[Exception]) -> None:
    """A non-positive or non-number timeout is rejected, naming `timeout`."""
    with pytest.raises(error, match="`timeout`"):
        wpxt.Context(timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "error"), [(math.nan, ValueError), ("1", TypeError), (True, TypeError), (10**400, ValueError)]
)
def test_bad_deadline(value: object, error: type[Exception]) -> None:
    """A NaN or non-number deadline is rejected, naming `deadline`."""
    with pytest.raises(error, match="`deadline`"):
        wpxt.Context(deadline=value)  # type: ignore[arg-type]


def test_bad_parent() -> None:
    """A parent that is not a Context is a TypeError naming `parent`."""
    with pytest.raises(TypeError, match="`parent`"):
        wpxt.Context(parent=object())  # type: ignore[arg-type]


def test_earliest_bound_wins() -> None:
    """With both a deadline and a parent, the earlier deadline is used."""
    parent = wpxt.Context(deadline=5.0)
    assert wpxt.Context(deadline=3.0, parent=parent).deadline == 3.0
    assert wpxt.Context(deadline=8.0, parent=parent).deadline == 5.0


async def test_child_deadline_never_later_than_parent(autojump_clock: trio.testing.MockClock) -> None:
    """A child asking for a longer timeout gets its parent's deadline; a shorter one keeps its own."""
    parent = wpxt.Context(timeout=2)
    assert parent.child(timeout=10).deadline == 2.0
    assert parent.child(timeout=1).deadline == 1.0
    assert parent.child(deadline=100.0).deadline == 2.0
    assert parent.child().deadline == 2.0
    assert parent.child(timeout=10).child(timeout=5).deadline == 2.0


async def test_child_is_context_with_parent(autojump_clock: trio.testing.MockClock) -> None:
    """ctx.child(...) behaves like Context(..., parent=ctx)."""
    parent = wpxt.Context(timeout=4)
    child = parent.child(timeout=1)
    same = wpxt.Context(timeout=1, parent=parent)
    assert isinstance(child, wpxt.Context)
    assert child.parent is parent
    assert same.parent is parent
    assert child.deadline == same.deadline == 1.0
    parent.cancel()
    assert child.cancelled
    assert same.cancelled


def test_cancelled_only_after_cancel() -> None:
    """`cancelled` is False until cancel() is called, then True."""
    context = wpxt.Context()
    assert context.cancelled is False
    context.cancel()
    assert context.cancelled is True


def test_passed_deadline_is_not_cancelled() -> None:
    """A deadline in the past does not make the context cancelled."""
    assert wpxt.Context(deadline=-1.0).cancelled is False


def test_cancel_reaches_children_not_parents() -> None:
    """Cancelling a parent cancels its descendants; cancelling a child leaves the parent alone."""
    parent = wpxt.Context()
    child = parent.child()
    grandchild = child.child()
    sibling = parent.child()

    child.cancel()
    assert child.cancelled
    assert grandchild.cancelled
    assert not parent.cancelled
    assert not sibling.cancelled

    parent.cancel()
    assert parent.cancelled
    assert sibling.cancelled


def test_cancel_is_idempotent() -> None:
    """Calling cancel() again changes nothing and does not raise."""
    context = wpxt.Context()
    context.cancel()
    context.cancel()
    assert context.cancelled


# -- contexts in a pool -------------------------------------------------------


async def sleeper(options: Any) -> str:
    await trio.sleep(options["seconds"])
    return "slept"


def sleep_job(seconds: float, **kwargs: Any) -> wpxt.Job[str]:
    return wpxt.Job(sleeper, options={"seconds": seconds}, **kwargs)


async def test_context_cancelled_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs under an already-cancelled context end CANCELLED with no attempt made."""
    context = wpxt.Context()
    context.cancel()
    async with wpxt.WorkerPool(2) as pool:
        handles = [pool.submit(sleep_job(1, name=f"job {i}", context=context)) for i in range(3)]
    for i, handle in enumerate(handles):
        result = handle.result
        assert result is not None
        assert result.status is Status.CANCELLED
        assert result.attempts == 0
        assert result.started_at is None
        assert result.duration == 0.0
        assert isinstance(result.error, wpxt.JobCancelledError)
        assert result.error.name == f"job {i}"
    assert trio.current_time() == 0.0


async def test_context_cancelled_while_queued(autojump_clock: trio.testing.MockClock) -> None:
    """Queued jobs whose context is cancelled end CANCELLED when a worker picks them up, unrun."""
    context = wpxt.Context()
    ran: list[str] = []

    async def record(options: Any) -> None:
        ran.append("ran")

    async with wpxt.WorkerPool(1) as pool:
        pool.submit(sleep_job(1))
        queued = [pool.submit(wpxt.Job(record, context=context)) for _ in range(2)]
        await trio.sleep(0.5)
        context.cancel()
    assert ran == []
    for handle in queued:
        assert handle.result is not None
        assert handle.result.status is Status.CANCELLED
        assert handle.result.attempts == 0
        assert handle.result.finished_at == 1.0


async def test_job_context_overrides_pool_context(autojump_clock: trio.testing.MockClock) -> None:
    """A job's own live context replaces a cancelled pool context."""
    pool_context = wpxt.Context()
    pool_context.cancel()
    async with wpxt.WorkerPool(2, context=pool_context) as pool:
        own = pool.submit(sleep_job(1, context=wpxt.Context()))
        default = pool.submit(sleep_job(1))
    assert own.result is not None
    assert own.result.status is Status.SUCCEEDED
    assert own.result.data == "slept"
    assert own.result.finished_at == 1.0
    assert default.result is not None
    assert default.result.status is Status.CANCELLED


async def test_job_context_timeout_overrides_pool_context(autojump_clock: trio.testing.MockClock) -> None:
    """A pool context with a short deadline does not apply to a job with its own context."""
    async with wpxt.WorkerPool(2, context=wpxt.Context(timeout=1)) as pool:
        own = pool.submit(sleep_job(3, context=wpxt.Context(timeout=5)))
        default = pool.submit(sleep_job(3))
    assert own.result is not None
    assert own.result.status is Status.SUCCEEDED
    assert own.result.finished_at == 3.0
    assert default.result is not None
    assert default.result.status is Status.TIMED_OUT
    assert default.result.finished_at == 1.0


async def test_context_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """A job outliving its context's timeout ends TIMED_OUT exactly at the deadline."""
    context = wpxt.Context(timeout=1)
    async with wpxt.WorkerPool(1) as pool:
        handle = pool.submit(sleep_job(10, name="too slow", context=context))
        result = await handle.wait()
        assert trio.current_time() == 1.0
    assert result.status is Status.TIMED_OUT
    assert result.name == "too slow"
    assert result.attempts == 1
    assert result.started_at == 0.0
    assert result.finished_at == 1.0
    assert result.duration == 1.0
    assert result.data is None
    assert isinstance(result.error, wpxt.JobTimeoutError)
    assert result.error.name == "too slow"
    assert result.error.deadline == 1.0


async def test_cancel_mid_run(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling a context cancels running jobs under it or a descendant at once, and no others."""
    context = wpxt.Context()
    child = context.child()
    other = wpxt.Context()
    async with wpxt.WorkerPool(4) as pool:
        direct = pool.submit(sleep_job(10, name="direct", context=context))
        descendant = pool.submit(sleep_job(10, name="descendant", context=child))
        unrelated = pool.submit(sleep_job(3, name="unrelated", context=other))
        plain = pool.submit(sleep_job(3, name="plain"))
        await trio.sleep(1)
        context.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert direct.done
        assert descendant.done
        assert not unrelated.done
        assert not plain.done
    for handle in (direct, descendant):
        result = handle.result
        assert result is not None
        assert result.status is Status.CANCELLED
        assert result.finished_at == 1.0
        assert result.duration == 1.0
        assert result.attempts == 1
        assert isinstance(result.error, wpxt.JobCancelledError)
        assert result.error.name == handle.name
    for handle in (unrelated, plain):
        assert handle.result is not None
        assert handle.result.status is Status.SUCCEEDED
        assert handle.result.finished_at == 3.0


async def test_cancel_child_leaves_parent_jobs(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling a child context cancels its jobs but not those of its parent."""
    parent = wpxt.Context()
    child = parent.child()
    async with wpxt.WorkerPool(2) as pool:
        on_parent = pool.submit(sleep_job(2, context=parent))
        on_child = pool.submit(sleep_job(2, context=child))
        await trio.sleep(0.5)
        child.cancel()
    assert on_child.result is not None
    assert on_child.result.status is Status.CANCELLED
    assert on_child.result.finished_at == 0.5
    assert on_parent.result is not None
    assert on_parent.result.status is Status.SUCCEEDED
    assert on_parent.result.finished_at == 2.0


async def test_cancelled_default_context_fails_every_job(autojump_clock: trio.testing.MockClock) -> None:
    """With a cancelled pool context, every job that sets no context ends CANCELLED."""
    context = wpxt.Context()
    context.cancel()
    async with wpxt.WorkerPool(3, context=context) as pool:
        for i in range(10):
            pool.submit(sleep_job(1, name=f"job {i}"))
        results = await pool.stop_wait()
    assert len(results) == 10
    assert {result.status for result in results} == {Status.CANCELLED}
    assert all(isinstance(result.error, wpxt.JobCancelledError) for result in results)
    assert trio.current_time() == 0.0


async def test_default_context_cancelled_mid_run(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the pool's context mid-run cancels its running jobs and fails its queued ones."""
    context = wpxt.Context()
    async with wpxt.WorkerPool(2, context=context) as pool:
        handles = [pool.submit(sleep_job(5)) for _ in range(4)]
        await trio.sleep(1)
        context.cancel()
    results = [handle.result for handle in handles]
    assert [r.status for r in results if r is not None] == [Status.CANCELLED] * 4
    assert [r.attempts for r in results if r is not None] == [1, 1, 0, 0]
    assert [r.finished_at for r in results if r is not None] == [1.0] * 4


async def test_context_outliving_job_succeeds(autojump_clock: trio.testing.MockClock) -> None:
    """A job shorter than its context's timeout succeeds."""
    context = wpxt.Context(timeout=5)
    async with wpxt.WorkerPool(1) as pool:
        handle = pool.submit(sleep_job(1, context=context))
    assert handle.result is not None
    assert handle.result.status is Status.SUCCEEDED
    assert handle.result.data == "slept"
    assert handle.result.error is None
    assert handle.result.duration == 1.0


async def test_queued_time_counts_against_context_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """A job whose context expires while it is queued is not run: TIMED_OUT with no attempt."""
    ran: list[float] = []

    async def record(options: Any) -> None:
        ran.append(trio.current_time())

    async with wpxt.WorkerPool(1) as pool:
        first = pool.submit(sleep_job(3))
        second = pool.submit(wpxt.Job(record, name="expired", context=wpxt.Context(timeout=2)))
    assert first.result is not None
    assert first.result.status is Status.SUCCEEDED
    result = second.result
    assert result is not None
    assert ran == []
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 0
    assert result.started_at is None
    assert result.duration == 0.0
    assert result.finished_at >= 2.0
    assert isinstance(result.error, wpxt.JobTimeoutError)
    assert result.error.name == "expired"
    assert result.error.deadline == 2.0


async def test_queued_time_leaves_rest_of_context_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """A job picked up after queueing only gets what is left of its context's timeout."""
    async with wpxt.WorkerPool(1) as pool:
        pool.submit(sleep_job(1))
        second = pool.submit(sleep_job(5, context=wpxt.Context(timeout=3)))
    result = second.result
    assert result is not None
    assert result.status is Status.TIMED_OUT
    assert result.started_at == 1.0
    assert result.finished_at == 3.0
    assert result.duration == 2.0


async def test_timed_out_task_is_really_stopped(autojump_clock: trio.testing.MockClock) -> None:
    """A timed-out task is cancelled at its deadline: its finally runs then, and code after its sleep never."""
    events: list[tuple[str, float]] = []

    async def slow(options: Any) -> None:
        try:
            await trio.sleep(10)
            events.append(("after sleep", trio.current_time()))
        finally:
            events.append(("finally", trio.current_time()))

    async with wpxt.WorkerPool(1) as pool:
        pool.submit(wpxt.Job(slow, context=wpxt.Context(timeout=1.5)))
    await trio.sleep(20)
    assert events == [("finally", 1.5)]


async def test_cancelled_task_is_really_stopped(autojump_clock: trio.testing.MockClock) -> None:
    """A task whose context is cancelled is stopped then: its finally runs, code after its sleep never."""
    events: list[tuple[str, float]] = []
    context = wpxt.Context()

    async def slow(options: Any) -> None:
        try:
            await trio.sleep(10)
            events.append(("after sleep", trio.current_time()))
        finally:
            events.append(("finally", trio.current_time()))

    async with wpxt.WorkerPool(1) as pool:
        handle = pool.submit(wpxt.Job(slow, context=context))
        await trio.sleep(0.25)
        context.cancel()
    await trio.sleep(20)
    assert events == [("finally", 0.25)]
    assert handle.result is not None
    assert handle.result.status is Status.CANCELLED


async def test_worker_reused_after_context_cancel(autojump_clock: trio.testing.MockClock) -> None:
    """After a context cancellation, the same worker runs the next job to completion."""
    context = wpxt.Context()
    async with wpxt.WorkerPool(1) as pool:
        cancelled = pool.submit(sleep_job(10, context=context))
        after = pool.submit(sleep_job(2))
        await trio.sleep(1)
        context.cancel()
    assert cancelled.result is not None
    assert cancelled.result.status is Status.CANCELLED
    assert after.result is not None
    assert after.result.status is Status.SUCCEEDED
    assert after.result.started_at == 1.0
    assert after.result.finished_at == 3.0


async def test_cancel_after_job_finished_does_not_leak(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling a context whose job already finished does not touch the worker's next job."""
    context = wpxt.Context()
    async with wpxt.WorkerPool(1) as pool:
        first = pool.submit(sleep_job(1, context=context))
        second = pool.submit(sleep_job(2))
        await trio.sleep(1.5)
        context.cancel()
    assert first.result is not None
    assert first.result.status is Status.SUCCEEDED
    assert second.result is not None
    assert second.result.status is Status.SUCCEEDED
    assert second.result.finished_at == 3.0
