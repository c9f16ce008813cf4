"""Writes through ModbusTcpDevice and ModbusRtuDevice, observed by the simulators.

Each test runs over both transports: TCP (one simulator per device, loopback)
and RTU (one serial line, a socat pty pair, units 1, 2 and 4). FC 6 writes the
XY-MD02's int16 temperature correction, FC 16 the SDM120's float32 meter id,
FC 5 a relay coil; refused writes put nothing on the wire.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ldt.backoff import Backoff
from ldt.drivers.base import Device
from ldt.drivers.errors import DriverError
from ldt.drivers.modbus import ModbusDevice, ModbusRtuDevice, ModbusTcpDevice
from ldt.drivers.modbus.config import ModbusRtuConnection, ModbusTcpConnection
from ldt.reading import Quality, Reading
from ldt.simulators.modbus import ModbusRtuSimulator, ModbusSimulator, resolve_profile
from tests.drivers.modbus.serial_pty import pty_pair
from tests.drivers.modbus.test_rtu import load_profile

pytestmark = pytest.mark.integration

TIMEOUT = 0.3
MARGIN = 0.4
BAUD = 115200

RELAY_PROFILE = """
[profile]
name = "test-relay"
manufacturer = "test"
model = "relay"
protocol = "modbus"
source = "written for this test"

[[points]]
name = "relay"
table = "coil"
address = 0
type = "bool"
writable = true

[[points]]
name = "alarm"
table = "coil"
address = 1
type = "bool"
"""

UNITS = {"meter": 1, "climate": 2, "relay": 4}


@dataclass
class Rig:
    """Simulated devices by name, and how to make a driver for each."""

    transport: str
    profiles: dict[str, Path]
    sims: dict[str, ModbusSimulator] = field(default_factory=dict)
    make: Callable[[str], ModbusDevice] | None = None
    rtu: ModbusRtuSimulator | None = None

    def device(self, name: str) -> ModbusDevice:
        assert self.make is not None
        return self.make(name)


def _backoff() -> Backoff:
    return Backoff(base_s=0.05, cap_s=0.2, rng=random.Random(1))


@pytest.fixture(params=["tcp", "rtu"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    relay = tmp_path / "relay.toml"
    relay.write_text(RELAY_PROFILE, encoding="utf-8")
    profiles = {
        "meter": resolve_profile("eastron-sdm120"),
        "climate": resolve_profile("xymd02-th"),
        "relay": relay,
    }
    rig = Rig(transport=request.param, profiles=profiles)
    async with AsyncExitStack() as stack:
        if request.param == "tcp":
            for name, path in profiles.items():
                sim = await stack.enter_async_context(ModbusSimulator(profile=path, seed=3))
                rig.sims[name] = sim

            def make_tcp(name: str) -> ModbusDevice:
                settings, points = load_profile(profiles[name])
                conn = ModbusTcpConnection(
                    host="127.0.0.1", port=rig.sims[name].port, timeout_s=TIMEOUT
                )
                return ModbusTcpDevice(
                    device_id=name,
                    connection=conn,
                    settings=settings,
                    points=points,
                    backoff=_backoff(),
                )

            rig.make = make_tcp
        else:
            pair = stack.enter_context(pty_pair(tmp_path))
            line = ModbusRtuSimulator(
                port=pair.devices,
                devices=[(unit, profiles[name], 3) for name, unit in UNITS.items()],
                baudrate=BAUD,
            )
            rig.rtu = await stack.enter_async_context(line)
            rig.sims = {name: line.unit(unit) for name, unit in UNITS.items()}

            def make_rtu(name: str) -> ModbusDevice:
                settings, points = load_profile(profiles[name])
                conn = ModbusRtuConnection(
                    port=pair.master, baudrate=BAUD, unit_id=UNITS[name], timeout_s=TIMEOUT
                )
                return ModbusRtuDevice(
                    device_id=name,
                    connection=conn,
                    settings=settings,
                    points=points,
                    backoff=_backoff(),
                )

            rig.make = make_rtu
        for sim in rig.sims.values():
            sim.freeze()
        yield rig


def function_codes(rig: Rig, name: str) -> list[int]:
    """What the RTU line carried for ``name`` (the TCP simulator does not log function codes)."""
    if rig.rtu is None:
        return []
    return [t.function_code for t in rig.rtu.transactions if t.unit_id == UNITS[name]]


async def test_single_register_fc6(rig: Rig) -> None:
    climate = rig.sims["climate"]
    async with rig.device("climate") as dev:
        await dev.write("temperature_correction", -1.5)
        assert climate.expected("temperature_correction") == pytest.approx(-1.5)
        await dev.write(dev.points[3], 2)  # baud_rate_code, by point object
        assert climate.expected("baud_rate_code") == 2
        back = {r.point: r for r in await dev.read()}
    assert back["temperature_correction"].value == pytest.approx(-1.5)
    assert back["baud_rate_code"].value == 2
    if rig.rtu is not None:
        assert function_codes(rig, "climate")[:2] == [6, 6]


async def test_multiple_registers_fc16(rig: Rig) -> None:
    meter = rig.sims["meter"]
    async with rig.device("meter") as dev:
        await dev.write("modbus_address", 17.0)
        await dev.write("baud_rate_code", 3)
        assert meter.expected("modbus_address") == 17.0
        assert meter.expected("baud_rate_code") == 3.0
        back = {r.point: r.value for r in await dev.read()}
    assert back["modbus_address"] == 17.0
    assert back["baud_rate_code"] == 3.0
    if rig.rtu is not None:
        assert function_codes(rig, "meter")[:2] == [16, 16]


async def test_coil_fc5(rig: Rig) -> None:
    relay = rig.sims["relay"]
    async with rig.device("relay") as dev:
        await dev.write("relay", True)
        assert relay.expected("relay") is True
        assert (await dev.read())[0].value is True
        await dev.write("relay", False)
        assert relay.expected("relay") is False
    if rig.rtu is not None:
        assert function_codes(rig, "relay") == [5, 1, 5]


@pytest.mark.parametrize(
    ("name", "point", "value", "message"),
    [
        ("meter", "voltage", 230.0, "not writable"),
        ("relay", "alarm", True, "not writable"),
        ("climate", "modbus_address", 70000, "out of range for uint16"),
        ("climate", "modbus_address", -1, "out of range for uint16"),
        ("climate", "temperature_correction", 4000.0, "out of range for int16"),
        ("meter", "modbus_address", 1e39, "out of range for float32"),
        ("meter", "modbus_address", "one", "not a number"),
        ("relay", "relay", 2, "is not true or false"),
        ("climate", "no_such_point", 1, "has no point 'no_such_point'"),
    ],
)
async def test_refused_writes_send_nothing(
    rig: Rig, name: str, point: str, value: Any, message: str
) -> None:
    sim = rig.sims[name]
    before = sim.values()
    async with rig.device(name) as dev:
        with pytest.raises(DriverError, match=message):
            await dev.write(point, value)
    assert sim.request_count == 0
    assert sim.values() == before


async def test_a_write_to_a_dead_device_raises_with_the_timeout(rig: Rig) -> None:
    climate = rig.sims["climate"]
    before = climate.values()
    climate.drop_rate = 1.0  # receives, never answers, never applies
    async with rig.device("climate") as dev:
        start = time.monotonic()
        with pytest.raises(
            DriverError,
            match=rf"write to 'climate' 'temperature_correction' failed: timeout after {TIMEOUT} s "
            r"writing holding 259\.\.259 \(no answer at all: is unit_id \d+ right\?",
        ):
            await dev.write("temperature_correction", 3.0)
        assert time.monotonic() - start < TIMEOUT + MARGIN
        assert not dev.health.connected
        # a command is worth one attempt even while reads back off
        with pytest.raises(DriverError, match="timeout after"):
            await dev.write("temperature_correction", 3.0)
        assert climate.request_count == 2
    assert climate.values() == before


async def test_a_write_to_an_absent_rtu_unit_raises(tmp_path: Path) -> None:
    settings, points = load_profile(resolve_profile("xymd02-th"))
    with pty_pair(tmp_path) as pair:
        line = ModbusRtuSimulator(
            port=pair.devices, devices=[(1, resolve_profile("xymd02-th"), 0)], baudrate=BAUD
        )
        ghost = ModbusRtuDevice(
            device_id="ghost",
            connection=ModbusRtuConnection(
                port=pair.master, baudrate=BAUD, unit_id=9, timeout_s=TIMEOUT
            ),
            settings=settings,
            points=points,
            backoff=_backoff(),
        )
        async with line, ghost:
            with pytest.raises(DriverError, match=f"timeout after {TIMEOUT} s writing holding"):
                await ghost.write("humidity_correction", 1.0)
            readings = await ghost.read()
        assert {r.quality for r in readings} == {Quality.BAD}
        assert [t.unit_id for t in line.transactions] == [9]  # the read backed off
        assert line.unit(1).request_count == 0


async def test_both_transports_satisfy_the_driver_contract(rig: Rig) -> None:
    async def emit(_: Reading) -> None:
        raise AssertionError("modbus never emits")

    dev = rig.device("climate")
    assert isinstance(dev, Device)
    assert dev.streams is False
    assert dev.polled_points() == dev.points
    with pytest.raises(DriverError, match="does not push"):
        await dev.stream(emit)
    assert (dev.health.connected, dev.health.last_error, dev.health.consecutive_failures) == (
        False,
        None,
        0,
    )
    async with dev:
        await dev.read()
        assert dev.health.connected
    assert not dev.health.connected  # leaving closes the link
