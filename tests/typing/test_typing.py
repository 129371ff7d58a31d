"""The types users see: mypy --strict on tests/typing/check_job_types.py, which asserts them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_job_types_check_under_mypy_strict() -> None:
    """Job(task) infers Job[T] from the task's return type, options form or keyword handler, and the handle follows."""
    # From the repository root, so mypy reads its settings from pyproject.toml
    # and checks this checkout's package, whatever else is installed.
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "tests/typing/check_job_types.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("Success: no issues found in 1 source file"), checked.stdout
