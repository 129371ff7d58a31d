"""SupervisorObserver: which methods are called, when, in which task, how often, and what an observer's error does."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from workerpoolxt import Backoff
from workerpoolxt.supervise import (
    ExecutionEnded,
    ExecutionStarted,
    ServiceStatus,
    Supervisor,
    SupervisorObserver,
    current_service,
)

Event = ExecutionStarted | ExecutionEnded


class Recording(SupervisorObserver):
    """Notes every event it is told of, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def execution_started(self, event: ExecutionStarted) -> None:
        self.events.append(event)

    def execution_ended(self, event: ExecutionEnded) -> None:
        self.events.append(event)


def started(name: str, execution_id: str, attempt: int, retry: int, time: float) -> ExecutionStarted:
    return ExecutionStarted(name=name, execution_id=execution_id, attempt=attempt, retry=retry, time=time)


def ended(
    start: ExecutionStarted,
    time: float,
    status: ServiceStatus,
    error: BaseException | None = None,
    restart_in: float | None = None,
) -> ExecutionEnded:
    return ExecutionEnded(
        name=start.name,
        execution_id=start.execution_id,
        attempt=start.attempt,
        retry=start.retry,
        time=time,
        status=status,
        error=error,
        restart_in=restart_in,
    )


def errors(events: list[Event]) -> list[BaseException | None]:
    return [event.error for event in events if isinstance(event, ExecutionEnded)]


def flaky(failures: int, seconds: float = 1.0) -> tuple[Callable[[], Awaitable[None]], list[str]]:
    """A service that runs ``seconds``, failing its first ``failures`` attempts; and the ids of its executions."""
    ids: list[str] = []

    async def service() -> None:
        ids.append(current_service().execution_id)
        await trio.sleep(seconds)
        if len(ids) <= failures:
            raise ValueError(f"failure {len(ids)}")

    return service, ids


async def forever() -> None:
    await trio.sleep_forever()


async def test_events_come_in_order_with_exact_times(autojump_clock: trio.testing.MockClock) -> None:
    """Two failures then a success give started/ended pairs at the run's own times, with restart_in from the backoff."""
    service, ids = flaky(2)
    recording = Recording()
    supervisor = Supervisor(retry=3, backoff=Backoff(initial=1, multiplier=2, jitter=0))
    supervisor.add(service, name="feed", defer=0.5)
    supervisor.add_observer(recording)
    async with supervisor:
        await trio.sleep(20)
    first, second, third = (started("feed", ids[n], n + 1, 3, time) for n, time in enumerate((0.5, 2.5, 5.5)))
    assert recording.events == [
        first,
        ended(first, 1.5, ServiceStatus.ERROR, errors(recording.events)[0], restart_in=1.0),
        second,
        ended(second, 3.5, ServiceStatus.ERROR, errors(recording.events)[1], restart_in=2.0),
        third,
        ended(third, 6.5, ServiceStatus.SUCCESS),
    ]
    assert [repr(error) for error in errors(recording.events)] == [
        "ValueError('failure 1')",
        "ValueError('failure 2')",
        "None",
    ]


async def test_the_last_failure_has_no_restart_and_a_stop_ends_stopped(autojump_clock: trio.testing.MockClock) -> None:
    """With no retries left, restart_in is None; a running service that a stop ends is STOPPED by a Cancelled."""
    broken, broken_ids = flaky(10, seconds=0.0)
    recording = Recording()
    supervisor = Supervisor(retry=1)
    supervisor.add(broken, name="broken")
    supervisor.add(forever)
    supervisor.add_observer(recording)
    async with supervisor:
        await trio.sleep(2)
    by_name = {name: [e for e in recording.events if e.name == name] for name in ("broken", "forever")}
    first, second = (started("broken", broken_ids[n], n + 1, 1, 0.0) for n in range(2))
    broken_errors = errors(by_name["broken"])
    assert by_name["broken"] == [
        first,
        ended(first, 0.0, ServiceStatus.ERROR, broken_errors[0], restart_in=0.0),
        second,
        ended(second, 0.0, ServiceStatus.ERROR, broken_errors[1]),
    ]
    assert [type(error) for error in broken_errors] == [ValueError, ValueError]
    [start, end] = by_name["forever"]
    assert isinstance(start, ExecutionStarted)
    assert isinstance(end, ExecutionEnded)
    assert end == ended(start, 2.0, ServiceStatus.STOPPED, end.error)
    assert isinstance(end.error, trio.Cancelled)


async def test_only_the_overridden_methods_are_called(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An observer overriding only execution_ended is never called through the base's execution_started."""
    calls: list[str] = []

    def base_started(self: SupervisorObserver, event: ExecutionStarted) -> None:
        calls.append(f"base started {type(self).__name__}")

    monkeypatch.setattr(SupervisorObserver, "execution_started", base_started)

    class EndsOnly(SupervisorObserver):
        def execution_ended(self, event: ExecutionEnded) -> None:
            calls.append(f"ended {event.status}")

    class StartsOnly(SupervisorObserver):
        def execution_started(self, event: ExecutionStarted) -> None:
            calls.append("started")

    supervisor = Supervisor(forever)
    supervisor.add_observer(EndsOnly())
    supervisor.add_observer(StartsOnly())
    async with supervisor:
        await trio.sleep(1)
    assert calls == ["started", "ended stopped"]


async def test_a_failing_observer_harms_nothing_and_is_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An observer raising in both methods is logged each time; the service restarts and the others hear all."""

    class Broken(SupervisorObserver):
        def execution_started(self, event: ExecutionStarted) -> None:
            raise RuntimeError("metrics down")

        def execution_ended(self, event: ExecutionEnded) -> None:
            raise RuntimeError("metrics down")

    service, ids = flaky(1)
    recording = Recording()
    supervisor = Supervisor(retry=1)
    supervisor.add(service, name="feed")
    for observer in (Broken(), recording, Broken()):
        supervisor.add_observer(observer)
    async with supervisor:
        await trio.sleep(5)
    assert supervisor.execution("feed").status is ServiceStatus.SUCCESS
    assert [(type(e).__name__, e.attempt, e.time) for e in recording.events] == [
        ("ExecutionStarted", 1, 0.0),
        ("ExecutionEnded", 1, 1.0),
        ("ExecutionStarted", 2, 1.0),
        ("ExecutionEnded", 2, 2.0),
    ]
    failures = [r for r in caplog.records if r.name == "workerpoolxt" and r.getMessage().startswith("observer")]
    assert [record.getMessage() for record in failures] == [
        f"observer {test_a_failing_observer_harms_nothing_and_is_logged.__name__}.<locals>.Broken.{method} failed "
        "for service 'feed'"
        for method in ["execution_started"] * 2
        + ["execution_ended"] * 2
        + ["execution_started"] * 2
        + ["execution_ended"] * 2
    ]
    assert all(r.levelno == logging.ERROR and r.exc_info and str(r.exc_info[1]) == "metrics down" for r in failures)
    fields = [(r.service_name, r.execution_id, r.attempt) for r in failures]  # type: ignore[attr-defined]
    assert fields == [("feed", ids[0], 1)] * 4 + [("feed", ids[1], 2)] * 4


async def interrupt() -> None:
    await trio.sleep(1)
    raise KeyboardInterrupt


async def messy() -> None:
    try:
        await trio.sleep_forever()
    finally:
        raise ValueError("cleanup failed")


async def stop_at_1(supervisor: Supervisor) -> None:
    await trio.sleep(1)
    await supervisor.stop()


async def raise_at_1(supervisor: Supervisor) -> None:
    await trio.sleep(1)
    raise ZeroDivisionError


async def wait(supervisor: Supervisor) -> None:
    await trio.sleep_forever()


@pytest.mark.parametrize(
    ("service", "block", "outcome", "error"),
    [
        pytest.param(forever, stop_at_1, None, trio.Cancelled, id="stopped"),
        pytest.param(messy, stop_at_1, None, ValueError, id="cleanup-raises-when-stopped"),
        pytest.param(forever, raise_at_1, ZeroDivisionError, trio.Cancelled, id="block-raises"),
        pytest.param(interrupt, wait, KeyboardInterrupt, KeyboardInterrupt, id="keyboard-interrupt"),
    ],
)
async def test_ended_follows_started_exactly_once_however_the_run_ends(
    autojump_clock: trio.testing.MockClock,
    service: Callable[[], Awaitable[None]],
    block: Callable[[Supervisor], Awaitable[None]],
    outcome: type[BaseException] | None,
    error: type[BaseException],
) -> None:
    """A run ended by a stop, by its cleanup raising, by the block raising or by KeyboardInterrupt gets one end."""
    recording = Recording()
    supervisor = Supervisor(service, retry=3)
    supervisor.add_observer(recording)
    if outcome is None:
        async with supervisor:
            await block(supervisor)
    else:
        with pytest.raises(outcome):
            async with supervisor:
                await block(supervisor)
    [start, end] = recording.events
    assert isinstance(start, ExecutionStarted)
    assert isinstance(end, ExecutionEnded)
    assert end == ended(start, 1.0, ServiceStatus.STOPPED, end.error)
    assert type(end.error) is error


async def test_an_outer_cancellation_ends_the_run_once(autojump_clock: trio.testing.MockClock) -> None:
    """A cancel scope around the supervisor that expires gives the run one STOPPED end, by a Cancelled."""
    recording = Recording()
    supervisor = Supervisor(forever, retry=3)
    supervisor.add_observer(recording)
    with trio.move_on_after(1):
        async with supervisor:
            await trio.sleep_forever()
    [start, end] = recording.events
    assert isinstance(start, ExecutionStarted)
    assert isinstance(end, ExecutionEnded)
    assert end == ended(start, 1.0, ServiceStatus.STOPPED, end.error)
    assert isinstance(end.error, trio.Cancelled)


async def test_a_service_stopped_before_it_ran_produces_no_events(autojump_clock: trio.testing.MockClock) -> None:
    """Stops before the task first ran, during the deferral, and during the wait to restart produce no events."""
    service, _ = flaky(10, seconds=0.0)
    recording = Recording()
    supervisor = Supervisor(backoff=Backoff(initial=5, jitter=0), retry=3)
    supervisor.add(forever, name="unstarted")
    supervisor.add(forever, name="deferred", defer=5)
    supervisor.add(service, name="waiting")
    supervisor.add_observer(recording)
    async with supervisor:
        await supervisor.stop()  # before the tasks first ran
    async with Supervisor(retry=3, backoff=Backoff(initial=5, jitter=0)) as second:
        second.add_observer(recording)
        second.add(forever, name="deferred", defer=5)
        second.add(service, name="waiting")
        await trio.sleep(1)
    assert [(type(e).__name__, e.name) for e in recording.events] == [
        ("ExecutionStarted", "waiting"),
        ("ExecutionEnded", "waiting"),
    ]
    assert recording.events[1].status is ServiceStatus.ERROR  # type: ignore[union-attr]
    assert recording.events[1].restart_in == 5.0  # type: ignore[union-attr]
    assert [report.status for report in supervisor.executions().values()] == [ServiceStatus.STOPPED] * 3
    assert [report.status for report in second.executions().values()] == [ServiceStatus.STOPPED] * 2


async def test_add_observer_is_idempotent_and_checks_its_argument(autojump_clock: trio.testing.MockClock) -> None:
    """The same observer added twice hears each event once; something not an observer is a TypeError."""
    recording = Recording()
    supervisor = Supervisor(forever)
    supervisor.add_observer(recording)
    supervisor.add_observer(recording)
    async with supervisor:
        await trio.sleep(1)
    assert [type(event).__name__ for event in recording.events] == ["ExecutionStarted", "ExecutionEnded"]
    with pytest.raises(TypeError, match=r"`observer` must be a SupervisorObserver \(subclass it .*\), not object"):
        supervisor.add_observer(object())  # type: ignore[arg-type]


async def test_an_observer_added_during_a_run_hears_from_the_next(autojump_clock: trio.testing.MockClock) -> None:
    """Added while attempt 1 runs, an observer is told of attempt 2's start and end, never attempt 1's end."""
    service, _ = flaky(1)
    recording = Recording()
    async with Supervisor(retry=1) as supervisor:
        supervisor.add(service, name="feed")
        await trio.sleep(0.5)
        supervisor.add_observer(recording)
        await trio.sleep(5)
    assert [(type(e).__name__, e.attempt, e.time) for e in recording.events] == [
        ("ExecutionStarted", 2, 1.0),
        ("ExecutionEnded", 2, 2.0),
    ]


SPAN: contextvars.ContextVar[str | None] = contextvars.ContextVar("span", default=None)


class Tracing(SupervisorObserver):
    """Makes a value current in the service's task, as a tracer makes a span current, and notes what it finds."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tokens: dict[str, contextvars.Token[str | None]] = {}
        self.found_at_start: list[str | None] = []
        self.tasks: list[trio.lowlevel.Task] = []

    def execution_started(self, event: ExecutionStarted) -> None:
        self.found_at_start.append(SPAN.get())
        self.tasks.append(trio.lowlevel.current_task())
        self.tokens[event.execution_id] = SPAN.set(f"{self.label} {event.attempt}")

    def execution_ended(self, event: ExecutionEnded) -> None:
        self.tasks.append(trio.lowlevel.current_task())
        SPAN.reset(self.tokens.pop(event.execution_id))


async def test_a_context_variable_set_in_started_is_seen_by_the_run_and_gone_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two observers setting one context variable: the run and its child see the inner value, and both resets nest."""
    seen: list[tuple[str | None, str | None]] = []
    service_tasks: list[trio.lowlevel.Task] = []

    async def child(found: list[str | None]) -> None:
        found.append(SPAN.get())

    async def service() -> None:
        service_tasks.append(trio.lowlevel.current_task())
        found: list[str | None] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, found)
        seen.append((SPAN.get(), found[0]))
        await trio.sleep(1)
        if len(seen) == 1:
            raise ValueError("restart me")

    outer, inner = Tracing("outer"), Tracing("inner")
    supervisor = Supervisor(service, retry=1)
    supervisor.add_observer(outer)
    supervisor.add_observer(inner)
    async with supervisor:
        await trio.sleep(5)
        assert SPAN.get() is None
    assert seen == [("inner 1", "inner 1"), ("inner 2", "inner 2")]
    # The second start in the same task finds the variable as the task had it: both ends reset it, in nesting order.
    assert outer.found_at_start == [None, None]
    assert inner.found_at_start == ["outer 1", "outer 2"]
    assert outer.tasks == inner.tasks == [service_tasks[0]] * 4
    assert service_tasks == [service_tasks[0]] * 2
    assert outer.tokens == inner.tokens == {}


async def test_current_service_works_in_both_methods(autojump_clock: trio.testing.MockClock) -> None:
    """An observer can call current_service() in execution_started and execution_ended, and gets the event's run."""
    found: list[tuple[str, str]] = []

    class Looking(SupervisorObserver):
        def execution_started(self, event: ExecutionStarted) -> None:
            found.append(("started", current_service().execution_id))

        def execution_ended(self, event: ExecutionEnded) -> None:
            found.append(("ended", current_service().execution_id))

    supervisor = Supervisor(forever)
    supervisor.add_observer(Looking())
    async with supervisor:
        await trio.sleep(1)
        execution_id: Any = supervisor.execution("forever").execution_id
    assert found == [("started", execution_id), ("ended", execution_id)]
