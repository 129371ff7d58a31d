"""examples/supervisor.py runs under a virtual clock and prints what it claims."""

from __future__ import annotations

import pytest
from helpers import run_example


@pytest.mark.usefixtures("virtual_time")
def test_supervisor(capsys: pytest.CaptureFixture[str]) -> None:
    """The consumer restarts at 1.5 and 4 and holds until the block ends; the deferred one-off succeeds."""
    assert run_example("supervisor.py", capsys) == [
        "0.0 consumer: attempt 1/5",
        "1.0 health: Health(healthy=False, reasons="
        "(\"service 'consumer' failed: ConnectionError: broker went away\",))",
        "1.5 consumer: attempt 2/5",
        "4.0 consumer: attempt 3/5",
        "10.0 health: Health(healthy=True, reasons=())",
        "consumer: stopped at attempt 3/5",
        "   0.0 starting attempt 1/5",
        "   0.5 stopping with error: ConnectionError: broker went away",
        "   0.5 restarting in 1s",
        "   1.5 starting attempt 2/5",
        "   2.0 stopping with error: ConnectionError: broker went away",
        "   2.0 restarting in 2s",
        "   4.0 starting attempt 3/5",
        "  10.0 stopping on request",
        "warm_cache: success at attempt 1/5",
        "   0.0 deferring 2s",
        "   2.0 starting attempt 1/5",
        "   3.0 stopping with success",
    ]
