"""Tests for plain (sync) tasks, which the pool runs in worker threads.

The autojump clock would jump while a thread works, so these tests use the real
clock. Threads are held on ``threading.Event``s that the test releases, waits are
short, and every test runs under a generous ``trio.fail_after`` as a safety net.
They check order and statuses rather than exact times.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sniffio
import trio
import trio.testing

import workerpoolxt as wpxt
from workerpoolxt import Status

SAFETY = 5.0
"""Seconds before a stuck test fails, and before a held thread gives up on its gate."""

TIMEOUT = 0.05
"""A job timeout short enough to expire while its thread is held."""


class Gates:
    """Sync tasks that each block until the test opens their gate, counting how many run at once.

    A task's options carry its index ``i``; ``started[i]`` and ``returned[i]`` are
    set when its function starts and just before it returns.
    """

    def __init__(self, count: int) -> None:
        self.gate = [threading.Event() for _ in range(count)]
        self.started = [threading.Event() for _ in range(count)]
        self.returned = [threading.Event() for _ in range(count)]
        self.calls: list[int] = []
        self.thread_names: list[str] = []
        self._lock = threading.Lock()
        self.alive = 0
        self.peak = 0

    def task(self, options: Any) -> int:
        index: int = options["i"]
        with self._lock:
            self.calls.append(index)
            self.thread_names.append(threading.current_thread().name)
            self.alive += 1
            self.peak = max(self.peak, self.alive)
        self.started[index].set()
        try:
            if not self.gate[index].wait(SAFETY):
                raise AssertionError(f"gate {index} was never opened")
            return index
        finally:
            with self._lock:
                self.alive -= 1
            self.returned[index].set()

    def job(self, index: int, **kwargs: Any) -> wpxt.Job[int]:
        return wpxt.Job(self.task, name=f"job {index}", options={"i": index}, **kwargs)

    def open_all(self) -> None:
        for gate in self.gate:
            gate.set()

    @asynccontextmanager
    async def opened_on_exit(self) -> AsyncIterator[None]:
        """Open every gate when the block ends, so a failing test never leaves a pool waiting on a thread."""
        try:
            yield
        finally:
            self.open_all()


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll until ``predicate()`` holds (the caller bounds this with fail_after).

    Threads and the pool's counters change this state without a trio.Event to
    wait on, so polling is the plain way to watch them.
    """
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(0.005)


@pytest.fixture(params=["run's threads", "to_thread"])
def hand_off(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way a sync task reaches its thread: the run's own threads, or trio.to_thread.run_sync per call.

    The second is what runs when trio lacks the private names the run's own
    threads set; it must give a task the same behaviour.
    """
    from workerpoolxt import _trio_thread

    if request.param == "to_thread":
        monkeypatch.setattr(_trio_thread, "_OWN_THREADS", False)
    return str(request.param)


async def test_sync_task_runs_in_a_worker_thread() -> None:
    """A plain function runs in another thread, gets the options, and its return value is the data."""
    trio_thread = threading.get_ident()

    def work(options: Any) -> tuple[int, str]:
        return threading.get_ident(), options["greeting"]

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1, options={"greeting": "hi"}) as pool:
            result = await pool.submit_wait(wpxt.Job(work))
    assert result.status is Status.SUCCEEDED
    assert result.attempts == 1
    thread, greeting = result.data
    assert thread != trio_thread
    assert greeting == "hi"


async def test_sync_task_raising_fails() -> None:
    """A plain function that raises gives a FAILED result holding that very exception."""
    raised: list[Exception] = []

    def broken(options: Any) -> None:
        error = KeyError("missing")
        raised.append(error)
        raise error

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            result = await pool.submit_wait(wpxt.Job(broken))
    assert result.status is Status.FAILED
    assert result.error is raised[0]


async def test_sync_task_retried() -> None:
    """A failing plain function is retried in a thread like an async task."""
    calls: list[int] = []

    def flaky(options: Any) -> str:
        calls.append(threading.get_ident())
        if len(calls) < 3:
            raise ValueError(len(calls))
        return "done"

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            result = await pool.submit_wait(wpxt.Job(flaky, retry=3, backoff=wpxt.Backoff.none()))
    assert result.status is Status.SUCCEEDED
    assert result.attempts == 3
    assert len(calls) == 3


@pytest.mark.usefixtures("hand_off")
async def test_timed_out_threads_keep_their_slots() -> None:
    """Timed-out sync jobs get TIMED_OUT at their deadline, but the next job starts only when a thread returns."""
    gates = Gates(4)
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(2) as pool, gates.opened_on_exit():
            handles = [pool.submit(gates.job(i, timeout=TIMEOUT)) for i in range(4)]
            first = [await handle.wait() for handle in handles[:2]]
            # The results exist while both threads are still held.
            assert [result.status for result in first] == [Status.TIMED_OUT, Status.TIMED_OUT]
            assert all(result.duration >= TIMEOUT for result in first)
            assert all(isinstance(result.error, wpxt.JobTimeoutError) for result in first)
            assert not gates.returned[0].is_set()
            assert not gates.returned[1].is_set()
            assert pool.running == 2
            assert pool.waiting_queue_size == 2

            # A slot wrongly freed would start job 2 within this wait.
            await trio.sleep(0.1)
            assert not gates.started[2].is_set()
            assert sorted(gates.calls) == [0, 1]

            gates.gate[0].set()
            await wait_for(gates.started[2].is_set)
            assert not gates.started[3].is_set()
            third = await handles[2].wait()
            assert third.status is Status.TIMED_OUT
            assert not gates.started[3].is_set()

            gates.gate[1].set()
            await wait_for(gates.started[3].is_set)
            fourth = await handles[3].wait()
            assert fourth.status is Status.TIMED_OUT
            gates.open_all()
            results = await pool.stop_wait()
    assert gates.peak == 2
    assert gates.calls[2:] == [2, 3]
    assert len(results) == 4
    assert {result.status for result in results} == {Status.TIMED_OUT}


async def test_stop_wait_waits_for_every_thread() -> None:
    """stop_wait() returns only once every thread, even of timed-out jobs, has returned."""
    gates = Gates(3)
    seen_at_stop: list[list[bool]] = []
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(3) as pool, gates.opened_on_exit():
            handles = [pool.submit(gates.job(i, timeout=TIMEOUT)) for i in range(3)]
            for handle in handles:
                await handle.wait()

            async def stopper() -> None:
                await pool.stop_wait()
                seen_at_stop.append([event.is_set() for event in gates.returned])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(stopper)
                await trio.sleep(0.05)
                assert seen_at_stop == []
                gates.gate[0].set()
                gates.gate[1].set()
                await wait_for(lambda: pool.running == 1)
                await trio.sleep(0.05)
                assert seen_at_stop == []
                gates.gate[2].set()
    assert seen_at_stop == [[True, True, True]]
    assert [handle.result.status for handle in handles if handle.result] == [Status.TIMED_OUT] * 3


async def test_leaving_the_block_waits_for_threads() -> None:
    """Leaving the `async with` block normally returns only after a timed-out job's thread has returned."""
    gates = Gates(1)
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool, gates.opened_on_exit():
            handle = pool.submit(gates.job(0, timeout=TIMEOUT))
            result = await handle.wait()
            assert result.status is Status.TIMED_OUT
            assert not gates.returned[0].is_set()
            gates.gate[0].set()
        assert gates.returned[0].is_set()
        assert pool.running == 0


async def test_cancelled_running_thread_keeps_its_slot(hand_off: str) -> None:
    """handle.cancel() on a running sync job gives CANCELLED at once; the slot is held until the thread returns."""
    gates = Gates(2)
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool, gates.opened_on_exit():
            running = pool.submit(gates.job(0))
            queued = pool.submit(gates.job(1))
            await wait_for(gates.started[0].is_set)
            running.cancel()
            result = await running.wait()
            assert result.status is Status.CANCELLED
            assert isinstance(result.error, wpxt.JobCancelledError)
            await trio.sleep(0.05)
            assert not gates.started[1].is_set()
            assert pool.running == 1
            gates.gate[0].set()
            gates.gate[1].set()
            second = await queued.wait()
    assert second.status is Status.SUCCEEDED
    assert second.data == 1
    assert gates.peak == 1
    # trio.to_thread names its threads after the call; the run's own threads carry one name.
    assert ("workerpoolxt plain tasks" in gates.thread_names) is (hand_off == "run's threads")


async def test_expired_while_queued_frees_slot() -> None:
    """A sync job whose Context expires while queued behind a busy worker ends TIMED_OUT unrun; later jobs run."""
    gates = Gates(3)
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool, gates.opened_on_exit():
            pool.submit(gates.job(0))
            expired = pool.submit(gates.job(1, context=wpxt.Context(timeout=TIMEOUT)))
            last = pool.submit(gates.job(2))
            await wait_for(gates.started[0].is_set)
            await trio.sleep(2 * TIMEOUT)
            gates.open_all()
            results = await pool.stop_wait()
    assert len(results) == 3
    assert expired.result is not None
    assert expired.result.status is Status.TIMED_OUT
    assert expired.result.attempts == 0
    assert expired.result.started_at is None
    assert last.result is not None
    assert last.result.status is Status.SUCCEEDED
    assert gates.calls == [0, 2]
    assert pool.running == 0


async def test_past_deadline_sync_job_frees_slot() -> None:
    """A sync job whose Context deadline passed before it starts is TIMED_OUT unrun, and the next job runs."""
    gates = Gates(2)
    with trio.fail_after(SAFETY):
        gates.open_all()
        async with wpxt.WorkerPool(1) as pool, gates.opened_on_exit():
            expired = pool.submit(gates.job(0, context=wpxt.Context(deadline=trio.current_time() - 1)))
            after = pool.submit(gates.job(1))
            results = await pool.stop_wait()
    assert [result.job_id for result in results] == [0, 1]
    assert expired.result is not None
    assert expired.result.status is Status.TIMED_OUT
    assert expired.result.attempts == 0
    assert after.result is not None
    assert after.result.status is Status.SUCCEEDED
    assert gates.calls == [1]


async def test_cancel_queued_sync_job_frees_slot() -> None:
    """Cancelling a queued sync job ends it CANCELLED unrun; the jobs after it still run and stop_wait returns."""
    gates = Gates(3)
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool, gates.opened_on_exit():
            pool.submit(gates.job(0))
            cancelled = pool.submit(gates.job(1))
            last = pool.submit(gates.job(2))
            await wait_for(gates.started[0].is_set)
            cancelled.cancel()
            assert cancelled.result is not None
            assert cancelled.result.status is Status.CANCELLED
            assert cancelled.result.attempts == 0
            gates.open_all()
            results = await pool.stop_wait()
    assert len(results) == 3
    assert last.result is not None
    assert last.result.status is Status.SUCCEEDED
    assert gates.calls == [0, 2]


async def test_retry_waits_for_the_timed_out_attempts_thread() -> None:
    """A retry starts only once the timed-out attempt's thread returns, and that wait is no attempt of its own."""
    gates = Gates(2)
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool, gates.opened_on_exit():
            stuck = pool.submit(gates.job(0, retry=1, attempt_timeout=TIMEOUT, backoff=wpxt.Backoff.none()))
            after = pool.submit(gates.job(1))
            await trio.sleep(TIMEOUT * 3)
            # Attempt 1 timed out long ago, but its thread still holds the worker.
            assert not stuck.done
            assert gates.calls == [0]
            assert pool.running == 1
            assert not gates.started[1].is_set()
            gates.open_all()
            result = await stuck.wait()
            second = await after.wait()
    assert result.status is Status.SUCCEEDED
    assert result.attempts == 2
    assert gates.calls == [0, 0, 1]
    assert gates.peak == 1
    assert second.status is Status.SUCCEEDED


async def test_deadline_before_retry_thread_starts() -> None:
    """A deadline passing while a retry waits for the last thread ends the job; the slot frees later."""
    gates = Gates(2)
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool, gates.opened_on_exit():
            job = gates.job(0, retry=1, attempt_timeout=TIMEOUT, timeout=TIMEOUT * 2, backoff=wpxt.Backoff.none())
            stuck = pool.submit(job)
            after = pool.submit(gates.job(1))
            result = await stuck.wait()
            assert result.status is Status.TIMED_OUT
            assert result.attempts == 1
            assert isinstance(result.error, wpxt.JobTimeoutError)
            assert isinstance(result.error.__cause__, wpxt.JobTimeoutError)
            # The first attempt's thread is still held; no second thread started.
            assert gates.calls == [0]
            assert not gates.returned[0].is_set()
            await trio.sleep(TIMEOUT)
            assert not gates.started[1].is_set()
            assert pool.running == 1
            gates.open_all()
            second = await after.wait()
    assert second.status is Status.SUCCEEDED
    assert gates.calls == [0, 1]
    assert gates.peak == 1


async def test_pool_threads_do_not_use_trio_default_limiter() -> None:
    """The pool runs more threads than trio's default limit of 40 at once, without borrowing from it."""
    workers = 45
    gates = Gates(workers)
    limiter = trio.to_thread.current_default_thread_limiter()
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(workers) as pool, gates.opened_on_exit():
            for i in range(workers):
                pool.submit(gates.job(i))
            await wait_for(lambda: gates.alive == workers)
            assert limiter.borrowed_tokens == 0
            assert pool.running == workers
            gates.open_all()
            results = await pool.stop_wait()
    assert gates.peak == workers
    assert {result.status for result in results} == {Status.SUCCEEDED}
    assert limiter.borrowed_tokens == 0


async def test_sync_function_returning_coroutine_fails() -> None:
    """A plain function that returns a coroutine gives FAILED with TypeError, and no 'never awaited' warning."""

    async def actually_async(options: Any) -> str:
        return "never"

    def looks_sync(options: Any) -> Any:
        return actually_async(options)

    job = wpxt.Job(looks_sync)
    assert job.is_async is False
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            result = await pool.submit_wait(job)
    assert result.status is Status.FAILED
    assert isinstance(result.error, TypeError)
    assert result.data is None


def test_sync_job_can_submit_to_its_pool() -> None:
    """A plain function may submit a job to its own pool: the child runs and the pool exits cleanly."""

    async def child(options: Any) -> str:
        return "child"

    async def main() -> tuple[wpxt.Result[Any], list[wpxt.Result[Any]]]:
        def parent(options: Any) -> int:
            return pool.submit(wpxt.Job(child, name="child")).job_id

        with trio.fail_after(SAFETY):
            # Two workers, so the second is parked idle when the thread submits.
            async with wpxt.WorkerPool(2) as pool:
                parent_result = await pool.submit(wpxt.Job(parent, name="parent")).wait()
                return parent_result, await pool.stop_wait()

    # Its own trio.run rather than a trio-mode test: should a submit from a thread
    # corrupt the run, its debris is collected here instead of failing a later
    # test. The error is kept as text, as its traceback would keep the debris alive.
    failure = None
    try:
        parent_result, results = trio.run(main)
    except BaseException as exc:
        failure = f"{type(exc).__name__}: {exc}; caused by {exc.__cause__!r}"
    gc.collect()
    assert failure is None
    assert parent_result.status is Status.SUCCEEDED
    assert parent_result.data == 1
    # The two may finish in either order.
    assert sorted((result.name, result.status) for result in results) == [
        ("child", Status.SUCCEEDED),
        ("parent", Status.SUCCEEDED),
    ]


async def test_context_cancel_from_sync_job() -> None:
    """A plain function may cancel a Context: it succeeds, and the async job under the context is cancelled at once."""
    context = wpxt.Context()
    victim_started = threading.Event()

    async def victim(options: Any) -> None:
        victim_started.set()
        await trio.sleep(1)

    def canceller(options: Any) -> str:
        assert victim_started.wait(SAFETY)
        context.cancel()
        return "cancelled it"

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(2) as pool:
            victim_handle = pool.submit(wpxt.Job(victim, context=context))
            canceller_handle = pool.submit(wpxt.Job(canceller))
    assert canceller_handle.result is not None
    assert canceller_handle.result.status is Status.SUCCEEDED
    assert victim_handle.result is not None
    assert victim_handle.result.status is Status.CANCELLED
    # Cancelled when the thread asked, not when its 1 s sleep would have ended.
    assert victim_handle.result.duration < 0.5


@pytest.mark.parametrize("call", ["pool.submit()", "handle.cancel()", "Context.cancel()"])
async def test_a_thread_trio_did_not_start_gets_a_clear_error(call: str) -> None:
    """From a thread trio did not start, submit(), handle.cancel() and Context.cancel() name the call and a way out."""
    context = wpxt.Context()
    release = trio.Event()
    errors: list[BaseException] = []

    async def held(options: Any) -> str:
        await release.wait()
        return "ran to its end"

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            handle = pool.submit(wpxt.Job(held, context=context))
            await trio.testing.wait_all_tasks_blocked()  # the job runs, so its Context reaches into trio
            calls = {
                "pool.submit()": lambda: pool.submit(wpxt.Job(held)),
                "handle.cancel()": handle.cancel,
                "Context.cancel()": context.cancel,
            }

            def foreign() -> None:
                try:
                    calls[call]()
                except BaseException as error:  # the test inspects whatever it was
                    errors.append(error)

            thread = threading.Thread(target=foreign)
            thread.start()
            await trio.to_thread.run_sync(thread.join)
            release.set()
    assert [type(error) for error in errors] == [RuntimeError]
    message = str(errors[0])
    assert message.startswith(f"{call} was called from a thread that trio did not start")
    assert "trio.from_thread.run_sync" in message
    # Nothing happened: the job ran to its end and no job was added.
    assert handle.result is not None
    assert (handle.result.status, handle.result.data) == (Status.SUCCEEDED, "ran to its end")
    assert pool.statistics().submitted == 1


async def test_trio_from_thread_works_in_a_sync_task() -> None:
    """A plain task may call trio.from_thread.run_sync and trio.from_thread.run with no token, as in any trio thread."""
    trio_thread = threading.get_ident()

    async def on_trio(value: int) -> tuple[int, int]:
        await trio.lowlevel.checkpoint()
        return threading.get_ident(), value

    def work(options: Any) -> list[tuple[int, int]]:
        return [
            trio.from_thread.run_sync(lambda: (threading.get_ident(), 1)),
            trio.from_thread.run(on_trio, 2),
        ]

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            result = await pool.submit_wait(wpxt.Job(work))
    assert result.status is Status.SUCCEEDED, result.error
    assert result.data == [(trio_thread, 1), (trio_thread, 2)]


async def test_check_cancelled_sees_its_own_call() -> None:
    """In a sync task, trio.from_thread.check_cancelled() raises once its job is cancelled, and not in the next job.

    The next job runs on the same thread: the cancellation belongs to the call
    it was made for, not to the thread.
    """
    seen: list[tuple[int, str]] = []
    cancelled = threading.Event()

    def poll(options: Any) -> None:
        index = options["i"]
        if index == 1:
            assert cancelled.wait(SAFETY)
        try:
            trio.from_thread.check_cancelled()
        except trio.Cancelled:
            seen.append((threading.get_ident(), "cancelled"))
            raise
        seen.append((threading.get_ident(), "running"))

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            first = pool.submit(wpxt.Job(poll, options={"i": 1}))
            await trio.sleep(0.01)
            first.cancel()
            cancelled.set()
            second = await pool.submit_wait(wpxt.Job(poll, options={"i": 2}))
    assert first.result is not None
    assert first.result.status is Status.CANCELLED
    assert second.status is Status.SUCCEEDED, second.error
    assert [state for _, state in seen] == ["cancelled", "running"]
    assert seen[0][0] == seen[1][0]


async def test_threads_are_reused_and_no_more_than_the_calls_at_once() -> None:
    """Many sync jobs on 4 workers run on at most 4 threads: a thread takes the next call instead of a new one."""

    def work(options: Any) -> int:
        return threading.get_ident()

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(4) as pool:
            for _ in range(200):
                pool.submit(wpxt.Job(work))
            results = await pool.stop_wait()
    assert {result.status for result in results} == {Status.SUCCEEDED}
    assert 1 <= len({result.data for result in results}) <= 4


def test_threads_leave_with_their_trio_run() -> None:
    """The threads serving sync tasks, one of them abandoned, all stop serving soon after their trio.run returns.

    They are trio's cached threads, which trio keeps for a while to reuse;
    while one serves sync tasks it carries the pool's thread name.
    """
    release = threading.Event()
    names: list[str] = []

    def work(options: Any) -> None:
        names.append(threading.current_thread().name)
        if options["hold"]:
            release.wait(SAFETY)

    async def main() -> None:
        with trio.fail_after(SAFETY):
            async with wpxt.WorkerPool(3) as pool:
                held = pool.submit(wpxt.Job(work, options={"hold": True}))
                for _ in range(10):
                    pool.submit(wpxt.Job(work, options={"hold": False}))
                await trio.sleep(0.05)
                # Still held: cancelling it abandons its thread, and the
                # pool holds its worker until the thread returns.
                held.cancel()
                release.set()

    def serving() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name == names[0]]

    trio.run(main)
    assert len(names) == 11
    assert set(names) == {"workerpoolxt plain tasks"}
    deadline = time.monotonic() + SAFETY
    while serving() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert serving() == []


async def test_active_thread_count_counts_calls_not_idle_threads() -> None:
    """trio.testing.active_thread_count() counts a sync task while it runs, not once it returned or was abandoned."""
    gates = Gates(2)
    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(2) as pool, gates.opened_on_exit():
            done = pool.submit(gates.job(0))
            held = pool.submit(gates.job(1))
            await wait_for(lambda: gates.started[0].is_set() and gates.started[1].is_set())
            assert trio.testing.active_thread_count() == 2
            gates.gate[0].set()
            await done.wait()
            assert trio.testing.active_thread_count() == 1
            held.cancel()  # abandoned: trio counts it no longer, though its thread runs on
            await held.wait()
            assert trio.testing.active_thread_count() == 0
            await trio.testing.wait_all_threads_completed()
            assert not gates.returned[1].is_set()
            gates.gate[1].set()


@pytest.mark.usefixtures("hand_off")
async def test_sync_task_sees_its_job_and_reaches_trio() -> None:
    """A sync task sees its job and reaches trio with trio.from_thread, whichever way it reached its thread."""

    def work(options: Any) -> tuple[str, int]:
        return wpxt.current_job().name, trio.from_thread.run_sync(lambda: 7)

    with trio.fail_after(SAFETY):
        async with wpxt.WorkerPool(1) as pool:
            result = await pool.submit_wait(wpxt.Job(work, name="seen"))
    assert result.status is Status.SUCCEEDED, result.error
    assert result.data == ("seen", 7)


@pytest.mark.usefixtures("hand_off")
async def test_sync_task_is_no_async_code_to_sniffio() -> None:
    """sniffio finds no async library in a sync task's thread, even when a library (anyio) set its variable."""
    found: list[str] = []

    def work(options: Any) -> None:
        with pytest.raises(sniffio.AsyncLibraryNotFoundError):
            found.append(sniffio.current_async_library())

    token = sniffio.current_async_library_cvar.set("trio")
    try:
        with trio.fail_after(SAFETY):
            async with wpxt.WorkerPool(1) as pool:
                result = await pool.submit_wait(wpxt.Job(work))
    finally:
        sniffio.current_async_library_cvar.reset(token)
    assert result.status is Status.SUCCEEDED, result.error
    assert found == []
