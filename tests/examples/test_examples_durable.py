"""examples/durable.py, worker_app.py, retention.py and periodic.py run on the real clock (their stores use threads)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import EXAMPLES, run_example


def test_durable(capsys: pytest.CaptureFixture[str]) -> None:
    """A task succeeds, one cancels itself with CancelTask, and a flaky one succeeds on its second attempt."""
    assert run_example("durable.py", capsys) == [
        "1 resize succeeded attempts=1 {'image': 'cat.png', 'width': 200}",
        "2 resize cancelled attempts=1 None",
        "3 flaky_upload succeeded attempts=2 uploaded",
        "StoreStatistics(queued=0, running=0, succeeded=2, failed=0, cancelled=1, dead=0)",
    ]


def test_worker_app(capsys: pytest.CaptureFixture[str]) -> None:
    """The app runs once in burst mode: one email sent through the lifespan's client, one address cancelled."""
    assert run_example("worker_app.py", capsys) == [
        "2 send_email cancelled None",
        "1 send_email succeeded sent to ada@example.com",
        'outbox: {"to": "ada@example.com", "subject": "Welcome"}',
    ]


def test_worker_app_deployed(tmp_path: Path) -> None:
    """Deployed as its docstring says: enqueue through the installed command, then a worker in burst mode sends it."""
    command = Path(sys.executable).parent / "workerpoolxt"
    env = {
        **os.environ,
        "PYTHONPATH": str(EXAMPLES),
        "WPXT_STORE": "sqlite:///mail.db",
        "WPXT_APP": "worker_app:app",
    }

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command, *arguments], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    done = run("enqueue", "send_email", "--args", '{"to": "ada@example.com", "subject": "Welcome"}')
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")
    # The app's handler takes `to` and `subject`: a task without `subject` is refused before it is stored.
    done = run("enqueue", "send_email", "--args", '{"to": "ada@example.com"}')
    assert (done.returncode, done.stderr) == (2, "error: send_email() missing a required argument: 'subject'\n")
    done = run("worker", "--burst", "--poll", "0.05")
    assert done.returncode == 0, done.stderr
    assert "workerpoolxt.durable: task 1 send_email succeeded in " in done.stderr
    assert json.loads((tmp_path / "outbox.jsonl").read_text()) == {"to": "ada@example.com", "subject": "Welcome"}


def test_retention(capsys: pytest.CaptureFixture[str]) -> None:
    """Five finished tasks are pruned two per transaction, and a pruned task's id says it may have been pruned."""
    assert run_example("retention.py", capsys) == [
        "finished: [0, 1, 4, 9, 16]",
        "pruned 2",
        "pruned 2",
        "pruned 1",
        "no task with id 1 (it never existed, or was pruned)",
    ]


def test_periodic(capsys: pytest.CaptureFixture[str]) -> None:
    """The 0.2s schedule's ticks run three times, a task each, before the daily digest's 06:00 comes; each is logged."""
    logged: list[logging.LogRecord] = []
    handler = ListHandler(logged)
    logger = logging.getLogger("workerpoolxt.durable")
    logger.addHandler(handler)  # the example's records reach it as they reach the example's stderr handler
    try:
        lines = run_example("periodic.py", capsys)
    finally:
        logger.removeHandler(handler)
    assert lines == [
        "refreshing the eu cache (run 1)",
        "refreshing the eu cache (run 2)",
        "refreshing the eu cache (run 3)",
        "succeeded: 3",
    ]
    # Each of the three tasks was logged as its tick enqueued it; a fourth tick may come before the worker stops.
    ticks = [re.fullmatch(r"periodic refresh_cache: tick \S+Z enqueued as task (\d+)", r.getMessage()) for r in logged]
    assert [int(tick[1]) for tick in ticks if tick][:3] == [1, 2, 3]
    assert all(record.levelno == logging.INFO for record in logged)


class ListHandler(logging.Handler):
    """Keeps the records it handles in a list."""

    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
