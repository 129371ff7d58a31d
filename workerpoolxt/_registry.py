"""Named handlers, so jobs can be described by data: ``Job("send_email", args={...})``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._call import call_form
from ._errors import HandlerExistsError, UnknownHandlerError
from ._process import check_run_in

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["Registry"]

F = TypeVar("F", bound=Callable[..., Any])

_DECORATE: Any = object()  # register()'s task when it is used as a decorator


class Registry:
    """Maps handler names to tasks.

    Give it to a pool with ``WorkerPool(..., registry=registry)``; a job naming a
    handler is then resolved when it is submitted, so an unknown name, or
    ``args`` that do not fit the handler's parameters, fail at ``submit()``,
    not inside a Result.

    Example::

        registry = wpxt.Registry()

        @registry.register("send_email")
        async def send_email(to: str, subject: str) -> None:  # the job's args, as keywords
            ...

        registry.register("resize", resize_image, run_in="process")  # a plain function, in a worker process
    """

    __slots__ = ("_handlers", "_run_in")

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._run_in: dict[str, str] = {}

    @overload
    def register(self, name: str, *, run_in: str | None = None) -> Callable[[F], F]: ...

    @overload
    def register(self, name: str, task: F, *, run_in: str | None = None) -> F: ...

    def register(self, name: str, task: F = _DECORATE, *, run_in: str | None = None) -> F | Callable[[F], F]:
        """Register ``task`` under ``name``; without ``task``, return a decorator that does.

        Args:
            name: The handler's name, which jobs give as their task.
            task: The handler.
            run_in: Where a plain handler runs for a job that sets no
                ``run_in`` of its own: ``"thread"`` or ``"process"`` (see
                ``Job``); None leaves it to the pool.

        Raises:
            HandlerExistsError: ``name`` is already registered.
            TypeError: ``name`` is not a non-empty str, or ``task`` is not callable.
            ValueError: ``run_in`` is not one of its values, or is ``"process"``
                for an ``async def`` task.
            ImportError: ``run_in="process"`` without trio-parallel installed.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"`name` must be a non-empty str, not {name!r}")
        run_in = check_run_in(run_in, "run_in")
        if task is _DECORATE:
            return lambda function: self.register(name, function, run_in=run_in)
        if not callable(task):
            raise TypeError(f"`task` must be callable, not {type(task).__name__}")
        if name in self._handlers:
            raise HandlerExistsError(name)
        form = call_form(task)
        if run_in == "process" and form.is_async:
            raise ValueError(f"`run_in` cannot be 'process' for {name!r}, an async def handler: it runs in trio")
        self._handlers[name] = task
        if run_in is not None:
            self._run_in[name] = run_in
        return task

    def run_in(self, name: str) -> str | None:
        """Where the handler registered as ``name`` runs, as registered: ``"thread"``, ``"process"`` or None.

        Raises:
            UnknownHandlerError: Nothing is registered under ``name``.
        """
        self[name]
        return self._run_in.get(name)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        """Return the task registered as ``name``.

        Raises:
            UnknownHandlerError: Nothing is registered under ``name``.
        """
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandlerError(name) from None

    def check(self, job: Job[Any]) -> None:
        """Check that ``job``'s handler is registered here and that its ``args`` fit the handler.

        The args are bound to the handler's parameters as
        ``inspect.Signature.bind()`` binds them; their types are not checked. A
        handler that takes only the options (``async def f(options)``) accepts
        any args. A job holding its task was checked when it was built: for it,
        this checks nothing.

        Raises:
            UnknownHandlerError: The job names a handler that is not registered.
            TypeError: An argument is missing or unknown; the message names it and the handler.
        """
        name = job.task
        if isinstance(name, str):
            call_form(self[name]).check(job.args, name)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)

    def __repr__(self) -> str:
        return f"<Registry {sorted(self._handlers)}>"
