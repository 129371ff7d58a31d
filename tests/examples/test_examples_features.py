"""The scheduling, load-shaping, flow, progress-bar and process examples run and print what they claim."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import EXAMPLES, run_example


@pytest.mark.usefixtures("virtual_time")
def test_scheduling(capsys: pytest.CaptureFixture[str]) -> None:
    """Past times run at once, delays wait, busy ticks are skipped, and stop_wait() abandons later jobs."""
    # Orders arrive at 0, 0.1, 0.2 and take 0.1 s each. poll_inbox (0.3 s, every
    # 0.2 s) runs at 0, 0.4 and 0.8, skips 0.2 and 0.6, and is stopped at 0.9.
    assert run_example("scheduling.py", capsys) == [
        "0.3 orders: 3 shipped",
        "0.6 reminder: 'standup soon', queued at 0.5",
        "1.1 poll_inbox: 3 runs, 2 ticks skipped",
        "nightly: abandoned (job 'nightly' was abandoned: the pool stopped before it started)",
        "started 0.0 overdue: sorry, late",
        "started 0.0 poll_inbox: inbox checked",
        "started 0.0 ship: shipped A-1",
        "started 0.1 ship: shipped A-2",
        "started 0.2 ship: shipped A-3",
        "started 0.4 poll_inbox: inbox checked",
        "started 0.5 reminder: standup soon",
        "started 0.8 poll_inbox: inbox checked",
    ]


@pytest.mark.usefixtures("virtual_time")
def test_load_shaping(capsys: pytest.CaptureFixture[str]) -> None:
    """Workers ramp up, starts are spaced per limiter, and an overrunning tick is logged."""
    # Batches at 0, 0.2 and 0.4; run 1/2 takes 0.3 s, so tick 1 is unfinished at 0.4.
    assert run_example("load_shaping.py", capsys) == [
        "ramp_up: queries started at 0.0, 0.1, 0.2, 0.3",
        "api: started at 0.0, 0.2, 0.4, 0.6, 0.8",
        "geocode: started at 0.0, 0.5, 1.0",
        "WARNING tick 1 of 'request' overran its 0.2s slot: 1 of 3 runs unfinished",
        "on_complete: 6 runs ['0/0', '0/1', '1/0', '1/1', '1/2', '2/0'], slowest 1/2",
    ]


@pytest.mark.usefixtures("virtual_time")
def test_flows(capsys: pytest.CaptureFixture[str]) -> None:
    """A chain passes its dict along, a failed step is named, and a fan-out step runs in parallel."""
    # onboard: 0.1 + 0.1 + a 0.2 s attempt that times out + an instant retry = 0.4 s.
    assert run_example("flows.py", capsys) == [
        "onboard: succeeded in 0.4 s, 2 welcome attempts",
        "  {'company': 'Acme', 'company_id': 7, 'user_ids': [70, 71, 72], 'emails_sent': 3}",
        "paid signup: failed: step 1 'charge_card' of chain 'paid signup' failed after 1 attempt(s)",
        "  step 1 'charge_card' failed because of ValueError('card declined')",
        "list_users -> render_avatars -> summarize: 3 avatars: ada.png, grace.png, linus.png in 0.2 s",
    ]


@pytest.mark.usefixtures("virtual_time")
def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    """Both bars reach their totals: every file's result, and every byte its job reported."""
    pytest.importorskip("tqdm", reason="the example draws its bars with tqdm: pip install tqdm")
    # 99 chunks of 0.1 s on 4 workers, files taken in submission order: the last, 15 chunks, starts at 1.5 s.
    assert run_example("progress_bar.py", capsys) == [
        "12 files, 6,336 KiB in 3.0 s; the bars reached 12/12 files and 6,336 KiB",
    ]


def test_process_tasks() -> None:
    """CPU-bound tasks run in processes; the task that hangs is killed at its deadline, and the next job runs.

    Run as a script, in a process of its own, as its docstring says: worker
    processes outlive a trio run, so in this process they could be ones that
    other tests started, which cannot import the script's tasks.
    """
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "process_tasks.py")], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "count_primes succeeded 2262",
        "hang timed_out None",
        "queued behind succeeded 168",
    ]
