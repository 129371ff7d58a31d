"""Supervised services: deferred starts, restarts with backoff, reports and health.

Run it with ``python examples/supervisor.py``.
"""

import trio

import workerpoolxt as wpxt
import workerpoolxt.supervise


class QueueConsumer:
    """A service that runs until stopped; its connection drops twice before it holds."""

    name = "consumer"

    def __init__(self):
        self.connects = 0

    async def run(self):
        self.connects += 1
        me = wpxt.supervise.current_service()
        print(f"{trio.current_time():.1f} {me.name}: attempt {me.attempt}/{me.retry + 1}")
        await trio.sleep(0.5)
        if self.connects < 3:
            raise ConnectionError("broker went away")
        await trio.sleep_forever()


async def warm_cache():
    # A one-off service: returning means it is done and will not be restarted.
    await trio.sleep(1)


async def main():
    supervisor = wpxt.supervise.Supervisor(retry=4, backoff=wpxt.Backoff(initial=1, multiplier=2, jitter=0))
    supervisor.add(QueueConsumer())
    supervisor.add(warm_cache, defer=2)
    async with supervisor:
        await trio.sleep(1)
        print(f"1.0 health: {supervisor.health()}")
        await trio.sleep(9)
        print(f"10.0 health: {supervisor.health()}")
    # Leaving the block stopped the consumer.
    for name, report in supervisor.executions().items():
        print(f"{name}: {report.status} at attempt {report.attempt}/{report.retry + 1}")
        for event in report.events:
            print(f"  {event.time:4.1f} {event.message}")


if __name__ == "__main__":
    trio.run(main)
