"""Sends buffered readings to the cloud in two lanes and marks them sent on ack.

Each cycle sends the *live* lane first (the newest unsent readings, above the
highest acknowledged seq) and then one *backfill* batch (the oldest unsent
readings, ascending). After a week-long outage the twin is therefore current
within one cycle, while the backlog still arrives oldest first. A batch is
acked in the buffer only after the cloud answered that it is committed; the
cloud applies batches idempotently by (gateway, seq), so a batch resent after
a crash between commit and ack changes nothing.

A batch the cloud refuses *as data* (400, 413, 422) is split in halves and
resent, so the readings next to a bad one still go through; a single reading
the cloud refuses is set aside in the buffer's ``rejected`` table (kept,
counted, logged) instead of blocking both lanes forever. A refusal of the
gateway itself (401, 403: wrong token, an entity owned by another gateway) is
not the data's fault: nothing is set aside, the uplink logs it and backs off
(capped) until an operator fixes the identity or the config.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import orjson

from ldt import __version__
from ldt.agent.batch_sizer import BatchSizer
from ldt.agent.buffer import BufferStats
from ldt.agent.transport import (
    Transport,
    TransportError,
    TransportRejectedError,
    TransportUnreachableError,
)
from ldt.agent.value_cipher import CipherError, ValueCipher
from ldt.backoff import Backoff
from ldt.contract import WIRE_VERSION, SeriesInfo
from ldt.drivers.tcp_probe import TcpProbe

__all__ = ["BufferLanes", "PendingReading", "Uplink", "UplinkStats"]

_log = logging.getLogger("ldt.agent.uplink")

_DATA_REFUSALS = frozenset({400, 413, 422})
"""Statuses that blame the batch's content, not the gateway: worth splitting the batch."""
STATUS_EVERY_S = 10.0
"""How often a batch carries the gateway's status (pending readings, backlog age, clock)."""


class PendingReading(Protocol):
    """A buffered reading as the uplink reads it."""

    @property
    def seq(self) -> int: ...
    @property
    def series_id(self) -> int: ...
    @property
    def observed_at_ms(self) -> int: ...
    @property
    def value(self) -> object: ...
    @property
    def quality(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


class BufferLanes(Protocol):
    """The part of the async buffer the uplink uses."""

    async def take_live(self, limit: int) -> Sequence[PendingReading]: ...
    async def take_backfill(
        self, limit: int, *, below_seq: int | None = None
    ) -> Sequence[PendingReading]: ...
    async def ack(self, seqs: Sequence[int]) -> None: ...
    async def quarantine(self, seqs: Sequence[int], why: str) -> int: ...
    async def series(self, ids: Sequence[int]) -> dict[int, SeriesInfo]: ...
    async def stats(self) -> BufferStats: ...


@dataclass(frozen=True, slots=True)
class _Opened:
    """A pending reading with its value opened (the buffer keeps it sealed)."""

    row: PendingReading
    value: object

    @property
    def seq(self) -> int:
        return self.row.seq

    @property
    def series_id(self) -> int:
        return self.row.series_id

    @property
    def observed_at_ms(self) -> int:
        return self.row.observed_at_ms

    @property
    def quality(self) -> str:
        return self.row.quality

    @property
    def reason(self) -> str | None:
        return self.row.reason


@dataclass(slots=True)
class UplinkStats:
    """Counters for logs and the fleet view."""

    batches_sent: int = 0
    readings_sent: int = 0
    duplicates: int = 0
    failures: int = 0
    rejected: int = 0
    quarantined: int = 0
    last_error: str | None = None
    last_success_ms: int | None = None


class Uplink:
    """Drains the buffer to the cloud until cancelled."""

    def __init__(
        self,
        *,
        gateway_id: str,
        buffer: BufferLanes,
        transport: Transport,
        batch_max: int = 5000,
        live_max: int = 1000,
        interval_s: float = 1.0,
        backoff: Backoff | None = None,
        cipher: ValueCipher | None = None,
        cloud_url: str | None = None,
    ) -> None:
        self._gateway_id = gateway_id
        self._probe: TcpProbe | None = None
        """While the cloud is unreachable, a bare TCP connect every ``PROBE_S`` ends the
        backoff as soon as it listens again: the first sync after an outage comes within
        seconds, not at the end of a delay that grows to a minute."""
        if cloud_url is not None:
            parts = urlsplit(cloud_url)
            default = 443 if parts.scheme == "https" else 80
            if parts.hostname:
                self._probe = TcpProbe(parts.hostname, parts.port or default)
        self._cipher = cipher
        self._buffer = buffer
        self._transport = transport
        self._batch_max = batch_max
        self.sizer = BatchSizer(maximum=batch_max)
        """The backfill batch size, adapted to the link (``batch_sizer``)."""
        self._live_max = live_max
        self._interval_s = interval_s
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=60.0)
        self._series: dict[int, SeriesInfo] = {}
        self._status_sent = -math.inf
        self.stats = UplinkStats()
        self.idle = asyncio.Event()
        """Set whenever a cycle found nothing left to send (tests and the demo wait on it)."""

    async def run(self) -> None:
        """Send forever; network faults back off and retry, nothing is dropped."""
        while True:
            try:
                more = await self.cycle()
            except TransportError as exc:
                self.stats.failures += 1
                if isinstance(exc, TransportRejectedError):
                    self.stats.rejected += 1
                if self.stats.last_error != str(exc):
                    _log.warning("sync failed; will retry", extra={"reason": str(exc)})
                self.stats.last_error = str(exc)
                delay = self._backoff.next_delay()
                if isinstance(exc, TransportUnreachableError) and self._probe is not None:
                    await self._wait_or_back(self._probe, delay)
                else:
                    await asyncio.sleep(delay)
                continue
            if self.stats.last_error is not None:
                _log.info("sync recovered", extra={"after_failures": self._backoff.attempt})
                self.stats.last_error = None
            self._backoff.reset()
            if not more:
                await asyncio.sleep(self._interval_s)

    @staticmethod
    async def _wait_or_back(probe: TcpProbe, delay: float) -> None:
        """Sleep ``delay``, or less: until a probe finds the cloud listening again."""
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, probe.every_s))
            if time.monotonic() < end and await probe.back(timeout_s=1.0):
                return

    async def cycle(self) -> bool:
        """Send one live and one backfill batch; True when a full backfill batch went out."""
        live = await self._buffer.take_live(self._live_max)
        if live:
            await self._send(live, "live")
        below = live[0].seq if live else None
        size = self.sizer.size
        backfill = await self._buffer.take_backfill(size, below_seq=below)
        if backfill:
            await self._send(backfill, "backfill")
        more = len(backfill) >= size
        if not live and not backfill:
            self.idle.set()
        else:
            self.idle.clear()
        return more

    async def _send(
        self, rows: Sequence[PendingReading], lane: Literal["live", "backfill"]
    ) -> None:
        try:
            await self._send_batch(rows, lane)
        except TransportRejectedError as exc:
            if exc.status not in _DATA_REFUSALS:
                raise
            if len(rows) > 1:  # find the bad reading(s); the rest go through
                half = len(rows) // 2
                await self._send(rows[:half], lane)
                await self._send(rows[half:], lane)
                return
            why = f"cloud refused it ({exc.status}): {exc.detail}"
            await self._buffer.quarantine([rows[0].seq], why)
            self.stats.quarantined += 1
            _log.error(
                "reading set aside in the buffer's rejected table",
                extra={"seq": rows[0].seq, "reason": why},
            )

    async def _send_batch(
        self, rows: Sequence[PendingReading], lane: Literal["live", "backfill"]
    ) -> None:
        if self._cipher is not None:
            rows = await self._opened(rows)
            if not rows:
                return
        body = await self._encode(rows, lane)
        started = time.monotonic()
        try:
            ack = await self._transport.send(body)
        except TransportRejectedError:
            raise  # the link worked: the data was refused (handled by the caller)
        except TransportError:
            if lane == "backfill":
                self.sizer.failed()
            raise
        if lane == "backfill":
            self.sizer.sent(len(rows), time.monotonic() - started)
        await self._buffer.ack([r.seq for r in rows])
        self.stats.batches_sent += 1
        self.stats.readings_sent += len(rows)
        self.stats.duplicates += ack.duplicates
        self.stats.last_success_ms = int(time.time() * 1000)

    async def _opened(self, rows: Sequence[PendingReading]) -> list[PendingReading]:
        """The rows with their values opened; rows sealed by another key are set aside."""
        assert self._cipher is not None
        opened: list[PendingReading] = []
        for row in rows:
            try:
                value = self._cipher.open(row.value)
            except CipherError as exc:
                await self._buffer.quarantine([row.seq], str(exc))
                self.stats.quarantined += 1
                _log.error("buffered value set aside", extra={"seq": row.seq, "reason": str(exc)})
                continue
            opened.append(row if value is row.value else _Opened(row, value))
        return opened

    async def _encode(self, rows: Sequence[PendingReading], lane: str) -> bytes:
        ids = {r.series_id for r in rows}
        missing = [i for i in ids if i not in self._series]
        if missing:
            self._series.update(await self._buffer.series(missing))
        series = {str(i): self._series[i].model_dump(exclude_none=True) for i in ids}
        readings = [
            (r.seq, r.series_id, r.observed_at_ms, r.value, str(r.quality), r.reason) for r in rows
        ]
        batch: dict[str, object] = {
            "v": WIRE_VERSION,
            "gateway_id": self._gateway_id,
            "lane": lane,
            "series": series,
            "readings": readings,
        }
        now = time.monotonic()
        if now - self._status_sent >= STATUS_EVERY_S:  # a count over the buffer: not per batch
            stats = await self._buffer.stats()
            batch["status"] = {
                "agent_version": __version__,
                "pending": stats.pending,
                "oldest_pending_ms": stats.oldest_pending_ms,
                "sent_at_ms": int(time.time() * 1000),
            }
            self._status_sent = now
        return orjson.dumps(batch)
