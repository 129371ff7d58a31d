"""Jobs as plain data: JSON-compatible arguments and the Job <-> dict conversion.

This is the one place that knows how a named job looks as data, so the durable
stores persist exactly what it produces.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._retry import Backoff

if TYPE_CHECKING:
    from ._job import Job

EMPTY_ARGS: Final[Mapping[str, Any]] = types.MappingProxyType({})

# The fields of a named job that round-trip through a dict, in order.
_PLAIN_FIELDS: Final = ("task", "name", "args", "retry", "timeout", "attempt_timeout", "backoff", "max_per_second")
PLACEMENT_FIELDS: Final = ("queue", "dedup_key", "lock")
"""The fields a durable store keeps beside a job's data, as columns of its own: in a dict only when set."""
_PLAIN_KEYS: Final = frozenset(_PLAIN_FIELDS + PLACEMENT_FIELDS)


def json_copy(value: Any, path: str) -> Any:
    """Return a copy of ``value`` made of dicts, lists, str, int, float, bool and None.

    Raises:
        TypeError: Something in ``value`` is not JSON-compatible; ``path`` names where.
        ValueError: A float is NaN or infinite, which JSON cannot hold.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"`{path}` must be a finite number for JSON, got {value!r}")
        return value
    if isinstance(value, Mapping):
        copied = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"`{path}` keys must be str for JSON, got {key!r}")
            copied[key] = json_copy(item, f"{path}[{key!r}]")
        return copied
    if isinstance(value, list | tuple):
        return [json_copy(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise TypeError(f"`{path}` must be JSON-compatible, got {type(value).__name__}")


def freeze_args(args: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Check ``args`` is a JSON object and return a read-only copy."""
    if args is None:
        return EMPTY_ARGS
    if not isinstance(args, Mapping):
        raise TypeError(f"`args` must be a mapping or None, not {type(args).__name__}")
    return types.MappingProxyType(json_copy(args, "args"))


def job_to_dict(job: Job[Any]) -> dict[str, Any]:
    """Describe a named job as JSON-compatible data; ``job_from_dict`` reverses it."""
    if not isinstance(job.task, str):
        raise TypeError("only a job naming a handler converts to a dict: use Job('handler name', args=...)")
    for field in ("options", "context", "retry_on", "run_in"):
        if getattr(job, field) is not None:
            raise ValueError(f"`{field}` cannot be stored as data: set it on the pool that runs the job instead")
    if job.middleware:
        raise ValueError("`middleware` cannot be stored as data: set it on the pool that runs the job instead")
    backoff = job.backoff  # finite by construction, so it is valid JSON
    data = {
        "task": job.task,
        "name": job.name,
        "args": json_copy(job.args, "args"),
        "retry": job.retry,
        "timeout": job.timeout,
        "attempt_timeout": job.attempt_timeout,
        "backoff": None if backoff is None else attrs.asdict(backoff),
        "max_per_second": job.max_per_second,
    }
    for field in PLACEMENT_FIELDS:
        value = getattr(job, field)
        if value is not None:
            data[field] = value
    return data


_NO_OVERRIDE: Final[Any] = object()


def job_from_dict(
    job_class: type[Job[Any]],
    data: Mapping[str, Any],
    *,
    handler: Callable[..., Any] | None = None,
    retry: int | None = _NO_OVERRIDE,
    run_in: str | None = None,
) -> Job[Any]:
    """Build the named job that ``job_to_dict`` described, as a ``job_class`` (which is ``Job``).

    A durable worker passes ``handler``, the function ``data["task"]`` names in
    its registry, to make the job that runs it at once, rather than a job the
    pool must look up and copy, with the ``run_in`` it was registered with;
    and ``retry``, to replace the stored one.

    Raises:
        ValueError: ``data`` has unknown keys or lacks ``task``.
        TypeError: A value has the wrong type (the message names the field), or
            the args do not fit ``handler``'s parameters (the message names both).
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a job dict must be a mapping, not {type(data).__name__}")
    if not _PLAIN_KEYS.issuperset(data):
        raise ValueError(f"unknown job fields: {sorted(set(data) - _PLAIN_KEYS)}")
    task = data.get("task")
    if task is None and "task" not in data:
        raise ValueError("a job dict needs `task`, the handler's name")
    if not isinstance(task, str):
        raise TypeError(f"`task` must be the handler's name, not {type(task).__name__}")
    backoff = data.get("backoff")
    if backoff is not None:
        if not isinstance(backoff, Mapping):
            raise TypeError(f"`backoff` must be a mapping or None, not {type(backoff).__name__}")
        backoff = Backoff(**backoff)
    job = job_class(
        task,
        name=data.get("name"),
        args=data.get("args"),
        retry=data.get("retry") if retry is _NO_OVERRIDE else retry,
        timeout=data.get("timeout"),
        attempt_timeout=data.get("attempt_timeout"),
        backoff=backoff,
        max_per_second=data.get("max_per_second"),
        queue=data.get("queue"),
        dedup_key=data.get("dedup_key"),
        lock=data.get("lock"),
    )
    # Resolved as a pool resolves a named job: the args are checked against the
    # handler, and an error names it as the task does.
    return job if handler is None else job._with_task(handler, run_in)
