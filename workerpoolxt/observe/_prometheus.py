"""Prometheus metrics for pools, supervisors and durable workers, with prometheus-client.

Nothing registers on prometheus-client's global registry unless asked: by
default the metrics live in a registry of their own, ``metrics.registry``, to
serve from your endpoint (``prometheus_client.generate_latest(metrics.registry)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import attrs

from ..durable import DurableObserver
from ..hooks import JobFinished, Observer
from ..supervise import SupervisorObserver

if TYPE_CHECKING:
    from .. import Status, WorkerPool
    from ..durable import DurableWorker, QueueDepth, TaskClaimed, TaskEnded
    from ..supervise import ExecutionEnded, ExecutionStarted, Supervisor

__all__ = ["PrometheusMetrics"]


class PrometheusMetrics(Observer):
    """Counters, a histogram and gauges for the pools it is attached to.

    Exports, under ``namespace`` and ``subsystem``:

    - ``jobs_total{name,status,code}``: jobs that ended, by name, status and
      status code (``Result.code``), so a task's own 5xx or 444 shows;
    - ``job_duration_seconds{name}``: a histogram of their durations;
    - ``job_attempts_total{name}``: attempts they made;
    - ``queue_size`` and ``running_workers``: gauges, summed over attached pools;
    - ``service_executions_total{service,status}``: executions of supervised
      services, counted under ``started`` as each starts, then under how it
      ended (``success``, ``error`` or ``stopped``), and under ``restarted``
      when a restart follows;
    - ``durable_tasks_total{handler,outcome}``: tasks of durable workers,
      counted under ``claimed`` as each is claimed, then under how its run
      ended (``TaskOutcome``: ``succeeded``, ``retrying``, ``failed``,
      ``dead``, ``cancelled``, ``released``, ``lost``);
    - ``durable_queue_depth{status}``: the tasks in a durable worker's store
      per status (``queued``, ``running``, ...), as its worker last counted
      them: as it starts and after each heartbeat.

    Args:
        registry: A ``prometheus_client.CollectorRegistry``; by default a new
            one, never the global ``REGISTRY`` unless passed explicitly.
        namespace, subsystem: Prefixes of the metric names.
        buckets: The duration histogram's buckets, in seconds.

    Raises:
        ImportError: prometheus-client is not installed.
    """

    def __init__(
        self,
        *,
        registry: Any = None,
        namespace: str = "workerpoolxt",
        subsystem: str = "",
        buckets: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    ) -> None:
        try:
            import prometheus_client
        except ImportError as error:  # pragma: no cover - the extra is installed in CI
            raise ImportError(
                "PrometheusMetrics needs prometheus-client: pip install workerpoolxt[prometheus]"
            ) from error
        if registry is None:
            registry = prometheus_client.CollectorRegistry()
        elif not isinstance(registry, prometheus_client.CollectorRegistry):
            raise TypeError(f"`registry` must be a prometheus_client CollectorRegistry, not {type(registry).__name__}")
        for name, value in (("namespace", namespace), ("subsystem", subsystem)):
            if not isinstance(value, str):
                raise TypeError(f"`{name}` must be a str, not {type(value).__name__}")
        self.registry = registry
        names = {"namespace": namespace, "subsystem": subsystem, "registry": registry}
        self.jobs = prometheus_client.Counter(
            "jobs", "Jobs that ended, by name, status and status code.", ["name", "status", "code"], **names
        )
        self.durations = prometheus_client.Histogram(
            "job_duration_seconds", "Job durations from first start to end.", ["name"], buckets=buckets, **names
        )
        self.attempts = prometheus_client.Counter("job_attempts", "Attempts jobs made.", ["name"], **names)
        self.executions = prometheus_client.Counter(
            "service_executions", "Executions of supervised services.", ["service", "status"], **names
        )
        self._services = _ServiceCounts(self.executions)
        self.tasks = prometheus_client.Counter(
            "durable_tasks", "Durable tasks claimed, and how their runs ended.", ["handler", "outcome"], **names
        )
        self.queue_depth = prometheus_client.Gauge(
            "durable_queue_depth", "Tasks in the durable store, by status.", ["status"], **names
        )
        self._tasks = _TaskCounts(self.tasks, self.queue_depth)
        self._pools: list[WorkerPool] = []
        self._children: dict[tuple[str, Status, int], tuple[Any, Any, Any]] = {}
        queue = prometheus_client.Gauge("queue_size", "Jobs queued, not yet started.", **names)
        queue.set_function(lambda: sum(pool.waiting_queue_size for pool in self._pools))
        running = prometheus_client.Gauge("running_workers", "Workers running a job.", **names)
        running.set_function(lambda: sum(pool.running for pool in self._pools))

    @overload
    def attach(self, pool: WorkerPool) -> WorkerPool: ...

    @overload
    def attach(self, pool: Supervisor) -> Supervisor: ...

    @overload
    def attach(self, pool: DurableWorker) -> DurableWorker: ...

    def attach(self, pool: WorkerPool | Supervisor | DurableWorker) -> WorkerPool | Supervisor | DurableWorker:
        """Count the jobs of a pool, the executions of a supervisor's services, or a durable worker's tasks and
        its store's queue, from now on; return it.

        A ``WorkerApp``'s ``metrics`` are attached to its worker this way as the worker is made.
        """
        from .. import WorkerPool
        from ..durable import DurableWorker
        from ..supervise import Supervisor

        if isinstance(pool, Supervisor):
            pool.add_observer(self._services)
            return pool
        if isinstance(pool, DurableWorker):
            pool.add_observer(self._tasks)
            return pool
        if not isinstance(pool, WorkerPool):
            raise TypeError(f"`pool` must be a WorkerPool, a Supervisor or a DurableWorker, not {type(pool).__name__}")
        if pool not in self._pools:
            self._pools.append(pool)
            pool.add_observer(self)
        return pool

    def job_finished(self, event: JobFinished) -> None:
        """Count a job that ended (the pool calls it, as an ``Observer``)."""
        result = event.result
        key = (result.name, result.status, result.code)
        children = self._children.get(key)
        if children is None:
            # labels() takes a lock and builds a key each call: look each child up once.
            name = result.name
            children = self._children[key] = (
                self.jobs.labels(name, result.status.value, str(result.code)),
                self.durations.labels(name),
                self.attempts.labels(name),
            )
        jobs, durations, attempts = children
        jobs.inc()
        durations.observe(result.duration)
        if result.attempts:
            attempts.inc(result.attempts)


class _ServiceCounts(SupervisorObserver):
    """Counts the executions of the services of the supervisors a PrometheusMetrics is attached to."""

    __slots__ = ("_executions",)

    def __init__(self, executions: Any) -> None:
        self._executions = executions

    def execution_started(self, event: ExecutionStarted) -> None:
        self._executions.labels(event.name, "started").inc()

    def execution_ended(self, event: ExecutionEnded) -> None:
        self._executions.labels(event.name, event.status.value).inc()
        if event.restart_in is not None:
            self._executions.labels(event.name, "restarted").inc()


class _TaskCounts(DurableObserver):
    """Counts the tasks of the durable workers a PrometheusMetrics is attached to, and gauges their store's queue."""

    __slots__ = ("_depth", "_tasks")

    def __init__(self, tasks: Any, depth: Any) -> None:
        self._tasks = tasks
        self._depth = depth

    def task_claimed(self, event: TaskClaimed) -> None:
        self._tasks.labels(event.handler, "claimed").inc()

    def task_ended(self, event: TaskEnded) -> None:
        self._tasks.labels(event.handler, event.outcome.value).inc()

    def queue_depth(self, event: QueueDepth) -> None:
        depth, stats = self._depth, event.stats
        for field in attrs.fields(type(stats)):
            depth.labels(field.name).set(getattr(stats, field.name))
