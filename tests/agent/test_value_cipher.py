"""Buffered values sealed at rest: on disk only ciphertext, to the cloud the plain values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer, BufferWriter
from ldt.agent.transport import HttpTransport
from ldt.agent.uplink import Uplink
from ldt.agent.value_cipher import PREFIX, CipherError, ValueCipher, write_new_key
from ldt.cloud.server import add_gateway, running_cloud
from ldt.contract import SeriesInfo
from ldt.reading import Quality, Reading

GW = "gw-sealed"


def test_values_round_trip_and_a_foreign_key_is_refused(tmp_path: Path) -> None:
    write_new_key(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    cipher = ValueCipher.from_file(tmp_path / "k")
    for value in (True, False, 0, -7, 2**62, 3.25, "230.1 V", "", None):
        sealed = cipher.seal(value)
        assert sealed.startswith(PREFIX)
        assert cipher.open(sealed) == value
        assert type(cipher.open(sealed)) is type(value)
    assert cipher.seal(1.5) != cipher.seal(1.5)  # a fresh nonce each time
    assert cipher.open("plain, from before encryption") == "plain, from before encryption"
    other = ValueCipher(os.urandom(32))
    with pytest.raises(CipherError, match="another key"):
        other.open(cipher.seal(42))
    with pytest.raises(CipherError, match="exists"):
        write_new_key(tmp_path / "k")
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(CipherError, match="readable by others"):
        ValueCipher.from_file(tmp_path / "k")
    with pytest.raises(CipherError, match="32 bytes"):
        ValueCipher(b"short")


async def _fill(tmp_path: Path, cipher: ValueCipher) -> None:
    """20 readings through the writer into a buffer sealed with ``cipher``, and one value
    sealed with another key, as buffers before schema 4 held them (per value); closed."""
    abuf = AsyncBuffer(
        Buffer(path=tmp_path / "buffer.db", max_bytes=1 << 30, max_age_s=1e9, cipher=cipher)
    )
    await abuf.open()
    sid = await abuf.series_id(
        SeriesInfo(entity_id=f"urn:ngsi-ld:Device:{GW}:m0", entity_type="Device", attr="power")
    )
    async with BufferWriter(buffer=abuf, flush_interval_ms=10) as writer:
        for i in range(20):
            await writer.put(sid, Reading("m0", "power", 100.0 + i, 1_000 + i))
        await writer.flush()
    await abuf.append([(sid, 2_000, ValueCipher(os.urandom(32)).seal(1.0), Quality.GOOD, None)])
    await abuf.close()


async def test_sealed_on_disk_plain_in_the_cloud_and_foreign_rows_set_aside(
    tmp_path: Path,
) -> None:
    cipher = ValueCipher(os.urandom(32))
    await _fill(tmp_path, cipher)  # the agent holds its buffer exclusively: look at the files after
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "buffer.db-segments").iterdir())
    assert len(on_disk) > 0
    for plain in (b"100.0", b"101.0", b"power"):  # records are sealed whole, after zlib
        assert plain not in on_disk
    # records sealed with another key: never sendable, set aside and counted, not a crash
    other = AsyncBuffer(
        Buffer(
            path=tmp_path / "buffer.db", max_bytes=1 << 30, max_age_s=1e9,
            cipher=ValueCipher(os.urandom(32)),
        )
    )  # fmt: skip
    await other.open()
    assert await other.take_backfill(100) == []
    assert (await other.stats()).rejected == 21
    await other.close()
    (tmp_path / "buffer.db").unlink()
    for stale in (tmp_path / "buffer.db-segments").iterdir():
        stale.unlink()
    await _fill(tmp_path, cipher)

    abuf = AsyncBuffer(
        Buffer(path=tmp_path / "buffer.db", max_bytes=1 << 30, max_age_s=1e9, cipher=cipher)
    )
    await abuf.open()
    token = add_gateway(tmp_path / "cloud", GW)
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        transport = HttpTransport(base_url=cloud.url, token=token, timeout_s=10)
        uplink = Uplink(gateway_id=GW, buffer=abuf, transport=transport, live_max=1, cipher=cipher)
        try:
            while (await abuf.stats()).pending:
                await uplink.cycle()
        finally:
            await transport.aclose()
        rows = await cloud.store.readings.history(f"urn:ngsi-ld:Device:{GW}:m0", "power")
    await abuf.close()
    assert sorted(float(r.value or 0) for r in rows) == [100.0 + i for i in range(20)]
    assert all(isinstance(r.value, float) for r in rows)
    assert uplink.stats.quarantined == 1
