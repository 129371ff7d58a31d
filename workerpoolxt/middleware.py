"""Middleware that ships with workerpoolxt, and the types to write your own.

A middleware is ``async def mw(job: RunningJob, call_next: CallNext) -> Any``;
pass a list of them as ``WorkerPool(middleware=[...])`` or ``Job(middleware=[...])``.
"""

from ._middleware import CallNext, Middleware, attempt_timeout, summary_log

__all__ = ["CallNext", "Middleware", "attempt_timeout", "summary_log"]
