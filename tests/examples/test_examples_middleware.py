"""examples/middleware.py runs and prints what it claims, its summary log included."""

from __future__ import annotations

import pytest
from helpers import run_example


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
