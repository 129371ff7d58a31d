"""The ``workerpoolxt`` command (also ``python -m workerpoolxt``): what it needs without click.

``open_store()`` turns a store URL into a store, ``load_target()`` imports the
``module:attribute`` a worker runs, and ``main()`` runs the command line, whose
commands live in ``_commands`` on click (the ``cli`` extra). Without click the
command says how to get it, in one line.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import urllib.parse
from collections.abc import Sequence

from .. import Registry
from .._errors import WorkerPoolError, sole_exception
from ._app import WorkerApp
from ._store import Store

__all__ = ["main", "open_store"]


def open_store(url: str, *, registry: Registry | None = None, read_only: bool = False) -> Store:
    """Open the store a URL names; ``read_only`` opens an existing one, to read only (see ``SQLiteStore``).

    - ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``: a ``SQLiteStore``.
    - ``postgresql://user@host:port/db`` (or ``postgres://``), in any form
      libpq accepts, such as ``postgresql:///db`` for the local socket or
      ``postgresql:///db?host=/var/run/postgresql``, with an optional
      ``schema=name`` parameter (default ``workerpoolxt``): a ``PostgresStore``.
      The URL goes to libpq as given, without ``schema``.

    Raises:
        ValueError: The URL is malformed or names no known kind of store.
    """
    if not isinstance(url, str):
        raise TypeError(f"`url` must be a str, not {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise ValueError(
                f"a SQLite store URL is sqlite:///relative/path.db or sqlite:////absolute/path.db, got {url!r}"
            )
        from ._sqlite import SQLiteStore

        return SQLiteStore(parts.path[1:], registry=registry, read_only=read_only)
    if parts.scheme in ("postgresql", "postgres"):
        # The URL goes to libpq as given, but for `schema`, which is ours:
        # rebuilt, postgresql:///db (libpq's local socket) would lose its "//".
        base, _, query = url.partition("?")
        pairs = [pair.partition("=") for pair in query.split("&") if pair]
        names = {name for name, _, _ in pairs}
        if not parts.hostname and not parts.path.strip("/") and not names & {"host", "hostaddr"}:
            raise ValueError(f"a PostgreSQL store URL is postgresql://user@host:port/database, got {url!r}")
        schemas = [urllib.parse.unquote(value) for name, _, value in pairs if name == "schema"]
        schema = schemas[-1] if schemas else "workerpoolxt"
        kept = "&".join("".join(pair) for pair in pairs if pair[0] != "schema")
        dsn = f"{base}?{kept}" if kept else base
        from ._postgres import PostgresStore

        return PostgresStore(dsn, registry=registry, schema=schema, read_only=read_only)
    raise ValueError(f"unknown store URL {url!r}: use sqlite:///path.db or postgresql://user@host/database")


class UserCodeError(Exception):
    """The user's own code raised (their module as it was imported, their app's lifespan): the command shows that
    error's traceback, which points into it, whatever its type."""

    def __init__(self, what: str, error: Exception) -> None:
        super().__init__(f"{what} raised {type(error).__name__}: {error} (traceback above)")
        self.error = error


def load_target(spec: str, option: str = "--app") -> object:
    """Import ``module:attribute`` from the current directory or ``sys.path``, and return the attribute.

    Raises:
        ValueError: ``spec`` is malformed, or names a module or attribute that is not there.
        UserCodeError: The module itself raised while it was imported.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"{option} must look like module:attribute, got {spec!r}")
    # As `python -m` does for its module: the current directory is importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # The module named on the command line is missing: the user's mistake, in one line. A module
        # that *it* imports is missing: an error in their code, shown with its traceback.
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            raise ValueError(
                f"{option} {spec}: no module named {error.name!r} in {os.getcwd()} or on sys.path"
            ) from None
        raise UserCodeError(f"importing {spec}", error) from error
    except Exception as error:
        raise UserCodeError(f"importing {spec}", error) from error
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"{option} {spec}: module {module_name!r} has no attribute {attribute!r}") from None


def load_app(spec: str, option: str = "--app") -> WorkerApp:
    """Import ``module:attribute`` and return it if it is a WorkerApp; a bare Registry gets a WorkerApp of its own."""
    target = load_target(spec, option)
    if isinstance(target, WorkerApp):
        return target
    if isinstance(target, Registry):
        return WorkerApp(target)
    raise TypeError(f"{option} {spec} must be a workerpoolxt WorkerApp or Registry, not {type(target).__name__}")


def load_registry(spec: str, option: str = "--registry") -> Registry:
    """Import ``module:attribute`` and return its Registry: the attribute itself, or the WorkerApp's registry."""
    return load_app(spec, option).registry


# What a command reports as a one-line error rather than a traceback: the user's mistakes
# (arguments, URLs, a store that is missing or unreachable), never a bug of ours.
_USER_ERRORS = (WorkerPoolError, ValueError, TypeError, ImportError, ConnectionError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: the process's arguments); return the exit status.

    A mistake of the user's is one line on stderr, ``error: ...``, and exit
    status 2. An error raised while importing the user's module keeps its
    traceback, then that line, and exit status 1. A handler's ``SystemExit``
    exits with its status. Anything else is a bug, raised with its traceback.
    """
    try:
        from . import _commands
    except ImportError as missing:
        if missing.name != "click":
            raise
        print("error: the workerpoolxt command needs click: pip install 'workerpoolxt[cli]'", file=sys.stderr)
        return 2
    try:
        return _commands.run(argv, prog_name=_prog_name())
    except BaseException as exc:
        # trio's nurseries wrap even a lone exception in a group.
        error = (sole_exception(exc, prefer=None) or exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(error, UserCodeError):
            traceback.print_exception(error.error)
            print(f"error: {error}", file=sys.stderr)
            return 1
        if not isinstance(error, _USER_ERRORS):
            # Bare, not in trio's group: a handler's SystemExit(3) exits with 3, and no group traceback.
            raise error from None
        print(f"error: {error}", file=sys.stderr)
        return 2


def _prog_name() -> str:
    """What the user typed to run us, for usage lines: ``workerpoolxt``, or ``python -m workerpoolxt``."""
    return "python -m workerpoolxt" if sys.argv[0].endswith("__main__.py") else "workerpoolxt"
