"""Benchmarks for workerpoolxt against bare trio, anyio, asyncio, aiometer and threads.

Run ``python -m benchmarks`` from the repository root (after ``pip install -e .[bench]``).
It prints a Markdown report, and writes ``results.json`` and ``results.png`` next
to this file (or into ``--output``). ``--smoke`` runs tiny sizes in seconds.
See ``RESULTS.md`` for the latest full run.
"""
