"""A unit of work and how it may run."""

from __future__ import annotations

import re
import types
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Final, Generic, NamedTuple, TypeVar, overload

import attrs

from ._call import CallForm, call_form
from ._context import Context
from ._middleware import NO_MIDDLEWARE, Middleware, freeze_middleware
from ._process import ProcessCall, check_run_in
from ._retry import Backoff
from ._serialize import EMPTY_ARGS, freeze_args, job_from_dict, job_to_dict
from ._validation import Seconds, count, rate, to_seconds

__all__ = ["Job", "Options"]

T = TypeVar("T")

Options = Mapping[str, Any]
"""The read-only mapping a task receives."""

# Any signature: how a task is called depends on its parameters (see _call.py).
Task = Callable[..., Coroutine[Any, Any, T]] | Callable[..., T]

EMPTY_OPTIONS: Options = types.MappingProxyType({})


def freeze_options(options: Mapping[str, Any] | None, name: str) -> Options | None:
    """Copy ``options`` into a read-only mapping, so later edits by the caller don't leak in."""
    if options is None:
        return None
    if type(options) is dict:  # the common case, spared the slower Mapping check
        return types.MappingProxyType(options.copy())
    if not isinstance(options, Mapping):
        raise TypeError(f"`{name}` must be a mapping or None, not {type(options).__name__}")
    return types.MappingProxyType(dict(options))


def retry_on_classes(value: type[Exception] | tuple[type[Exception], ...] | None) -> tuple[type[Exception], ...] | None:
    if value is None:
        return None
    classes = value if isinstance(value, tuple) else (value,)
    if not classes:
        raise ValueError("`retry_on` must name at least one exception class; use retry=0 to never retry")
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"`retry_on` must be an Exception subclass or a tuple of them, got {cls!r}")
    return classes


# Jobs are made one per submission, so Job() is on the hot path. A frozen attrs
# class stores each field through object.__setattr__, which costs more than the
# rest of the constructor. Job.__init__ instead turns the new object into a
# _JobFields (the very same slots, no frozen __setattr__) for as long as it
# stores the fields, then back into a Job. CPython allows that between classes
# of the same layout; it is why Job has no __weakref__ slot, which would break
# the match. tests/core/test_job.py checks that the slots stay Job's fields.
@attrs.frozen(init=False, weakref_slot=False)
class Job(Generic[T]):
    """A task to run in a pool, with its name, limits and retry policy.

    How the task is called depends on its parameters, read once per task:

    - ``async def task(options)``, whose only parameter is named ``options``
      (or is positional-only, or ``*args``), is awaited as ``task(options)``
      with the effective read-only options, and reads its ``args`` as
      ``current_job().args``;
    - any other task gets the job's ``args`` as keyword arguments:
      ``async def send_email(to, subject)`` is awaited as
      ``send_email(**args)``, and ``async def f(options, *, to)`` as
      ``f(options, **args)``. The args are checked against the parameters as
      ``inspect.Signature.bind()`` would (their types are not), when the Job is
      built, or for a handler's name when a Registry resolves it.

    A plain function runs in a thread instead, by the same rule, or in a
    worker process with ``run_in="process"``. Fields left
    as None take the pool's default, and a job's ``options`` or ``context``
    *replace* the pool's: they are never merged.

    Args:
        task: An ``async def`` function, or a plain function to run in a thread.
            Or the name of a handler in the pool's ``Registry``.
        name: Defaults to the task's ``__name__``.
        context: A ``Context`` whose deadline and cancellation apply to the job.
        options: A mapping handed to the task, copied read-only at construction.
        args: JSON-compatible arguments, checked and copied at construction:
            the task's keyword arguments, and ``current_job().args``.
        retry: Retries after a failed attempt, so up to ``retry + 1`` attempts.
        timeout: The job's budget in seconds from its first start, covering
            every attempt and backoff wait.
        attempt_timeout: A bound on each attempt. An attempt that outlives it
            fails with ``JobTimeoutError``, which is retried like any error.
        backoff: The wait between attempts.
        retry_on: The exception class or classes worth retrying; others end the
            job at once. Defaults to ``Exception``.
        middleware: Async callables wrapping each attempt, inside the pool's
            middleware; the first listed is outermost.
        max_per_second: Start jobs of this name at most this often, spaced
            evenly, in place of the pool's ``max_per_second``.
        run_in: Where a plain task runs: ``"thread"``, or ``"process"``, a
            worker process that a deadline or a cancellation kills (needs
            ``pip install 'workerpoolxt[process]'``). The task, its options
            and args, its result and its errors are pickled; the task must be
            importable at module level, and cannot call ``current_job()``.
            None takes the pool's ``run_in`` (a handler's, for a registered
            one). An ``async def`` task runs in trio, and refuses ``"process"``.
        queue: The queue a durable store keeps the task in, which only the
            workers serving it claim: letters, digits and ``_ . : -``, at most
            64 characters. None leaves it to ``enqueue()`` (``"default"``).
        dedup_key: While a task with this key waits for its first run in a
            store, enqueueing another with the same key stores nothing and
            gives back the waiting task's id.
        lock: Tasks holding the same lock are claimed one at a time, across
            all the workers of a store, oldest first: the next is claimed once
            the one before has ended (a cancelled task frees its lock at once,
            though its handler may take a moment to stop).

        ``queue``, ``dedup_key`` and ``lock`` are for a durable store, so
        only a job naming its handler takes them; a ``WorkerPool`` refuses a
        job that sets them.

    Raises:
        TypeError, ValueError: A field has a wrong type or value; the message names it.
        TypeError: ``args`` lack an argument the task requires, or hold one it
            has no parameter for; the message names the argument and the task.
        ImportError: ``run_in="process"`` without trio-parallel installed.
    """

    task: Task[T] | str
    name: str
    context: Context | None
    options: Options | None
    args: Mapping[str, Any] = attrs.field(hash=False)
    retry: int | None
    timeout: float | None
    attempt_timeout: float | None
    backoff: Backoff | None
    retry_on: tuple[type[Exception], ...] | None
    middleware: tuple[Middleware, ...] = attrs.field(repr=False)
    max_per_second: float | None
    run_in: str | None
    _placement: Placement | None
    """The job's ``queue``, ``dedup_key`` and ``lock``, or None if it sets none: one slot, as a Job is made per
    submission and these are for a store, which most jobs never see."""
    is_async: bool = attrs.field(repr=False, eq=False)
    """True when the job's call is awaited in trio: an ``async def`` task, or
    a plain one that runs in a process; otherwise it runs in a thread."""
    _call: Callable[[Options], Any] = attrs.field(repr=False, eq=False)
    """What a worker calls with the effective options to run the task with its args (see ``_call.py``)."""

    @overload
    def __init__(
        self: Job[Any],
        task: str,
        *,
        name: str | None = None,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        retry: int | None = None,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        middleware: Iterable[Middleware] | None = None,
        max_per_second: float | None = None,
        run_in: str | None = None,
        queue: str | None = None,
        dedup_key: str | None = None,
        lock: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        task: Callable[..., Coroutine[Any, Any, T]],
        *,
        name: str | None = None,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        retry: int | None = None,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        middleware: Iterable[Middleware] | None = None,
        max_per_second: float | None = None,
        run_in: str | None = None,
        queue: str | None = None,
        dedup_key: str | None = None,
        lock: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        task: Callable[..., T],
        *,
        name: str | None = None,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        retry: int | None = None,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        middleware: Iterable[Middleware] | None = None,
        max_per_second: float | None = None,
        run_in: str | None = None,
        queue: str | None = None,
        dedup_key: str | None = None,
        lock: str | None = None,
    ) -> None: ...

    def __init__(
        self,
        task: Task[T] | str,
        *,
        name: str | None = None,
        context: Context | None = None,
        options: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        retry: int | None = None,
        timeout: Seconds | None = None,
        attempt_timeout: Seconds | None = None,
        backoff: Backoff | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        middleware: Iterable[Middleware] | None = None,
        max_per_second: float | None = None,
        run_in: str | None = None,
        queue: str | None = None,
        dedup_key: str | None = None,
        lock: str | None = None,
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a str or None, not {type(name).__name__}")
        if isinstance(task, str):
            if not task:
                raise ValueError("`task` must name a handler, not be empty")
            if name is None:
                name = task
            is_async = False
            call: Callable[[Options], Any] = _unresolved
            keywords = None
        else:
            last = _last_task  # read once: another thread may replace it meanwhile
            # None is what a dead weak reference gives, and never a task.
            if last[0]() is not task or task is None:
                if not callable(task):
                    raise TypeError(f"`task` must be callable or a handler's name, not {type(task).__name__}")
                last = _remember_task(task)
            is_async = last[2]
            if name is None:
                name = last[1]
            call = task
            keywords = last[3]
        if context is not None and not isinstance(context, Context):
            raise TypeError(f"`context` must be a Context or None, not {type(context).__name__}")
        if retry is not None:
            count(retry, "retry", minimum=0)
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"`backoff` must be a Backoff or None, not {type(backoff).__name__}")
        # Converted before any field is stored, so a bad value leaves no half-made Job.
        if options is not None:
            options = freeze_options(options, "options")
        args = EMPTY_ARGS if args is None else freeze_args(args)
        if keywords is not None:  # the args checked, and bound for the call
            call = keywords.caller(call, args, keywords.name)
        if timeout is not None:
            timeout = to_seconds(timeout, "timeout")
        if attempt_timeout is not None:
            attempt_timeout = to_seconds(attempt_timeout, "attempt_timeout")
        classes = None if retry_on is None else retry_on_classes(retry_on)
        chain = NO_MIDDLEWARE if middleware is None else freeze_middleware(middleware, "middleware")
        if max_per_second is not None:
            max_per_second = rate(max_per_second, "max_per_second")
        if run_in is not None:
            run_in = check_run_in(run_in, "run_in")
            if run_in == "process" and not isinstance(task, str):  # a handler's name: once resolved
                call, is_async = _process_call(task, args, name), True
        placement = None
        if queue is not None or dedup_key is not None or lock is not None:
            placement = _placement(task, queue, dedup_key, lock)
        # As _fill(), inline: a Job is made per submission.
        _set_class(self, "__class__", _JobFields)
        fields: _JobFields[Any] = self  # type: ignore[assignment]  # a _JobFields until the last line
        fields.task = task
        fields.name = name
        fields.context = context
        fields.options = options
        fields.args = args
        fields.retry = retry
        fields.timeout = timeout
        fields.attempt_timeout = attempt_timeout
        fields.backoff = backoff
        fields.retry_on = classes
        fields.middleware = chain
        fields.max_per_second = max_per_second
        fields.run_in = run_in
        fields._placement = placement
        fields.is_async = is_async
        fields._call = call
        _set_class(self, "__class__", Job)

    @property
    def queue(self) -> str | None:
        """The queue a store keeps the task in, or None to leave it to ``enqueue()``."""
        placement = self._placement
        return None if placement is None else placement.queue

    @property
    def dedup_key(self) -> str | None:
        """The key that deduplicates the task while it waits in a store, or None."""
        placement = self._placement
        return None if placement is None else placement.dedup_key

    @property
    def lock(self) -> str | None:
        """The lock the task holds while it runs from a store, or None."""
        placement = self._placement
        return None if placement is None else placement.lock

    def _with_task(self, task: Callable[..., Any], run_in: str | None = None) -> Job[Any]:
        """This job with its handler name replaced by the handler, its args checked against it.

        ``run_in`` is the handler's, as registered: it applies if the job set none.

        Raises:
            TypeError: The args do not fit the handler's signature.
            ValueError: The handler is async and is to run in a process.
        """
        assert isinstance(self.task, str)
        form = call_form(task)
        call = form.caller(task, self.args, self.task)
        if self.run_in is not None:
            run_in = self.run_in
        is_async = form.is_async
        if run_in == "process":
            call, is_async = _process_call(task, self.args, self.name), True
        return self._copy(task, is_async, call, run_in)

    def _in_process(self) -> Job[Any]:
        """This job, whose plain task left ``run_in`` to the pool, run in a process as the pool's ``run_in`` says."""
        assert callable(self.task)
        return self._copy(self.task, True, _process_call(self.task, self.args, self.name), "process")

    def _copy(
        self, task: Callable[..., Any], is_async: bool, call: Callable[[Options], Any], run_in: str | None
    ) -> Job[Any]:
        job: Job[Any] = object.__new__(Job)
        # Through Job's own slot descriptors, which a frozen class does not
        # guard (this is not the per-submission path).
        for slot in _SLOTS:
            slot.__set__(job, slot.__get__(self))
        _SLOT_TASK.__set__(job, task)
        _SLOT_IS_ASYNC.__set__(job, is_async)
        _SLOT_CALL.__set__(job, call)
        _SLOT_RUN_IN.__set__(job, run_in)
        return job

    def to_dict(self) -> dict[str, Any]:
        """Describe this named job as JSON-compatible data.

        Only jobs naming a handler convert, and only with no ``options``,
        ``context`` or ``retry_on``, which are not data. ``Job.from_dict()`` gives
        back an equal Job.

        Raises:
            TypeError: The job holds a callable rather than a handler's name.
            ValueError: A field that is not data is set.
        """
        return job_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job[Any]:
        """Build the named job that ``to_dict()`` described."""
        return job_from_dict(cls, data)


_QUEUE_NAME: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

MAX_KEY_BYTES: Final = 1000
"""The longest ``dedup_key`` or ``lock``, in bytes of UTF-8: a key is an identifier, not data, and each is indexed
(PostgreSQL indexes an entry of at most 2704 bytes)."""


DEFAULT_QUEUE: Final = "default"
"""The queue of a task that names none, where ``enqueue()`` gives none either."""


def check_queue(value: object, name: str) -> str:
    """A queue's name: 1 to 64 letters, digits or ``_ . : -`` (a comma separates names on the command line)."""
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a queue's name (a str), not {type(value).__name__}")
    if not _QUEUE_NAME.fullmatch(value):
        raise ValueError(f"`{name}` must be 1 to 64 letters, digits or any of `_ . : -`, got {value!r}")
    return value


class Placement(NamedTuple):
    """Where a store keeps a task, and what it holds: a Job's ``queue``, ``dedup_key`` and ``lock``."""

    queue: str | None
    dedup_key: str | None
    lock: str | None


def _placement(task: object, queue: str | None, dedup_key: str | None, lock: str | None) -> Placement:
    """Check the fields a durable store reads (``queue``, ``dedup_key``, ``lock``) and return them.

    Raises:
        TypeError: The job holds a callable, or one is not a str.
        ValueError: One is not of the allowed form.
    """
    given = [name for name, value in (("queue", queue), ("dedup_key", dedup_key), ("lock", lock)) if value is not None]
    if not isinstance(task, str):
        raise TypeError(
            f"`{given[0]}` is for a task a durable store keeps, which names its handler: "
            "use Job('handler name', ...) and enqueue it in a store"
        )
    if queue is not None:
        check_queue(queue, "queue")
    for name, key in (("dedup_key", dedup_key), ("lock", lock)):
        if key is not None:
            if not isinstance(key, str):
                raise TypeError(f"`{name}` must be a str or None, not {type(key).__name__}")
            if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or "\x00" in key:
                raise ValueError(
                    f"`{name}` must be non-empty, at most {MAX_KEY_BYTES} bytes in UTF-8, without NUL, got {key[:80]!r}"
                )
    return Placement(queue, dedup_key, lock)


def _process_call(task: Callable[..., Any], args: Mapping[str, Any], name: str) -> ProcessCall:
    """The call of a plain ``task`` with ``args`` in a worker process.

    Raises:
        ValueError: ``task`` is an ``async def`` function.
    """
    form = call_form(task)
    if form.is_async:
        raise ValueError(
            f"`run_in` cannot be 'process' for {form.name}, an async def task: it runs in trio; "
            "run_in='process' is for plain functions"
        )
    return ProcessCall(task, args, form.plain, form.takes_options, name)


def _no_task() -> None:
    return None


def _unresolved(options: Options) -> Any:
    raise RuntimeError("a job naming a handler runs only once a pool with a Registry resolved it")


# The last task a Job was made for, its name, whether it is async, and its form
# if it takes the args as keywords (None: it is called with the options alone):
# jobs come in batches of one task, and an identity check is cheaper than a
# lookup. The task is held weakly, so the cache keeps no closure alive.
_last_task: tuple[Callable[[], object], str, bool, CallForm | None] = (_no_task, "", False, None)


def _remember_task(task: Callable[..., Any]) -> tuple[Callable[[], object], str, bool, CallForm | None]:
    """Describe ``task``, and keep the description for the next Job if ``task`` can be held weakly."""
    global _last_task
    form = call_form(task)
    keywords = None if form.plain else form
    try:
        reference: Callable[[], object] = weakref.ref(task)
    except TypeError:  # a callable that takes no weak reference is looked up every time
        return (_no_task, form.name, form.is_async, keywords)
    _last_task = (reference, form.name, form.is_async, keywords)
    return _last_task


class _JobFields(Generic[T]):
    """Job's slots without its frozen ``__setattr__``: what ``_fill()`` stores through (see ``Job``)."""

    __slots__ = tuple(field.name for field in attrs.fields(Job))

    # Declared for the type checker; the slots above hold them.
    task: Any
    name: str
    context: Context | None
    options: Options | None
    args: Mapping[str, Any]
    retry: int | None
    timeout: float | None
    attempt_timeout: float | None
    backoff: Backoff | None
    retry_on: tuple[type[Exception], ...] | None
    middleware: tuple[Middleware, ...]
    max_per_second: float | None
    run_in: str | None
    _placement: Placement | None
    is_async: bool
    _call: Callable[[Options], Any]


_set_class = object.__setattr__


# Job's slots, which _with_task() copies.
_SLOTS: Final = tuple(Job.__dict__[field.name] for field in attrs.fields(Job))
_SLOT_TASK: Final = Job.__dict__["task"]
_SLOT_IS_ASYNC: Final = Job.__dict__["is_async"]
_SLOT_CALL: Final = Job.__dict__["_call"]
_SLOT_RUN_IN: Final = Job.__dict__["run_in"]
