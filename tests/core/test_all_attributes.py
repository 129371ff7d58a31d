"""Tests that the public surface is complete and its value objects are frozen, slotted attrs classes."""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import pytest

import workerpoolxt as wpxt


async def task(options: Any) -> None:
    return None


def test_all_names_exist() -> None:
    """Every name in __all__ is an attribute of the package."""
    missing = [name for name in wpxt.__all__ if not hasattr(wpxt, name)]
    assert missing == []


def test_all_is_sorted_and_unique() -> None:
    """__all__ is sorted and has no duplicates."""
    assert list(wpxt.__all__) == sorted(set(wpxt.__all__))


def test_every_public_class_and_function_is_in_all() -> None:
    """Each public class or function defined in the package is listed in __all__."""
    public = {
        name
        for name, value in vars(wpxt).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").split(".")[0] == "workerpoolxt"
    }
    assert public, "the package should export classes"
    assert public - set(wpxt.__all__) == set()


def test_spec_names_are_exported() -> None:
    """The names the spec fixes are all in __all__."""
    fixed = {
        "Backoff",
        "Context",
        "Job",
        "JobAbandonedError",
        "JobCancelledError",
        "JobHandle",
        "JobTimeoutError",
        "PoolClosedError",
        "Result",
        "Status",
        "WorkerPool",
        "WorkerPoolError",
    }
    assert fixed <= set(wpxt.__all__)


VALUE_OBJECTS = [
    wpxt.Job(task),
    wpxt.Result(
        job_id=0,
        name="task",
        data=None,
        error=None,
        status=wpxt.Status.SUCCEEDED,
        code=200,
        attempts=1,
        duration=0.0,
        queued_at=0.0,
        started_at=0.0,
        finished_at=0.0,
    ),
    wpxt.PoolStatistics(
        max_workers=1,
        running=0,
        waiting=0,
        submitted=0,
        succeeded=0,
        failed=0,
        timed_out=0,
        cancelled=0,
        abandoned=0,
        unread=0,
    ),
    wpxt.Backoff(),
]


@pytest.mark.parametrize("instance", VALUE_OBJECTS, ids=lambda value: type(value).__name__)
def test_value_objects_are_frozen_slotted_attrs(instance: Any) -> None:
    """Job, Result, PoolStatistics and Backoff are attrs classes, frozen and with __slots__."""
    cls = type(instance)
    assert attrs.has(cls)
    assert "__slots__" in cls.__dict__
    assert not hasattr(instance, "__dict__")
    first = attrs.fields(cls)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, first, getattr(instance, first))
    with pytest.raises((attrs.exceptions.FrozenInstanceError, AttributeError)):
        instance.not_a_field = 1
