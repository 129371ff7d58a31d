"""Tests for ``Result`` and ``Status``."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

import workerpoolxt as wpxt
from workerpoolxt import Result, Status


def make_result(status: Status = Status.SUCCEEDED, data: Any = None, error: BaseException | None = None) -> Result[Any]:
    return Result(
        job_id=0,
        name="job",
        data=data,
        error=error,
        status=status,
        code=200,
        attempts=1,
        queued_at=0.0,
        started_at=0.0,
        finished_at=1.0,
    )


def test_status_members() -> None:
    """Status has exactly SUCCEEDED, FAILED, TIMED_OUT, CANCELLED and ABANDONED."""
    assert {member.name for member in Status} == {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "ABANDONED"}


def test_status_members_are_distinct() -> None:
    """Every Status member has its own value."""
    assert len({member.value for member in Status}) == len(Status) == 5


def test_result_is_frozen() -> None:
    """Assigning to a Result's field raises FrozenInstanceError."""
    result = make_result(data=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.data = 2  # type: ignore[misc]
    assert result.data == 1


def test_duration_is_derived_from_start_and_finish() -> None:
    """duration is finished_at - started_at, 0.0 for a job that never started, and not a field of its own."""
    assert make_result().duration == 1.0
    never_started = attrs.evolve(make_result(), started_at=None, finished_at=4.0)
    assert never_started.duration == 0.0
    assert "duration" not in {field.name for field in attrs.fields(Result)}


def test_result_fields() -> None:
    """A Result has the fields the spec names, in that order."""
    assert [field.name for field in attrs.fields(Result)] == [
        "job_id",
        "name",
        "data",
        "error",
        "status",
        "code",
        "attempts",
        "queued_at",
        "started_at",
        "finished_at",
    ]


@pytest.mark.parametrize("status", list(Status))
def test_ok_only_for_succeeded(status: Status) -> None:
    """`ok` is True for SUCCEEDED and False for every other status."""
    error = None if status is Status.SUCCEEDED else RuntimeError("failed")
    assert make_result(status, error=error).ok is (status is Status.SUCCEEDED)


def test_unwrap_returns_data() -> None:
    """unwrap() of a successful Result returns its data object."""
    data = {"answer": 42}
    assert make_result(data=data).unwrap() is data


def test_unwrap_returns_none_data() -> None:
    """unwrap() of a successful Result whose task returned None returns None."""
    assert make_result(data=None).unwrap() is None


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (Status.FAILED, KeyError("missing")),
        (Status.TIMED_OUT, wpxt.JobTimeoutError(name="job", deadline=1.0)),
        (Status.CANCELLED, wpxt.JobCancelledError(name="job", reason="asked to")),
        (Status.ABANDONED, wpxt.JobAbandonedError(name="job")),
    ],
)
def test_unwrap_raises_the_exact_error(status: Status, error: Exception) -> None:
    """unwrap() of an unsuccessful Result raises its error object itself."""
    with pytest.raises(type(error)) as excinfo:
        make_result(status, error=error).unwrap()
    assert excinfo.value is error


async def test_pool_results_unwrap(autojump_clock: trio.testing.MockClock) -> None:
    """Results from a pool unwrap to the task's return value or raise the task's exception."""
    error = ValueError("boom")

    async def succeed(options: Any) -> str:
        return "value"

    async def fail(options: Any) -> None:
        raise error

    async with wpxt.WorkerPool(2) as pool:
        good = await pool.submit_wait(wpxt.Job(succeed))
        bad = await pool.submit_wait(wpxt.Job(fail))
    assert good.ok
    assert good.unwrap() == "value"
    assert not bad.ok
    assert bad.status is Status.FAILED
    with pytest.raises(ValueError, match="boom") as excinfo:
        bad.unwrap()
    assert excinfo.value is error


async def test_duration_excludes_queue_time(autojump_clock: trio.testing.MockClock) -> None:
    """duration runs from the first attempt's start to the end, not from queueing."""

    async def sleeper(options: Any) -> None:
        await trio.sleep(options["seconds"])

    async with wpxt.WorkerPool(1) as pool:
        await trio.sleep(0.5)
        pool.submit(wpxt.Job(sleeper, options={"seconds": 2}))
        second = pool.submit(wpxt.Job(sleeper, name="second", options={"seconds": 1.5}))
    result = second.result
    assert result is not None
    assert result.name == "second"
    assert result.job_id == 1
    assert result.queued_at == 0.5
    assert result.started_at == 2.5
    assert result.finished_at == 4.0
    assert result.duration == 1.5


async def test_duration_includes_retries_and_backoff(autojump_clock: trio.testing.MockClock) -> None:
    """duration covers every attempt and backoff wait from the first start."""
    attempts: list[float] = []

    async def flaky(options: Any) -> str:
        attempts.append(trio.current_time())
        await trio.sleep(0.25)
        if len(attempts) < 3:
            raise ValueError
        return "done"

    async with wpxt.WorkerPool(1) as pool:
        await trio.sleep(1)
        handle = pool.submit(wpxt.Job(flaky, retry=2, backoff=wpxt.Backoff(initial=0.5, multiplier=1, jitter=0)))
    result = handle.result
    assert result is not None
    assert attempts == [1.0, 1.75, 2.5]
    assert result.started_at == 1.0
    assert result.finished_at == 2.75
    assert result.duration == 1.75
    assert result.attempts == 3


async def test_job_ids_follow_submission_order(autojump_clock: trio.testing.MockClock) -> None:
    """Results carry job_id in submission order, from 0."""

    async def sleeper(options: Any) -> None:
        await trio.sleep(options["seconds"])

    async with wpxt.WorkerPool(3) as pool:
        handles = [pool.submit(wpxt.Job(sleeper, options={"seconds": 3 - i})) for i in range(3)]
        results = await pool.stop_wait()
    assert [handle.job_id for handle in handles] == [0, 1, 2]
    # Completion order is the reverse of submission order here.
    assert [result.job_id for result in results] == [2, 1, 0]


async def test_the_pools_fast_result_is_an_ordinary_frozen_result(autojump_clock: trio.testing.MockClock) -> None:
    """The Result a pool builds through ResultBuilder has Result's fields, equals one built plainly, and is frozen."""
    from workerpoolxt._result import ResultBuilder

    names = sorted(field.name for field in attrs.fields(Result))
    assert sorted(ResultBuilder.__slots__) == names
    assert sorted(Result.__slots__) == names

    async def task(options: wpxt.Options) -> str:
        await trio.sleep(1)
        return "data"

    async with wpxt.WorkerPool(1) as pool:
        built = await pool.submit_wait(wpxt.Job(task, name="job"))
    assert type(built) is Result
    plain = Result(**{name: getattr(built, name) for name in names})
    assert (built, hash(built)) == (plain, hash(plain))
    assert (built.data, built.duration, built.finished_at) == ("data", 1.0, 1.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.name = "other"  # type: ignore[misc]


async def test_a_job_that_follows_another_on_its_worker_starts_at_the_reading_that_ended_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Back to back on one worker, the second job's started_at is the first's finished_at: one float for both."""

    async def task(options: wpxt.Options) -> None:
        await trio.lowlevel.checkpoint()

    async with wpxt.WorkerPool(1) as pool:
        await trio.sleep(1)
        pool.submit(wpxt.Job(task))
        pool.submit(wpxt.Job(task))
        first, second = await pool.stop_wait()
    assert (first.started_at, first.finished_at, second.started_at, second.finished_at) == (1.0, 1.0, 1.0, 1.0)
    assert second.started_at is first.finished_at
    assert first.started_at is not first.finished_at  # read when the job started, and again when it ended


async def test_a_failing_job_after_one_with_a_deadline_ends_at_its_own_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The clock reading a deadline job's end left behind is not the end of the plain job after it."""

    async def succeed(options: wpxt.Options) -> None:
        await trio.sleep(1)

    async def fail(options: wpxt.Options) -> None:
        await trio.sleep(2)
        raise ValueError("no")

    async with wpxt.WorkerPool(1) as pool:
        pool.submit(wpxt.Job(succeed, timeout=10))
        pool.submit(wpxt.Job(fail))
        timed, failed = await pool.stop_wait()
    assert (timed.status, timed.finished_at) == (Status.SUCCEEDED, 1.0)
    assert (failed.status, failed.started_at, failed.finished_at, failed.duration) == (Status.FAILED, 1.0, 3.0, 2.0)
