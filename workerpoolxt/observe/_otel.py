"""OpenTelemetry traces for pools, with opentelemetry-api.

Each job gets a span, ``job <name>``, whose parent is the span current where
the job was submitted, so a trace follows work across ``submit()``. Each
attempt gets a child span, ``attempt <n>``, current while the task runs, so
spans the task starts nest under it. Exceptions are recorded on the span they
ended. Attached to a Supervisor, each worker execution gets a span,
``worker <name>``, current in the worker's task and the tasks it starts. The
SDK (exporters, processors) is the application's choice.

Tracing never changes what a job or a worker does: an error from
OpenTelemetry, or from the SDK's processors and exporters behind it, is logged
on the ``workerpoolxt`` logger and the work goes on as if untraced.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, overload

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._current import JobContext
    from .._handle import JobHandle
    from .._middleware import CallNext
    from .._pool import WorkerPool
    from ..supervise import Supervisor, WorkerContext

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
        # The open span of each supervised worker execution, by execution id.
        self._worker_spans: dict[str | None, Any] = {}

    @overload
    def attach(self, pool: WorkerPool) -> WorkerPool: ...

    @overload
    def attach(self, pool: Supervisor) -> Supervisor: ...

    def attach(self, pool: WorkerPool | Supervisor) -> WorkerPool | Supervisor:
        """Trace a pool's jobs (outside all its middleware), or a supervisor's worker executions; return it."""
        from .._pool import WorkerPool
        from ..supervise import Supervisor

        if isinstance(pool, Supervisor):
            if self._worker_event not in pool._execution_observers:
                pool._execution_observers.append(self._worker_event)
                pool._execution_middleware.append(self._worker_run)
            return pool
        if not isinstance(pool, WorkerPool):
            raise TypeError(f"`pool` must be a WorkerPool or a Supervisor, not {type(pool).__name__}")
        if self._job_ended not in pool._observers:
            pool._submit_observers = (*pool._submit_observers, self._job_submitted)
            pool._middleware = (self._attempt, *pool._middleware)
            pool._observers = (*pool._observers, self._job_ended)
        return pool

    def _worker_event(self, worker: str, status: str, execution_id: str | None) -> None:
        """One span per execution of a supervised worker, from its start to its end."""
        from opentelemetry.trace import Status, StatusCode

        if status == "started":
            self._worker_spans[execution_id] = self._tracer.start_span(
                f"worker {worker}",
                attributes={"workerpoolxt.worker.name": worker, "workerpoolxt.worker.execution_id": execution_id or ""},
            )
            return
        span = self._worker_spans.pop(execution_id, None)
        if span is None:  # "restarted" follows the "error" that ended the span
            return
        span.set_attribute("workerpoolxt.worker.status", status)
        if status == "error":
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    async def _worker_run(self, worker: WorkerContext, call_next: Callable[[], Awaitable[object]]) -> object:
        """Make the execution's span current in the worker's task, so the spans it and its tasks start nest under it."""
        span = self._worker_spans.get(worker.execution_id)
        if span is None:  # it could not start: the error is logged
            return await call_next()
        context = self._context
        try:
            token = context.attach(self._trace.set_span_in_context(span))
        except Exception:
            _logger.exception("tracing worker %r (execution_id %s) failed", worker.name, worker.execution_id)
            return await call_next()
        try:
            return await call_next()
        finally:
            context.detach(token)

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
