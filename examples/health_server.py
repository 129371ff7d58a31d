"""Serve a pool's readiness and Prometheus metrics over HTTP, with hypercorn on trio.

Run it with ``python examples/health_server.py`` (``pip install workerpoolxt[prometheus,http] httpx``).
The HTTP side is hypercorn's; the app is a minimal ASGI callable, so nothing
here parses HTTP by hand. It serves a few requests to itself, prints what it
got, and stops.
"""

import json
import socket

import httpx
import hypercorn.config
import hypercorn.trio
import prometheus_client
import trio

import workerpoolxt as wpxt
from workerpoolxt.observe import PrometheusMetrics


def asgi_app(pool, metrics):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/ready":
            health = pool.health()
            status = 200 if health.healthy else 503
            body = json.dumps({"healthy": health.healthy, "reasons": list(health.reasons)}).encode()
            content_type = b"application/json"
        elif scope["path"] == "/metrics":
            status, body = 200, prometheus_client.generate_latest(metrics.registry)
            content_type = prometheus_client.CONTENT_TYPE_LATEST.encode()
        else:
            status, body, content_type = 404, b"not found", b"text/plain"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})

    return app


async def fails(options):
    raise ValueError("downstream is down")


async def works(options):
    return "ok"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def main():
    metrics = PrometheusMetrics()
    port = free_port()
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = config.errorlog = None
    stop = trio.Event()
    pool = metrics.attach(wpxt.WorkerPool(4, health=wpxt.HealthPolicy(min_jobs=3, last=4)))
    async with pool, trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: hypercorn.trio.serve(
                asgi_app(pool, metrics), config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for task in (works, fails, fails, fails):
                await pool.submit_wait(wpxt.Job(task))
            ready = await client.get("/ready")
            print(ready.status_code, ready.json())
            for task in (works, works, works):
                await pool.submit_wait(wpxt.Job(task))
            ready = await client.get("/ready")
            print(ready.status_code, ready.json())
            exported = (await client.get("/metrics")).text
            for line in exported.splitlines():
                if line.startswith("workerpoolxt_jobs_total"):
                    print(line)
        stop.set()


if __name__ == "__main__":
    trio.run(main)
