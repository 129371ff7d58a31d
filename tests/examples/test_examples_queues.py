"""examples/queues_and_locks.py runs on the real clock (its store works in threads)."""

from __future__ import annotations

import pytest
from helpers import run_example


def test_queues_and_locks(capsys: pytest.CaptureFixture[str]) -> None:
    """A mail worker leaves the report queued; a dedup key stores one task; a lock runs three charges one at a time."""
    lines = run_example("queues_and_locks.py", capsys)
    assert lines[:5] == [
        "mail send_email succeeded",
        "reports build_report queued",
        "the same task: True",
        "charged in order: [100, 250, 75]",
        "charges running at once, at most: 1",
    ]
    assert lines[5] == (
        "{'default': StoreStatistics(queued=0, running=0, succeeded=4, failed=0, cancelled=0, dead=0), "
        "'mail': StoreStatistics(queued=0, running=0, succeeded=1, failed=0, cancelled=0, dead=0), "
        "'reports': StoreStatistics(queued=0, running=0, succeeded=1, failed=0, cancelled=0, dead=0)}"
    )
    assert len(lines) == 6
