"""OpenTelemetry traces: a span per job, a child span per attempt, parented on the submitter's span."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing
from helpers import noop, result_of, sleeper

import workerpoolxt as wpxt
import workerpoolxt.supervise
from workerpoolxt import Backoff, Job, WorkerPool

pytest.importorskip("opentelemetry.sdk", reason="the otel extra and the OpenTelemetry SDK are not installed")

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from workerpoolxt.observe import OpenTelemetryTracing


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


class FailingProcessor(SpanProcessor):
    """A span processor whose ``on_end`` raises, as a broken exporter's would."""

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("exporter down")


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The ERROR records of the workerpoolxt logger that carry the processor's error."""
    return [
        record
        for record in caplog.records
        if record.name == "workerpoolxt"
        and record.levelno == logging.ERROR
        and record.exc_info is not None
        and str(record.exc_info[1]) == "exporter down"
    ]


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_job_and_attempt_spans_nest_under_the_submitters_span(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """A job submitted inside a span gets a job span under it, with one attempt span under the job span."""
    tracing = OpenTelemetryTracing(tracer_provider=provider)
    tracer = provider.get_tracer("test")
    async with tracing.attach(WorkerPool(1)) as pool:
        with tracer.start_as_current_span("request") as request:
            handle = pool.submit(Job(sleeper(2), name="render"))
        await handle.wait()
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"request", "job render", "attempt 1"}
    job, attempt = spans["job render"], spans["attempt 1"]
    assert job.parent is not None
    assert job.parent.span_id == request.get_span_context().span_id
    assert attempt.parent is not None
    assert attempt.parent.span_id == job.context.span_id
    assert job.context.trace_id == request.get_span_context().trace_id
    assert dict(job.attributes or {}) == {
        "workerpoolxt.job.name": "render",
        "workerpoolxt.job.id": 0,
        "workerpoolxt.job.status": "succeeded",
        "workerpoolxt.job.code": 200,
        "workerpoolxt.job.attempts": 1,
    }
    assert dict(attempt.attributes or {})["workerpoolxt.attempt"] == 1
    assert job.status.status_code is StatusCode.UNSET


async def test_failed_attempts_record_their_exception(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """Two failing attempts give two attempt spans with the error recorded, and an ERROR job span."""

    async def fails(options: wpxt.Options) -> None:
        raise ValueError("bad")

    async with OpenTelemetryTracing(tracer_provider=provider).attach(WorkerPool(1)) as pool:
        await pool.submit_wait(Job(fails, name="bad", retry=1, backoff=Backoff.none()))
    spans = exporter.get_finished_spans()
    attempts = [span for span in spans if span.name.startswith("attempt")]
    assert [span.name for span in attempts] == ["attempt 1", "attempt 2"]
    for span in attempts:
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
    job = by_name(spans)["job bad"]
    assert job.status.status_code is StatusCode.ERROR
    assert dict(job.attributes or {})["workerpoolxt.job.status"] == "failed"
    assert dict(job.attributes or {})["workerpoolxt.job.attempts"] == 2


async def test_a_job_that_never_ran_still_gets_its_span(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """An abandoned job ends in a job span with no attempt span, status abandoned."""
    async with OpenTelemetryTracing(tracer_provider=provider).attach(WorkerPool(1)) as pool:
        pool.submit(Job(sleeper(1), name="first"))
        pool.submit(Job(noop, name="left"))
        pool.submit_in(Job(noop, name="later"), 100)
        await trio.testing.wait_all_tasks_blocked()
        await pool.stop()
    spans = by_name(exporter.get_finished_spans())
    assert {"job first", "attempt 1", "job left", "job later"} == set(spans)
    assert dict(spans["job left"].attributes or {})["workerpoolxt.job.status"] == "abandoned"
    assert dict(spans["job later"].attributes or {})["workerpoolxt.job.status"] == "abandoned"


async def test_spans_the_task_starts_nest_under_its_attempt(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """The attempt span is current while the task runs."""
    tracer = provider.get_tracer("test")

    async def traced(options: wpxt.Options) -> Any:
        with tracer.start_as_current_span("inner"):
            await trio.sleep(1)

    async with OpenTelemetryTracing(tracer_provider=provider).attach(WorkerPool(1)) as pool:
        await pool.submit_wait(Job(traced))
    spans = by_name(exporter.get_finished_spans())
    inner = spans["inner"]
    assert inner.parent is not None
    assert inner.parent.span_id == spans["attempt 1"].context.span_id


async def test_a_pool_attached_twice_traces_each_job_once(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """Attaching a pool twice changes nothing: a job still gets one span, and its attempt one."""
    tracing = OpenTelemetryTracing(tracer_provider=provider)
    async with WorkerPool(1) as pool:
        assert tracing.attach(tracing.attach(pool)) is pool
        pool.submit(Job(sleeper(1), name="once"))
    assert sorted(span.name for span in exporter.get_finished_spans()) == ["attempt 1", "job once"]


def test_attach_checks_its_argument() -> None:
    """Attaching something other than a pool or a supervisor is a TypeError naming the parameter."""
    tracing = OpenTelemetryTracing()
    with pytest.raises(TypeError, match="`pool`"):
        tracing.attach(object())  # type: ignore[call-overload]


async def test_each_execution_of_a_service_gets_one_span(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """A service failing once then running until stopped gives two spans: error (exception recorded), then stopped."""
    calls: list[str] = []

    async def flaky() -> None:
        calls.append(wpxt.supervise.current_service().execution_id)
        if len(calls) == 1:
            raise ValueError("first")
        await trio.sleep_forever()

    async with OpenTelemetryTracing(tracer_provider=provider).attach(wpxt.supervise.Supervisor(flaky, retry=1)):
        await trio.sleep(5)
    spans = [span for span in exporter.get_finished_spans() if span.name == "service flaky"]
    attributes = [dict(span.attributes or {}) for span in spans]
    assert [a["workerpoolxt.service.execution_id"] for a in attributes] == calls
    assert [a["workerpoolxt.service.status"] for a in attributes] == ["error", "stopped"]
    assert [span.status.status_code for span in spans] == [StatusCode.ERROR, StatusCode.UNSET]
    assert spans[0].status.description == "ValueError: first"
    assert [[event.name for event in span.events] for span in spans] == [["exception"], []]
    assert len(set(calls)) == 2


async def test_attaching_a_supervisor_twice_traces_once(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """The same tracing attached twice to a supervisor gives each execution one span."""
    tracing = OpenTelemetryTracing(tracer_provider=provider)
    supervisor = wpxt.supervise.Supervisor(noop_service)
    assert tracing.attach(tracing.attach(supervisor)) is supervisor
    async with supervisor:
        await trio.sleep(1)
    assert [span.name for span in exporter.get_finished_spans()] == ["service noop_service"]


async def noop_service() -> None:
    """A service that returns at once."""


async def test_two_supervisors_with_the_same_service_name_keep_their_own_spans(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """Spans are per execution: two services named alike, in two supervisors, each end their own span."""

    async def poller() -> None:
        await trio.sleep_forever()

    tracing = OpenTelemetryTracing(tracer_provider=provider)
    async with tracing.attach(wpxt.supervise.Supervisor(poller)), tracing.attach(wpxt.supervise.Supervisor(poller)):
        await trio.sleep(1)
    spans = [span for span in exporter.get_finished_spans() if span.name == "service poller"]
    assert len(spans) == 2
    assert len({dict(span.attributes or {})["workerpoolxt.service.execution_id"] for span in spans}) == 2
    assert tracing._services._open == {}


async def test_a_span_processor_that_raises_harms_no_job(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With on_end raising, every job still gets its true Result, the block exits, and the errors are logged."""
    provider = TracerProvider()
    provider.add_span_processor(FailingProcessor())

    async def fails(options: wpxt.Options) -> None:
        await trio.sleep(1)
        raise ValueError("bad")

    async with OpenTelemetryTracing(tracer_provider=provider).attach(WorkerPool(2)) as pool:
        handles = [
            pool.submit(Job(sleeper(1, "a"), name="first")),
            pool.submit(Job(sleeper(1, "b"), name="second")),
            pool.submit(Job(fails, name="fails")),
            pool.submit(Job(sleeper(10), name="slow", timeout=1)),
            pool.submit(Job(sleeper(10), name="victim")),
        ]
        await trio.sleep(3)
        handles[-1].cancel()
    assert trio.current_time() == 3.0
    results = [result_of(handle) for handle in handles]
    assert [(r.name, r.status, r.data, r.finished_at) for r in results] == [
        ("first", wpxt.Status.SUCCEEDED, "a", 1.0),
        ("second", wpxt.Status.SUCCEEDED, "b", 1.0),
        ("fails", wpxt.Status.FAILED, None, 2.0),
        ("slow", wpxt.Status.TIMED_OUT, None, 2.0),
        ("victim", wpxt.Status.CANCELLED, None, 3.0),
    ]
    assert [type(r.error) for r in results] == [
        type(None),
        type(None),
        ValueError,
        wpxt.JobTimeoutError,
        wpxt.JobCancelledError,
    ]
    # Each job's span and its attempt span failed to end; each failure names its job.
    for name in ("first", "second", "fails", "slow", "victim"):
        assert sum(repr(name) in record.getMessage() for record in logged_errors(caplog)) == 2, name


async def test_spans_a_service_starts_nest_under_its_execution_span(
    autojump_clock: trio.testing.MockClock, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """An execution's span, naming the service and execution, is current in its task and the tasks it starts."""
    tracer = provider.get_tracer("test")
    ids: list[str] = []

    async def child() -> None:
        with tracer.start_as_current_span("child"):
            await trio.sleep(1)

    async def poller() -> None:
        ids.append(wpxt.supervise.current_service().execution_id)
        with tracer.start_as_current_span("poll"):
            await trio.sleep(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    async with OpenTelemetryTracing(tracer_provider=provider).attach(wpxt.supervise.Supervisor(poller)) as supervisor:
        await trio.sleep(5)
        assert supervisor.execution("poller").status is wpxt.supervise.ServiceStatus.SUCCESS
    spans = by_name(exporter.get_finished_spans())
    service = spans["service poller"]
    assert dict(service.attributes or {}) == {
        "workerpoolxt.service.name": "poller",
        "workerpoolxt.service.execution_id": ids[0],
        "workerpoolxt.service.status": "success",
    }
    for name in ("poll", "child"):
        parent = spans[name].parent
        assert parent is not None
        assert parent.span_id == service.context.span_id, name


async def test_a_span_processor_that_raises_harms_no_service(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With on_end raising, a failing service still restarts, runs until stopped, and each error is logged."""
    provider = TracerProvider()
    provider.add_span_processor(FailingProcessor())
    starts: list[float] = []
    current: list[Any] = []

    async def flaky() -> None:
        starts.append(trio.current_time())
        current.append(otel_trace.get_current_span())
        await trio.sleep(1)
        if len(starts) == 1:
            raise ValueError("first")
        await trio.sleep_forever()

    supervisor = wpxt.supervise.Supervisor(flaky, retry=1)
    async with OpenTelemetryTracing(tracer_provider=provider).attach(supervisor):
        await trio.sleep(5)
    assert starts == [0.0, 1.0]
    assert supervisor.execution("flaky").status is wpxt.supervise.ServiceStatus.STOPPED
    assert [record.getMessage() for record in logged_errors(caplog)] == [
        "observer _ServiceSpans.execution_ended failed for service 'flaky'",
        "observer _ServiceSpans.execution_ended failed for service 'flaky'",
    ]
    # Ending the first span failed, yet it was no longer current when the second started: not its parent.
    assert [span.name for span in current] == ["service flaky", "service flaky"]
    assert current[1].parent is None
