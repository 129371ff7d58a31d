"""Tests for the exception classes: their hierarchy, fields and messages."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import trio
import trio.testing

import workerpoolxt as wpxt
import workerpoolxt.durable
import workerpoolxt.supervise

ALL_ERRORS = [
    wpxt.PoolClosedError,
    wpxt.QueueFullError,
    wpxt.JobTimeoutError,
    wpxt.JobCancelledError,
    wpxt.JobAbandonedError,
]


def test_base_is_an_exception() -> None:
    """WorkerPoolError is an ordinary Exception, so `except Exception` catches it."""
    assert issubclass(wpxt.WorkerPoolError, Exception)
    assert not issubclass(wpxt.WorkerPoolError, (RuntimeError, TimeoutError))


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_every_error_subclasses_worker_pool_error(cls: type[Exception]) -> None:
    """Every error the package defines subclasses WorkerPoolError."""
    assert issubclass(cls, wpxt.WorkerPoolError)


def test_pool_closed_error_is_runtime_error() -> None:
    """PoolClosedError is also a RuntimeError."""
    assert issubclass(wpxt.PoolClosedError, RuntimeError)
    with pytest.raises(RuntimeError, match="stopped"):
        raise wpxt.PoolClosedError("the pool is stopped")


def test_queue_full_error_is_runtime_error() -> None:
    """QueueFullError is also a RuntimeError."""
    assert issubclass(wpxt.QueueFullError, RuntimeError)


def test_job_timeout_error_fields() -> None:
    """JobTimeoutError is a TimeoutError carrying the job name and deadline, named in its message."""
    error = wpxt.JobTimeoutError(name="slow job", deadline=2.5)
    assert isinstance(error, TimeoutError)
    assert isinstance(error, wpxt.WorkerPoolError)
    assert error.name == "slow job"
    assert error.deadline == 2.5
    assert "slow job" in str(error)


def test_job_cancelled_error_fields() -> None:
    """JobCancelledError carries the job name and the reason, both in its message."""
    error = wpxt.JobCancelledError(name="my job", reason="its handle was cancelled")
    assert error.name == "my job"
    assert error.reason == "its handle was cancelled"
    assert "my job" in str(error)
    assert "its handle was cancelled" in str(error)


def test_job_abandoned_error_fields() -> None:
    """JobAbandonedError carries the job name, named in its message."""
    error = wpxt.JobAbandonedError(name="queued job")
    assert error.name == "queued job"
    assert "queued job" in str(error)


def test_job_timeout_error_caught_as_timeout_error() -> None:
    """`except TimeoutError` catches a JobTimeoutError."""
    with pytest.raises(TimeoutError) as excinfo:
        raise wpxt.JobTimeoutError(name="job", deadline=1.0)
    assert isinstance(excinfo.value, wpxt.JobTimeoutError)


@pytest.mark.parametrize(
    "error",
    [
        wpxt.JobTimeoutError(name="job", deadline=1.5),
        wpxt.JobCancelledError(name="job", reason="asked to"),
        wpxt.JobAbandonedError(name="job"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_job_errors_survive_pickle_and_copy(error: wpxt.WorkerPoolError) -> None:
    """A Result's error can be pickled and copied like a builtin exception, keeping its message and fields."""
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert vars(clone) == vars(error)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(
            wpxt.durable.StoreError("SQLite store tasks.db", "database is locked"),
            "SQLite store tasks.db: database is locked",
            id="StoreError",
        ),
        pytest.param(
            wpxt.durable.PostgresConnectionError("db.example", "5432", "connection refused"),
            "cannot connect to PostgreSQL at db.example:5432 (is the server running, and are the DSN's host, port, "
            "database and credentials right?): connection refused",
            id="PostgresConnectionError",
        ),
    ],
)
def test_store_errors_survive_pickle_and_copy(error: wpxt.durable.StoreError, message: str) -> None:
    """A store's error can be pickled and copied, keeping its one-line message and its fields."""
    assert str(error) == message
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert str(clone) == message
        assert vars(clone) == vars(error)


@pytest.mark.parametrize(
    ("error", "builtin", "message"),
    [
        pytest.param(
            wpxt.supervise.ServiceExistsError("feed"),
            ValueError,
            "a service named 'feed' is already registered; pass another with add(service, name=...)",
            id="ServiceExistsError",
        ),
        pytest.param(
            wpxt.supervise.ServiceNotFoundError("feed"),
            LookupError,
            "no service named 'feed' is registered",
            id="ServiceNotFoundError",
        ),
        pytest.param(
            wpxt.supervise.SupervisorClosedError("cannot add service 'feed': the supervisor is stopping or stopped"),
            RuntimeError,
            "cannot add service 'feed': the supervisor is stopping or stopped",
            id="SupervisorClosedError",
        ),
    ],
)
def test_supervisor_errors(error: wpxt.WorkerPoolError, builtin: type[Exception], message: str) -> None:
    """A supervisor's errors are WorkerPoolErrors and the builtin they mean, and survive pickle and copy."""
    assert isinstance(error, wpxt.WorkerPoolError)
    assert isinstance(error, builtin)
    assert str(error) == message
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert str(clone) == message
        assert vars(clone) == vars(error)


async def test_errors_in_results_name_their_job(autojump_clock: trio.testing.MockClock) -> None:
    """The errors a pool reports carry the job's name for every kind of ending."""

    async def slow(options: Any) -> None:
        await trio.sleep(10)

    async with wpxt.WorkerPool(1) as pool:
        timed_out = pool.submit(wpxt.Job(slow, name="times out", timeout=1))
        pool.submit(wpxt.Job(slow, name="blocks the worker"))
        cancelled = pool.submit(wpxt.Job(slow, name="is cancelled"))
        abandoned = pool.submit(wpxt.Job(slow, name="is abandoned"))
        await trio.sleep(2)
        cancelled.cancel()
        await pool.stop()
    expected = [
        (timed_out, wpxt.JobTimeoutError, "times out"),
        (cancelled, wpxt.JobCancelledError, "is cancelled"),
        (abandoned, wpxt.JobAbandonedError, "is abandoned"),
    ]
    for handle, cls, name in expected:
        assert handle.result is not None
        error = handle.result.error
        assert isinstance(error, cls)
        assert error.name == name
        assert name in str(error)
