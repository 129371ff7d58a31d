"""Plain functions in worker processes: CPU-bound work, and a task that hangs, killed at its deadline.

Run it with ``python examples/process_tasks.py`` (``pip install 'workerpoolxt[process]'``).
A thread can't be killed; a process can. The hung task ends TIMED_OUT after
one second, its process is killed, and the job queued behind it runs at once
in a fresh one.
"""

import sys
from pathlib import Path

import trio

import workerpoolxt as wpxt


def count_primes(below: int) -> int:
    # A keyword handler: the job's args arrive as arguments, pickled to the process.
    return sum(1 for n in range(2, below) if all(n % d for d in range(2, int(n**0.5) + 1)))


def hang(options):
    while True:  # no checkpoint, no way out: only killing its process ends it
        pass


async def main():
    async with wpxt.WorkerPool(2, run_in="process") as pool:
        pool.submit(wpxt.Job(count_primes, args={"below": 20_000}))
        pool.submit(wpxt.Job(hang, timeout=1.0))
        pool.submit(wpxt.Job(count_primes, args={"below": 1_000}, name="queued behind"))
        results = await pool.stop_wait()
    for result in sorted(results, key=lambda result: result.job_id):
        print(result.name, result.status, result.data)


if __name__ == "__main__":
    # Processes are spawned, and import a task by its module's name, which a
    # script's __main__ is not: run this file's tasks as the module process_tasks.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import process_tasks

    trio.run(process_tasks.main)
