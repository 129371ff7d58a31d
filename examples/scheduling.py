"""Scheduling: jobs that start later, on an interval, or once per item from a channel.

Run it with ``python examples/scheduling.py``.
"""

import trio

import workerpoolxt as wpxt


async def send(options):
    await trio.sleep(0.1)
    return options["message"]


async def poll_inbox(options):
    # Slower than its 0.2 s interval: with overlap=False the ticks that find
    # the previous poll still running are skipped, not piled up.
    await trio.sleep(0.3)
    return "inbox checked"


async def ship(options):
    order = wpxt.current_job().item  # the channel item this run handles
    await trio.sleep(0.1)
    return f"shipped {order}"


async def main():
    start = trio.current_time()

    def since_start(when):
        return f"{when - start:.1f}"

    async with wpxt.WorkerPool(4) as pool:
        # A time on the trio clock that has already passed queues the job at once.
        pool.submit_at(wpxt.Job(send, name="overdue", options={"message": "sorry, late"}), start - 60)
        reminder = pool.submit_in(wpxt.Job(send, name="reminder", options={"message": "standup soon"}), 0.5)
        nightly = pool.submit_in(wpxt.Job(send, name="nightly", options={"message": "daily digest"}), 3600)
        polls = pool.submit_every(wpxt.Job(poll_inbox), 0.2, overlap=False)

        # One run per item, as it arrives; closing the channel ends the series.
        send_channel, receive_channel = trio.open_memory_channel(0)
        orders = pool.submit_each(wpxt.Job(ship), receive_channel)
        async with send_channel:
            for order in ["A-1", "A-2", "A-3"]:
                await send_channel.send(order)
                await trio.sleep(0.1)
        await orders.wait()
        print(f"{since_start(trio.current_time())} orders: {orders.submitted} shipped")

        # No stop waits for a time that has not come, so await the handle of a
        # scheduled job you mean to see run.
        result = await reminder.wait()
        print(f"{since_start(result.finished_at)} reminder: {result.data!r}, queued at {since_start(result.queued_at)}")

        await trio.sleep_until(start + 0.9)
        polls.stop()  # no more runs; wait() lets the one in flight finish
        await polls.wait()
        print(f"{since_start(trio.current_time())} poll_inbox: {polls.submitted} runs, {polls.skipped} ticks skipped")

        # The nightly job's time is an hour away: stop_wait() abandons it.
        results = await pool.stop_wait()

    print(f"nightly: {nightly.result.status} ({nightly.result.error})")
    ran = [r for r in results if r.started_at is not None]
    for r in sorted(ran, key=lambda r: (since_start(r.started_at), r.name)):
        print(f"started {since_start(r.started_at)} {r.name}: {r.data}")


if __name__ == "__main__":
    trio.run(main)
