"""Tests for keyword handlers: a task's parameters take the job's ``args``, checked against its signature early.

The rule (``workerpoolxt/_call.py``): the first parameter takes the options if it
is positional-only, ``*args`` or named ``options``; a task with no other
parameter is called ``task(options)``; any other gets the args as keywords.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import trio
import trio.testing

import workerpoolxt as wpxt
from workerpoolxt import Job, Registry, Status, UnknownHandlerError, WorkerPool
from workerpoolxt.hooks import AttemptStarted, Observer

SAFETY = 5.0
"""Seconds before a test running a plain task on the real clock fails rather than hangs."""


async def send_email(to: str, subject: str, priority: int = 3) -> tuple[str, str, int]:
    return (to, subject, priority)


async def legacy(options: wpxt.Options) -> tuple[dict[str, Any], dict[str, Any]]:
    return dict(options), dict(wpxt.current_job().args)


async def run_one(job: Job[Any], observer: Observer | None = None, **pool_fields: Any) -> wpxt.Result[Any]:
    async with WorkerPool(1, **pool_fields) as pool:
        if observer is not None:
            pool.add_observer(observer)
        return await pool.submit_wait(job)


def data_of(result: wpxt.Result[Any]) -> Any:
    assert result.status is Status.SUCCEEDED, result.error
    return result.data


# -- running: the args as keyword arguments ----------------------------------------------


async def test_async_handler_gets_its_args_as_keywords() -> None:
    """Job(send_email, args={...}) awaits send_email(to=..., subject=...), with the defaults of those left out."""
    result = await run_one(Job(send_email, args={"to": "ada@example.com", "subject": "hi"}))
    assert data_of(result) == ("ada@example.com", "hi", 3)


async def test_a_default_gives_way_to_an_argument() -> None:
    """An argument given for a parameter with a default replaces the default."""
    result = await run_one(Job(send_email, args={"to": "ada", "subject": "hi", "priority": 1}))
    assert data_of(result) == ("ada", "hi", 1)


async def test_plain_handler_gets_its_args_in_a_thread() -> None:
    """A plain keyword handler runs in a thread, with the same rule, and current_job() works there."""
    trio_thread = threading.get_ident()

    def resize(path: str, size: int = 64) -> tuple[str, int, bool, Mapping[str, Any]]:
        return path, size, threading.get_ident() != trio_thread, wpxt.current_job().args

    with trio.fail_after(SAFETY):
        result = await run_one(Job(resize, args={"path": "cat.png"}))
    assert data_of(result) == ("cat.png", 64, True, {"path": "cat.png"})


async def test_named_handler_gets_its_args_as_keywords() -> None:
    """Job("send_email", args=...) through a Registry runs the handler with its args, named after the handler."""
    registry = Registry()
    registry.register("send_email", send_email)
    result = await run_one(Job("send_email", args={"to": "ada", "subject": "hi"}), registry=registry)
    assert result.name == "send_email"
    assert data_of(result) == ("ada", "hi", 3)


async def test_keyword_handler_reads_the_options_through_current_job() -> None:
    """A keyword handler still finds the effective options (the pool's here) as current_job().options."""

    async def handler(to: str) -> tuple[str, dict[str, Any]]:
        return to, dict(wpxt.current_job().options)

    result = await run_one(Job(handler, args={"to": "ada"}), options={"smtp": "mail.example.com"})
    assert data_of(result) == ("ada", {"smtp": "mail.example.com"})


@pytest.mark.parametrize("limit", ["none", "attempt_timeout", "middleware", "observer"])
async def test_every_attempt_gets_the_args(autojump_clock: trio.testing.MockClock, limit: str) -> None:
    """Retries call the handler with the same args, however the attempt is made: inline, bounded, wrapped, observed."""
    calls: list[tuple[int, str]] = []

    async def flaky(to: str) -> str:
        calls.append((wpxt.current_job().attempt, to))
        await trio.sleep(1)
        if len(calls) < 3:
            raise OSError("try again")
        return to

    async def passing(job: wpxt.RunningJob, call_next: Callable[[], Any]) -> Any:
        return await call_next()

    class Watching(Observer):
        def attempt_started(self, event: AttemptStarted) -> None:
            pass

    job_fields: dict[str, Any] = {"retry": 2, "backoff": wpxt.Backoff.none()}
    pool_fields: dict[str, Any] = {}
    if limit == "attempt_timeout":
        job_fields["attempt_timeout"] = 5
    elif limit == "middleware":
        job_fields["middleware"] = [passing]
    elif limit == "observer":
        pool_fields["observer"] = Watching()
    result = await run_one(Job(flaky, args={"to": "ada"}, **job_fields), **pool_fields)
    assert data_of(result) == "ada"
    assert calls == [(1, "ada"), (2, "ada"), (3, "ada")]
    assert trio.current_time() == 3.0


# -- the rule's forms -----------------------------------------------------------------------


async def test_options_form_is_unchanged() -> None:
    """A task whose only parameter is `options` gets the options; its args, unchecked, through current_job()."""
    result = await run_one(Job(legacy, options={"o": 1}, args={"anything": [1, 2]}))
    assert data_of(result) == ({"o": 1}, {"anything": [1, 2]})


async def test_only_parameter_positional_only_takes_the_options() -> None:
    """A task whose only parameter is positional-only gets the options, whatever it is called."""

    def task(opts: wpxt.Options, /) -> dict[str, Any]:
        return dict(opts)

    with trio.fail_after(SAFETY):
        result = await run_one(Job(task, options={"o": 1}, args={"ignored": True}))
    assert data_of(result) == {"o": 1}


async def test_star_args_takes_the_options() -> None:
    """A task taking only *args gets the options as its one positional argument."""

    async def task(*given: Any) -> tuple[Any, ...]:
        return given

    result = await run_one(Job(task, options={"o": 1}, args={"ignored": True}))
    assert data_of(result) == ({"o": 1},)


async def test_options_beside_keyword_only_args() -> None:
    """A parameter named `options` first, then others: the options positionally, the args as keywords."""

    async def task(options: wpxt.Options, *, to: str, cc: str = "") -> tuple[dict[str, Any], str, str]:
        return dict(options), to, cc

    result = await run_one(Job(task, options={"o": 1}, args={"to": "ada"}))
    assert data_of(result) == ({"o": 1}, "ada", "")

    async def optional(options: wpxt.Options, *, cc: str = "none") -> tuple[dict[str, Any], str]:
        return dict(options), cc

    result = await run_one(Job(optional, options={"o": 1}))  # no args: every keyword-only default
    assert data_of(result) == ({"o": 1}, "none")


async def test_positional_only_first_parameter_beside_args() -> None:
    """A positional-only first parameter takes the options, whatever its name; the rest take the args."""

    async def task(opts: wpxt.Options, /, to: str) -> tuple[dict[str, Any], str]:
        return dict(opts), to

    result = await run_one(Job(task, options={"o": 1}, args={"to": "ada"}))
    assert data_of(result) == ({"o": 1}, "ada")


async def test_var_keyword_handler_accepts_any_args() -> None:
    """A handler with only **kwargs gets every arg, whatever its name, and no options."""

    async def task(**given: Any) -> dict[str, Any]:
        return given

    result = await run_one(Job(task, options={"o": 1}, args={"a": 1, "options": 2}))
    assert data_of(result) == {"a": 1, "options": 2}


async def test_options_and_var_keyword_get_both() -> None:
    """`def f(options, **kwargs)` gets the options and every arg."""

    async def task(options: wpxt.Options, **given: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return dict(options), given

    result = await run_one(Job(task, options={"o": 1}, args={"a": 1}))
    assert data_of(result) == ({"o": 1}, {"a": 1})


async def test_handler_without_parameters_is_called_with_none() -> None:
    """A handler that takes no parameter is called with no argument (not the options)."""

    async def tick() -> str:
        return "ticked"

    assert data_of(await run_one(Job(tick))) == "ticked"
    with pytest.raises(TypeError, match=r"tick\(\) got an unexpected keyword argument 'now'"):
        Job(tick, args={"now": 1})


async def test_partial_and_bound_method_handlers() -> None:
    """A partial's and a bound method's own signatures decide: what the partial or `self` fills is not asked for."""

    class Mailer:
        def __init__(self, sender: str) -> None:
            self.sender = sender

        async def send(self, to: str) -> tuple[str, str]:
            return self.sender, to

    mailer = Mailer("me")
    with_subject = functools.partial(send_email, subject="hi")
    assert data_of(await run_one(Job(with_subject, args={"to": "ada"}))) == ("ada", "hi", 3)
    assert data_of(await run_one(Job(mailer.send, args={"to": "ada"}))) == ("me", "ada")
    with pytest.raises(TypeError, match=r"send\(\) missing a required argument: 'to'"):
        Job(mailer.send)


async def test_unreadable_signature_takes_the_options() -> None:
    """A callable whose signature cannot be read (the builtin max) is called with the options, as always."""
    with pytest.raises(ValueError, match="no signature"):
        inspect.signature(max)
    with trio.fail_after(SAFETY):
        result = await run_one(Job(max, options={"a": 1, "b": 2}))
    assert data_of(result) == "b"


# -- checked early ----------------------------------------------------------------------


def test_missing_argument_fails_at_job_build() -> None:
    """An argument the handler requires and the job lacks is a TypeError naming both, when the Job is built."""
    with pytest.raises(TypeError, match=r"^send_email\(\) missing a required argument: 'subject'$"):
        Job(send_email, args={"to": "ada"})


def test_unknown_argument_fails_at_job_build() -> None:
    """An argument the handler has no parameter for is a TypeError naming both, when the Job is built."""
    with pytest.raises(TypeError, match=r"^send_email\(\) got an unexpected keyword argument 'cc'$"):
        Job(send_email, args={"to": "ada", "subject": "hi", "cc": "bob"})


def test_options_given_twice_fails_at_job_build() -> None:
    """An arg named like the parameter that takes the options would be given twice: refused, naming it."""

    async def task(options: wpxt.Options, **given: Any) -> None:
        pass

    with pytest.raises(TypeError, match=r"task\(\) multiple values for argument 'options'"):
        Job(task, args={"options": 1})


def test_positional_only_parameter_cannot_be_an_argument() -> None:
    """A positional-only parameter beyond the options one takes no arg, even beside **kwargs: refused, naming it."""

    async def task(opts: wpxt.Options, count: int, /, **given: Any) -> None:
        pass

    with pytest.raises(TypeError, match=r"^task\(\) 'count' parameter is positional only"):
        Job(task, args={"count": 1})


def test_only_parameter_with_another_name_is_a_keyword_and_the_error_teaches() -> None:
    """A sole parameter not named `options` takes an arg of its name; without one, the error says how to get options."""

    async def task(opts: wpxt.Options) -> Any:
        return opts

    assert Job(task, args={"opts": {"a": 1}}).args == {"opts": {"a": 1}}
    with pytest.raises(TypeError, match=r"task\(\) missing a required argument: 'opts'; .*named? .*`options`"):
        Job(task)


async def test_named_job_with_bad_args_fails_at_submit() -> None:
    """A named job's args are checked when the pool resolves its handler: submit(), asubmit() and submit_wait()."""
    registry = Registry()
    registry.register("send_email", send_email)
    missing = Job("send_email", args={"to": "ada"})  # nothing to check against yet
    unknown = Job("send_email", args={"to": "ada", "subject": "hi", "cc": "bob"})
    async with WorkerPool(1, registry=registry) as pool:
        with pytest.raises(TypeError, match=r"^send_email\(\) missing a required argument: 'subject'$"):
            pool.submit(missing)
        with pytest.raises(TypeError, match=r"^send_email\(\) got an unexpected keyword argument 'cc'$"):
            await pool.asubmit(unknown)
        with pytest.raises(TypeError, match="'subject'"):
            await pool.submit_wait(missing)
        assert pool.statistics().submitted == 0


async def test_named_job_checks_against_the_registered_name() -> None:
    """The error names the handler as the job does: by its registered name, not the function's."""
    registry = Registry()
    registry.register("mail", send_email)
    async with WorkerPool(1, registry=registry) as pool:
        with pytest.raises(TypeError, match=r"^mail\(\) missing a required argument: 'to'$"):
            pool.submit(Job("mail", args={"subject": "hi"}))


def test_registry_check() -> None:
    """Registry.check() refuses an unknown handler or args that do not fit; a job holding its task passes."""
    registry = Registry()
    registry.register("send_email", send_email)
    registry.register("legacy", legacy)
    registry.check(Job("send_email", args={"to": "ada", "subject": "hi"}))
    registry.check(Job("legacy", args={"whatever": 1}))  # the options form takes no keywords: any args
    registry.check(Job(legacy))
    with pytest.raises(UnknownHandlerError, match="'nobody'"):
        registry.check(Job("nobody"))
    with pytest.raises(TypeError, match=r"^send_email\(\) missing a required argument: 'subject'$"):
        registry.check(Job("send_email", args={"to": "ada"}))


async def test_unresolved_named_job_does_not_run() -> None:
    """A named job that reached no registry has nothing to call: calling it says so."""
    with pytest.raises(RuntimeError, match="Registry"):
        Job("send_email")._call({})


# -- decided once per task ----------------------------------------------------------------


def test_signature_is_read_once_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs alternating between tasks, methods read afresh and partials made afresh read each signature once."""
    read: list[str] = []
    real = inspect.signature

    def counting(task: Callable[..., Any]) -> inspect.Signature:
        read.append(getattr(task, "__name__", type(task).__name__))
        return real(task)

    async def first(to: str) -> None:
        pass

    async def second(options: wpxt.Options) -> None:
        pass

    class Mailer:
        async def send(self, to: str) -> None:
            pass

    mailer = Mailer()
    monkeypatch.setattr(inspect, "signature", counting)
    for number in range(3):
        Job(first, args={"to": "ada"})
        Job(second)
        Job(mailer.send, args={"to": "ada"})
        Job(functools.partial(first, to=str(number)))
        Job(functools.partial(first, str(number)))
    # The partials differ in what they fill, so in their forms; not in the values they fill it with.
    assert sorted(read) == ["first", "partial", "partial", "second", "send"]


async def test_partials_filling_different_parameters_are_told_apart() -> None:
    """Two partials of one function filling different parameters each take the args their own signature asks for."""
    by_keyword = functools.partial(send_email, subject="hi")
    by_position = functools.partial(send_email, "ada")
    assert data_of(await run_one(Job(by_keyword, args={"to": "ada"}))) == ("ada", "hi", 3)
    assert data_of(await run_one(Job(by_position, args={"subject": "yo"}))) == ("ada", "yo", 3)
    with pytest.raises(TypeError, match="'subject'"):
        Job(functools.partial(send_email, "bob"), args={"to": "ada"})
