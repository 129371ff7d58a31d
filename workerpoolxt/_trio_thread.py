"""The threads that plain (thread-run) tasks run in, and the calls those tasks may make back into the pool.

Why not ``trio.to_thread.run_sync`` per call
--------------------------------------------
A trivial plain task through ``trio.to_thread.run_sync`` costs about five
times what ``ThreadPoolExecutor.map`` pays per call. Measured per call at 16
workers (``strace -f -c``): about 31 futex calls, 2 ``prctl`` (trio renames its
cached thread for each call and back), one write to trio's wakeup socket and
one read of it. The futexes are the GIL and the thread hand-off: each call
wakes one particular sleeping thread, and each result wakes trio's loop on its
own, so the GIL changes hands several times per call.

The threads here work as ``ThreadPoolExecutor``'s do, with trio's loop in
place of its futures:

* one queue per trio run, served by as many threads as the most calls under
  way at once (a call never waits for a thread, as a running call may wait
  for it), so a thread that ends a call takes the next one without sleeping,
  the queue's own lock the only hand-off. The threads serve until the run
  ends, as a ``ThreadPoolExecutor``'s do until its shutdown;
* an ended call goes on a list, and trio's loop is woken once for everything
  on the list (``TrioToken.run_sync_soon`` only when no wake-up is pending),
  not once per call.

That brings a call down to about 1.5 futex calls and 0.07 socket writes,
and a pool's trivial plain tasks from about 0.2x to about 0.6x the rate of
``ThreadPoolExecutor.map`` (``benchmarks``: ``wpxt_sync`` against
``threadpool_map``).

What a plain task sees of trio stays as under ``to_thread.run_sync(...,
abandon_on_cancel=True)``, which it was run with before: ``trio.from_thread``
finds the run with no token, ``trio.from_thread.check_cancelled()`` raises
once its call was abandoned, and ``trio.testing.active_thread_count()`` counts
a call from its hand-over until its task has it back or abandons it (not the
idle threads). trio keeps that state in private names (``PARENT_TASK_DATA``,
a per-thread record, and ``_track_active_thread``), so each call sets them as
``to_thread.run_sync`` does. Should a later trio lose them, every call goes
through ``to_thread.run_sync`` again, slower but the same to the task; the
tests pin what the task sees either way.
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import queue
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import outcome
import trio
import trio._threads
from sniffio import current_async_library_cvar

T = TypeVar("T")

__all__ = ["ThreadCall", "in_trio_thread", "run_in_thread"]

_THREAD_NAME: Final = "workerpoolxt plain tasks"

# See the module's docstring: the private names each call sets, if this trio has them.
_parent_task_data: Any = getattr(trio._threads, "PARENT_TASK_DATA", None)
_track_active_thread: Any = getattr(trio._threads, "_track_active_thread", None)
_OWN_THREADS = _parent_task_data is not None and _track_active_thread is not None


class ThreadCall:
    """One plain ``function(argument)`` handed to a thread, and the trio task that waits for it."""

    __slots__ = ("argument", "cancel_register", "context", "function", "returned", "task")

    def __init__(self, function: Callable[[Any], Any], argument: Any) -> None:
        self.function = function
        self.argument = argument
        self.context: contextvars.Context | None = None
        self.task: trio.lowlevel.Task | None = None
        """The task to wake with the outcome; None once the call was abandoned."""
        self.returned: trio.Event | None = None
        """Made when the call is abandoned (or as its thread starts, under ``to_thread.run_sync``); set once its
        thread has returned from it."""
        self.cancel_register: list[Any] = [None]
        """What ``trio.from_thread.check_cancelled()`` reads in the thread: the cancellation, once abandoned."""

    def run(self) -> Any:
        """Run the call, in its thread."""
        assert self.context is not None
        value = self.context.run(self.function, self.argument)
        if inspect.iscoroutine(value):
            value.close()  # no "never awaited" warning
            raise TypeError(
                f"{getattr(self.function, '__qualname__', self.function)!r} is a plain function "
                "but returned a coroutine; make it an async def function to run it in trio"
            )
        return value

    # As the limiter of ``to_thread.run_sync``, when the run's own threads are
    # not used: trio calls these as the thread starts and once it has
    # returned, even when the waiting task abandoned it.

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        self.returned = trio.Event()

    def release_on_behalf_of(self, borrower: object) -> None:
        assert self.returned is not None
        self.returned.set()

    def abort(self, raise_cancel: Callable[[], object]) -> trio.lowlevel.Abort:
        """Abandon the call to its thread: the waiting task is cancelled at once."""
        self.task = None
        self.cancel_register[0] = raise_cancel
        self.returned = trio.Event()
        return trio.lowlevel.Abort.SUCCEEDED


class _Threads:
    """The threads of one trio run, and the calls handed to them."""

    __slots__ = ("busy", "calls", "ended", "threads", "token", "wake_pending")

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[ThreadCall | None] = queue.SimpleQueue()
        """Calls for any idle thread to take; None retires a thread."""
        self.ended: collections.deque[tuple[ThreadCall, outcome.Outcome[Any]]] = collections.deque()
        """Calls their threads ended, with their outcomes, for trio's thread to deliver."""
        self.wake_pending = False
        """Whether trio's loop was asked to deliver and has not started yet."""
        self.busy = 0
        """Calls handed over and not yet delivered."""
        self.threads = 0
        self.token = trio.lowlevel.current_trio_token()
        # The threads are trio's cached ones (start_thread_soon), which no
        # limiter bounds: the callers bound their calls already (a pool's
        # workers, a chain's steps), and the 40 tokens of trio's default
        # thread limiter would cap a pool of 45.
        trio.lowlevel.spawn_system_task(self._retire_at_the_end, name="workerpoolxt threads")

    def hand_over(self, call: ThreadCall) -> None:
        # A thread for every call under way: a call never waits for a thread,
        # since a running call may be waiting for it.
        if self.busy == self.threads:
            trio.lowlevel.start_thread_soon(self._serve, _report_left, _THREAD_NAME)
            self.threads += 1
        self.busy += 1
        self.calls.put(call)

    async def _retire_at_the_end(self) -> None:
        """At the run's end (trio cancels its system tasks), retire each thread once it is idle."""
        try:
            await trio.sleep_forever()
        finally:
            for _ in range(self.threads):
                self.calls.put(None)

    def _serve(self) -> None:
        """A thread's life: take calls until told to retire."""
        calls, ended, task_data = self.calls, self.ended, _parent_task_data
        # What trio.from_thread reads, as to_thread.run_sync(abandon_on_cancel=True) sets it.
        task_data.token = self.token
        task_data.abandon_on_cancel = True
        task_data.task_register = [None]
        try:
            while True:
                call = calls.get()
                if call is None:
                    return
                task_data.cancel_register = call.cancel_register
                ended.append((call, outcome.capture(call.run)))
                del call
                # deque.append() and the flag are each atomic under the GIL.
                # The flag is cleared before ``_deliver`` reads the deque, so
                # whatever was appended before a thread saw it set is
                # delivered: at worst two threads both ask, and the second
                # delivery finds nothing.
                if not self.wake_pending:
                    self.wake_pending = True
                    try:
                        self.token.run_sync_soon(self._deliver)
                    except trio.RunFinishedError:
                        return  # the call was abandoned and its run is over: no one waits for it
        finally:
            # trio's cached thread may serve to_thread.run_sync next, which sets its own.
            for name in ("token", "abandon_on_cancel", "task_register", "cancel_register"):
                task_data.__dict__.pop(name, None)

    def _deliver(self) -> None:
        """Wake each waiting task with its call's outcome, on trio's thread."""
        self.wake_pending = False
        ended = self.ended
        while ended:
            call, result = ended.popleft()
            self.busy -= 1
            if call.task is not None:
                trio.lowlevel.reschedule(call.task, result)
            else:
                assert call.returned is not None  # abandoned: the outcome is dropped, as trio does
                call.returned.set()


def _report_left(result: outcome.Outcome[None]) -> None:
    """How a thread left: an error of ``_serve`` itself goes to trio's thread cache, which prints it."""
    result.unwrap()


_threads: Final = trio.lowlevel.RunVar[_Threads]("workerpoolxt threads")


async def run_in_thread(call: ThreadCall) -> Any:
    """Return ``call.function(call.argument)`` run in a thread; a cancellation abandons the thread.

    As ``trio.to_thread.run_sync(..., abandon_on_cancel=True)``: a cancelled
    caller hands over nothing; once handed over, a cancellation raises here
    at once while the thread runs on, and ``call.returned`` is set when it
    returns. The thread runs in a copy of the caller's context variables.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    call.context = contextvars.copy_context()
    # As to_thread.run_sync does: a library that set sniffio's variable (anyio
    # does) must not make the thread look like async code to sniffio.
    call.context.run(current_async_library_cvar.set, None)
    if not _OWN_THREADS:
        return await trio.to_thread.run_sync(
            call.run, abandon_on_cancel=True, limiter=cast("trio.CapacityLimiter", call)
        )
    try:
        threads = _threads.get()
    except LookupError:
        threads = _Threads()
        _threads.set(threads)
    call.task = trio.lowlevel.current_task()
    threads.hand_over(call)
    with _track_active_thread():
        return await trio.lowlevel.wait_task_rescheduled(call.abort)


def in_trio_thread(function: Callable[[], T], call: str) -> T:
    """Return ``function()``, run on trio's thread even when called from a thread.

    A plain task runs in a thread that trio started, and it may submit, cancel
    a handle or cancel a Context like any async task. Those calls touch trio's
    scheduler, which only trio's own thread may do, so they are handed over.

    Args:
        function: What to run on trio's thread.
        call: The public call being made, such as ``"pool.submit()"``, for the error.

    Raises:
        RuntimeError: Called from a thread that trio did not start.
    """
    if trio.lowlevel.in_trio_run():
        return function()
    # trio.from_thread finds the run only from threads trio started; from any
    # other its error speaks of a `trio_token` keyword that our calls lack.
    if not _started_by_trio():
        raise RuntimeError(
            f"{call} was called from a thread that trio did not start, so it cannot reach the pool's trio run; "
            "make the call through trio instead: trio.from_thread.run_sync(<the call>, trio_token=token), "
            "with the token that trio.lowlevel.current_trio_token() gives inside the run"
        )
    return trio.from_thread.run_sync(function)


def _started_by_trio() -> bool:
    """Whether this thread was started by ``trio.to_thread``, so ``trio.from_thread`` finds the run."""
    try:
        trio.from_thread.check_cancelled()
    except RuntimeError:
        return False
    except trio.Cancelled:  # started by trio, and its task was cancelled meanwhile
        return True
    return True
