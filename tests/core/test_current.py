"""Tests for ``current_job()``: the running job's view of itself, its key/value store and its status code.

Async tests run under the autojump clock with exact virtual times. Tests of plain
(sync) tasks use the real clock: their threads return at once, so nothing waits.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

import workerpoolxt as wpxt
from workerpoolxt import Backoff, Code, Context, Job, Result, RunningJob, Status, WorkerPool

SAFETY = 5.0
"""Seconds before a test running plain tasks on the real clock fails rather than hangs."""

Task = Callable[[wpxt.Options], Awaitable[Any]]


def result_of(handle: wpxt.JobHandle[Any]) -> Result[Any]:
    """The handle's Result, which must be there."""
    assert handle.result is not None, f"{handle!r} has no result"
    return handle.result


def sleeper(seconds: float) -> Task:
    """A task that sleeps ``seconds`` on the trio clock."""

    async def sleep(options: wpxt.Options) -> None:
        await trio.sleep(seconds)

    return sleep


# -- outside a job ---------------------------------------------------------------------


def test_outside_trio_is_runtime_error() -> None:
    """current_job() with no trio run at all raises RuntimeError."""
    with pytest.raises(RuntimeError, match="inside a running workerpoolxt job"):
        wpxt.current_job()


async def test_outside_a_job_is_runtime_error(autojump_clock: trio.testing.MockClock) -> None:
    """current_job() in a trio task that is not a job, even inside a pool's block, raises RuntimeError."""
    with pytest.raises(RuntimeError, match="inside a running workerpoolxt job"):
        wpxt.current_job()
    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(sleeper(1)))
        await trio.sleep(0.5)
        assert not handle.done
        with pytest.raises(RuntimeError, match="inside a running workerpoolxt job"):
            wpxt.current_job()
    assert result_of(handle).status is Status.SUCCEEDED


async def test_task_outliving_its_job_does_not_see_the_next_job(autojump_clock: trio.testing.MockClock) -> None:
    """A task a job started in an outer nursery, still running after the job ended, never gets another job's context."""
    seen: list[str] = []

    async def late_reader() -> None:
        await trio.sleep(1.5)  # "spawner" ended at 0; its worker now runs "second" until 3
        try:
            seen.append(wpxt.current_job().name)
        except RuntimeError:
            seen.append("no job")

    async with trio.open_nursery() as outer:

        async def spawner(options: wpxt.Options) -> None:
            outer.start_soon(late_reader)

        async with WorkerPool(1) as pool:
            pool.submit(Job(spawner, name="spawner"))
            second = pool.submit(Job(sleeper(3), name="second"))
    assert result_of(second).finished_at == 3.0
    # The job that started it is over, so RuntimeError; at worst its own (ended) job, never "second".
    assert seen in (["no job"], ["spawner"])


# -- what the job sees -------------------------------------------------------------------


async def test_name_job_id_args_and_options(autojump_clock: trio.testing.MockClock) -> None:
    """Inside a task, current_job() gives the job's name, job_id, args and options."""
    seen: dict[int, tuple[str, int, dict[str, Any], dict[str, Any]]] = {}

    async def look(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen[job.job_id] = (job.name, job.job_id, dict(job.args), dict(job.options))

    async with WorkerPool(2) as pool:
        first = pool.submit(Job(look, name="first", args={"to": "a@b", "n": [1, 2]}, options={"o": 1}))
        second = pool.submit(Job(look, args={"k": None}))
    assert seen == {
        first.job_id: ("first", 0, {"to": "a@b", "n": [1, 2]}, {"o": 1}),
        second.job_id: ("look", 1, {"k": None}, {}),
    }


async def test_args_are_the_jobs_own_read_only_mapping(autojump_clock: trio.testing.MockClock) -> None:
    """current_job().args is the Job's read-only args mapping."""
    job = Job(sleeper(0), args={"a": 1})
    seen: list[Any] = []

    async def look(options: wpxt.Options) -> None:
        seen.append(wpxt.current_job().args)

    async with WorkerPool(1) as pool:
        await pool.submit_wait(Job(look, args={"a": 1}))
        await pool.submit_wait(Job(look))
    assert seen == [job.args, {}]
    with pytest.raises(TypeError):
        seen[0]["a"] = 2


async def test_options_are_the_effective_ones(autojump_clock: trio.testing.MockClock) -> None:
    """current_job().options is the job's options when set, else the pool's, and is what the task received."""
    seen: list[tuple[dict[str, Any], bool]] = []

    async def look(options: wpxt.Options) -> None:
        current = wpxt.current_job().options
        seen.append((dict(current), current is options))

    async with WorkerPool(1, options={"pool": True}) as pool:
        await pool.submit_wait(Job(look))
        await pool.submit_wait(Job(look, options={"job": True}))
        await pool.submit_wait(Job(look, options={}))
    assert seen == [({"pool": True}, True), ({"job": True}, True), ({}, True)]


async def test_attempt_counts_from_one(autojump_clock: trio.testing.MockClock) -> None:
    """current_job().attempt is 1 on the first attempt and 2, 3 on retries."""
    attempts: list[tuple[int, float]] = []

    async def flaky(options: wpxt.Options) -> str:
        attempts.append((wpxt.current_job().attempt, trio.current_time()))
        if len(attempts) < 3:
            raise ValueError(len(attempts))
        return "ok"

    backoff = Backoff(initial=1, multiplier=2, jitter=0)
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(flaky, retry=3, backoff=backoff))
    assert attempts == [(1, 0.0), (2, 1.0), (3, 3.0)]
    assert result.attempts == 3
    assert result.status is Status.SUCCEEDED


async def test_deadline_is_start_plus_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """With a timeout, current_job().deadline is the job's start plus the timeout, exactly."""
    deadlines: list[tuple[str, float]] = []

    async def look(options: wpxt.Options) -> None:
        deadlines.append((wpxt.current_job().name, wpxt.current_job().deadline))
        await trio.sleep(1)

    await trio.sleep(1.5)
    async with WorkerPool(1) as pool:
        pool.submit(Job(look, name="first", timeout=2))
        pool.submit(Job(look, name="queued", timeout=0.75))
    assert deadlines == [("first", 3.5), ("queued", 3.25)]


async def test_deadline_is_inf_without_one(autojump_clock: trio.testing.MockClock) -> None:
    """Without a timeout or a Context deadline, current_job().deadline is math.inf."""
    deadlines: list[float] = []

    async def look(options: wpxt.Options) -> None:
        deadlines.append(wpxt.current_job().deadline)

    async with WorkerPool(1) as pool:
        await pool.submit_wait(Job(look))
        await pool.submit_wait(Job(look, context=Context()))
    assert deadlines == [math.inf, math.inf]


async def test_deadline_from_pool_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """The pool's default timeout sets the deadline of a job that sets none."""
    deadlines: list[float] = []

    async def look(options: wpxt.Options) -> None:
        deadlines.append(wpxt.current_job().deadline)

    await trio.sleep(2)
    async with WorkerPool(1, timeout=4) as pool:
        await pool.submit_wait(Job(look))
        await pool.submit_wait(Job(look, timeout=1))
    assert deadlines == [6.0, 3.0]


async def test_deadline_is_the_earlier_context_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """A Context deadline earlier than start + timeout is the effective deadline; a later one is not."""
    deadlines: list[float] = []

    async def look(options: wpxt.Options) -> None:
        deadlines.append(wpxt.current_job().deadline)

    async with WorkerPool(1) as pool:
        await pool.submit_wait(Job(look, timeout=5, context=Context(deadline=2.0)))
        await pool.submit_wait(Job(look, timeout=5, context=Context(deadline=20.0)))
        await pool.submit_wait(Job(look, context=Context(timeout=1.25)))
    assert deadlines == [2.0, 5.0, 1.25]


async def test_deadline_does_not_change_across_attempts(autojump_clock: trio.testing.MockClock) -> None:
    """Every attempt of a job sees the same deadline: the budget runs from its first start."""
    seen: list[tuple[int, float]] = []

    async def flaky(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen.append((job.attempt, job.deadline))
        if job.attempt < 3:
            await trio.sleep(1)
            raise ValueError("again")

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(flaky, retry=5, timeout=10, backoff=Backoff.none()))
    assert seen == [(1, 10.0), (2, 10.0), (3, 10.0)]
    assert result.status is Status.SUCCEEDED


async def test_works_in_a_child_task(autojump_clock: trio.testing.MockClock) -> None:
    """A task the job starts in its own nursery sees the same RunningJob, args and values."""
    seen: list[tuple[bool, str, int, Any]] = []

    async def parent(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        job.set("from parent", 1)

        async def child() -> None:
            await trio.sleep(1)
            mine = wpxt.current_job()
            seen.append((mine is job, mine.name, mine.job_id, mine.get("from parent")))
            mine.set("from child", 2)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
            nursery.start_soon(child)
        assert job.values == {"from parent": 1, "from child": 2}
        job.code = Code.NOTHING_TO_DO

    async with WorkerPool(2) as pool:
        pool.submit(Job(sleeper(0)))
        handle = pool.submit(Job(parent, name="parent"))
    assert seen == [(True, "parent", 1, 1)] * 2
    assert result_of(handle).status is Status.SUCCEEDED
    assert result_of(handle).code == 444


async def test_same_object_on_repeated_calls(autojump_clock: trio.testing.MockClock) -> None:
    """Repeated current_job() calls within a job, across attempts and awaits, return the same RunningJob."""
    seen: list[RunningJob] = []

    async def flaky(options: wpxt.Options) -> None:
        seen.append(wpxt.current_job())
        await trio.sleep(1)
        seen.append(wpxt.current_job())
        if len(seen) < 4:
            raise ValueError("again")

    async with WorkerPool(1) as pool:
        await pool.submit_wait(Job(flaky, retry=1, backoff=Backoff.none()))
        await pool.submit_wait(Job(flaky))
    assert len(seen) == 6
    assert all(context is seen[0] for context in seen[:4])
    assert seen[4] is seen[5]
    assert seen[4] is not seen[0]
    assert isinstance(seen[0], RunningJob)


async def test_repr(autojump_clock: trio.testing.MockClock) -> None:
    """The repr names the job id, name and attempt."""
    seen: list[str] = []

    async def look(options: wpxt.Options) -> None:
        seen.append(repr(wpxt.current_job()))

    async with WorkerPool(1) as pool:
        await pool.submit_wait(Job(look, name="show me"))
    assert seen == ["<RunningJob 0 'show me' attempt 1>"]


# -- plain tasks, in their threads -----------------------------------------------------


async def test_works_in_a_sync_tasks_thread() -> None:
    """A plain task's thread sees its job: name, id, attempt, deadline, args, options, values and code."""
    seen: list[Any] = []

    def look(options: wpxt.Options) -> str:
        job = wpxt.current_job()
        job.set("thread", threading.get_ident())
        seen.append(
            (
                job.name,
                job.job_id,
                job.attempt,
                job.deadline,
                dict(job.args),
                dict(job.options),
                job is wpxt.current_job(),
                job.get("thread") == threading.get_ident(),
            )
        )
        job.code = Code.NOTHING_TO_DO
        return "done"

    with trio.fail_after(SAFETY):
        async with WorkerPool(1, options={"pool": 1}) as pool:
            result = await pool.submit_wait(Job(look, name="threaded", args={"a": [1]}))
    assert seen == [("threaded", 0, 1, math.inf, {"a": [1]}, {"pool": 1}, True, True)]
    assert result.status is Status.SUCCEEDED
    assert result.code == 444


async def test_sync_task_attempts_and_values_across_retries() -> None:
    """A retried plain task sees attempt 1 then 2, and values it stored on attempt 1."""
    seen: list[tuple[int, Any]] = []

    def flaky(options: wpxt.Options) -> int:
        job = wpxt.current_job()
        seen.append((job.attempt, job.get("count")))
        job.set("count", job.get("count", 0) + 1)
        if job.attempt == 1:
            job.code = Code.BAD_REQUEST
            raise ValueError("again")
        return int(job.get("count"))

    with trio.fail_after(SAFETY):
        async with WorkerPool(1) as pool:
            result = await pool.submit_wait(Job(flaky, retry=1, backoff=Backoff.none()))
    assert seen == [(1, None), (2, 1)]
    assert result.data == 2
    assert result.code == 200


async def test_sync_task_deadline() -> None:
    """A plain task with a timeout sees the deadline as its start plus the timeout."""
    seen: list[float] = []

    def look(options: wpxt.Options) -> None:
        seen.append(wpxt.current_job().deadline)

    with trio.fail_after(SAFETY):
        async with WorkerPool(1) as pool:
            result = await pool.submit_wait(Job(look, timeout=100))
    assert result.started_at is not None
    assert seen == [result.started_at + 100]


# -- values ------------------------------------------------------------------------------


async def test_values_set_get(autojump_clock: trio.testing.MockClock) -> None:
    """set() stores, get() reads with a default, and .values is the same dict."""
    seen: list[Any] = []

    async def store(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen.append(job.get("user"))
        seen.append(job.get("user", "nobody"))
        job.set("user", "ada")
        job.values["role"] = "admin"
        seen.append(job.get("user"))
        seen.append(job.get("role"))
        seen.append(dict(job.values))

    async with WorkerPool(1) as pool:
        await pool.submit_wait(Job(store))
    assert seen == [None, "nobody", "ada", "admin", {"user": "ada", "role": "admin"}]


async def test_values_shared_across_attempts(autojump_clock: trio.testing.MockClock) -> None:
    """Values stored on one attempt are there on the next: a task can count its own attempts."""

    async def counting(options: wpxt.Options) -> int:
        job = wpxt.current_job()
        job.set("count", job.get("count", 0) + 1)
        await trio.sleep(1)
        if job.get("count") < 3:
            raise ValueError("again")
        return int(job.get("count"))

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(counting, retry=5, backoff=Backoff.none()))
    assert result.data == 3
    assert result.attempts == 3
    assert result.finished_at == 3.0


async def test_values_separate_per_job(autojump_clock: trio.testing.MockClock) -> None:
    """Each job starts with empty values, even on the same worker right after another job."""
    seen: list[dict[str, Any]] = []

    async def store(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen.append(dict(job.values))
        job.set("mine", job.job_id)
        await trio.sleep(1)

    async with WorkerPool(1) as pool:
        for _ in range(3):
            pool.submit(Job(store))
    async with WorkerPool(3) as pool:
        for _ in range(3):
            pool.submit(Job(store))
    assert seen == [{}] * 6
    assert trio.current_time() == 4.0


# -- status codes ----------------------------------------------------------------------


def test_code_members() -> None:
    """Code names go-work's codes and they are ints."""
    assert [int(code) for code in Code] == [200, 400, 401, 403, 408, 444, 499, 500, 503]
    assert Code.NOTHING_TO_DO == 444
    assert isinstance(Code.OK, int)


async def test_default_codes_by_outcome(autojump_clock: trio.testing.MockClock) -> None:
    """Without a code from the task: 200 succeeded, 500 failed, 408 timed out, 499 cancelled, 503 abandoned."""

    async def fail(options: wpxt.Options) -> None:
        raise KeyError("x")

    async with WorkerPool(2) as pool:
        succeeded = pool.submit(Job(sleeper(1)))
        failed = pool.submit(Job(fail))
        timed_out = pool.submit(Job(sleeper(10), timeout=2))
        cancelled_running = pool.submit(Job(sleeper(10)))
        cancelled_queued = pool.submit(Job(sleeper(10)))
        blockers = [pool.submit(Job(sleeper(10))) for _ in range(2)]  # keep both workers busy from 2
        abandoned = pool.submit(Job(sleeper(10)))
        await trio.sleep(1.5)
        cancelled_queued.cancel()
        cancelled_running.cancel()
        await trio.sleep(1)
        await pool.stop()
    expected = [
        (succeeded, Status.SUCCEEDED, Code.OK, 200),
        (failed, Status.FAILED, Code.ERROR, 500),
        (timed_out, Status.TIMED_OUT, Code.TIMEOUT, 408),
        (cancelled_running, Status.CANCELLED, Code.CANCELLED, 499),
        (cancelled_queued, Status.CANCELLED, Code.CANCELLED, 499),
        (abandoned, Status.ABANDONED, Code.UNAVAILABLE, 503),
    ]
    for handle, status, code, number in expected:
        result = result_of(handle)
        assert (result.status, result.code) == (status, code)
        assert result.code == number
        assert type(result.code) is Code
    assert result_of(cancelled_running).finished_at == 1.5
    assert result_of(cancelled_running).attempts == 1
    assert result_of(cancelled_queued).attempts == 0
    assert result_of(abandoned).finished_at == 2.5
    assert [result_of(b).finished_at for b in blockers] == [11.5, 12.0]


async def test_default_codes_for_context_outcomes(autojump_clock: trio.testing.MockClock) -> None:
    """A cancelled Context gives 499 and a Context deadline passed while queued gives 408."""
    cancelled = Context()
    cancelled.cancel()
    async with WorkerPool(1) as pool:
        pool.submit(Job(sleeper(2)))
        expired = pool.submit(Job(sleeper(1), context=Context(timeout=1)))
        refused = pool.submit(Job(sleeper(1), context=cancelled))
    assert (result_of(expired).status, result_of(expired).code) == (Status.TIMED_OUT, 408)
    assert (result_of(refused).status, result_of(refused).code) == (Status.CANCELLED, 499)


async def test_nothing_to_do_succeeds_with_444(autojump_clock: trio.testing.MockClock) -> None:
    """A task setting Code.NOTHING_TO_DO and returning ends SUCCEEDED with code 444 and its data."""

    async def idle(options: wpxt.Options) -> str:
        wpxt.current_job().code = Code.NOTHING_TO_DO
        return "nothing"

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(idle))
    assert result.status is Status.SUCCEEDED
    assert result.ok
    assert result.code == 444
    assert result.code == Code.NOTHING_TO_DO
    assert result.data == "nothing"


async def test_code_then_raise_fails_with_that_code(autojump_clock: trio.testing.MockClock) -> None:
    """A task setting 400 and then raising ends FAILED with code 400 and its error."""
    error = ValueError("bad input")

    async def reject(options: wpxt.Options) -> None:
        wpxt.current_job().code = 400
        raise error

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(reject))
    assert result.status is Status.FAILED
    assert result.code == 400
    assert result.error is error


async def test_code_reads_back_and_can_be_cleared(autojump_clock: trio.testing.MockClock) -> None:
    """The code reads None until set, reads back what was set, and None again lets the outcome decide."""
    seen: list[int | None] = []

    async def changeable(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        seen.append(job.code)
        job.code = 401
        seen.append(job.code)
        job.code = None
        seen.append(job.code)

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(changeable))
    assert seen == [None, 401, None]
    assert result.code == 200


@pytest.mark.parametrize("code", [100, 201, 599, Code.FORBIDDEN])
async def test_any_code_from_100_to_599(autojump_clock: trio.testing.MockClock, code: int) -> None:
    """Any int code from 100 to 599 is accepted and carried by the Result."""

    async def answer(options: wpxt.Options) -> None:
        wpxt.current_job().code = code

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(answer))
    assert result.status is Status.SUCCEEDED
    assert result.code == code


async def test_code_reset_for_next_attempt(autojump_clock: trio.testing.MockClock) -> None:
    """A code set on attempt 1 is cleared for attempt 2, which sets none and succeeds: 200."""
    seen: list[int | None] = []

    async def flaky(options: wpxt.Options) -> str:
        job = wpxt.current_job()
        seen.append(job.code)
        if job.attempt == 1:
            job.code = 403
            raise PermissionError("first time")
        return "ok"

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(flaky, retry=1, backoff=Backoff.none()))
    assert seen == [None, None]
    assert result.status is Status.SUCCEEDED
    assert result.attempts == 2
    assert result.code == 200


async def test_failed_last_attempt_without_code_is_500(autojump_clock: trio.testing.MockClock) -> None:
    """A code set on an earlier attempt does not stick to a last attempt that fails without one."""

    async def flaky(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        if job.attempt == 1:
            job.code = 444
        raise ValueError(job.attempt)

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(flaky, retry=1, backoff=Backoff.none()))
    assert result.status is Status.FAILED
    assert result.attempts == 2
    assert result.code == 500


async def test_code_before_timeout_gives_408(autojump_clock: trio.testing.MockClock) -> None:
    """A code set before the job's deadline passed is overridden: TIMED_OUT with 408."""

    async def slow(options: wpxt.Options) -> None:
        wpxt.current_job().code = Code.NOTHING_TO_DO
        await trio.sleep(10)

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(slow, timeout=2))
    assert result.status is Status.TIMED_OUT
    assert result.code == 408
    assert result.finished_at == 2.0


async def test_code_before_attempt_timeout_gives_408(autojump_clock: trio.testing.MockClock) -> None:
    """A last attempt that outlives attempt_timeout after setting a code ends TIMED_OUT with 408."""

    async def slow(options: wpxt.Options) -> None:
        wpxt.current_job().code = 400
        await trio.sleep(10)

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(slow, attempt_timeout=1.5, retry=1, backoff=Backoff.none()))
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 2
    assert result.code == 408
    assert result.finished_at == 3.0


async def test_code_before_backoff_past_deadline_gives_408(autojump_clock: trio.testing.MockClock) -> None:
    """A failing attempt sets a code, then the backoff outlives the deadline: TIMED_OUT with 408."""

    async def fail(options: wpxt.Options) -> None:
        wpxt.current_job().code = 401
        raise ValueError("no")

    backoff = Backoff(initial=5, jitter=0)
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(fail, retry=3, timeout=2, backoff=backoff))
    assert result.status is Status.TIMED_OUT
    assert result.code == 408
    assert result.finished_at == 2.0


async def test_code_before_cancel_gives_499(autojump_clock: trio.testing.MockClock) -> None:
    """A code set before the job is cancelled is overridden: CANCELLED with 499."""

    async def slow(options: wpxt.Options) -> None:
        wpxt.current_job().code = 200
        await trio.sleep(10)

    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(slow))
        await trio.sleep(1)
        handle.cancel()
    assert result_of(handle).status is Status.CANCELLED
    assert result_of(handle).code == 499


async def test_code_before_stop_cancel_running_gives_499(autojump_clock: trio.testing.MockClock) -> None:
    """A code set before stop(cancel_running=True) is overridden: CANCELLED with 499."""

    async def slow(options: wpxt.Options) -> None:
        wpxt.current_job().code = 444
        await trio.sleep(10)

    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(slow))
        await trio.sleep(1)
        await pool.stop(cancel_running=True)
    assert result_of(handle).status is Status.CANCELLED
    assert result_of(handle).code == 499


@pytest.mark.parametrize(
    ("code", "error"),
    [(99, ValueError), (600, ValueError), (0, ValueError), (-200, ValueError), ("200", TypeError), (True, TypeError)],
)
async def test_invalid_code_fails_the_job(
    autojump_clock: trio.testing.MockClock, code: object, error: type[Exception]
) -> None:
    """Setting an invalid code raises inside the task (naming `code`), so the job FAILED with that error and 500."""
    raised: list[BaseException] = []

    async def bad(options: wpxt.Options) -> str:
        try:
            wpxt.current_job().code = code  # type: ignore[assignment]
        except Exception as exc:
            raised.append(exc)
            raise
        return "unreachable"

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(bad))
    assert result.status is Status.FAILED
    assert isinstance(result.error, error)
    assert "`code`" in str(result.error)
    assert raised == [result.error]
    assert result.code == 500
    assert result.data is None


async def test_invalid_code_keeps_previous_code(autojump_clock: trio.testing.MockClock) -> None:
    """A refused code leaves the one set before it in place."""

    async def stubborn(options: wpxt.Options) -> None:
        job = wpxt.current_job()
        job.code = 401
        with pytest.raises(ValueError, match="`code`"):
            job.code = 1000

    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(Job(stubborn))
    assert result.status is Status.SUCCEEDED
    assert result.code == 401


async def test_code_separate_per_job(autojump_clock: trio.testing.MockClock) -> None:
    """A code set by one job does not carry over to the next job on the same worker."""

    async def sets(options: wpxt.Options) -> None:
        wpxt.current_job().code = 444

    async def looks(options: wpxt.Options) -> int | None:
        return wpxt.current_job().code

    async with WorkerPool(1) as pool:
        first = pool.submit(Job(sets))
        second = pool.submit(Job(looks))
    assert result_of(first).code == 444
    assert result_of(second).data is None
    assert result_of(second).code == 200
