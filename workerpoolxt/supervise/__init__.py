"""Supervised long-running workers: start them, restart the ones that fail, stop them all, report on each."""

from .._errors import WorkerExistsError, WorkerNotFoundError
from ._supervisor import (
    SupervisedWorker,
    Supervisor,
    WorkerContext,
    WorkerEvent,
    WorkerExecution,
    WorkerStatus,
    current_worker,
)

__all__ = [
    "SupervisedWorker",
    "Supervisor",
    "WorkerContext",
    "WorkerEvent",
    "WorkerExecution",
    "WorkerExistsError",
    "WorkerNotFoundError",
    "WorkerStatus",
    "current_worker",
]
