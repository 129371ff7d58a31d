"""Tests for flows: ``Step``, ``chain()`` and ``fan_out()``."""

from __future__ import annotations

import datetime
import functools
import math
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from trio.testing import wait_all_tasks_blocked

import workerpoolxt as wpxt
from workerpoolxt import Backoff, JobCancelledError, JobTimeoutError, Status, StepFailedError

NO_WAIT = Backoff.none()
ONE_SECOND = Backoff(initial=1, multiplier=1, jitter=0)
"""A fixed one-second wait between attempts, so retry times are exact."""

SAFETY = 5.0
"""Real seconds before a test on threads fails, and before a held thread gives up on its gate."""

HANG = 1_000.0
"""Virtual seconds after which a test counts as hung; under the autojump clock a deadlock fails at once."""


# -- helpers ---------------------------------------------------------------------------


def text(value: Any) -> str:
    """A string step value; the options that a first step gets count as ""."""
    return "" if isinstance(value, Mapping) else str(value)


class Flaky:
    """An async step that fails ``failures`` times, then returns its value with ``suffix``; it records each attempt."""

    def __init__(
        self,
        failures: float = math.inf,
        *,
        work: float = 0.0,
        suffix: str = "!",
        error: type[Exception] = ValueError,
    ) -> None:
        self.failures = failures
        self.work = work
        self.suffix = suffix
        self.error = error
        self.starts: list[float] = []
        self.values: list[Any] = []
        self.raised: list[Exception] = []

    async def __call__(self, value: Any) -> Any:
        self.starts.append(trio.current_time())
        self.values.append(value)
        if self.work:
            await trio.sleep(self.work)
        if len(self.starts) <= self.failures:
            error = self.error(f"attempt {len(self.starts)}")
            self.raised.append(error)
            raise error
        return f"{text(value)}{self.suffix}"


def appender(log: list[str], key: str, seconds: float = 0.0) -> Callable[[Any], Awaitable[str]]:
    """An async step that sleeps ``seconds``, logs ``key`` and appends it to its string value."""

    async def step(value: Any) -> str:
        await trio.sleep(seconds)
        log.append(key)
        return f"{text(value)}{key}"

    step.__name__ = key
    return step


def sleeper(seconds: float) -> Callable[[wpxt.Options], Awaitable[Any]]:
    """A job task that sleeps ``seconds`` and returns its options' ``item``."""

    async def sleep_then_return(options: wpxt.Options) -> Any:
        await trio.sleep(seconds)
        return options["item"]

    return sleep_then_return


def sleeping_job(item: float) -> wpxt.Job[Any]:
    """A job that sleeps ``item`` seconds and returns ``item``."""
    return wpxt.Job(sleeper(item), name=f"sleep {item}", options={"item": item})


def result_of(handle: wpxt.JobHandle[Any]) -> wpxt.Result[Any]:
    """The handle's Result, which must be there."""
    assert handle.result is not None, f"{handle!r} has no result"
    return handle.result


def step_failure(result: wpxt.Result[Any]) -> StepFailedError:
    """The Result's StepFailedError, which must be there."""
    assert result.status is Status.FAILED
    assert isinstance(result.error, StepFailedError)
    return result.error


async def run_one(job: wpxt.Job[Any], **pool_kwargs: Any) -> wpxt.Result[Any]:
    """Run ``job`` alone in a one-worker pool and return its Result."""
    async with wpxt.WorkerPool(1, **pool_kwargs) as pool:
        return await pool.submit_wait(job)


class HeldStep:
    """A sync step whose thread blocks until the test releases it."""

    def __init__(self) -> None:
        self.started = trio.Event()
        self.release = threading.Event()

    def __call__(self, value: Any) -> str:
        trio.from_thread.run_sync(self.started.set)
        if not self.release.wait(SAFETY):
            raise AssertionError("the held step was never released")
        return "late"

    @contextmanager
    def released_on_exit(self) -> Iterator[None]:
        """Release the thread when the block ends, so a failing test never leaves a pool waiting on it."""
        try:
            yield
        finally:
            self.release.set()


# -- Step: construction ---------------------------------------------------------------


async def double(value: Any) -> Any:
    """An async step doubling its value."""
    return value * 2


def test_step_defaults() -> None:
    """A bare Step is named after its task, with no retry or time limits, the default Backoff and every Exception."""
    step = wpxt.Step(double)
    assert step.task is double
    assert step.name == "double"
    assert step.retry == 0
    assert step.timeout is None
    assert step.attempt_timeout is None
    assert step.backoff == Backoff()
    assert step.retry_on == (Exception,)


def test_step_of_a_partial_is_named_after_the_function() -> None:
    """A Step of a functools.partial takes the wrapped function's name, as a Job does."""
    assert wpxt.Step(functools.partial(functools.partial(double))).name == "double"
    assert wpxt.chain(functools.partial(double)).name == "double"


def test_step_keeps_its_arguments() -> None:
    """Step stores its arguments, with a timedelta in seconds and a lone retry_on class as a tuple."""
    step = wpxt.Step(
        double,
        name="twice",
        retry=3,
        timeout=datetime.timedelta(seconds=90),
        attempt_timeout=2,
        backoff=NO_WAIT,
        retry_on=KeyError,
    )
    assert step.name == "twice"
    assert step.retry == 3
    assert step.timeout == 90.0
    assert isinstance(step.timeout, float)
    assert step.attempt_timeout == 2.0
    assert step.backoff is NO_WAIT
    assert step.retry_on == (KeyError,)
    assert wpxt.Step(double, retry_on=(KeyError, OSError)).retry_on == (KeyError, OSError)


def test_step_named_after_a_callable_without_name() -> None:
    """A callable object with no __name__ names its step after its class."""
    assert wpxt.Step(Flaky()).name == "Flaky"


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"task": 5}, TypeError, "task"),
        ({"name": 5}, TypeError, "name"),
        ({"retry": -1}, ValueError, "retry"),
        ({"retry": 1.5}, TypeError, "retry"),
        ({"retry": True}, TypeError, "retry"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": math.inf}, ValueError, "timeout"),
        ({"timeout": "1"}, TypeError, "timeout"),
        ({"attempt_timeout": 0}, ValueError, "attempt_timeout"),
        ({"attempt_timeout": "1"}, TypeError, "attempt_timeout"),
        ({"backoff": "x"}, TypeError, "backoff"),
        ({"backoff": None}, TypeError, "backoff"),
        ({"retry_on": int}, TypeError, "retry_on"),
        ({"retry_on": (KeyError, "x")}, TypeError, "retry_on"),
        ({"retry_on": ()}, ValueError, "retry_on"),
    ],
)
def test_step_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception], field: str) -> None:
    """Each bad Step argument raises the fitting error, naming the parameter."""
    arguments: dict[str, Any] = {"task": double, **kwargs}
    with pytest.raises(error, match=f"`{field}`"):
        wpxt.Step(**arguments)


def test_step_is_a_frozen_value() -> None:
    """Steps with equal fields are equal and hash alike, and a Step cannot be changed."""
    first = wpxt.Step(double, retry=2, backoff=NO_WAIT)
    second = wpxt.Step(double, retry=2, backoff=Backoff.none())
    assert first == second
    assert hash(first) == hash(second)
    assert first != wpxt.Step(double, retry=3, backoff=NO_WAIT)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        first.retry = 5  # type: ignore[misc]


# -- chain: building --------------------------------------------------------------------


def test_chain_without_steps_is_value_error() -> None:
    """chain() needs at least one step."""
    with pytest.raises(ValueError, match="at least one step"):
        wpxt.chain()


def test_chain_checks_plain_steps() -> None:
    """A plain step that is not callable is rejected when the chain is built, naming `task`."""
    with pytest.raises(TypeError, match="`task`"):
        wpxt.chain(double, 5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"retry": -1}, ValueError, "retry"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"options": 5}, TypeError, "options"),
        ({"context": "x"}, TypeError, "context"),
        ({"name": 5}, TypeError, "name"),
    ],
)
def test_chain_checks_job_fields(kwargs: dict[str, Any], error: type[Exception], field: str) -> None:
    """chain()'s keyword arguments are checked as the Job's fields, naming the parameter."""
    with pytest.raises(error, match=f"`{field}`"):
        wpxt.chain(double, **kwargs)


def test_chain_is_one_async_job_with_the_job_fields() -> None:
    """chain() returns one async Job carrying the job fields it was given."""
    context = wpxt.Context(deadline=100.0)
    job = wpxt.chain(double, double, timeout=5, retry=2, context=context, options={"a": 1}, args={"b": 2})
    assert isinstance(job, wpxt.Job)
    assert job.is_async
    assert job.name == "double -> double"
    assert job.timeout == 5.0
    assert job.retry == 2
    assert job.context is context
    assert job.options == {"a": 1}
    assert job.args == {"b": 2}


def test_chain_default_name_joins_step_names() -> None:
    """The default name joins the steps' names, a Step's own name included; name= replaces it."""

    def load(value: Any) -> Any:
        return value

    assert wpxt.chain(load, wpxt.Step(double, name="twice"), double).name == "load -> twice -> double"
    assert wpxt.chain(load).name == "load"
    assert wpxt.chain(load, double, name="pipeline").name == "pipeline"


# -- chain: running ---------------------------------------------------------------------


async def test_each_step_gets_the_previous_value(autojump_clock: trio.testing.MockClock) -> None:
    """The first step gets the job's options, each next step the value before; Result.data is the last value."""
    seen: list[tuple[float, Any]] = []

    async def create(options: wpxt.Options) -> dict[str, Any]:
        seen.append((trio.current_time(), options))
        await trio.sleep(1)
        return {**options, "company_id": 7}

    async def add_users(params: dict[str, Any]) -> dict[str, Any]:
        seen.append((trio.current_time(), params))
        await trio.sleep(2)
        return {**params, "user_ids": [70, 71]}

    async def count_users(params: dict[str, Any]) -> int:
        seen.append((trio.current_time(), params))
        await trio.sleep(1)
        return len(params["user_ids"])

    result = await run_one(wpxt.chain(create, add_users, count_users, options={"company": "Acme"}))
    assert seen == [
        (0.0, {"company": "Acme"}),
        (1.0, {"company": "Acme", "company_id": 7}),
        (3.0, {"company": "Acme", "company_id": 7, "user_ids": [70, 71]}),
    ]
    assert result.status is Status.SUCCEEDED
    assert result.name == "create -> add_users -> count_users"
    assert result.data == 2
    assert result.attempts == 1
    assert result.started_at == 0.0
    assert result.finished_at == 4.0
    assert result.duration == 4.0


async def test_first_step_gets_read_only_effective_options(autojump_clock: trio.testing.MockClock) -> None:
    """The first step gets the job's options, or else the pool's, as a read-only mapping."""
    received: list[wpxt.Options] = []

    async def first(options: wpxt.Options) -> None:
        received.append(options)
        with pytest.raises(TypeError):
            options["added"] = True  # type: ignore[index]

    async with wpxt.WorkerPool(1, options={"from": "pool"}) as pool:
        own = await pool.submit_wait(wpxt.chain(first, options={"from": "job"}))
        default = await pool.submit_wait(wpxt.chain(first))
    assert own.status is Status.SUCCEEDED
    assert default.status is Status.SUCCEEDED
    assert received == [{"from": "job"}, {"from": "pool"}]


async def test_current_job_is_the_chain_in_every_step(autojump_clock: trio.testing.MockClock) -> None:
    """current_job() works in every step and is the chain's job: same job_id, name, args and options."""
    seen: list[tuple[int, str, Any, Any]] = []

    async def look(value: Any) -> Any:
        job = wpxt.current_job()
        seen.append((job.job_id, job.name, dict(job.args), dict(job.options)))
        await trio.sleep(1)
        return value

    async with wpxt.WorkerPool(2) as pool:
        pool.submit(wpxt.Job(sleeper(1), options={"item": 0}))
        handle = pool.submit(wpxt.chain(look, look, name="looker", args={"n": 1}, options={"o": 2}))
        result = await handle.wait()
    assert result.status is Status.SUCCEEDED
    assert seen == [(1, "looker", {"n": 1}, {"o": 2})] * 2


async def test_failing_step_stops_the_chain(autojump_clock: trio.testing.MockClock) -> None:
    """A step that fails for good fails the job with StepFailedError, caused by its error; later steps never run."""
    log: list[str] = []
    broken = Flaky(work=1)
    job = wpxt.chain(appender(log, "a", 1), wpxt.Step(broken, name="broken"), appender(log, "c", 1), name="flow")
    result = await run_one(job)
    error = step_failure(result)
    assert log == ["a"]
    assert broken.values == ["a"]
    assert error.name == "flow"
    assert error.step == "broken"
    assert error.index == 1
    assert error.attempts == 1
    assert error.__cause__ is broken.raised[0]
    assert str(error) == "step 1 'broken' of chain 'flow' failed after 1 attempt(s)"
    assert isinstance(error, wpxt.WorkerPoolError)
    assert result.data is None
    assert result.attempts == 1
    assert result.code == wpxt.Code.ERROR
    assert result.finished_at == 2.0


async def test_first_step_failing_has_index_zero(autojump_clock: trio.testing.MockClock) -> None:
    """A failing first step is index 0, and a plain callable step is named after its function."""

    async def explode(value: Any) -> None:
        raise KeyError("boom")

    error = step_failure(await run_one(wpxt.chain(explode, double)))
    assert (error.name, error.step, error.index, error.attempts) == ("explode -> double", "explode", 0, 1)
    assert isinstance(error.__cause__, KeyError)


# -- steps: retry and backoff -------------------------------------------------------------


async def test_step_retry_with_fixed_backoff(autojump_clock: trio.testing.MockClock) -> None:
    """A failing step is retried after its backoff wait, with the same value, and can then succeed."""
    flaky = Flaky(failures=2, work=1)
    job = wpxt.chain(wpxt.Step(flaky, retry=2, backoff=ONE_SECOND), name="retried", options={})
    result = await run_one(job)
    # Attempts run 0-1, 2-3 and 4-5, with a one-second wait after each failure.
    assert flaky.starts == [0.0, 2.0, 4.0]
    assert flaky.values == [{}, {}, {}]
    assert result.status is Status.SUCCEEDED
    assert result.data == "!"
    assert result.attempts == 1  # the job's attempts; the step's retries are its own
    assert result.finished_at == 5.0


async def test_step_retries_exhausted(autojump_clock: trio.testing.MockClock) -> None:
    """A step failing retry + 1 times fails the chain, counting every attempt, caused by the last error."""
    flaky = Flaky(work=1)
    later = Flaky(failures=0)
    result = await run_one(wpxt.chain(wpxt.Step(flaky, retry=2, backoff=ONE_SECOND), later))
    error = step_failure(result)
    assert flaky.starts == [0.0, 2.0, 4.0]
    assert later.starts == []
    assert error.attempts == 3
    assert error.__cause__ is flaky.raised[-1]
    assert result.finished_at == 5.0


async def test_step_backoff_none_retries_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """With Backoff.none() a failing step is retried at once."""
    flaky = Flaky(failures=3)
    result = await run_one(wpxt.chain(wpxt.Step(flaky, retry=3, backoff=NO_WAIT)))
    assert flaky.starts == [0.0] * 4
    assert result.status is Status.SUCCEEDED
    assert result.finished_at == 0.0


async def test_plain_step_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    """A plain callable is a step with no retry: one failure fails the chain."""
    flaky = Flaky(failures=1)
    error = step_failure(await run_one(wpxt.chain(flaky)))
    assert flaky.starts == [0.0]
    assert error.attempts == 1


async def test_retry_on_other_error_fails_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """An error that retry_on does not match fails the step at its first attempt."""
    flaky = Flaky(work=1, error=ValueError)
    result = await run_one(wpxt.chain(wpxt.Step(flaky, retry=5, backoff=NO_WAIT, retry_on=(KeyError, OSError))))
    error = step_failure(result)
    assert flaky.starts == [0.0]
    assert error.attempts == 1
    assert isinstance(error.__cause__, ValueError)
    assert result.finished_at == 1.0


async def test_retry_on_matching_error_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    """An error that retry_on matches, a subclass included, is retried."""
    flaky = Flaky(failures=2, work=1, error=FileNotFoundError)
    result = await run_one(wpxt.chain(wpxt.Step(flaky, retry=5, backoff=NO_WAIT, retry_on=(KeyError, OSError))))
    assert flaky.starts == [0.0, 1.0, 2.0]
    assert result.status is Status.SUCCEEDED
    assert result.finished_at == 3.0


# -- steps: timeouts ----------------------------------------------------------------------


async def test_step_timeout_is_a_budget_across_attempts_and_waits(autojump_clock: trio.testing.MockClock) -> None:
    """A step's timeout counts from its start over its attempts and waits, and fails the step when it expires."""
    log: list[str] = []
    flaky = Flaky(work=1)
    step = wpxt.Step(flaky, name="budget", retry=10, timeout=4.5, backoff=ONE_SECOND)
    result = await run_one(wpxt.chain(appender(log, "a", 1), step, appender(log, "c")))
    error = step_failure(result)
    # The step starts at 1: attempts at 1-2 and 3-4 fail, the third starts at 5 and is cut at 5.5.
    assert flaky.starts == [1.0, 3.0, 5.0]
    assert log == ["a"]
    assert (error.step, error.index, error.attempts) == ("budget", 1, 3)
    cause = error.__cause__
    assert isinstance(cause, JobTimeoutError)
    assert cause.name == "budget"
    assert cause.deadline == 5.5
    assert result.finished_at == 5.5


async def test_step_timeout_cuts_a_backoff_wait(autojump_clock: trio.testing.MockClock) -> None:
    """A backoff wait running past the step's timeout is cut short there, and no attempt follows."""
    flaky = Flaky(work=1)
    step = wpxt.Step(flaky, retry=5, timeout=2.5, backoff=Backoff(initial=4, jitter=0))
    error = step_failure(await run_one(wpxt.chain(step)))
    assert flaky.starts == [0.0]
    assert error.attempts == 1
    assert isinstance(error.__cause__, JobTimeoutError)
    assert error.__cause__.deadline == 2.5
    assert trio.current_time() == 2.5


async def test_step_timeout_keeps_the_last_error(autojump_clock: trio.testing.MockClock) -> None:
    """The JobTimeoutError of a step's timeout that cut its retries has the step's last error as its cause."""
    flaky = Flaky(work=1)
    step = wpxt.Step(flaky, retry=10, timeout=2.5, backoff=NO_WAIT)
    error = step_failure(await run_one(wpxt.chain(step)))
    assert flaky.starts == [0.0, 1.0, 2.0]
    assert isinstance(error.__cause__, JobTimeoutError)
    # As a job's own timeout does (test_retry.py): the reason the step kept failing is not lost.
    assert error.__cause__.__cause__ is flaky.raised[-1]


async def test_step_timeout_ends_with_its_step(autojump_clock: trio.testing.MockClock) -> None:
    """A step's timeout bounds only that step: a later, longer step runs to its end."""
    log: list[str] = []
    job = wpxt.chain(wpxt.Step(appender(log, "a", 1), timeout=2), appender(log, "b", 5))
    result = await run_one(job)
    assert result.status is Status.SUCCEEDED
    assert result.data == "ab"
    assert result.finished_at == 6.0


@pytest.mark.parametrize("bound", ["timeout", "attempt_timeout"])
async def test_a_step_returning_after_its_bound_timed_out(bound: str, autojump_clock: trio.testing.MockClock) -> None:
    """A step that blocks past its timeout or attempt_timeout without a checkpoint, then returns, fails the chain."""
    log: list[str] = []

    async def block(value: Any) -> str:
        autojump_clock.jump(3)
        return "late"

    step = wpxt.Step(block, name="blocking", **{bound: 2})
    result = await run_one(wpxt.chain(step, appender(log, "never")))
    error = step_failure(result)
    assert (error.step, error.attempts) == ("blocking", 1)
    assert isinstance(error.__cause__, JobTimeoutError)
    assert error.__cause__.deadline == 2.0
    assert log == []
    assert result.finished_at == 3.0


async def test_attempt_timeout_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    """An attempt outliving attempt_timeout is cancelled and retried; a later attempt can succeed."""
    starts: list[float] = []
    finished: list[int] = []

    async def slow_then_fast(value: Any) -> str:
        starts.append(trio.current_time())
        attempt = len(starts)
        await trio.sleep(10 if attempt == 1 else 1)
        finished.append(attempt)
        return f"attempt {attempt}"

    result = await run_one(wpxt.chain(wpxt.Step(slow_then_fast, retry=1, attempt_timeout=2, backoff=NO_WAIT)))
    assert starts == [0.0, 2.0]
    assert finished == [2]
    assert result.status is Status.SUCCEEDED
    assert result.data == "attempt 2"
    assert result.finished_at == 3.0


async def test_attempt_timeout_exhausted(autojump_clock: trio.testing.MockClock) -> None:
    """Attempts cut by attempt_timeout, retried after waits, fail the step with JobTimeoutError at the last deadline."""
    flaky = Flaky(work=10)
    result = await run_one(wpxt.chain(wpxt.Step(flaky, name="slow", retry=1, attempt_timeout=2, backoff=ONE_SECOND)))
    error = step_failure(result)
    assert flaky.starts == [0.0, 3.0]
    assert flaky.raised == []
    assert error.attempts == 2
    cause = error.__cause__
    assert isinstance(cause, JobTimeoutError)
    assert cause.name == "slow"
    assert cause.deadline == 5.0
    assert result.status is Status.FAILED  # the step failed; the job itself did not time out
    assert result.finished_at == 5.0


async def test_attempt_timeout_not_retried_unless_matched(autojump_clock: trio.testing.MockClock) -> None:
    """retry_on=ValueError fails a step at its first timed-out attempt; retry_on=TimeoutError retries it."""
    unmatched = Flaky(work=10)
    error = step_failure(
        await run_one(wpxt.chain(wpxt.Step(unmatched, retry=5, attempt_timeout=1, retry_on=ValueError)))
    )
    assert unmatched.starts == [0.0]
    assert error.attempts == 1
    assert isinstance(error.__cause__, JobTimeoutError)

    matched = Flaky(work=10)
    step = wpxt.Step(matched, retry=2, attempt_timeout=1, retry_on=TimeoutError, backoff=NO_WAIT)
    error = step_failure(await run_one(wpxt.chain(step)))
    assert [start - matched.starts[0] for start in matched.starts] == [0.0, 1.0, 2.0]
    assert error.attempts == 3


async def test_step_timeout_cuts_attempts_bounded_by_attempt_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """With both limits, each attempt stops at attempt_timeout and the whole step at timeout."""
    flaky = Flaky(work=10)
    step = wpxt.Step(flaky, retry=5, timeout=3, attempt_timeout=2, backoff=NO_WAIT)
    error = step_failure(await run_one(wpxt.chain(step)))
    assert flaky.starts == [0.0, 2.0]
    assert error.attempts == 2
    assert isinstance(error.__cause__, JobTimeoutError)
    assert error.__cause__.deadline == 3.0
    assert trio.current_time() == 3.0


# -- chain: job fields ---------------------------------------------------------------------


async def test_job_timeout_shorter_than_the_chain(autojump_clock: trio.testing.MockClock) -> None:
    """A job timeout that expires mid-chain ends the Result TIMED_OUT there; later steps never run."""
    log: list[str] = []
    job = wpxt.chain(appender(log, "a", 1), appender(log, "b", 5), appender(log, "c"), name="slow", timeout=3)
    result = await run_one(job)
    assert log == ["a"]
    assert result.status is Status.TIMED_OUT
    assert isinstance(result.error, JobTimeoutError)
    assert result.error.name == "slow"
    assert result.error.deadline == 3.0
    assert result.finished_at == 3.0


async def test_job_timeout_beats_a_step_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """A job timeout earlier than a step's timeout times the job out, rather than failing the step."""
    flaky = Flaky(work=10)
    result = await run_one(wpxt.chain(wpxt.Step(flaky, timeout=5), timeout=2))
    assert result.status is Status.TIMED_OUT
    assert isinstance(result.error, JobTimeoutError)
    assert result.finished_at == 2.0


async def test_job_retry_runs_the_chain_again_from_its_first_step(autojump_clock: trio.testing.MockClock) -> None:
    """A job retry after a failed chain runs it again from step 1, as the job's next attempt."""
    calls: list[tuple[str, int, float]] = []
    failures = 1

    def step(key: str, fails: bool = False) -> Callable[[Any], Awaitable[Any]]:
        async def run(value: Any) -> Any:
            nonlocal failures
            calls.append((key, wpxt.current_job().attempt, trio.current_time()))
            await trio.sleep(1)
            if fails and failures:
                failures -= 1
                raise ValueError(key)
            return f"{text(value)}{key}"

        run.__name__ = key
        return run

    job = wpxt.chain(step("a"), step("b", fails=True), step("c"), retry=1, backoff=ONE_SECOND, options={})
    result = await run_one(job)
    assert calls == [("a", 1, 0.0), ("b", 1, 1.0), ("a", 2, 3.0), ("b", 2, 4.0), ("c", 2, 5.0)]
    assert result.status is Status.SUCCEEDED
    assert result.data == "abc"
    assert result.attempts == 2
    assert result.finished_at == 6.0


async def test_job_retries_exhausted_keep_the_step_failure(autojump_clock: trio.testing.MockClock) -> None:
    """When every job attempt fails a step, the Result is FAILED with the last run's StepFailedError."""
    flaky = Flaky(work=1)
    result = await run_one(wpxt.chain(wpxt.Step(flaky, retry=1, backoff=NO_WAIT), retry=1, backoff=NO_WAIT))
    error = step_failure(result)
    assert flaky.starts == [0.0, 1.0, 2.0, 3.0]
    assert result.attempts == 2
    assert error.attempts == 2
    assert error.__cause__ is flaky.raised[-1]


async def test_cancelled_context_cancels_the_chain(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the job's Context mid-chain ends it CANCELLED; later steps never run."""
    log: list[str] = []
    context = wpxt.Context()
    job = wpxt.chain(appender(log, "a", 1), appender(log, "b", 5), appender(log, "c"), context=context)
    async with wpxt.WorkerPool(1) as pool:
        handle = pool.submit(job)
        await trio.sleep(2)
        context.cancel()
    result = result_of(handle)
    assert log == ["a"]
    assert result.status is Status.CANCELLED
    assert isinstance(result.error, JobCancelledError)
    assert result.finished_at == 2.0


async def test_cancelled_handle_cancels_the_chain(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the chain's handle mid-step ends it CANCELLED, even while a step waits to retry."""
    flaky = Flaky(work=1)
    async with wpxt.WorkerPool(1) as pool:
        handle = pool.submit(wpxt.chain(wpxt.Step(flaky, retry=10, backoff=ONE_SECOND)))
        await trio.sleep(1.5)
        handle.cancel()
    result = result_of(handle)
    assert flaky.starts == [0.0]
    assert result.status is Status.CANCELLED
    assert result.finished_at == 1.5


# -- chain: sync steps (real clock) -----------------------------------------------------


async def test_sync_steps_run_in_threads() -> None:
    """Plain steps run in a worker thread, async ones in trio's; values flow and current_job() works in both."""
    trio_thread = threading.get_ident()
    seen: list[tuple[str, int, int]] = []

    def load(options: wpxt.Options) -> list[int]:
        seen.append(("load", threading.get_ident(), wpxt.current_job().job_id))
        return list(options["numbers"])

    async def square(numbers: list[int]) -> list[int]:
        seen.append(("square", threading.get_ident(), wpxt.current_job().job_id))
        await trio.lowlevel.checkpoint()
        return [n * n for n in numbers]

    def total(numbers: list[int]) -> int:
        seen.append(("total", threading.get_ident(), wpxt.current_job().job_id))
        return sum(numbers)

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(2, options={"numbers": [1, 2, 3]}) as pool:
            pool.submit(wpxt.Job(double, args={"value": 1}))
            result = await pool.submit_wait(wpxt.chain(load, square, total))
    assert result.status is Status.SUCCEEDED
    assert result.name == "load -> square -> total"
    assert result.data == 14
    assert [(key, job_id) for key, _, job_id in seen] == [("load", 1), ("square", 1), ("total", 1)]
    threads = {key: thread for key, thread, _ in seen}
    assert threads["load"] != trio_thread
    assert threads["total"] != trio_thread
    assert threads["square"] == trio_thread


async def test_sync_step_retried_and_failing() -> None:
    """A plain step wrapped in Step is retried in a thread; failing for good, it names its step."""
    calls: list[int] = []

    def flaky(value: Any) -> str:
        calls.append(threading.get_ident())
        if len(calls) < 2:
            raise ValueError(len(calls))
        return "done"

    def broken(value: Any) -> None:
        raise KeyError(value)

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            result = await pool.submit_wait(wpxt.chain(wpxt.Step(flaky, retry=1, backoff=NO_WAIT), broken))
    error = step_failure(result)
    assert len(calls) == 2
    assert (error.step, error.index, error.attempts) == ("broken", 1, 1)
    assert isinstance(error.__cause__, KeyError)
    assert error.__cause__.args == ("done",)


@pytest.mark.parametrize("limit", ["attempt_timeout", "timeout"])
async def test_sync_step_outliving_its_limit_fails(mock_clock: trio.testing.MockClock, limit: str) -> None:
    """A plain step whose thread outlives the step's timeout or attempt_timeout fails with JobTimeoutError."""
    # The clock stands still unless jumped, so the thread is held past its
    # deadline deterministically; it returns only once the clock is past it.
    held = HeldStep()
    later = Flaky(failures=0)
    with held.released_on_exit(), trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            limits: dict[str, Any] = {limit: 1}
            handle = pool.submit(wpxt.chain(wpxt.Step(held, name="held", **limits), later))
            await held.started.wait()
            mock_clock.jump(2)
            await wait_all_tasks_blocked()
            held.release.set()
            result = await handle.wait()
    assert later.starts == []
    error = step_failure(result)
    assert (error.step, error.attempts) == ("held", 1)
    assert isinstance(error.__cause__, JobTimeoutError)
    assert error.__cause__.deadline == 1.0


async def test_a_sync_step_past_its_timeout_is_abandoned_and_its_thread_keeps_the_slot(
    mock_clock: trio.testing.MockClock,
) -> None:
    """The chain fails at the step's deadline with the thread still running; no other job starts until it returns."""
    held = HeldStep()

    async def after_it(options: wpxt.Options) -> str:
        return "ran"

    with held.released_on_exit(), trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            handle = pool.submit(wpxt.chain(wpxt.Step(held, name="held", timeout=1)))
            after = pool.submit(wpxt.Job(after_it))
            await held.started.wait()
            mock_clock.jump(2)
            result = await handle.wait()  # while the thread still blocks
            error = step_failure(result)
            assert isinstance(error.__cause__, JobTimeoutError)
            assert error.__cause__.deadline == 1.0
            await wait_all_tasks_blocked()
            assert (after.done, pool.running) == (False, 1)
            held.release.set()
            await after.wait()
    assert (result_of(after).status, result_of(after).data) == (Status.SUCCEEDED, "ran")


async def test_a_chain_run_outside_a_pool_waits_for_the_thread_its_step_abandoned(
    mock_clock: trio.testing.MockClock,
) -> None:
    """With no pool worker to hold the thread, the step's run ends only once the thread has returned."""
    held = HeldStep()
    job = wpxt.chain(wpxt.Step(held, name="held", timeout=1))
    failure: list[BaseException] = []

    async def run_directly() -> None:
        with pytest.raises(StepFailedError) as raised:
            await job.task({})  # type: ignore[operator]  # a chain's task is async
        failure.append(raised.value)

    with held.released_on_exit(), trio.fail_after(SAFETY):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_directly)
            await held.started.wait()
            mock_clock.jump(2)
            await wait_all_tasks_blocked()
            assert failure == []  # the deadline passed, but the thread still runs
            held.release.set()
    [error] = failure
    assert isinstance(error.__cause__, JobTimeoutError)


@pytest.mark.parametrize(
    ("fields", "cancel", "status"),
    [({"timeout": 1}, False, Status.TIMED_OUT), ({}, True, Status.CANCELLED)],
    ids=["job timeout", "handle cancel"],
)
async def test_chain_stopped_during_a_sync_step_does_not_succeed(
    mock_clock: trio.testing.MockClock, fields: dict[str, Any], cancel: bool, status: Status
) -> None:
    """A chain that times out or is cancelled while a plain step's thread runs ends so, not SUCCEEDED."""
    held = HeldStep()
    with held.released_on_exit(), trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            handle = pool.submit(wpxt.chain(held, double, **fields))
            await held.started.wait()
            mock_clock.jump(2)
            if cancel:
                handle.cancel()
            await wait_all_tasks_blocked()
            held.release.set()
            result = await handle.wait()
    assert result.status is status
    assert result.data is None


# -- fan_out --------------------------------------------------------------------------------


async def test_fan_out_from_outside_runs_in_parallel(autojump_clock: trio.testing.MockClock) -> None:
    """From outside a job with pool=, fan_out runs one job per item in parallel; three workers take 2 s for three."""
    async with wpxt.WorkerPool(3) as pool:
        results = await wpxt.fan_out(sleeping_job, [2, 2, 2], pool=pool)
        assert trio.current_time() == 2.0
    assert [r.status for r in results] == [Status.SUCCEEDED] * 3
    assert [r.job_id for r in results] == [0, 1, 2]
    assert [r.finished_at for r in results] == [2.0, 2.0, 2.0]


async def test_fan_out_stays_within_the_pool_limit(autojump_clock: trio.testing.MockClock) -> None:
    """fan_out's jobs queue under max_workers like any others: two workers take 4 s for three 2 s jobs."""
    async with wpxt.WorkerPool(2) as pool:
        results = await wpxt.fan_out(sleeping_job, [2, 2, 2], pool=pool)
        assert trio.current_time() == 4.0
    assert [r.started_at for r in results] == [0.0, 0.0, 2.0]
    assert [r.finished_at for r in results] == [2.0, 2.0, 4.0]


async def test_fan_out_results_in_item_order(autojump_clock: trio.testing.MockClock) -> None:
    """Results come in item order, not completion order, from any iterable of items."""
    async with wpxt.WorkerPool(3) as pool:
        results = await wpxt.fan_out(sleeping_job, (seconds for seconds in [3, 1, 2]), pool=pool)
    assert [r.data for r in results] == [3, 1, 2]
    assert [r.name for r in results] == ["sleep 3", "sleep 1", "sleep 2"]
    assert [r.finished_at for r in results] == [3.0, 1.0, 2.0]


async def test_fan_out_keeps_failed_results(autojump_clock: trio.testing.MockClock) -> None:
    """A failing job gives a FAILED Result in its place; fan_out itself does not raise."""

    def job_for(item: int) -> wpxt.Job[Any]:
        async def task(options: wpxt.Options) -> int:
            await trio.sleep(1)
            if item == 2:
                raise ValueError(item)
            return item

        return wpxt.Job(task)

    async with wpxt.WorkerPool(3) as pool:
        results = await wpxt.fan_out(job_for, [1, 2, 3], pool=pool)
    assert [r.status for r in results] == [Status.SUCCEEDED, Status.FAILED, Status.SUCCEEDED]
    assert [r.data for r in results] == [1, None, 3]
    assert isinstance(results[1].error, ValueError)


async def test_fan_out_of_no_items(autojump_clock: trio.testing.MockClock) -> None:
    """No items give no jobs and an empty list."""
    async with wpxt.WorkerPool(1) as pool:
        assert await wpxt.fan_out(sleeping_job, [], pool=pool) == []
        assert pool.statistics().submitted == 0


async def test_fan_out_from_a_job_uses_its_pool(autojump_clock: trio.testing.MockClock) -> None:
    """Inside a job, fan_out submits to that job's pool: with 4 workers, three 2 s children end with it at 2 s."""
    fanned: list[list[wpxt.Result[Any]]] = []

    async def parent(options: wpxt.Options) -> list[Any]:
        results = await wpxt.fan_out(sleeping_job, [2, 2, 2])
        fanned.append(results)
        return [r.data for r in results]

    async with wpxt.WorkerPool(4) as pool:
        result = await pool.submit_wait(wpxt.Job(parent))
        all_results = await pool.stop_wait()
    assert result.status is Status.SUCCEEDED
    assert result.data == [2, 2, 2]
    assert result.finished_at == 2.0
    [children] = fanned
    assert [r.job_id for r in children] == [1, 2, 3]
    assert [r.finished_at for r in children] == [2.0, 2.0, 2.0]
    assert sorted(r.job_id for r in all_results) == [0, 1, 2, 3]


async def test_fan_out_from_a_job_while_the_pool_drains(autojump_clock: trio.testing.MockClock) -> None:
    """A job may still fan out into its own pool while stop_wait() drains it."""

    async def parent(options: wpxt.Options) -> list[Any]:
        await trio.sleep(1)
        return [r.data for r in await wpxt.fan_out(sleeping_job, [1, 2])]

    async with wpxt.WorkerPool(3) as pool:
        handle = pool.submit(wpxt.Job(parent))
        results = await pool.stop_wait()
    assert result_of(handle).data == [1, 2]
    assert result_of(handle).finished_at == 3.0
    assert len(results) == 3


async def test_fan_out_outside_a_job_needs_a_pool(autojump_clock: trio.testing.MockClock) -> None:
    """Outside a running job, fan_out without pool= raises RuntimeError."""
    with pytest.raises(RuntimeError, match="`pool=`"):
        await wpxt.fan_out(sleeping_job, [1])


async def test_fan_out_rejects_a_non_pool(autojump_clock: trio.testing.MockClock) -> None:
    """pool= must be a WorkerPool, and the error names `pool`."""
    with pytest.raises(TypeError, match="`pool`"):
        await wpxt.fan_out(sleeping_job, [1], pool="x")  # type: ignore[arg-type]


async def test_fan_out_rejects_a_factory_returning_no_job(autojump_clock: trio.testing.MockClock) -> None:
    """A job_factory returning something other than a Job raises TypeError before any job is submitted."""

    def factory(item: int) -> wpxt.Job[Any]:
        return sleeping_job(item) if item == 1 else item  # type: ignore[return-value]

    async with wpxt.WorkerPool(2) as pool:
        with pytest.raises(TypeError, match=r"`job_factory`.*int"):
            await wpxt.fan_out(factory, [1, 2], pool=pool)
        assert pool.statistics().submitted == 0


async def test_fan_out_to_a_closed_pool(autojump_clock: trio.testing.MockClock) -> None:
    """fan_out to a pool that has stopped raises PoolClosedError."""
    async with wpxt.WorkerPool(1) as pool:
        pass
    with pytest.raises(wpxt.PoolClosedError):
        await wpxt.fan_out(sleeping_job, [1], pool=pool)


@pytest.mark.parametrize("explicit", [False, True], ids=["default pool", "pool= its own"])
async def test_fan_out_from_a_single_worker_pool_job_raises(
    autojump_clock: trio.testing.MockClock, explicit: bool
) -> None:
    """From a job holding its pool's only worker, fan_out raises RuntimeError rather than wait forever."""

    async def parent(options: wpxt.Options) -> None:
        await wpxt.fan_out(sleeping_job, [1], pool=pool if explicit else None)

    with trio.fail_after(HANG):
        async with wpxt.WorkerPool(1) as pool:
            result = await pool.submit_wait(wpxt.Job(parent))
            assert pool.statistics().submitted == 1
    assert result.status is Status.FAILED
    assert isinstance(result.error, RuntimeError)
    assert "wait forever" in str(result.error)
    assert result.finished_at == 0.0


async def test_fan_out_from_a_single_worker_pool_job_to_another_pool(autojump_clock: trio.testing.MockClock) -> None:
    """A job of a one-worker pool may fan out into another pool: only its own pool would deadlock."""
    async with wpxt.WorkerPool(2) as other:

        async def parent(options: wpxt.Options) -> list[Any]:
            return [r.data for r in await wpxt.fan_out(sleeping_job, [1, 2], pool=other)]

        async with wpxt.WorkerPool(1) as pool:
            result = await pool.submit_wait(wpxt.Job(parent))
        assert other.statistics().succeeded == 2
    assert result.status is Status.SUCCEEDED
    assert result.data == [1, 2]
    assert result.finished_at == 2.0


async def test_cancelling_fan_out_cancels_its_jobs(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the fan_out call cancels the jobs it submitted, running and queued alike."""
    async with wpxt.WorkerPool(1) as pool:
        with trio.move_on_after(1) as scope:
            await wpxt.fan_out(sleeping_job, [5, 5, 5], pool=pool)
        results = await pool.stop_wait()
    assert scope.cancelled_caught
    by_id = sorted(results, key=lambda r: r.job_id)
    assert [(r.status, r.started_at, r.finished_at) for r in by_id] == [
        (Status.CANCELLED, 0.0, 1.0),
        (Status.CANCELLED, None, 1.0),
        (Status.CANCELLED, None, 1.0),
    ]
    assert all(isinstance(r.error, JobCancelledError) for r in by_id)


@pytest.mark.parametrize(
    ("fields", "cancel", "status"),
    [({"timeout": 1}, False, Status.TIMED_OUT), ({}, True, Status.CANCELLED)],
    ids=["parent timeout", "parent cancelled"],
)
async def test_stopping_the_fanning_job_cancels_its_children(
    autojump_clock: trio.testing.MockClock, fields: dict[str, Any], cancel: bool, status: Status
) -> None:
    """A job that times out or is cancelled while it fans out takes its children with it."""

    async def parent(options: wpxt.Options) -> None:
        await wpxt.fan_out(sleeping_job, [5, 5])

    async with wpxt.WorkerPool(4) as pool:
        handle = pool.submit(wpxt.Job(parent, **fields))
        if cancel:
            await trio.sleep(1)
            handle.cancel()
        results = await pool.stop_wait()
    by_id = sorted(results, key=lambda r: r.job_id)
    assert [(r.job_id, r.status, r.finished_at) for r in by_id] == [
        (0, status, 1.0),
        (1, Status.CANCELLED, 1.0),
        (2, Status.CANCELLED, 1.0),
    ]
    assert trio.current_time() == 1.0


async def test_chain_with_a_fan_out_step(autojump_clock: trio.testing.MockClock) -> None:
    """A chain whose middle step fans out runs as a DAG: step 1, then its items in parallel, then the last step."""
    log: list[tuple[str, float]] = []

    async def list_items(options: wpxt.Options) -> list[int]:
        log.append(("list", trio.current_time()))
        await trio.sleep(1)
        return list(options["items"])

    async def process_all(items: list[int]) -> list[Any]:
        log.append(("fan out", trio.current_time()))
        results = await wpxt.fan_out(sleeping_job, items)
        return [r.unwrap() for r in results]

    async def total(values: list[int]) -> int:
        log.append(("total", trio.current_time()))
        return sum(values)

    async with wpxt.WorkerPool(4) as pool:
        result = await pool.submit_wait(wpxt.chain(list_items, process_all, total, options={"items": [3, 1, 2]}))
        children = [r for r in await pool.stop_wait() if r.job_id != 0]
    assert result.status is Status.SUCCEEDED
    assert result.name == "list_items -> process_all -> total"
    assert result.data == 6
    assert log == [("list", 0.0), ("fan out", 1.0), ("total", 4.0)]
    assert result.finished_at == 4.0
    assert sorted((r.job_id, r.started_at, r.finished_at) for r in children) == [
        (1, 1.0, 4.0),
        (2, 1.0, 2.0),
        (3, 1.0, 3.0),
    ]


async def test_fan_out_rejects_items_that_are_not_iterable(autojump_clock: trio.testing.MockClock) -> None:
    """fan_out(factory, 5) raises TypeError naming `items`, and submits nothing."""
    async with wpxt.WorkerPool(2) as pool:
        with pytest.raises(TypeError, match=r"`items` must be an iterable.*int"):
            await wpxt.fan_out(sleeping_job, 5, pool=pool)  # type: ignore[arg-type]
        assert pool.statistics().submitted == 0
