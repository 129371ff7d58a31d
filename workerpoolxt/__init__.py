"""A trio worker pool: bounded concurrency, per-job deadlines and retries, every result collected."""

from ._context import Context
from ._errors import (
    JobAbandonedError,
    JobCancelledError,
    JobTimeoutError,
    PoolClosedError,
    QueueFullError,
    WorkerPoolError,
)
from ._handle import JobHandle
from ._job import Job, Options
from ._pool import PoolStatistics, WorkerPool
from ._result import Result, Status
from ._retry import Backoff

__all__ = [
    "Backoff",
    "Context",
    "Job",
    "JobAbandonedError",
    "JobCancelledError",
    "JobHandle",
    "JobTimeoutError",
    "Options",
    "PoolClosedError",
    "PoolStatistics",
    "QueueFullError",
    "Result",
    "Status",
    "WorkerPool",
    "WorkerPoolError",
]
