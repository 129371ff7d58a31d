"""Tests for ``Job``: construction checks, defaults, immutability and how its task is run."""

from __future__ import annotations

import datetime
import functools
import math
import re
import types
from typing import Any

import attrs
import pytest

import workerpoolxt as wpxt
from workerpoolxt import Job, Registry, WorkerPool


async def work(options: Any) -> str:
    return "done"


def sync_work(options: Any) -> str:
    return "done"


class AsyncCallable:
    async def __call__(self, options: Any) -> str:
        return "done"


class SyncCallable:
    def __call__(self, options: Any) -> str:
        return "done"


@pytest.mark.parametrize("task", [None, 42, b"work", object()])
def test_task_must_be_callable(task: object) -> None:
    """A task that is neither callable nor a handler's name is a TypeError naming `task`."""
    with pytest.raises(TypeError, match="`task`"):
        wpxt.Job(task)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [1, b"bytes", ["name"]])
def test_name_must_be_str(name: object) -> None:
    """A name that is not a str is a TypeError naming `name`."""
    with pytest.raises(TypeError, match="`name`"):
        wpxt.Job(work, name=name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("retry", "error"),
    [(-1, ValueError), (True, TypeError), (False, TypeError), (1.0, TypeError), ("2", TypeError)],
)
def test_bad_retry(retry: object, error: type[Exception]) -> None:
    """A negative, bool or non-int retry is rejected, naming `retry`."""
    with pytest.raises(error, match="`retry`"):
        wpxt.Job(work, retry=retry)  # type: ignore[arg-type]


def test_retry_zero_is_accepted() -> None:
    """retry=0 (one attempt) is valid and kept."""
    assert wpxt.Job(work, retry=0).retry == 0


@pytest.mark.parametrize("field", ["timeout", "attempt_timeout"])
@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (0.0, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (10**400, ValueError),
        (datetime.timedelta(0), ValueError),
        (datetime.timedelta(seconds=-1), ValueError),
        ("1", TypeError),
        (True, TypeError),
        ([1.0], TypeError),
    ],
)
def test_bad_timeouts(field: str, value: object, error: type[Exception]) -> None:
    """Zero, negative, NaN, infinite or non-number timeouts are rejected, naming the field."""
    with pytest.raises(error, match=f"`{field}`"):
        wpxt.Job(work, **{field: value})


@pytest.mark.parametrize("field", ["timeout", "attempt_timeout"])
def test_timeouts_accept_timedelta(field: str) -> None:
    """A timedelta is accepted for the timeouts and stored as float seconds."""
    job = wpxt.Job(work, **{field: datetime.timedelta(milliseconds=1500)})
    value = getattr(job, field)
    assert value == 1.5
    assert type(value) is float


@pytest.mark.parametrize("field", ["timeout", "attempt_timeout"])
def test_timeouts_accept_int(field: str) -> None:
    """An int number of seconds is accepted and stored as a float."""
    value = getattr(wpxt.Job(work, **{field: 2}), field)
    assert value == 2.0
    assert type(value) is float


@pytest.mark.parametrize("backoff", [0.5, "none", {"initial": 1}])
def test_backoff_wrong_type(backoff: object) -> None:
    """A backoff that is not a Backoff is a TypeError naming `backoff`."""
    with pytest.raises(TypeError, match="`backoff`"):
        wpxt.Job(work, backoff=backoff)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "retry_on",
    [int, KeyboardInterrupt, BaseException, SystemExit, ValueError("an instance"), (ValueError, int), "ValueError"],
)
def test_retry_on_must_be_exception_classes(retry_on: object) -> None:
    """retry_on accepts only Exception subclasses; anything else is a TypeError naming `retry_on`."""
    with pytest.raises(TypeError, match="`retry_on`"):
        wpxt.Job(work, retry_on=retry_on)  # type: ignore[arg-type]


def test_retry_on_single_class_normalised_to_tuple() -> None:
    """A single exception class is stored as a one-element tuple."""
    assert wpxt.Job(work, retry_on=ValueError).retry_on == (ValueError,)


def test_retry_on_tuple_kept() -> None:
    """A tuple of exception classes is kept as given."""
    assert wpxt.Job(work, retry_on=(ValueError, OSError)).retry_on == (ValueError, OSError)


@pytest.mark.parametrize("context", [1.0, "ctx", object()])
def test_context_wrong_type(context: object) -> None:
    """A context that is not a Context is a TypeError naming `context`."""
    with pytest.raises(TypeError, match="`context`"):
        wpxt.Job(work, context=context)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [[("a", 1)], "abc", 3])
def test_options_must_be_mapping(options: object) -> None:
    """Options that are not a mapping are a TypeError naming `options`."""
    with pytest.raises(TypeError, match="`options`"):
        wpxt.Job(work, options=options)  # type: ignore[arg-type]


def test_name_defaults_to_task_name() -> None:
    """Without a name the job is named after its task's __name__."""
    assert wpxt.Job(work).name == "work"
    assert wpxt.Job(sync_work).name == "sync_work"


def test_explicit_name_kept() -> None:
    """An explicit name wins over the task's __name__."""
    assert wpxt.Job(work, name="My first job").name == "My first job"


def test_unset_fields_are_none() -> None:
    """Fields left unset are None, so the pool's defaults apply."""
    job = wpxt.Job(work)
    assert job.context is None
    assert job.options is None
    assert job.retry is None
    assert job.timeout is None
    assert job.attempt_timeout is None
    assert job.backoff is None
    assert job.retry_on is None


def test_fields_are_kept() -> None:
    """Valid values for every field are stored on the job."""
    context = wpxt.Context(deadline=10.0)
    backoff = wpxt.Backoff.none()
    job = wpxt.Job(work, context=context, retry=3, backoff=backoff)
    assert job.task is work
    assert job.context is context
    assert job.retry == 3
    assert job.backoff is backoff


def test_job_is_frozen() -> None:
    """Assigning to a field of a Job raises FrozenInstanceError."""
    job = wpxt.Job(work, name="frozen")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        job.name = "changed"  # type: ignore[misc]
    assert job.name == "frozen"


def test_options_are_a_read_only_copy() -> None:
    """Options are copied into a MappingProxyType; later edits by the caller don't show."""
    options = {"greeting": "hi"}
    job = wpxt.Job(work, options=options)
    options["greeting"] = "changed"
    options["extra"] = "added"
    assert isinstance(job.options, types.MappingProxyType)
    assert dict(job.options) == {"greeting": "hi"}
    with pytest.raises(TypeError):
        job.options["greeting"] = "x"  # type: ignore[index]


def test_options_accept_any_mapping() -> None:
    """A read-only mapping is accepted as options."""
    job = wpxt.Job(work, options=types.MappingProxyType({"a": 1}))
    assert job.options == {"a": 1}


@pytest.mark.parametrize(
    "task",
    [work, functools.partial(work), functools.partial(functools.partial(work)), AsyncCallable()],
    ids=["async-def", "partial", "nested-partial", "async-__call__"],
)
def test_is_async_true(task: Any) -> None:
    """An async def, a partial of one, or an object with async __call__ is run as async."""
    assert wpxt.Job(task).is_async is True


@pytest.mark.parametrize(
    "task",
    [sync_work, functools.partial(sync_work), SyncCallable(), lambda options: work(options)],
    ids=["plain-function", "partial", "sync-__call__", "lambda-returning-coroutine"],
)
def test_is_async_false(task: Any) -> None:
    """A plain function, a partial of one, or an object with sync __call__ runs in a thread."""
    assert wpxt.Job(task).is_async is False


def test_job_fields_class_has_jobs_slots() -> None:
    """_JobFields, which Job() stores its fields through, has exactly Job's fields as slots, and a Job stays frozen."""
    from workerpoolxt._job import _JobFields

    names = sorted(field.name for field in attrs.fields(Job))
    assert sorted(_JobFields.__slots__) == names
    assert sorted(Job.__slots__) == names

    async def task(options: wpxt.Options) -> None:
        return None

    job = Job(task, options={"i": 1}, retry=2, timeout=3)
    assert type(job) is Job
    assert (job.name, job.options, job.retry, job.timeout, job.is_async) == ("task", {"i": 1}, 2, 3.0, True)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        job.name = "other"  # type: ignore[misc]
    assert job == Job(task, options={"i": 1}, retry=2, timeout=3)


def test_jobs_for_one_task_in_a_row_each_describe_their_own_task() -> None:
    """A Job made right after one for another task takes its own name and kind, not the last task's."""

    async def first(options: wpxt.Options) -> None:
        return None

    def second(options: wpxt.Options) -> None:
        return None

    assert (Job(first).name, Job(first).is_async) == ("first", True)
    assert (Job(second).name, Job(second).is_async) == ("second", False)
    assert (Job(first).name, Job(first).is_async) == ("first", True)
    assert Job(len).name == "len"  # a builtin takes no weak reference: described every time
    with pytest.raises(TypeError, match="`task` must be callable"):
        Job(None)  # type: ignore[call-overload]


@pytest.mark.parametrize("value", [60, 0.25, 10**17])
def test_a_number_of_seconds_is_stored_as_a_float(value: float) -> None:
    """An int or float timeout is kept as float seconds, whichever way it was checked."""
    job = wpxt.Job(work, timeout=value, attempt_timeout=value)
    assert (job.timeout, job.attempt_timeout) == (float(value), float(value))
    assert type(job.timeout) is float
    assert type(job.attempt_timeout) is float


# -- the fields a durable store keeps: queue, dedup_key, lock --------------------------------


async def noop(options: wpxt.Options) -> None:
    """A task that does nothing."""


def test_a_named_job_takes_a_queue_a_dedup_key_and_a_lock_and_round_trips_them() -> None:
    """queue, dedup_key and lock are kept on the Job, and to_dict()/from_dict() carry them; unset, omits them."""
    job = Job("send", args={"to": "ada"}, queue="mail", dedup_key="user:42", lock="account:7")
    assert (job.queue, job.dedup_key, job.lock) == ("mail", "user:42", "account:7")
    data = job.to_dict()
    assert (data["queue"], data["dedup_key"], data["lock"]) == ("mail", "user:42", "account:7")
    assert Job.from_dict(data) == job
    assert {"queue", "dedup_key", "lock"}.isdisjoint(Job("send").to_dict())


@pytest.mark.parametrize("field", ["queue", "dedup_key", "lock"])
def test_a_job_holding_a_callable_refuses_the_fields_of_a_store(field: str) -> None:
    """Only a named job can be stored, so only it takes queue, dedup_key or lock: the error names the field."""
    with pytest.raises(TypeError, match=f"^`{field}` is for a task a durable store keeps, which names its handler"):
        Job(noop, **{field: "x"})


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"queue": ""}, ValueError, "`queue` must be 1 to 64 letters, digits or any of `_ . : -`, got ''"),
        ({"queue": "a,b"}, ValueError, "`queue` must be 1 to 64 letters"),
        ({"queue": "q" * 65}, ValueError, "`queue` must be 1 to 64 letters"),
        ({"queue": 3}, TypeError, "`queue` must be a queue's name (a str), not int"),
        (
            {"dedup_key": ""},
            ValueError,
            "`dedup_key` must be non-empty, at most 1000 bytes in UTF-8, without NUL, got ''",
        ),
        ({"dedup_key": "a\x00b"}, ValueError, "`dedup_key` must be non-empty, at most 1000 bytes in UTF-8"),
        ({"lock": "k" * 1001}, ValueError, "`lock` must be non-empty, at most 1000 bytes in UTF-8"),
        ({"lock": "\u00e9" * 501}, ValueError, "`lock` must be non-empty, at most 1000 bytes in UTF-8"),
        ({"lock": b"k"}, TypeError, "`lock` must be a str or None, not bytes"),
    ],
)
def test_queue_dedup_key_and_lock_are_checked(fields: dict[str, Any], error: type[Exception], message: str) -> None:
    """A queue is a short name; a key or lock a non-empty str without NUL: the error names the field."""
    with pytest.raises(error, match=re.escape(message)):
        Job("send", **fields)


async def test_a_pool_refuses_a_job_with_the_fields_of_a_store() -> None:
    """A WorkerPool runs jobs in its process and keeps no queue, key or lock: it refuses such a job by name."""
    registry = Registry()
    registry.register("send")(noop)
    async with WorkerPool(1, registry=registry) as pool:
        for field in ("queue", "dedup_key", "lock"):
            with pytest.raises(ValueError, match=r"^job 'send' sets `queue`, `dedup_key` or `lock`, which a durable"):
                pool.submit(Job("send", **{field: "x"}))
        assert pool.statistics().submitted == 0
