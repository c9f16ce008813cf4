"""Group commit: concurrent calls that each write a list of items become one transaction.

Why: a single-entity write (``PATCH /entities/{id}/attrs``) costs one transaction, and a
transaction's fixed costs (``BEGIN``, ``COMMIT`` with its fsync, the round trips to
PostgreSQL) dwarf the work on one row. While one transaction runs, the next callers queue
here; when it commits, everything queued goes into the next one, so under load each commit
carries many callers' writes and at low load a caller waits for nobody.

Semantics are those of running the calls one after the other, in arrival order: the items
are concatenated, the store applies them in order (a later change to an entity sees the
earlier one), and each caller gets its own slice of the per-item results. A failure of the
merged transaction (not of one item: stores report those as results) rolls back every caller in
it; each of its callers is then run again alone, so a caller fails only if its own call
fails. A caller is answered only after the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

_I = TypeVar("_I")
_R = TypeVar("_R")


class Coalescer(Generic[_I, _R]):
    """Merges concurrent ``submit`` calls into calls of ``run`` (one at a time).

    ``run(items)`` must return one result per item, in order. ``max_items`` bounds a merged
    call (a single bigger submission still runs whole, alone).
    """

    def __init__(self, run: Callable[[list[_I]], Awaitable[list[_R]]], *, max_items: int) -> None:
        self._run = run
        self._max_items = max_items
        self._queue: list[tuple[Sequence[_I], asyncio.Future[list[_R]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[_I]) -> list[_R]:
        """Run ``items`` (in a transaction shared with other waiting callers); their results."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[_R]] = loop.create_future()
        flusher = self._flusher
        if flusher is not None and not flusher.done() and flusher.get_loop() is not loop:
            # a loop that closed mid-flush (tests run one loop each): its callers are gone
            self._queue = [(i, f) for i, f in self._queue if f.get_loop() is loop]
            flusher = None
        self._queue.append((items, future))
        if flusher is None or flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="ldt-store-group-commit")
        # shield: a caller that gives up must not cancel the transaction others wait on
        return await asyncio.shield(future)

    async def drain(self) -> None:
        """Wait until every submitted call has been answered (before closing the store)."""
        loop = asyncio.get_running_loop()
        while (flusher := self._flusher) is not None and not flusher.done():
            if flusher.get_loop() is not loop:
                return  # that loop's callers are gone with it
            await asyncio.wait({flusher})

    async def _flush(self) -> None:
        while self._queue:
            taken, total = 0, 0
            for items, _ in self._queue:
                if taken and total + len(items) > self._max_items:
                    break
                taken += 1
                total += len(items)
            group, self._queue = self._queue[:taken], self._queue[taken:]
            merged = [item for items, _ in group for item in items]
            try:
                if len(group) == 1:
                    await self._answer(*group[0])
                    continue
                try:
                    results = await self._run(merged)
                except Exception:  # noqa: BLE001 - one caller's failure must not fail the others
                    for items, future in group:  # each alone, as if never merged
                        await self._answer(items, future)
                    continue
            except BaseException:  # cancelled (the loop is closing): nobody will be answered
                for _, future in group + self._queue:
                    future.cancel()
                self._queue.clear()
                raise
            start = 0
            for items, future in group:
                if not future.done():
                    future.set_result(results[start : start + len(items)])
                start += len(items)

    async def _answer(self, items: Sequence[_I], future: asyncio.Future[list[_R]]) -> None:
        """Run one caller's items alone and settle its future (result or exception)."""
        try:
            results = await self._run(list(items))
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(results)
