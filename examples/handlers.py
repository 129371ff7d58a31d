"""Named handlers, jobs as data, and the running job's context.

Run it with ``python examples/handlers.py``.
"""

import json

import trio

import workerpoolxt as wpxt

registry = wpxt.Registry()


@registry.register("send_email")
async def send_email(options):
    job = wpxt.current_job()
    if not job.args["to"]:
        job.code = wpxt.Code.NOTHING_TO_DO  # succeeded, but there was nothing to send
        return None
    await trio.sleep(0.1)
    return f"sent {job.args['subject']!r} to {job.args['to']}"


async def main():
    # A named job is plain data, so it can be stored and sent elsewhere.
    stored = json.dumps(wpxt.Job("send_email", args={"to": "ada@example.com", "subject": "hi"}).to_dict())
    async with wpxt.WorkerPool(2, registry=registry) as pool:
        pool.submit(wpxt.Job.from_dict(json.loads(stored)))
        pool.submit(wpxt.Job("send_email", name="empty", args={"to": "", "subject": "nobody"}))
        results = await pool.stop_wait()
    for r in sorted(results, key=lambda r: r.job_id):
        print(f"{r.name}: {r.status} {r.code} {r.data}")


if __name__ == "__main__":
    trio.run(main)
