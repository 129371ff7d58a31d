"""Which PostgreSQL server the tests use, chosen once per process, and a coverage.py plugin that follows the choice.

With ``$WPXT_TEST_POSTGRES_DSN`` set, the PostgreSQL tests use that server; with
``$CI`` set, the default one. Either way they must run: an unreachable server
fails them. Otherwise they use the default server if it answers a quick probe,
and skip, saying how to get one, if it does not. When they skip, coverage leaves
``workerpoolxt/durable/_postgres.py`` out, so the floor applies to what ran.

Coverage loads this module before it starts measuring, so it imports neither
pytest nor workerpoolxt.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import coverage
import coverage.types

DSN_VARIABLE = "WPXT_TEST_POSTGRES_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PROBE_TIMEOUT = 2
"""Seconds the probe waits for the default server (libpq's least connect_timeout)."""


def ci() -> bool:
    """Whether ``$CI`` is set, as CI services and ``.ci/run`` set it."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false"}


@functools.cache
def choose() -> tuple[str, str]:
    """The DSN the PostgreSQL tests use ("" when they skip), and why, in words that follow "as"."""
    dsn = os.environ.get(DSN_VARIABLE, "")
    if dsn:
        return dsn, f"{DSN_VARIABLE} is set, so an unreachable server fails them"
    if ci():
        return DEFAULT_DSN, f"CI is set, so an unreachable server at {DEFAULT_DSN} fails them"
    try:
        import psycopg
    except ImportError:
        return "", "psycopg is not installed (pip install -e .[postgres])"
    try:
        psycopg.connect(DEFAULT_DSN, connect_timeout=PROBE_TIMEOUT).close()
    except psycopg.Error as error:
        # psycopg's first line ends with libpq's cause, such as "Connection refused".
        cause = str(error).strip().partition("\n")[0].rpartition(": ")[2] or type(error).__name__
        return "", (
            f"no PostgreSQL server answered at {DEFAULT_DSN} ({cause}): start one there (trust auth), "
            f"or set {DSN_VARIABLE} to another's DSN"
        )
    return DEFAULT_DSN, f"a server answered at {DEFAULT_DSN}"


class OmitPostgresWithoutServer(coverage.CoveragePlugin):
    """Leaves ``workerpoolxt/durable/_postgres.py`` unmeasured when the PostgreSQL tests skip."""

    def configure(self, config: coverage.types.TConfigurable) -> None:
        dsn, _ = choose()
        if not dsn:
            omit = config.get_option("run:omit") or []
            assert isinstance(omit, list)
            config.set_option("run:omit", [*omit, "*/workerpoolxt/durable/_postgres.py"])


def coverage_init(reg: Any, options: dict[str, Any]) -> None:
    """coverage.py's entry point for the plugin (``[tool.coverage.run] plugins``)."""
    reg.add_configurer(OmitPostgresWithoutServer())
