"""The command line, ``python -m workerpoolxt``, run as a subprocess; and ``open_store``/``load_registry`` directly.

Commands run with the test's ``tmp_path`` as their working directory, so
``sqlite:///tasks.db`` and ``--registry handlers:registry`` name files there.
Worker processes run on the real clock: every wait for one is a bounded poll
of the store or of the worker's log, and a worker still running when its test
ends is killed.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import pytest
import trio
from helpers import POSTGRES_DSN, drop_schema, fetch, free_port, new_schema, requires_postgres

from workerpoolxt import Job, Progress, Registry, UnknownHandlerError
from workerpoolxt.durable import Order, SQLiteStore, StoreStatistics, TaskRecord, TaskStatus
from workerpoolxt.durable._cli import load_registry, open_store

DSN: Final = POSTGRES_DSN

HANG: Final = 20.0
"""Real seconds after which a command or a wait counts as hung."""

POLL: Final = 0.02
"""Real seconds between two looks at the store or at a worker's log."""

STORE: Final = "sqlite:///tasks.db"

INSTALLED: Final = Path(sys.executable).parent / "workerpoolxt"
"""The ``workerpoolxt`` command that installing the package put beside this Python."""

UNREACHABLE: Final = "postgresql://postgres@127.0.0.1:1/test"
"""Nothing listens on port 1: connecting is refused at once."""

HANDLERS: Final = '''\
"""Handlers for the worker processes that tests/test_cli.py starts."""

import trio

import workerpoolxt as wpxt

registry = wpxt.Registry()
not_a_registry = {"echo": None}


@registry.register("echo")
async def echo(options):
    job = wpxt.current_job()
    return {"task_id": job.task_id, "args": dict(job.args)}


@registry.register("sleep")
async def sleep(options):
    await trio.sleep(wpxt.current_job().args["seconds"])
    return "slept"


@registry.register("exit")
async def exit_(options):
    raise SystemExit(wpxt.current_job().args["code"])
'''


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def handlers(tmp_path: Path) -> Path:
    """``handlers.py`` in the working directory of the commands, with a Registry named ``registry``."""
    path = tmp_path / "handlers.py"
    path.write_text(HANDLERS)
    return path


def run_cli(
    cwd: Path, *arguments: str, timeout: float = HANG, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m workerpoolxt ARGUMENTS`` in ``cwd``, with ``env`` in its environment; return how it ended."""
    return subprocess.run(
        [sys.executable, "-m", "workerpoolxt", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


async def arun_cli(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``run_cli`` from a trio test, in a thread."""
    return await trio.to_thread.run_sync(lambda: run_cli(cwd, *arguments))


def enqueue_ids(cwd: Path, *arguments: str, store: str = STORE) -> list[int]:
    """Run ``enqueue``, check it succeeded, and return the ids it printed."""
    done = run_cli(cwd, "enqueue", "--store", store, *arguments)
    assert (done.returncode, done.stderr) == (0, "")
    return [int(line) for line in done.stdout.splitlines()]


def assert_user_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """The command exited with 2 and one line, an ``error:`` message holding each fragment, not a traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


async def wait_until(condition: Callable[[], Awaitable[bool]], what: Callable[[], str], seconds: float = HANG) -> None:
    """Poll ``condition`` until it holds; fail with ``what()`` if it does not within ``seconds``."""
    # Another process changes what we wait for, so there is no trio.Event to wait on: poll.
    with trio.move_on_after(seconds):
        while True:
            if await condition():
                return
            await trio.sleep(POLL)
    pytest.fail(f"not within {seconds}s: {what()}")


class WorkerProcess:
    """``python -m workerpoolxt worker`` as a subprocess, its log in a file; killed on exit if it still runs."""

    def __init__(
        self, cwd: Path, store: str, worker_id: str, *options: str, app: str | None = None, installed: bool = False
    ) -> None:
        self.worker_id = worker_id
        self.log_path = cwd / f"{worker_id}.log"
        # The installed command, as a deployment runs it, or `python -m workerpoolxt`.
        command = [str(INSTALLED)] if installed else [sys.executable, "-m", "workerpoolxt"]
        target = ["--registry", "handlers:registry"] if app is None else ["--app", app]
        self._command = [*command, "worker", "--store", store, *target, "--worker-id", worker_id, *options]
        self._cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WorkerProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self._command, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(HANG)

    def log(self) -> str:
        return self.log_path.read_text()

    def send_signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait_logged(self, text: str, seconds: float = HANG) -> None:
        """Wait until the worker's log holds ``text``."""

        async def logged() -> bool:
            await trio.lowlevel.checkpoint()
            return text in self.log()

        await wait_until(logged, lambda: f"worker {self.worker_id} logs {text!r}; its log:\n{self.log()}", seconds)

    async def wait_started(self) -> None:
        """Wait until the worker says it started: it handles SIGINT and SIGTERM from then on."""
        await self.wait_logged(f"worker {self.worker_id} started")

    async def wait_exit(self, seconds: float = HANG) -> int:
        """Wait until the process exits and return its exit status; fail if it outlives ``seconds``."""
        process = self.process
        assert process is not None

        async def exited() -> bool:
            await trio.lowlevel.checkpoint()
            return process.poll() is not None

        await wait_until(exited, lambda: f"worker {self.worker_id} exits; its log:\n{self.log()}", seconds)
        assert process.returncode is not None
        return process.returncode


@pytest.fixture
def store(sqlite_store: SQLiteStore) -> SQLiteStore:
    """The test's own connection to ``tasks.db``, initialised, which the commands share."""
    return sqlite_store


async def statuses(store: Any, task_ids: list[int]) -> list[TaskStatus]:
    return [(await store.get(task_id)).status for task_id in task_ids]


# -- enqueue -------------------------------------------------------------------------------


def test_enqueue_prints_ids(tmp_path: Path) -> None:
    """enqueue prints the new task's id; --count N adds N copies and prints their N increasing ids."""
    assert enqueue_ids(tmp_path, "echo") == [1]
    assert enqueue_ids(tmp_path, "echo", "--count", "3", "--args", '{"n": 1}') == [2, 3, 4]
    done = run_cli(tmp_path, "status", "--store", STORE, "--json", "2", "4")
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(record["id"], record["status"], record["job"]["args"]) for record in records] == [
        (2, "queued", {"n": 1}),
        (4, "queued", {"n": 1}),
    ]


def test_enqueue_options_reach_the_record(tmp_path: Path) -> None:
    """--args, --retry, --timeout and --priority end up in the stored task."""
    [task_id] = enqueue_ids(
        tmp_path, "echo", "--args", '{"to": ["a@example.com"]}', "--retry", "2", "--timeout", "5", "--priority", "7"
    )
    [line] = run_cli(tmp_path, "status", "--store", STORE, "--json", str(task_id)).stdout.splitlines()
    record = json.loads(line)
    assert (record["handler"], record["retry"], record["priority"], record["attempts"]) == ("echo", 2, 7, 0)
    assert (record["job"]["args"], record["job"]["retry"], record["job"]["timeout"]) == (
        {"to": ["a@example.com"]},
        2,
        5.0,
    )


def test_enqueue_with_registry_refuses_an_unknown_handler(tmp_path: Path, handlers: Path) -> None:
    """With --registry, a handler the registry lacks is exit 2 naming it, and nothing is stored."""
    done = run_cli(tmp_path, "enqueue", "--store", STORE, "--registry", "handlers:registry", "nope")
    assert_user_error(done, "'nope'")
    assert done.stdout == ""
    assert enqueue_ids(tmp_path, "echo", "--registry", "handlers:registry") == [1]
    overview = json.loads(run_cli(tmp_path, "status", "--store", STORE, "--json").stdout)
    assert overview["counts"]["queued"] == 1


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param("handlers", "module:attribute", id="no-colon"),
        pytest.param("handlers:", "module:attribute", id="no-attribute"),
        pytest.param(
            "handlers:not_a_registry", "must be a workerpoolxt WorkerApp or Registry, not dict", id="not-a-registry"
        ),
        pytest.param("handlers:missing", "module 'handlers' has no attribute 'missing'", id="missing-attribute"),
        pytest.param("no_such_module:registry", "no_such_module", id="missing-module"),
    ],
)
def test_bad_registry_is_a_clear_error(tmp_path: Path, handlers: Path, spec: str, fragment: str) -> None:
    """A --registry that does not name a Registry is exit 2 with a message saying what is wrong."""
    assert_user_error(run_cli(tmp_path, "enqueue", "--store", STORE, "--registry", spec, "echo"), fragment)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        pytest.param(["--args", "not json"], "--args must be a JSON object", id="not-json"),
        pytest.param(["--args", "[1, 2]"], "`args` must be a mapping", id="json-list"),
        pytest.param(
            ["--count", "0"], "Invalid value for '--count': 0 is not in the range 1<=x<=100000", id="count-zero"
        ),
        pytest.param(["--retry", "2147483647"], "`jobs[0].retry` must be at most 2,147,483,646", id="retry-too-large"),
        pytest.param(
            ["--priority", "9223372036854775808"],
            "`priority` must be at most 9,223,372,036,854,775,807",
            id="priority-too-large",
        ),
    ],
)
async def test_enqueue_refuses_bad_arguments(
    tmp_path: Path, store: SQLiteStore, arguments: list[str], fragment: str
) -> None:
    """--args that is not a JSON object, a --count below 1 or a number out of range is exit 2, and nothing is stored."""
    assert_user_error(await arun_cli(tmp_path, "enqueue", "--store", STORE, "echo", *arguments), fragment)
    assert await store.stats() == StoreStatistics()


# -- status --------------------------------------------------------------------------------


def test_status_json_prints_counts_and_records(tmp_path: Path) -> None:
    """status --json prints the counts per status and the queue's longest wait; with ids, a line of JSON per record."""
    before = time.time()
    enqueue_ids(tmp_path, "echo", "--count", "3", "--args", '{"n": 2}')
    done = run_cli(tmp_path, "status", "--store", STORE, "--json")
    assert (done.returncode, done.stderr) == (0, "")
    overview = json.loads(done.stdout)
    assert overview["counts"] == {"queued": 3, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "dead": 0}
    assert (overview["total"], overview["running"]) == (3, [])
    oldest = datetime.datetime.fromisoformat(overview["waiting_since"]).timestamp()
    assert before - 0.001 <= oldest <= time.time()
    assert 0 <= overview["longest_wait"] < HANG
    done = run_cli(tmp_path, "status", "--store", STORE, "--json", "3", "1")
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert (first["id"], second["id"]) == (3, 1)
    assert first["handler"] == "echo"
    assert first["status"] == "queued"
    assert first["job"]["args"] == {"n": 2}
    assert (first["attempts"], first["retry"], first["worker_id"], first["result"]) == (0, 0, None, None)
    # Times are ISO 8601, in UTC; those not set yet are null.
    assert datetime.datetime.fromisoformat(first["created_at"]).utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.fromisoformat(first["run_at"]).timestamp() - oldest) < 1
    assert (first["started_at"], first["finished_at"], first["heartbeat_at"]) == (None, None, None)
    assert set(first) == {
        "id",
        "handler",
        "job",
        "status",
        "attempts",
        "retry",
        "priority",
        "created_at",
        "run_at",
        "started_at",
        "finished_at",
        "worker_id",
        "heartbeat_at",
        "result",
        "error_type",
        "error_message",
        "lost_leases",
        "progress_done",
        "progress_total",
        "queue",
        "dedup_key",
        "lock",
    }
    assert (first["queue"], first["dedup_key"], first["lock"]) == ("default", None, None)
    assert (first["progress_done"], first["progress_total"]) == (None, None)


def test_status_of_an_unknown_task(tmp_path: Path) -> None:
    """status of an id no task has is exit 2 naming the id."""
    enqueue_ids(tmp_path, "echo")
    assert_user_error(
        run_cli(tmp_path, "status", "--store", STORE, "99"), "no task with id 99 (it never existed, or was pruned)"
    )


MISSING: Final = "run `workerpoolxt schema --apply` (or init() on a store that is not read-only)"
"""How a store that a reading command cannot use says to make it."""


@pytest.mark.parametrize("task_ids", [[], ["1"]], ids=["counts", "records"])
def test_status_of_a_missing_file_creates_nothing(tmp_path: Path, task_ids: list[str]) -> None:
    """status of a SQLite file that does not exist is one line saying so and how to create it; no file appears."""
    done = run_cli(tmp_path, "status", "--store", "sqlite:///typo.db", *task_ids)
    assert_user_error(done, f"error: SQLite store typo.db: the file does not exist; {MISSING} to create it")
    assert list(tmp_path.iterdir()) == []


def test_status_of_another_database_leaves_it_untouched(tmp_path: Path) -> None:
    """status of a SQLite file that holds no store is one line saying so; the file keeps its bytes and has no schema."""
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()
    before = (tmp_path / "other.db").read_bytes()
    done = run_cli(tmp_path, "status", "--store", "sqlite:///other.db")
    assert_user_error(done, f"error: SQLite store other.db: there are no workerpoolxt tables; {MISSING} to create them")
    assert (tmp_path / "other.db").read_bytes() == before


async def test_status_of_an_old_schema_asks_for_an_upgrade(tmp_path: Path, store: SQLiteStore) -> None:
    """status of a store whose schema is older than this workerpoolxt's is one line asking for an upgrade."""
    with sqlite3.connect(store.path) as connection:
        connection.execute("DELETE FROM wpxt_schema")
    done = await arun_cli(tmp_path, "status", "--store", STORE)
    assert_user_error(done, "error: SQLite store tasks.db: its tables are at schema version 0, older than this ")
    assert done.stderr.endswith(f"; {MISSING} to upgrade them\n")


@requires_postgres
async def test_status_of_a_missing_postgres_schema_creates_nothing(tmp_path: Path) -> None:
    """status of a PostgreSQL schema that does not exist is one line naming it, and the schema is not created."""
    import psycopg

    schema = new_schema()
    separator = "&" if "?" in DSN else "?"
    done = await arun_cli(tmp_path, "status", "--store", f"{DSN}{separator}schema={schema}")
    assert_user_error(done, f" schema {schema}: there are no workerpoolxt tables; {MISSING} to create them")
    with psycopg.connect(DSN) as connection:
        assert connection.execute("SELECT to_regnamespace(%s)", (schema,)).fetchone() == (None,)


# -- store URLs --------------------------------------------------------------------------


MALFORMED_URLS: Final = [
    pytest.param("mysql://x", "unknown store URL 'mysql://x'", id="unknown-scheme"),
    pytest.param("tasks.db", "unknown store URL 'tasks.db'", id="no-scheme"),
    pytest.param("sqlite://relative.db", "sqlite:///relative/path.db", id="sqlite-netloc"),
    pytest.param("sqlite:///", "sqlite:///relative/path.db", id="sqlite-no-path"),
    pytest.param("sqlite:relative.db", "sqlite:///relative/path.db", id="sqlite-no-slashes"),
    pytest.param("postgresql://", "postgresql://user@host:port/database", id="postgresql-empty"),
    pytest.param("postgres://", "postgresql://user@host:port/database", id="postgres-empty"),
    pytest.param("postgresql://postgres@127.0.0.1/test?schema=bad-name", "`schema`", id="bad-schema"),
]


@pytest.mark.parametrize(("url", "fragment"), MALFORMED_URLS)
def test_open_store_refuses_malformed_urls(url: str, fragment: str) -> None:
    """open_store() raises a ValueError that quotes what a good URL looks like."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        open_store(url)


@pytest.mark.parametrize(("url", "fragment"), MALFORMED_URLS)
@pytest.mark.parametrize("command", ["enqueue", "status", "worker"])
def test_malformed_store_url_is_exit_2(tmp_path: Path, handlers: Path, command: str, url: str, fragment: str) -> None:
    """Every command reports a malformed --store as exit 2 with the same message, and creates no file."""
    arguments = {"enqueue": ["echo"], "status": [], "worker": ["--registry", "handlers:registry"]}[command]
    assert_user_error(run_cli(tmp_path, command, "--store", url, *arguments), fragment)
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != "__pycache__") == ["handlers.py"]


def test_open_store_refuses_a_url_that_is_not_a_str() -> None:
    """A URL that is not a str is a TypeError naming the parameter."""
    with pytest.raises(TypeError, match="`url` must be a str, not PosixPath"):
        open_store(Path("tasks.db"))  # type: ignore[arg-type]


def test_open_store_sqlite_paths() -> None:
    """sqlite:///x.db is x.db relative to the working directory; sqlite:////abs/x.db is absolute."""
    relative = open_store("sqlite:///data/tasks.db")
    absolute = open_store("sqlite:////var/lib/tasks.db")
    assert isinstance(relative, SQLiteStore)
    assert isinstance(absolute, SQLiteStore)
    assert (relative.path, absolute.path) == (Path("data/tasks.db"), Path("/var/lib/tasks.db"))


def test_open_store_postgres_schema_and_dsn() -> None:
    """A PostgreSQL URL's ?schema= picks the schema (default workerpoolxt) and is not passed on to libpq."""
    from workerpoolxt.durable import PostgresStore

    default = open_store("postgresql://postgres@127.0.0.1:5432/test")
    named = open_store("postgres://postgres@db.example:6543/jobs?schema=queue_1&connect_timeout=3")
    assert isinstance(default, PostgresStore)
    assert isinstance(named, PostgresStore)
    assert (default.schema, default.dsn) == ("workerpoolxt", "postgresql://postgres@127.0.0.1:5432/test")
    assert (named.schema, named.dsn) == ("queue_1", "postgres://postgres@db.example:6543/jobs?connect_timeout=3")
    assert named.channel == "wpxt_queue_1"


@pytest.mark.parametrize(
    ("url", "dsn", "schema"),
    [
        pytest.param("postgresql:///test", "postgresql:///test", "workerpoolxt", id="local-socket"),
        pytest.param(
            "postgresql:///test?host=/var/run/postgresql&schema=queue_1&user=postgres",
            "postgresql:///test?host=/var/run/postgresql&user=postgres",
            "queue_1",
            id="socket-directory",
        ),
        pytest.param("postgresql:///?host=/tmp", "postgresql:///?host=/tmp", "workerpoolxt", id="no-database"),
        pytest.param(
            "postgres://app@db/app?options=-c%20search_path%3Dx&schema=queue_1&sslmode=disable",
            "postgres://app@db/app?options=-c%20search_path%3Dx&sslmode=disable",
            "queue_1",
            id="kept-as-given",
        ),
        pytest.param("postgresql://db?schema=a&schema=b", "postgresql://db", "b", id="last-schema-wins"),
    ],
)
def test_open_store_keeps_the_postgres_url_as_given(url: str, dsn: str, schema: str) -> None:
    """Every URL form libpq accepts reaches it unchanged, but for the ``schema`` parameter, which picks the schema."""
    from workerpoolxt.durable import PostgresStore

    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert (store.dsn, store.schema) == (dsn, schema)


def test_open_store_passes_the_registry_on(tmp_path: Path) -> None:
    """open_store(url, registry=...) gives a store that refuses handlers the registry lacks."""
    store = open_store(f"sqlite:///{tmp_path / 'tasks.db'}", registry=Registry())
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "tasks.db"

    async def check() -> None:
        try:
            await store.init()
            with pytest.raises(UnknownHandlerError, match="'echo'"):
                await store.enqueue([Job("echo")])
        finally:
            await store.aclose()

    trio.run(check)


@pytest.mark.parametrize("command", ["enqueue", "status", "worker"])
def test_unreachable_postgres_is_exit_2(tmp_path: Path, handlers: Path, command: str) -> None:
    """A PostgreSQL server that refuses connections is exit 2 within seconds, naming its host and port."""
    arguments = {"enqueue": ["echo"], "status": [], "worker": ["--registry", "handlers:registry"]}[command]
    started = time.monotonic()
    done = run_cli(tmp_path, command, "--store", UNREACHABLE, *arguments, timeout=10.0)
    assert time.monotonic() - started < 10.0
    assert_user_error(done, "cannot connect to PostgreSQL at 127.0.0.1:1 ")


# -- a store that fails ---------------------------------------------------------------------


COMMANDS: Final = {
    "enqueue": ["echo"],
    "status": [],
    "worker": ["--registry", "handlers:registry"],
}
"""Each command, with the arguments it needs besides --store."""


@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_that_is_not_a_database_is_exit_2(tmp_path: Path, handlers: Path, command: str) -> None:
    """A --store file that is not SQLite is one line naming the file and SQLite's reason, and the file is untouched."""
    garbage = "not a database, " * 100
    (tmp_path / "notes.db").write_text(garbage)
    done = run_cli(tmp_path, command, "--store", "sqlite:///notes.db", *COMMANDS[command])
    assert_user_error(done, "error: SQLite store notes.db: file is not a database")
    assert (tmp_path / "notes.db").read_text() == garbage


@pytest.mark.parametrize("command", ["enqueue", "worker"])
def test_a_missing_directory_is_exit_2(tmp_path: Path, handlers: Path, command: str) -> None:
    """A --store in a directory that does not exist is one line naming the directory; nothing is created."""
    done = run_cli(tmp_path, command, "--store", "sqlite:///no/such/dir/x.db", *COMMANDS[command])
    assert_user_error(done, "error: SQLite store no/such/dir/x.db: its directory no/such/dir does not exist")
    assert not (tmp_path / "no").exists()


async def test_a_dropped_table_is_exit_2(tmp_path: Path, store: SQLiteStore) -> None:
    """enqueue into a store whose table was dropped is one line with SQLite's reason."""
    with sqlite3.connect(store.path) as connection:
        connection.execute("DROP TABLE wpxt_tasks")
    done = await arun_cli(tmp_path, "enqueue", "--store", STORE, "echo")
    assert_user_error(done, "error: SQLite store tasks.db: no such table: wpxt_tasks")


async def test_a_worker_whose_claims_only_fail_exits_2_after_give_up_after(
    tmp_path: Path, handlers: Path, store: SQLiteStore
) -> None:
    """A worker on a store with its table dropped logs a line per failed claim, and exits 2 after --give-up-after."""
    with sqlite3.connect(store.path) as connection:
        connection.execute("DROP TABLE wpxt_tasks")
    with WorkerProcess(tmp_path, STORE, "w1", "--poll", "0.05", "--give-up-after", "0.5") as worker:
        started = time.monotonic()
        assert await worker.wait_exit() == 2
        assert time.monotonic() - started >= 0.5
    lines = worker.log().splitlines()
    assert "Traceback" not in worker.log()
    assert lines[-1] == "error: SQLite store tasks.db: no such table: wpxt_tasks"
    failures = [line for line in lines if "could not claim tasks" in line]
    assert len(failures) >= 2
    assert all(
        line.endswith("trying again in 0.05s: SQLite store tasks.db: no such table: wpxt_tasks") for line in failures
    )
    assert [line for line in lines if "ERROR" not in line and "INFO" not in line] == [lines[-1]]


@requires_postgres
async def test_a_dropped_postgres_table_is_exit_2(tmp_path: Path) -> None:
    """enqueue into a PostgreSQL store whose table was dropped is one line naming the schema and the reason."""
    import psycopg
    from psycopg import sql

    from workerpoolxt.durable import PostgresStore

    schema = new_schema()
    separator = "&" if "?" in DSN else "?"
    store = PostgresStore(DSN, schema=schema)
    try:
        await store.init()
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, "wpxt_tasks")))
        done = await arun_cli(tmp_path, "enqueue", "--store", f"{DSN}{separator}schema={schema}", "echo")
        assert_user_error(done, f' schema {schema}: relation "{schema}.wpxt_tasks" does not exist')
    finally:
        with trio.fail_after(HANG):
            await store.aclose()
            await trio.to_thread.run_sync(drop_schema, schema)


# -- load_registry ----------------------------------------------------------------------


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A working directory and a fresh module name; sys.path and sys.modules are restored afterwards."""
    name = f"wpxt_test_handlers_{uuid.uuid4().hex}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        yield tmp_path, name
    finally:
        sys.modules.pop(name, None)


def test_load_registry_imports_from_the_working_directory(module_dir: tuple[Path, str]) -> None:
    """load_registry("module:attribute") finds the module in the working directory, as python -m does."""
    directory, name = module_dir
    (directory / f"{name}.py").write_text(HANDLERS)
    registry = load_registry(f"{name}:registry")
    assert isinstance(registry, Registry)
    assert sorted(registry) == ["echo", "exit", "sleep"]


@pytest.mark.parametrize(
    ("attribute", "error", "match"),
    [
        pytest.param(
            "not_a_registry",
            TypeError,
            r":not_a_registry must be a workerpoolxt WorkerApp or Registry, not dict",
            id="dict",
        ),
        pytest.param("missing", ValueError, r"has no attribute 'missing'", id="missing"),
        pytest.param("", ValueError, "--registry must look like module:attribute", id="empty"),
    ],
)
def test_load_registry_refuses_what_is_not_a_registry(
    module_dir: tuple[Path, str], attribute: str, error: type[Exception], match: str
) -> None:
    """An attribute that is missing or not a Registry, or a spec without one, is an error saying so."""
    directory, name = module_dir
    (directory / f"{name}.py").write_text(HANDLERS)
    with pytest.raises(error, match=match):
        load_registry(f"{name}:{attribute}")


def test_load_registry_missing_module(module_dir: tuple[Path, str]) -> None:
    """A module that is not there is a ValueError naming it, a mistake on the command line."""
    _, name = module_dir
    with pytest.raises(ValueError, match=f"no module named '{name}'"):
        load_registry(f"{name}:registry")


# -- worker --------------------------------------------------------------------------------


async def test_worker_drains_the_store_then_stops_on_sigint(tmp_path: Path, handlers: Path, store: SQLiteStore) -> None:
    """A worker runs every task enqueued before it started, then SIGINT stops it: exit 0, nothing left running."""
    done = await arun_cli(tmp_path, "enqueue", "--store", STORE, "echo", "--count", "20", "--args", '{"n": 7}')
    ids = [int(line) for line in done.stdout.splitlines()]
    assert len(ids) == 20
    with WorkerProcess(tmp_path, STORE, "w1", "--poll", "0.05", "--concurrency", "4") as worker:
        await worker.wait_started()

        async def drained() -> bool:
            return (await store.stats()).succeeded == 20

        await wait_until(drained, lambda: f"the worker runs the 20 tasks; its log:\n{worker.log()}")
        worker.send_signal(signal.SIGINT)
        assert await worker.wait_exit() == 0
    for task_id in ids:
        record = await store.get(task_id)
        assert (record.status, record.attempts, record.worker_id) == (TaskStatus.SUCCEEDED, 1, "w1")
        assert record.result == {"task_id": task_id, "args": {"n": 7}}
    assert await store.stats() == StoreStatistics(succeeded=20)
    log = worker.log()
    assert "got SIGINT: stopping" in log
    assert "Traceback" not in log
    counts = json.loads((await arun_cli(tmp_path, "status", "--store", STORE, "--json")).stdout)["counts"]
    assert counts["succeeded"] == 20


async def test_worker_with_a_retention_deletes_the_old_finished_tasks(
    tmp_path: Path, handlers: Path, store: SQLiteStore
) -> None:
    """worker --retention 1h deletes, as it starts, a task that finished two hours ago, and keeps one just finished."""
    old, recent = await store.enqueue([Job("echo"), Job("echo")])
    await store.cancel(old)
    await store.cancel(recent)
    with sqlite3.connect(store.path) as connection:
        connection.execute("UPDATE wpxt_tasks SET finished_at = ? WHERE id = ?", (time.time() - 7200, old))
    connection.close()
    with WorkerProcess(tmp_path, STORE, "w-keep", "--retention", "1h", "--poll", "0.05") as worker:
        await worker.wait_started()

        async def pruned() -> bool:
            return (await store.stats()).cancelled == 1

        await wait_until(pruned, lambda: f"the worker prunes the old task; its log:\n{worker.log()}")
        worker.send_signal(signal.SIGINT)
        assert await worker.wait_exit() == 0
    assert (await store.get(recent)).status is TaskStatus.CANCELLED
    assert "Traceback" not in worker.log()


async def wait_running(store: Any, task_id: int) -> TaskRecord:
    """Wait until the task is running, and return its record."""

    async def running() -> bool:
        record = await store.get(task_id)
        assert not record.final, record
        return bool(record.status is TaskStatus.RUNNING)

    await wait_until(running, lambda: f"task {task_id} runs")
    record: TaskRecord = await store.get(task_id)
    return record


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_signal_stops_gracefully(
    tmp_path: Path, handlers: Path, store: SQLiteStore, signum: signal.Signals
) -> None:
    """SIGINT or SIGTERM: the running task finishes and succeeds, no new task is claimed, and the exit is 0."""
    [slow] = await store.enqueue([Job("sleep", args={"seconds": 1.5})])
    with WorkerProcess(tmp_path, STORE, "w1", "--poll", "0.05", "--lease", "2", "--heartbeat", "0.5") as worker:
        await worker.wait_started()
        await wait_running(store, slow)
        signalled = time.time()
        worker.send_signal(signum)
        await worker.wait_logged(f"got {signum.name}: stopping")
        # Enqueued after the stop: a stopping worker claims nothing more.
        [later] = await store.enqueue([Job("echo")])
        assert await worker.wait_exit() == 0
    record = await store.get(slow)
    assert (record.status, record.result, record.attempts) == (TaskStatus.SUCCEEDED, "slept", 1)
    assert record.finished_at is not None
    assert record.finished_at > signalled
    untouched = await store.get(later)
    # A claim in flight when the signal came may take it and hand it straight
    # back, uncounted: on a real store that race is real.
    assert (untouched.status, untouched.attempts, untouched.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
    assert untouched.worker_id in (None, "w1")
    assert "Traceback" not in worker.log()


async def test_second_sigint_cancels_and_releases_running_tasks(
    tmp_path: Path, handlers: Path, store: SQLiteStore
) -> None:
    """A second SIGINT cancels the running tasks at once and puts them back in the queue, then exits 0."""
    ids = await store.enqueue([Job("sleep", args={"seconds": 60}) for _ in range(2)])
    with WorkerProcess(tmp_path, STORE, "w1", "--poll", "0.05", "--lease", "5", "--heartbeat", "1") as worker:
        await worker.wait_started()
        for task_id in ids:
            await wait_running(store, task_id)
        worker.send_signal(signal.SIGINT)
        await worker.wait_logged("got SIGINT: stopping")
        assert await statuses(store, ids) == [TaskStatus.RUNNING] * 2
        started = time.monotonic()
        worker.send_signal(signal.SIGINT)
        assert await worker.wait_exit(seconds=5.0) == 0
        assert time.monotonic() - started < 5.0
    for task_id in ids:
        record = await store.get(task_id)
        # The cancelled run does not count as an attempt; the task is queued for any worker.
        assert (record.status, record.attempts, record.heartbeat_at) == (TaskStatus.QUEUED, 0, None)
        assert record.finished_at is None
    log = worker.log()
    assert "got SIGINT: cancelling running tasks" in log
    assert "Traceback" not in log


async def test_a_handler_raising_system_exit_exits_the_worker_with_its_status(
    tmp_path: Path, handlers: Path, store: SQLiteStore
) -> None:
    """A handler's SystemExit(3) ends the worker process with status 3, no traceback, its attempt recorded as failed."""
    [task_id] = await store.enqueue([Job("exit", args={"code": 3}, retry=1)])
    with WorkerProcess(tmp_path, STORE, "w1", "--poll", "0.05") as worker:
        assert await worker.wait_exit() == 3
    record = await store.get(task_id)
    assert (record.status, record.attempts, record.error_type, record.error_message) == (
        TaskStatus.QUEUED,
        1,
        "SystemExit",
        "3",
    )
    log = worker.log()
    assert "Traceback" not in log
    assert "ExceptionGroup" not in log


async def test_sigint_while_idle_exits_at_once(tmp_path: Path, handlers: Path, store: SQLiteStore) -> None:
    """An idle worker with a long poll stops on SIGINT without waiting for the poll."""
    with WorkerProcess(tmp_path, STORE, "w1", "--poll", "30") as worker:
        await worker.wait_started()
        started = time.monotonic()
        worker.send_signal(signal.SIGINT)
        assert await worker.wait_exit(seconds=5.0) == 0
        assert time.monotonic() - started < 5.0


# -- PostgreSQL end to end ------------------------------------------------------------------


@requires_postgres
@pytest.mark.parametrize("form", ["environment", "query"])
async def test_postgres_url_without_a_host_reaches_the_server(tmp_path: Path, form: str) -> None:
    """postgresql:///database, the server from PGHOST and the like or from ?host=, works as libpq takes it."""
    from psycopg import conninfo

    from workerpoolxt.durable import PostgresStore

    params = conninfo.conninfo_to_dict(DSN)
    server = {"host": str(params.get("host", "")), "port": str(params.get("port", "5432"))}
    server["user"] = str(params.get("user", ""))
    schema = new_schema()
    if form == "environment":
        url, env = f"postgresql:///{params['dbname']}?schema={schema}", {f"PG{k.upper()}": v for k, v in server.items()}
    else:
        query = "&".join(f"{key}={value}" for key, value in server.items())
        url, env = f"postgresql:///{params['dbname']}?{query}&schema={schema}", {}
    store = PostgresStore(DSN, schema=schema)
    try:
        done = await trio.to_thread.run_sync(lambda: run_cli(tmp_path, "enqueue", "--store", url, "echo", env=env))
        assert (done.returncode, done.stderr, done.stdout) == (0, "", "1\n")
        assert await store.stats() == StoreStatistics(queued=1)
    finally:
        with trio.fail_after(HANG):
            await store.aclose()
            await trio.to_thread.run_sync(drop_schema, schema)


@requires_postgres
async def test_postgres_url_round_trip(tmp_path: Path, handlers: Path) -> None:
    """With a postgresql:// URL and ?schema=, enqueue, worker and status use that schema end to end."""
    from workerpoolxt.durable import PostgresStore

    schema = new_schema()
    separator = "&" if "?" in DSN else "?"
    url = f"{DSN}{separator}schema={schema}"
    store = PostgresStore(DSN, schema=schema)
    try:
        done = await arun_cli(tmp_path, "enqueue", "--store", url, "echo", "--count", "5")
        assert (done.returncode, done.stderr) == (0, "")
        ids = [int(line) for line in done.stdout.splitlines()]
        assert await store.stats() == StoreStatistics(queued=5)
        with WorkerProcess(tmp_path, url, "w1", "--poll", "0.05") as worker:
            await worker.wait_started()

            async def drained() -> bool:
                return (await store.stats()).succeeded == 5

            await wait_until(drained, lambda: f"the worker runs the 5 tasks; its log:\n{worker.log()}")
            worker.send_signal(signal.SIGINT)
            assert await worker.wait_exit() == 0
        counts = json.loads((await arun_cli(tmp_path, "status", "--store", url, "--json")).stdout)["counts"]
        assert counts == {"queued": 0, "running": 0, "succeeded": 5, "failed": 0, "cancelled": 0, "dead": 0}
        done = await arun_cli(tmp_path, "status", "--store", url, "--json", str(ids[0]))
        record = json.loads(done.stdout)
        assert (record["status"], record["worker_id"], record["result"]) == (
            "succeeded",
            "w1",
            {"task_id": ids[0], "args": {}},
        )
    finally:
        with trio.fail_after(HANG):
            await store.aclose()
            await trio.to_thread.run_sync(drop_schema, schema)


# -- the command itself: installed, --version, help, environment, one error format -------


def test_the_installed_command_prints_its_version(tmp_path: Path) -> None:
    """Installing the package gives a ``workerpoolxt`` command; --version prints the installed version."""
    import importlib.metadata

    done = subprocess.run(
        [INSTALLED, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=HANG, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"workerpoolxt {importlib.metadata.version('workerpoolxt')}\n"


def test_help_lists_every_command(tmp_path: Path) -> None:
    """--help names each command with its one-line summary."""
    done = run_cli(tmp_path, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: python -m workerpoolxt [OPTIONS] COMMAND [ARGS]...")
    commands = done.stdout.split("Commands:")[1]
    names = [line.split()[0] for line in commands.splitlines() if line.strip()]
    assert sorted(names) == ["cancel", "enqueue", "healthcheck", "list", "prune", "retry", "schema", "status", "worker"]


def test_every_option_has_help_text() -> None:
    """Each option of each command says what it does; the worker's help shows the defaults and the variables."""
    import click

    from workerpoolxt.durable._commands import cli

    assert isinstance(cli, click.Group)
    for name, command in cli.commands.items():
        assert command.help, name
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                assert parameter.help, f"{name} {parameter.opts}"


def test_worker_help_shows_defaults_and_environment(tmp_path: Path) -> None:
    """worker --help shows each default and that --store and --app come from WPXT_STORE and WPXT_APP."""
    done = run_cli(tmp_path, "worker", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # click wraps long lines
    for shown in (
        "[default: 30.0; x>0]",
        "[default: 8]",
        "[default: fifo]",
        "[default: no limit]",
        "[env var: WPXT_STORE; required]",
        "[env var: WPXT_APP; required]",
        "--log-format [text|json]",
    ):
        assert shown in text


def test_store_and_app_come_from_the_environment(tmp_path: Path, handlers: Path) -> None:
    """WPXT_STORE stands in for --store and WPXT_APP for --app, on every command that takes them."""
    env = {"WPXT_STORE": STORE, "WPXT_APP": "handlers:registry"}
    done = run_cli(tmp_path, "enqueue", "echo", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")
    assert_user_error(run_cli(tmp_path, "enqueue", "nope", env=env), "'nope'")
    overview = json.loads(run_cli(tmp_path, "status", "--json", env=env).stdout)
    assert overview["counts"]["queued"] == 1


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        pytest.param(["status"], "Missing option '--store'", id="missing-option"),
        pytest.param(["status", "--store", STORE, "x"], "'x' is not a valid integer", id="bad-argument"),
        pytest.param(
            ["list", "--store", STORE, "--limit", "0"], "0 is not in the range 1<=x<=100000", id="out-of-range"
        ),
        pytest.param(["nope"], "No such command 'nope'", id="unknown-command"),
        pytest.param(["retry", "--store", STORE], "name the tasks to retry, or give --all-dead", id="retry-nothing"),
        pytest.param(["enqueue", "--store", STORE, "echo", "--in", "5", "--at", "2030-01-01"], "not both", id="in-at"),
        pytest.param(["enqueue", "--store", STORE, "echo", "--at", "soon"], "--at must be an ISO 8601 time", id="at"),
        pytest.param(["prune", "--store", STORE], "Missing option '--older-than'", id="prune-no-bound"),
        pytest.param(
            ["prune", "--store", STORE, "--older-than", "7w"],
            "Invalid value for '--older-than': '7w' is not a duration: give seconds, or a number and s, m, h or d",
            id="prune-unit",
        ),
        pytest.param(
            ["prune", "--store", STORE, "--older-than", "-1d"], "'-1d' is not a duration", id="prune-negative"
        ),
        pytest.param(
            ["prune", "--store", STORE, "--older-than", "1d", "--batch", "0"],
            "0 is not in the range 1<=x<=100000",
            id="prune-batch",
        ),
        pytest.param(
            ["worker", "--store", STORE, "--app", "handlers:registry", "--retention", "0"],
            "Invalid value for '--retention': '0' must be more than zero",
            id="retention-zero",
        ),
    ],
)
def test_a_mistake_on_the_command_line_is_one_line(tmp_path: Path, arguments: list[str], fragment: str) -> None:
    """click's own errors come out in the command's one format: one line, exit 2, and where to find help."""
    done = run_cli(tmp_path, *arguments)
    assert_user_error(done, fragment)


def test_an_error_in_the_users_module_keeps_its_traceback(tmp_path: Path) -> None:
    """An error raised while importing the user's module shows its traceback, with the file and line, then one line."""
    (tmp_path / "broken.py").write_text("import workerpoolxt\n\nregistry = workerpoolxt.Registry()\nint('ten')\n")
    done = run_cli(tmp_path, "worker", "--store", STORE, "--app", "broken:registry")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert f'File "{tmp_path / "broken.py"}", line 4, in <module>' in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last == (
        "error: importing broken:registry raised ValueError: invalid literal for int() with base 10: 'ten'"
        " (traceback above)"
    )
    assert not (tmp_path / "tasks.db").exists()


def test_a_missing_import_inside_the_users_module_keeps_its_traceback(tmp_path: Path) -> None:
    """A module the user's module imports, missing, is their code's error (a traceback), not a missing --app module."""
    (tmp_path / "needs.py").write_text("import no_such_dependency_x\n")
    done = run_cli(tmp_path, "worker", "--store", STORE, "--app", "needs:registry")
    assert done.returncode == 1
    assert f'File "{tmp_path / "needs.py"}", line 1' in done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: importing needs:registry raised ModuleNotFoundError")


# -- status, list, retry, cancel, schema: on SQLite and on PostgreSQL ----------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    """A store's URL, for the commands (run in ``tmp_path``), and the test's own connection to it, initialised."""
    if request.param == "sqlite":
        store: Any = SQLiteStore(tmp_path / "tasks.db")
        url, schema = STORE, None
    else:
        from workerpoolxt.durable import PostgresStore

        schema = new_schema()
        url = f"{DSN}{'&' if '?' in DSN else '?'}schema={schema}"
        store = PostgresStore(DSN, schema=schema)
    try:
        await store.init()
        yield url, store
    finally:
        with trio.fail_after(HANG):
            await store.aclose()
            if schema is not None:
                await trio.to_thread.run_sync(drop_schema, schema)


async def make_dead(store: Any, error: str = "boom") -> int:
    """Enqueue a task with no retry, claim it and fail its only attempt: the task is dead. Return its id."""
    [task_id] = await store.enqueue([Job("echo")])
    [record] = await store.claim("w-test", 1, order=Order.LIFO)  # this one, not those queued before it
    assert record.id == task_id
    await store.fail(task_id, ValueError(error), worker_id="w-test")
    assert (await store.get(task_id)).status is TaskStatus.DEAD
    return task_id


async def test_status_table_shows_counts_oldest_and_running(any_store: tuple[str, Any], tmp_path: Path) -> None:
    """status prints a table: a line per status, the queue's longest wait, the counts by queue, and each running
    task with its queue and progress."""
    url, store = any_store
    [running_id] = await store.enqueue([Job("echo")], priority=5)
    await store.enqueue([Job("echo"), Job("echo", queue="reports")], queue="mail")
    [claimed] = await store.claim("w-table", 1, order=Order.PRIORITY)
    assert claimed.id == running_id
    await store.record_progress({running_id: Progress(3, 10)}, worker_id="w-table")
    done = await arun_cli(tmp_path, "status", "--store", url)
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"queued +2   longest waiting \d+\.\ds \(since \d{4}-\d\d-\d\dT[\d:.]+\+00:00\)", lines[0])
    assert [line.split() for line in lines[1:7]] == [
        ["running", "1"],
        ["succeeded", "0"],
        ["failed", "0"],
        ["cancelled", "0"],
        ["dead", "0"],
        ["total", "3"],
    ]
    assert lines[7:9] == ["", "by queue:"]
    assert [line.split() for line in lines[9:13]] == [
        ["QUEUE", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "DEAD", "TOTAL"],
        ["default", "0", "1", "0", "0", "0", "0", "1"],
        ["mail", "1", "0", "0", "0", "0", "0", "1"],
        ["reports", "1", "0", "0", "0", "0", "0", "1"],
    ]
    assert lines[13:15] == ["", "running:"]
    assert lines[15].split() == ["ID", "HANDLER", "QUEUE", "WORKER", "ELAPSED", "ATTEMPT", "PROGRESS"]
    row = lines[16].split()
    assert (row[0], row[1], row[2], row[3], row[5], row[6:]) == (
        str(running_id),
        "echo",
        "default",
        "w-table",
        "1/1",
        ["3/10", "(30%)"],
    )
    assert re.fullmatch(r"\d+\.\ds", row[4])
    assert len(lines) == 17


async def test_list_filters_by_status_newest_first(any_store: tuple[str, Any], tmp_path: Path) -> None:
    """list --status dead --limit N shows the newest N dead tasks with their last error; --json gives JSON lines."""
    url, store = any_store
    first = await make_dead(store, "first")
    await store.enqueue([Job("echo")])
    second = await make_dead(store, "second")
    done = await arun_cli(tmp_path, "list", "--store", url, "--status", "dead")
    assert (done.returncode, done.stderr) == (0, "")
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "HANDLER", "QUEUE", "ATTEMPTS", "CREATED", "WORKER", "PROGRESS", "ERROR"]
    assert [row.split()[:5] for row in rows] == [
        [str(second), "dead", "echo", "default", "1/1"],
        [str(first), "dead", "echo", "default", "1/1"],
    ]
    assert re.search(r"  w-test +ValueError: second$", rows[0])  # no progress reported: that column is empty
    done = await arun_cli(tmp_path, "list", "--store", url, "--status", "dead", "--limit", "1", "--json")
    [line] = done.stdout.splitlines()
    record = json.loads(line)
    assert (record["id"], record["status"], record["error_type"], record["error_message"]) == (
        second,
        "dead",
        "ValueError",
        "second",
    )
    everything = await arun_cli(tmp_path, "list", "--store", url, "--json")
    assert [json.loads(line)["id"] for line in everything.stdout.splitlines()] == [second, second - 1, first]


async def test_retry_requeues_dead_tasks_with_a_fresh_budget(any_store: tuple[str, Any], tmp_path: Path) -> None:
    """retry ID puts a dead task back in the queue with no attempts used; --all-dead does so for every dead task."""
    url, store = any_store
    first, second, third = [await make_dead(store) for _ in range(3)]
    done = await arun_cli(tmp_path, "retry", "--store", url, str(second))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{second}\n", "")
    record = await store.get(second)
    assert (record.status, record.attempts, record.error_type, record.worker_id) == (TaskStatus.QUEUED, 0, None, None)
    done = await arun_cli(tmp_path, "retry", "--store", url, "--all-dead")
    assert (done.returncode, done.stdout) == (0, f"{first}\n{third}\n")
    assert await statuses(store, [first, second, third]) == [TaskStatus.QUEUED] * 3


async def test_retry_of_a_task_that_is_not_final_changes_nothing(any_store: tuple[str, Any], tmp_path: Path) -> None:
    """retry naming a queued task or no task is one line naming it, and the dead task named beside it stays dead."""
    url, store = any_store
    dead = await make_dead(store)
    [queued] = await store.enqueue([Job("echo")])
    assert_user_error(await arun_cli(tmp_path, "retry", "--store", url, str(dead), str(queued)), f"task {queued}")
    assert_user_error(
        await arun_cli(tmp_path, "retry", "--store", url, str(dead), "999"),
        "no task with id 999 (it never existed, or was pruned)",
    )
    assert await statuses(store, [dead, queued]) == [TaskStatus.DEAD, TaskStatus.QUEUED]


async def test_cancel_cancels_queued_tasks(any_store: tuple[str, Any], tmp_path: Path) -> None:
    """cancel ID... cancels each queued task and prints its id; a task already final is one line naming it."""
    url, store = any_store
    first, second = await store.enqueue([Job("echo"), Job("echo")])
    done = await arun_cli(tmp_path, "cancel", "--store", url, str(first), str(second))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{first}\n{second}\n", "")
    assert await statuses(store, [first, second]) == [TaskStatus.CANCELLED] * 2
    assert_user_error(await arun_cli(tmp_path, "cancel", "--store", url, str(first)), f"task {first}")


async def test_prune_deletes_the_tasks_finished_before_the_bound_in_batches(
    any_store: tuple[str, Any], tmp_path: Path
) -> None:
    """prune --older-than 1h keeps tasks that just finished; --older-than 0 --batch 2 deletes all five, in three
    batches, and prints how many; the queued task stays."""
    url, store = any_store
    dead = [await make_dead(store) for _ in range(3)]
    [queued, *cancelled] = await store.enqueue([Job("echo")] * 3)
    for task_id in cancelled:
        await store.cancel(task_id)
    done = await arun_cli(tmp_path, "prune", "--store", url, "--older-than", "1h")
    assert (done.returncode, done.stdout, done.stderr) == (0, "deleted 0 finished tasks\n", "")
    await trio.sleep(0.01)  # the last task finished before the command's "now", on any clock
    done = await arun_cli(tmp_path, "prune", "--store", url, "--older-than", "0", "--batch", "2")
    assert (done.returncode, done.stdout, done.stderr) == (0, "deleted 5 finished tasks\n", "")
    assert await store.stats() == StoreStatistics(queued=1)
    assert (await store.get(queued)).status is TaskStatus.QUEUED
    assert_user_error(await arun_cli(tmp_path, "status", "--store", url, str(dead[0])), "or was pruned")
    done = await arun_cli(tmp_path, "prune", "--store", url, "--older-than", "0")
    assert (done.returncode, done.stdout) == (0, "deleted 0 finished tasks\n")


def test_list_of_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    """list, like status, reads only: on a SQLite file that does not exist it fails and creates nothing."""
    assert_user_error(run_cli(tmp_path, "list", "--store", "sqlite:///typo.db"), "the file does not exist")
    assert list(tmp_path.iterdir()) == []


def test_schema_prints_sql_that_makes_a_working_store(tmp_path: Path) -> None:
    """schema prints the SQLite DDL without creating the file; applied by hand, it gives a store the commands use."""
    done = run_cli(tmp_path, "schema", "--store", "sqlite:///fresh.db")
    assert (done.returncode, done.stderr) == (0, "")
    assert "CREATE TABLE" in done.stdout
    assert not (tmp_path / "fresh.db").exists()
    with sqlite3.connect(tmp_path / "by_hand.db") as connection:
        connection.executescript(done.stdout)
    connection.close()
    assert enqueue_ids(tmp_path, "echo", store="sqlite:///by_hand.db") == [1]
    overview = json.loads(run_cli(tmp_path, "status", "--store", "sqlite:///by_hand.db", "--json").stdout)
    assert overview["counts"]["queued"] == 1


def test_schema_apply_creates_the_store(tmp_path: Path) -> None:
    """schema --apply creates the store's tables; status can read it afterwards."""
    done = run_cli(tmp_path, "schema", "--store", "sqlite:///made.db", "--apply")
    assert (done.returncode, done.stdout, done.stderr) == (0, "the store at sqlite:///made.db is ready\n", "")
    overview = json.loads(run_cli(tmp_path, "status", "--store", "sqlite:///made.db", "--json").stdout)
    assert overview["total"] == 0


@requires_postgres
async def test_schema_prints_postgres_sql_for_its_schema(tmp_path: Path) -> None:
    """On PostgreSQL, schema prints SQL naming the URL's schema, and creates nothing."""
    import psycopg

    schema = new_schema()
    done = await arun_cli(tmp_path, "schema", "--store", f"{DSN}{'&' if '?' in DSN else '?'}schema={schema}")
    assert (done.returncode, done.stderr) == (0, "")
    assert "CREATE TABLE" in done.stdout
    assert schema in done.stdout
    with psycopg.connect(DSN) as connection:
        assert connection.execute("SELECT to_regnamespace(%s)", (schema,)).fetchone() == (None,)


def test_healthcheck_without_a_worker_exits_1(tmp_path: Path) -> None:
    """healthcheck where nothing listens exits 1 with one line saying it got no answer."""
    done = run_cli(tmp_path, "healthcheck", "--port", "1")
    assert done.returncode == 1
    assert done.stderr.startswith("not ready: no answer from http://127.0.0.1:1/ready")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "command", [["retry", "1"], ["retry", "--all-dead"], ["cancel", "1"], ["prune", "--older-than", "7d"]]
)
def test_changing_a_missing_store_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    """retry, cancel and prune on a SQLite file that does not exist fail in one line, and create no file."""
    assert_user_error(run_cli(tmp_path, command[0], "--store", "sqlite:///typo.db", *command[1:]), "does not exist")
    assert list(tmp_path.iterdir()) == []


# -- a worker process run through the installed command, as a deployment runs it ----------


APP: Final = '''\
"""A worker app for the tests of the installed command: handlers that succeed, fail, retry and sleep."""

import logging

import trio

import workerpoolxt as wpxt
from workerpoolxt.durable import WorkerApp
from workerpoolxt.observe import PrometheusMetrics

registry = wpxt.Registry()
QUICK = wpxt.Backoff(initial=0.01, jitter=0)


@registry.register("ok")
async def ok(options):
    return "done"


@registry.register("boom")
async def boom(options):
    raise ValueError("boom")


@registry.register("flaky")
async def flaky(options):
    if wpxt.current_job().attempt == 1:
        raise ValueError("first try")
    return "second try"


@registry.register("sleep")
async def sleep(options):
    # Said once the handler runs: a task the store shows running may not have started yet.
    logging.getLogger("service").info("task %d sleeps", wpxt.current_job().task_id)
    await trio.sleep(wpxt.current_job().args["seconds"])
    return "slept"


app = WorkerApp(registry, backoff=QUICK, metrics=PrometheusMetrics())
quick_stop = WorkerApp(registry, backoff=QUICK, shutdown_timeout=0.2)
plain = WorkerApp(registry, backoff=QUICK)
'''


@pytest.fixture
def app_module(tmp_path: Path) -> Path:
    """``service.py`` in the working directory of the commands, defining WorkerApps."""
    path = tmp_path / "service.py"
    path.write_text(APP)
    return path


# The outcome lines of the worker run below, as regular expressions: one line per outcome.
OUTCOMES: Final = [
    ("INFO", r"task 1 ok succeeded in \d+\.\d{3}s \(attempt 1/1\)"),
    ("WARNING", r"task 2 boom failed attempt 1/2, retrying in 0\.01s: ValueError: boom"),
    ("WARNING", r"task 2 boom dead after 2/2 attempts: ValueError: boom"),
    ("WARNING", r"task 3 flaky failed attempt 1/2, retrying in 0\.01s: ValueError: first try"),
    ("INFO", r"task 3 flaky succeeded in \d+\.\d{3}s \(attempt 2/2\)"),
]


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_installed_worker_logs_one_line_per_outcome(
    any_store: tuple[str, Any], tmp_path: Path, app_module: Path, log_format: str
) -> None:
    """A worker run by the installed command logs each success, retry and death on one line, as text or as JSON."""
    url, store = any_store
    await store.enqueue([Job("ok"), Job("boom", retry=1), Job("flaky", retry=1)])
    with WorkerProcess(
        tmp_path, url, "w1", "--burst", "--poll", "0.05", "--log-format", log_format, app="service:app", installed=True
    ) as worker:
        assert await worker.wait_exit() == 0
    assert await statuses(store, [1, 2, 3]) == [TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.SUCCEEDED]
    if log_format == "text":
        lines = [line for line in worker.log().splitlines() if " workerpoolxt.durable: task " in line]
        found = [(line.split()[2], line.split("workerpoolxt.durable: ", 1)[1]) for line in lines]
    else:
        records = [json.loads(line) for line in worker.log().splitlines()]
        outcomes = [record for record in records if record["logger"] == "workerpoolxt.durable"]
        found = [(record["level"], record["message"]) for record in outcomes]
        by_id = {(record["task_id"], record["attempt"], record["status"]): record for record in outcomes}
        dead = by_id[(2, 2, "dead")]
        assert (dead["handler"], dead["max_attempts"], dead["worker_id"], dead["error"]) == (
            "boom",
            2,
            "w1",
            "ValueError: boom",
        )
        assert by_id[(1, 1, "succeeded")]["duration"] >= 0
        assert all(datetime.datetime.fromisoformat(record["time"]) for record in records)
    # Tasks run side by side: compare each task's lines in the order they came.
    for task in ("1", "2", "3"):
        expected = [(level, pattern) for level, pattern in OUTCOMES if pattern.startswith(f"task {task} ")]
        got = [(level, message) for level, message in found if message.startswith(f"task {task} ")]
        assert len(got) == len(expected), worker.log()
        for (level, pattern), (got_level, message) in zip(expected, got, strict=True):
            assert got_level == level
            assert re.fullmatch(pattern, message), message
    assert "Traceback" not in worker.log()


async def test_sigterm_waits_for_the_running_task_and_says_so(
    any_store: tuple[str, Any], tmp_path: Path, app_module: Path
) -> None:
    """SIGTERM while a task runs logs that the worker waits for it; the task finishes and the worker exits 0."""
    url, store = any_store
    [task_id] = await store.enqueue([Job("sleep", args={"seconds": 1.0})])
    with WorkerProcess(tmp_path, url, "w1", "--poll", "0.05", app="service:plain", installed=True) as worker:
        await worker.wait_started()
        await worker.wait_logged(f"task {task_id} sleeps")
        worker.send_signal(signal.SIGTERM)
        await worker.wait_logged("got SIGTERM: stopping, waiting for 1 running task; signal again to cancel it")
        assert await worker.wait_exit() == 0
    assert await statuses(store, [task_id]) == [TaskStatus.SUCCEEDED]
    assert f"task {task_id} sleep succeeded in " in worker.log()


@pytest.mark.parametrize(
    ("app", "options"),
    [
        pytest.param("service:quick_stop", [], id="the-apps"),
        pytest.param("service:plain", ["--shutdown-timeout", "0.2"], id="flag"),
    ],
)
async def test_the_shutdown_timeout_cancels_and_releases_the_running_task(
    any_store: tuple[str, Any], tmp_path: Path, app_module: Path, app: str, options: list[str]
) -> None:
    """Past the app's shutdown_timeout (or --shutdown-timeout), a stop cancels the running task and hands it back."""
    url, store = any_store
    [task_id] = await store.enqueue([Job("sleep", args={"seconds": 60})])
    with WorkerProcess(tmp_path, url, "w1", "--poll", "0.05", *options, app=app, installed=True) as worker:
        await worker.wait_started()
        await worker.wait_logged(f"task {task_id} sleeps")
        stopped = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert await worker.wait_exit() == 0
        assert 0.2 <= time.monotonic() - stopped < HANG
    record = await store.get(task_id)
    assert (record.status, record.attempts) == (TaskStatus.QUEUED, 0)
    log = worker.log()
    assert "1 task(s) still running 0.2s after the stop; cancelling them" in log
    assert f"task {task_id} sleep released to the queue, attempt 1/1 not counted" in log


async def _is(store: Any, task_id: int, status: TaskStatus) -> bool:
    return bool((await store.get(task_id)).status is status)


async def test_metrics_and_readiness_over_http(tmp_path: Path, app_module: Path, store: SQLiteStore) -> None:
    """--metrics-port serves the app's Prometheus metrics and --health-port /ready; healthcheck exits 0, then 1."""
    metrics_port, health_port = free_port(), free_port()
    [task_id] = await store.enqueue([Job("ok")])
    with WorkerProcess(
        tmp_path,
        STORE,
        "w1",
        "--poll",
        "0.05",
        "--metrics-port",
        str(metrics_port),
        "--health-port",
        str(health_port),
        app="service:app",
        installed=True,
    ) as worker:
        await worker.wait_started()
        await wait_until(lambda: _is(store, task_id, TaskStatus.SUCCEEDED), worker.log)
        status_code, body = await trio.to_thread.run_sync(fetch, f"http://127.0.0.1:{metrics_port}/metrics")
        assert status_code == 200
        assert 'workerpoolxt_durable_tasks_total{handler="ok",outcome="succeeded"} 1.0' in body
        status_code, body = await trio.to_thread.run_sync(fetch, f"http://127.0.0.1:{health_port}/ready")
        assert (status_code, json.loads(body)) == (
            200,
            {"healthy": True, "reasons": [], "running": 0, "worker_id": "w1"},
        )
        done = await trio.to_thread.run_sync(lambda: run_cli(tmp_path, "healthcheck", "--port", str(health_port)))
        assert (done.returncode, done.stdout) == (0, f"ready: http://127.0.0.1:{health_port}/ready\n")
        # A store that fails every claim makes the worker unready, and the probe says why.
        with sqlite3.connect(store.path) as connection:
            connection.execute("DROP TABLE wpxt_tasks")
        connection.close()

        async def unready() -> bool:
            return (await trio.to_thread.run_sync(fetch, f"http://127.0.0.1:{health_port}/ready"))[0] == 503

        await wait_until(unready, worker.log)
        done = await trio.to_thread.run_sync(lambda: run_cli(tmp_path, "healthcheck", "--port", str(health_port)))
        assert done.returncode == 1
        assert done.stderr.startswith(f"not ready: http://127.0.0.1:{health_port}/ready answered 503: ")
        assert "no such table: wpxt_tasks" in done.stderr
        worker.send_signal(signal.SIGTERM)
        assert await worker.wait_exit() == 0


def test_metrics_port_needs_the_apps_metrics(tmp_path: Path, app_module: Path) -> None:
    """--metrics-port for an app without metrics is one line saying how to give it some."""
    done = run_cli(tmp_path, "worker", "--store", STORE, "--app", "service:plain", "--metrics-port", "9999")
    assert_user_error(done, "--metrics-port serves the app's metrics, and service:plain has none")
    assert not (tmp_path / "tasks.db").exists()


async def test_burst_drains_the_queue_and_exits(tmp_path: Path, app_module: Path, store: SQLiteStore) -> None:
    """--burst runs what is queued, retries included, then exits 0 by itself; a task deferred for later stays queued."""
    ids = await store.enqueue([Job("ok"), Job("flaky", retry=1)])
    [later] = await store.enqueue([Job("ok")], run_at=time.time() + 3600)
    with WorkerProcess(tmp_path, STORE, "w1", "--burst", "--poll", "0.05", app="service:plain") as worker:
        assert await worker.wait_exit() == 0
    assert await statuses(store, [*ids, later]) == [TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED, TaskStatus.QUEUED]


@pytest.mark.parametrize("command", ["status", "cancel", "retry"])
async def test_a_task_id_beyond_what_a_store_holds_is_one_line(
    tmp_path: Path, store: SQLiteStore, command: str
) -> None:
    """An id past 64 bits is refused on the command line, in one line, before it reaches the store."""
    done = await arun_cli(tmp_path, command, "--store", STORE, str(2**63))
    assert_user_error(done, f"{2**63} is not in the range 1<=x<=9223372036854775807")


def test_schema_apply_does_not_print_the_password(tmp_path: Path) -> None:
    """schema --apply names the store it made ready with any password in its URL starred out."""
    from workerpoolxt.durable._commands import _without_password

    assert (
        _without_password("postgresql://app:s3cret@db:5432/jobs?schema=q")
        == "postgresql://app:***@db:5432/jobs?schema=q"
    )
    assert _without_password("postgresql://app@db/jobs") == "postgresql://app@db/jobs"
    assert _without_password("sqlite:///tasks.db") == "sqlite:///tasks.db"


async def test_retry_waits_a_lease_for_a_task_cancelled_under_its_worker(tmp_path: Path, store: SQLiteStore) -> None:
    """retry of a task cancelled while a worker ran it is refused until --lease seconds after the cancel."""
    [task_id] = await store.enqueue([Job("echo")])
    await store.claim("w-test", 1)
    await store.cancel(task_id)
    done = await arun_cli(tmp_path, "retry", "--store", STORE, str(task_id))
    assert_user_error(
        done, f"task {task_id} cannot be retried: it is cancelled, and its worker may still be running it"
    )
    assert "the lease (30s)" in done.stderr
    await trio.sleep(0.2)
    done = await arun_cli(tmp_path, "retry", "--store", STORE, "--lease", "0.1", str(task_id))
    assert (done.returncode, done.stdout) == (0, f"{task_id}\n")


def test_an_error_in_the_apps_lifespan_keeps_its_traceback(tmp_path: Path) -> None:
    """A lifespan that raises as it enters (a bad setting, say) is the user's code: its traceback, then one line."""
    (tmp_path / "configured.py").write_text(
        "import contextlib\n"
        "import workerpoolxt\n"
        "from workerpoolxt.durable import WorkerApp\n"
        "\n"
        "@contextlib.asynccontextmanager\n"
        "async def lifespan(app):\n"
        "    port = int('abc')\n"
        "    yield port\n"
        "\n"
        "app = WorkerApp(workerpoolxt.Registry(), lifespan=lifespan)\n"
    )
    done = run_cli(tmp_path, "worker", "--store", STORE, "--app", "configured:app", "--burst")
    assert done.returncode == 1
    assert f'File "{tmp_path / "configured.py"}", line 7, in lifespan' in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "error: the lifespan of configured:app raised ValueError: invalid literal for int() with base 10: 'abc'"
        " (traceback above)"
    )
