"""The command line run in this process, so its code is measured: enqueue, status, the worker, errors."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import workerpoolxt as wpxt
import workerpoolxt.durable
from workerpoolxt.durable import _cli, _commands
from workerpoolxt.durable.testing import MemoryStore

HANDLERS = """
import trio
import workerpoolxt as wpxt

registry = wpxt.Registry()
not_a_registry = 42


@registry.register("add")
async def add(options):
    args = wpxt.current_job().args
    await trio.sleep(args.get("seconds", 0))
    return args["x"] + args["y"]
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding a handlers module, made the current directory."""
    (tmp_path / "cli_handlers.py").write_text(HANDLERS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("cli_handlers", None)
    return tmp_path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``main(args)``; return its exit status, stdout and stderr."""
    try:
        status = _cli.main(args)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_enqueue_then_status_in_process(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """enqueue prints one id per copy; status prints the counts and a task's record as JSON."""
    store = "sqlite:///tasks.db"
    status, out, _ = run_cli(
        [
            "enqueue",
            "--store",
            store,
            "--registry",
            "cli_handlers:registry",
            "add",
            "--args",
            '{"x": 1, "y": 2}',
            "--count",
            "2",
            "--retry",
            "1",
            "--priority",
            "5",
        ],
        capsys,
    )
    assert (status, out.split()) == (0, ["1", "2"])
    status, out, _ = run_cli(["status", "--store", store, "--json"], capsys)
    assert status == 0
    assert json.loads(out)["counts"] == {
        "queued": 2,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "dead": 0,
    }
    status, out, _ = run_cli(["status", "--store", store, "--json", "2"], capsys)
    record = json.loads(out)
    assert (record["id"], record["status"], record["retry"], record["priority"]) == (2, "queued", 1, 5)
    assert record["job"]["args"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "--store", "mysql://x", "add"], "unknown store URL"),
        (["enqueue", "--store", "sqlite://host/x.db", "add"], "sqlite:///relative/path.db"),
        (["enqueue", "--store", "sqlite:///", "add"], "sqlite:///relative/path.db"),
        (["enqueue", "--store", "postgresql://", "add"], "postgresql://user@host:port/database"),
        (["enqueue", "--store", "sqlite:///t.db", "add", "--args", "{not json"], "--args must be a JSON object"),
        (["enqueue", "--store", "sqlite:///t.db", "add", "--count", "0"], "--count must be at least 1"),
        (["enqueue", "--store", "sqlite:///t.db", "--registry", "cli_handlers:registry", "nope"], "'nope'"),
        (["enqueue", "--store", "sqlite:///t.db", "--registry", "cli_handlers", "add"], "module:attribute"),
        (["enqueue", "--store", "sqlite:///t.db", "--registry", "cli_handlers:not_a_registry", "add"], "Registry"),
        (["enqueue", "--store", "sqlite:///t.db", "--registry", "no_such_module_x:r", "add"], "no_such_module_x"),
        (["status", "--store", "sqlite:///t.db", "99"], "SQLite store t.db: the file does not exist"),
    ],
)
def test_bad_input_is_a_one_line_error(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Each mistake exits with status 2 and a one-line error that says what is wrong."""
    status, _, err = run_cli(args, capsys)
    assert status == 2
    assert err.startswith("error: ")
    assert message in err


def test_unreachable_postgres_names_the_host(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A database that refuses connections is a one-line error naming its host and port."""
    status, _, err = run_cli(["status", "--store", "postgresql://postgres@127.0.0.1:1/test"], capsys)
    assert status == 2
    assert "127.0.0.1" in err
    assert ":1" in err


def test_open_store_kinds(tmp_path: Path) -> None:
    """sqlite:/// URLs open a SQLiteStore at the path; postgresql:// ones a PostgresStore with the URL's schema."""
    relative = _cli.open_store("sqlite:///tasks.db")
    assert isinstance(relative, wpxt.durable.SQLiteStore)
    assert relative.path == Path("tasks.db")
    absolute = _cli.open_store(f"sqlite:///{tmp_path}/tasks.db")
    assert isinstance(absolute, wpxt.durable.SQLiteStore)
    assert absolute.path == tmp_path / "tasks.db"
    postgres = _cli.open_store("postgres://app@db/app?schema=queue_a&sslmode=disable")
    assert isinstance(postgres, wpxt.durable.PostgresStore)
    with pytest.raises(TypeError, match="`url`"):
        _cli.open_store(5)  # type: ignore[arg-type]


def test_an_unexpected_error_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error that is not the user's (a bug) keeps its traceback instead of a one-line message."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(_commands, "open_store", broken)
    with pytest.raises(KeyError, match="bug"):
        _cli.main(["status", "--store", "sqlite:///x.db"])


async def test_worker_runs_tasks_and_stops_on_sigint_then_cancels_on_a_second(workdir: Path) -> None:
    """The worker command drains the store; SIGINT stops it gracefully, a second one cancels what runs."""
    registry = _cli.load_registry("cli_handlers:registry")
    store = MemoryStore(registry=registry)
    await store.enqueue([wpxt.Job("add", args={"x": 1, "y": 2})])
    [slow] = await store.enqueue([wpxt.Job("add", args={"x": 0, "y": 0, "seconds": 30})])
    settings = worker_settings("--poll", "0.01")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_commands._work, store, workerpoolxt.durable.WorkerApp(registry), settings)
            while (await store.get(slow)).status is not wpxt.durable.TaskStatus.RUNNING:  # noqa: ASYNC110 - a store to poll
                await trio.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep(0.1)
            # Still running: a first signal lets it finish.
            assert (await store.get(slow)).status is wpxt.durable.TaskStatus.RUNNING
            os.kill(os.getpid(), signal.SIGTERM)
    assert (await store.stats()).succeeded == 1
    record = await store.get(slow)
    assert (record.status, record.attempts) == (wpxt.durable.TaskStatus.QUEUED, 0)


def worker_settings(*arguments: str) -> dict[str, Any]:
    """The settings the worker command hands to ``_work()`` for these command-line ``arguments``."""
    command = _commands.cli.commands["worker"]
    context = command.make_context(
        "worker", ["--store", "sqlite:///unused.db", "--app", "cli_handlers:registry", *arguments]
    )
    settings = dict(context.params)
    for name in ("app_spec", "store_url", "verbose", "quiet", "log_level", "log_format"):
        settings.pop(name)
    return settings
