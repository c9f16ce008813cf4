"""Flash wear: bytes written to storage per buffered reading, in a realistic steady state.

Workload, in real time: 50 devices x 10 points polled at 1 Hz (500 readings/s)
put into a ``BufferWriter`` (default flush: every 200 ms or 2000 readings)
over the durable buffer; an uplink stand-in every second takes the live lane
(<= 1000) and a backfill batch (<= 5000) and acks them, as the real uplink
does after the cloud commits; housekeeping runs ``enforce_limits`` (pruning
acked rows) every 30 s (every 5 s with ``--quick``).

Measured: ``write_bytes`` from /proc/self/io over the steady-state window
(after a warm-up): bytes this process caused to be sent to the block device,
including the fsync'd WAL and checkpoints into the database file. Where the
kernel reports 0 (some container file systems), ``wchar`` (bytes passed to
write syscalls) is used instead and the table says so.

The payload a reading carries is counted as 29 bytes (seq u64, series u32,
observed_at u64, value f64, quality u8), so the ratio is the write
amplification of the whole stack (SQLite pages, WAL frames, file system).

    python bench/flash_wear.py            # 60 s per configuration, 3 configurations
    python bench/flash_wear.py --quick    # 8 s, default configuration only (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer, BufferWriter
from ldt.contract import SeriesInfo
from ldt.reading import Reading

DEVICES = 50
POINTS = 10
PAYLOAD_BYTES = 8 + 4 + 8 + 8 + 1
WARMUP_S = 2.0


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    synchronous: Literal["full", "normal"]
    flush_interval_ms: int


def _io() -> dict[str, int]:
    with open("/proc/self/io", encoding="ascii") as fh:
        return {k: int(v) for k, v in (line.split(": ") for line in fh.read().splitlines())}


async def _device(writer: BufferWriter, sids: list[int], dev: int, stop: asyncio.Event) -> None:
    rng = random.Random(dev)
    tick = time.monotonic() + rng.random()  # devices are not in phase
    while not stop.is_set():
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
        now = int(time.time() * 1000)
        for p, sid in enumerate(sids):
            await writer.put(
                sid,
                Reading(
                    device_id=f"d{dev}",
                    point=f"p{p}",
                    value=round(rng.uniform(0, 500), 2),
                    observed_at_ms=now,
                ),
            )
        tick += 1.0


async def _uplink(abuf: AsyncBuffer, stop: asyncio.Event) -> int:
    sent = 0
    while not stop.is_set():
        await asyncio.sleep(1.0)
        live = await abuf.take_live(1000)
        back = await abuf.take_backfill(5000, below_seq=live[0].seq if live else None)
        for batch in (live, back):
            if batch:
                await abuf.ack([r.seq for r in batch])
                sent += len(batch)
    return sent


async def _housekeeping(abuf: AsyncBuffer, every_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(every_s)
        await abuf.enforce_limits()


async def run(
    cfg: Config, path: Path, duration_s: float, housekeeping_s: float
) -> tuple[int, int, str, int]:
    abuf = AsyncBuffer(
        Buffer(path=path, max_bytes=256 << 20, max_age_s=7 * 86400, synchronous=cfg.synchronous)
    )
    async with abuf:
        sids = [
            [
                await abuf.series_id(
                    SeriesInfo(
                        entity_id=f"urn:ngsi-ld:Device:d{d}", entity_type="Device", attr=f"p{p}"
                    )
                )
                for p in range(POINTS)
            ]
            for d in range(DEVICES)
        ]
        stop = asyncio.Event()
        writer = BufferWriter(buffer=abuf, flush_interval_ms=cfg.flush_interval_ms)
        async with writer, asyncio.TaskGroup() as tg:
            for d in range(DEVICES):
                tg.create_task(_device(writer, sids[d], d, stop), name=f"device-{d}")
            uplink = tg.create_task(_uplink(abuf, stop), name="uplink")
            tg.create_task(_housekeeping(abuf, housekeeping_s, stop), name="housekeeping")
            await asyncio.sleep(WARMUP_S)
            await writer.flush()
            before, stored0 = _io(), writer.stats.committed
            await asyncio.sleep(duration_s)
            await writer.flush()
            after, stored1 = _io(), writer.stats.committed
            stop.set()
        sent = uplink.result()
    key = "write_bytes" if after["write_bytes"] > before["write_bytes"] else "wchar"
    return stored1 - stored0, after[key] - before[key], key, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run for CI")
    args = parser.parse_args()
    duration = 8.0 if args.quick else 60.0
    housekeeping = 5.0 if args.quick else 30.0
    configs = [Config("default", "full", 200)]
    if not args.quick:
        configs += [Config("flush 1 s", "full", 1000), Config("synchronous=normal", "normal", 200)]
    rows: list[tuple[object, ...]] = []
    with tempfile.TemporaryDirectory(
        prefix="ldt-bench-wear-", dir=os.environ.get("LDT_BENCH_DIR")
    ) as d:
        for i, cfg in enumerate(configs):
            stored, written, key, sent = asyncio.run(
                run(cfg, Path(d) / f"wear{i}.db", duration, housekeeping)
            )
            per = written / max(stored, 1)
            rows.append(
                (
                    cfg.name,
                    cfg.synchronous,
                    f"{cfg.flush_interval_ms} ms",
                    f"{stored:,}",
                    f"{sent:,}",
                    f"{written / duration / 1024:,.1f}",
                    f"{per:,.1f}",
                    f"{per / PAYLOAD_BYTES:,.1f}",
                    key,
                )
            )
    print_table(
        f"flash wear, {DEVICES} devices x {POINTS} points at 1 Hz, {duration:g} s steady state "
        f"(payload {PAYLOAD_BYTES} B/reading)",
        (
            "config",
            "synchronous",
            "flush",
            "stored",
            "acked",
            "KiB/s written",
            "bytes/reading",
            "ratio to payload",
            "counter",
        ),
        rows,
    )


if __name__ == "__main__":
    main()
