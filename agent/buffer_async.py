"""``AsyncBuffer``: the buffer for asyncio code, every call run in ONE dedicated thread.

SQLite calls block (an fsync on an SD card can take tens of milliseconds), so
they never run on the event loop. A single worker thread keeps the
connection's one-thread rule (``sqlite3`` checks it) and serialises calls, so
no locking is needed inside ``Buffer``.

Cancellation: cancelling an awaiting caller never leaves a database call half
known. A call not yet started is withdrawn; a call already running is waited
for, then ``CancelledError`` is re-raised. So when ``await abuf.append(rows)``
raises ``CancelledError`` the rows are either fully committed or not written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Self, TypeVar

from ldt.agent.buffer import Buffer, BufferedReading, BufferError, BufferRow, BufferStats
from ldt.contract import SeriesInfo

__all__ = ["AsyncBuffer"]

T = TypeVar("T")


class AsyncBuffer:
    """Async mirror of ``Buffer``; ``open()`` starts the worker thread, ``close()`` ends it.

    Also an async context manager (open on enter, close on exit).
    """

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    async def open(self) -> None:
        """Open the buffer in the worker thread; ``BufferError`` if it cannot be used."""
        if self._executor is not None:
            raise BufferError("the buffer is already open")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ldt-buffer"
        )
        try:
            await self._call(self.buffer.open)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    async def close(self) -> None:
        """Close the buffer and stop the worker thread. Idempotent."""
        executor = self._executor
        if executor is None:
            return
        try:
            await self._call(self.buffer.close)
        finally:
            self._executor = None
            executor.shutdown(wait=True)  # the worker is idle now: returns at once

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def series_id(self, info: SeriesInfo) -> int:
        """See ``Buffer.series_id``."""
        return await self._call(self.buffer.series_id, info)

    async def series(self, ids: Iterable[int]) -> dict[int, SeriesInfo]:
        """See ``Buffer.series``."""
        return await self._call(self.buffer.series, list(ids))

    async def append(self, rows: Sequence[BufferRow]) -> range:
        """See ``Buffer.append``: one transaction, durable when this returns."""
        return await self._call(self.buffer.append, rows)

    async def take_live(self, limit: int) -> list[BufferedReading]:
        """See ``Buffer.take_live``."""
        return await self._call(self.buffer.take_live, limit)

    async def take_backfill(
        self, limit: int, *, below_seq: int | None = None
    ) -> list[BufferedReading]:
        """See ``Buffer.take_backfill``."""
        return await self._call(lambda: self.buffer.take_backfill(limit, below_seq=below_seq))

    async def quarantine(self, seqs: Iterable[int], why: str) -> int:
        """See ``Buffer.quarantine``."""
        return await self._call(lambda: self.buffer.quarantine(list(seqs), why))

    async def ack(self, seqs: Iterable[int]) -> None:
        """See ``Buffer.ack``."""
        await self._call(self.buffer.ack, list(seqs))

    async def enforce_limits(self, *, now_ms: int | None = None) -> int:
        """See ``Buffer.enforce_limits``."""
        return await self._call(lambda: self.buffer.enforce_limits(now_ms=now_ms))

    async def stats(self) -> BufferStats:
        """See ``Buffer.stats``."""
        return await self._call(self.buffer.stats)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        executor = self._executor
        if executor is None:
            raise BufferError("the buffer is not open")
        cfut = executor.submit(fn, *args)
        afut = asyncio.wrap_future(cfut)
        try:
            return await asyncio.shield(afut)
        except asyncio.CancelledError:
            if not cfut.cancel():
                await _finish(afut)
            raise


async def _finish(afut: asyncio.Future[T]) -> None:
    """Wait until a started call ends, even through further cancellations.

    The caller re-raises its ``CancelledError`` right after; only the outcome of
    the database call is waited for (it takes milliseconds), never swallowed.
    """
    while not afut.done():
        try:
            await asyncio.shield(afut)
        except asyncio.CancelledError:
            continue
        except BaseException:  # noqa: BLE001 - its outcome is dropped: the caller was cancelled
            break
    if not afut.cancelled():
        afut.exception()  # mark retrieved: the caller is cancelled and will not look
