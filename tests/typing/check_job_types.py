"""What mypy --strict infers for jobs, handles and results: checked by tests/typing/test_typing.py, never run.

Each ``assert_type`` is an error unless mypy infers exactly that type; each
``type: ignore[...]`` is an error (with ``warn_unused_ignores``) unless mypy
reports that very error on its line.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, assert_type

import workerpoolxt as wpxt
from workerpoolxt import Job, JobHandle, Result

# -- tasks that take the options --------------------------------------------------------


async def options_as_mapping(options: Mapping[str, Any]) -> int:
    return len(options)


async def options_as_alias(options: wpxt.Options) -> int:
    return len(options)


async def options_as_any(options: Any) -> bytes:
    return b""


def plain_options(options: Mapping[str, Any]) -> str:
    return ""


assert_type(Job(options_as_mapping), Job[int])
assert_type(Job(options_as_alias), Job[int])
assert_type(Job(options_as_any), Job[bytes])
assert_type(Job(plain_options), Job[str])
assert_type(Job(lambda options: 3), Job[int])

# -- keyword handlers -------------------------------------------------------------------


async def send_email(to: str, subject: str, priority: int = 3) -> bool:
    return True


def resize(path: str, size: int = 64) -> tuple[int, int]:
    return (size, size)


async def both(options: wpxt.Options, *, count: int) -> list[str]:
    return []


async def anything(**given: Any) -> dict[str, Any]:
    return given


async def nothing() -> None:
    pass


assert_type(Job(send_email, args={"to": "ada@example.com", "subject": "hi"}), Job[bool])
assert_type(Job(resize, args={"path": "cat.png"}), Job[tuple[int, int]])
assert_type(Job(both, args={"count": 2}), Job[list[str]])
assert_type(Job(anything, args={"a": 1}), Job[dict[str, Any]])
assert_type(Job(nothing), Job[None])
assert_type(Job(functools.partial(send_email, subject="hi"), args={"to": "ada"}), Job[bool])

# -- callable objects and methods -------------------------------------------------------------


class Mailer:
    async def __call__(self, to: str) -> float:
        return 1.0

    async def send(self, to: str) -> complex:
        return 1j

    def count(self, options: wpxt.Options) -> int:
        return 0


assert_type(Job(Mailer(), args={"to": "ada"}), Job[float])
assert_type(Job(Mailer().send, args={"to": "ada"}), Job[complex])
assert_type(Job(Mailer().count), Job[int])

# -- named handlers: the registry, not the type checker, knows the task -----------------------

assert_type(Job("send_email", args={"to": "ada", "subject": "hi"}), Job[Any])
assert_type(Job.from_dict({"task": "send_email"}), Job[Any])

registry = wpxt.Registry()


@registry.register("send")
async def registered(to: str) -> int:
    return 1


assert_type(Job(registered, args={"to": "ada"}), Job[int])  # the decorator keeps the function's type

# -- what a pool hands back ---------------------------------------------------------------------


async def submitted(pool: wpxt.WorkerPool) -> None:
    handle = pool.submit(Job(send_email, args={"to": "ada", "subject": "hi"}))
    assert_type(handle, JobHandle[bool])
    result = await handle.wait()
    assert_type(result, Result[bool])
    assert_type(result.data, bool | None)
    assert_type(await pool.submit_wait(Job(options_as_mapping)), Result[int])


# -- what is not a task ------------------------------------------------------------------------

Job(42)  # type: ignore[call-overload]
Job(send_email, args=["ada"])  # type: ignore[call-overload]
