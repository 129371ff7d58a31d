"""Tests that the public surface is complete and its value objects are frozen, slotted attrs classes."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

import attrs
import pytest

import workerpoolxt as wpxt
from workerpoolxt import hooks

PUBLIC_MODULES = [
    "workerpoolxt",
    "workerpoolxt.hooks",
    "workerpoolxt.middleware",
    "workerpoolxt.durable",
    "workerpoolxt.durable.testing",
    "workerpoolxt.supervise",
    "workerpoolxt.observe",
]


@pytest.fixture(params=PUBLIC_MODULES)
def module(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


async def task(options: Any) -> None:
    return None


def test_all_names_exist(module: ModuleType) -> None:
    """Every name in a public module's __all__ is an attribute of it."""
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_all_is_sorted_and_unique(module: ModuleType) -> None:
    """Each public module's __all__ is sorted and has no duplicates."""
    assert list(module.__all__) == sorted(set(module.__all__))


def test_every_public_class_and_function_is_in_all(module: ModuleType) -> None:
    """Each public class or function a public module offers is listed in its __all__.

    A package offers what it imports from its private modules; a plain module, what it defines (a
    module that only re-exports, such as ``workerpoolxt.hooks``, is checked by ``test_all_names_exist``).
    """
    is_package = hasattr(module, "__path__")

    def offered(value: Any) -> bool:
        home = getattr(value, "__module__", "")
        return home.startswith(f"{module.__name__}.") if is_package else home == module.__name__

    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value)) and offered(value)
    }
    assert public or not is_package, "each public package should export something"
    assert public - set(module.__all__) == set()


def test_the_top_level_holds_the_core_only() -> None:
    """No durable, supervise or observe name is exported from the top level: each wing is imported by name."""
    wings = {"workerpoolxt.durable", "workerpoolxt.supervise", "workerpoolxt.observe"}
    for wing in wings:
        module = importlib.import_module(wing)
        assert set(module.__all__).isdisjoint(wpxt.__all__)


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
    wpxt.RunInfo(task_id=1),
    hooks.JobFinished(handle=None, result=None),  # type: ignore[arg-type]
    hooks.AttemptEnded(handle=None, attempt=1, time=0.0, error=None),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("instance", VALUE_OBJECTS, ids=lambda value: type(value).__name__)
def test_value_objects_are_frozen_slotted_attrs(instance: Any) -> None:
    """Job, Result, PoolStatistics, Backoff, RunInfo and the observers' events are frozen, slotted attrs classes."""
    cls = type(instance)
    assert attrs.has(cls)
    assert "__slots__" in cls.__dict__
    assert not hasattr(instance, "__dict__")
    first = attrs.fields(cls)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, first, getattr(instance, first))
    with pytest.raises((attrs.exceptions.FrozenInstanceError, AttributeError)):
        instance.not_a_field = 1
