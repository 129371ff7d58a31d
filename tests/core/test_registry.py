"""Tests for ``Registry``: registering named handlers, and pools running jobs that name them."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio
import trio.testing

import workerpoolxt as wpxt
from workerpoolxt import HandlerExistsError, Job, Registry, Status, UnknownHandlerError, WorkerPool, WorkerPoolError

SAFETY = 5.0
"""Seconds before a test running a plain task on the real clock fails rather than hangs."""


async def first(options: Any) -> str:
    return "first"


async def second(options: Any) -> str:
    return "second"


# -- the Registry object ---------------------------------------------------------------


def test_register_returns_the_task() -> None:
    """register(name, fn) stores fn under name and returns fn itself."""
    registry = Registry()
    assert registry.register("first", first) is first
    assert registry["first"] is first


def test_decorator_registers_and_returns_function_unchanged() -> None:
    """@registry.register("x") registers the function and leaves the decorated name bound to it."""
    registry = Registry()

    async def original(options: Any) -> str:
        return "x"

    decorated = registry.register("x")(original)

    @registry.register("y")
    async def handler(options: Any) -> str:
        return "y"

    assert decorated is original
    assert registry["x"] is original
    assert registry["y"] is handler
    assert handler.__name__ == "handler"


def test_same_task_under_two_names() -> None:
    """One task may be registered under several names."""
    registry = Registry()
    registry.register("a", first)
    registry.register("b", first)
    assert registry["a"] is registry["b"] is first
    assert len(registry) == 2


def test_register_twice_raises_and_keeps_first() -> None:
    """Registering a taken name raises HandlerExistsError naming it; the first handler stays."""
    registry = Registry()
    registry.register("send_email", first)
    with pytest.raises(HandlerExistsError, match="'send_email'") as excinfo:
        registry.register("send_email", second)
    assert excinfo.value.name == "send_email"
    assert isinstance(excinfo.value, ValueError)
    assert isinstance(excinfo.value, WorkerPoolError)
    assert registry["send_email"] is first
    assert len(registry) == 1


def test_decorator_register_twice_raises_and_keeps_first() -> None:
    """The decorator form also refuses a taken name, keeping the first handler."""
    registry = Registry()
    registry.register("job", first)
    with pytest.raises(HandlerExistsError, match="'job'"):

        @registry.register("job")
        async def again(options: Any) -> None:
            pass

    assert registry["job"] is first


@pytest.mark.parametrize("name", ["", None, 1, b"send_email", ["send_email"]])
def test_bad_name_is_type_error(name: object) -> None:
    """An empty or non-str name is a TypeError naming `name`, in both forms, and registers nothing."""
    registry = Registry()
    with pytest.raises(TypeError, match="`name`"):
        registry.register(name, first)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`name`"):
        registry.register(name)  # type: ignore[call-overload]
    assert len(registry) == 0


@pytest.mark.parametrize("task", [42, "first", object()])
def test_non_callable_is_type_error(task: object) -> None:
    """A non-callable task is a TypeError naming `task`, in both forms, and registers nothing."""
    registry = Registry()
    with pytest.raises(TypeError, match="`task`"):
        registry.register("job", task)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="`task`"):
        registry.register("job")(task)  # type: ignore[arg-type]
    assert "job" not in registry
    assert len(registry) == 0


def test_explicit_none_task_is_type_error() -> None:
    """register(name, None) is a non-callable task, so a TypeError, not a silently returned decorator."""
    registry = Registry()
    with pytest.raises(TypeError, match="`task`"):
        registry.register("job", None)  # type: ignore[call-overload]
    assert "job" not in registry


def test_container_protocol() -> None:
    """`in`, len() and iteration see the registered names, in registration order."""
    registry = Registry()
    assert len(registry) == 0
    assert list(registry) == []
    assert "b" not in registry
    registry.register("b", first)
    registry.register("a", second)
    assert "b" in registry
    assert "a" in registry
    assert "c" not in registry
    assert 1 not in registry
    assert len(registry) == 2
    assert list(registry) == ["b", "a"]


def test_missing_name_raises_unknown_handler_error() -> None:
    """registry["missing"] raises UnknownHandlerError, a LookupError naming the handler."""
    registry = Registry()
    registry.register("present", first)
    with pytest.raises(UnknownHandlerError, match="'missing'") as excinfo:
        registry["missing"]
    assert excinfo.value.name == "missing"
    assert isinstance(excinfo.value, LookupError)
    assert isinstance(excinfo.value, WorkerPoolError)


def test_repr_lists_names() -> None:
    """The repr lists the registered names."""
    registry = Registry()
    registry.register("b", first)
    registry.register("a", second)
    assert repr(registry) == "<Registry ['a', 'b']>"


# -- named jobs in a pool --------------------------------------------------------------


async def test_named_job_runs_handler_reading_args(autojump_clock: trio.testing.MockClock) -> None:
    """Job("send_email", args=...) runs the registered handler, which reads its args via current_job()."""
    registry = Registry()
    sent: list[tuple[str, float]] = []

    @registry.register("send_email")
    async def send_email(options: Any) -> str:
        await trio.sleep(1.5)
        address = wpxt.current_job().args["to"]
        sent.append((address, trio.current_time()))
        return f"sent to {address}"

    async with WorkerPool(2, registry=registry) as pool:
        result = await pool.submit_wait(Job("send_email", args={"to": "a@b"}))
    assert sent == [("a@b", 1.5)]
    assert result.status is Status.SUCCEEDED
    assert result.data == "sent to a@b"
    assert result.name == "send_email"
    assert result.finished_at == 1.5


async def test_result_name_is_explicit_name(autojump_clock: trio.testing.MockClock) -> None:
    """A named job with an explicit name reports that name; without one, the handler's name."""
    registry = Registry()
    registry.register("greet", first)
    async with WorkerPool(2, registry=registry) as pool:
        named = pool.submit(Job("greet", name="greeting ada"))
        plain = pool.submit(Job("greet"))
        assert named.name == "greeting ada"
        assert plain.name == "greet"
    assert named.result is not None
    assert named.result.name == "greeting ada"
    assert named.result.data == "first"
    assert plain.result is not None
    assert plain.result.name == "greet"


async def test_unknown_name_raises_at_submit(autojump_clock: trio.testing.MockClock) -> None:
    """submit() of a job naming an unknown handler raises UnknownHandlerError there; no Result is made."""
    registry = Registry()
    registry.register("known", first)
    async with WorkerPool(2, registry=registry) as pool:
        with pytest.raises(UnknownHandlerError, match="'nope'") as excinfo:
            pool.submit(Job("nope", args={"x": 1}))
        assert excinfo.value.name == "nope"
        assert pool.statistics().submitted == 0
        results = await pool.stop_wait()
    assert results == []


async def test_unknown_name_raises_from_asubmit_and_submit_wait(autojump_clock: trio.testing.MockClock) -> None:
    """await pool.asubmit() and submit_wait() raise UnknownHandlerError for an unknown handler, queueing nothing."""
    registry = Registry()
    registry.register("known", first)
    async with WorkerPool(2, registry=registry) as pool:
        with pytest.raises(UnknownHandlerError, match="'nope'"):
            await pool.asubmit(Job("nope"))
        with pytest.raises(UnknownHandlerError, match="'nope'"):
            await pool.submit_wait(Job("nope"))
        assert pool.statistics().submitted == 0
        known = await pool.submit_wait(Job("known"))
    assert known.status is Status.SUCCEEDED
    assert known.data == "first"
    assert known.job_id == 0


async def test_unknown_name_with_full_queue_raises_unknown_handler(autojump_clock: trio.testing.MockClock) -> None:
    """With the queue full, an unknown handler is still an UnknownHandlerError from submit(), not QueueFullError."""
    registry = Registry()
    registry.register("slow", first)

    async def slow(options: Any) -> None:
        await trio.sleep(1)

    async with WorkerPool(1, registry=registry, max_queue=1) as pool:
        pool.submit(Job(slow))
        await trio.testing.wait_all_tasks_blocked()
        pool.submit(Job(slow))
        with pytest.raises(wpxt.QueueFullError):
            pool.submit(Job(slow))
        with pytest.raises(UnknownHandlerError):
            pool.submit(Job("nope"))
        with pytest.raises(UnknownHandlerError):
            await pool.asubmit(Job("nope"))
        assert trio.current_time() == 0.0
    assert trio.current_time() == 2.0


async def test_named_job_without_registry_raises_at_submit(autojump_clock: trio.testing.MockClock) -> None:
    """A pool with no registry refuses a named job at submit() with UnknownHandlerError."""
    async with WorkerPool(2) as pool:
        with pytest.raises(UnknownHandlerError, match="'send_email'"):
            pool.submit(Job("send_email"))
        with pytest.raises(UnknownHandlerError, match="'send_email'"):
            await pool.submit_wait(Job("send_email"))
        assert pool.statistics().submitted == 0


async def test_handler_registered_after_pool_start_is_found(autojump_clock: trio.testing.MockClock) -> None:
    """Names are resolved at submit(), so a handler registered after the pool started is found."""
    registry = Registry()
    async with WorkerPool(1, registry=registry) as pool:
        with pytest.raises(UnknownHandlerError):
            pool.submit(Job("late"))
        registry.register("late", second)
        result = await pool.submit_wait(Job("late"))
    assert result.data == "second"


async def test_sync_handler_runs_in_a_thread() -> None:
    """A plain-function handler runs in a worker thread, and sees its args and options there."""
    registry = Registry()
    trio_thread = threading.get_ident()

    @registry.register("resize")
    def resize(options: Any) -> tuple[int, int, str]:
        return threading.get_ident(), wpxt.current_job().args["width"], options["quality"]

    with trio.fail_after(SAFETY):
        async with WorkerPool(1, registry=registry, options={"quality": "high"}) as pool:
            result = await pool.submit_wait(Job("resize", args={"width": 640}))
    assert result.status is Status.SUCCEEDED
    thread, width, quality = result.data
    assert thread != trio_thread
    assert width == 640
    assert quality == "high"


async def test_named_job_options_behave_as_for_callables(autojump_clock: trio.testing.MockClock) -> None:
    """A handler gets the pool's options when its job has none, and the job's own (unmerged) when set."""
    registry = Registry()

    @registry.register("show")
    async def show(options: Any) -> dict[str, Any]:
        return dict(options)

    async with WorkerPool(2, registry=registry, options={"pool": 1}) as pool:
        default = await pool.submit_wait(Job("show"))
        own = await pool.submit_wait(Job("show", options={"job": 2}))
    assert default.data == {"pool": 1}
    assert own.data == {"job": 2}


async def test_named_job_retry_and_timeout_apply(autojump_clock: trio.testing.MockClock) -> None:
    """A named job's retry, backoff and timeout apply to its handler as they would to a callable."""
    registry = Registry()
    calls: list[float] = []

    @registry.register("flaky")
    async def flaky(options: Any) -> str:
        calls.append(trio.current_time())
        if len(calls) < 3:
            raise ValueError(len(calls))
        return "ok"

    @registry.register("slow")
    async def slow(options: Any) -> None:
        await trio.sleep(10)

    backoff = wpxt.Backoff(initial=1, multiplier=2, jitter=0)
    async with WorkerPool(2, registry=registry) as pool:
        retried = pool.submit(Job("flaky", retry=2, backoff=backoff))
        timed = pool.submit(Job("slow", timeout=2.5))
    assert calls == [0.0, 1.0, 3.0]
    assert retried.result is not None
    assert retried.result.status is Status.SUCCEEDED
    assert retried.result.attempts == 3
    assert retried.result.data == "ok"
    assert timed.result is not None
    assert timed.result.status is Status.TIMED_OUT
    assert timed.result.name == "slow"
    assert timed.result.finished_at == 2.5


async def test_pool_retry_and_timeout_apply_to_named_jobs(autojump_clock: trio.testing.MockClock) -> None:
    """The pool's default retry and timeout apply to a named job that sets none."""
    registry = Registry()
    calls: list[float] = []

    @registry.register("always_fails")
    async def always_fails(options: Any) -> None:
        calls.append(trio.current_time())
        await trio.sleep(1)
        raise RuntimeError("boom")

    async with WorkerPool(1, registry=registry, retry=5, backoff=wpxt.Backoff.none(), timeout=2.5) as pool:
        result = await pool.submit_wait(Job("always_fails"))
    assert calls == [0.0, 1.0, 2.0]
    assert result.status is Status.TIMED_OUT
    assert result.finished_at == 2.5
    assert result.attempts == 3


async def test_named_job_cancelled_through_handle(autojump_clock: trio.testing.MockClock) -> None:
    """A running named job is cancelled by its handle like any job."""
    registry = Registry()

    @registry.register("slow")
    async def slow(options: Any) -> None:
        await trio.sleep(10)

    async with WorkerPool(1, registry=registry) as pool:
        handle = pool.submit(Job("slow"))
        await trio.sleep(1)
        handle.cancel()
    assert handle.result is not None
    assert handle.result.status is Status.CANCELLED
    assert handle.result.finished_at == 1.0


async def test_sync_task_submits_named_job_from_its_thread() -> None:
    """A plain task may submit a named job to its pool from its thread; the name resolves there."""
    registry = Registry()
    registry.register("child", first)

    def parent(options: Any) -> int:
        pool = options["pool"]
        return pool.submit(Job("child")).job_id

    with trio.fail_after(SAFETY):
        async with WorkerPool(2, registry=registry) as pool:
            parent_result = await pool.submit_wait(Job(parent, options={"pool": pool}))
            assert parent_result.status is Status.SUCCEEDED
        results = await pool.stop_wait()
    child = next(r for r in results if r.job_id == parent_result.data)
    assert child.name == "child"
    assert child.data == "first"


@pytest.mark.parametrize("registry", [object(), {"send_email": first}, "registry"])
def test_pool_registry_must_be_a_registry(registry: object) -> None:
    """WorkerPool(registry=...) with anything but a Registry or None is a TypeError naming `registry`."""
    with pytest.raises(TypeError, match="`registry`"):
        WorkerPool(2, registry=registry)  # type: ignore[arg-type]


def test_empty_handler_name_in_job_is_value_error() -> None:
    """Job("") is refused at construction, naming `task`."""
    with pytest.raises(ValueError, match="`task`"):
        Job("")
