"""Ingest throughput: driver output (``Reading`` objects) -> BufferWriter -> durable buffer.

Fifty producer tasks (one per device, as the pollers are) put pre-built
readings into one ``BufferWriter`` with its default flush settings (200 ms /
2000 readings), which commits them through ``AsyncBuffer`` into the SQLite
buffer. The clock stops when the writer has drained, i.e. when every reading
is durable.

Baseline, measured in the same run on the same disk: a bare SQLite
``executemany`` of the same rows into a plain table, WAL, the same
``synchronous`` setting, one transaction per 2000 rows — the cost of storing
them at all. The ratio is pipeline / baseline (target: >= 0.25).

    python bench/pipeline.py            # 1,000,000 readings per row
    python bench/pipeline.py --quick    # 100,000 readings (CI, a few seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer, BufferWriter
from ldt.contract import SeriesInfo
from ldt.reading import Quality, Reading

DEVICES = 50
POINTS = 10
FLUSH_MAX = 2000  # BufferWriter's default, used for the baseline's batch size too
Sync = Literal["full", "normal"]


def driver_output(n: int) -> list[list[Reading]]:
    """Per device, the readings its driver would produce: mostly floats, some ints/bools/bad."""
    rng = random.Random(7)
    t0 = int(time.time() * 1000)
    per_dev: list[list[Reading]] = [[] for _ in range(DEVICES)]
    for i in range(n):
        dev, point = (i // POINTS) % DEVICES, i % POINTS
        kind = point % 5
        value: float | int | bool | None
        if kind == 3:
            value = rng.randrange(0, 1 << 20)
        elif kind == 4:
            value = rng.random() < 0.5
        else:
            value = round(rng.uniform(200, 250), 3)
        quality, reason = Quality.GOOD, None
        if rng.random() < 0.001:
            value, quality, reason = None, Quality.BAD, "timeout after 2 s"
        per_dev[dev].append(
            Reading(
                device_id=f"dev{dev}",
                point=f"p{point}",
                value=value,
                observed_at_ms=t0 + i // (DEVICES * POINTS) * 1000,
                quality=quality,
                reason=reason,
            )
        )
    return per_dev


def raw_rate(path: Path, per_dev: list[list[Reading]], sync: Sync) -> float:
    codes = {Quality.GOOD: 0, Quality.BAD: 1, Quality.STALE: 2}
    rows = [
        (d * POINTS + int(r.point[1:]), r.observed_at_ms, r.value, codes[r.quality], r.reason)
        for d, readings in enumerate(per_dev)
        for r in readings
    ]
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={sync.upper()}")
    con.execute("CREATE TABLE r (seq INTEGER PRIMARY KEY, s INT, ts INT, v, q INT, reason TEXT)")
    t = time.perf_counter()
    for start in range(0, len(rows), FLUSH_MAX):
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO r (s, ts, v, q, reason) VALUES (?,?,?,?,?)",
            rows[start : start + FLUSH_MAX],
        )
        con.execute("COMMIT")
    elapsed = time.perf_counter() - t
    con.close()
    return len(rows) / elapsed


async def pipeline_rate(path: Path, per_dev: list[list[Reading]], sync: Sync) -> tuple[float, int]:
    abuf = AsyncBuffer(
        Buffer(path=path, max_bytes=8 << 30, max_age_s=86400 * 365, synchronous=sync)
    )
    async with abuf:
        ids = {
            (d, p): await abuf.series_id(
                SeriesInfo(
                    entity_id=f"urn:ngsi-ld:Device:dev{d}", entity_type="Device", attr=f"p{p}"
                )
            )
            for d in range(DEVICES)
            for p in range(POINTS)
        }
        writer = BufferWriter(buffer=abuf)  # default flush settings

        async def produce(dev: int, readings: list[Reading]) -> None:
            sids = [ids[dev, p] for p in range(POINTS)]
            put = writer.put
            for r in readings:
                await put(sids[int(r.point[1:])], r)

        t = time.perf_counter()
        async with writer, asyncio.TaskGroup() as tg:
            for dev, readings in enumerate(per_dev):
                tg.create_task(produce(dev, readings), name=f"driver-{dev}")
        elapsed = time.perf_counter() - t
        stats = await abuf.stats()
    total = sum(len(r) for r in per_dev)
    if stats.pending != total:
        raise SystemExit(f"pipeline lost readings: {stats.pending} of {total} stored")
    return total / elapsed, writer.stats.transactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run for CI")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    per_dev = driver_output(n)
    rows: list[tuple[object, ...]] = []
    with tempfile.TemporaryDirectory(
        prefix="ldt-bench-pipeline-", dir=os.environ.get("LDT_BENCH_DIR")
    ) as d:
        tmp = Path(d)
        for sync in ("full", "normal"):
            raw = raw_rate(tmp / f"raw-{sync}.db", per_dev, sync)
            rate, txns = asyncio.run(pipeline_rate(tmp / f"buf-{sync}.db", per_dev, sync))
            rows.append(
                (f"raw SQLite executemany, {FLUSH_MAX}/txn", sync, n, f"{raw:,.0f}", "1.00", "")
            )
            rows.append(
                (
                    "Reading -> BufferWriter -> buffer",
                    sync,
                    n,
                    f"{rate:,.0f}",
                    f"{rate / raw:.2f}",
                    txns,
                )
            )
    print_table(
        f"ingest pipeline, {n:,} readings from {DEVICES} producers "
        f"(SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores)",
        ("path", "synchronous", "readings", "readings/s", "ratio to raw", "transactions"),
        rows,
    )


if __name__ == "__main__":
    main()
