"""Flash wear: bytes the block device writes per buffered reading, in a realistic steady state.

Workload, in real time: DEVICES x POINTS polled at 1 Hz put into a ``BufferWriter`` (default
flush: every 200 ms or 2000 readings) over the durable buffer; an uplink stand-in every
second takes the live lane (<= 1000) and a backfill batch (<= 5000) and acks them, as the
real uplink does after the cloud commits; housekeeping runs ``enforce_limits`` every 30 s
(5 s with ``--quick``). Measured over a window after a warm-up (the first segment is
filled with zeros once, and the bookkeeping file finds its size).

Measured, per reading stored in the window:
- **block device**: sectors written, from ``/sys/dev/block/MAJ:MIN/stat`` of the device that
  holds the buffer. This is what the card sees, the file system's journal included. As
  root (with ``losetup`` and ``mkfs.ext4``) the run gets a disk of its own: a 512 MiB
  ext4 image (4 KiB blocks, the mkfs defaults a Raspberry Pi OS card has) on a loop
  device, so no other writer is counted. Otherwise the disk that holds ``LDT_BENCH_DIR``
  (or the temp folder) is measured, every writer on it included; where even that counter
  is missing, ``write_bytes`` of /proc/self/io stands in. The table says which.
- **records**: the bytes of the buffer's records (compressed rows and headers);
- **syncs/s**: ``fdatasync`` of records plus commits of the bookkeeping file.

The card-life estimate is a rough model, printed with its assumptions: a card's NAND
endures ``capacity x P/E cycles`` of writes, and garbage collection writes ``GC`` times
what the host sends. "bytes" takes the block device's bytes; "pages" assumes each synced
write costs at least one whole NAND page (16 KiB), the pessimistic case of a card that
does not merge small writes.

    python bench/flash_wear.py            # 10 s warm-up + 60 s per configuration, 4 of them
    python bench/flash_wear.py --quick    # 3 s + 8 s, the default configuration only (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer, BufferWriter
from ldt.contract import SeriesInfo
from ldt.reading import Reading

PAYLOAD_BYTES = 8 + 4 + 8 + 8 + 1
"""seq u64, series u32, observed_at u64, value f64, quality u8: what a reading carries."""
NAND_PAGE = 16 << 10
GC = 1.5
CARDS = (("consumer 32 GB TLC", 32e9, 500), ("industrial 8 GB pSLC", 8e9, 30_000))
"""(name, bytes, P/E cycles). TLC cards are rated ~500-1,000 cycles; pSLC ~20,000-30,000."""


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    devices: int
    points: int
    flush_interval_ms: int

    @property
    def rate(self) -> int:
        return self.devices * self.points


def _io() -> dict[str, int]:
    with open("/proc/self/io", encoding="ascii") as fh:
        return {k: int(v) for k, v in (line.split(": ") for line in fh.read().splitlines())}


def _disk_stat(folder: Path) -> Path | None:
    """The ``stat`` file of the whole disk that holds ``folder`` (a partition's parent)."""
    dev = os.stat(folder).st_dev
    node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not node.exists():
        return None
    real = node.resolve()
    disk = real.parent if (real / "partition").exists() else real
    stat = disk / "stat"
    return stat if stat.exists() else None


@contextlib.contextmanager
def _scratch_disk(parent: str | None) -> Iterator[Path | None]:
    """A fresh ext4 on a loop device, mounted, as root; else None (measure where we are)."""
    tools = [shutil.which(t) for t in ("losetup", "mkfs.ext4", "mount", "umount")]
    if os.geteuid() != 0 or None in tools:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ldt-bench-disk-", dir=parent) as d:
        image, mnt = Path(d) / "card.ext4", Path(d) / "mnt"
        mnt.mkdir()
        with image.open("wb") as fh:
            fh.truncate(512 << 20)
        # no lazy init: ext4's background zeroing of inode tables would count as ours
        made = subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-b", "4096", "-E",
             "lazy_itable_init=0,lazy_journal_init=0", str(image)],
            capture_output=True, check=False,
        )  # fmt: skip
        if (
            made.returncode != 0
            or subprocess.run(
                ["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, check=False
            ).returncode
        ):
            yield None
            return
        try:
            yield mnt
        finally:
            subprocess.run(["umount", str(mnt)], capture_output=True, check=False)


def _sectors(stat: Path | None) -> int:
    return int(stat.read_text().split()[6]) if stat is not None else 0


async def _device(writer: BufferWriter, sids: list[int], dev: int, stop: asyncio.Event) -> None:
    rng = random.Random(dev)
    tick = time.monotonic() + rng.random()  # devices are not in phase
    while not stop.is_set():
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
        now = int(time.time() * 1000)
        for p, sid in enumerate(sids):
            value = round(rng.uniform(0, 500), 2)
            await writer.put(sid, Reading(f"d{dev}", f"p{p}", value, now))
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


@dataclass(frozen=True, slots=True)
class Result:
    stored: int
    block_bytes: int
    counter: str
    record_bytes: int
    syncs: int
    acked: int


async def run(
    cfg: Config, path: Path, warmup_s: float, duration_s: float, housekeeping_s: float
) -> Result:
    buf = Buffer(path=path, max_bytes=256 << 20, max_age_s=7 * 86400)
    abuf = AsyncBuffer(buf)
    stat = _disk_stat(path.parent)
    async with abuf:
        sids = [
            [
                await abuf.series_id(
                    SeriesInfo(
                        entity_id=f"urn:ngsi-ld:Device:d{d}", entity_type="Device", attr=f"p{p}"
                    )
                )
                for p in range(cfg.points)
            ]
            for d in range(cfg.devices)
        ]
        stop = asyncio.Event()
        writer = BufferWriter(buffer=abuf, flush_interval_ms=cfg.flush_interval_ms)
        async with writer, asyncio.TaskGroup() as tg:
            for d in range(cfg.devices):
                tg.create_task(_device(writer, sids[d], d, stop), name=f"device-{d}")
            uplink = tg.create_task(_uplink(abuf, stop), name="uplink")
            tg.create_task(_housekeeping(abuf, housekeeping_s, stop), name="housekeeping")
            await asyncio.sleep(warmup_s)
            await writer.flush()
            os.sync()  # what the warm-up dirtied is written before the window opens
            io0, sec0, stored0 = _io(), _sectors(stat), writer.stats.committed
            rec0, syncs0 = buf.log.appended_bytes, buf.log.appends + buf.persists
            await asyncio.sleep(duration_s)
            await writer.flush()
            os.sync()  # and what the window dirtied is inside it
            io1, sec1, stored1 = _io(), _sectors(stat), writer.stats.committed
            rec1, syncs1 = buf.log.appended_bytes, buf.log.appends + buf.persists
            stop.set()
        acked = uplink.result()
    if stat is not None:
        block, counter = (sec1 - sec0) * 512, f"block device {stat.parent.name}"
    else:
        block, counter = io1["write_bytes"] - io0["write_bytes"], "write_bytes"
    return Result(stored1 - stored0, block, counter, rec1 - rec0, syncs1 - syncs0, acked)


def _years(card_bytes: float, cycles: int, bytes_per_s: float) -> float:
    per_day = bytes_per_s * GC * 86400
    return math.inf if per_day <= 0 else card_bytes * cycles / per_day / 365


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run for CI")
    args = parser.parse_args()
    warmup, duration, housekeeping = (3.0, 8.0, 5.0) if args.quick else (10.0, 60.0, 30.0)
    configs = [Config("default", 50, 10, 200)]
    if not args.quick:
        configs += [
            Config("flush 1 s", 50, 10, 1000),
            Config("flush 5 s", 50, 10, 5000),
            Config("10,000 readings/s", 100, 100, 200),
        ]
    rows: list[tuple[object, ...]] = []
    life: list[tuple[object, ...]] = []
    with (
        _scratch_disk(os.environ.get("LDT_BENCH_DIR")) as disk,
        tempfile.TemporaryDirectory(
            prefix="ldt-bench-wear-", dir=disk or os.environ.get("LDT_BENCH_DIR")
        ) as d,
    ):
        for i, cfg in enumerate(configs):
            r = asyncio.run(run(cfg, Path(d) / f"wear{i}.db", warmup, duration, housekeeping))
            per = r.block_bytes / max(r.stored, 1)
            syncs_s = r.syncs / duration
            rows.append(
                (
                    cfg.name,
                    f"{cfg.rate:,}/s",
                    f"{cfg.flush_interval_ms} ms",
                    f"{r.stored:,}",
                    f"{r.acked:,}",
                    f"{per:,.1f}",
                    f"{r.record_bytes / max(r.stored, 1):,.1f}",
                    f"{per / PAYLOAD_BYTES:,.2f}",
                    f"{syncs_s:,.1f}",
                    r.counter,
                )
            )
            host_s = per * cfg.rate
            pages_s = (
                syncs_s * max(1.0, math.ceil(host_s / max(syncs_s, 1e-9) / NAND_PAGE)) * NAND_PAGE
            )
            for card, size, cycles in CARDS:
                life.append(
                    (
                        cfg.name,
                        card,
                        f"{host_s / 1024:,.1f}",
                        f"{_years(size, cycles, host_s):,.1f}",
                        f"{_years(size, cycles, pages_s):,.1f}",
                    )
                )
    print_table(
        f"flash wear: {duration:g} s steady state after {warmup:g} s (payload {PAYLOAD_BYTES} "
        "B/reading; ratio = block bytes / payload)",
        (
            "config",
            "readings",
            "flush",
            "stored",
            "acked",
            "block B/reading",
            "record B/reading",
            "ratio",
            "syncs/s",
            "counter",
        ),
        rows,
    )
    print_table(
        f"estimated card life, years (model: NAND writes = host writes x GC {GC}; "
        f"'pages': each synced write costs at least one {NAND_PAGE >> 10} KiB NAND page)",
        ("config", "card", "host KiB/s", "years (bytes)", "years (pages)"),
        life,
    )


if __name__ == "__main__":
    main()
