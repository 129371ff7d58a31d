"""Tests for middleware: the pool's and the job's lists around each attempt, summary_log and attempt_timeout.

Async tests run under the autojump clock with exact virtual times. The one test of a
plain (thread-run) task uses the real clock: its thread returns at once.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

import workerpoolxt as wpxt
from workerpoolxt import (
    Backoff,
    Code,
    Job,
    JobCancelledError,
    JobTimeoutError,
    Registry,
    Result,
    RunningJob,
    Status,
    WorkerPool,
)
from workerpoolxt.middleware import CallNext, Middleware, attempt_timeout, summary_log

SAFETY = 5.0
"""Seconds before the test running a plain task on the real clock fails rather than hangs."""

Task = Callable[[wpxt.Options], Awaitable[Any]]


# -- helpers ---------------------------------------------------------------------------


def result_of(handle: wpxt.JobHandle[Any]) -> Result[Any]:
    """The handle's Result, which must be there."""
    assert handle.result is not None, f"{handle!r} has no result"
    return handle.result


def sleeper(seconds: float, value: object = None) -> Task:
    """A task that sleeps ``seconds`` on the trio clock, then returns ``value``."""

    async def sleep_then_return(options: wpxt.Options) -> object:
        await trio.sleep(seconds)
        return value

    return sleep_then_return


def raiser(error: BaseException, after: float = 0) -> Task:
    """A task that sleeps ``after`` seconds, then raises ``error``."""

    async def sleep_then_raise(options: wpxt.Options) -> None:
        await trio.sleep(after)
        raise error

    return sleep_then_raise


def recorder(name: str, events: list[str]) -> Middleware:
    """A middleware that records entering and leaving, and wraps the value it passes on in ``name(...)``."""

    async def record(job: RunningJob, call_next: CallNext) -> Any:
        events.append(f"enter {name}")
        value = await call_next()
        events.append(f"exit {name}")
        return f"{name}({value})"

    return record


async def swallow_errors(job: RunningJob, call_next: CallNext) -> Any:
    """A middleware that turns any Exception from inside into the value "swallowed"."""
    try:
        return await call_next()
    except Exception:
        return "swallowed"


async def passthrough(job: RunningJob, call_next: CallNext) -> Any:
    """A middleware that changes nothing."""
    return await call_next()


def not_async(job: RunningJob, call_next: CallNext) -> Any:
    """A plain function, which cannot be middleware."""
    return None


class AsyncCallable:
    """An object whose ``__call__`` is async, which may be middleware."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def __call__(self, job: RunningJob, call_next: CallNext) -> Any:
        self.events.append("instance")
        return await call_next()


async def tagged(tag: str, events: list[str], job: RunningJob, call_next: CallNext) -> Any:
    """A middleware once ``tag`` and ``events`` are bound with functools.partial."""
    events.append(tag)
    return await call_next()


# -- order and values ------------------------------------------------------------------


async def test_pool_list_wraps_job_list_first_listed_outermost(autojump_clock: trio.testing.MockClock) -> None:
    """The pool's middleware wraps the job's, the first listed is outermost, and they exit in reverse."""
    events: list[str] = []

    async def task(options: wpxt.Options) -> str:
        events.append("task")
        return "task"

    pool_list = [recorder("p1", events), recorder("p2", events)]
    job_list = [recorder("j1", events), recorder("j2", events)]
    async with WorkerPool(1, middleware=pool_list) as pool:
        result = await pool.submit_wait(Job(task, middleware=job_list))
    assert events == [
        "enter p1",
        "enter p2",
        "enter j1",
        "enter j2",
        "task",
        "exit j2",
        "exit j1",
        "exit p2",
        "exit p1",
    ]
    assert result.status is Status.SUCCEEDED
    assert result.data == "p1(p2(j1(j2(task))))"


async def test_job_list_applies_only_to_its_job(autojump_clock: trio.testing.MockClock) -> None:
    """A job's middleware wraps that job alone; a job without its own gets just the pool's."""
    events: list[str] = []
    async with WorkerPool(1, middleware=[recorder("pool", events)]) as pool:
        own = await pool.submit_wait(Job(sleeper(1, "own"), middleware=[recorder("job", events)]))
        plain = await pool.submit_wait(Job(sleeper(1, "plain")))
    assert own.data == "pool(job(own))"
    assert plain.data == "pool(plain)"
    assert events == ["enter pool", "enter job", "exit job", "exit pool", "enter pool", "exit pool"]


async def test_job_list_without_pool_list(autojump_clock: trio.testing.MockClock) -> None:
    """A pool with no middleware runs a job's own list, first listed outermost."""
    events: list[str] = []
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(0, "x"), middleware=[recorder("a", events), recorder("b", events)]))
    assert result.data == "a(b(x))"
    assert events == ["enter a", "enter b", "exit b", "exit a"]


async def test_middleware_receives_the_tasks_value(autojump_clock: trio.testing.MockClock) -> None:
    """call_next() returns exactly the task's value, and a middleware that passes it on leaves Result.data as is."""
    seen: list[object] = []
    value = {"payload": [1, 2]}

    async def look(job: RunningJob, call_next: CallNext) -> Any:
        got = await call_next()
        seen.append(got)
        return got

    async with WorkerPool(1, middleware=[look]) as pool:
        result = await pool.submit_wait(Job(sleeper(1, value)))
    assert seen == [value]
    assert seen[0] is value
    assert result.data is value


async def test_middleware_replaces_the_value(autojump_clock: trio.testing.MockClock) -> None:
    """What the outermost middleware returns is Result.data, not what the task returned."""

    async def double(job: RunningJob, call_next: CallNext) -> Any:
        return 2 * await call_next()

    async def replace(job: RunningJob, call_next: CallNext) -> Any:
        await call_next()
        return "replaced"

    async with WorkerPool(1) as pool:
        doubled = await pool.submit_wait(Job(sleeper(0, 21), middleware=[double]))
        replaced = await pool.submit_wait(Job(sleeper(0, 21), middleware=[replace, double]))
    assert (doubled.status, doubled.data) == (Status.SUCCEEDED, 42)
    assert (replaced.status, replaced.data) == (Status.SUCCEEDED, "replaced")


async def test_short_circuit_never_runs_the_task(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware that returns without calling call_next() skips the task and the middleware inside it."""
    ran: list[str] = []
    events: list[str] = []

    async def task(options: wpxt.Options) -> str:
        ran.append("task")
        return "fresh"

    async def cached(job: RunningJob, call_next: CallNext) -> Any:
        return "cached"

    async with WorkerPool(1, middleware=[recorder("outer", events), cached]) as pool:
        result = await pool.submit_wait(Job(task, middleware=[recorder("inner", events)]))
    assert ran == []
    assert events == ["enter outer", "exit outer"]
    assert result.status is Status.SUCCEEDED
    assert result.data == "outer(cached)"
    assert (result.code, result.attempts) == (200, 1)


async def test_exception_turned_into_a_value(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware that catches the task's error and returns a value makes the job succeed with it, at once."""
    calls: list[int] = []

    async def fails(options: wpxt.Options) -> None:
        calls.append(wpxt.current_job().attempt)
        await trio.sleep(1)
        raise ValueError("boom")

    async with WorkerPool(1, middleware=[swallow_errors]) as pool:
        result = await pool.submit_wait(Job(fails, retry=3, backoff=Backoff.none()))
    assert result.status is Status.SUCCEEDED
    assert result.data == "swallowed"
    assert result.error is None
    assert (result.code, result.attempts, result.duration) == (200, 1, 1.0)
    assert calls == [1]


async def test_middleware_sees_the_job(autojump_clock: trio.testing.MockClock) -> None:
    """The RunningJob a middleware gets is current_job()'s, with the job's name, job_id, args, options and attempt."""
    seen: list[tuple[str, int, dict[str, Any], dict[str, Any], int]] = []
    same: list[bool] = []

    async def look(job: RunningJob, call_next: CallNext) -> Any:
        seen.append((job.name, job.job_id, dict(job.args), dict(job.options), job.attempt))
        return await call_next()

    ctx: list[RunningJob] = []

    async def task(options: wpxt.Options) -> None:
        same.append(wpxt.current_job() is ctx[-1])

    async def keep(job: RunningJob, call_next: CallNext) -> Any:
        ctx.append(job)
        return await call_next()

    async with WorkerPool(1, options={"pool": 1}, middleware=[look, keep]) as pool:
        pool.submit(Job(sleeper(0), name="first", args={"n": 1}))
        pool.submit(Job(task, name="second", options={"job": 2}))
    assert seen == [("first", 0, {"n": 1}, {"pool": 1}, 1), ("second", 1, {}, {"job": 2}, 1)]
    assert same == [True]


async def test_values_from_middleware_reach_the_task_and_back(autojump_clock: trio.testing.MockClock) -> None:
    """Values a middleware sets are visible to the task via current_job(), and the task's values to the middleware."""
    seen: list[Any] = []

    async def set_user(job: RunningJob, call_next: CallNext) -> Any:
        job.set("user", "ada")
        value = await call_next()
        seen.append(job.get("reply"))
        return value

    async def task(options: wpxt.Options) -> str:
        job = wpxt.current_job()
        await trio.sleep(1)
        job.set("reply", f"hello {job.get('user')}")
        return str(job.get("user"))

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(task, middleware=[set_user]))
    assert result.data == "ada"
    assert seen == ["hello ada"]


async def test_each_concurrent_job_gets_its_own_context(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs running side by side each see the values their own middleware run stored."""
    seen: list[tuple[str, Any]] = []

    async def stamp(job: RunningJob, call_next: CallNext) -> Any:
        job.set("who", job.name)
        return await call_next()

    async def task(options: wpxt.Options) -> None:
        await trio.sleep(1)
        job = wpxt.current_job()
        seen.append((job.name, job.get("who")))

    async with WorkerPool(3, middleware=[stamp]) as pool:
        for name in ("a", "b", "c"):
            pool.submit(Job(task, name=name))
    assert sorted(seen) == [("a", "a"), ("b", "b"), ("c", "c")]
    assert trio.current_time() == 1.0


async def test_async_callable_object_and_partial_are_middleware(autojump_clock: trio.testing.MockClock) -> None:
    """An object with an async __call__ and a functools.partial of an async function both work as middleware."""
    events: list[str] = []
    async with WorkerPool(1, middleware=(AsyncCallable(events),)) as pool:
        result = await pool.submit_wait(Job(sleeper(0, "v"), middleware=[functools.partial(tagged, "partial", events)]))
    assert events == ["instance", "partial"]
    assert result.data == "v"


async def test_any_iterable_is_accepted_and_copied(autojump_clock: trio.testing.MockClock) -> None:
    """A generator or tuple is accepted, and editing the caller's list afterwards changes nothing."""
    events: list[str] = []
    pool_list = [recorder("pool", events)]
    job_list = [recorder("job", events)]
    job = Job(sleeper(0, "v"), middleware=job_list)
    pool = WorkerPool(1, middleware=(mw for mw in pool_list))
    pool_list.append(recorder("late pool", events))
    job_list.append(recorder("late job", events))
    assert len(job.middleware) == 1
    async with pool:
        result = await pool.submit_wait(job)
    assert result.data == "pool(job(v))"
    assert events == ["enter pool", "enter job", "exit job", "exit pool"]


async def test_named_job_keeps_its_middleware(autojump_clock: trio.testing.MockClock) -> None:
    """A job naming a Registry handler runs through its own middleware, inside the pool's."""
    events: list[str] = []
    registry = Registry()

    @registry.register("greet")
    async def greet(options: wpxt.Options) -> str:
        return f"hi {wpxt.current_job().args['to']}"

    async with WorkerPool(1, registry=registry, middleware=[recorder("pool", events)]) as pool:
        result = await pool.submit_wait(Job("greet", args={"to": "ada"}, middleware=[recorder("job", events)]))
    assert result.data == "pool(job(hi ada))"
    assert events == ["enter pool", "enter job", "exit job", "exit pool"]


# -- status codes ----------------------------------------------------------------------


async def test_middleware_sets_nothing_to_do(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware setting Code.NOTHING_TO_DO and short-circuiting ends SUCCEEDED with code 444."""

    async def nothing(job: RunningJob, call_next: CallNext) -> Any:
        job.code = Code.NOTHING_TO_DO
        return None

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(5, "work"), middleware=[nothing]))
    assert result.status is Status.SUCCEEDED
    assert result.code == 444
    assert result.data is None
    assert trio.current_time() == 0.0


async def test_middleware_sets_code_after_the_task(autojump_clock: trio.testing.MockClock) -> None:
    """A code set after call_next() returns, overriding the task's own, is the Result's."""

    async def task(options: wpxt.Options) -> list[str]:
        wpxt.current_job().code = 201
        return []

    async def empty_is_nothing(job: RunningJob, call_next: CallNext) -> Any:
        value = await call_next()
        seen.append(job.code)
        if not value:
            job.code = 444
        return value

    seen: list[int | None] = []
    async with WorkerPool(1, middleware=[empty_is_nothing]) as pool:
        result = await pool.submit_wait(Job(task))
    assert seen == [201]
    assert (result.status, result.code, result.data) == (Status.SUCCEEDED, 444, [])


async def test_middleware_code_on_error(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware that sets 400 and re-raises the task's error ends FAILED with code 400 and that error."""
    error = ValueError("bad input")

    async def classify(job: RunningJob, call_next: CallNext) -> Any:
        try:
            return await call_next()
        except ValueError:
            job.code = Code.BAD_REQUEST
            raise

    async with WorkerPool(1, middleware=[classify]) as pool:
        result = await pool.submit_wait(Job(raiser(error)))
    assert (result.status, result.code) == (Status.FAILED, 400)
    assert result.error is error


async def test_code_from_a_failed_attempt_does_not_carry_over(autojump_clock: trio.testing.MockClock) -> None:
    """Each attempt starts with no code: a 444 set by middleware on failed attempt 1 is gone on attempt 2."""
    seen: list[int | None] = []

    async def mark(job: RunningJob, call_next: CallNext) -> Any:
        seen.append(job.code)
        if job.attempt == 1:
            job.code = 444
            raise ValueError("first")
        return await call_next()

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(0, "ok"), retry=1, backoff=Backoff.none(), middleware=[mark]))
    assert seen == [None, None]
    assert (result.status, result.code, result.attempts, result.data) == (Status.SUCCEEDED, 200, 2, "ok")


# -- errors from middleware ------------------------------------------------------------


async def test_middleware_error_fails_the_job_not_the_pool(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware raising ends that job FAILED with its error and code 500; the pool runs the next jobs."""
    error = RuntimeError("middleware broke")
    ran: list[str] = []

    async def broken(job: RunningJob, call_next: CallNext) -> Any:
        raise error

    async def task(options: wpxt.Options) -> str:
        ran.append(wpxt.current_job().name)
        await trio.sleep(1)
        return "done"

    async with WorkerPool(1) as pool:
        failed = pool.submit(Job(task, name="broken", middleware=[broken]))
        after = pool.submit(Job(task, name="after"))
        also = pool.submit(Job(task, name="also"))
    result = result_of(failed)
    assert (result.status, result.code, result.attempts) == (Status.FAILED, 500, 1)
    assert result.error is error
    with pytest.raises(RuntimeError, match="middleware broke"):
        result.unwrap()
    assert ran == ["after", "also"]
    assert [(result_of(h).status, result_of(h).finished_at) for h in (after, also)] == [
        (Status.SUCCEEDED, 1.0),
        (Status.SUCCEEDED, 2.0),
    ]


async def test_pool_middleware_error_after_the_task(autojump_clock: trio.testing.MockClock) -> None:
    """A pool middleware raising after the task returned fails every job, and the pool still drains and stops."""

    async def sour(job: RunningJob, call_next: CallNext) -> Any:
        await call_next()
        raise LookupError(job.name)

    async with WorkerPool(2, middleware=[sour]) as pool:
        handles = [pool.submit(Job(sleeper(1), name=f"j{i}")) for i in range(4)]
    results = [result_of(h) for h in handles]
    assert [(r.status, r.code, str(r.error)) for r in results] == [
        (Status.FAILED, 500, "j0"),
        (Status.FAILED, 500, "j1"),
        (Status.FAILED, 500, "j2"),
        (Status.FAILED, 500, "j3"),
    ]
    assert all(isinstance(r.error, LookupError) for r in results)
    assert [r.finished_at for r in results] == [1.0, 1.0, 2.0, 2.0]
    assert pool.statistics().failed == 4


async def test_middleware_error_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware error is retried per the job's retry: failing twice then passing takes 3 attempts."""
    calls: list[tuple[int, float]] = []

    async def flaky(job: RunningJob, call_next: CallNext) -> Any:
        calls.append((job.attempt, trio.current_time()))
        if job.attempt < 3:
            raise ConnectionError(job.attempt)
        return await call_next()

    backoff = Backoff(initial=1, multiplier=2, jitter=0)
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(0.5, "ok"), retry=5, backoff=backoff, middleware=[flaky]))
    assert calls == [(1, 0.0), (2, 1.0), (3, 3.0)]
    assert (result.status, result.data, result.attempts, result.duration) == (Status.SUCCEEDED, "ok", 3, 3.5)


async def test_middleware_error_exhausts_retries(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware that always raises uses every attempt, and the last attempt's error is the Result's."""
    errors: list[ValueError] = []

    async def always(job: RunningJob, call_next: CallNext) -> Any:
        errors.append(ValueError(job.attempt))
        raise errors[-1]

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(0), retry=2, backoff=Backoff.none(), middleware=[always]))
    assert (result.status, result.code, result.attempts) == (Status.FAILED, 500, 3)
    assert len(errors) == 3
    assert result.error is errors[-1]


async def test_middleware_error_not_in_retry_on_stops_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware error the job's retry_on does not name ends the job on its first attempt."""

    async def broken(job: RunningJob, call_next: CallNext) -> Any:
        raise KeyError("not retryable")

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(0), retry=5, retry_on=ConnectionError, middleware=[broken]))
    assert (result.status, result.attempts) == (Status.FAILED, 1)
    assert isinstance(result.error, KeyError)


# -- once per attempt ------------------------------------------------------------------


async def test_middleware_runs_once_per_attempt(autojump_clock: trio.testing.MockClock) -> None:
    """With retry=2 and a task that always fails, each middleware runs 3 times, seeing attempts 1, 2, 3."""
    seen: list[tuple[str, int]] = []

    def counting(name: str) -> Middleware:
        async def count(job: RunningJob, call_next: CallNext) -> Any:
            seen.append((name, job.attempt))
            return await call_next()

        return count

    async with WorkerPool(1, middleware=[counting("pool")]) as pool:
        result = await pool.submit_wait(
            Job(raiser(OSError("down")), retry=2, backoff=Backoff.none(), middleware=[counting("job")])
        )
    assert seen == [("pool", 1), ("job", 1), ("pool", 2), ("job", 2), ("pool", 3), ("job", 3)]
    assert (result.status, result.attempts) == (Status.FAILED, 3)
    assert isinstance(result.error, OSError)


async def test_same_context_across_attempts(autojump_clock: trio.testing.MockClock) -> None:
    """Every attempt's middleware gets the same RunningJob, so values it stored earlier are there later."""
    contexts: list[RunningJob] = []

    async def count(job: RunningJob, call_next: CallNext) -> Any:
        contexts.append(job)
        job.set("runs", job.get("runs", 0) + 1)
        if job.get("runs") < 3:
            raise ValueError("again")
        return job.get("runs")

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(0), retry=5, backoff=Backoff.none(), middleware=[count]))
    assert result.data == 3
    assert len(contexts) == 3
    assert all(context is contexts[0] for context in contexts)


# -- time ------------------------------------------------------------------------------


async def test_timing_an_attempt(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware timing call_next() measures each attempt exactly, and Result.duration spans both and the wait."""
    timings: list[tuple[int, float, float]] = []

    async def timed(job: RunningJob, call_next: CallNext) -> Any:
        started = trio.current_time()
        try:
            return await call_next()
        finally:
            timings.append((job.attempt, started, trio.current_time() - started))

    async def task(options: wpxt.Options) -> str:
        await trio.sleep(1.5)
        if wpxt.current_job().attempt == 1:
            raise ValueError("again")
        return "ok"

    backoff = Backoff(initial=1, multiplier=1, jitter=0)
    async with WorkerPool(1, middleware=[timed]) as pool:
        result = await pool.submit_wait(Job(task, retry=1, backoff=backoff))
    assert timings == [(1, 0.0, 1.5), (2, 2.5, 1.5)]
    assert (result.status, result.started_at, result.finished_at, result.duration) == (
        Status.SUCCEEDED,
        0.0,
        4.0,
        4.0,
    )
    assert trio.current_time() == 4.0


async def test_middleware_time_counts_in_duration(autojump_clock: trio.testing.MockClock) -> None:
    """Time a middleware spends around the task is part of the attempt: Result.duration includes it."""

    async def slow_setup(job: RunningJob, call_next: CallNext) -> Any:
        await trio.sleep(0.5)
        value = await call_next()
        await trio.sleep(0.25)
        return value

    async with WorkerPool(1, middleware=[slow_setup]) as pool:
        result = await pool.submit_wait(Job(sleeper(1)))
    assert (result.duration, result.finished_at) == (1.75, 1.75)


async def test_job_timeout_covers_middleware(autojump_clock: trio.testing.MockClock) -> None:
    """The job's timeout includes middleware time: one that sleeps past it ends the job TIMED_OUT at the deadline."""
    ran: list[str] = []

    async def stall(job: RunningJob, call_next: CallNext) -> Any:
        await trio.sleep(3)
        return await call_next()

    async def task(options: wpxt.Options) -> None:
        ran.append("task")

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(task, timeout=2, middleware=[stall]))
    assert (result.status, result.code, result.finished_at) == (Status.TIMED_OUT, 408, 2.0)
    assert isinstance(result.error, JobTimeoutError)
    assert ran == []


# -- cancellation is never swallowed ---------------------------------------------------


async def test_cancelled_job_is_not_swallowed(autojump_clock: trio.testing.MockClock) -> None:
    """A middleware catching Exception does not catch the cancellation: handle.cancel() ends the job CANCELLED."""
    async with WorkerPool(1, middleware=[swallow_errors]) as pool:
        handle = pool.submit(Job(sleeper(10)))
        await trio.sleep(1)
        handle.cancel()
        result = await handle.wait()
    assert (result.status, result.code, result.finished_at) == (Status.CANCELLED, 499, 1.0)
    assert isinstance(result.error, JobCancelledError)
    assert result.data is None


async def test_outer_cancellation_is_not_swallowed(autojump_clock: trio.testing.MockClock) -> None:
    """A move_on_after around the pool's block cancels a job inside error-swallowing middleware at t=1."""
    handles: list[wpxt.JobHandle[Any]] = []
    with trio.move_on_after(1) as scope:
        async with WorkerPool(1, middleware=[swallow_errors]) as pool:
            handles.append(pool.submit(Job(sleeper(10))))
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0
    assert [(result_of(h).status, result_of(h).finished_at) for h in handles] == [(Status.CANCELLED, 1.0)]


async def test_keyboard_interrupt_is_not_swallowed(autojump_clock: trio.testing.MockClock) -> None:
    """A task's KeyboardInterrupt passes through middleware catching Exception and leaves the pool's block as is."""
    interrupt = KeyboardInterrupt()
    handles: list[wpxt.JobHandle[Any]] = []

    async def run() -> None:
        async with WorkerPool(1, middleware=[swallow_errors]) as pool:
            handles.append(pool.submit(Job(raiser(interrupt, after=1))))

    with pytest.raises(KeyboardInterrupt) as info:
        await run()
    assert info.value is interrupt
    assert trio.current_time() == 1.0
    assert (result_of(handles[0]).status, result_of(handles[0]).error) == (Status.FAILED, interrupt)


# -- summary_log -----------------------------------------------------------------------

SUMMARY_FIELDS = ("job_name", "code", "duration", "attempt", "job_id")


def summary_records(caplog: pytest.LogCaptureFixture, logger: str = "workerpoolxt") -> list[logging.LogRecord]:
    """The records caplog captured from ``logger``."""
    return [record for record in caplog.records if record.name == logger]


def lines(records: list[logging.LogRecord]) -> list[tuple[int, str]]:
    """Each record's level and message."""
    return [(record.levelno, record.getMessage()) for record in records]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured attributes summary_log puts on a record."""
    return {name: record.__dict__[name] for name in SUMMARY_FIELDS}


async def test_summary_log_success(autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """A success logs one INFO line on "workerpoolxt": name, 200, latency, attempt and job_id; the value is kept."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")
    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        pool.submit(Job(sleeper(0.25, "first")))
        result = await pool.submit_wait(Job(sleeper(1.5, "value"), name="fetch"))
    assert result.data == "value"
    records = summary_records(caplog)
    assert lines(records) == [
        (logging.INFO, "job 'sleep_then_return' 200 in 0.250s, attempt 1, job_id 0"),
        (logging.INFO, "job 'fetch' 200 in 1.500s, attempt 1, job_id 1"),
    ]
    assert fields(records[1]) == {"job_name": "fetch", "code": 200, "duration": 1.5, "attempt": 1, "job_id": 1}


async def test_summary_log_failure(autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """A failed attempt logs a WARNING with 500 and the error, and the error still fails the job."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")
    error = ValueError("boom")
    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        result = await pool.submit_wait(Job(raiser(error, after=0.5), name="broken"))
    assert (result.status, result.code) == (Status.FAILED, 500)
    assert result.error is error
    records = summary_records(caplog)
    assert lines(records) == [(logging.WARNING, "job 'broken' 500 in 0.500s, attempt 1, job_id 0: ValueError: boom")]
    assert fields(records[0]) == {"job_name": "broken", "code": 500, "duration": 0.5, "attempt": 1, "job_id": 0}


async def test_summary_log_one_line_per_attempt(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A job that fails twice, then succeeds, logs three lines with attempts 1, 2, 3."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")

    async def flaky(options: wpxt.Options) -> str:
        await trio.sleep(1)
        if wpxt.current_job().attempt < 3:
            raise ConnectionError("reset")
        return "ok"

    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        await pool.submit_wait(Job(flaky, retry=2, backoff=Backoff.none()))
    records = summary_records(caplog)
    assert lines(records) == [
        (logging.WARNING, "job 'flaky' 500 in 1.000s, attempt 1, job_id 0: ConnectionError: reset"),
        (logging.WARNING, "job 'flaky' 500 in 1.000s, attempt 2, job_id 0: ConnectionError: reset"),
        (logging.INFO, "job 'flaky' 200 in 1.000s, attempt 3, job_id 0"),
    ]
    assert [record.__dict__["attempt"] for record in records] == [1, 2, 3]


async def test_summary_log_codes_set_by_the_task(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A task's own code is logged: 201 and 444 (a success) at INFO, 400 at WARNING."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")

    def answering(code: int) -> Task:
        async def answer(options: wpxt.Options) -> None:
            wpxt.current_job().code = code

        return answer

    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        for code in (201, 444, 400):
            await pool.submit_wait(Job(answering(code), name=str(code)))
    assert lines(summary_records(caplog)) == [
        (logging.INFO, "job '201' 201 in 0.000s, attempt 1, job_id 0"),
        (logging.INFO, "job '444' 444 in 0.000s, attempt 1, job_id 1"),
        (logging.WARNING, "job '400' 400 in 0.000s, attempt 1, job_id 2"),
    ]


async def test_summary_log_job_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An attempt cut by the job's timeout logs a WARNING with 408 at the deadline."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")
    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        result = await pool.submit_wait(Job(sleeper(10), name="slow", timeout=2))
    assert (result.status, result.code) == (Status.TIMED_OUT, 408)
    records = summary_records(caplog)
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage().startswith("job 'slow' 408 in 2.000s, attempt 1, job_id 0: Cancelled")
    assert fields(records[0]) == {"job_name": "slow", "code": 408, "duration": 2.0, "attempt": 1, "job_id": 0}


async def test_summary_log_attempt_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An attempt outliving the job's attempt_timeout logs 408 with the JobTimeoutError, once per attempt."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")
    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        result = await pool.submit_wait(
            Job(sleeper(10), name="slow", attempt_timeout=1.5, retry=1, backoff=Backoff.none())
        )
    assert (result.status, result.code, result.attempts) == (Status.TIMED_OUT, 408, 2)
    assert lines(summary_records(caplog)) == [
        (logging.WARNING, "job 'slow' 408 in 1.500s, attempt 1, job_id 0: JobTimeoutError: job 'slow' timed out"),
        (logging.WARNING, "job 'slow' 408 in 1.500s, attempt 2, job_id 0: JobTimeoutError: job 'slow' timed out"),
    ]


async def test_summary_log_cancelled(autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """A job cancelled through its handle logs a WARNING with 499 at the moment of cancelling."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")
    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        handle = pool.submit(Job(sleeper(10), name="withdrawn"))
        await trio.sleep(1.25)
        handle.cancel()
        result = await handle.wait()
    assert (result.status, result.code) == (Status.CANCELLED, 499)
    records = summary_records(caplog)
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage().startswith("job 'withdrawn' 499 in 1.250s, attempt 1, job_id 0: Cancelled")
    assert fields(records[0]) == {"job_name": "withdrawn", "code": 499, "duration": 1.25, "attempt": 1, "job_id": 0}


async def test_summary_log_code_matches_result_when_time_runs_out(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A code the task set before a timeout or a cancellation is not logged: the line says 408 or 499, as the Result."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")

    async def claims_nothing_to_do(options: wpxt.Options) -> None:
        wpxt.current_job().code = Code.NOTHING_TO_DO
        await trio.sleep(10)

    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        attempt_cut = await pool.submit_wait(Job(claims_nothing_to_do, name="attempt", attempt_timeout=1))
        job_cut = await pool.submit_wait(Job(claims_nothing_to_do, name="job", timeout=1))
        handle = pool.submit(Job(claims_nothing_to_do, name="cancel"))
        await trio.sleep(1)
        handle.cancel()
        cancelled = await handle.wait()
    assert [r.code for r in (attempt_cut, job_cut, cancelled)] == [408, 408, 499]
    assert [(record.__dict__["job_name"], record.__dict__["code"]) for record in summary_records(caplog)] == [
        ("attempt", 408),
        ("job", 408),
        ("cancel", 499),
    ]


async def test_summary_log_without_successes(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """log_successes=False drops the lines of successful attempts, 444 included, and keeps failures."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")

    async def idle(options: wpxt.Options) -> None:
        wpxt.current_job().code = Code.NOTHING_TO_DO

    async with WorkerPool(1, middleware=[summary_log(log_successes=False)]) as pool:
        ok = await pool.submit_wait(Job(sleeper(1, "ok"), name="ok"))
        nothing = await pool.submit_wait(Job(idle, name="idle"))
        await pool.submit_wait(Job(raiser(ValueError("boom")), name="bad"))
    assert (ok.status, ok.data) == (Status.SUCCEEDED, "ok")
    assert (nothing.status, nothing.code) == (Status.SUCCEEDED, 444)
    assert lines(summary_records(caplog)) == [
        (logging.WARNING, "job 'bad' 500 in 0.000s, attempt 1, job_id 2: ValueError: boom"),
    ]


async def test_summary_log_without_nothing_to_do(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """log_nothing_to_do=False drops the 444 lines only: 200, 400 and 500 are still logged."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")

    def answering(code: int) -> Task:
        async def answer(options: wpxt.Options) -> None:
            wpxt.current_job().code = code

        return answer

    async with WorkerPool(1, middleware=[summary_log(log_nothing_to_do=False)]) as pool:
        await pool.submit_wait(Job(sleeper(0), name="ok"))
        await pool.submit_wait(Job(answering(444), name="idle"))
        await pool.submit_wait(Job(answering(400), name="rejected"))
        await pool.submit_wait(Job(raiser(ValueError("boom")), name="bad"))
    assert [record.__dict__["code"] for record in summary_records(caplog)] == [200, 400, 500]
    assert [record.__dict__["job_name"] for record in summary_records(caplog)] == ["ok", "rejected", "bad"]


async def test_summary_log_custom_logger(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With a logger given, lines go to it and not to "workerpoolxt"."""
    custom = logging.getLogger("tests.middleware.custom")
    caplog.set_level(logging.INFO, logger="tests.middleware.custom")
    caplog.set_level(logging.INFO, logger="workerpoolxt")
    async with WorkerPool(1, middleware=[summary_log(custom)]) as pool:
        await pool.submit_wait(Job(sleeper(0.5), name="mine"))
    assert summary_records(caplog) == []
    assert lines(summary_records(caplog, "tests.middleware.custom")) == [
        (logging.INFO, "job 'mine' 200 in 0.500s, attempt 1, job_id 0"),
    ]


async def test_summary_log_respects_logger_level(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A logger set to WARNING gets the failure lines and none of the INFO success lines."""
    caplog.set_level(logging.WARNING, logger="workerpoolxt")
    async with WorkerPool(1, middleware=[summary_log()]) as pool:
        await pool.submit_wait(Job(sleeper(0), name="ok"))
        await pool.submit_wait(Job(raiser(ValueError("boom")), name="bad"))
    assert [record.__dict__["job_name"] for record in summary_records(caplog)] == ["bad"]


async def test_summary_log_as_job_middleware(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """summary_log in a job's list times what is inside it: the pool's middleware time is not counted."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")

    async def slow_outer(job: RunningJob, call_next: CallNext) -> Any:
        await trio.sleep(1)
        return await call_next()

    async with WorkerPool(1, middleware=[slow_outer]) as pool:
        result = await pool.submit_wait(Job(sleeper(0.5), name="inner", middleware=[summary_log()]))
    assert result.duration == 1.5
    assert lines(summary_records(caplog)) == [(logging.INFO, "job 'inner' 200 in 0.500s, attempt 1, job_id 0")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"logger": "workerpoolxt"}, "`logger` must be a logging.Logger or None, not str"),
        ({"logger": logging.LoggerAdapter(logging.getLogger("x"))}, "`logger` must be a logging.Logger"),
        ({"log_successes": 1}, "`log_successes` must be a bool, not int"),
        ({"log_nothing_to_do": None}, "`log_nothing_to_do` must be a bool, not NoneType"),
    ],
)
def test_summary_log_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    """summary_log() rejects a logger that is not a Logger and flags that are not bools, naming the parameter."""
    with pytest.raises(TypeError, match=re.escape(message)):
        summary_log(**kwargs)


# -- attempt_timeout -------------------------------------------------------------------


@pytest.mark.parametrize("bound", [1.5, datetime.timedelta(seconds=1.5)])
async def test_attempt_timeout_fixed_bound(autojump_clock: trio.testing.MockClock, bound: Any) -> None:
    """A fixed bound fails each slow attempt with JobTimeoutError at exactly 1.5 s, retried until TIMED_OUT."""
    failures: list[tuple[int, float, float]] = []

    async def watch(job: RunningJob, call_next: CallNext) -> Any:
        try:
            return await call_next()
        except JobTimeoutError as error:
            failures.append((job.attempt, trio.current_time(), error.deadline))
            raise

    async with WorkerPool(1, middleware=[watch]) as pool:
        result = await pool.submit_wait(
            Job(sleeper(10), retry=2, backoff=Backoff.none(), middleware=[attempt_timeout(bound)])
        )
    assert failures == [(1, 1.5, 1.5), (2, 3.0, 3.0), (3, 4.5, 4.5)]
    assert (result.status, result.code, result.attempts, result.finished_at) == (Status.TIMED_OUT, 408, 3, 4.5)
    assert isinstance(result.error, JobTimeoutError)
    assert result.error.deadline == 4.5


async def test_attempt_timeout_retry_succeeds(autojump_clock: trio.testing.MockClock) -> None:
    """A fixed bound cuts a slow first attempt, and a fast second attempt succeeds."""

    async def slow_then_fast(options: wpxt.Options) -> str:
        await trio.sleep(5 if wpxt.current_job().attempt == 1 else 0.5)
        return "ok"

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(
            Job(slow_then_fast, retry=1, backoff=Backoff.none(), middleware=[attempt_timeout(1)])
        )
    assert (result.status, result.data, result.attempts, result.duration) == (Status.SUCCEEDED, "ok", 2, 1.5)


async def test_attempt_timeout_callable_longer_on_retry(autojump_clock: trio.testing.MockClock) -> None:
    """A callable bound of 1 s on attempt 1 and 3 s after lets the 2 s task succeed on attempt 2, at t=3."""
    asked: list[int] = []

    def per_attempt(job: RunningJob) -> float:
        asked.append(job.attempt)
        return 1 if job.attempt == 1 else 3

    async with WorkerPool(1, middleware=[attempt_timeout(per_attempt)]) as pool:
        result = await pool.submit_wait(Job(sleeper(2, "done"), retry=3, backoff=Backoff.none()))
    assert asked == [1, 2]
    assert (result.status, result.data, result.attempts) == (Status.SUCCEEDED, "done", 2)
    assert (result.duration, result.finished_at) == (3.0, 3.0)


async def test_attempt_timeout_overrides_a_shorter_job_bound(autojump_clock: trio.testing.MockClock) -> None:
    """attempt_timeout(5) replaces the job's own attempt_timeout=1, so a 2 s task succeeds."""
    async with WorkerPool(1, middleware=[attempt_timeout(5)]) as pool:
        result = await pool.submit_wait(Job(sleeper(2, "ok"), attempt_timeout=1))
    assert (result.status, result.data, result.attempts, result.duration) == (Status.SUCCEEDED, "ok", 1, 2.0)


async def test_attempt_timeout_overrides_a_longer_job_bound(autojump_clock: trio.testing.MockClock) -> None:
    """attempt_timeout(1) replaces the job's own attempt_timeout=10, so a 2 s task times out at 1 s."""
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(2), attempt_timeout=10, middleware=[attempt_timeout(1)]))
    assert (result.status, result.code, result.finished_at) == (Status.TIMED_OUT, 408, 1.0)
    assert isinstance(result.error, JobTimeoutError)


async def test_attempt_timeout_none_lifts_the_bound(autojump_clock: trio.testing.MockClock) -> None:
    """A callable returning None lifts the job's own attempt_timeout, so a 5 s task runs to the end."""
    async with WorkerPool(1, middleware=[attempt_timeout(lambda job: None)]) as pool:
        result = await pool.submit_wait(Job(sleeper(5, "ok"), attempt_timeout=1))
    assert (result.status, result.data, result.duration) == (Status.SUCCEEDED, "ok", 5.0)


async def test_attempt_timeout_starts_from_the_jobs_each_attempt(autojump_clock: trio.testing.MockClock) -> None:
    """Each attempt's middleware first sees the job's own attempt_timeout, whatever an earlier attempt set."""
    seen: list[tuple[int, float | None]] = []

    def look_then_choose(job: RunningJob) -> float:
        seen.append((job.attempt, job.attempt_timeout))
        return 0.5

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(
            Job(
                sleeper(10),
                attempt_timeout=4,
                retry=2,
                backoff=Backoff.none(),
                middleware=[attempt_timeout(look_then_choose)],
            )
        )
        plain = await pool.submit_wait(Job(sleeper(10), middleware=[attempt_timeout(look_then_choose)]))
    assert seen == [(1, 4.0), (2, 4.0), (3, 4.0), (1, None)]
    assert (result.status, result.finished_at) == (Status.TIMED_OUT, 1.5)
    assert (plain.status, plain.duration) == (Status.TIMED_OUT, 0.5)


async def test_attempt_timeout_does_not_extend_the_job_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """A bound longer than the job's overall timeout does not extend it: the job still ends at its deadline."""
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(sleeper(10), timeout=2, middleware=[attempt_timeout(5)]))
    assert (result.status, result.code, result.finished_at) == (Status.TIMED_OUT, 408, 2.0)


async def test_attempt_timeout_callable_bad_value_fails_the_attempt(autojump_clock: trio.testing.MockClock) -> None:
    """A callable returning a non-positive bound fails that attempt with ValueError naming `attempt_timeout`."""
    ran: list[str] = []

    async def task(options: wpxt.Options) -> None:
        ran.append("task")

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(task, middleware=[attempt_timeout(lambda job: 0)]))
    assert result.status is Status.FAILED
    assert isinstance(result.error, ValueError)
    assert "`attempt_timeout`" in str(result.error)
    assert ran == []


@pytest.mark.parametrize("seconds", [-1, 0, float("inf"), datetime.timedelta(0)])
def test_attempt_timeout_bad_seconds(seconds: Any) -> None:
    """attempt_timeout() rejects a bound that is not positive and finite with ValueError naming `seconds`."""
    with pytest.raises(ValueError, match="`seconds` must be positive and finite"):
        attempt_timeout(seconds)


@pytest.mark.parametrize("seconds", ["1", None, True])
def test_attempt_timeout_bad_type(seconds: Any) -> None:
    """attempt_timeout() rejects a bound that is neither a number, a timedelta nor a callable with TypeError."""
    with pytest.raises(TypeError, match="`seconds` must be a number of seconds or a timedelta"):
        attempt_timeout(seconds)


# -- bad input -------------------------------------------------------------------------


async def coroutine_task(options: wpxt.Options) -> None:
    """A task for building jobs."""


BAD_LISTS: list[tuple[Any, str]] = [
    (42, "`middleware`"),
    (passthrough, "`middleware` must be a list of middleware, not a single function"),
    ("passthrough", "`middleware` must be a list of middleware, not a single str"),
    ([42], "`middleware[0]` must be an async callable, not int"),
    ([passthrough, None], "`middleware[1]` must be an async callable, not NoneType"),
    ([not_async], "`middleware[0]` must be an `async def` callable"),
    ([passthrough, lambda job, call_next: call_next()], "`middleware[1]` must be an `async def` callable"),
]


@pytest.mark.parametrize(("middleware", "message"), BAD_LISTS)
def test_pool_rejects_bad_middleware(middleware: Any, message: str) -> None:
    """WorkerPool(middleware=...) rejects a non-list or an item that is not async callable, naming the parameter."""
    with pytest.raises(TypeError, match=re.escape(message)):
        WorkerPool(1, middleware=middleware)


@pytest.mark.parametrize(("middleware", "message"), BAD_LISTS)
def test_job_rejects_bad_middleware(middleware: Any, message: str) -> None:
    """Job(middleware=...) rejects a non-list or an item that is not async callable, naming the parameter."""
    with pytest.raises(TypeError, match=re.escape(message)):
        Job(coroutine_task, middleware=middleware)


def test_empty_and_none_are_no_middleware() -> None:
    """None and an empty list both mean no middleware, and a Job stores its list as a tuple."""
    assert Job(coroutine_task).middleware == ()
    assert Job(coroutine_task, middleware=[]).middleware == ()
    assert Job(coroutine_task, middleware=[passthrough]).middleware == (passthrough,)
    WorkerPool(1, middleware=None)
    WorkerPool(1, middleware=[])


# -- plain tasks, in their threads -----------------------------------------------------


async def test_thread_task_goes_through_middleware() -> None:
    """A plain task runs in its thread inside the pool's and the job's middleware, and sees their values."""
    events: list[str] = []

    async def stamp(job: RunningJob, call_next: CallNext) -> Any:
        job.set("stamp", "from middleware")
        return await call_next()

    def plain(options: wpxt.Options) -> str:
        events.append("thread")
        return str(wpxt.current_job().get("stamp"))

    with trio.fail_after(SAFETY):
        async with WorkerPool(1, middleware=[recorder("pool", events)]) as pool:
            result = await pool.submit_wait(Job(plain, middleware=[recorder("job", events), stamp]))
    assert events == ["enter pool", "enter job", "thread", "exit job", "exit pool"]
    assert result.status is Status.SUCCEEDED
    assert result.data == "pool(job(from middleware))"


# -- a call_next kept past its attempt --------------------------------------------------


@pytest.mark.parametrize("when", ["after its job", "between its job's attempts"])
async def test_a_kept_call_next_raises_once_its_attempt_is_over(
    when: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A call_next kept and called after its attempt ended raises RuntimeError and runs no task at all."""
    kept: list[CallNext] = []
    runs: list[tuple[str, float]] = []
    errors: list[BaseException] = []

    async def keep(job: RunningJob, call_next: CallNext) -> Any:
        if not kept:
            kept.append(call_next)
        return await call_next()

    def task(name: str, seconds: float, fail_first: bool = False) -> Task:
        async def run(options: wpxt.Options) -> str:
            runs.append((name, trio.current_time()))
            await trio.sleep(seconds)
            if fail_first and len(runs) == 1:
                raise ValueError("first attempt fails")
            return name

        return run

    async def call_stale_at(time: float) -> None:
        await trio.sleep_until(time)
        try:
            await kept[0]()
        except RuntimeError as error:
            errors.append(error)

    async with WorkerPool(1, middleware=[keep]) as pool, trio.open_nursery() as nursery:
        if when == "after its job":
            first = pool.submit(Job(task("first", 1)))
            second = pool.submit(Job(task("second", 10)))
        else:
            first = second = pool.submit(
                Job(task("retried", 1, fail_first=True), retry=1, backoff=Backoff(initial=5, jitter=0))
            )
        nursery.start_soon(call_stale_at, 3.0)
    assert [str(error) for error in errors] == ["call_next() was called after its attempt had ended"]
    expected = [("first", 0.0), ("second", 1.0)] if when == "after its job" else [("retried", 0.0), ("retried", 6.0)]
    assert runs == expected
    assert result_of(first).ok
    assert result_of(second).ok
