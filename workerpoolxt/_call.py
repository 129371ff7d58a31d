"""How a task is called: with the job's options, or with the job's ``args`` as keyword arguments.

The rule, read from the task's signature once and kept for the task:

- The task's first parameter takes the job's options when it is positional-only
  (``def f(opts, /)``), ``*args``, or a positional parameter named ``options``.
- A task with no parameter besides that one is called ``task(options)`` and
  reads its ``args`` through ``current_job().args``, unchecked: every task
  written before keyword handlers. So is a callable whose signature cannot be
  read (some builtins).
- Any other task gets the job's ``args`` as keyword arguments: ``task(**args)``,
  or ``task(options, **args)`` when its first parameter takes the options. The
  args are checked against the signature, as ``inspect.Signature.bind()``
  would, when the job is built, or, for a job naming a handler, when a
  registry resolves the name (``submit()``, a store's ``enqueue()``): a missing
  or unknown argument fails there, never inside a Result.
"""

from __future__ import annotations

import functools
import inspect
import types
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._util import is_async_callable, task_name

__all__ = ["CallForm", "call_form"]

_POSITIONAL_ONLY: Final = inspect.Parameter.POSITIONAL_ONLY
_POSITIONAL_OR_KEYWORD: Final = inspect.Parameter.POSITIONAL_OR_KEYWORD
_VAR_POSITIONAL: Final = inspect.Parameter.VAR_POSITIONAL
_KEYWORD_ONLY: Final = inspect.Parameter.KEYWORD_ONLY
_VAR_KEYWORD: Final = inspect.Parameter.VAR_KEYWORD
_EMPTY: Final = inspect.Parameter.empty

_HINT: Final = (
    "; to receive the job's options instead, name the task's only parameter `options` or make it positional-only"
)


def _with_args(task: Callable[..., Any], args: Mapping[str, Any], options: object) -> Any:
    return task(**args)


def _with_options_and_args(task: Callable[..., Any], args: Mapping[str, Any], options: object) -> Any:
    return task(options, **args)


class CallForm:
    """How one task is called, read from its signature (see the module's docstring)."""

    __slots__ = ("accepted", "is_async", "name", "plain", "required", "signature", "takes_options", "unnamed")

    def __init__(self, task: Callable[..., Any]) -> None:
        self.name = task_name(task)
        self.is_async = is_async_callable(task)
        self.plain = True
        """Called ``task(options)``, whatever the job's args."""
        self.takes_options = False
        """The first parameter takes the options; the args go to the others."""
        # What a quick check of the args' names needs (see fits()); None:
        # ``required`` for a signature the check cannot judge, ``accepted`` for
        # one with ``**kwargs``.
        self.required: frozenset[str] | None = None
        self.accepted: frozenset[str] | None = None
        self.unnamed = False
        """The task's only parameter neither takes the options nor has a default: the hint's case."""
        try:
            self.signature: inspect.Signature | None = inspect.signature(task)
        except (TypeError, ValueError):  # no signature to read (some builtins): the options, as always
            self.signature = None
            return
        parameters = list(self.signature.parameters.values())
        first = parameters[0] if parameters else None
        if first is not None and (
            first.kind in (_POSITIONAL_ONLY, _VAR_POSITIONAL)
            or (first.kind is _POSITIONAL_OR_KEYWORD and first.name == "options")
        ):
            self.takes_options = True
            parameters = parameters[1:]
            if not parameters:
                return
        self.plain = False
        self.unnamed = (
            not self.takes_options
            and len(parameters) == 1
            and parameters[0].kind is _POSITIONAL_OR_KEYWORD
            and parameters[0].default is _EMPTY
        )
        if any(parameter.kind is _POSITIONAL_ONLY for parameter in parameters):
            return  # a positional-only parameter beyond the first: bind() alone judges
        keywords = [parameter for parameter in parameters if parameter.kind in (_POSITIONAL_OR_KEYWORD, _KEYWORD_ONLY)]
        self.required = frozenset(parameter.name for parameter in keywords if parameter.default is _EMPTY)
        if not any(parameter.kind is _VAR_KEYWORD for parameter in parameters):
            self.accepted = frozenset(parameter.name for parameter in keywords)
        elif self.takes_options and first is not None and first.kind is _POSITIONAL_OR_KEYWORD:
            # ``def f(options, **kwargs)``: an argument named "options" would be
            # given twice, which the quick check leaves to bind().
            self.accepted = None
            self.required = None

    def fits(self, args: Mapping[str, Any]) -> bool:
        """Whether ``args`` surely bind: a quick check of their names, which a False sends to ``bind()``."""
        required = self.required
        if required is None:
            return False
        keys = args.keys()
        if not required <= keys:
            return False
        return self.accepted is None or keys <= self.accepted

    def check(self, args: Mapping[str, Any], handler: str) -> None:
        """Raise a TypeError naming ``handler`` and the argument if ``args`` do not fit the task's signature."""
        if self.plain or self.fits(args):
            return
        assert self.signature is not None
        try:
            if self.takes_options:
                self.signature.bind(None, **args)
            else:
                self.signature.bind(**args)
        except TypeError as exc:
            hint = _HINT if self.unnamed and not args else ""
            raise TypeError(f"{handler}() {exc}{hint}") from None

    def caller(self, task: Callable[..., Any], args: Mapping[str, Any], handler: str) -> Callable[[Any], Any]:
        """The callable a worker calls with the options to run ``task`` with ``args``, once they are checked."""
        if self.plain:
            return task
        self.check(args, handler)
        if not args and self.takes_options:  # task(options, **{}) is task(options): no partial to make
            return task
        return functools.partial(_with_options_and_args if self.takes_options else _with_args, task, args)


# Forms already read, per task, held weakly so no closure is kept alive by
# having run. A bound method and a partial are new objects each time they are
# made (a method at each attribute access, ``chain()`` a partial per job), so
# their forms are kept under the function they wrap, with what the form also
# depends on: that ``self`` is bound, or how many positional arguments and
# which keywords the partial fills (not their values).
_forms: weakref.WeakKeyDictionary[Callable[..., Any], dict[object, CallForm]] = weakref.WeakKeyDictionary()
_METHOD: Final = "bound method"


def call_form(task: Callable[..., Any]) -> CallForm:
    """The form of ``task``, read once per task and kept."""
    key: Callable[..., Any] = task
    shape: object = None
    if type(task) is types.MethodType:
        key, shape = task.__func__, _METHOD
    elif type(task) is functools.partial:
        key, shape = task.func, (len(task.args), *task.keywords)
    try:
        forms = _forms.get(key)
    except TypeError:  # not hashable, or takes no weak reference: read every time
        return CallForm(task)
    if forms is None:
        forms = _forms[key] = {}
    form = forms.get(shape)
    if form is None:
        form = forms[shape] = CallForm(task)
    return form
