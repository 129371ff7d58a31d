"""OpenTelemetry traces for pools, with opentelemetry-api.

Each job gets a span, ``job <name>``, whose parent is the span current where
the job was submitted, so a trace follows work across ``submit()``. Each
attempt gets a child span, ``attempt <n>``, current while the task runs, so
spans the task starts nest under it. Exceptions are recorded on the span they
ended. Attached to a Supervisor, each execution of a service gets a span,
``service <name>``, current in the service's task and the tasks it starts. The
SDK (exporters, processors) is the application's choice.

Tracing never changes what a job or a service does: an error from
OpenTelemetry, or from the SDK's processors and exporters behind it, is logged
on the ``workerpoolxt`` logger and the work goes on as if untraced.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, overload

from ..hooks import AttemptEnded, AttemptStarted, JobFinished, JobQueued, Observer
from ..supervise import ServiceStatus, SupervisorObserver

if TYPE_CHECKING:
    from .. import JobHandle, WorkerPool
    from ..supervise import ExecutionEnded, ExecutionStarted, Supervisor

__all__ = ["OpenTelemetryTracing"]

_logger: Final = logging.getLogger("workerpoolxt")


class OpenTelemetryTracing(Observer):
    """Trace the jobs of the pools it is attached to.

    Args:
        tracer_provider: The provider to get the tracer from; by default the
            global one that ``opentelemetry.trace.set_tracer_provider`` set.

    Raises:
        ImportError: opentelemetry-api is not installed.
    """

    def __init__(self, *, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError as error:  # pragma: no cover - the extra is installed in CI
            raise ImportError("OpenTelemetryTracing needs opentelemetry-api: pip install workerpoolxt[otel]") from error
        self._trace = trace
        self._context = context
        self._tracer = trace.get_tracer("workerpoolxt", tracer_provider=tracer_provider)
        # Per job until its Result: the context it was submitted in, and its span once it started.
        self._parents: dict[JobHandle[Any], Any] = {}
        self._job_spans: dict[JobHandle[Any], Any] = {}
        # Per job while an attempt runs: the attempt's span, and the token that made it current.
        self._attempts: dict[JobHandle[Any], tuple[Any, Any]] = {}
        self._services = _ServiceSpans(self._tracer, trace, context)

    @overload
    def attach(self, pool: WorkerPool) -> WorkerPool: ...

    @overload
    def attach(self, pool: Supervisor) -> Supervisor: ...

    def attach(self, pool: WorkerPool | Supervisor) -> WorkerPool | Supervisor:
        """Trace a pool's jobs (outside all its middleware), or the executions of a supervisor's services; return it."""
        from .. import WorkerPool
        from ..supervise import Supervisor

        if isinstance(pool, Supervisor):
            pool.add_observer(self._services)
            return pool
        if not isinstance(pool, WorkerPool):
            raise TypeError(f"`pool` must be a WorkerPool or a Supervisor, not {type(pool).__name__}")
        pool.add_observer(self)
        return pool

    def job_queued(self, event: JobQueued) -> None:
        """Remember the context the job was submitted in: its span's parent (called by the pool)."""
        self._parents[event.handle] = self._context.get_current()

    def _job_span(self, handle: JobHandle[Any]) -> Any:
        span = self._job_spans.get(handle)
        if span is None:
            span = self._job_spans[handle] = self._tracer.start_span(
                f"job {handle.name}",
                context=self._parents.get(handle),
                attributes={"workerpoolxt.job.name": handle.name, "workerpoolxt.job.id": handle.job_id},
            )
        return span

    def attempt_started(self, event: AttemptStarted) -> None:
        """Start the attempt's span and make it current in the job's task (called by the pool)."""
        # Not `start_as_current_span`: ending the span there can raise (a
        # processor's error) in place of what the task returned or raised.
        # Here every call into OpenTelemetry is guarded, and the attempt's own
        # outcome, a Cancelled included, always comes out as it was.
        trace, handle = self._trace, event.handle
        try:
            span = self._tracer.start_span(
                f"attempt {event.attempt}",
                context=trace.set_span_in_context(self._job_span(handle)),
                attributes={
                    "workerpoolxt.job.name": handle.name,
                    "workerpoolxt.job.id": handle.job_id,
                    "workerpoolxt.attempt": event.attempt,
                },
            )
            token = self._context.attach(trace.set_span_in_context(span))
        except Exception:
            _logger.exception(
                "tracing attempt %d of job %r (job_id %d) failed", event.attempt, handle.name, handle.job_id
            )
            return
        self._attempts[handle] = (span, token)

    def attempt_ended(self, event: AttemptEnded) -> None:
        """End the attempt's span, recording its error, and restore the job task's context (called by the pool)."""
        started = self._attempts.pop(event.handle, None)
        if started is None:  # its start could not be traced: the error is logged
            return
        span, token = started
        self._context.detach(token)
        error = event.error
        try:
            # As `use_span` does: a BaseException (a Cancelled) is not an error of the attempt's.
            if isinstance(error, Exception):
                from opentelemetry.trace import Status, StatusCode

                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
        except Exception:
            handle = event.handle
            _logger.exception(
                "tracing attempt %d of job %r (job_id %d) failed", event.attempt, handle.name, handle.job_id
            )

    def job_finished(self, event: JobFinished) -> None:
        """End the job's span with its outcome (called by the pool)."""
        from opentelemetry.trace import Status, StatusCode

        handle, result = event.handle, event.result
        span = self._job_span(handle)
        del self._job_spans[handle]
        self._parents.pop(handle, None)
        span.set_attribute("workerpoolxt.job.status", result.status.value)
        span.set_attribute("workerpoolxt.job.code", int(result.code))
        span.set_attribute("workerpoolxt.job.attempts", result.attempts)
        if result.error is not None:
            span.record_exception(result.error)
            span.set_status(Status(StatusCode.ERROR, str(result.error)))
        span.end()


class _ServiceSpans(SupervisorObserver):
    """Gives each execution of a service a span, current in the service's task while it runs.

    Both methods run in the service's task (the observer protocol promises
    it), so the context attached in ``execution_started`` is the one the run
    and its tasks see, and detaching it in ``execution_ended`` restores the
    task's own. The Supervisor logs what an OpenTelemetry call raises here.
    """

    __slots__ = ("_context", "_open", "_trace", "_tracer")

    def __init__(self, tracer: Any, trace: Any, context: Any) -> None:
        self._tracer = tracer
        self._trace = trace
        self._context = context
        # The span of each execution under way, by its id (unique, even across
        # supervisors), and the token that made it current, if that worked.
        self._open: dict[str, tuple[Any, Any]] = {}

    def execution_started(self, event: ExecutionStarted) -> None:
        span = self._tracer.start_span(
            f"service {event.name}",
            attributes={
                "workerpoolxt.service.name": event.name,
                "workerpoolxt.service.execution_id": event.execution_id,
            },
        )
        # Kept before it is made current, so that the span still ends if that fails.
        self._open[event.execution_id] = (span, None)
        self._open[event.execution_id] = (span, self._context.attach(self._trace.set_span_in_context(span)))

    def execution_ended(self, event: ExecutionEnded) -> None:
        opened = self._open.pop(event.execution_id, None)
        if opened is None:  # its span could not start: that error was logged
            return
        span, token = opened
        # First of all, so that a failure below cannot leave the span current in the task.
        if token is not None:
            self._context.detach(token)
        span.set_attribute("workerpoolxt.service.status", event.status.value)
        if event.status is ServiceStatus.ERROR and event.error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.record_exception(event.error)
            span.set_status(Status(StatusCode.ERROR, f"{type(event.error).__name__}: {event.error}"))
        span.end()
