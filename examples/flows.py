"""Flows: steps chained into one job, a step with its own retry and timeout, and a fan-out.

Run it with ``python examples/flows.py``.
"""

import trio

import workerpoolxt as wpxt

calls = {"send_welcome": 0}


async def create_company(options):
    # The first step gets the job's read-only options; each later step gets
    # what the one before returned, here a dict that grows along the chain.
    await trio.sleep(0.1)
    return {**options, "company_id": 7}


async def create_users(params):
    await trio.sleep(0.1)
    return {**params, "user_ids": [70, 71, 72]}


async def send_welcome(params):
    calls["send_welcome"] += 1
    if calls["send_welcome"] == 1:
        await trio.sleep(10)  # the mail server hangs; the step's attempt_timeout cuts it off
    return {**params, "emails_sent": len(params["user_ids"])}


async def charge_card(params):
    raise ValueError("card declined")


async def list_users(options):
    return ["ada", "grace", "linus"]


async def render_avatar(options):
    await trio.sleep(0.2)
    return f"{options['user']}.png"


async def render_avatars(users):
    # A step may fan out: one job per user, run in parallel on the chain's own
    # pool, with their Results in the users' order.
    results = await wpxt.fan_out(lambda user: wpxt.Job(render_avatar, options={"user": user}), users)
    return [r.unwrap() for r in results]


async def summarize(files):
    return f"{len(files)} avatars: {', '.join(files)}"


async def main():
    # A fan-out holds its chain's worker while it waits, so leave room for its jobs.
    async with wpxt.WorkerPool(4) as pool:
        onboard = wpxt.chain(
            create_company,
            create_users,
            wpxt.Step(send_welcome, retry=2, attempt_timeout=0.2, timeout=1.0, backoff=wpxt.Backoff.none()),
            name="onboard",
            options={"company": "Acme"},
        )
        result = await pool.submit_wait(onboard)
        print(f"{result.name}: {result.status} in {result.duration:.1f} s, {calls['send_welcome']} welcome attempts")
        print(f"  {result.data}")

        # A step that fails for good stops the chain; the error names the step.
        # Only a ConnectionError is worth retrying a charge for.
        paid = wpxt.chain(
            create_company,
            wpxt.Step(charge_card, retry=3, retry_on=ConnectionError),
            create_users,
            name="paid signup",
            options={"company": "Initech"},
        )
        result = await pool.submit_wait(paid)
        error = result.error
        print(f"{result.name}: {result.status}: {error}")
        print(f"  step {error.index} {error.step!r} failed because of {error.__cause__!r}")

        # The chain's default name joins its steps' names. Its three 0.2 s
        # renders run side by side, so the whole flow takes 0.2 s, not 0.6 s.
        result = await pool.submit_wait(wpxt.chain(list_users, render_avatars, summarize))
        print(f"{result.name}: {result.data} in {result.duration:.1f} s")


if __name__ == "__main__":
    trio.run(main)
