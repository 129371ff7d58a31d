"""Tests for tests/postgres_server.py: which PostgreSQL server the tests use, and the coverage plugin that follows."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import coverage
import postgres_server
import pytest
from helpers import POSTGRES_DSN, requires_postgres

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"
"""Nothing listens on port 1, so a connection is refused at once."""


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Neither variable set, and choose() asked afresh (the suite's own choice was made at import)."""
    monkeypatch.delenv(postgres_server.DSN_VARIABLE, raising=False)
    monkeypatch.delenv("CI", raising=False)
    postgres_server.choose.cache_clear()
    yield
    postgres_server.choose.cache_clear()


def test_a_set_dsn_is_used_and_insisted_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """WPXT_TEST_POSTGRES_DSN is used as given, unprobed, and the reason says an unreachable server fails the tests."""
    monkeypatch.setenv(postgres_server.DSN_VARIABLE, UNREACHABLE)
    monkeypatch.setenv("CI", "true")
    assert postgres_server.choose() == (
        UNREACHABLE,
        "WPXT_TEST_POSTGRES_DSN is set, so an unreachable server fails them",
    )


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_ci_insists_on_the_default_server(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """With CI set, the default server is used, unprobed, even when it would not answer."""
    monkeypatch.setattr(postgres_server, "DEFAULT_DSN", UNREACHABLE)
    monkeypatch.setenv("CI", value)
    assert postgres_server.choose() == (UNREACHABLE, f"CI is set, so an unreachable server at {UNREACHABLE} fails them")


@pytest.mark.parametrize("value", ["", "0", "false", "False"])
def test_without_a_server_the_tests_skip_saying_how_to_get_one(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """With no variable (or CI off), a default server that refuses the probe means a skip, saying why and what to do."""
    monkeypatch.setattr(postgres_server, "DEFAULT_DSN", UNREACHABLE)
    monkeypatch.setenv("CI", value)
    assert postgres_server.choose() == (
        "",
        f"no PostgreSQL server answered at {UNREACHABLE} (Connection refused): start one there (trust auth), "
        "or set WPXT_TEST_POSTGRES_DSN to another's DSN",
    )


def test_without_psycopg_the_tests_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg there is nothing to probe with: a skip that says what to install."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    assert postgres_server.choose() == ("", "psycopg is not installed (pip install -e .[postgres])")


@requires_postgres
def test_a_server_that_answers_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no variable set, a default server that answers the probe is the one the tests use."""
    monkeypatch.setattr(postgres_server, "DEFAULT_DSN", POSTGRES_DSN)
    assert postgres_server.choose() == (POSTGRES_DSN, f"a server answered at {POSTGRES_DSN}")


def test_the_probe_is_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """choose() decides once per process: later calls get the first answer, whatever has changed since."""
    monkeypatch.setattr(postgres_server, "DEFAULT_DSN", UNREACHABLE)
    first = postgres_server.choose()
    monkeypatch.setenv("CI", "true")
    assert postgres_server.choose() is first


@pytest.mark.parametrize(("ci", "omitted"), [("true", []), ("", ["*/workerpoolxt/durable/_postgres.py"])])
def test_coverage_leaves_the_postgres_store_out_only_when_its_tests_skip(
    monkeypatch: pytest.MonkeyPatch, ci: str, omitted: list[str]
) -> None:
    """The coverage plugin adds workerpoolxt/durable/_postgres.py to run:omit when, and only when, the tests skip."""
    monkeypatch.setattr(postgres_server, "DEFAULT_DSN", UNREACHABLE)
    monkeypatch.setenv("CI", ci)
    config = coverage.Coverage(config_file=False, omit=["*/elsewhere/*"])
    postgres_server.OmitPostgresWithoutServer().configure(config)
    assert config.get_option("run:omit") == ["*/elsewhere/*", *omitted]
