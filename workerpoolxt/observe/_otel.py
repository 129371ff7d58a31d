"""OpenTelemetry traces for pools, with opentelemetry-api.

Each job gets a span, ``job <name>``, whose parent is the span current where
the job was submitted, so a trace follows work across ``submit()``. Each
attempt gets a child span, ``attempt <n>``, current while the task runs, so
spans the task starts nest under it. Exceptions are recorded on the span they
ended. The SDK (exporters, processors) is the application's choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from .._current import JobContext
    from .._handle import JobHandle
    from .._middleware import CallNext
    from .._pool import WorkerPool
    from .._supervisor import Supervisor

__all__ = ["OpenTelemetryTracing"]


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
            from opentelemetry import trace
        except ImportError as error:  # pragma: no cover - the extra is installed in CI
            raise ImportError("OpenTelemetryTracing needs opentelemetry-api: pip install workerpoolxt[otel]") from error
        self._trace = trace
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
        from .._supervisor import Supervisor

        if isinstance(pool, Supervisor):
            if self._worker_event not in pool._execution_observers:
                pool._execution_observers.append(self._worker_event)
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
        trace = self._trace
        parent = trace.set_span_in_context(self._job_span(job._entry))
        attributes: dict[str, str | int] = {
            "workerpoolxt.job.name": job.name,
            "workerpoolxt.job.id": job.job_id,
            "workerpoolxt.attempt": job.attempt,
        }
        with self._tracer.start_as_current_span(
            f"attempt {job.attempt}",
            context=parent,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ):
            return await call_next()

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
