"""BleDevice in GATT mode through the ``GattClient`` seam.

No radio here, so a fake client stands in at the lowest seam; it serves the
byte payloads a standard peripheral sends (GATT Specification Supplement,
little-endian): Temperature 0x2A6E sint16 x 0.01 degC (0x8000 = unknown),
Humidity 0x2A6F uint16 x 0.01 %, Battery Level 0x2A19 uint8 %.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from ldt.backoff import Backoff
from ldt.drivers.ble import (
    BleConnection,
    BleDevice,
    BleFormat,
    BleMode,
    BlePoint,
    BleProfileSettings,
    decode_characteristic,
    encode_characteristic,
)
from ldt.drivers.ble.gatt import GattClient, NotifyCallback
from ldt.drivers.errors import DriverError
from ldt.reading import Quality, Reading

from .conftest import bad, good, stream_until

ADDRESS = "A4:C1:38:00:11:22"
TEMP, HUM, BATT, INTERVAL = "2A6E", "2A6F", "2A19", "EF090001-11D6-42BA-93B8-9DD7EC090AA9"


def _uuid(short: str) -> str:
    return f"0000{short.lower()}-0000-1000-8000-00805f9b34fb" if len(short) == 4 else short.lower()


class Peripheral:
    """The remote device: its characteristic values, its link, what was written to it."""

    def __init__(self) -> None:
        self.values = {
            _uuid(TEMP): bytes.fromhex("2c09"),  # 2348 -> 23.48 degC
            _uuid(HUM): bytes.fromhex("8f12"),  # 4751 -> 47.51 %
            _uuid(BATT): bytes.fromhex("5a"),  # 90 %
            _uuid(INTERVAL): bytes.fromhex("3c00"),  # 60 s
        }
        self.reachable = True
        self.hang_reads = False
        self.writes: list[tuple[str, bytes]] = []
        self.connects = 0
        self.client: FakeGattClient | None = None

    def notify(self, short: str, data: bytes) -> None:
        assert self.client is not None
        for cb in self.client.subscriptions.get(_uuid(short), []):
            cb(data)

    def drop_link(self) -> None:
        """The peripheral goes out of range: the live client is told, new ones fail."""
        self.reachable = False
        client, self.client = self.client, None
        if client is not None:
            client.connected = False
            client.on_disconnect()


class FakeGattClient:
    def __init__(self, peripheral: Peripheral, on_disconnect: Callable[[], None]) -> None:
        self.peripheral = peripheral
        self.on_disconnect = on_disconnect
        self.connected = False
        self.subscriptions: dict[str, list[NotifyCallback]] = {}

    @property
    def is_connected(self) -> bool:
        return self.connected

    async def connect(self) -> None:
        await asyncio.sleep(0)
        if not self.peripheral.reachable:
            raise DriverError(f"BLE connect to {ADDRESS} failed: device not found")
        self.peripheral.connects += 1
        self.peripheral.client = self
        self.connected = True

    async def disconnect(self) -> None:
        self.connected = False

    def _check(self) -> None:
        if not self.connected:
            raise DriverError("not connected")

    async def read_gatt_char(self, uuid: str) -> bytes:
        self._check()
        if self.peripheral.hang_reads:
            await asyncio.sleep(3600)
        try:
            return self.peripheral.values[uuid]
        except KeyError:
            raise DriverError(f"characteristic {uuid} not found") from None

    async def write_gatt_char(self, uuid: str, data: bytes, *, response: bool = True) -> None:
        self._check()
        assert response
        self.peripheral.writes.append((uuid, data))
        self.peripheral.values[uuid] = data

    async def start_notify(self, uuid: str, callback: NotifyCallback) -> None:
        self._check()
        self.subscriptions.setdefault(uuid, []).append(callback)


def _points(*, notify: bool = False) -> list[BlePoint]:
    return [
        BlePoint(name="temperature", characteristic=TEMP, struct_format="<h", scale=0.01,
                 invalid=-32768, notify=notify, unit="CEL"),
        BlePoint(name="humidity", characteristic=HUM, struct_format="<H", scale=0.01, unit="P1"),
        BlePoint(name="battery", characteristic=BATT, struct_format="<B", unit="P1"),
        BlePoint(name="interval", characteristic=INTERVAL, struct_format="<H", writable=True),
    ]  # fmt: skip


def _device(peripheral: Peripheral, *, notify: bool = False, timeout_s: float = 1.0) -> BleDevice:
    def factory(address: str, on_disconnect: Callable[[], None]) -> GattClient:
        assert address == ADDRESS
        return FakeGattClient(peripheral, on_disconnect)

    return BleDevice(
        device_id="th-1",
        connection=BleConnection(address=ADDRESS, mode=BleMode.GATT, timeout_s=timeout_s),
        settings=BleProfileSettings(format=BleFormat.GATT),
        points=_points(notify=notify),
        backoff=Backoff(base_s=0.05, cap_s=0.2),
        gatt_client_factory=factory,
    )


async def test_read_decodes_standard_characteristics() -> None:
    peripheral = Peripheral()
    async with _device(peripheral) as device:
        assert peripheral.connects == 0  # entering does no I/O
        assert not device.streams
        readings = await device.read()
        assert [(r.point, r.value, r.quality) for r in readings] == [
            ("temperature", 23.48, Quality.GOOD),
            ("humidity", 47.51, Quality.GOOD),
            ("battery", 90, Quality.GOOD),
            ("interval", 60, Quality.GOOD),
        ]
        peripheral.values[_uuid(TEMP)] = bytes.fromhex("0080")  # 0x8000: value not known
        peripheral.values[_uuid(HUM)] = bytes.fromhex("8f")  # one byte short
        temp, hum, batt, _ = await device.read()
        assert temp.quality is Quality.BAD
        assert temp.reason is not None
        assert "not known" in temp.reason
        assert hum.quality is Quality.BAD
        assert hum.reason is not None
        assert "1 bytes" in hum.reason
        assert batt.value == 90
        assert peripheral.connects == 1
        assert device.health.connected


async def test_write_reaches_the_peripheral_and_bad_writes_raise() -> None:
    peripheral = Peripheral()
    async with _device(peripheral) as device:
        await device.write("interval", 300)
        assert peripheral.writes == [(_uuid(INTERVAL), bytes.fromhex("2c01"))]
        assert (await device.read([device.points[3]]))[0].value == 300
        with pytest.raises(DriverError, match="not writable"):
            await device.write("temperature", 20.0)
        with pytest.raises(DriverError, match="does not fit"):
            await device.write("interval", 70000)
        with pytest.raises(DriverError, match="expects a number"):
            await device.write("interval", "fast")
        peripheral.drop_link()
        with pytest.raises(DriverError, match=r"failed: .*device not found"):
            await device.write("interval", 10)
        assert len(peripheral.writes) == 1


async def test_read_timeout_becomes_bad_readings_and_a_reconnect() -> None:
    peripheral = Peripheral()
    async with _device(peripheral, timeout_s=0.1) as device:
        peripheral.hang_reads = True
        readings = await device.read()
        assert all(r.quality is Quality.BAD for r in readings)
        assert readings[0].reason is not None
        assert readings[0].reason.startswith("timeout after 0.1 s reading temperature")
        assert not device.health.connected
        peripheral.hang_reads = False
        await asyncio.sleep(0.25)  # past the backoff (cap 0.2 s)
        assert all(r.quality is Quality.GOOD for r in await device.read())
        assert peripheral.connects == 2


async def test_notify_stream_reconnects_and_resubscribes_after_a_disconnect() -> None:
    peripheral = Peripheral()
    device = _device(peripheral, notify=True)
    assert device.streams
    assert [p.name for p in device.polled_points()] == ["humidity", "battery", "interval"]
    payloads = [bytes.fromhex(h) for h in ("2c09", "f5ff", "1027")]  # 23.48, -0.11, 100.00

    sent = 0
    lost_at = 0.0

    def drive(readings: list[Reading]) -> bool:
        """Notify three values, drop the link, come back after two failed attempts."""
        nonlocal sent, lost_at
        client = peripheral.client
        subscribed = client is not None and bool(client.subscriptions)
        if sent < len(payloads):
            if subscribed:
                peripheral.notify(TEMP, payloads[sent])
                sent += 1
            return False
        if not lost_at:
            if len(good(readings, "temperature")) == len(payloads):
                peripheral.drop_link()
                lost_at = time.monotonic()
            return False
        if len(bad(readings, "temperature")) >= 2:
            peripheral.reachable = True
        if subscribed:
            peripheral.notify(TEMP, bytes.fromhex("e803"))  # 10.00
        return len(good(readings, "temperature")) > len(payloads)

    async with device:
        readings = await stream_until(device, drive)
    temps = [r for r in readings if r.point == "temperature"]
    assert [r.value for r in temps[:3]] == [23.48, -0.11, 100.0]
    outage = bad(readings, "temperature")
    assert outage[0].reason is not None
    assert outage[0].reason == "peripheral disconnected"  # no countdown (issue 15)
    assert all("device not found" in (r.reason or "") for r in outage[1:])
    assert temps[-1].value == 10.0
    assert temps.index(outage[0]) == 3  # the gap sits between the values, in order
    assert peripheral.connects == 2
    # one bad reading per failed attempt; each retry within 2x the backoff cap
    assert time.monotonic() - lost_at < len(outage) * 2 * 0.2 + 0.5
    assert peripheral.client is not None
    assert list(peripheral.client.subscriptions) == [_uuid(TEMP)]  # re-subscribed
    assert device.health.notifications >= 4
    assert not device.health.connected  # left the context: disconnected


def test_characteristic_codec_round_trips_and_rejects() -> None:
    point = BlePoint(name="t", characteristic=TEMP, struct_format="<h", scale=0.01)
    for raw in (-32767, -1, 0, 2348, 32767):
        data = raw.to_bytes(2, "little", signed=True)
        value = decode_characteristic(point, data)
        assert encode_characteristic(point, value) == data
    text = BlePoint(name="n", characteristic="2A00", struct_format="utf8")
    assert decode_characteristic(text, b"Ruuvi 88F4\x00") == "Ruuvi 88F4"
    flag = BlePoint(name="f", characteristic="2A00", struct_format="<?")
    assert decode_characteristic(flag, b"\x01") is True


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"characteristic": "2A6E"}, "struct_format"),
        ({"characteristic": "2A6E", "struct_format": "h"}, "byte order"),
        ({"characteristic": "2A6E", "struct_format": "<hh"}, "byte order"),
        ({"characteristic": "XYZ", "struct_format": "<h"}, "UUID"),
        ({"struct_format": "<h"}, "need a 'characteristic'"),
        ({"writable": True}, "only GATT points"),
        ({"characteristic": "2A6E", "struct_format": "<h", "field": "t"}, "advertisement points"),
    ],
)
def test_point_validation(fields: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BlePoint.model_validate({"name": "p", **fields})


def test_connection_validation() -> None:
    with pytest.raises(ValueError, match="'address' or 'name'"):
        BleConnection()
    with pytest.raises(ValueError, match="GATT connection needs 'address'"):
        BleConnection(name="x", mode=BleMode.GATT)
    with pytest.raises(ValueError, match="bindkey"):
        BleConnection(address=ADDRESS, bindkey="abc")
    assert BleConnection(address=ADDRESS, bindkey="00" * 16).bindkey_bytes == bytes(16)
    with pytest.raises(ValueError, match="protocol"):
        BleConnection.model_validate({"protocol": "mqtt", "address": ADDRESS})
