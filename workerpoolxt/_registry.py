"""Named handlers, so jobs can be described by data: ``Job("send_email", args={...})``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._call import call_form
from ._errors import HandlerExistsError, UnknownHandlerError

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

        registry.register("resize", resize_image)
    """

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[..., Any]] = {}

    @overload
    def register(self, name: str) -> Callable[[F], F]: ...

    @overload
    def register(self, name: str, task: F) -> F: ...

    def register(self, name: str, task: F = _DECORATE) -> F | Callable[[F], F]:
        """Register ``task`` under ``name``; without ``task``, return a decorator that does.

        Raises:
            HandlerExistsError: ``name`` is already registered.
            TypeError: ``name`` is not a non-empty str, or ``task`` is not callable.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"`name` must be a non-empty str, not {name!r}")
        if task is _DECORATE:
            return lambda function: self.register(name, function)
        if not callable(task):
            raise TypeError(f"`task` must be callable, not {type(task).__name__}")
        if name in self._handlers:
            raise HandlerExistsError(name)
        self._handlers[name] = task
        return task

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
