"""Supervised services: start them, restart the ones that fail, stop them all, report on each, and observe them."""

from .._errors import ServiceExistsError, ServiceNotFoundError, SupervisorClosedError
from ._observer import ExecutionEnded, ExecutionStarted, SupervisorObserver
from ._supervisor import (
    RunningService,
    Service,
    ServiceEvent,
    ServiceExecution,
    ServiceStatus,
    Supervisor,
    current_service,
)

__all__ = [
    "ExecutionEnded",
    "ExecutionStarted",
    "RunningService",
    "Service",
    "ServiceEvent",
    "ServiceExecution",
    "ServiceExistsError",
    "ServiceNotFoundError",
    "ServiceStatus",
    "Supervisor",
    "SupervisorClosedError",
    "SupervisorObserver",
    "current_service",
]
