"""AsyncBuffer and BufferWriter: one worker thread, batching, drain on exit, backpressure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from ldt.agent.buffer import Buffer, BufferError, BufferInputError, BufferRow
from ldt.agent.buffer_writer import AsyncBuffer, BufferWriter
from ldt.backoff import Backoff
from ldt.contract import SeriesInfo
from ldt.reading import Quality, Reading

GIB = 1 << 30


def _abuf(path: Path) -> AsyncBuffer:
    return AsyncBuffer(Buffer(path=path / "b.db", max_bytes=GIB, max_age_s=86400.0))


def _info(n: int) -> SeriesInfo:
    return SeriesInfo(entity_id=f"urn:ngsi-ld:Device:d{n}", entity_type="Device", attr="temp")


def _reading(device: int, i: int) -> Reading:
    return Reading(device_id=f"d{device}", point="temp", value=float(i), observed_at_ms=i)


async def test_async_buffer_runs_in_one_named_thread(tmp_path: Path) -> None:
    async with _abuf(tmp_path) as abuf:
        sid = await abuf.series_id(_info(0))
        rows: list[BufferRow] = [(sid, i, i, Quality.GOOD, None) for i in range(10)]
        seqs = await asyncio.gather(*(abuf.append(rows) for _ in range(5)))
        assert sorted(s for r in seqs for s in r) == list(range(1, 51))
        assert [r.seq for r in await abuf.take_live(5)] == [46, 47, 48, 49, 50]
        assert len(await abuf.take_backfill(100, below_seq=46)) == 45
        await abuf.ack(range(1, 51))
        assert await abuf.enforce_limits(now_ms=100) == 0
        assert (await abuf.stats()).pending == 0
        assert await abuf.series([sid]) == {sid: _info(0)}
        names = {t.name for t in threading.enumerate()}
        assert any(n.startswith("ldt-buffer") for n in names)
    assert not any(t.name.startswith("ldt-buffer") for t in threading.enumerate())
    with pytest.raises(BufferError, match="not open"):
        await abuf.stats()


async def test_async_open_error_is_a_buffer_error(tmp_path: Path) -> None:
    (tmp_path / "b.db").write_bytes(b"junk" * 1000)
    abuf = _abuf(tmp_path)
    with pytest.raises(BufferError, match="corrupt"):
        await abuf.open()
    await abuf.close()


async def test_writer_drains_everything_on_exit(tmp_path: Path) -> None:
    """The SIGTERM path: readings queued but not yet committed are durable after exit."""
    async with _abuf(tmp_path) as abuf:
        ids = [await abuf.series_id(_info(d)) for d in range(5)]
        writer = BufferWriter(buffer=abuf, flush_interval_ms=10_000, flush_max_readings=500)

        async def produce(d: int) -> None:
            for i in range(400):
                await writer.put(ids[d], _reading(d, i))

        async with writer, asyncio.TaskGroup() as tg:
            for d in range(5):
                tg.create_task(produce(d), name=f"producer-{d}")
        assert writer.stats.committed == 2_000
        assert writer.stats.transactions <= 8  # batched, not one per reading
        got = await abuf.take_backfill(10_000)
    assert len(got) == 2_000
    for d in range(5):
        mine = [r for r in got if r.series_id == ids[d]]
        assert [r.observed_at_ms for r in mine] == list(range(400))  # per-producer order kept
        assert all(type(r.value) is float for r in mine)


async def test_flush_returns_when_durable(tmp_path: Path) -> None:
    path = tmp_path
    async with _abuf(path) as abuf:
        sid = await abuf.series_id(_info(0))
        async with BufferWriter(buffer=abuf, flush_interval_ms=10_000) as writer:
            for i in range(7):
                await writer.put(sid, _reading(0, i))
            async with asyncio.timeout(5):
                await writer.flush()
            assert (await abuf.stats()).pending == 7
            await writer.flush()  # nothing new: returns at once
            await writer.put(sid, _reading(0, 7))
            async with asyncio.timeout(5):
                await writer.flush()
            assert (await abuf.stats()).pending == 8
    # durable: a fresh process-equivalent open sees them
    async with _abuf(path) as again:
        assert (await again.stats()).pending == 8


async def test_bad_readings_are_refused_or_isolated(tmp_path: Path) -> None:
    async with _abuf(tmp_path) as abuf:
        sid = await abuf.series_id(_info(0))
        async with BufferWriter(buffer=abuf, flush_interval_ms=10_000) as writer:
            with pytest.raises(BufferInputError, match="NaN"):
                await writer.put(
                    sid, Reading(device_id="d", point="p", value=float("nan"), observed_at_ms=1)
                )
            await writer.put(sid, _reading(0, 1))
            await writer.put(sid + 99, _reading(0, 2))  # unknown series: only found at commit
            await writer.put(sid, _reading(0, 3))
            await writer.flush()
        assert writer.stats.rejected == 1
        assert [r.observed_at_ms for r in await abuf.take_backfill(10)] == [1, 3]


class _GatedTarget:
    """A stand-in for AsyncBuffer whose commits wait for a gate (or fail on demand)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.fail_next = 0
        self.rows: list[BufferRow] = []

    async def append(self, rows: Sequence[BufferRow]) -> range:
        await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise BufferError("disk I/O error (simulated)")
        first = len(self.rows) + 1
        self.rows.extend(rows)
        return range(first, first + len(rows))


async def test_full_queue_makes_put_wait() -> None:
    target = _GatedTarget()
    writer = BufferWriter(
        buffer=target, flush_interval_ms=1, flush_max_readings=2, queue_max_readings=4
    )
    async with writer:
        for i in range(6):  # 2 taken by the stuck commit, 4 fill the queue
            async with asyncio.timeout(2):
                await writer.put(1, _reading(0, i))
        blocked = asyncio.create_task(writer.put(1, _reading(0, 6)), name="blocked-put")
        await asyncio.sleep(0.05)
        assert not blocked.done()
        target.gate.set()
        async with asyncio.timeout(5):
            await blocked
            await writer.flush()
    assert [r[1] for r in target.rows] == list(range(7))


async def test_failed_commit_is_retried_and_flush_reports_it() -> None:
    target = _GatedTarget()
    target.gate.set()
    target.fail_next = 2
    writer = BufferWriter(
        buffer=target, flush_interval_ms=1, backoff=Backoff(base_s=0.01, cap_s=0.02)
    )
    async with writer:
        await writer.put(1, _reading(0, 1))
        with pytest.raises(BufferError, match="simulated"):
            await writer.flush()
        async with asyncio.timeout(5):
            for _ in range(10):  # each failed retry fails the waiting flush; then one succeeds
                try:
                    await writer.flush()
                except BufferError:
                    continue
                break
    assert writer.stats.failures == 2
    assert [r[1] for r in target.rows] == [1]


async def test_drain_deadline_reports_lost_readings() -> None:
    target = _GatedTarget()  # the gate never opens: storage hangs
    writer = BufferWriter(buffer=target, flush_interval_ms=1, drain_timeout_s=0.2)

    async def put_three_and_stop() -> None:
        async with writer:
            for i in range(3):
                await writer.put(1, _reading(0, i))

    with pytest.raises(BufferError, match="could not store 3 queued readings"):
        await put_three_and_stop()
    with pytest.raises(BufferError, match="not running"):
        await writer.put(1, _reading(0, 9))
