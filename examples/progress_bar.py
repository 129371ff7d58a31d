"""Progress bars with tqdm: one over ``pool.results()``, one fed by the jobs' own progress reports.

Run it with ``python examples/progress_bar.py`` (``pip install tqdm`` first).

Each job "downloads" a file in chunks and says how far it is with
``current_job().progress(done, total)``. An observer of the pool
(``Observer.job_progress``) turns those reports into a bar of bytes, and the
loop over ``pool.results()`` advances a bar of files as each job ends. tqdm
draws on stderr; the summary line goes to stdout.
"""

import trio
from tqdm import tqdm

import workerpoolxt as wpxt
from workerpoolxt.hooks import JobFinished, JobProgress, Observer

CHUNK = 64 * 1024
FILES = {f"part-{number:02}.bin": (number % 5 + 1) * 3 * CHUNK for number in range(12)}
"""Twelve files of 3 to 15 chunks."""


async def download(options):
    size = options["size"]
    job = wpxt.current_job()
    done = 0
    while done < size:
        await trio.sleep(0.1)  # one chunk off the network
        done = min(done + CHUNK, size)
        job.progress(done, size)
    return size


class BytesBar(Observer):
    """Advances a tqdm bar by the bytes each job reports, whatever order the reports come in."""

    def __init__(self, bar):
        self.bar = bar
        self.seen = {}  # each job's last report, by its handle

    def job_progress(self, event: JobProgress):
        done = event.progress.done
        self.bar.update(done - self.seen.get(event.handle, 0))
        self.seen[event.handle] = done

    def job_finished(self, event: JobFinished):
        self.seen.pop(event.handle, None)


async def main():
    started = trio.current_time()
    with (
        tqdm(total=len(FILES), unit="file", desc="files", position=0) as files_bar,
        tqdm(total=sum(FILES.values()), unit="B", unit_scale=True, desc="bytes", position=1) as bytes_bar,
    ):
        async with wpxt.WorkerPool(4) as pool:
            pool.add_observer(BytesBar(bytes_bar))
            for name, size in FILES.items():
                pool.submit(wpxt.Job(download, name=name, options={"size": size}))

            async def show_results():
                async for result in pool.results():
                    files_bar.update(1)
                    if not result.ok:
                        files_bar.write(f"{result.name}: {result.status.value}")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(show_results)
                results = await pool.stop_wait()
    downloaded = sum(result.unwrap() for result in results)
    print(
        f"{len(results)} files, {downloaded // 1024:,} KiB in {trio.current_time() - started:.1f} s; "
        f"the bars reached {files_bar.n}/{files_bar.total} files and {bytes_bar.n // 1024:,} KiB"
    )


if __name__ == "__main__":
    trio.run(main)
