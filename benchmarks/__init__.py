"""Benchmarks for workerpoolxt against bare trio, anyio, asyncio, aiometer and threads.

Run ``python -m benchmarks`` from the repository root (after ``pip install -e .[bench]``).
It prints a Markdown report, and writes ``results.json`` and ``results.png`` next
to this file (or into ``--output``). ``--smoke`` runs tiny sizes in seconds;
``--quick`` measures only the headline targets (no deadline and per-job timeout
against bare trio, the PostgreSQL store against pgqueuer) in under a minute,
and writes no files.
See ``RESULTS.md`` for the latest full run.
"""
