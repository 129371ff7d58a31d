"""The README example and every file in examples/ run and print what they claim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import EXAMPLES, run_example

ROOT = Path(__file__).resolve().parents[2]


def readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.usefixtures("virtual_time")
def test_readme_example_prints_what_the_readme_claims(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's first code block, run as written, prints the README's first output block."""
    code, claimed = readme_blocks("python")[0], readme_blocks("text")[0]
    exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == claimed


def test_hello_world_example_is_the_readme_example() -> None:
    """examples/hello_world.py holds the README example, so the Quick start runs it."""
    readme_lines = [line for line in readme_blocks("python")[0].splitlines() if line.strip()]
    example = (EXAMPLES / "hello_world.py").read_text()
    for line in readme_lines:
        if line != "trio.run(main)":
            assert line.strip() in example


@pytest.mark.usefixtures("virtual_time")
def test_hello_world(capsys: pytest.CaptureFixture[str]) -> None:
    """The slow job times out at exactly 0.5 s; the other two succeed at once."""
    assert run_example("hello_world.py", capsys) == [
        "My first job succeeded Hello, world! None 0.0 1",
        "with retry succeeded Hello, world! None 0.0 1",
        "too slow timed_out None job 'too slow' timed out 0.5 1",
    ]


@pytest.mark.usefixtures("virtual_time")
def test_timeouts_and_contexts(capsys: pytest.CaptureFixture[str]) -> None:
    """Job timeouts cut at their budget, and cancelling a Context reaches its child too."""
    assert run_example("timeouts_and_contexts.py", capsys) == [
        "fits: succeeded after 0.1 s (slept 0.1 s)",
        "overruns: timed_out after 0.2 s (job 'overruns' timed out)",
        "batch-1: cancelled after 0.3 s (job 'batch-1' was cancelled: its Context was cancelled)",
        "batch-2: cancelled after 0.3 s (job 'batch-2' was cancelled: its Context was cancelled)",
    ]


@pytest.mark.usefixtures("virtual_time")
def test_retry(capsys: pytest.CaptureFixture[str]) -> None:
    """A flaky job succeeds on its third attempt, a non-retryable error stops at one, the deadline wins."""
    # sluggish: attempts over [0, 0.2], [0.3, 0.5], [0.7, 0.9]; the next wait (0.4 s) is cut at 1.0.
    assert run_example("retry.py", capsys) == [
        "flaky: third time lucky",
        "broken: failed after 1 attempt(s): ValueError('bad input is not worth retrying')",
        "sluggish: timed_out after 3 attempt(s): JobTimeoutError(\"job 'sluggish' timed out\")",
    ]


def test_options(capsys: pytest.CaptureFixture[str]) -> None:
    """Pool options apply by default, job options replace them, and a plain function runs in a thread."""
    # Real clock: the example runs a thread, and it never sleeps.
    assert run_example("options.py", capsys) == [
        "default options: Hello, stranger",
        "own options: Hi, Ada",
        "shout: THREADS TOO",
    ]


@pytest.mark.usefixtures("virtual_time")
def test_streaming_results(capsys: pytest.CaptureFixture[str]) -> None:
    """Every result reaches the consumer while the pool keeps none, and unread results stay bounded."""
    expected_sum = sum(n * n for n in range(10_000))
    assert run_example("streaming_results.py", capsys) == [
        f"10000 results, sum of squares {expected_sum}, results kept by the pool: 0",
        "unread results never passed max_unread plus the workers: True",
    ]


@pytest.mark.usefixtures("virtual_time")
def test_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    """A stored named job runs its handler; a task's own 444 code marks the no-op."""
    assert run_example("handlers.py", capsys) == [
        "send_email: succeeded 200 sent 'hi' to ada@example.com",
        "empty: succeeded 444 None",
    ]


def test_every_example_has_a_test() -> None:
    """A new example cannot land without a test that runs it."""
    sources = "".join(path.read_text() for path in (ROOT / "tests" / "examples").glob("test_examples*.py"))
    # Run in this process (run_example), or as a script in a process of its own (a path under EXAMPLES).
    tested = set(re.findall(r"(?:run_example\(\s*|EXAMPLES / )\"(\w+\.py)\"", sources))
    assert {path.name for path in EXAMPLES.glob("*.py")} <= tested
