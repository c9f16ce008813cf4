"""``BufferWriter``: batches readings from many producers into few buffer transactions.

Why batch: with ``synchronous=full`` every commit costs an fsync (milliseconds
on an SD card) and rewrites the b-tree's right-edge page, so committing each
reading alone would cap throughput at a few hundred readings/s and multiply
flash wear. The writer commits up to ``flush_max_readings`` rows per
transaction, or whatever arrived within ``flush_interval_ms`` of the first
waiting reading.

Durability contract: a reading is durable (and may be reported as such) only
after the transaction holding it committed. ``put`` returning means *queued*,
not durable; ``flush()`` returns once everything put before it is durable.

Backpressure: the queue is bounded (``queue_max_readings``, by default twice
``flush_max_readings``). When it is full, ``put`` waits, which slows the
drivers' polling instead of growing memory or dropping readings. It fills
only if the disk is slower than the devices or failing.

Failures: a commit that fails (disk full, I/O error) is retried with capped
backoff, holding its batch (and, through the full queue, the producers);
``flush()`` waiters get the ``BufferError`` at once. A row the buffer refuses
as malformed is logged and skipped, without holding up the rest of its batch.

Shutdown (the SIGTERM drain path): leaving ``async with writer:`` commits
everything queued before returning, within ``drain_timeout_s``; if that fails
a ``BufferError`` says how many readings were not stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from ldt.agent.buffer import BufferError, BufferInputError, BufferRow, check_value
from ldt.agent.buffer_async import AsyncBuffer
from ldt.backoff import Backoff
from ldt.contract import wire_value
from ldt.reading import Reading

__all__ = ["AppendTarget", "AsyncBuffer", "BufferWriter", "WriterStats"]

_log = logging.getLogger("ldt.agent.buffer")


class AppendTarget(Protocol):
    """What the writer needs: ``AsyncBuffer.append``."""

    async def append(self, rows: Sequence[BufferRow]) -> range: ...


@dataclass(slots=True)
class WriterStats:
    """Counters for logs: readings ``committed``; ``refused`` by a full ``drop_newest``
    buffer; ``rejected`` as malformed; ``failures`` of commits (retried)."""

    committed: int = 0
    transactions: int = 0
    refused: int = 0
    rejected: int = 0
    failures: int = 0
    last_error: str | None = None


class BufferWriter:
    """A bounded queue and one committing task; ``async with writer:`` runs it."""

    def __init__(
        self,
        *,
        buffer: AppendTarget,
        flush_interval_ms: int = 200,
        flush_max_readings: int = 2000,
        queue_max_readings: int | None = None,
        drain_timeout_s: float = 15.0,  # inside the stop deadline (stop_watchdog.py)
        backoff: Backoff | None = None,
    ) -> None:
        if flush_interval_ms <= 0 or flush_max_readings <= 0:
            raise ValueError("flush_interval_ms and flush_max_readings must be positive")
        self._buffer = buffer
        self._interval_s = flush_interval_ms / 1000
        self._max = flush_max_readings
        self._queue_max = queue_max_readings or 2 * flush_max_readings
        self._drain_timeout_s = drain_timeout_s
        self._backoff = backoff or Backoff(base_s=0.1, cap_s=5.0)
        self._queue: asyncio.Queue[BufferRow] | None = None
        self._has_items: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._put_total = 0
        self._done_total = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.stats = WriterStats()

    async def __aenter__(self) -> Self:
        if self._task is not None:
            raise BufferError("the buffer writer is already running")
        self._queue = asyncio.Queue(maxsize=self._queue_max)
        self._has_items = asyncio.Event()
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="ldt-buffer-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Commit everything queued, then stop the task (also when the body failed)."""
        task = self._task
        if task is None:
            return
        self._closing = True
        self._kick()
        try:
            async with asyncio.timeout(self._drain_timeout_s):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            lost = self._put_total - self._done_total
            err = BufferError(
                f"buffer writer could not store {lost} queued readings within "
                f"{self._drain_timeout_s:g} s ({self.stats.last_error or 'storage too slow'})"
            )
            if exc is None:
                raise err from None
            _log.error("%s", err)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        finally:
            self._task = None
            self._fail_waiters(BufferError("the buffer writer stopped"))

    async def put(self, series_id: int, reading: Reading) -> None:
        """Queue one reading; waits while the queue is full (backpressure).

        Raises ``BufferInputError`` at once for a value the buffer cannot store
        (so one bad reading never holds up a batch) and ``BufferError`` if the
        writer is not running.
        """
        queue = self._queue
        if queue is None or self._closing or self._task is None or self._task.done():
            raise BufferError("the buffer writer is not running")
        value = wire_value(reading.value)
        if type(value) is not float or not math.isfinite(value):
            check_value(value)
        await queue.put((series_id, reading.observed_at_ms, value, reading.quality, reading.reason))
        self._put_total += 1
        if queue.qsize() >= self._max:
            self._kick()
        elif self._has_items is not None and not self._has_items.is_set():
            self._has_items.set()

    async def flush(self) -> None:
        """Commit now; returns when every reading put before this call is durable.

        Raises ``BufferError`` if a commit failed meanwhile (the writer keeps
        retrying it; call ``flush`` again to wait for the retry).
        """
        target = self._put_total
        if self._done_total >= target:
            return
        if self._task is None or self._task.done():
            raise BufferError("the buffer writer is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        self._kick()
        await fut

    # -- the committing task -----------------------------------------------------------------

    def _kick(self) -> None:
        if self._wake is not None and self._has_items is not None:
            self._wake.set()
            self._has_items.set()

    async def _run(self) -> None:
        queue, has_items, wake = self._queue, self._has_items, self._wake
        assert queue is not None
        assert has_items is not None
        assert wake is not None
        while True:
            if queue.empty():
                if self._closing:
                    return
                has_items.clear()
                await has_items.wait()
                continue
            if queue.qsize() < self._max and not self._waiters and not self._closing:
                wake.clear()
                try:
                    async with asyncio.timeout(self._interval_s):
                        await wake.wait()
                except TimeoutError:
                    pass
            n = min(self._max, queue.qsize())
            batch = [queue.get_nowait() for _ in range(n)]
            await self._commit(batch)

    async def _commit(self, batch: list[BufferRow]) -> None:
        """Store ``batch`` (retrying storage failures until it is stored)."""
        while True:
            try:
                seqs = await self._buffer.append(batch)
            except BufferInputError:
                await self._commit_one_by_one(batch)
                return
            except BufferError as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                _log.error("cannot store readings; retrying", extra={"reason": str(exc)})
                self._fail_waiters(exc)
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self._backoff.reset()
            self._account(len(batch), len(seqs))
            return

    async def _commit_one_by_one(self, batch: list[BufferRow]) -> None:
        """Isolate malformed rows: store the others, log and count the bad ones."""
        for row in batch:
            while True:
                try:
                    seqs = await self._buffer.append([row])
                except BufferInputError as exc:
                    self.stats.rejected += 1
                    _log.error("reading rejected by the buffer", extra={"reason": str(exc)})
                    self._account(1, 0, rejected=True)
                    break
                except BufferError as exc:
                    self.stats.failures += 1
                    self.stats.last_error = str(exc)
                    self._fail_waiters(exc)
                    await asyncio.sleep(self._backoff.next_delay())
                    continue
                self._account(1, len(seqs))
                break

    def _account(self, handled: int, stored: int, *, rejected: bool = False) -> None:
        self.stats.transactions += 1
        self.stats.committed += stored
        if not rejected:
            self.stats.refused += handled - stored
        self._done_total += handled
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, fut in self._waiters:
            if target <= self._done_total:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((target, fut))
        self._waiters = still

    def _fail_waiters(self, exc: BufferError) -> None:
        waiters, self._waiters = self._waiters, []
        for _, fut in waiters:
            if not fut.done():
                fut.set_exception(exc)
