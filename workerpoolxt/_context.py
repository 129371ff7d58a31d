"""Go-style cancellation contexts, on the trio clock."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

from ._trio_thread import in_trio_thread
from ._validation import Seconds, number, to_seconds

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Context"]


class Context:
    """A cancellation context shared by any number of jobs, like Go's ``context.Context``.

    A context carries an absolute deadline on the trio clock and can be cancelled
    explicitly. Jobs that use it, or any of its descendants, are cancelled the
    moment ``cancel()`` is called; jobs still queued fail as soon as a worker
    picks them up.

    Args:
        timeout: Seconds (or a ``timedelta``) from *now*, the context's creation.
            Time a job spends queued counts against it, as in Go.
        deadline: An absolute deadline on the trio clock (``trio.current_time()``).
        parent: A context whose deadline and cancellation this one inherits.

    When several bounds are given the earliest wins, so a child's deadline is
    never later than its parent's.

    Raises:
        RuntimeError: ``timeout`` was given outside ``trio.run``, where there is
            no clock to count from.
    """

    __slots__ = ("__weakref__", "_cancelled", "_deadline", "_parent", "_scopes")

    def __init__(
        self,
        *,
        timeout: Seconds | None = None,
        deadline: float | None = None,
        parent: Context | None = None,
    ) -> None:
        if parent is not None and not isinstance(parent, Context):
            raise TypeError(f"`parent` must be a Context or None, not {type(parent).__name__}")
        bound = math.inf if parent is None else parent._deadline
        if deadline is not None:
            at = number(deadline, "deadline", "a number on the trio clock")
            if math.isnan(at):
                raise ValueError("`deadline` must not be NaN")
            bound = min(bound, at)
        if timeout is not None:
            seconds = to_seconds(timeout, "timeout")
            try:
                now = trio.current_time()
            except RuntimeError:
                raise RuntimeError(
                    "Context(timeout=...) counts from now on the trio clock, so it must be "
                    "created inside trio.run; outside it, pass an absolute `deadline` instead"
                ) from None
            bound = min(bound, now + seconds)
        self._deadline: float = bound
        self._parent = parent
        self._cancelled = False
        # Cancel scopes of the jobs running under this context or a descendant:
        # a job registers its scope with every ancestor, so cancel() needs no
        # list of children.
        self._scopes: set[trio.CancelScope] = set()

    @property
    def deadline(self) -> float:
        """The absolute deadline on the trio clock, ``math.inf`` if there is none."""
        return self._deadline

    @property
    def parent(self) -> Context | None:
        """The context this one was derived from, if any."""
        return self._parent

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called on this context or an ancestor.

        A passed deadline does not count: it makes jobs time out, not cancel.
        """
        return any(context._cancelled for context in self._lineage())

    def cancel(self) -> None:
        """Cancel every running job under this context or a descendant.

        Queued jobs under it end ``CANCELLED`` when a worker picks them up. Calling
        it again does nothing. It is synchronous, and safe to call from any job,
        including a plain function running in a thread.
        """
        if self._cancelled:
            return
        if self._scopes and not trio.lowlevel.in_trio_run():
            in_trio_thread(self.cancel, "Context.cancel()")
            return
        self._cancelled = True
        for scope in list(self._scopes):
            scope.cancel(reason="its workerpoolxt Context was cancelled")

    def child(self, *, timeout: Seconds | None = None, deadline: float | None = None) -> Context:
        """Return a new context under this one, as ``Context(..., parent=self)``."""
        return Context(timeout=timeout, deadline=deadline, parent=self)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "active"
        return f"<Context deadline={self._deadline!r} {state}>"

    def _lineage(self) -> Iterator[Context]:
        context: Context | None = self
        while context is not None:
            yield context
            context = context._parent

    def _attach(self, scope: trio.CancelScope) -> None:
        for context in self._lineage():
            context._scopes.add(scope)

    def _detach(self, scope: trio.CancelScope) -> None:
        for context in self._lineage():
            context._scopes.discard(scope)
