"""The OPC UA driver against npm's ``node-opcua`` server (issue 15): a device nobody here
wrote, so a bug written twice (in our driver and in our asyncua simulator) cannot hide.

- A server that does not trust the gateway's certificate answered OpenSecureChannel with a
  ServiceFault that asyncua cannot decode: the reason read ``AssertionError``. Now it names
  ``BadSecurityChecksFailed``, what to do, and the thumbprint the server filed it under.
- A key that is not the certificate's gave only ``BadTcpInternalError`` and a stray asyncua
  line on stderr. Now the driver says so before it connects, and stderr stays clean.
- Types: a Float reads as its shortest decimal, a DateTime as an instant, arrays and a
  structure as JSON, a ByteString as one reason; writes follow the shared rules.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ldt.backoff import Backoff
from ldt.drivers.errors import DriverError
from ldt.drivers.opcua import (
    OpcUaConnection,
    OpcUaDevice,
    OpcUaPoint,
    OpcUaProfileSettings,
    PointMode,
    SecurityMode,
    SecurityPolicy,
)
from ldt.reading import Quality, Reading, Structured, Value
from tests.drivers.opcua.conftest import ClientFiles
from tests.thirdparty.opcua_server import NodeOpcUa, node_opcua_server

pytestmark = pytest.mark.integration

NAMES = [
    "Temperature", "Pressure", "Count", "Level", "Small", "Big", "Running", "Label",
    "Stamp", "Series", "Floats", "Names", "Blob", "PressureRange",
]  # fmt: skip
WRITABLE = {"Temperature", "Pressure", "Count", "Level", "Small", "Running", "Label"}


def _points(mode: PointMode = PointMode.POLL) -> list[OpcUaPoint]:
    return [
        OpcUaPoint(name=n, node=f"ns=1;s={n}", mode=mode, writable=n in WRITABLE) for n in NAMES
    ]


def _secure(server: NodeOpcUa, files: ClientFiles, key: Path | None = None) -> OpcUaConnection:
    return OpcUaConnection(
        endpoint=server.endpoint,
        security_policy=SecurityPolicy.BASIC256SHA256,
        security_mode=SecurityMode.SIGN_AND_ENCRYPT,
        client_certificate=files.cert,
        client_private_key=key or files.key,
        timeout_s=3.0,
    )


def _device(conn: OpcUaConnection, mode: PointMode = PointMode.POLL) -> OpcUaDevice:
    return OpcUaDevice(
        device_id="plc", connection=conn, settings=OpcUaProfileSettings(), points=_points(mode)
    )


def _thumbprint(cert: Path) -> str:
    raw = cert.read_bytes()
    loaded = (
        x509.load_pem_x509_certificate(raw)
        if raw.startswith(b"-----")
        else x509.load_der_x509_certificate(raw)
    )
    return hashlib.sha1(loaded.public_bytes(Encoding.DER)).hexdigest()


def _browse(conn: OpcUaConnection) -> subprocess.CompletedProcess[str]:
    assert conn.client_certificate is not None
    assert conn.client_private_key is not None
    return subprocess.run(
        [sys.executable, "-m", "ldt", "opcua", "browse", conn.endpoint, "--depth", "2",
         "--security", "SignAndEncrypt", "--cert", str(conn.client_certificate),
         "--key", str(conn.client_private_key), "--timeout", "3"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


async def _read_until_good(device: OpcUaDevice, deadline_s: float) -> list[Reading]:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        readings = await device.read()
        if readings[0].quality is Quality.GOOD or loop.time() > end:
            return readings
        await asyncio.sleep(0.3)


async def test_an_untrusted_certificate_is_named_with_its_thumbprint(
    tmp_path: Path, pki: dict[str, ClientFiles]
) -> None:
    async with node_opcua_server(tmp_path, trust="none") as server:
        conn = _secure(server, pki["trusted"])
        async with _device(conn) as device:
            first = (await device.read())[0]
            assert first.quality is Quality.BAD
            thumb = _thumbprint(pki["trusted"].cert)
            assert first.reason is not None
            assert "BadSecurityChecksFailed: the server does not trust" in first.reason
            assert thumb in first.reason
            assert "AssertionError" not in first.reason
            # the server filed the refused certificate under the same thumbprint
            assert any(thumb in p.name for p in server.rejected())

            browse = await asyncio.to_thread(_browse, conn)
            assert browse.returncode == 1
            lines = browse.stderr.strip().splitlines()
            assert len(lines) == 1, browse.stderr  # no stray library lines
            assert "BadSecurityChecksFailed: the server does not trust" in lines[0]
            assert thumb in lines[0]

            # what the reason tells the technician to do, done: the device reads
            server.trust_rejected()
            readings = await _read_until_good(device, 20.0)
            assert readings[0].quality is Quality.GOOD, readings[0].reason
            assert readings[0].value == 1.35


async def test_a_key_that_is_not_the_certificates_is_said_before_connecting(
    tmp_path: Path, pki: dict[str, ClientFiles]
) -> None:
    async with node_opcua_server(tmp_path, trust="all") as server:
        conn = _secure(server, pki["trusted"], key=pki["stranger"].key)
        async with _device(conn) as device:
            reading = (await device.read())[0]
        assert reading.quality is Quality.BAD
        assert reading.reason is not None
        assert "does not belong to the client certificate" in reading.reason
        assert "BadTcpInternalError" not in reading.reason
        browse = await asyncio.to_thread(_browse, conn)
        assert browse.returncode == 1
        lines = browse.stderr.strip().splitlines()
        assert len(lines) == 1, browse.stderr
        assert "does not belong to the client certificate" in lines[0]


EXPECTED: dict[str, object] = {
    "Temperature": 1.35,  # a Float, as its shortest decimal (not 1.350000023841858)
    "Pressure": 2.5,
    "Count": -7,
    "Level": 12,
    "Small": 200,
    "Big": 5,
    "Running": True,
    "Label": "pump A",
    "Stamp": Structured("instant", "2026-01-02T03:04:05.678Z"),
    "Series": Structured("json", [1.5, 2.25, 3.0]),
    "Floats": Structured("json", [0.1, 1.35]),
    "Names": Structured("json", ["a", "b"]),
    "PressureRange": Structured("json", {"low": 0.0, "high": 10.5}),
}


@pytest.mark.parametrize("mode", [PointMode.POLL, PointMode.SUBSCRIBE])
async def test_every_type_reads_faithfully_polled_and_subscribed(
    tmp_path: Path, pki: dict[str, ClientFiles], mode: PointMode
) -> None:
    async with node_opcua_server(tmp_path, trust="all") as server:
        conn = _secure(server, pki["trusted"])
        async with _device(conn, mode) as device:
            if mode is PointMode.POLL:
                readings = await _read_until_good(device, 10.0)
            else:
                got: dict[str, Reading] = {}

                async def emit(reading: Reading) -> None:
                    got[reading.point] = reading

                task = asyncio.create_task(device.stream(emit))
                try:
                    for _ in range(100):
                        if len(got) == len(NAMES) and all(
                            r.quality is not Quality.BAD or r.point == "Blob" for r in got.values()
                        ):
                            break
                        await asyncio.sleep(0.1)
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                readings = [got[n] for n in NAMES if n in got]
    by_name = {r.point: r for r in readings}
    values = {n: r.value for n, r in by_name.items() if r.quality is Quality.GOOD}
    assert values == EXPECTED
    assert isinstance(values["Temperature"], float)
    assert repr(values["Temperature"]) == "1.35"
    blob = by_name["Blob"]
    assert blob.quality is Quality.BAD
    assert blob.reason == "ByteString values are not supported (no text or number form)"


async def test_writes_are_exact_or_refused_with_a_sentence(
    tmp_path: Path, pki: dict[str, ClientFiles]
) -> None:
    async with (
        node_opcua_server(tmp_path, trust="all") as server,
        _device(_secure(server, pki["trusted"])) as device,
    ):
        assert await device.write("Level", 300) == "UInt16 300"
        assert await device.write("Temperature", 1.35) == "Float 1.35"
        assert await device.write("Running", False) == "Boolean False"
        assert await device.write("Label", "pump B") == "String 'pump B'"
        refused: dict[tuple[str, Value], str] = {
            ("Level", 12.7): "12.7",  # lossy: an integer variable, no scale
            ("Level", 70000): "70000",  # out of the UInt16 range
            ("Small", 256): "256",  # out of the Byte range
            ("Running", 1): "true or false",  # booleans take true/false only
            ("Label", 5): "String",
            ("Count", "7"): "7",
        }
        for (name, value), words in refused.items():
            with pytest.raises(DriverError) as caught:
                await device.write(name, value)
            assert words in str(caught.value), (name, value, caught.value)
        readings = {r.point: r.value for r in await device.read()}
    assert readings["Level"] == 300  # the refused writes changed nothing
    assert readings["Temperature"] == 1.35
    assert readings["Running"] is False
    assert readings["Label"] == "pump B"
    assert readings["Small"] == 200
    assert readings["Count"] == -7


async def test_a_rebooted_server_is_read_again_within_seconds(
    tmp_path: Path, pki: dict[str, ClientFiles]
) -> None:
    """Issue 15: the backoff grows to a minute while a server is down, so a PLC back from a
    reboot stayed unread for up to that long. While its connects are refused, a bare TCP
    connect every ``PROBE_S`` looks whether it is back. node-opcua killed for 10 s, with
    reconnects after 3, 6 and 12 s (a backoff without jitter, to be sure the server comes
    back between two of them): read again within 5 s of listening (without the probe,
    about 9 s: at the reconnect 21 s after the loss)."""

    class NoJitter(random.Random):
        def random(self) -> float:
            return 1.0

    async with node_opcua_server(tmp_path, trust="all") as server:
        device = OpcUaDevice(
            device_id="plc", connection=_secure(server, pki["trusted"]),
            settings=OpcUaProfileSettings(), points=_points(),
            backoff=Backoff(base_s=3.0, cap_s=60.0, rng=NoJitter()),
        )  # fmt: skip
        async with device:
            assert (await _read_until_good(device, 10.0))[0].quality is Quality.GOOD
            await server.stop()
            loop = asyncio.get_running_loop()
            until = loop.time() + 10.0
            while loop.time() < until:
                assert (await device.read())[0].quality is Quality.BAD
                await asyncio.sleep(0.5)
            await server.start()
            back = loop.time()
            while (await device.read())[0].quality is not Quality.GOOD:
                await asyncio.sleep(0.5)
                assert loop.time() - back < 60, "not read again within a minute"
            resumed = loop.time() - back
    print(f"\nOPC UA resume after a 10 s outage: {resumed:.1f} s")
    assert resumed <= 5.0, resumed
