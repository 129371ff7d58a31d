"""examples/health_server.py serves /ready and /metrics over real HTTP (real clock: sockets)."""

from __future__ import annotations

import pytest
from helpers import run_example

pytest.importorskip("hypercorn", reason="the http extra is not installed")
pytest.importorskip("httpx", reason="httpx is not installed")
pytest.importorskip("prometheus_client", reason="the prometheus extra is not installed")


def test_health_server(capsys: pytest.CaptureFixture[str]) -> None:
    """/ready answers 503 with the reason while 3 of the last 4 jobs failed, then 200; /metrics counts jobs."""
    assert run_example("health_server.py", capsys) == [
        "503 {'healthy': False, 'reasons': ['3 of the last 4 jobs ended in error, over 25%']}",
        "200 {'healthy': True, 'reasons': []}",
        'workerpoolxt_jobs_total{code="200",name="works",status="succeeded"} 4.0',
        'workerpoolxt_jobs_total{code="500",name="fails",status="failed"} 3.0',
    ]
