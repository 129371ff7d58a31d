"""Group commit: finalising calls from many tasks share one transaction.

Each ``complete()``/``fail()``/``cancel()`` of a store is one small write. Run
one by one, every write pays for a thread hand-off and a commit. Here a caller
that finds no flush in progress becomes the flusher: it takes every write
queued so far, commits them in one transaction in a thread, and hands each
caller its own outcome (a per-write conflict stays that caller's error). The
callers queued meanwhile form the next batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import trio

Item = TypeVar("Item")


class _Slot:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """Run ``write(items)`` in a thread for batches of items, one batch at a time.

    ``write`` returns one entry per item: None for success, or the exception
    that item's caller should get.
    """

    def __init__(self, write: Callable[[Sequence[Item]], list[BaseException | None]], limiter: Any) -> None:
        self._write = write
        self._limiter = limiter
        self._pending: list[tuple[Item, _Slot]] = []
        self._flushing = False

    async def submit(self, item: Item) -> None:
        slot = _Slot()
        self._pending.append((item, slot))
        if not self._flushing:
            self._flushing = True
            # Shielded: a caller's cancellation must not drop the other
            # callers' writes. The database's own timeouts bound a flush.
            with trio.CancelScope(shield=True):
                try:
                    # Let the callers that are ready in this turn of the
                    # scheduler (tasks ending together) join the first batch.
                    await trio.lowlevel.checkpoint()
                    while self._pending:
                        batch, self._pending = self._pending, []
                        await self._flush(batch)
                finally:
                    self._flushing = False
        await slot.done.wait()
        if slot.error is not None:
            raise slot.error

    async def _flush(self, batch: list[tuple[Item, _Slot]]) -> None:
        try:
            outcomes = await trio.to_thread.run_sync(self._write, [item for item, _ in batch], limiter=self._limiter)
        except Exception as exc:  # the whole transaction failed: every caller gets the error
            outcomes = [exc] * len(batch)
        for (_, slot), outcome in zip(batch, outcomes, strict=True):
            slot.error = outcome
            slot.done.set()
