"""Supervisor: deferral, restarts with backoff, stops, reports, health, current_service() and argument checks."""

from __future__ import annotations

import datetime
import functools
import inspect
import logging
import pickle
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from workerpoolxt import Backoff, WorkerPoolError, supervise
from workerpoolxt._health import Health
from workerpoolxt.supervise import (
    ExecutionEnded,
    ExecutionStarted,
    RunningService,
    ServiceEvent,
    ServiceExecution,
    ServiceExistsError,
    ServiceNotFoundError,
    ServiceStatus,
    Supervisor,
    SupervisorClosedError,
    current_service,
)
from workerpoolxt.supervise._supervisor import MAX_EVENTS

ServiceFn = Callable[[], Awaitable[object]]


def timeline(supervisor: Supervisor, name: str) -> list[tuple[float, str]]:
    """The service's events as (time, message)."""
    return [(event.time, event.message) for event in supervisor.execution(name).events]


class Recorder:
    """A named service that notes when each attempt starts, then sleeps and either returns or raises."""

    def __init__(self, name: str, *, seconds: float = 0.0, fail: int = 0) -> None:
        self.name = name
        self.seconds = seconds
        self.fail = fail
        self.starts: list[float] = []
        self.contexts: list[RunningService] = []

    async def run(self) -> None:
        self.starts.append(trio.current_time())
        self.contexts.append(current_service())
        await trio.sleep(self.seconds)
        if len(self.starts) <= self.fail:
            raise ValueError("boom")


def failing(after: float = 0.0) -> ServiceFn:
    """A service function that sleeps ``after`` seconds, then raises ValueError('boom')."""

    async def fails() -> None:
        await trio.sleep(after)
        raise ValueError("boom")

    return fails


async def forever() -> None:
    await trio.sleep_forever()


BACKOFF = Backoff(initial=1, multiplier=2, jitter=0)


async def test_plain_function_that_returns_is_finished(autojump_clock: trio.testing.MockClock) -> None:
    """A service that returns ends with success and is not restarted, whatever retry says."""
    runs: list[float] = []

    async def tick() -> None:
        runs.append(trio.current_time())
        await trio.sleep(1)

    async with Supervisor(tick, retry=2) as supervisor:
        await trio.sleep(5)
    assert runs == [0.0]
    assert timeline(supervisor, "tick") == [(0.0, "starting attempt 1/3"), (1.0, "stopping with success")]
    report = supervisor.execution("tick")
    assert (report.status, report.attempt, report.retry) == (ServiceStatus.SUCCESS, 1, 2)


async def test_object_service_is_registered_under_its_name(autojump_clock: trio.testing.MockClock) -> None:
    """An object with `name` and `async def run()` runs under that name."""
    service = Recorder("feed", seconds=2)
    async with Supervisor(service) as supervisor:
        await trio.sleep(1)
    assert service.starts == [0.0]
    assert timeline(supervisor, "feed") == [(0.0, "starting attempt 1/1"), (1.0, "stopping on request")]


async def test_restarts_follow_the_backoff(autojump_clock: trio.testing.MockClock) -> None:
    """Backoff(initial=1, multiplier=2) restarts a failing service at 0, 1 and 3, then gives up."""
    service = Recorder("flaky", fail=10)
    async with Supervisor(service, retry=2, backoff=BACKOFF) as supervisor:
        await trio.sleep(10)
    assert service.starts == [0.0, 1.0, 3.0]
    assert timeline(supervisor, "flaky") == [
        (0.0, "starting attempt 1/3"),
        (0.0, "stopping with error: ValueError: boom"),
        (0.0, "restarting in 1s"),
        (1.0, "starting attempt 2/3"),
        (1.0, "stopping with error: ValueError: boom"),
        (1.0, "restarting in 2s"),
        (3.0, "starting attempt 3/3"),
        (3.0, "stopping with error: ValueError: boom"),
        (3.0, "no retries left"),
    ]
    report = supervisor.execution("flaky")
    assert (report.status, report.attempt) == (ServiceStatus.ERROR, 3)


async def test_restart_without_backoff_is_immediate(autojump_clock: trio.testing.MockClock) -> None:
    """With no backoff a failed service restarts at once, and one that recovers ends with success."""
    service = Recorder("flaky", seconds=0.5, fail=1)
    async with Supervisor(service, retry=4) as supervisor:
        await trio.sleep(10)
    assert service.starts == [0.0, 0.5]
    assert timeline(supervisor, "flaky") == [
        (0.0, "starting attempt 1/5"),
        (0.5, "stopping with error: ValueError: boom"),
        (0.5, "restarting"),
        (0.5, "starting attempt 2/5"),
        (1.0, "stopping with success"),
    ]
    assert supervisor.execution("flaky").status == ServiceStatus.SUCCESS


async def test_one_attempt_by_default(autojump_clock: trio.testing.MockClock) -> None:
    """By default a failing service runs once; an error with no message is reported by its type."""

    async def empty() -> None:
        raise RuntimeError

    async with Supervisor(empty) as supervisor:
        await trio.sleep(1)
    assert timeline(supervisor, "empty") == [
        (0.0, "starting attempt 1/1"),
        (0.0, "stopping with error: RuntimeError"),
        (0.0, "no retries left"),
    ]
    assert supervisor.health() == Health(False, ("service 'empty' failed: RuntimeError",))


async def test_deferral_applies_to_the_first_attempt_only(autojump_clock: trio.testing.MockClock) -> None:
    """defer=2 delays the first attempt to 2; the restart after it waits only for the backoff."""
    service = Recorder("late", fail=1)
    async with Supervisor(service, defer=2, retry=1, backoff=BACKOFF) as supervisor:
        await trio.sleep(1)
        assert supervisor.execution("late").status == ServiceStatus.DEFERRED
        await trio.sleep(9)
    assert service.starts == [2.0, 3.0]
    assert timeline(supervisor, "late") == [
        (0.0, "deferring 2s"),
        (2.0, "starting attempt 1/2"),
        (2.0, "stopping with error: ValueError: boom"),
        (2.0, "restarting in 1s"),
        (3.0, "starting attempt 2/2"),
        (3.0, "stopping with success"),
    ]


async def test_event_texts_give_seconds_in_the_shortest_form(autojump_clock: trio.testing.MockClock) -> None:
    """defer=1.0 reads "deferring 1s", and restarts 0.5 and 1.25 s later read "restarting in 0.5s" and "... 1.25s"."""
    service = Recorder("flaky", fail=10)
    async with Supervisor(
        service, defer=1.0, retry=2, backoff=Backoff(initial=0.5, multiplier=2.5, jitter=0)
    ) as supervisor:
        await trio.sleep(10)
    assert service.starts == [1.0, 1.5, 2.75]
    assert [message for _, message in timeline(supervisor, "flaky")] == [
        "deferring 1s",
        "starting attempt 1/3",
        "stopping with error: ValueError: boom",
        "restarting in 0.5s",
        "starting attempt 2/3",
        "stopping with error: ValueError: boom",
        "restarting in 1.25s",
        "starting attempt 3/3",
        "stopping with error: ValueError: boom",
        "no retries left",
    ]


async def test_defer_accepts_a_timedelta(autojump_clock: trio.testing.MockClock) -> None:
    """defer=timedelta(seconds=1.5) waits 1.5 s."""
    service = Recorder("late")
    async with Supervisor(service, defer=datetime.timedelta(seconds=1.5)):
        await trio.sleep(2)
    assert service.starts == [1.5]


async def test_stop_cancels_a_deferral(autojump_clock: trio.testing.MockClock) -> None:
    """stop() during the deferral ends the service before it ever runs."""
    service = Recorder("late")
    async with Supervisor(service, defer=5) as supervisor:
        await trio.sleep(1)
        await supervisor.stop()
        assert trio.current_time() == 1.0
    assert service.starts == []
    assert timeline(supervisor, "late") == [(0.0, "deferring 5s"), (1.0, "stopping on request")]
    assert supervisor.execution("late").status == ServiceStatus.STOPPED


async def test_stop_cancels_running_services_and_does_not_restart(autojump_clock: trio.testing.MockClock) -> None:
    """stop() cancels a running service, waits for it, and leaves it stopped at its first attempt."""
    service = Recorder("feed", seconds=100)
    async with Supervisor(service, retry=2) as supervisor:
        await trio.sleep(2)
        await supervisor.stop()
        assert trio.current_time() == 2.0
        assert timeline(supervisor, "feed") == [(0.0, "starting attempt 1/3"), (2.0, "stopping on request")]
        await trio.sleep(10)
    assert service.starts == [0.0]
    report = supervisor.execution("feed")
    assert (report.status, report.attempt) == (ServiceStatus.STOPPED, 1)


async def test_stop_waits_for_a_service_cleaning_up(autojump_clock: trio.testing.MockClock) -> None:
    """stop() returns only once a service's shielded cleanup has finished."""

    async def careful() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(3)

    async with Supervisor(careful) as supervisor:
        await trio.sleep(1)
        await supervisor.stop()
        assert trio.current_time() == 4.0
    assert timeline(supervisor, "careful")[-1] == (4.0, "stopping on request")


async def test_stop_during_the_backoff_wait(autojump_clock: trio.testing.MockClock) -> None:
    """stop() while a failed service waits to restart cancels the restart."""
    async with Supervisor(failing(), retry=2, backoff=BACKOFF) as supervisor:
        await trio.sleep(0.5)
        await supervisor.stop()
    assert timeline(supervisor, "fails") == [
        (0.0, "starting attempt 1/3"),
        (0.0, "stopping with error: ValueError: boom"),
        (0.0, "restarting in 1s"),
        (0.5, "stopping on request"),
    ]
    assert supervisor.execution("fails").status == ServiceStatus.STOPPED


async def test_an_error_raised_while_stopping_is_not_restarted(autojump_clock: trio.testing.MockClock) -> None:
    """A service whose cleanup raises when stopped ends stopped (the error noted), without a restart."""

    async def messy() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise ValueError("cleanup failed")

    async with Supervisor(messy, retry=2) as supervisor:
        await trio.sleep(1)
    assert timeline(supervisor, "messy") == [
        (0.0, "starting attempt 1/3"),
        (1.0, "stopping with error: ValueError: cleanup failed"),
        (1.0, "stopping: ValueError: cleanup failed"),
    ]
    assert supervisor.execution("messy").status == ServiceStatus.STOPPED
    assert supervisor.health().healthy


async def test_an_error_raised_during_an_outer_cancellation_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A service whose cleanup raises when an outer scope cancels it ends stopped, without a restart."""

    async def messy() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise ValueError("cleanup failed")

    with trio.move_on_after(1):
        async with Supervisor(messy, retry=2) as supervisor:
            await trio.sleep_forever()
    assert timeline(supervisor, "messy") == [
        (0.0, "starting attempt 1/3"),
        (1.0, "stopping with error: ValueError: cleanup failed"),
        (1.0, "stopping: ValueError: cleanup failed"),
    ]
    assert supervisor.execution("messy").status == ServiceStatus.STOPPED


async def test_stop_before_a_service_first_ran(autojump_clock: trio.testing.MockClock) -> None:
    """A service stopped before its task first ran never runs and has no attempt."""
    service = Recorder("feed")
    async with Supervisor(service) as supervisor:
        await supervisor.stop()
    assert service.starts == []
    assert supervisor.execution("feed") == ServiceExecution(
        "feed", ServiceStatus.STOPPED, 0, 0, None, (ServiceEvent(0.0, None, "stopping on request"),)
    )


async def test_stop_is_idempotent_and_works_after_the_block(autojump_clock: trio.testing.MockClock) -> None:
    """stop() a second time, and after the block, returns at once and changes nothing."""
    async with Supervisor(forever) as supervisor:
        await trio.sleep(1)
        await supervisor.stop()
        await supervisor.stop()
    await supervisor.stop()
    assert trio.current_time() == 1.0
    assert timeline(supervisor, "forever") == [(0.0, "starting attempt 1/1"), (1.0, "stopping on request")]


async def test_stop_before_entering_raises() -> None:
    """stop() on a supervisor that was never entered raises RuntimeError."""
    with pytest.raises(RuntimeError, match="enter it with `async with`"):
        await Supervisor(forever).stop()


async def test_a_supervisor_is_entered_once(autojump_clock: trio.testing.MockClock) -> None:
    """Entering a supervisor a second time raises RuntimeError."""
    supervisor = Supervisor()
    async with supervisor:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        await supervisor.__aenter__()


async def test_leaving_the_block_stops_the_services(autojump_clock: trio.testing.MockClock) -> None:
    """Leaving the block normally cancels the services rather than waiting for them."""
    async with Supervisor(forever, Recorder("feed", seconds=100)) as supervisor:
        await trio.sleep(3)
    assert trio.current_time() == 3.0
    assert {name: report.status for name, report in supervisor.executions().items()} == {
        "forever": ServiceStatus.STOPPED,
        "feed": ServiceStatus.STOPPED,
    }


async def test_the_block_s_own_error_comes_out_bare(autojump_clock: trio.testing.MockClock) -> None:
    """An exception raised in the block cancels the services (as an outer cancellation) and is re-raised as it was."""
    with pytest.raises(ValueError, match="in the block"):  # noqa: PT012 - the block's own error comes out bare
        async with Supervisor(forever) as supervisor:
            await trio.sleep(1)
            raise ValueError("in the block")
    assert timeline(supervisor, "forever")[-1] == (1.0, "stopping: Cancelled")


async def test_an_outer_cancellation_stops_the_services(autojump_clock: trio.testing.MockClock) -> None:
    """A cancel scope around the supervisor stops its services when it expires."""
    with trio.move_on_after(2):
        async with Supervisor(forever) as supervisor:
            await trio.sleep_forever()
    assert supervisor.execution("forever").status == ServiceStatus.STOPPED
    assert timeline(supervisor, "forever") == [(0.0, "starting attempt 1/1"), (2.0, "stopping: Cancelled")]


async def test_keyboard_interrupt_propagates(autojump_clock: trio.testing.MockClock) -> None:
    """A service raising KeyboardInterrupt is not restarted; it ends the supervisor and comes out bare."""

    async def interrupt() -> None:
        await trio.sleep(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        async with Supervisor(interrupt, forever, retry=2) as supervisor:
            await trio.sleep_forever()
    assert timeline(supervisor, "interrupt") == [
        (0.0, "starting attempt 1/3"),
        (1.0, "stopping: KeyboardInterrupt"),
    ]
    assert timeline(supervisor, "forever") == [(0.0, "starting attempt 1/3"), (1.0, "stopping: Cancelled")]


async def test_several_base_exceptions_come_out_as_a_group(autojump_clock: trio.testing.MockClock) -> None:
    """Two services raising different BaseExceptions at once produce an exception group."""

    async def interrupt() -> None:
        raise KeyboardInterrupt

    async def exit_() -> None:
        raise SystemExit(1)

    with pytest.RaisesGroup(KeyboardInterrupt, SystemExit, flatten_subgroups=True):
        async with Supervisor(interrupt, exit_):
            await trio.sleep_forever()


async def test_add_after_entering_starts_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """A service added while running starts now, with its own options."""
    service = Recorder("late", fail=1)
    async with Supervisor(forever) as supervisor:
        await trio.sleep(1)
        supervisor.add(service, defer=1, retry=1, backoff=Backoff(initial=0.5, jitter=0))
        await trio.sleep(5)
    assert service.starts == [2.0, 2.5]
    assert timeline(supervisor, "late")[0] == (1.0, "deferring 1s")
    assert list(supervisor.executions()) == ["forever", "late"]


async def test_per_service_options_override_the_supervisor_s(autojump_clock: trio.testing.MockClock) -> None:
    """Options given to add() win over the supervisor's; options left out take the supervisor's."""
    own = Recorder("own", fail=10)
    inherited = Recorder("inherited", fail=10)
    supervisor = Supervisor(defer=1, retry=1, backoff=BACKOFF)
    supervisor.add(own, defer=0, retry=2, backoff=Backoff(initial=0.5, multiplier=1, jitter=0))
    supervisor.add(inherited)
    async with supervisor:
        await trio.sleep(10)
    assert own.starts == [0.0, 0.5, 1.0]
    assert inherited.starts == [1.0, 2.0]
    assert supervisor.execution("own").retry == 2
    assert supervisor.execution("inherited").retry == 1


async def test_name_overrides_the_service_s_own(autojump_clock: trio.testing.MockClock) -> None:
    """add(service, name=...) registers the same function twice, or a partial, under chosen names."""

    async def poll(source: str) -> None:
        await trio.sleep_forever()

    supervisor = Supervisor()
    supervisor.add(functools.partial(poll, "a"), name="poll-a")
    supervisor.add(functools.partial(poll, "b"), name="poll-b")
    async with supervisor:
        await trio.sleep(1)
        assert [report.status for report in supervisor.executions().values()] == [ServiceStatus.RUNNING] * 2


async def test_add_after_stop_raises(autojump_clock: trio.testing.MockClock) -> None:
    """add() after stop() raises SupervisorClosedError, a RuntimeError, naming the service."""
    async with Supervisor() as supervisor:
        await supervisor.stop()
        with pytest.raises(SupervisorClosedError, match="cannot add service 'forever'") as info:
            supervisor.add(forever)
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, WorkerPoolError)


def test_duplicate_names_raise() -> None:
    """Registering two services under one name raises ServiceExistsError naming it."""
    with pytest.raises(ServiceExistsError, match="'feed' is already registered") as info:
        Supervisor(Recorder("feed"), Recorder("feed"))
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, WorkerPoolError)
    assert info.value.name == "feed"
    supervisor = Supervisor(forever)
    with pytest.raises(ServiceExistsError, match="'forever'"):
        supervisor.add(forever)


def test_unknown_name_raises() -> None:
    """execution() of a name never registered raises ServiceNotFoundError, a LookupError."""
    with pytest.raises(ServiceNotFoundError, match="no service named 'nope'") as info:
        Supervisor(forever).execution("nope")
    assert isinstance(info.value, LookupError)
    assert info.value.name == "nope"


@pytest.mark.parametrize("error", [ServiceExistsError("feed"), ServiceNotFoundError("feed")])
def test_errors_pickle(error: ServiceExistsError | ServiceNotFoundError) -> None:
    """The errors survive pickling with their message and name."""
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.name) == (type(error), str(error), "feed")


def test_reports_before_entering() -> None:
    """Before entering, every service is unknown, at attempt 0, with no events."""
    supervisor = Supervisor(forever, retry=1)
    assert supervisor.executions() == {
        "forever": ServiceExecution("forever", ServiceStatus.UNKNOWN, 0, 1, None, ()),
    }


async def test_health_follows_the_statuses(autojump_clock: trio.testing.MockClock) -> None:
    """Unknown and error are unhealthy; deferred, running, success and stopped are healthy."""
    service = Recorder("flaky", seconds=1, fail=1)
    supervisor = Supervisor(service, forever, defer=1, retry=1, backoff=BACKOFF)
    assert supervisor.health() == Health(
        False, ("service 'flaky' has not started", "service 'forever' has not started")
    )
    async with supervisor:
        await trio.sleep(0.5)
        assert supervisor.health() == Health(True)  # deferred
        await trio.sleep(1)
        assert supervisor.health() == Health(True)  # running
        await trio.sleep(1)  # 2.5: the first attempt failed at 2, the restart is at 3
        assert supervisor.health() == Health(False, ("service 'flaky' failed: ValueError: boom",))
        await trio.sleep(1)
        assert supervisor.health() == Health(True)  # running again
        await trio.sleep(1)
        assert supervisor.execution("flaky").status == ServiceStatus.SUCCESS
        assert supervisor.health() == Health(True)
    assert supervisor.execution("forever").status == ServiceStatus.STOPPED
    assert supervisor.health() == Health(True)


async def test_each_attempt_has_its_own_execution_id(autojump_clock: trio.testing.MockClock) -> None:
    """Attempts get distinct ids; the deferral belongs to the first, and current_service() agrees."""
    service = Recorder("flaky", fail=10)
    async with Supervisor(service, defer=1, retry=2) as supervisor:
        await trio.sleep(5)
    ids = [context.execution_id for context in service.contexts]
    assert len(set(ids)) == 3
    assert all(len(id_) == 32 for id_ in ids)
    events = supervisor.execution("flaky").events
    assert [event.execution_id for event in events] == [ids[0]] * 4 + [ids[1]] * 3 + [ids[2]] * 3
    assert supervisor.execution("flaky").execution_id == ids[2]
    assert [(c.name, c.attempt, c.retry) for c in service.contexts] == [
        ("flaky", 1, 2),
        ("flaky", 2, 2),
        ("flaky", 3, 2),
    ]


async def test_current_service_inside_and_outside(autojump_clock: trio.testing.MockClock) -> None:
    """current_service() works in a service and the tasks it starts, and raises outside."""
    seen: list[RunningService] = []

    async def look() -> None:
        seen.append(current_service())

    async def parent() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(look)

    async with Supervisor(parent) as supervisor:
        await trio.sleep(1)
        with pytest.raises(RuntimeError, match="outside a supervised service"):
            current_service()
    assert seen == [RunningService("parent", supervisor.execution("parent").execution_id or "", 1, 0)]
    with pytest.raises(RuntimeError, match="outside a supervised service"):
        current_service()


async def test_events_are_logged_with_service_fields(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each event is logged on 'workerpoolxt', errors at ERROR with the traceback, with name, id and attempt."""
    caplog.set_level(logging.INFO, logger="workerpoolxt")
    async with Supervisor(failing(), retry=1) as supervisor:
        await trio.sleep(1)
    records = [r for r in caplog.records if r.name == "workerpoolxt"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("INFO", "service 'fails': starting attempt 1/2"),
        ("ERROR", "service 'fails': stopping with error: ValueError: boom"),
        ("INFO", "service 'fails': restarting"),
        ("INFO", "service 'fails': starting attempt 2/2"),
        ("ERROR", "service 'fails': stopping with error: ValueError: boom"),
        ("ERROR", "service 'fails': no retries left"),
    ]
    events = supervisor.execution("fails").events
    fields: list[tuple[Any, ...]] = [(r.service_name, r.execution_id, r.attempt) for r in records]  # type: ignore[attr-defined]
    assert fields == [("fails", event.execution_id, 1 if i < 3 else 2) for i, event in enumerate(events)]
    assert records[1].exc_info is not None
    assert records[1].exc_info[0] is ValueError


async def test_reports_keep_the_latest_events(autojump_clock: trio.testing.MockClock) -> None:
    """A service restarted many times keeps only its latest MAX_EVENTS events."""
    async with Supervisor(failing(), retry=39) as supervisor:
        await trio.sleep(1)
    events = supervisor.execution("fails").events
    assert len(events) == MAX_EVENTS
    assert [event.message for event in events[-2:]] == ["stopping with error: ValueError: boom", "no retries left"]


class NoName:
    async def run(self) -> None:
        pass


class NoRun:
    name = "no-run"


class NumberName:
    name = 3

    async def run(self) -> None:
        pass


def sync_service() -> None:
    pass


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"defer": -1}, ValueError, "`defer` must be non-negative and finite, got -1"),
        ({"defer": float("inf")}, ValueError, "`defer` must be non-negative"),
        ({"defer": float("nan")}, ValueError, "`defer` must be non-negative"),
        ({"defer": "1"}, TypeError, "`defer` must be a number of seconds or a timedelta, not str"),
        ({"defer": True}, TypeError, "`defer` must be a number"),
        ({"retry": -1}, ValueError, "`retry` must be at least 0, got -1"),
        ({"retry": 1.5}, TypeError, "`retry` must be an int"),
        ({"backoff": "x"}, TypeError, "`backoff` must be a Backoff or None, not str"),
    ],
)
def test_bad_options_name_the_parameter(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    """Bad options raise TypeError or ValueError naming the parameter, in the constructor and in add()."""
    with pytest.raises(error, match=message.replace("(", r"\(")):
        Supervisor(**kwargs)
    supervisor = Supervisor()
    with pytest.raises(error, match=message.replace("(", r"\(")):
        supervisor.add(forever, **kwargs)
    assert supervisor.executions() == {}


@pytest.mark.parametrize(
    ("service", "kwargs", "error", "message"),
    [
        (NoName(), {}, TypeError, "has no name; give it a `name` attribute or use add"),
        (NoRun(), {}, TypeError, "`service` must be an async function or have an `async def run"),
        (sync_service, {}, TypeError, "`service` must be an async function"),
        (functools.partial(forever), {}, TypeError, "has no name"),
        (NumberName(), {}, TypeError, "`name` must be a str, not int"),
        (forever, {"name": ""}, ValueError, "`name` must not be empty"),
    ],
)
def test_bad_services_are_refused(service: Any, kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    """A service without a name or an async run(), or with a bad name, is refused with a message that teaches."""
    with pytest.raises(error, match=message.replace("(", r"\(")):
        Supervisor().add(service, **kwargs)


def test_the_wing_s_all_is_sorted_and_complete() -> None:
    """workerpoolxt.supervise lists every public class and function it offers, sorted, and nothing else."""
    public = {
        name
        for name, value in vars(supervise).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__.startswith("workerpoolxt")
    }
    assert supervise.__all__ == sorted(public)


@pytest.mark.parametrize(
    "value",
    [
        ServiceEvent(0.0, None, "stopping on request"),
        ServiceExecution("feed", ServiceStatus.UNKNOWN, 0, 0, None, ()),
        RunningService("feed", "id", 1, 0),
        ExecutionStarted(name="feed", execution_id="id", attempt=1, retry=0, time=0.0),
        ExecutionEnded(
            name="feed",
            execution_id="id",
            attempt=1,
            retry=0,
            time=0.0,
            status=ServiceStatus.SUCCESS,
            error=None,
            restart_in=None,
        ),
    ],
    ids=lambda value: type(value).__name__,
)
def test_values_are_frozen_and_slotted(value: Any) -> None:
    """The reports and events a supervisor gives out are frozen, slotted attrs classes."""
    assert attrs.has(type(value))
    assert not hasattr(value, "__dict__")
    first = attrs.fields(type(value))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, first, getattr(value, first))
