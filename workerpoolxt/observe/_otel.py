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

from ..supervise import ServiceStatus, SupervisorObserver

if TYPE_CHECKING:
    from .._current import JobContext
    from .._handle import JobHandle
    from .._middleware import CallNext
    from .._pool import WorkerPool
    from ..supervise import ExecutionEnded, ExecutionStarted, Supervisor

__all__ = ["OpenTelemetryTracing"]

_logger: Final = logging.getLogger("workerpoolxt")


class OpenTelemetryTracing:
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
        # The open job span of each job that started, until its Result.
        self._job_spans: dict[JobHandle[Any], Any] = {}
        self._services = _ServiceSpans(self._tracer, trace, context)

    @overload
    def attach(self, pool: WorkerPool) -> WorkerPool: ...

    @overload
    def attach(self, pool: Supervisor) -> Supervisor: ...

    def attach(self, pool: WorkerPool | Supervisor) -> WorkerPool | Supervisor:
        """Trace a pool's jobs (outside all its middleware), or the executions of a supervisor's services; return it."""
        from .._pool import WorkerPool
        from ..supervise import Supervisor

        if isinstance(pool, Supervisor):
            pool.add_observer(self._services)
            return pool
        if not isinstance(pool, WorkerPool):
            raise TypeError(f"`pool` must be a WorkerPool or a Supervisor, not {type(pool).__name__}")
        if self._job_ended not in pool._observers:
            pool._submit_observers = (*pool._submit_observers, self._job_submitted)
            pool._middleware = (self._attempt, *pool._middleware)
            pool._observers = (*pool._observers, self._job_ended)
        return pool

    def _job_submitted(self, entry: JobHandle[Any]) -> None:
        from opentelemetry import context

        meta = entry._meta if entry._meta is not None else {}
        meta["otel_context"] = context.get_current()
        entry._meta = meta

    def _job_span(self, entry: JobHandle[Any]) -> Any:
        span = self._job_spans.get(entry)
        if span is None:
            parent = entry._meta.get("otel_context") if entry._meta is not None else None
            span = self._job_spans[entry] = self._tracer.start_span(
                f"job {entry.name}",
                context=parent,
                attributes={"workerpoolxt.job.name": entry.name, "workerpoolxt.job.id": entry.job_id},
            )
        return span

    async def _attempt(self, job: JobContext, call_next: CallNext) -> Any:
        # Not `start_as_current_span`: ending the span there can raise (a
        # processor's error) in place of what the task returned or raised.
        # Here every call into OpenTelemetry is guarded, and the attempt's own
        # outcome, a Cancelled included, always comes out as it was.
        trace, context = self._trace, self._context
        try:
            span = self._tracer.start_span(
                f"attempt {job.attempt}",
                context=trace.set_span_in_context(self._job_span(job._entry)),
                attributes={
                    "workerpoolxt.job.name": job.name,
                    "workerpoolxt.job.id": job.job_id,
                    "workerpoolxt.attempt": job.attempt,
                },
            )
            token = context.attach(trace.set_span_in_context(span))
        except Exception:
            _logger.exception("tracing attempt %d of job %r (job_id %d) failed", job.attempt, job.name, job.job_id)
            return await call_next()
        try:
            value = await call_next()
        except BaseException as error:
            context.detach(token)
            self._end_attempt(span, job, error)
            raise
        context.detach(token)
        self._end_attempt(span, job, None)
        return value

    def _end_attempt(self, span: Any, job: JobContext, error: BaseException | None) -> None:
        try:
            # As `use_span` does: a BaseException (a Cancelled) is not an error of the attempt's.
            if isinstance(error, Exception):
                from opentelemetry.trace import Status, StatusCode

                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
        except Exception:
            _logger.exception("tracing attempt %d of job %r (job_id %d) failed", job.attempt, job.name, job.job_id)

    def _job_ended(self, entry: JobHandle[Any]) -> None:
        from opentelemetry.trace import Status, StatusCode

        result = entry._result
        assert result is not None
        span = self._job_span(entry)
        del self._job_spans[entry]
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
