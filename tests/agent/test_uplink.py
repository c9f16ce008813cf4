"""The uplink against the real cloud: a reading the cloud refuses never blocks the others.

The poison here is real: one string value larger than the cloud's body limit
(413 even alone), between ordinary readings. The uplink must split the batch,
deliver every other reading exactly once, and set the bad one aside (kept in
the buffer's ``rejected`` table, counted), not drop it and not retry forever.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer
from ldt.agent.transport import HttpTransport
from ldt.agent.uplink import Uplink
from ldt.cloud.ingest import MAX_INGEST_BYTES
from ldt.cloud.server import add_gateway, running_cloud
from ldt.contract import SeriesInfo
from ldt.reading import Quality, Value

GW = "gw-up"


async def _buffer_with(path: Path, values: list[Value]) -> AsyncBuffer:
    abuf = AsyncBuffer(Buffer(path=path, max_bytes=1 << 30, max_age_s=1e9))
    await abuf.open()
    sid = await abuf.series_id(
        SeriesInfo(entity_id=f"urn:ngsi-ld:Device:{GW}:d", entity_type="Device", attr="note")
    )
    await abuf.append([(sid, 1_000 + i, v, Quality.GOOD, None) for i, v in enumerate(values)])
    return abuf


async def test_a_refused_reading_is_set_aside_and_the_rest_delivered(tmp_path: Path) -> None:
    huge = "x" * (MAX_INGEST_BYTES + 1)
    values: list[Value] = [f"v{i}" for i in range(40)]
    values[17] = huge
    token = add_gateway(tmp_path / "cloud", GW)
    abuf = await _buffer_with(tmp_path / "buffer.db", values)
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        transport = HttpTransport(base_url=cloud.url, token=token, timeout_s=30)
        uplink = Uplink(gateway_id=GW, buffer=abuf, transport=transport, batch_max=40)
        try:
            while await uplink.cycle():
                pass
            stats = await abuf.stats()
            seqs = sorted(await cloud.store.readings.seqs(GW))
        finally:
            await transport.aclose()
            await abuf.close()
    assert seqs == [s for s in range(1, 41) if s != 18]
    assert stats.pending == 0
    assert stats.rejected == 1
    assert uplink.stats.quarantined == 1
    con = sqlite3.connect(tmp_path / "buffer.db")
    try:
        row = con.execute("SELECT seq, length(value), why FROM rejected").fetchone()
    finally:
        con.close()
    assert row[0] == 18
    assert row[1] == len(huge) + 2  # kept as its JSON text (the tag says so): the quotes
    assert "413" in row[2]


async def test_a_refused_gateway_sets_nothing_aside(tmp_path: Path) -> None:
    add_gateway(tmp_path / "cloud", GW)
    abuf = await _buffer_with(tmp_path / "buffer.db", ["a", "b", "c"])
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        transport = HttpTransport(base_url=cloud.url, token="wrong-token-0123456789", timeout_s=5)
        uplink = Uplink(gateway_id=GW, buffer=abuf, transport=transport)
        task = asyncio.create_task(uplink.run())
        try:
            await asyncio.sleep(0.5)
            stats = await abuf.stats()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.aclose()
            await abuf.close()
    assert uplink.stats.rejected >= 1
    assert "401" in (uplink.stats.last_error or "")
    assert stats.pending == 3
    assert stats.rejected == 0


async def test_the_first_sync_after_an_outage_comes_within_seconds(tmp_path: Path) -> None:
    """Issue 17: the retry delay grows to 60 s, so the first sync came up to 25 s after the
    cloud was back. While the cloud is unreachable, a bare TCP connect every 2 s ends the
    wait. The cloud is away for 12 s (the backoff then waits 4-8 s at a time)."""
    from tests.mosquitto import free_port

    port = free_port()
    token = add_gateway(tmp_path / "cloud", GW)
    abuf = AsyncBuffer(Buffer(path=tmp_path / "buffer.db", max_bytes=1 << 30, max_age_s=1e9))
    await abuf.open()
    sid = await abuf.series_id(
        SeriesInfo(entity_id=f"urn:ngsi-ld:Device:{GW}:m0", entity_type="Device", attr="power")
    )
    await abuf.append([(sid, 1_000 + i, float(i), Quality.GOOD, None) for i in range(10)])
    url = f"http://127.0.0.1:{port}"
    transport = HttpTransport(base_url=url, token=token, timeout_s=2)
    uplink = Uplink(gateway_id=GW, buffer=abuf, transport=transport, cloud_url=url)
    task = asyncio.create_task(uplink.run())
    try:
        await asyncio.sleep(12.0)
        assert uplink.stats.readings_sent == 0
        assert uplink.stats.failures >= 3
        async with running_cloud(tmp_path / "cloud", port=port, insecure_no_auth=True):
            back = asyncio.get_running_loop().time()
            while uplink.stats.readings_sent == 0:
                await asyncio.sleep(0.05)
                assert asyncio.get_running_loop().time() - back < 30
            waited = asyncio.get_running_loop().time() - back
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await transport.aclose()
        await abuf.close()
    print(f"\nfirst sync {waited:.2f} s after the cloud listened")
    assert waited <= 2.5, waited
