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
from helpers import fetch, free_port

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
        (
            ["enqueue", "--store", "sqlite:///t.db", "add", "--count", "0"],
            "Invalid value for '--count': 0 is not in the range 1<=x<=100000",
        ),
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


def make_dead(path: Path) -> int:
    """Enqueue an ``add`` task into the SQLite store at ``path``, claim it and fail its only attempt; return its id."""

    async def go() -> int:
        store = wpxt.durable.SQLiteStore(path)
        try:
            await store.init()
            [task_id] = await store.enqueue([wpxt.Job("add", args={"x": 1, "y": 2})])
            await store.claim("w-test", 1, order=wpxt.durable.Order.LIFO)
            await store.fail(task_id, ValueError("boom"), worker_id="w-test")
            return task_id
        finally:
            await store.aclose()

    return trio.run(go)


def test_admin_commands_in_process(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status, list, retry, cancel and schema, run in this process: a dead task goes back, a queued one is cancelled."""
    store = ["--store", "sqlite:///tasks.db"]
    dead = make_dead(workdir / "tasks.db")
    status, out, _ = run_cli(["status", *store], capsys)
    assert status == 0
    assert [line.split() for line in out.splitlines()] == [
        ["queued", "0"],
        ["running", "0"],
        ["succeeded", "0"],
        ["failed", "0"],
        ["cancelled", "0"],
        ["dead", "1"],
        ["total", "1"],
        [],
        ["by", "queue:"],
        ["QUEUE", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "DEAD", "TOTAL"],
        ["default", "0", "0", "0", "0", "0", "1", "1"],
    ]
    status, out, _ = run_cli(["status", *store, str(dead)], capsys)
    assert (status, out.splitlines()[1].split()[:5]) == (0, [str(dead), "dead", "add", "default", "1/1"])
    status, out, _ = run_cli(["list", *store, "--status", "dead", "--json"], capsys)
    assert (status, json.loads(out)["error_message"]) == (0, "boom")
    assert run_cli(["retry", *store, "--all-dead"], capsys)[:2] == (0, f"{dead}\n")
    assert run_cli(["retry", *store, "--all-dead"], capsys)[:2] == (0, "")
    status, out, _ = run_cli(["status", *store, "--json"], capsys)
    overview = json.loads(out)
    assert (overview["counts"]["queued"], overview["running"]) == (1, [])
    assert 0 <= overview["longest_wait"] < 60
    assert run_cli(["cancel", *store, str(dead)], capsys)[:2] == (0, f"{dead}\n")
    status, _, err = run_cli(["cancel", *store, str(dead)], capsys)
    assert (status, err) == (2, f"error: task {dead} cannot be cancelled: it is cancelled\n")
    status, out, _ = run_cli(["schema", "--store", "sqlite:///fresh.db"], capsys)
    assert (status, "CREATE TABLE" in out, (workdir / "fresh.db").exists()) == (0, True, False)
    assert run_cli(["schema", "--store", "sqlite:///fresh.db", "--apply"], capsys)[:2] == (
        0,
        "the store at sqlite:///fresh.db is ready\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status"], "error: Missing option '--store' (env var: 'WPXT_STORE'). (see '"),
        (["enqueue", "--store", "sqlite:///t.db", "add", "--in", "1", "--at", "2030-01-01"], "give --in or --at"),
        (["enqueue", "--store", "sqlite:///t.db", "add", "--at", "tomorrow"], "--at must be an ISO 8601 time"),
        (["retry", "--store", "sqlite:///t.db", "1", "--all-dead"], "name the tasks to retry, or give --all-dead"),
        (["worker", "--store", "sqlite:///t.db", "--app", "cli_handlers:nothing"], "has no attribute 'nothing'"),
        (["worker", "--store", "sqlite:///t.db", "--app", "cli_handlers:registry", "--metrics-port", "9"], "has none"),
    ],
)
def test_command_line_mistakes_in_process(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Mistakes on the command line, click's own included, are one `error:` line and exit status 2."""
    status, _, err = run_cli(args, capsys)
    assert (status, err.count("\n")) == (2, 1)
    assert err.startswith("error: ")
    assert message in err
    assert not (workdir / "t.db").exists()


def test_an_error_importing_the_users_module_shows_its_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error raised by the user's module as it is imported is exit 1, its traceback, then one `error:` line."""
    (workdir / "broken_app.py").write_text("raise RuntimeError('no config')\n")
    sys.modules.pop("broken_app", None)
    status, _, err = run_cli(["worker", "--store", "sqlite:///t.db", "--app", "broken_app:app"], capsys)
    assert status == 1
    assert f'File "{workdir / "broken_app.py"}", line 1' in err
    assert err.splitlines()[-1] == "error: importing broken_app:app raised RuntimeError: no config (traceback above)"


def test_healthcheck_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """healthcheck with no worker listening exits 1 and says so on one line."""
    status, _, err = run_cli(["healthcheck", "--port", "1", "--timeout", "1"], capsys)
    assert status == 1
    assert err.startswith("not ready: no answer from http://127.0.0.1:1/ready")


def test_version_and_help_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the installed version; --help exits 0."""
    import importlib.metadata

    assert run_cli(["--version"], capsys)[:2] == (0, f"workerpoolxt {importlib.metadata.version('workerpoolxt')}\n")
    status, out, _ = run_cli(["list", "--help"], capsys)
    assert (status, out.startswith("Usage: "), "workerpoolxt list [OPTIONS]" in out) == (0, True, True)


async def test_worker_serves_metrics_and_readiness_in_process(workdir: Path) -> None:
    """The worker command serves the app's metrics on /metrics and its health on /ready, until it stops."""
    from workerpoolxt.observe import PrometheusMetrics

    registry = _cli.load_registry("cli_handlers:registry")
    store = MemoryStore(registry=registry)
    [task_id] = await store.enqueue([wpxt.Job("add", args={"x": 1, "y": 2})])
    metrics_port, health_port = free_port(), free_port()
    settings = worker_settings("--poll", "0.01", "--metrics-port", str(metrics_port), "--health-port", str(health_port))
    app = workerpoolxt.durable.WorkerApp(registry, metrics=PrometheusMetrics())
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_commands._work, store, app, settings)
            while (await store.get(task_id)).status is not wpxt.durable.TaskStatus.SUCCEEDED:  # noqa: ASYNC110
                await trio.sleep(0.01)
            # The servers start beside the worker, which may finish the task first: wait until /ready answers.
            while True:
                try:
                    status, body = await trio.to_thread.run_sync(fetch, f"http://127.0.0.1:{health_port}/ready")
                    break
                except OSError:
                    await trio.sleep(0.01)
            assert (status, json.loads(body)["healthy"]) == (200, True)
            status, body = await trio.to_thread.run_sync(fetch, f"http://127.0.0.1:{health_port}/nope")
            assert status == 404
            status, body = await trio.to_thread.run_sync(fetch, f"http://127.0.0.1:{metrics_port}/metrics")
            assert status == 200
            assert 'workerpoolxt_durable_tasks_total{handler="add",outcome="succeeded"} 1.0' in body
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("2.5", 2.5), ("30s", 30.0), ("15m", 900.0), ("12h", 43200.0), ("7d", 604800.0), (".5D", 43200.0)],
)
def test_durations_read_as_seconds(text: str, seconds: float) -> None:
    """A duration on the command line is seconds, or a number and a unit: s, m, h or d, in either case."""
    assert _commands._duration(allow_zero=False)(None, None, text) == seconds  # type: ignore[arg-type]


def test_prune_in_process(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """prune --older-than 0 deletes the finished task, keeps the queued one, and says how many it deleted."""
    store = "sqlite:///tasks.db"
    status, out, _ = run_cli(["enqueue", "--store", store, "add", "--count", "2"], capsys)
    assert (status, out.split()) == (0, ["1", "2"])
    assert run_cli(["cancel", "--store", store, "1"], capsys)[0] == 0
    assert run_cli(["prune", "--store", store, "--older-than", "0"], capsys) == (0, "deleted 1 finished task\n", "")
    status, out, _ = run_cli(["status", "--store", store, "--json"], capsys)
    assert json.loads(out)["counts"] == {
        "queued": 1,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "dead": 0,
    }


def test_enqueue_places_tasks_by_queue_dedup_key_and_lock_and_list_filters_by_queue(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """enqueue --queue/--dedup-key/--lock store them on the task; a key given again prints the waiting task's id;
    list --queue lists that queue's tasks alone."""
    store = ["--store", "sqlite:///tasks.db"]
    args = ["--args", '{"x": 1, "y": 2}']
    assert run_cli(["enqueue", *store, "add", *args, "--queue", "mail", "--dedup-key", "k", "--lock", "L"], capsys)[
        :2
    ] == (0, "1\n")
    assert run_cli(["enqueue", *store, "add", *args, "--queue", "mail", "--dedup-key", "k"], capsys)[:2] == (0, "1\n")
    assert run_cli(["enqueue", *store, "add", *args], capsys)[:2] == (0, "2\n")
    status, out, _ = run_cli(["status", *store, "--json", "1"], capsys)
    record = json.loads(out)
    assert (status, record["queue"], record["dedup_key"], record["lock"]) == (0, "mail", "k", "L")
    status, out, _ = run_cli(["list", *store, "--queue", "mail", "--json"], capsys)
    assert (status, [json.loads(line)["id"] for line in out.splitlines()]) == (0, [1])
    status, _, err = run_cli(["enqueue", *store, "add", "--queue", "no room"], capsys)
    assert (status, err.strip()) == (
        2,
        "error: `queue` must be 1 to 64 letters, digits or any of `_ . : -`, got 'no room'",
    )


async def test_worker_queue_flags_claim_those_queues_alone(workdir: Path) -> None:
    """worker --queue a,b --queue c serves those queues, in one claim; the others' tasks stay queued."""
    registry = _cli.load_registry("cli_handlers:registry")
    store = MemoryStore(registry=registry)
    ids = await store.enqueue([wpxt.Job("add", args={"x": n, "y": 0}, queue=queue) for n, queue in enumerate("abcd")])
    settings = worker_settings("--poll", "0.01", "--burst", "--queue", "a,b", "--queue", " c ")
    with trio.fail_after(10):
        await _commands._work(store, workerpoolxt.durable.WorkerApp(registry), settings)
    statuses = [(await store.get(task_id)).status.value for task_id in ids]
    assert statuses == ["succeeded", "succeeded", "succeeded", "queued"]
    with pytest.raises(ValueError, match="--queue must name at least one queue"):
        await _commands._work(store, workerpoolxt.durable.WorkerApp(registry), worker_settings("--queue", " , "))
