"""Periodic tasks: a job enqueued on a schedule, once per tick however many workers run it.

A ``Periodic`` names a job and when to enqueue it: a cron expression
(through ``croniter``, the ``cron`` extra) or an interval. Every worker whose
``WorkerApp`` lists it runs the schedule; the store decides which of them
enqueues each tick. A schedule's row in the store holds the last tick that
was enqueued, and ``PeriodicStore.enqueue_tick()`` advances it and enqueues
the tick's task in one transaction, only if the row held an older tick: a
compare-and-set, so that of the workers that all wake for the same tick
exactly one enqueues it, and a worker whose clock lags enqueues nothing twice.

Ticks are a function of the time alone, so that all workers agree on them:
an interval's are the multiples of it since the epoch, a cron expression's
those croniter computes in the schedule's time zone.
"""

from __future__ import annotations

import datetime
import logging
import math
import zoneinfo
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from .._job import Job
from .._validation import Seconds, to_seconds
from ._store import check_schedule_name

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from croniter import croniter

    from ._store import PeriodicStore

__all__ = ["Periodic"]

_logger: Final = logging.getLogger("workerpoolxt.durable")

MISSED: Final = ("latest", "skip")
"""What a schedule does with the ticks that passed while no worker ran it."""

MIN_EVERY: Final = 0.001
"""The shortest interval between ticks, in seconds: shorter ones would make tick numbers overflow."""

LONGEST_SLEEP: Final = 60.0
"""The most seconds the scheduler sleeps before it reads the clock again.

Ticks follow the worker's wall clock, while ``trio.sleep()`` runs on the
monotonic one: when the wall clock jumps forward (a machine resumes from
suspend, NTP steps it), a tick comes at most this late.
"""


def _import_croniter() -> type[croniter]:
    try:
        from croniter import croniter
    except ImportError as error:
        raise ImportError("a `cron` schedule needs croniter: pip install 'workerpoolxt[cron]'") from error
    return croniter


@attrs.frozen(init=False)
class Periodic:
    """A job to enqueue on a schedule: at each tick of a cron expression, or every so many seconds.

    List it in ``WorkerApp(..., periodic=[...])``: each worker running the app
    then runs the schedule (not in burst mode), and the store makes sure each
    tick is enqueued exactly once, however many workers run it::

        WorkerApp(registry, periodic=[
            Periodic(Job("send_digest"), cron="0 6 * * *", timezone="Europe/Paris"),
            Periodic(Job("refresh_cache", args={"region": "eu"}), every=300),
        ])

    A tick's task is an ordinary task, as ``store.enqueue([job])`` stores it
    (its ``retry``, ``queue``, ``dedup_key`` and ``lock`` included), due at once.
    A schedule's first tick is the first after a worker first runs it: ticks
    from before it existed never run. A tick whose job carries a
    ``dedup_key`` that a waiting task holds adds no task: the store gives
    that task's id, and the tick's log line names it as enqueued.

    A cron expression's ticks in a time zone with daylight saving time are
    the ones croniter computes: a local time that comes twice on the day
    the clocks go back (02:30 in ``Europe/Paris`` on the last Sunday of
    October) ticks twice, once at each; a local time skipped on the day the
    clocks go forward runs once, at the time croniter gives it.

    A tick the store refuses for good (its job is larger than the store
    takes, say: a ``TypeError`` or ``ValueError``) is logged once, as an
    error, and skipped; a store that fails otherwise (a ``StoreError``, a
    lost connection) is asked again a poll later. A schedule with no tick
    left (a cron expression's year field has passed) stops with a warning,
    and the worker's other schedules go on.

    Args:
        job: The named job to enqueue at each tick (``Job("handler", args=...)``):
            one a store can hold, whose handler the app's registry has.
        cron: A cron expression, as croniter reads it: five fields (minute,
            hour, day of month, month, day of week), a sixth for seconds
            (``"* * * * * */10"``: every ten seconds), or ``@daily`` and the
            like. Needs ``pip install 'workerpoolxt[cron]'``.
        every: Seconds (or a ``timedelta``) between ticks, at least 0.001: the
            multiples of it since the epoch (1970-01-01 UTC), so
            ``every=3600`` ticks on the hour.
        name: How the store knows the schedule: by default the job's name.
            Two schedules of one job need names of their own. A non-empty
            str without NUL characters, as every store takes.
        missed: What to do when workers start after ticks passed with none
            running the schedule: ``"latest"`` enqueues the latest of them
            once; ``"skip"`` enqueues none, and waits for the next tick.
        timezone: The IANA time zone the cron expression reads in (``"Europe/Paris"``);
            UTC by default. Only for ``cron``.

    Raises:
        TypeError, ValueError: An argument is invalid (not exactly one of
            ``cron`` and ``every``, say); the message names it.
        ImportError: ``cron`` is given and croniter is not installed.
    """

    job: Job[Any]
    cron: str | None
    every: float | None
    name: str
    missed: str
    timezone: str

    def __init__(
        self,
        job: Job[Any],
        *,
        cron: str | None = None,
        every: Seconds | None = None,
        name: str | None = None,
        missed: str = "latest",
        timezone: str = "UTC",
    ) -> None:
        _check_job(job)
        if (cron is None) == (every is None):
            raise TypeError("give exactly one of `cron` (a cron expression) and `every` (seconds between ticks)")
        if name is None:
            name = job.name
        check_schedule_name(name, "name")  # as the stores check it, so that none refuses it
        if missed not in MISSED:
            raise ValueError(f"`missed` must be one of {list(MISSED)}, got {missed!r}")
        if not isinstance(timezone, str):
            raise TypeError(f"`timezone` must be an IANA time zone's name (a str), not {type(timezone).__name__}")
        seconds = None
        if every is not None:
            seconds = to_seconds(every, "every")
            if seconds < MIN_EVERY:
                raise ValueError(f"`every` must be at least {MIN_EVERY}s (1 ms), got {every!r}")
            if timezone != "UTC":
                raise ValueError("`timezone` is for `cron` schedules: an `every` schedule's ticks count from the epoch")
        else:
            _check_cron(cron, timezone)
        self.__attrs_init__(job, cron, seconds, name, missed, timezone)

    def latest_tick(self, now: float) -> float:
        """The latest tick at or before ``now``, both in seconds since the epoch (``time.time()``).

        Raises:
            ValueError: No tick comes at or before ``now`` (a cron expression's year field is still to come).
        """
        every = self.every
        if every is not None:
            return _index(now, every) * every
        # croniter's get_prev() is strictly before its start: the tick before the next one is at or before `now`.
        try:
            following: float = self._cron(now).get_next(float)
        except ValueError:  # croniter's CroniterBadDateError: no tick after `now`, whose year field has passed
            # Ticks fall on whole seconds: the last is at or before `now` if strictly before the second after it.
            following = math.floor(now) + 1
        tick: float = self._cron(following).get_prev(float)
        return tick

    def next_tick(self, now: float) -> float:
        """The first tick after ``now``, both in seconds since the epoch (``time.time()``).

        Raises:
            ValueError: No tick comes after ``now`` (a cron expression's year field has passed).
        """
        every = self.every
        if every is not None:
            return (_index(now, every) + 1) * every
        tick: float = self._cron(now).get_next(float)
        return tick

    def _cron(self, start: float) -> croniter:
        assert self.cron is not None
        zone = zoneinfo.ZoneInfo(self.timezone)  # cached by zoneinfo: no file is read again
        return _import_croniter()(self.cron, datetime.datetime.fromtimestamp(start, zone))


def _index(now: float, every: float) -> int:
    """The number of the latest interval tick at or before ``now``: its time is ``index * every``.

    Corrected for rounding both ways, so that ``index * every <= now <
    (index + 1) * every`` holds for the floats themselves: a worker that
    sleeps until the next tick then finds it due, never just short of it.
    """
    index = math.floor(now / every)
    if index * every > now:
        index -= 1
    elif (index + 1) * every <= now:
        index += 1
    return index


def _check_job(job: object) -> None:
    if not isinstance(job, Job):
        raise TypeError(f"`job` must be a workerpoolxt.Job, not {type(job).__name__}")
    try:
        job.to_dict()
    except (TypeError, ValueError) as error:
        raise type(error)(f"`job` must be a named job that a store can hold: {error}") from None


def _check_cron(cron: object, timezone: str) -> None:
    if not isinstance(cron, str):
        raise TypeError(f"`cron` must be a cron expression (a str), not {type(cron).__name__}")
    croniter = _import_croniter()
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ValueError(
            f"`timezone` must be an IANA time zone's name, such as 'Europe/Paris', got {timezone!r}"
        ) from None
    if not croniter.is_valid(cron):
        raise ValueError(f"`cron` is not a valid cron expression: {cron!r}")
    try:  # a valid expression may name no date at all: February 30th
        croniter(cron, datetime.datetime.now(zone)).get_next(float)
    except ValueError as error:  # croniter's errors are ValueErrors
        raise ValueError(f"`cron` names no time that ever comes: {cron!r} ({error})") from None


def tick_text(tick: float) -> str:
    """A tick as an ISO 8601 UTC time, to the millisecond if it is not on a second."""
    when = datetime.datetime.fromtimestamp(tick, datetime.UTC)
    spec = "seconds" if tick == math.floor(tick) else "milliseconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def freeze_schedules(value: object) -> tuple[Periodic, ...]:
    """A ``WorkerApp``'s ``periodic``: Periodic values, each with a name of its own."""
    if isinstance(value, Periodic) or not isinstance(value, list | tuple):
        raise TypeError(f"`periodic` must be a list of Periodic values, not {type(value).__name__}")
    names: set[str] = set()
    for index, schedule in enumerate(value):
        if not isinstance(schedule, Periodic):
            raise TypeError(f"`periodic[{index}]` must be a Periodic, not {type(schedule).__name__}")
        if schedule.name in names:
            raise ValueError(
                f"`periodic` has two schedules named {schedule.name!r}: give each its own `name=` "
                "(a schedule is named after its job by default)"
            )
        names.add(schedule.name)
    return tuple(value)


class Scheduler:
    """Runs a worker's schedules: enqueues each tick that comes, once, through the store.

    At each schedule's first look it registers the schedule
    (``last_tick()``); if the store's last tick is older than the latest tick
    (ticks passed while no worker ran it), it enqueues that latest tick, or
    skips it if the schedule says so. Then it sleeps until the next tick of
    any schedule (at most ``LONGEST_SLEEP``, then it reads the clock again),
    and offers each schedule whose tick came to the store
    (``enqueue_tick()``), which enqueues it unless another worker did.

    A store call that fails is logged on one line and made again ``retry``
    seconds later, for the latest tick by then; unless the store refused
    its arguments (a ``TypeError`` or ``ValueError``, as a job larger than
    it takes): then asking again would fail again, and the tick is logged
    once and skipped. A schedule with no next tick runs no more.
    """

    def __init__(
        self,
        store: PeriodicStore,
        schedules: Sequence[Periodic],
        *,
        clock: Callable[[], float],
        retry: float,
        worker_id: str,
        log_failure: Callable[..., None],
    ) -> None:
        self._store = store
        self._schedules = schedules
        self._clock = clock
        self._retry = retry
        self._worker_id = worker_id
        self._log_failure = log_failure
        # The latest tick of each schedule that the store holds as enqueued, by this worker or another (or that
        # it refused, or -inf for a schedule with no tick yet); missing until the schedule is registered.
        self._done: dict[str, float] = {}

    async def run(self) -> None:
        """Enqueue ticks as they come, until cancelled or no schedule has a tick left."""
        clock = self._clock
        schedules = list(self._schedules)
        while schedules:
            now = clock()
            failed = False
            for schedule in schedules:
                try:
                    await self._offer(schedule, now)
                except Exception as exc:
                    failed = True
                    self._log_failure(
                        exc,
                        "worker %s could not enqueue periodic %s; trying again in %gs",
                        self._worker_id,
                        schedule.name,
                        self._retry,
                    )
            wake = now + self._retry if failed else math.inf
            for schedule in list(schedules):
                try:
                    wake = min(wake, schedule.next_tick(now))
                except Exception as exc:  # croniter's error, for an expression whose year field has passed
                    schedules.remove(schedule)
                    _logger.warning(
                        "periodic %s: no tick comes after %s, so worker %s runs it no more (%s)",
                        schedule.name,
                        tick_text(now),
                        self._worker_id,
                        exc,
                        extra={"schedule": schedule.name, "worker_id": self._worker_id},
                    )
            if schedules:
                await trio.sleep(min(max(wake - clock(), 0.0), LONGEST_SLEEP))

    async def _offer(self, schedule: Periodic, now: float) -> None:
        """Have the store enqueue the latest tick of ``schedule`` unless it holds that tick or a later one."""
        name = schedule.name
        done = self._done.get(name)
        try:
            tick = schedule.latest_tick(now)
        except ValueError:  # no tick has come yet (a cron expression's year field is still to come)
            if done is None:
                self._done[name] = -math.inf  # so the first tick to come is enqueued, not taken as the one missed
            return
        if done is not None and done >= tick:
            return
        try:
            if done is None:
                stored = await self._store.last_tick(name, tick)
                if stored >= tick or schedule.missed == "skip":
                    self._done[name] = max(stored, tick)
                    return
            task_id = await self._store.enqueue_tick(name, tick, schedule.job)
        except (TypeError, ValueError) as exc:
            # The store refuses this schedule or its job (too large, say): it would refuse them again.
            self._done[name] = tick
            _logger.error(  # noqa: TRY400  # the message says it all: a traceback would tell nothing more
                "worker %s skips tick %s of periodic %s, which the store refuses: %s",
                self._worker_id,
                tick_text(tick),
                name,
                exc,
                extra={"schedule": name, "tick": tick, "worker_id": self._worker_id},
            )
            return
        self._done[name] = tick
        if task_id is not None:
            _logger.info(
                "periodic %s: tick %s enqueued as task %d",
                name,
                tick_text(tick),
                task_id,
                extra={"schedule": name, "tick": tick, "task_id": task_id, "worker_id": self._worker_id},
            )
