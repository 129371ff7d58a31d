"""A trio worker pool: bounded concurrency, per-job deadlines and retries, every result collected."""

from . import middleware
from ._context import Context
from ._current import Code, JobContext, current_job
from ._durable import DurableWorker, DurableWorkerStatistics
from ._errors import (
    HandlerExistsError,
    JobAbandonedError,
    JobCancelledError,
    JobTimeoutError,
    PoolClosedError,
    QueueFullError,
    StepFailedError,
    UnknownHandlerError,
    WorkerPoolError,
)
from ._flow import Step, chain, fan_out
from ._handle import JobHandle
from ._health import Health, HealthPolicy
from ._job import Job, Options
from ._pool import PoolStatistics, ResultStream, WorkerPool
from ._postgres import PostgresConnectionError, PostgresStore
from ._registry import Registry
from ._result import Result, Status
from ._retry import Backoff
from ._schedule import Series
from ._sqlite import SQLiteStore
from ._store import (
    CancelTask,
    Order,
    Store,
    StoreError,
    StoreStatistics,
    TaskConflictError,
    TaskNotFoundError,
    TaskRecord,
    TaskStatus,
)
from ._supervisor import (
    SupervisedWorker,
    Supervisor,
    WorkerContext,
    WorkerEvent,
    WorkerExecution,
    WorkerExistsError,
    WorkerNotFoundError,
    WorkerStatus,
    current_worker,
)

__all__ = [
    "Backoff",
    "CancelTask",
    "Code",
    "Context",
    "DurableWorker",
    "DurableWorkerStatistics",
    "HandlerExistsError",
    "Health",
    "HealthPolicy",
    "Job",
    "JobAbandonedError",
    "JobCancelledError",
    "JobContext",
    "JobHandle",
    "JobTimeoutError",
    "Options",
    "Order",
    "PoolClosedError",
    "PoolStatistics",
    "PostgresConnectionError",
    "PostgresStore",
    "QueueFullError",
    "Registry",
    "Result",
    "ResultStream",
    "SQLiteStore",
    "Series",
    "Status",
    "Step",
    "StepFailedError",
    "Store",
    "StoreError",
    "StoreStatistics",
    "SupervisedWorker",
    "Supervisor",
    "TaskConflictError",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskStatus",
    "UnknownHandlerError",
    "WorkerContext",
    "WorkerEvent",
    "WorkerExecution",
    "WorkerExistsError",
    "WorkerNotFoundError",
    "WorkerPool",
    "WorkerPoolError",
    "WorkerStatus",
    "chain",
    "current_job",
    "current_worker",
    "fan_out",
    "middleware",
]
