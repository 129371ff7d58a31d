"""A running job's progress reports: ``current_job().progress()``, ``Progress``, handles and observers.

Async tests run under the autojump clock with exact virtual times; the plain
task's thread uses the real clock with a bound.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

import workerpoolxt as wpxt
from workerpoolxt import Job, Progress, WorkerPool
from workerpoolxt.hooks import JobFinished, JobProgress, Observer

SAFETY = 5.0
"""Seconds before a test running a plain task on the real clock fails rather than hangs."""


class ProgressRecorder(Observer):
    """Records each progress event as (job name, done, total, time), and each end."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def job_progress(self, event: JobProgress) -> None:
        self.events.append((event.handle.name, event.progress.done, event.progress.total, event.time))

    def job_finished(self, event: JobFinished) -> None:
        self.events.append((event.handle.name, "finished", trio.current_time()))


async def steps(options: wpxt.Options) -> str:
    """Reports 0, 1, 2 and 3 of 3, a second apart."""
    job = wpxt.current_job()
    for done in range(3):
        job.progress(done, 3)
        await trio.sleep(1)
    job.progress(3, 3)
    return "done"


# -- the value ---------------------------------------------------------------------------


def test_progress_is_a_frozen_value_with_a_fraction() -> None:
    """Progress holds what it was given; its fraction is done / total, or None without a total."""
    assert Progress(3, 12).fraction == 0.25
    assert Progress(0.5, 2.0).fraction == 0.25
    assert Progress(7).fraction is None
    assert Progress(7) == Progress(7, None)
    assert Progress(10, 10).fraction == 1.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Progress(1, 2).done = 2  # type: ignore[misc]
    assert attrs.asdict(Progress(1, 4)) == {"done": 1, "total": 4}


@pytest.mark.parametrize(
    ("done", "total", "error", "message"),
    [
        (True, None, TypeError, "`done` must be a number, not bool"),
        ("1", None, TypeError, "`done` must be a number, not str"),
        (None, 3, TypeError, "`done` must be a number, not NoneType"),
        (1, False, TypeError, "`total` must be a number or None, not bool"),
        (1, "3", TypeError, "`total` must be a number or None, not str"),
        (-1, None, ValueError, "`done` must be finite and zero or more, got -1"),
        (math.nan, None, ValueError, "`done` must be finite and zero or more, got nan"),
        (math.inf, None, ValueError, "`done` must be finite and zero or more, got inf"),
        (0, -2.5, ValueError, "`total` must be finite and zero or more, got -2.5"),
        (0, math.inf, ValueError, "`total` must be finite and zero or more, got inf"),
        (0, math.nan, ValueError, "`total` must be finite and zero or more, got nan"),
        (1, 0, ValueError, r"`done` \(1\) must not exceed `total` \(0\)"),
        (11, 10, ValueError, r"`done` \(11\) must not exceed `total` \(10\)"),
        (10**400, None, ValueError, "`done` must be finite, got an int of"),
    ],
)
def test_progress_refuses_what_is_not_a_report(done: Any, total: Any, error: type[Exception], message: str) -> None:
    """A bool, a non-number, a negative or infinite done or total, or done above total: refused."""
    with pytest.raises(error, match=message):
        Progress(done, total)


numbers = st.one_of(st.integers(min_value=-(10**6), max_value=10**6), st.floats(allow_nan=True, allow_infinity=True))


@given(done=numbers, total=st.one_of(st.none(), numbers))
def test_progress_is_valid_exactly_when_its_fraction_is_a_fraction(done: float, total: float | None) -> None:
    """Any two numbers make a Progress, or a ValueError, as they are finite and 0 <= done <= total."""
    valid = math.isfinite(done) and done >= 0 and (total is None or (math.isfinite(total) and done <= total))
    if not valid:
        with pytest.raises(ValueError, match=r"`done`|`total`"):
            Progress(done, total)
        return
    fraction = Progress(done, total).fraction
    assert fraction is None if total is None else 0.0 <= fraction <= 1.0


def test_an_empty_batch_is_all_done() -> None:
    """Progress(0, 0), a task's report on an empty batch, is valid, and its fraction is 1.0."""
    assert Progress(0, 0).fraction == 1.0
    assert (Progress(3, 4).fraction, Progress(3).fraction) == (0.75, None)


# -- reporting -----------------------------------------------------------------------------


async def test_observers_see_each_report_at_its_time(autojump_clock: trio.testing.MockClock) -> None:
    """Each report reaches the observer at once, with the job's handle, done, total and the trio time."""
    recorder = ProgressRecorder()
    async with WorkerPool(2) as pool:
        pool.add_observer(recorder)
        handle = pool.submit(Job(steps, name="steps"))
        await trio.sleep(0.5)
        assert handle.last_progress == Progress(0, 3)
    assert recorder.events == [
        ("steps", 0, 3, 0.0),
        ("steps", 1, 3, 1.0),
        ("steps", 2, 3, 2.0),
        ("steps", 3, 3, 3.0),
        ("steps", "finished", 3.0),
    ]


async def test_the_event_carries_the_submitted_handle_and_the_report(autojump_clock: trio.testing.MockClock) -> None:
    """The event's handle equals the one submit() returned; its progress is the report, as made."""
    events: list[JobProgress] = []

    class Keep(Observer):
        def job_progress(self, event: JobProgress) -> None:
            events.append(event)

    async def two(options: wpxt.Options) -> None:
        wpxt.current_job().progress(1, 4)
        wpxt.current_job().progress(5)

    async with WorkerPool(1) as pool:
        pool.add_observer(Keep())
        handle = pool.submit(Job(two))
    assert [(event.handle == handle, event.progress) for event in events] == [
        (True, Progress(1, 4)),
        (True, Progress(5)),
    ]


async def test_the_latest_report_is_read_by_the_job_and_its_handle(autojump_clock: trio.testing.MockClock) -> None:
    """last_progress is None before the first report, then the latest; the handle's is None once the job is done."""
    seen: list[Progress | None] = []

    async def work(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen.append(job.last_progress)
        job.progress(2, 5)
        seen.append(job.last_progress)
        await trio.sleep(1)
        job.progress(4.5, 5)
        seen.append(job.last_progress)
        await trio.sleep(1)

    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(work))
        assert handle.last_progress is None
        await trio.sleep(0.5)
        assert handle.last_progress == Progress(2, 5)
        await trio.sleep(1)
        assert handle.last_progress == Progress(4.5, 5)
        await handle.wait()
        assert trio.current_time() == 2.0
        assert handle.last_progress is None
    assert seen == [None, Progress(2, 5), Progress(4.5, 5)]


async def test_the_latest_report_outlives_a_retried_attempt(autojump_clock: trio.testing.MockClock) -> None:
    """A report belongs to the job's run, not one attempt: the retry reads the report the failed attempt made."""
    seen: list[Progress | None] = []

    async def flaky(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen.append(job.last_progress)
        if job.attempt == 1:
            job.progress(3, 10)
            raise ValueError("once")

    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(flaky, retry=1))
    assert handle.result is not None
    assert handle.result.status is wpxt.Status.SUCCEEDED
    assert seen == [None, Progress(3, 10)]


async def test_a_bad_report_raises_in_the_task_naming_the_parameter(autojump_clock: trio.testing.MockClock) -> None:
    """progress() checks its arguments where the task calls it, and keeps no bad report."""

    async def bad(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        job.progress(1, 2)
        job.progress(3, 2)

    recorder = ProgressRecorder()
    async with WorkerPool(1) as pool:
        pool.add_observer(recorder)
        handle = pool.submit(Job(bad, name="bad"))
    result = handle.result
    assert result is not None
    assert isinstance(result.error, ValueError)
    assert str(result.error) == "`done` (3) must not exceed `total` (2)"
    assert recorder.events == [("bad", 1, 2, 0.0), ("bad", "finished", 0.0)]


async def test_a_report_after_the_job_ended_is_ignored(autojump_clock: trio.testing.MockClock) -> None:
    """A task the job started that outlives it may still report: nobody hears, and nothing is kept for the job."""
    recorder = ProgressRecorder()
    late: list[wpxt.RunningJob] = []

    async with trio.open_nursery() as outer, WorkerPool(1) as pool:
        pool.add_observer(recorder)

        async def reporter() -> None:
            await trio.sleep(2)
            late[0].progress(9, 10)

        async def spawner(options: wpxt.Options) -> None:
            late.append(wpxt.current_job())
            outer.start_soon(reporter)

        handle = pool.submit(Job(spawner, name="spawner"))
        await trio.sleep(3)
        assert handle.done
        assert pool._extras == {}
    assert recorder.events == [("spawner", "finished", 0.0)]


async def test_an_observer_that_raises_on_a_report_is_logged_and_harms_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An observer's error on a report is logged naming the job; the task, and the other observers, carry on."""

    class Broken(Observer):
        def job_progress(self, event: JobProgress) -> None:
            raise RuntimeError("observer bug")

    recorder = ProgressRecorder()
    async with WorkerPool(1) as pool:
        pool.add_observer(Broken())
        pool.add_observer(recorder)
        handle = pool.submit(Job(steps, name="steps"))
    assert handle.result is not None
    assert handle.result.unwrap() == "done"
    assert [event[1] for event in recorder.events] == [0, 1, 2, 3, "finished"]
    failures = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(failures) == 4
    assert failures[0].getMessage() == "an observer of job 'steps' (job_id 0) failed as it reported progress"


async def test_with_no_progress_observer_a_report_makes_no_event(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Observers that do not override job_progress are not called for reports, nor is an event built."""
    from workerpoolxt import _current

    built: list[Any] = []
    monkeypatch.setattr(_current, "JobProgress", lambda *args: built.append(args))

    class OnlyEnds(Observer):
        def job_finished(self, event: JobFinished) -> None:
            pass

    async with WorkerPool(1) as pool:
        pool.add_observer(OnlyEnds())
        assert pool._observers.job_progress == ()
        handle = pool.submit(Job(steps))
        await trio.sleep(0.5)
        assert handle.last_progress == Progress(0, 3)
    assert built == []


async def test_a_plain_task_reports_from_its_thread() -> None:
    """A plain task's reports from its thread reach the observers on trio's thread, in order."""
    threads: list[bool] = []

    class OnTrio(ProgressRecorder):
        def job_progress(self, event: JobProgress) -> None:
            threads.append(threading.current_thread() is threading.main_thread())
            super().job_progress(event)

    def count(options: wpxt.Options) -> int:
        for done in range(1, 4):
            wpxt.current_job().progress(done, 3)
        last = wpxt.current_job().last_progress
        assert last is not None
        return int(last.done)

    recorder = OnTrio()
    with trio.fail_after(SAFETY):
        async with WorkerPool(1) as pool:
            pool.add_observer(recorder)
            handle = pool.submit(Job(count, name="count"))
    assert handle.result is not None
    assert handle.result.unwrap() == 3
    assert [event[:3] for event in recorder.events[:3]] == [("count", 1, 3), ("count", 2, 3), ("count", 3, 3)]
    assert threads == [True, True, True]
