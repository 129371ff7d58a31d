"""Flows of jobs: steps chained into one job, and fan-out over items.

A chain is one ordinary Job whose task runs its steps in turn, so it is queued,
limited, retried, cancelled and reported like any job. A fan-out submits
ordinary jobs to a pool and collects their Results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar

import attrs
import trio

from ._attempts import EVERYTHING, Attempts, RetryPolicy
from ._current import running_pool, running_worker
from ._errors import StepFailedError
from ._job import Job, Options, retry_on_classes
from ._pool import WorkerPool
from ._result import Result
from ._retry import Backoff
from ._util import is_async_callable, task_name
from ._validation import Seconds, count, optional_seconds

__all__ = ["Step", "chain", "fan_out"]

T = TypeVar("T")

_DEFAULT_BACKOFF: Final = Backoff()


@attrs.frozen(init=False)
class Step:
    """One step of a ``chain()``, with its own retry and time limits.

    Its task is called with the previous step's value (the first step gets the
    chain job's options) and returns the value for the next. An ``async def``
    task runs in the job's own task; a plain function runs in a thread. A
    timeout abandons a thread step as a pool abandons a thread job: the step
    ends at its deadline, and the pool's worker keeps the slot until the
    thread returns.

    Args:
        task: The callable, taking one value.
        name: Defaults to the task's ``__name__``; a failure names it.
        retry: Retries after a failed attempt of this step.
        timeout: The step's budget in seconds across its attempts and waits.
        attempt_timeout: A bound on each attempt; an attempt that outlives it
            fails with ``JobTimeoutError`` and is retried like any error.
        backoff: The wait between attempts.
        retry_on: The exception class or classes worth retrying; others fail
            the step at once. Defaults to ``Exception``.

    Raises:
        TypeError, ValueError: An argument is invalid; the message names it.
    """

    task: Callable[[Any], Any]
    name: str
    retry: int
    timeout: float | None
    attempt_timeout: float | None
    backoff: Backoff
    retry_on: tuple[type[Exception], ...]

    def __init__(
        self,
        task: Callable[[Any], Awaitable[Any]] | Callable[[Any], Any],
        *,
        name: str | None = None,
        retry: int = 0,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff = _DEFAULT_BACKOFF,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
    ) -> None:
        if not callable(task):
            raise TypeError(f"`task` must be callable, not {type(task).__name__}")
        if name is None:
            name = task_name(task)
        elif not isinstance(name, str):
            raise TypeError(f"`name` must be a str or None, not {type(name).__name__}")
        if not isinstance(backoff, Backoff):
            raise TypeError(f"`backoff` must be a Backoff, not {type(backoff).__name__}")
        self.__attrs_init__(
            task,
            name,
            count(retry, "retry", minimum=0),
            optional_seconds(timeout, "timeout"),
            optional_seconds(attempt_timeout, "attempt_timeout"),
            backoff,
            retry_on_classes(retry_on) or EVERYTHING,
        )

    async def _run(self, value: Any) -> Any:
        """Run the step on ``value`` and return its value; raise _StepGaveUp if it fails."""
        engine = Attempts(trio.lowlevel.current_clock())
        deadline = math.inf if self.timeout is None else trio.current_time() + self.timeout
        policy = RetryPolicy(self.retry, self.backoff, self.retry_on, self.attempt_timeout)
        try:
            with trio.move_on_at(deadline):
                return await engine.run(policy, deadline, self.name, self.task, value, is_async_callable(self.task))
            failure: Exception = engine.timeout_error(self.name, deadline)  # the scope ended the run
        except Exception as exc:  # the last attempt's error, or a timeout the engine found
            failure = exc
        finally:
            if engine.thread is not None:
                await _keep_thread(engine)
        raise _StepGaveUp(engine.attempt) from failure


async def _keep_thread(engine: Attempts) -> None:
    """Hand a thread the step abandoned to the worker that runs the chain, which holds its slot until it returns.

    A worker waits for a thread its job left behind before it takes another
    job or makes another attempt, so a timed-out thread step never lets two
    threads share one slot. The step's run does not wait for it: its deadline
    has passed, and the chain's Result comes now. Outside a pool's worker
    (a chain's task called directly), the step waits for its thread itself.
    """
    worker = running_worker.get()
    if worker is not None and worker.engine.thread is None:
        worker.engine.thread, engine.thread = engine.thread, None
    else:
        await engine.wait_for_thread()


class _StepGaveUp(Exception):
    """A step failed for good; its last error is the cause."""

    def __init__(self, attempts: int) -> None:
        super().__init__(attempts)
        self.attempts = attempts


def chain(*steps: Step | Callable[[Any], Any], name: str | None = None, **job_fields: Any) -> Job[Any]:
    """Build one Job that runs ``steps`` in turn, each on the previous one's value.

    The first step gets the job's options; the job's Result has the last
    step's value. A plain callable is a step with no retry or time limits;
    wrap it in ``Step`` for its own. A step that fails for good stops the
    chain: the job fails with ``StepFailedError``, which names the step, and
    whose ``__cause__`` is the step's own error. ``job_fields`` (``timeout``,
    ``retry``, ``context``, ``options``, ...) go to the Job and apply to the
    chain as a whole: a job retry runs the chain again from its first step.

    Args:
        steps: One or more steps or callables.
        name: The job's name; defaults to the steps' names joined by ``" -> "``.

    Raises:
        TypeError, ValueError: A step or a job field is invalid.
    """
    if not steps:
        raise ValueError("chain() needs at least one step")
    checked = tuple(step if isinstance(step, Step) else Step(step) for step in steps)
    if name is None:
        name = " -> ".join(step.name for step in checked)
    return Job(functools.partial(_run_chain, name, checked), name=name, **job_fields)


async def _run_chain(name: str, steps: tuple[Step, ...], options: Options) -> Any:
    value: Any = options
    for index, step in enumerate(steps):
        try:
            value = await step._run(value)
        except _StepGaveUp as gave_up:
            error = StepFailedError(name=name, step=step.name, index=index, attempts=gave_up.attempts)
            raise error from gave_up.__cause__
    return value


async def fan_out(
    job_factory: Callable[[T], Job[Any]],
    items: Iterable[T],
    *,
    pool: WorkerPool | None = None,
) -> list[Result[Any]]:
    """Submit ``job_factory(item)`` for each item and return their Results in item order.

    The jobs run in parallel in ``pool``, by default the pool of the job
    calling ``fan_out()``, under its limits. If the call is cancelled, so are
    the jobs it submitted. A job that fans out keeps its own worker while it
    waits, so such a pool needs more workers than jobs that fan out at once.

    Raises:
        RuntimeError: No ``pool`` was given outside a running job, or the
            calling job holds its pool's only worker, which would deadlock.
        TypeError: ``items`` is not iterable, or ``job_factory`` returned something other than a Job.
        PoolClosedError: The pool no longer accepts jobs.
    """
    own = running_pool()
    if pool is None:
        if own is None:
            raise RuntimeError("fan_out() needs `pool=` when it is not called from inside a running job")
        pool = own
    elif not isinstance(pool, WorkerPool):
        raise TypeError(f"`pool` must be a WorkerPool or None, not {type(pool).__name__}")
    if pool is own and pool.max_workers == 1:
        raise RuntimeError(
            "fan_out() from a job of a pool with max_workers=1 would wait forever: the job holds the only worker"
        )
    if not isinstance(items, Iterable):
        raise TypeError(f"`items` must be an iterable of the items to fan out over, not {type(items).__name__}")
    jobs = []
    for item in items:
        job = job_factory(item)
        if not isinstance(job, Job):
            raise TypeError(f"`job_factory` must return a workerpoolxt.Job, got {type(job).__name__}")
        jobs.append(job)
    handles = []
    try:
        for job in jobs:
            handles.append(await pool.asubmit(job))
        return [await handle.wait() for handle in handles]
    except BaseException:
        for handle in handles:
            handle.cancel()
        raise
