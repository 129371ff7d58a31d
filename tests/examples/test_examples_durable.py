"""examples/durable.py runs on the real clock (its store works in threads) and prints what it claims."""

from __future__ import annotations

import pytest
from helpers import run_example


def test_durable(capsys: pytest.CaptureFixture[str]) -> None:
    """A task succeeds, one cancels itself with CancelTask, and a flaky one succeeds on its second attempt."""
    assert run_example("durable.py", capsys) == [
        "1 resize succeeded attempts=1 {'image': 'cat.png', 'width': 200}",
        "2 resize cancelled attempts=1 None",
        "3 flaky_upload succeeded attempts=2 uploaded",
        "StoreStatistics(queued=0, running=0, succeeded=2, failed=0, cancelled=1, dead=0)",
    ]
