"""The pool's observer protocol, its synchronous stop request and the run information a job carries."""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import pytest
import trio
import trio.testing
from helpers import result_of, sleeper

import workerpoolxt as wpxt
from workerpoolxt import Job, RunInfo, Status, WorkerPool
from workerpoolxt.hooks import AttemptEnded, AttemptStarted, JobFinished, JobQueued, JobStarted, Observer


class Recorder(Observer):
    """Records every event as (kind, job name, attempt or status, time)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def job_queued(self, event: JobQueued) -> None:
        self.events.append(("queued", event.handle.name, event.time))

    def job_started(self, event: JobStarted) -> None:
        self.events.append(("started", event.handle.name, event.time))

    def attempt_started(self, event: AttemptStarted) -> None:
        self.events.append(("attempt", event.handle.name, event.attempt, event.time))

    def attempt_ended(self, event: AttemptEnded) -> None:
        error = None if event.error is None else type(event.error).__name__
        self.events.append(("attempt ended", event.handle.name, event.attempt, event.time, error))

    def job_finished(self, event: JobFinished) -> None:
        self.events.append(("finished", event.handle.name, event.result.status, trio.current_time()))


async def test_events_come_in_order_with_their_times(autojump_clock: trio.testing.MockClock) -> None:
    """A retried job, a job cancelled while queued and one its handle cancels mid-attempt: every event, in order."""
    calls = 0

    async def flaky(options: wpxt.Options) -> str:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        if calls == 1:
            raise ValueError("once")
        return "ok"

    recorder = Recorder()
    async with WorkerPool(1) as pool:
        pool.add_observer(recorder)
        pool.submit(Job(flaky, retry=1, backoff=wpxt.Backoff(initial=0.5, jitter=0)))
        pool.submit(Job(sleeper(1), name="withdrawn")).cancel()
        slow = pool.submit(Job(sleeper(10), name="slow"))
        await trio.sleep(3)
        slow.cancel()
    assert recorder.events == [
        ("queued", "flaky", 0.0),
        ("queued", "withdrawn", 0.0),
        ("finished", "withdrawn", Status.CANCELLED, 0.0),
        ("queued", "slow", 0.0),
        ("started", "flaky", 0.0),
        ("attempt", "flaky", 1, 0.0),
        ("attempt ended", "flaky", 1, 1.0, "ValueError"),
        ("attempt", "flaky", 2, 1.5),
        ("attempt ended", "flaky", 2, 2.5, None),
        ("finished", "flaky", Status.SUCCEEDED, 2.5),
        ("started", "slow", 2.5),
        ("attempt", "slow", 1, 2.5),
        ("attempt ended", "slow", 1, 3.0, "Cancelled"),
        ("finished", "slow", Status.CANCELLED, 3.0),
    ]


async def test_an_observer_added_twice_sees_each_event_once(autojump_clock: trio.testing.MockClock) -> None:
    """add_observer() is idempotent; an observer that overrides one method gets only that event."""
    ends: list[str] = []

    class Ends(Observer):
        def job_finished(self, event: JobFinished) -> None:
            ends.append(event.result.name)

    observer = Ends()
    async with WorkerPool(2) as pool:
        pool.add_observer(observer)
        pool.add_observer(observer)
        pool.submit(Job(sleeper(1), name="a"))
        pool.submit(Job(sleeper(2), name="b"))
    assert ends == ["a", "b"]


def test_add_observer_refuses_what_is_not_an_observer() -> None:
    """Anything but an Observer is a TypeError naming the parameter."""
    with pytest.raises(TypeError, match=r"`observer` must be a workerpoolxt\.hooks\.Observer, not function"):
        WorkerPool(1).add_observer(lambda event: None)  # type: ignore[arg-type]


async def test_an_observer_that_raises_is_logged_and_harms_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An observer raising at every event is logged, naming the job and the moment; the job and pool go on."""

    class Broken(Observer):
        def job_queued(self, event: JobQueued) -> None:
            raise RuntimeError("queued")

        def job_started(self, event: JobStarted) -> None:
            raise RuntimeError("started")

        def attempt_started(self, event: AttemptStarted) -> None:
            raise RuntimeError("attempt started")

        def attempt_ended(self, event: AttemptEnded) -> None:
            raise RuntimeError("attempt ended")

        def job_finished(self, event: JobFinished) -> None:
            raise RuntimeError("finished")

    async with WorkerPool(1) as pool:
        pool.add_observer(Broken())
        handle = pool.submit(Job(sleeper(1, "done"), name="work"))
    assert trio.current_time() == 1.0
    result = result_of(handle)
    assert (result.status, result.data) == (Status.SUCCEEDED, "done")
    records = [record for record in caplog.records if record.name == "workerpoolxt"]
    assert [
        (record.levelno, record.getMessage(), str(record.exc_info and record.exc_info[1])) for record in records
    ] == [
        (logging.ERROR, "an observer of job 'work' (job_id 0) failed as it was queued", "queued"),
        (logging.ERROR, "an observer of job 'work' (job_id 0) failed as it started", "started"),
        (logging.ERROR, "an observer of job 'work' (job_id 0) failed as an attempt started", "attempt started"),
        (logging.ERROR, "an observer of job 'work' (job_id 0) failed as an attempt ended", "attempt ended"),
        (logging.ERROR, "an observer of job 'work' (job_id 0) failed as it ended", "finished"),
    ]


async def test_a_context_variable_set_as_an_attempt_starts_is_the_attempts_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What an observer sets as an attempt starts, its task, thread and middleware see; its end resets it."""
    current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="none")
    seen: list[tuple[str, str]] = []

    class Setter(Observer):
        def __init__(self) -> None:
            self.tokens: dict[Any, contextvars.Token[str]] = {}

        def attempt_started(self, event: AttemptStarted) -> None:
            self.tokens[event.handle] = current.set(f"{event.handle.name} #{event.attempt}")

        def attempt_ended(self, event: AttemptEnded) -> None:
            current.reset(self.tokens.pop(event.handle))

    async def in_task(options: wpxt.Options) -> None:
        seen.append(("task", current.get()))
        if wpxt.current_job().attempt == 1:
            raise ValueError("again")

    def in_thread(options: wpxt.Options) -> None:
        seen.append(("thread", current.get()))

    async def outermost(job: wpxt.RunningJob, call_next: wpxt.middleware.CallNext) -> Any:
        seen.append(("middleware", current.get()))
        return await call_next()

    async with WorkerPool(1, middleware=[outermost]) as pool:
        pool.add_observer(Setter())
        pool.submit(Job(in_task, name="a", retry=1, backoff=wpxt.Backoff.none()))
        await pool.submit(Job(in_thread, name="b")).wait()
        seen.append(("pool", current.get()))
    assert seen == [
        ("middleware", "a #1"),
        ("task", "a #1"),
        ("middleware", "a #2"),
        ("task", "a #2"),
        ("middleware", "b #1"),
        ("thread", "b #1"),
        ("pool", "none"),
    ]


# -- a stop requested from a plain function -------------------------------------------


@pytest.mark.parametrize(
    ("cancel_running", "running"), [(False, (Status.SUCCEEDED, 2.0)), (True, (Status.CANCELLED, 1.0))]
)
async def test_request_stop_abandons_the_queue_and_lets_running_jobs_end_as_asked(
    cancel_running: bool, running: tuple[Status, float], autojump_clock: trio.testing.MockClock
) -> None:
    """request_stop() returns at once; the queued job is abandoned, the running one finishes or is cancelled."""
    async with WorkerPool(1) as pool:
        first = pool.submit(Job(sleeper(2)))
        queued = pool.submit(Job(sleeper(2)))
        await trio.sleep(1)
        pool.request_stop(cancel_running=cancel_running)
        assert pool.stopped
        assert result_of(queued).status is Status.ABANDONED
        with pytest.raises(wpxt.PoolClosedError):
            pool.submit(Job(sleeper(1)))
    assert (result_of(first).status, result_of(first).finished_at) == running


def test_request_stop_before_entering_does_nothing_and_checks_its_flag() -> None:
    """A pool not yet entered is left alone; a non-bool flag is a TypeError naming it."""
    pool = WorkerPool(1)
    pool.request_stop()
    assert not pool.stopped
    with pytest.raises(TypeError, match="cancel_running"):
        pool.request_stop(cancel_running=1)  # type: ignore[arg-type]


# -- run information ---------------------------------------------------------------------


async def test_a_job_reads_the_run_information_it_was_submitted_with(autojump_clock: trio.testing.MockClock) -> None:
    """current_job().info is the RunInfo given to submit(); attempts count from its first_attempt."""
    seen: list[tuple[Any, ...]] = []

    async def task(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen.append((job.info, job.task_id, job.attempt, job.tick))
        if job.attempt < 4:
            raise ValueError("again")

    info = RunInfo(task_id=7, first_attempt=3)
    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(task, retry=1, backoff=wpxt.Backoff.none()), info=info)
        plain = pool.submit(Job(task, retry=3, backoff=wpxt.Backoff.none()))
    assert seen[:2] == [(info, 7, 3, None), (info, 7, 4, None)]
    assert [attempt for _, _, attempt, _ in seen[2:]] == [1, 2, 3, 4]
    assert seen[2][0] == RunInfo()
    assert (result_of(handle).attempts, result_of(plain).attempts) == (2, 4)


def test_run_information_is_checked() -> None:
    """A first attempt below 1 is a ValueError; submit() refuses what is not a RunInfo."""
    with pytest.raises(ValueError, match="first_attempt"):
        RunInfo(first_attempt=0)

    async def main() -> None:
        async with WorkerPool(1) as pool:
            with pytest.raises(TypeError, match="`info` must be a RunInfo or None, not dict"):
                pool.submit(Job(sleeper(1)), info={"task_id": 1})  # type: ignore[arg-type]

    trio.run(main)


async def test_observed_attempts_keep_their_bound_and_their_thread(autojump_clock: trio.testing.MockClock) -> None:
    """Under an attempt observer, attempt_timeout still bounds an attempt, and a plain task still runs in a thread."""
    recorder = Recorder()

    async def slow(options: wpxt.Options) -> None:
        await trio.sleep(5)

    def plain(options: wpxt.Options) -> str:
        return "from a thread"

    async with WorkerPool(1) as pool:
        pool.add_observer(recorder)
        bounded_job = pool.submit(Job(slow, attempt_timeout=1))
        threaded = pool.submit(Job(plain))
    assert (result_of(bounded_job).status, trio.current_time()) == (Status.TIMED_OUT, 1.0)
    assert result_of(threaded).data == "from a thread"
    ends = [event for event in recorder.events if event[0] == "attempt ended"]
    assert ends == [("attempt ended", "slow", 1, 1.0, "JobTimeoutError"), ("attempt ended", "plain", 1, 1.0, None)]


async def test_a_handle_says_what_it_is(autojump_clock: trio.testing.MockClock) -> None:
    """A handle's repr gives its id, name and state; queued_at is when it was submitted."""
    async with WorkerPool(1) as pool:
        await trio.sleep(2)
        handle = pool.submit(Job(sleeper(1), name="nap"))
        assert repr(handle) == "<JobHandle 0 'nap' pending>"
        assert handle.queued_at == 2.0
    assert repr(handle) == "<JobHandle 0 'nap' succeeded>"


async def test_two_observers_setting_one_variable_nest(autojump_clock: trio.testing.MockClock) -> None:
    """The first observer to set a variable as an attempt starts is the last to reset it, so nothing leaks."""
    current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="none")
    seen: list[str] = []

    class Setter(Observer):
        def __init__(self, label: str) -> None:
            self.label = label
            self.tokens: list[contextvars.Token[str]] = []

        def attempt_started(self, event: AttemptStarted) -> None:
            self.tokens.append(current.set(self.label))

        def attempt_ended(self, event: AttemptEnded) -> None:
            current.reset(self.tokens.pop())

        def job_finished(self, event: JobFinished) -> None:
            seen.append(f"{self.label} sees {current.get()} as the job ends")  # in the worker's task

    async def task(options: wpxt.Options) -> None:
        seen.append(current.get())

    async with WorkerPool(1) as pool:
        pool.add_observer(Setter("outer"))
        pool.add_observer(Setter("inner"))
        await pool.submit(Job(task)).wait()
    assert seen == ["inner", "outer sees none as the job ends", "inner sees none as the job ends"]


async def test_every_event_of_a_job_carries_a_handle_equal_to_the_submitted_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The handles in a job's events equal and hash like the one submit() returned, and differ from other jobs'."""
    seen: list[wpxt.JobHandle[Any]] = []

    class Recorder(Observer):
        def job_queued(self, event: JobQueued) -> None:
            seen.append(event.handle)

        def job_started(self, event: JobStarted) -> None:
            seen.append(event.handle)

        def job_finished(self, event: JobFinished) -> None:
            seen.append(event.handle)

    async with WorkerPool(1) as pool:
        pool.add_observer(Recorder())
        first = pool.submit(Job(sleeper(1, "a")))
        second = pool.submit(Job(sleeper(1, "b")))
    assert seen == [first, second, first, first, second, second]
    assert {hash(handle) for handle in seen[2:4]} == {hash(first)}
    assert first != second
    assert first != object()
    spans = {first: "a"}
    assert spans[seen[3]] == "a"
    assert second not in spans


def test_a_queued_job_costs_a_handle_of_one_slot_and_an_entry_of_three() -> None:
    """The per-job objects stay this small: a pool may hold millions of them (their bytes are benchmarked)."""
    from workerpoolxt._handle import Entry

    assert wpxt.JobHandle.__slots__ == ("_entry",)
    assert sorted(Entry.__slots__) == ["job_id", "queued_at", "value"]
