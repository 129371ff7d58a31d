"""Tests for jobs as data: JSON-compatible ``args`` and the ``Job.to_dict()`` / ``Job.from_dict()`` round trip."""

from __future__ import annotations

import datetime
import json
import math
import types
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import workerpoolxt as wpxt
from workerpoolxt import Backoff, Context, Job


async def work(options: Any) -> str:
    return "done"


def sync_work(options: Any) -> str:
    return "done"


def strict_json_round_trip(data: dict[str, Any]) -> Any:
    """``data`` through strict JSON (no NaN or Infinity) and back."""
    return json.loads(json.dumps(data, allow_nan=False))


def dumped(data: Any) -> str:
    """A canonical JSON text for ``data``, which tells 1 from 1.0 and True from 1."""
    return json.dumps(data, sort_keys=True, allow_nan=False)


# -- args --------------------------------------------------------------------------------


def test_json_args_accepted() -> None:
    """Args made of dicts, lists, str, int, float, bool and None are kept as given."""
    args = {"to": "a@b", "n": 3, "ratio": 0.5, "flag": True, "none": None, "nested": {"list": [1, "two", [3.0]]}}
    job = Job("send_email", args=args)
    assert job.args == args
    assert dumped(dict(job.args)) == dumped(args)


def test_args_are_copied_deeply() -> None:
    """Mutating the caller's args, at any depth, after construction does not change the job's."""
    inner = {"list": [1, 2]}
    args: dict[str, Any] = {"inner": inner, "top": "x"}
    job = Job("handler", args=args)
    args["top"] = "changed"
    args["added"] = 1
    inner["list"].append(3)
    inner["new"] = True
    assert job.args == {"inner": {"list": [1, 2]}, "top": "x"}


def test_args_top_level_is_read_only() -> None:
    """The job's args are a MappingProxyType: item assignment raises TypeError."""
    job = Job("handler", args={"a": 1})
    assert isinstance(job.args, types.MappingProxyType)
    with pytest.raises(TypeError):
        job.args["a"] = 2  # type: ignore[index]
    assert job.args["a"] == 1


def test_tuples_become_lists() -> None:
    """Tuples anywhere in args become lists, as JSON would make them."""
    job = Job("handler", args={"point": (1, 2), "nested": [("a", ("b",))]})
    assert job.args["point"] == [1, 2]
    assert type(job.args["point"]) is list
    assert job.args["nested"] == [["a", ["b"]]]
    assert type(job.args["nested"][0]) is list
    assert type(job.args["nested"][0][1]) is list


def test_nested_mappings_become_dicts() -> None:
    """A non-dict mapping inside args is copied into a plain dict."""
    job = Job("handler", args={"inner": types.MappingProxyType({"k": "v"})})
    assert type(job.args["inner"]) is dict
    assert job.args["inner"] == {"k": "v"}


@pytest.mark.parametrize(
    ("args", "error", "path"),
    [
        ({"a": [object()]}, TypeError, "args['a'][0]"),
        ({"a": {1, 2}}, TypeError, "args['a']"),
        ({"a": b"bytes"}, TypeError, "args['a']"),
        ({"a": {"b": [1, 2, b"x"]}}, TypeError, "args['a']['b'][2]"),
        ({1: "one"}, TypeError, "args"),
        ({"a": {1: "one"}}, TypeError, "args['a']"),
        ({"a": [math.nan]}, ValueError, "args['a'][0]"),
        ({"a": math.inf}, ValueError, "args['a']"),
        ({"a": {"b": -math.inf}}, ValueError, "args['a']['b']"),
        ({"a": datetime.date(2024, 1, 1)}, TypeError, "args['a']"),
    ],
)
def test_non_json_args_rejected_naming_path(args: dict[Any, Any], error: type[Exception], path: str) -> None:
    """A value JSON cannot hold is a TypeError (NaN and infinities: ValueError) naming its path in backquotes."""
    with pytest.raises(error) as excinfo:
        Job("handler", args=args)
    assert f"`{path}`" in str(excinfo.value)


@pytest.mark.parametrize("args", [[("a", 1)], "a=1", 1])
def test_args_must_be_a_mapping(args: object) -> None:
    """Args that are not a mapping or None are a TypeError naming `args`."""
    with pytest.raises(TypeError, match="`args`"):
        Job("handler", args=args)  # type: ignore[arg-type]


def test_args_none_gives_empty_mapping() -> None:
    """args=None (or no args) gives an empty, read-only mapping."""
    for job in (Job("handler"), Job("handler", args=None), Job(work)):
        assert job.args == {}
        assert len(job.args) == 0
        assert isinstance(job.args, types.MappingProxyType)


def test_args_on_callable_jobs_allowed() -> None:
    """A job holding a callable may carry args too, checked and copied the same way."""
    args = {"x": [1, 2]}
    job = Job(work, args=args)
    args["x"].append(3)
    assert job.args == {"x": [1, 2]}
    assert Job(sync_work, args={"y": None}).args == {"y": None}
    with pytest.raises(TypeError, match=r"`args\['x'\]`"):
        Job(work, args={"x": object()})


def test_job_without_args_is_hashable() -> None:
    """A Job with no options, args or context hashes, as it did before args existed."""
    assert hash(Job(work)) == hash(Job(work))
    assert len({Job(work), Job(work)}) == 1


# -- to_dict / from_dict -----------------------------------------------------------------


async def noop_middleware(job: Any, call_next: Any) -> Any:
    return await call_next()


def full_job() -> Job[Any]:
    return Job(
        "send_email",
        name="welcome mail",
        args={"to": "a@b", "cc": ["c@d", "e@f"], "meta": {"priority": 2, "tags": [], "ratio": 0.25, "x": None}},
        retry=3,
        timeout=30.0,
        attempt_timeout=7.5,
        backoff=Backoff(initial=0.25, multiplier=2.0, max=10.0, jitter=0.1),
        max_per_second=4.0,
    )


def test_to_dict_shape() -> None:
    """to_dict() gives every data field, with the backoff as a dict of its four fields."""
    assert full_job().to_dict() == {
        "task": "send_email",
        "name": "welcome mail",
        "args": {"to": "a@b", "cc": ["c@d", "e@f"], "meta": {"priority": 2, "tags": [], "ratio": 0.25, "x": None}},
        "retry": 3,
        "timeout": 30.0,
        "attempt_timeout": 7.5,
        "backoff": {"initial": 0.25, "multiplier": 2.0, "max": 10.0, "jitter": 0.1},
        "max_per_second": 4.0,
    }


def test_to_dict_of_minimal_named_job() -> None:
    """A bare named job converts with its handler name as its name and None for every unset field."""
    assert Job("ping").to_dict() == {
        "task": "ping",
        "name": "ping",
        "args": {},
        "retry": None,
        "timeout": None,
        "attempt_timeout": None,
        "backoff": None,
        "max_per_second": None,
    }


def test_round_trip_is_lossless() -> None:
    """from_dict(to_dict(job)) == job, to_dict(from_dict(d)) == d, and d survives JSON unchanged."""
    job = full_job()
    data = job.to_dict()
    assert Job.from_dict(data) == job
    assert Job.from_dict(data).to_dict() == data
    through_json = strict_json_round_trip(data)
    assert through_json == data
    assert dumped(through_json) == dumped(data)
    assert Job.from_dict(through_json) == job


def test_round_trip_minimal_named_job() -> None:
    """A named job with only a handler name round-trips through a dict and JSON."""
    job = Job("ping")
    assert Job.from_dict(strict_json_round_trip(job.to_dict())) == job


def test_round_trip_preserves_int_float_and_bool() -> None:
    """1, 1.0 and True in args come back as 1, 1.0 and True, not merely equal values."""
    job = Job("h", args={"i": 1, "f": 1.0, "b": True, "z": 0, "neg": -0.0, "big": 2**70})
    back = Job.from_dict(strict_json_round_trip(job.to_dict()))
    assert dumped(dict(back.args)) == dumped(dict(job.args))
    assert [type(back.args[k]) for k in ("i", "f", "b", "z", "neg", "big")] == [int, float, bool, int, float, int]


def test_timedelta_timeouts_become_seconds() -> None:
    """Timeouts given as timedeltas are stored as float seconds and come back equal."""
    job = Job("h", timeout=datetime.timedelta(seconds=2), attempt_timeout=datetime.timedelta(milliseconds=500))
    data = job.to_dict()
    assert data["timeout"] == 2.0
    assert data["attempt_timeout"] == 0.5
    assert Job.from_dict(data) == job


def test_to_dict_copies_args() -> None:
    """Mutating the dict from to_dict() leaves the job's args unchanged."""
    job = Job("h", args={"items": [1, 2], "inner": {"k": "v"}})
    data = job.to_dict()
    data["args"]["items"].append(3)
    data["args"]["inner"]["k"] = "changed"
    assert job.args == {"items": [1, 2], "inner": {"k": "v"}}


def test_from_dict_copies_args() -> None:
    """Mutating the dict after from_dict() leaves the built job's args unchanged."""
    data = Job("h", args={"items": [1, 2]}).to_dict()
    job = Job.from_dict(data)
    data["args"]["items"].append(3)
    assert job.args == {"items": [1, 2]}


def test_from_dict_with_only_task() -> None:
    """{"task": name} alone builds the bare named job."""
    assert Job.from_dict({"task": "ping"}) == Job("ping")


def test_from_dict_null_name_defaults_to_task() -> None:
    """A None name in the dict gives the handler's name, as Job() does."""
    assert Job.from_dict({"task": "ping", "name": None}).name == "ping"


@pytest.mark.parametrize("task", [work, sync_work])
def test_to_dict_of_callable_job_is_type_error(task: Any) -> None:
    """A job holding a callable does not convert: TypeError."""
    with pytest.raises(TypeError, match="handler"):
        Job(task).to_dict()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("options", {"a": 1}),
        ("options", {}),
        ("context", Context()),
        ("retry_on", ValueError),
        ("middleware", [noop_middleware]),
    ],
)
def test_to_dict_with_non_data_field_is_value_error(field: str, value: Any) -> None:
    """A named job with options, context, retry_on or middleware does not convert: ValueError naming the field."""
    with pytest.raises(ValueError, match=f"`{field}`"):
        Job("h", **{field: value}).to_dict()


def test_from_dict_unknown_key_is_value_error() -> None:
    """An unknown key in the dict is a ValueError naming it."""
    with pytest.raises(ValueError, match="'priority'"):
        Job.from_dict({"task": "h", "priority": 5})
    with pytest.raises(ValueError, match="'options'"):
        Job.from_dict({"task": "h", "options": {}})


def test_from_dict_without_task_is_value_error() -> None:
    """A dict without `task` is a ValueError naming `task`."""
    with pytest.raises(ValueError, match="`task`"):
        Job.from_dict({"name": "x", "args": {}})


@pytest.mark.parametrize("task", [None, 1, ["h"], {"name": "h"}])
def test_from_dict_task_not_str_is_type_error(task: object) -> None:
    """A `task` that is not a str is a TypeError naming `task`."""
    with pytest.raises(TypeError, match="`task`"):
        Job.from_dict({"task": task})


def test_from_dict_empty_task_is_value_error() -> None:
    """An empty handler name is a ValueError naming `task`, as for Job("")."""
    with pytest.raises(ValueError, match="`task`"):
        Job.from_dict({"task": ""})


@pytest.mark.parametrize("data", [[("task", "h")], "h", None])
def test_from_dict_needs_a_mapping(data: object) -> None:
    """from_dict() of something not a mapping is a TypeError."""
    with pytest.raises(TypeError, match="mapping"):
        Job.from_dict(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backoff", "field"),
    [
        ({"initial": -1.0}, "initial"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"max": -2}, "max"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_from_dict_bad_backoff_values(backoff: dict[str, float], field: str) -> None:
    """Bad backoff values raise Backoff's own ValueError naming the field."""
    with pytest.raises(ValueError, match=f"`{field}`") as excinfo:
        Job.from_dict({"task": "h", "backoff": backoff})
    with pytest.raises(ValueError, match=f"`{field}`") as direct:
        Backoff(**backoff)
    assert str(excinfo.value) == str(direct.value)


def test_from_dict_backoff_not_a_mapping() -> None:
    """A backoff that is neither a mapping nor None is a TypeError naming `backoff`."""
    with pytest.raises(TypeError, match="`backoff`"):
        Job.from_dict({"task": "h", "backoff": [0.5, 1.5, 60, 0.5]})


def test_from_dict_partial_backoff_takes_defaults() -> None:
    """A backoff dict with some fields fills the rest with Backoff's defaults."""
    assert Job.from_dict({"task": "h", "backoff": {"initial": 2.0}}).backoff == Backoff(initial=2.0)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("retry", -1, ValueError),
        ("retry", "3", TypeError),
        ("retry", True, TypeError),
        ("timeout", 0, ValueError),
        ("timeout", "5", TypeError),
        ("attempt_timeout", -1.0, ValueError),
        ("name", 5, TypeError),
        ("args", ["a"], TypeError),
    ],
)
def test_from_dict_checks_fields_like_job(field: str, value: object, error: type[Exception]) -> None:
    """Bad field values are rejected as Job() rejects them, naming the field."""
    with pytest.raises(error, match=f"`{field}`"):
        Job.from_dict({"task": "h", field: value})


def test_from_dict_non_json_args_named() -> None:
    """Args that are not JSON-compatible are refused by from_dict() with their path."""
    with pytest.raises(ValueError, match=r"`args\['x'\]\[1\]`"):
        Job.from_dict({"task": "h", "args": {"x": [1.0, math.nan]}})


async def test_named_job_from_dict_runs_in_a_pool(autojump_clock: trio.testing.MockClock) -> None:
    """A job rebuilt from JSON runs its handler in a pool with the original args."""
    registry = wpxt.Registry()

    @registry.register("add")
    async def add(options: Any) -> int:
        args = wpxt.current_job().args
        return int(args["a"] + args["b"])

    stored = json.dumps(Job("add", args={"a": 2, "b": 3}, retry=1).to_dict())
    async with wpxt.WorkerPool(1, registry=registry) as pool:
        result = await pool.submit_wait(Job.from_dict(json.loads(stored)))
    assert result.status is wpxt.Status.SUCCEEDED
    assert result.data == 5
    assert result.name == "add"


# -- the property ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
json_args = st.none() | st.dictionaries(st.text(), json_values, max_size=5)
seconds = st.none() | st.floats(min_value=0, exclude_min=True, allow_infinity=False)
backoffs = st.none() | st.builds(
    Backoff,
    initial=st.floats(min_value=0, max_value=1e6),
    multiplier=st.floats(min_value=1, max_value=100),
    max=st.floats(min_value=0, max_value=1e6),
    jitter=st.floats(min_value=0, max_value=1),
)


@settings(max_examples=200, deadline=None)
@given(
    task=st.text(min_size=1),
    name=st.none() | st.text(),
    args=json_args,
    retry=st.none() | st.integers(min_value=0, max_value=1000),
    timeout=seconds,
    attempt_timeout=seconds,
    backoff=backoffs,
)
def test_property_round_trip(
    task: str,
    name: str | None,
    args: dict[str, Any] | None,
    retry: int | None,
    timeout: float | None,
    attempt_timeout: float | None,
    backoff: Backoff | None,
) -> None:
    """For any JSON-compatible args and limits, from_dict(to_dict(job)) == job, through strict JSON too."""
    job = Job(
        task, name=name, args=args, retry=retry, timeout=timeout, attempt_timeout=attempt_timeout, backoff=backoff
    )
    data = job.to_dict()
    assert Job.from_dict(data) == job
    assert Job.from_dict(data).to_dict() == data
    through_json = strict_json_round_trip(data)
    assert dumped(through_json) == dumped(data)
    rebuilt = Job.from_dict(through_json)
    assert rebuilt == job
    assert dumped(rebuilt.to_dict()) == dumped(data)
