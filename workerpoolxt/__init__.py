"""A trio worker pool: bounded concurrency, per-job deadlines and retries, every result collected."""

from . import hooks, middleware
from ._context import Context
from ._current import Code, Progress, RunInfo, RunningJob, current_job
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
from ._registry import Registry
from ._result import Result, Status
from ._retry import Backoff
from ._schedule import Series

__all__ = [
    "Backoff",
    "Code",
    "Context",
    "HandlerExistsError",
    "Health",
    "HealthPolicy",
    "Job",
    "JobAbandonedError",
    "JobCancelledError",
    "JobHandle",
    "JobTimeoutError",
    "Options",
    "PoolClosedError",
    "PoolStatistics",
    "Progress",
    "QueueFullError",
    "Registry",
    "Result",
    "ResultStream",
    "RunInfo",
    "RunningJob",
    "Series",
    "Status",
    "Step",
    "StepFailedError",
    "UnknownHandlerError",
    "WorkerPool",
    "WorkerPoolError",
    "chain",
    "current_job",
    "fan_out",
    "hooks",
    "middleware",
]
