"""examples/middleware.py runs and prints what it claims, its summary log included."""

from __future__ import annotations

import functools
import logging
import runpy
from pathlib import Path

import pytest
import trio
import trio.testing

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def virtual_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the example's own ``trio.run`` use an autojump clock, so it finishes at once."""
    monkeypatch.setattr(trio, "run", functools.partial(trio.run, clock=trio.testing.MockClock(autojump_threshold=0)))


def run_example(name: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run an example that calls ``logging.basicConfig`` and return its stdout lines.

    basicConfig does nothing while the root logger has handlers, and pytest's
    capture handlers are there during a test; so the root logger runs the
    example with none, and gets its own handlers and level back afterwards.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    return capsys.readouterr().out.splitlines()


@pytest.mark.usefixtures("virtual_time")
def test_middleware(capsys: pytest.CaptureFixture[str]) -> None:
    """The pool's summary_log logs each attempt; the job's middleware hands over a value or skips with 444."""
    # Two workers: acme sleeps over [0, 0.3]; initech ends at once, then its worker
    # runs flaky, whose first attempt fails at 0 and second sleeps over [0, 0.25].
    assert run_example("middleware.py", capsys) == [
        "INFO job 'initech' 444 in 0.000s, attempt 1, job_id 1",
        "WARNING job 'flaky' 500 in 0.000s, attempt 1, job_id 2: ConnectionError: connection reset",
        "INFO job 'flaky' 200 in 0.250s, attempt 2, job_id 2",
        "INFO job 'acme' 200 in 0.300s, attempt 1, job_id 0",
        "acme: succeeded 200 '3 items for acme'",
        "initech: succeeded 444 0",
        "flaky: succeeded 200 'ok'",
    ]
