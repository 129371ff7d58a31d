"""Tests for plain tasks run in a worker process (``run_in="process"``), killed at their deadline.

Real processes on the real clock, with short bounds. The tasks are defined at
module level: a process imports them by name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

import workerpoolxt as wpxt
from workerpoolxt import Job, Registry, Status, WorkerPool
from workerpoolxt.durable import DurableWorker, TaskStatus
from workerpoolxt.durable.testing import MemoryStore

pytest.importorskip("trio_parallel")


# -- tasks, run in processes -------------------------------------------------------------


def forever(options: Any) -> None:
    """Write this process's id to ``options["path"]`` (if given), then spin without end."""
    path = options.get("path")
    if path is not None:
        Path(path).write_text(str(os.getpid()))
    while True:
        pass


def pid(options: Any) -> int:
    return os.getpid()


def add(a: int, b: int) -> int:
    return a + b


def scaled(options: Any, *, x: int) -> int:
    return x * options["factor"]


def span(options: Any) -> tuple[int, float, float]:
    """Hold the process for 0.3 s; report its id, and when it started and ended."""
    start = time.time()
    time.sleep(0.3)
    return os.getpid(), start, time.time()


class ProcessTaskError(Exception):
    pass


def fails(options: Any) -> None:
    raise ProcessTaskError("bad input")


def returns_a_lock(options: Any) -> object:
    return threading.Lock()


class LockedError(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def raises_unpicklable(options: Any) -> None:
    raise LockedError


def calls_current_job(options: Any) -> None:
    wpxt.current_job()


class Unpicklable:
    """A callable that does not pickle: it holds a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, options: Any) -> int:
        return 1


async def async_task(options: Any) -> int:
    return os.getpid()


def killed(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return True
    return False


async def read_pid(path: Path) -> int:
    """The id the ``forever`` task wrote to ``path``, once it has (within 10 s)."""
    file = trio.Path(path)
    with trio.fail_after(10):
        # Polled: another process writes it, with nothing to wait on.
        while not await file.exists() or not await file.read_text():  # noqa: ASYNC110
            await trio.sleep(0.02)
    return int(await file.read_text())


# -- deadlines and cancellation kill the process ----------------------------------------


async def test_timeout_kills_the_process_and_the_slot_runs_the_next_job(tmp_path: Path) -> None:
    """A task that loops for ever ends TIMED_OUT at its deadline, its process killed; its slot takes the next job."""
    path = tmp_path / "pid"
    async with WorkerPool(1) as pool:
        looping = pool.submit(Job(forever, options={"path": str(path)}, timeout=0.5, run_in="process"))
        following = pool.submit(Job(pid, run_in="process"))
        timed_out = await looping.wait()
        after = await following.wait()
    assert timed_out.status is Status.TIMED_OUT
    assert isinstance(timed_out.error, wpxt.JobTimeoutError)
    assert timed_out.started_at is not None
    assert 0.5 <= timed_out.finished_at - timed_out.started_at < 2
    assert killed(int(path.read_text()))
    assert after.status is Status.SUCCEEDED
    assert after.started_at is not None
    assert after.started_at - timed_out.finished_at < 0.1  # the slot at once
    assert after.finished_at - timed_out.finished_at < 1  # and a fresh process within the second
    assert after.data not in (os.getpid(), int(path.read_text()))


async def test_attempt_timeout_retries_in_a_fresh_process(tmp_path: Path) -> None:
    """Each attempt past attempt_timeout is killed and retried; the job ends TIMED_OUT after its attempts."""
    path = tmp_path / "pid"
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(
            Job(forever, options={"path": str(path)}, attempt_timeout=0.3, retry=1, run_in="process")
        )
    assert result.status is Status.TIMED_OUT
    assert result.attempts == 2
    assert killed(int(path.read_text()))


async def test_cancel_kills_the_process(tmp_path: Path) -> None:
    """handle.cancel() ends the job CANCELLED and kills its process."""
    path = tmp_path / "pid"
    async with WorkerPool(1) as pool:
        handle = pool.submit(Job(forever, options={"path": str(path)}, run_in="process"))
        process_id = await read_pid(path)
        handle.cancel()
        with trio.fail_after(2):
            result = await handle.wait()
    assert result.status is Status.CANCELLED
    assert killed(process_id)


async def test_stop_cancel_running_kills_the_process(tmp_path: Path) -> None:
    """stop(cancel_running=True) cancels a job running in a process, and kills the process."""
    path = tmp_path / "pid"
    async with WorkerPool(1) as pool:
        pool.submit(Job(forever, options={"path": str(path)}, run_in="process"))
        process_id = await read_pid(path)
        with trio.fail_after(2):
            [result] = await pool.stop(cancel_running=True)
    assert result.status is Status.CANCELLED
    assert killed(process_id)


# -- what crosses to the process and back -------------------------------------------------


async def test_results_errors_and_keyword_arguments_round_trip() -> None:
    """Results come back; an error keeps its type, with the process's traceback in a note; args reach keywords."""
    async with WorkerPool(2) as pool:
        summed = pool.submit(Job(add, args={"a": 2, "b": 3}, run_in="process"))
        times = pool.submit(Job(scaled, args={"x": 4}, options={"factor": 10}, run_in="process"))
        failed = pool.submit(Job(fails, run_in="process"))
        results = [await handle.wait() for handle in (summed, times, failed)]
    assert [(result.status, result.data) for result in results[:2]] == [(Status.SUCCEEDED, 5), (Status.SUCCEEDED, 40)]
    error = results[2].error
    assert results[2].status is Status.FAILED
    assert type(error) is ProcessTaskError
    assert str(error) == "bad input"
    assert any("Raised in the job's process" in note and "fails" in note for note in error.__notes__)


@pytest.mark.parametrize(
    ("job", "error", "match"),
    [
        (Job(Unpicklable(), name="locked", run_in="process"), TypeError, "job 'locked': its task or options"),
        (Job(pid, options={"lock": threading.Lock()}, run_in="process"), TypeError, "job 'pid': its task or options"),
        (Job(returns_a_lock, run_in="process"), TypeError, "job 'returns_a_lock': its result could not be pickled"),
        (
            Job(raises_unpicklable, run_in="process"),
            RuntimeError,
            "job 'raises_unpicklable' raised.*: LockedError: holds a lock\n",
        ),
        (
            Job(calls_current_job, run_in="process"),
            RuntimeError,
            "current_job\\(\\) is not available in a task run in a process",
        ),
    ],
)
async def test_what_does_not_cross_fails_the_job(job: Job[Any], error: type[Exception], match: str) -> None:
    """A task, options, result or error that does not pickle fails the job with an error naming it; the pool goes on."""
    async with WorkerPool(1) as pool:
        result = await pool.submit_wait(job)
        after = await pool.submit_wait(Job(add, args={"a": 1, "b": 1}, run_in="process"))
    assert result.status is Status.FAILED
    assert isinstance(result.error, error)
    assert re.match(match, str(result.error))
    assert after.data == 2


# -- where a task runs ----------------------------------------------------------------


def test_async_task_refuses_process() -> None:
    """An async def task with run_in='process' is a ValueError naming `run_in`; an unknown value too."""
    with pytest.raises(ValueError, match="`run_in`"):
        Job(async_task, run_in="process")
    with pytest.raises(ValueError, match="`run_in`"):
        Job(pid, run_in="fork")
    with pytest.raises(ValueError, match="`run_in`"):
        WorkerPool(1, run_in="fork")
    with pytest.raises(ValueError, match="`run_in`"):
        Registry().register("a", async_task, run_in="process")


def test_process_needs_trio_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without trio-parallel, run_in='process' is an ImportError that says what to install."""
    monkeypatch.setitem(sys.modules, "trio_parallel", None)
    install = r"pip install 'workerpoolxt\[process\]'"
    with pytest.raises(ImportError, match=install):
        Job(pid, run_in="process")
    with pytest.raises(ImportError, match=install):
        WorkerPool(1, run_in="process")
    assert Job(pid, run_in="thread").run_in == "thread"


def test_run_in_is_a_field_and_not_data() -> None:
    """run_in is kept on the Job, part of its equality, and not stored by to_dict()."""
    assert Job(pid).run_in is None
    assert Job(pid, run_in="process") == Job(pid, run_in="process") != Job(pid)
    with pytest.raises(ValueError, match="`run_in`"):
        Job("handler", run_in="process").to_dict()


async def test_pool_default_applies_to_plain_tasks_that_set_none() -> None:
    """WorkerPool(run_in='process') runs plain tasks in a process, unless their job says 'thread'; async in trio."""
    async with WorkerPool(2, run_in="process") as pool:
        default = await pool.submit_wait(Job(pid))
        threaded = await pool.submit_wait(Job(pid, run_in="thread"))
        in_trio = await pool.submit_wait(Job(async_task))
    assert default.data != os.getpid()
    assert threaded.data == in_trio.data == os.getpid()


async def test_concurrency_never_exceeds_the_workers() -> None:
    """Two workers, four jobs of 0.3 s each in processes: never more than two at once, each slot busy while it works."""
    async with WorkerPool(2) as pool:
        handles = [pool.submit(Job(span, run_in="process")) for _ in range(4)]
        spans = [(await handle.wait()).data for handle in handles]
    edges = sorted([(start, 1) for _, start, _ in spans] + [(end, -1) for _, _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2
    assert len({process_id for process_id, _, _ in spans}) == 2  # each worker's process, kept between calls


async def test_registered_handler_runs_in_a_process() -> None:
    """A handler registered with run_in='process' runs in a process when a job names it; the job's own run_in wins."""
    registry = Registry()
    registry.register("pid", pid, run_in="process")
    assert registry.run_in("pid") == "process"
    async with WorkerPool(1, registry=registry) as pool:
        named = await pool.submit_wait(Job("pid"))
        threaded = await pool.submit_wait(Job("pid", run_in="thread"))
    assert named.data != os.getpid()
    assert threaded.data == os.getpid()


async def test_durable_worker_runs_a_process_handler() -> None:
    """A DurableWorker runs a handler registered with run_in='process' in a process, with its keyword args."""
    registry = Registry()
    registry.register("add", add, run_in="process")
    registry.register("pid", pid, run_in="process")
    store = MemoryStore(registry=registry)
    summed, which = await store.enqueue([Job("add", args={"a": 2, "b": 5}), Job("pid")])
    async with DurableWorker(store, registry, poll=0.05):
        with trio.fail_after(10):
            added = await store.wait(summed)
            ran = await store.wait(which)
    assert (added.status, added.result) == (TaskStatus.SUCCEEDED, 7)
    assert ran.status is TaskStatus.SUCCEEDED
    assert ran.result != os.getpid()


def test_import_loads_no_trio_parallel() -> None:
    """`import workerpoolxt` does not load trio-parallel: only a process task does."""
    probe = "import sys, workerpoolxt; print('trio_parallel' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "False"


async def test_a_named_job_in_a_process_fails_under_its_own_name() -> None:
    """A handler's job run in a process names the job, not the handler, in its errors."""
    registry = Registry()
    registry.register("lock", returns_a_lock, run_in="process")
    async with WorkerPool(1, registry=registry) as pool:
        result = await pool.submit_wait(Job("lock", name="nightly"))
    assert isinstance(result.error, TypeError)
    assert str(result.error).startswith("job 'nightly': its result could not be pickled")


async def test_async_handler_named_for_a_process_is_refused_at_submit() -> None:
    """A job naming an async handler with run_in='process' is a ValueError naming `run_in` at submit()."""
    registry = Registry()
    registry.register("async_task", async_task)
    async with WorkerPool(1, registry=registry) as pool:
        with pytest.raises(ValueError, match="`run_in`"):
            pool.submit(Job("async_task", run_in="process"))
