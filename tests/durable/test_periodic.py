"""Periodic tasks: ``Periodic``'s checks and ticks, the worker's schedules, and the stores' once-per-tick guarantee.

The worker's schedules run on a ``MemoryStore`` on the virtual clock under
``autojump_clock``, so ticks land at exact times. The stores' calls run
against all three stores (the contract suite's ``store`` fixture) on the real
clock; and three worker processes share a schedule on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import hypothesis
import pytest
import test_store_contract as contract
import trio
import trio.testing
from helpers import POSTGRES_DSN, drop_schema, new_schema, requires_postgres
from hypothesis import strategies as st
from test_durable_faults import Backend as ProcessBackend
from test_durable_faults import WorkerProcesses, postgres_backend, sqlite_backend

from workerpoolxt import Job, Registry, UnknownHandlerError
from workerpoolxt.durable import (
    DurableWorker,
    Periodic,
    PeriodicStore,
    Store,
    StoreError,
    TaskRecord,
    WorkerApp,
)
from workerpoolxt.durable.testing import MemoryStore

UTC: Final = datetime.UTC

# The contract suite's fixtures: each store, fresh, of every kind, and how to open more on its data.
store = contract.store
backend = contract.backend


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """A UTC time as seconds since the epoch."""
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


registry = Registry()


@registry.register("tick")
async def tick_handler(options: Any) -> None:
    """What each tick's task runs: nothing."""


@registry.register("digest")
async def digest(hour: int) -> None:
    """A handler with a parameter, for the app's checks."""


# -- Periodic's checks ----------------------------------------------------------------------------


def test_name_defaults_to_the_jobs_and_every_takes_a_timedelta() -> None:
    """A schedule is named after its job unless named; ``every`` is seconds or a timedelta."""
    schedule = Periodic(Job("tick"), every=datetime.timedelta(minutes=5))
    assert (schedule.name, schedule.every, schedule.cron, schedule.missed) == ("tick", 300.0, None, "latest")
    named = Periodic(Job("tick"), cron="*/5 * * * *", name="tick-often", missed="skip", timezone="Europe/Paris")
    assert (named.name, named.cron, named.every, named.missed, named.timezone) == (
        "tick-often",
        "*/5 * * * *",
        None,
        "skip",
        "Europe/Paris",
    )


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"job": "tick", "every": 1}, TypeError, "`job` must be a workerpoolxt.Job"),
        ({"job": Job(tick_handler), "every": 1}, TypeError, "`job` must be a named job"),
        ({"job": Job("tick", retry_on=(ValueError,)), "every": 1}, ValueError, "`job` must be a named job"),
        ({"job": Job("tick")}, TypeError, "exactly one of `cron`"),
        ({"job": Job("tick"), "every": 1, "cron": "* * * * *"}, TypeError, "exactly one of `cron`"),
        ({"job": Job("tick"), "every": 0}, ValueError, "`every` must be positive"),
        ({"job": Job("tick"), "every": 1e-300}, ValueError, "`every` must be at least 0.001s (1 ms)"),
        ({"job": Job("tick"), "every": 0.000999}, ValueError, "`every` must be at least 0.001s (1 ms)"),
        ({"job": Job("tick"), "every": "1"}, TypeError, "`every`"),
        ({"job": Job("tick"), "every": 1, "name": ""}, ValueError, "`name` must not be empty"),
        ({"job": Job("tick"), "every": 1, "name": "a\x00b"}, ValueError, "`name` holds a NUL character"),
        ({"job": Job("tick"), "every": 1, "name": b"tick"}, TypeError, "`name` must be a str, not bytes"),
        ({"job": Job("tick"), "every": 1, "missed": "all"}, ValueError, "`missed` must be one of"),
        ({"job": Job("tick"), "every": 60, "timezone": "Europe/Paris"}, ValueError, "`timezone` is for `cron`"),
        ({"job": Job("tick"), "cron": 5}, TypeError, "`cron` must be a cron expression"),
        ({"job": Job("tick"), "cron": "every minute"}, ValueError, "`cron` is not a valid cron expression"),
        ({"job": Job("tick"), "cron": "0 0 30 2 *"}, ValueError, "`cron` names no time that ever comes"),
        ({"job": Job("tick"), "cron": "* * * * *", "timezone": "Mars/Olympus"}, ValueError, "`timezone` must be"),
        ({"job": Job("tick"), "cron": "* * * * *", "timezone": 1}, TypeError, "`timezone` must be"),
    ],
)
def test_bad_arguments_are_refused_naming_the_parameter(
    arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each invalid argument fails as the Periodic is built, with a message naming it."""
    with pytest.raises(error, match=re.escape(message)):
        Periodic(**arguments)


def test_a_cron_schedule_without_croniter_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without croniter, a cron Periodic fails as it is built, naming the extra; an interval needs none."""
    monkeypatch.setitem(sys.modules, "croniter", None)  # `import croniter` now raises ImportError
    with pytest.raises(ImportError, match=re.escape("pip install 'workerpoolxt[cron]'")):
        Periodic(Job("tick"), cron="* * * * *")
    assert Periodic(Job("tick"), every=1).every == 1.0


def test_importing_the_durable_wing_does_not_import_croniter() -> None:
    """croniter is imported by the first cron schedule, not by ``import workerpoolxt.durable``."""
    code = "import sys, workerpoolxt.durable; print('croniter' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "False\n"


# -- ticks ----------------------------------------------------------------------------------------


def test_interval_ticks_are_the_multiples_of_every_since_the_epoch() -> None:
    """Ticks of ``every=10`` are at 0, 10, 20, ...: the latest at or before a time, and the first after it."""
    schedule = Periodic(Job("tick"), every=10)
    assert [schedule.latest_tick(now) for now in (0.0, 9.99, 10.0, 25.0)] == [0.0, 0.0, 10.0, 20.0]
    assert [schedule.next_tick(now) for now in (0.0, 9.99, 10.0, 25.0)] == [10.0, 10.0, 20.0, 30.0]
    hourly = Periodic(Job("tick"), every=3600)
    assert hourly.latest_tick(at(2026, 11, 30, 6, 59, 59)) == at(2026, 11, 30, 6)
    assert hourly.next_tick(at(2026, 11, 30, 6, 59, 59)) == at(2026, 11, 30, 7)


@hypothesis.given(
    every=st.floats(min_value=0.001, max_value=1e5),
    now=st.floats(min_value=0, max_value=4e9),
)
def test_interval_ticks_bracket_every_time(every: float, now: float) -> None:
    """Whatever the rounding, latest <= now < next, and the next tick is the latest one once it comes."""
    schedule = Periodic(Job("tick"), every=every)
    latest, following = schedule.latest_tick(now), schedule.next_tick(now)
    assert latest <= now < following
    assert schedule.latest_tick(following) == following
    assert schedule.next_tick(latest) == following


def test_cron_ticks_are_computed_in_the_schedules_time_zone() -> None:
    """``0 6 * * *`` in Paris ticks at 05:00 UTC in winter and 04:00 UTC in summer; a time on a tick is that tick."""
    schedule = Periodic(Job("tick"), cron="0 6 * * *", timezone="Europe/Paris")
    winter = at(2026, 11, 30, 5)
    assert schedule.latest_tick(winter + 1800) == winter
    assert schedule.latest_tick(winter) == winter
    assert schedule.latest_tick(winter - 0.001) == at(2026, 11, 29, 5)
    assert schedule.next_tick(winter) == at(2026, 12, 1, 5)
    assert schedule.next_tick(winter - 0.001) == winter
    assert schedule.next_tick(at(2026, 6, 30, 12)) == at(2026, 7, 1, 4)
    utc = Periodic(Job("tick"), cron="0 6 * * *")
    assert utc.latest_tick(winter + 1800) == at(2026, 11, 29, 6)


def test_cron_ticks_on_daylight_saving_days_are_croniters() -> None:
    """02:30 in Paris ticks twice as the clocks go back (CEST, then CET), and once on the day they skip it."""
    schedule = Periodic(Job("tick"), cron="30 2 * * *", timezone="Europe/Paris")

    def ticks(after: float, count: int) -> list[float]:
        found = [schedule.next_tick(after)]
        while len(found) < count:
            found.append(schedule.next_tick(found[-1]))
        return found

    # 02:30 at UTC+2, then again at UTC+1, and at UTC+1 from then on.
    assert ticks(at(2026, 10, 24, 12), 3) == [at(2026, 10, 25, 0, 30), at(2026, 10, 25, 1, 30), at(2026, 10, 26, 1, 30)]
    assert [schedule.latest_tick(tick) for tick in ticks(at(2026, 10, 24, 12), 3)] == ticks(at(2026, 10, 24, 12), 3)
    # On 29 March 02:00 at UTC+1 (01:00 UTC) became 03:00 at UTC+2: the skipped 02:30 runs once, in the next hour.
    before, skipped, after = ticks(at(2026, 3, 27, 12), 3)
    assert (before, after) == (at(2026, 3, 28, 1, 30), at(2026, 3, 30, 0, 30))
    assert at(2026, 3, 29, 1) <= skipped < at(2026, 3, 29, 2)


def test_a_sixth_cron_field_gives_seconds() -> None:
    """``* * * * * */10`` ticks every ten seconds, between fractions of a second too."""
    schedule = Periodic(Job("tick"), cron="* * * * * */10")
    start = at(2026, 11, 30, 6)
    assert schedule.latest_tick(start + 17.5) == start + 10
    assert schedule.next_tick(start + 17.5) == start + 20
    assert schedule.next_tick(start + 20) == start + 30


# -- WorkerApp and DurableWorker -----------------------------------------------------------------


def test_an_apps_schedules_need_names_of_their_own() -> None:
    """Two schedules of one job without names of their own are refused, telling to set ``name=``."""
    with pytest.raises(ValueError, match=re.escape("two schedules named 'tick': give each its own `name=`")):
        WorkerApp(registry, periodic=[Periodic(Job("tick"), every=1), Periodic(Job("tick"), every=60)])
    app = WorkerApp(registry, periodic=[Periodic(Job("tick"), every=1), Periodic(Job("tick"), every=60, name="slow")])
    assert [schedule.name for schedule in app.periodic] == ["tick", "slow"]


def test_an_apps_schedules_must_name_its_handlers_with_fitting_args() -> None:
    """A schedule's job naming an unknown handler, or args that do not fit, fails as the app is built."""
    with pytest.raises(UnknownHandlerError, match="no handler named 'missing'"):
        WorkerApp(registry, periodic=[Periodic(Job("missing"), every=1)])
    with pytest.raises(TypeError, match="hour"):
        WorkerApp(registry, periodic=[Periodic(Job("digest"), every=1)])
    assert WorkerApp(registry, periodic=[Periodic(Job("digest", args={"hour": 6}), every=1)]).periodic


@pytest.mark.parametrize(
    ("periodic", "message"),
    [
        (Periodic(Job("tick"), every=1), "`periodic` must be a list of Periodic values"),
        ([Job("tick")], "`periodic[0]` must be a Periodic"),
    ],
)
def test_an_apps_periodic_must_be_a_list_of_periodic_values(periodic: Any, message: str) -> None:
    """A lone Periodic, or a list holding something else, is refused naming ``periodic``."""
    with pytest.raises(TypeError, match=re.escape(message)):
        WorkerApp(registry, periodic=periodic)


class PlainStore(MemoryStore):
    """A store without the schedules' calls: a Store, not a PeriodicStore."""

    last_tick = None  # type: ignore[assignment]
    enqueue_tick = None  # type: ignore[assignment]


def test_a_worker_with_schedules_needs_a_periodic_store() -> None:
    """Schedules on a store that cannot keep them fail as the worker is made; in burst mode they are not run."""
    store = PlainStore()
    assert isinstance(store, Store)
    assert not isinstance(store, PeriodicStore)
    schedules = [Periodic(Job("tick"), every=1)]
    with pytest.raises(TypeError, match="`periodic` needs a store that keeps schedules"):
        DurableWorker(store, registry, periodic=schedules)
    assert DurableWorker(store, registry, periodic=schedules, burst=True).app.periodic == tuple(schedules)
    assert DurableWorker(store, registry).app.periodic == ()


def test_the_workers_periodic_keyword_overrides_the_apps() -> None:
    """``DurableWorker(periodic=...)`` wins over the app's, as every app keyword does."""
    app = WorkerApp(registry, periodic=[Periodic(Job("tick"), every=1)])
    assert DurableWorker(MemoryStore(), app).app.periodic == app.periodic
    assert DurableWorker(MemoryStore(), app, periodic=[]).app.periodic == ()


# -- the worker's schedules, on the virtual clock -------------------------------------------------


def created(store: MemoryStore) -> list[float]:
    """When each task was enqueued, oldest first."""
    return [task.created_at for task in sorted(store._tasks.values(), key=lambda task: task.id)]


async def run_workers(
    store: MemoryStore, schedules: list[Periodic], start: float, stop: float, workers: int = 1, **options: Any
) -> None:
    """From virtual time ``start`` to ``stop``, run ``workers`` workers with ``schedules`` on ``store``."""
    await trio.sleep_until(start)
    async with trio.open_nursery() as nursery:
        running = [DurableWorker(store, registry, periodic=schedules, log_outcomes=False, **options)]
        running += [
            DurableWorker(store, registry, periodic=schedules, log_outcomes=False, **options)
            for _ in range(workers - 1)
        ]
        for worker in running:
            nursery.start_soon(worker.run)
        await trio.sleep_until(stop)
        for worker in running:
            worker.stop()


async def test_ticks_are_enqueued_at_their_times_once_however_many_workers(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Three workers from t=5 to t=35 with ``every=10``: one task each at 10, 20 and 30, each tick logged once."""
    caplog.set_level(logging.INFO, logger="workerpoolxt.durable")
    store = MemoryStore(clock=trio.current_time)
    await run_workers(store, [Periodic(Job("tick"), every=10)], start=5, stop=35, workers=3)
    assert created(store) == [10.0, 20.0, 30.0]
    assert [task.handler for task in store._tasks.values()] == ["tick"] * 3
    lines = [record.getMessage() for record in caplog.records if record.name == "workerpoolxt.durable"]
    assert lines == [
        "periodic tick: tick 1970-01-01T00:00:10Z enqueued as task 1",
        "periodic tick: tick 1970-01-01T00:00:20Z enqueued as task 2",
        "periodic tick: tick 1970-01-01T00:00:30Z enqueued as task 3",
    ]
    assert await store.last_tick("tick", 0.0) == 30.0


async def test_schedules_tick_each_at_its_own_times(autojump_clock: trio.testing.MockClock) -> None:
    """``every=10`` and ``every=15`` in one app, from t=1 to t=31: tasks at 10, 15, 20, 30 and 30, each its own."""
    store = MemoryStore(clock=trio.current_time)
    schedules = [Periodic(Job("tick"), every=10), Periodic(Job("tick"), every=15, name="other")]
    await run_workers(store, schedules, start=1, stop=31)
    assert created(store) == [10.0, 15.0, 20.0, 30.0, 30.0]
    assert [await store.last_tick(name, 0.0) for name in ("tick", "other")] == [30.0, 30.0]


async def test_a_new_schedule_runs_no_tick_from_before_it_existed(autojump_clock: trio.testing.MockClock) -> None:
    """First run at t=35: ticks 0 to 30 passed before the schedule existed; its first task is tick 40's."""
    store = MemoryStore(clock=trio.current_time)
    await run_workers(store, [Periodic(Job("tick"), every=10)], start=35, stop=55)
    assert created(store) == [40.0, 50.0]


@pytest.mark.parametrize(("missed", "expected"), [("latest", [35.0, 40.0, 50.0]), ("skip", [40.0, 50.0])])
async def test_ticks_missed_while_no_worker_ran(
    autojump_clock: trio.testing.MockClock, missed: str, expected: list[float]
) -> None:
    """Last tick 0, workers back at t=35: "latest" enqueues tick 30 at once, "skip" waits for tick 40."""
    store = MemoryStore(clock=trio.current_time)
    assert await store.last_tick("tick", 0.0) == 0.0
    await run_workers(store, [Periodic(Job("tick"), every=10, missed=missed)], start=35, stop=55)
    assert created(store) == expected
    assert await store.last_tick("tick", 0.0) == 50.0


class FailingOnce(MemoryStore):
    """A MemoryStore whose first enqueue_tick() fails, as a database that is down would."""

    failed = False

    async def enqueue_tick(self, schedule: str, tick: float, job: Job[Any]) -> int | None:
        if not self.failed:
            self.failed = True
            raise StoreError("memory store", "the database is down")
        return await super().enqueue_tick(schedule, tick, job)


async def test_a_failed_enqueue_is_logged_and_made_again_a_poll_later(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Tick 10 fails at t=10: one line says so, and the tick is enqueued at t=10.5, the worker's next poll."""
    store = FailingOnce(clock=trio.current_time)
    await run_workers(store, [Periodic(Job("tick"), every=10)], start=5, stop=25, poll=0.5)
    assert created(store) == [10.5, 20.0]
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("worker ")
    reason = "memory store: the database is down"
    assert errors[0].endswith(f" could not enqueue periodic tick; trying again in 0.5s: {reason}")


async def test_a_job_the_store_refuses_is_logged_once_per_tick_and_skipped(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A job larger than the store takes, from t=5 to t=35 with ``every=10``: one error line per tick, no retries."""
    store = MemoryStore(clock=trio.current_time, max_json_bytes=100)
    job = Job("tick", args={"options": "x" * 200})
    with pytest.raises(ValueError) as refused:  # noqa: PT011  # the store's own words are the expected reason
        await store.enqueue([job])
    await run_workers(store, [Periodic(job, every=10)], start=5, stop=35, poll=0.5)
    assert created(store) == []
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.exc_info for record in errors] == [None] * 3
    assert [record.getMessage().split(" ", 2)[2] for record in errors] == [
        f"skips tick 1970-01-01T00:00:{second}Z of periodic tick, which the store refuses: {refused.value}"
        for second in (10, 20, 30)
    ]
    assert await store.last_tick("tick", 1.0) == 0.0


class RefusingName(MemoryStore):
    """A MemoryStore that refuses one schedule's name in both calls, as a store with rules of its own would."""

    async def last_tick(self, schedule: str, first: float) -> float:
        if schedule == "refused":
            raise ValueError("`schedule` is not a name this store takes")
        return await super().last_tick(schedule, first)

    async def enqueue_tick(self, schedule: str, tick: float, job: Job[Any]) -> int | None:
        if schedule == "refused":
            raise TypeError("`schedule` is not a name this store takes")
        return await super().enqueue_tick(schedule, tick, job)


async def test_a_schedule_the_store_refuses_skips_each_tick_and_the_others_go_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused name from t=5 to t=35: one error line for tick 0's registration, one per tick after; "other" ticks."""
    store = RefusingName(clock=trio.current_time)
    schedules = [Periodic(Job("tick"), every=10, name="refused"), Periodic(Job("tick"), every=10, name="other")]
    await run_workers(store, schedules, start=5, stop=35, poll=0.5)
    assert created(store) == [10.0, 20.0, 30.0]
    errors = [record.getMessage().split(" ", 2)[2] for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == [
        f"skips tick 1970-01-01T00:00:{second:02}Z of periodic refused, which the store refuses: "
        "`schedule` is not a name this store takes"
        for second in (0, 10, 20, 30)
    ]


async def test_a_schedule_with_no_tick_left_stops_and_the_others_go_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A cron expression for next new year only, from 30s before to 25s after: its tick is enqueued, then it stops."""
    year = datetime.datetime.now(UTC).year + 1  # a year to come, as a Periodic must have a tick as it is built
    start = at(year - 1, 12, 31, 23, 59, 30)
    store = MemoryStore(clock=lambda: start + trio.current_time())
    new_year = Periodic(Job("tick"), cron=f"0 0 1 1 * 0 {year}", name="new-year")
    await run_workers(store, [new_year, Periodic(Job("tick"), every=10)], start=0, stop=55)
    assert [when - start for when in created(store)] == [10.0, 20.0, 30.0, 30.0, 40.0, 50.0]
    assert await store.last_tick("new-year", 0.0) == at(year, 1, 1)
    assert [record.levelno for record in caplog.records if record.levelno >= logging.WARNING] == [logging.WARNING]
    [warning] = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert warning.startswith(f"periodic new-year: no tick comes after {year}-01-01T00:00:00Z, so worker ")
    assert warning.endswith(" runs it no more (failed to find next date)")


async def test_a_tick_comes_on_time_after_the_wall_clock_jumps_forward(autojump_clock: trio.testing.MockClock) -> None:
    """``every=3600`` from t=10; at t=100 the wall clock jumps 3000s ahead: tick 3600 comes at wall 3600, not 6600."""
    jump = 0.0

    def wall() -> float:
        return trio.current_time() + jump

    async def jump_forward() -> None:
        nonlocal jump
        await trio.sleep_until(100)
        jump = 3000.0

    store = MemoryStore(clock=wall)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(jump_forward)
        await run_workers(store, [Periodic(Job("tick"), every=3600)], start=10, stop=700)
    assert created(store) == [3600.0]
    assert trio.current_time() == 700.0


async def test_a_burst_worker_runs_no_schedules(autojump_clock: trio.testing.MockClock) -> None:
    """A burst worker with a schedule stops as soon as it has nothing to run, having enqueued nothing."""
    store = MemoryStore(clock=trio.current_time)
    await trio.sleep(5)
    worker = DurableWorker(store, registry, periodic=[Periodic(Job("tick"), every=1)], burst=True)
    await worker.run()
    assert trio.current_time() == 5.0
    assert created(store) == []


# -- the stores: last_tick() and enqueue_tick() -------------------------------------------------


async def test_last_tick_registers_a_schedule_once(store: Store) -> None:
    """The first call stores ``first``; later ones return it, whatever their ``first``."""
    assert isinstance(store, PeriodicStore)
    assert await store.last_tick("digest", 100.0) == 100.0
    assert await store.last_tick("digest", 200.0) == 100.0
    assert await store.last_tick("other", 50.5) == 50.5


async def test_enqueue_tick_enqueues_each_later_tick_once(store: Store) -> None:
    """Only a tick later than the last enqueues, once: the job as enqueue() stores it, due now."""
    assert isinstance(store, PeriodicStore)
    await store.last_tick("digest", 100.0)
    job = Job("handler", args={"number": 7}, retry=2)
    assert await store.enqueue_tick("digest", 100.0, job) is None
    before = time.time()
    task_id = await store.enqueue_tick("digest", 150.0, job)
    assert task_id is not None
    record: TaskRecord = await store.get(task_id)
    assert (record.handler, Job.from_dict(record.job), record.retry, record.queue) == ("handler", job, 2, "default")
    assert abs(record.run_at - before) < 1.0
    assert await store.enqueue_tick("digest", 150.0, job) is None
    assert await store.enqueue_tick("digest", 120.0, job) is None
    assert await store.last_tick("digest", 0.0) == 150.0
    assert await store.enqueue_tick("digest", 150.25, job) == task_id + 1
    assert (await store.stats()).queued == 2


async def test_enqueue_tick_registers_a_new_schedule(store: Store) -> None:
    """A schedule never registered takes its first tick, and keeps it as its last."""
    assert isinstance(store, PeriodicStore)
    task_id = await store.enqueue_tick("fresh", 10.0, Job("handler"))
    assert task_id is not None
    assert await store.last_tick("fresh", 0.0) == 10.0


async def test_a_refused_job_or_bad_tick_writes_nothing(store: Store) -> None:
    """A job enqueue() refuses, or a bad schedule or tick, fails before anything is written."""
    assert isinstance(store, PeriodicStore)
    await store.last_tick("digest", 100.0)
    with pytest.raises(TypeError, match=re.escape("must be a workerpoolxt.Job")):
        await store.enqueue_tick("digest", 200.0, "handler")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`jobs\[0\]` holds a NUL"):
        await store.enqueue_tick("digest", 200.0, Job("handler", args={"text": "\x00"}))
    with pytest.raises(ValueError, match="`schedule` must not be empty"):
        await store.enqueue_tick("", 200.0, Job("handler"))
    with pytest.raises(ValueError, match="`tick` must be finite"):
        await store.enqueue_tick("digest", float("inf"), Job("handler"))
    with pytest.raises(TypeError, match="`first` must be a time"):
        await store.last_tick("digest", None)  # type: ignore[arg-type]
    assert await store.last_tick("digest", 0.0) == 100.0
    assert (await store.stats()).total == 0


async def test_concurrent_callers_of_one_tick_get_one_task(store: Store, backend: contract.Backend) -> None:
    """16 callers offer tick 200 at once, on 8 connections of their own: exactly one gets an id, one task exists."""
    assert isinstance(store, PeriodicStore)
    await store.last_tick("digest", 100.0)
    stores = [store] * 8 if backend.kind == "memory" else [store, *(backend.make(None) for _ in range(7))]
    ids: list[int | None] = []

    async def offer(caller: PeriodicStore) -> None:
        ids.append(await caller.enqueue_tick("digest", 200.0, Job("handler")))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for caller in stores * 2:
                assert isinstance(caller, PeriodicStore)
                nursery.start_soon(offer, caller)
    assert len(ids) == 16
    assert len([task_id for task_id in ids if task_id is not None]) == 1
    assert (await store.stats()).queued == 1


# -- worker processes: exactly once per tick ------------------------------------------------------

EVERY: Final = 0.2
"""Seconds between the processes' ticks."""

RUN: Final = 3.0
"""Real seconds the three workers run together."""

PROCESS_APP: Final = f'''\
"""The app of tests/durable/test_periodic.py's worker processes: a tick every {EVERY}s."""

import workerpoolxt as wpxt
from workerpoolxt.durable import Periodic, WorkerApp

registry = wpxt.Registry()


@registry.register("beat")
async def beat(options):
    return None


app = WorkerApp(registry, periodic=[Periodic(wpxt.Job("beat"), every={EVERY})])
'''

ENQUEUED: Final = re.compile(r"periodic beat: tick (\S+) enqueued as task (\d+)")


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=requires_postgres)])
async def process_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ProcessBackend]:
    """A fresh store of each kind for worker processes, with the app module in ``tmp_path``."""
    (tmp_path / "periodic_app.py").write_text(PROCESS_APP)
    schema = new_schema()
    made = sqlite_backend(tmp_path) if request.param == "sqlite" else postgres_backend(POSTGRES_DSN, schema)
    try:
        await made.store.init()
        yield made
    finally:
        with trio.fail_after(20):
            await made.store.aclose()
            if request.param == "postgres":
                await trio.to_thread.run_sync(drop_schema, schema)


async def test_three_worker_processes_enqueue_each_tick_exactly_once(
    process_backend: ProcessBackend, tmp_path: Path
) -> None:
    """Three workers run one schedule for 3s: each tick's task is enqueued once, with no tick missed between."""
    with WorkerProcesses(tmp_path, process_backend) as workers:
        # --app after the helper's --registry: the last one given wins.
        started = [workers.start(f"w{number}", "--app", "periodic_app:app", "--poll", "0.05") for number in (1, 2, 3)]
        await workers.wait_started()
        await trio.sleep(RUN)
        for worker in started:
            worker.send_signal(signal.SIGTERM)
        for worker in started:
            assert await worker.wait_exit() == 0, worker.log()
        logs = workers.logs()
    enqueued = [(tick, int(task_id)) for tick, task_id in ENQUEUED.findall(logs)]
    ticks = [datetime.datetime.fromisoformat(tick).timestamp() for tick, _ in enqueued]
    indexes = sorted(round(tick / EVERY) for tick in ticks)
    # Each tick once, with no gap from the first to the last, and at least 10 of them while all three ran.
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes))), logs
    assert len(indexes) >= 10, logs
    # The store holds exactly the tasks logged, one per tick, and the last tick logged as its last.
    tasks = await trio.to_thread.run_sync(process_backend.tasks)
    assert sorted(task_id for _, task_id in enqueued) == [row[0] for row in tasks]
    store = process_backend.store
    assert isinstance(store, PeriodicStore)
    assert round(await store.last_tick("beat", 0.0) / EVERY) == indexes[-1]
