"""Sync throughput: readings/s from a full gateway buffer into the cloud's store over loopback.

Also, in the same run: mutual TLS 1.3 (``ldt cloud serve --tls``, the gateway
provisioned with a claim token) against plain HTTP, and gzip against none, with the
request body bytes per reading.

The cloud runs as its own process (``ldt cloud serve``), as in production; the
agent's real Uplink drains a pre-filled buffer through the real HTTP transport
until nothing is pending. The baseline, measured in the same run, is a bare
SQLite ``executemany`` of the same rows (WAL, synchronous=FULL, same batch
size) — the cost of just storing them once, with no network and no buffer.

    python bench/sync.py            # 200,000 readings
    python bench/sync.py --quick    # 30,000 readings (CI)
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cloud import start_cloud, start_tls_cloud
from _table import print_table

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer
from ldt.agent.identity import Identity, client_context
from ldt.agent.transport import HttpTransport
from ldt.agent.uplink import Uplink
from ldt.cloud.ngsild.device_model import READING_ID_PREFIX
from ldt.contract import SeriesInfo
from ldt.reading import Quality

SERIES = 50
GATEWAY = "gw-bench"


def _rows(n: int, series_ids: list[int]) -> list[tuple[int, int, float, Quality, None]]:
    rng = random.Random(7)
    t0 = int(time.time() * 1000) - n
    sids = [series_ids[i % len(series_ids)] for i in range(n)]
    return [
        (sid, t0 + i, round(rng.uniform(200, 250), 3), Quality.GOOD, None)
        for i, sid in enumerate(sids)
    ]


def fill_buffer(path: Path, n: int) -> None:
    buf = Buffer(path=path, max_bytes=8 << 30, max_age_s=86400 * 365)
    buf.open()
    try:
        ids = [
            buf.series_id(
                SeriesInfo(
                    entity_id=f"urn:ngsi-ld:Device:{GATEWAY}:m{i // 10}",
                    entity_type="Device",
                    attr=f"p{i % 10}",
                    unit="VLT",
                )
            )
            for i in range(SERIES)
        ]
        rows = _rows(n, ids)
        for start in range(0, n, 5000):
            buf.append(rows[start : start + 5000])
    finally:
        buf.close()


def raw_sqlite_rate(tmp: Path, n: int, batch: int) -> float:
    rows = [(r[0], r[1], r[2], 0, None) for r in _rows(n, list(range(SERIES)))]
    con = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE r (seq INTEGER PRIMARY KEY, s INT, ts INT, v, q INT, reason TEXT)")
    t = time.perf_counter()
    for start in range(0, n, batch):
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO r (s, ts, v, q, reason) VALUES (?,?,?,?,?)", rows[start : start + batch]
        )
        con.execute("COMMIT")
    elapsed = time.perf_counter() - t
    con.close()
    return n / elapsed


async def drain(path: Path, transport: HttpTransport, batch: int) -> tuple[int, float]:
    """Send the whole buffer through ``transport``; (readings sent, seconds)."""
    abuf = AsyncBuffer(Buffer(path=path, max_bytes=8 << 30, max_age_s=86400 * 365))
    await abuf.open()
    uplink = Uplink(
        gateway_id=GATEWAY, buffer=abuf, transport=transport, batch_max=batch, live_max=1
    )
    try:
        t = time.perf_counter()
        while await uplink.cycle():
            pass
        while (await abuf.stats()).pending:
            await uplink.cycle()
        elapsed = time.perf_counter() - t
    finally:
        await transport.aclose()
        await abuf.close()
    return uplink.stats.readings_sent, elapsed


def cloud_seqs(db: Path) -> tuple[int, int, int]:
    """(count, min seq, max seq) the cloud stored for the gateway: exactly once means (n, 1, n)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        # every synced reading is a temporal instance named after its gateway and seq
        prefix = f"{READING_ID_PREFIX}{GATEWAY}:"
        seqs = [
            int(r[0][len(prefix) :])
            for r in con.execute(
                "SELECT instance_id FROM attr_instances WHERE instance_id >= ? AND instance_id < ?",
                (prefix, prefix[:-1] + ";"),
            )
        ]
    finally:
        con.close()
    return len(set(seqs)), min(seqs, default=0), max(seqs, default=0)


plain_bytes: list[float] = [0.0]


def one_run(run: Path, n: int, batch: int, *, tls: bool, gzip: bool) -> tuple[float, float]:
    """Fill a buffer, start a cloud, drain; (readings/s, body bytes per reading).

    Exits non-zero if a reading is missing or stored twice.
    """
    run.mkdir()
    fill_buffer(run / "buffer.db", n)
    if tls:
        proc, url = start_tls_cloud(run / "cloud", GATEWAY, run / "identity")
        transport = HttpTransport(
            base_url=url,
            token=None,
            timeout_s=60,
            tls=client_context(Identity(run / "identity", GATEWAY)),
            compress=gzip,
        )
    else:
        proc, url, token = start_cloud(run / "cloud", GATEWAY)
        transport = HttpTransport(base_url=url, token=token, timeout_s=60, compress=gzip)
    try:
        sent, elapsed = asyncio.run(drain(run / "buffer.db", transport, batch))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if sent != n:
        raise SystemExit(f"sync lost readings: sent {sent} of {n}")
    stored = cloud_seqs(run / "cloud" / "cloud.db")
    if stored != (n, 1, n):
        raise SystemExit(f"cloud holds (count, min, max) {stored}; want ({n}, 1, {n})")
    per = transport.bytes_sent / n
    if not tls and not gzip and batch == 5000:
        plain_bytes[0] = per
    return sent / elapsed, per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 30_000 if args.quick else 200_000
    rows = []
    wire: dict[tuple[bool, bool], float] = {}
    with tempfile.TemporaryDirectory(prefix="ldt-bench-sync-") as d:
        tmp = Path(d)
        raw = raw_sqlite_rate(tmp, n, 5000)
        rows.append(("raw SQLite executemany (baseline)", n, f"{raw:,.0f}", "1.00"))
        for batch in (1000, 5000, 20000):
            if args.quick and batch != 5000:
                continue
            rate, _ = one_run(tmp / f"run{batch}", n, batch, tls=False, gzip=False)
            rows.append(
                (f"sync buffer -> cloud, batch {batch}", n, f"{rate:,.0f}", f"{rate / raw:.2f}")
            )
        for tls, gzip in ((False, True), (True, False), (True, True)):
            rate, per = one_run(tmp / f"tls{tls}-gz{gzip}", n, 5000, tls=tls, gzip=gzip)
            wire[(tls, gzip)] = per
            how = ("mutual TLS 1.3" if tls else "plain HTTP") + (", gzip" if gzip else "")
            rows.append((f"sync, batch 5000, {how}", n, f"{rate:,.0f}", f"{rate / raw:.2f}"))
        wire[(False, False)] = plain_bytes[0]
    print_table(
        f"sync over loopback ({os.cpu_count()} cores)",
        ("path", "readings", "readings/s", "ratio to raw"),
        rows,
    )
    print_table(
        "request body bytes per reading (batch 5000; HTTP headers and TLS records add"
        " < 0.1 % at this batch size)",
        ("transport", "uncompressed", "gzip", "gzip / uncompressed"),
        [
            (
                name,
                f"{wire[(tls, False)]:.1f}",
                f"{wire[(tls, True)]:.1f}",
                f"{wire[(tls, True)] / wire[(tls, False)]:.2f}",
            )
            for name, tls in (("plain HTTP", False), ("mutual TLS 1.3", True))
        ],
    )


if __name__ == "__main__":
    main()
