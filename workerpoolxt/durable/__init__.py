"""Durable tasks: stores that keep them, and the worker that runs them from a store.

A task is a named ``Job`` kept in a ``Store``, so any worker process on any
machine that reaches the store can run it. ``SQLiteStore`` keeps tasks in one
file for one machine; ``PostgresStore`` shares them between machines (it needs
``pip install workerpoolxt[postgres]``); ``workerpoolxt.durable.testing.MemoryStore``
is an in-memory fake for tests. ``DurableWorker`` claims tasks from a store and
runs them on an ordinary ``WorkerPool``, as a ``WorkerApp`` configures it; its
observers (``DurableObserver``) see each task's claim, progress and end. A
``Periodic`` in the app enqueues a job on a schedule, once per tick however
many workers run it. ``python -m
workerpoolxt`` is its command line.
"""

from .._errors import CancelTask, PostgresConnectionError, StoreError, TaskConflictError, TaskNotFoundError
from ._app import WorkerApp, lifespan_value
from ._observer import DurableObserver, QueueDepth, TaskClaimed, TaskEnded, TaskOutcome, TaskProgress
from ._periodic import Periodic
from ._postgres import PostgresStore
from ._sqlite import SQLiteStore
from ._store import (
    AdminStore,
    Order,
    PeriodicStore,
    ProgressStore,
    SQLStore,
    Store,
    StoreStatistics,
    TaskRecord,
    TaskStatus,
)
from ._worker import DurableWorker, DurableWorkerStatistics

__all__ = [
    "AdminStore",
    "CancelTask",
    "DurableObserver",
    "DurableWorker",
    "DurableWorkerStatistics",
    "Order",
    "Periodic",
    "PeriodicStore",
    "PostgresConnectionError",
    "PostgresStore",
    "ProgressStore",
    "QueueDepth",
    "SQLStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreStatistics",
    "TaskClaimed",
    "TaskConflictError",
    "TaskEnded",
    "TaskNotFoundError",
    "TaskOutcome",
    "TaskProgress",
    "TaskRecord",
    "TaskStatus",
    "WorkerApp",
    "lifespan_value",
]
