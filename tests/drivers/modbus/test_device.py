"""ModbusTcpDevice against real loopback servers: decoding, coalescing, faults, backoff, writes."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from ldt.agent.poller import PolledDevice
from ldt.backoff import Backoff
from ldt.drivers.errors import DriverError
from ldt.drivers.modbus.config import (
    DataType,
    ModbusPoint,
    ModbusProfileSettings,
    ModbusTcpConnection,
    RegisterTable,
    WordOrder,
)
from ldt.drivers.modbus.device import ModbusTcpDevice
from ldt.reading import Quality, Reading
from tests.drivers.modbus.conftest import (
    BOOL_REGISTER,
    CDAB_FLOAT,
    COILS,
    DISCRETES,
    HOLDING_VALUES,
    ISLAND,
    SDM120_VALUES,
    STRING_ADDRESS,
    UNIT_ID,
    UNSERVED_INPUT,
    WRITABLE_AREA,
    LoopbackServer,
    SilentServer,
    f32,
    standard_device,
    start_server,
)

pytestmark = pytest.mark.integration

TIMEOUT = 0.3
MARGIN = 0.4  # scheduling slack on a loaded 2-core CI machine


def unit_hint(unit: int) -> str:
    return (
        f" (no answer at all: is unit_id {unit} right? a device ignores requests for another unit)"
    )


def pt(name: str, table: RegisterTable, address: int, dtype: DataType, **kw: Any) -> ModbusPoint:
    return ModbusPoint(name=name, table=table, address=address, type=dtype, **kw)


SDM_POINTS = [
    pt(f"in{a}", RegisterTable.INPUT, a, DataType.FLOAT32) for a in [*SDM120_VALUES, UNSERVED_INPUT]
]
HOLDING_POINTS = [
    pt(name, RegisterTable.HOLDING, address, DataType(name))
    for name, (address, _) in HOLDING_VALUES.items()
]
W_U16 = pt("w_u16", RegisterTable.HOLDING, WRITABLE_AREA, DataType.UINT16, writable=True)
W_F32 = pt("w_f32", RegisterTable.HOLDING, WRITABLE_AREA + 2, DataType.FLOAT32, writable=True)
W_SCALED = pt(
    "w_scaled", RegisterTable.HOLDING, WRITABLE_AREA + 4, DataType.INT16, scale=0.1, writable=True
)
W_COIL = pt("w_coil", RegisterTable.COIL, 5, DataType.BOOL, writable=True)
W_UNSERVED = pt("w_unserved", RegisterTable.HOLDING, 60, DataType.UINT16, writable=True)
RO_HOLDING = pt("ro", RegisterTable.HOLDING, WRITABLE_AREA + 6, DataType.UINT16)
OTHER_POINTS = [
    pt("flag", RegisterTable.HOLDING, BOOL_REGISTER, DataType.BOOL),
    pt("model", RegisterTable.HOLDING, STRING_ADDRESS, DataType.STRING, length=4),
    pt("cdab", RegisterTable.HOLDING, CDAB_FLOAT, DataType.FLOAT32, word_order=WordOrder.LITTLE),
    pt("island", RegisterTable.HOLDING, ISLAND, DataType.UINT16),
    *(pt(f"coil{i}", RegisterTable.COIL, i, DataType.BOOL) for i in range(8)),
    *(pt(f"di{i}", RegisterTable.DISCRETE, i, DataType.BOOL) for i in range(8)),
]
ALL_POINTS = [
    *SDM_POINTS,
    *HOLDING_POINTS,
    *OTHER_POINTS,
    W_U16,
    W_F32,
    W_SCALED,
    W_COIL,
    W_UNSERVED,
    RO_HOLDING,
]


def device(
    port: int,
    points: list[ModbusPoint] | None = None,
    *,
    backoff: Backoff | None = None,
    settings: ModbusProfileSettings | None = None,
    device_id: str = "meter-1",
) -> ModbusTcpDevice:
    return ModbusTcpDevice(
        device_id=device_id,
        connection=ModbusTcpConnection(
            host="127.0.0.1", port=port, unit_id=UNIT_ID, timeout_s=TIMEOUT
        ),
        settings=settings or ModbusProfileSettings(max_gap=8),
        points=ALL_POINTS if points is None else points,
        backoff=backoff or Backoff(base_s=0.05, cap_s=0.2, rng=random.Random(1)),
    )


def by_name(readings: list[Reading]) -> dict[str, Reading]:
    return {r.point: r for r in readings}


def test_satisfies_the_pollers_protocol() -> None:
    dev: PolledDevice[ModbusPoint] = device(1)  # checked by mypy --strict
    assert callable(dev.read)


async def test_every_table_and_type_decodes_from_known_registers(
    modbus_server: LoopbackServer,
) -> None:
    wanted = [*SDM_POINTS[:-1], *HOLDING_POINTS, *OTHER_POINTS]
    random.Random(7).shuffle(wanted)
    before = time.time_ns() // 1_000_000
    async with device(modbus_server.port) as dev:
        readings = await dev.read(wanted)
    after = time.time_ns() // 1_000_000
    assert [r.point for r in readings] == [p.name for p in wanted]  # same order as asked
    assert all(r.quality is Quality.GOOD and r.reason is None for r in readings), readings
    assert all(before <= r.observed_at_ms <= after for r in readings)
    assert all(r.device_id == "meter-1" for r in readings)
    got = {r.point: r.value for r in readings}
    for address, value in SDM120_VALUES.items():
        assert got[f"in{address}"] == value
    for name, (_, value) in HOLDING_VALUES.items():
        assert got[name] == value
        assert type(got[name]) is type(value)
    assert got["flag"] is True
    assert got["model"] == "SDM120"
    assert got["cdab"] == 230.0
    assert got["island"] == 7
    assert [got[f"coil{i}"] for i in range(8)] == COILS[:8]
    assert [got[f"di{i}"] for i in range(8)] == DISCRETES[:8]


async def test_blocks_coalesce_and_an_exception_fails_only_its_block(
    modbus_server: LoopbackServer,
) -> None:
    async with device(modbus_server.port, SDM_POINTS) as dev:
        readings = by_name(await dev.read())
        assert modbus_server.requests == [(4, 0, 32), (4, 70, 6), (4, 342, 2)]
        bad = readings.pop(f"in{UNSERVED_INPUT}")
        assert bad.quality is Quality.BAD
        assert bad.value is None
        assert bad.reason == (
            "modbus exception 2 (illegal data address) reading input 342..343"
            f" (point 'in{UNSERVED_INPUT}': is it in the device's map?)"
        )
        assert all(r.quality is Quality.GOOD for r in readings.values())
        # an exception response is an answer: the connection stays up
        assert dev.health.connected
        assert dev.health.consecutive_failures == 0
        assert dev.health.last_error == bad.reason
        # the plan is cached and reused; a subset gets its own plan
        await dev.read()
        assert len(modbus_server.requests) == 6
        await dev.read([SDM_POINTS[7], SDM_POINTS[0], SDM_POINTS[7]])
        assert modbus_server.requests[6:] == [(4, 0, 2), (4, 72, 2)]


async def test_a_device_that_never_answers_times_out(silent_server: SilentServer) -> None:
    async with device(silent_server.port, SDM_POINTS[:3]) as dev:
        start = time.monotonic()
        readings = await dev.read()
        elapsed = time.monotonic() - start
        assert TIMEOUT <= elapsed < TIMEOUT + MARGIN
        assert {r.quality for r in readings} == {Quality.BAD}
        reason = readings[0].reason
        assert reason is not None
        assert reason == f"timeout after {TIMEOUT} s reading input 0..13" + unit_hint(UNIT_ID)
        assert not dev.health.connected
        assert dev.health.consecutive_failures == 1


async def test_a_port_nobody_listens_on_is_connection_refused(closed_port: int) -> None:
    async with device(closed_port, SDM_POINTS[:2]) as dev:
        start = time.monotonic()
        readings = await dev.read()
        assert time.monotonic() - start < MARGIN
    for r in readings:
        assert r.quality is Quality.BAD
        assert r.reason is not None
        assert r.reason == "not connected: connection refused"  # no countdown (issue 15)


async def test_during_backoff_reads_return_at_once_without_touching_the_network(
    silent_server: SilentServer,
) -> None:
    slow_retry = Backoff(base_s=10, cap_s=10, rng=random.Random(1))
    async with device(silent_server.port, SDM_POINTS[:2], backoff=slow_retry) as dev:
        await dev.read()
        assert silent_server.connections == 1
        start = time.monotonic()
        readings = await dev.read()
        assert time.monotonic() - start < 0.05
        await asyncio.sleep(0.05)  # would be enough for a connection to show up
        assert silent_server.connections == 1
        assert dev.health.consecutive_failures == 1  # no attempt, no new failure
    reason = readings[0].reason
    assert reason is not None
    assert reason == (
        f"not connected: timeout after {TIMEOUT} s reading input 0..7" + unit_hint(UNIT_ID)
    )  # the same text at every poll of the outage: no countdown (issue 15)


async def test_reconnects_after_the_server_goes_away_and_comes_back() -> None:
    srv = await start_server(standard_device())
    port = srv.port
    dev = device(port, SDM_POINTS[:2])
    try:
        async with dev:
            assert all(r.quality is Quality.GOOD for r in await dev.read())
            await srv.stop()
            await asyncio.sleep(0.05)  # let the close reach the client
            down = await dev.read()
            assert all(r.quality is Quality.BAD for r in down)
            assert dev.health.consecutive_failures >= 1
            srv = await start_server(standard_device(), port=port)
            await asyncio.sleep(0.25)  # past the backoff cap
            up = await dev.read()
            assert [r.quality for r in up] == [Quality.GOOD, Quality.GOOD]
            assert [r.value for r in up] == [SDM120_VALUES[0], SDM120_VALUES[6]]
            assert dev.health.connected
            assert dev.health.consecutive_failures == 0
    finally:
        await srv.stop()


async def test_a_dead_device_does_not_slow_a_good_one(
    modbus_server: LoopbackServer, silent_server: SilentServer
) -> None:
    good = device(modbus_server.port, SDM_POINTS[:-1], device_id="good")
    dead = device(silent_server.port, SDM_POINTS[:-1], device_id="dead")

    async def timed(dev: ModbusTcpDevice) -> tuple[float, list[Reading]]:
        start = time.monotonic()
        readings = await dev.read()
        return time.monotonic() - start, readings

    async with good, dead:
        (good_s, good_r), (dead_s, dead_r) = await asyncio.gather(timed(good), timed(dead))
    assert all(r.quality is Quality.GOOD for r in good_r)
    assert all(r.quality is Quality.BAD for r in dead_r)
    assert good_s < 0.1 < TIMEOUT <= dead_s


async def test_cancellation_propagates(silent_server: SilentServer) -> None:
    async with device(silent_server.port, SDM_POINTS[:2]) as dev:
        task = asyncio.create_task(dev.read())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not dev.health.connected


# ---------------------------------------------------------------------- writes


async def test_writes_land_in_the_server(modbus_server: LoopbackServer) -> None:
    async with device(modbus_server.port) as dev:
        await dev.write("w_u16", 1234)
        await dev.write(W_F32, 230.5)
        await dev.write("w_scaled", -12.3)
        await dev.write("w_coil", True)
        assert [fc for fc, _, _ in modbus_server.requests] == [6, 16, 6, 5]
        assert await modbus_server.get(3, WRITABLE_AREA, 1) == [1234]
        assert await modbus_server.get(3, WRITABLE_AREA + 2, 2) == f32(230.5)
        assert await modbus_server.get(3, WRITABLE_AREA + 4, 1) == [0x10000 - 123]
        assert await modbus_server.get(1, 5, 1) == [True]
        back = by_name(await dev.read([W_U16, W_F32, W_SCALED, W_COIL]))
    assert back["w_u16"].value == 1234
    assert back["w_f32"].value == 230.5
    assert back["w_scaled"].value == pytest.approx(-12.3)
    assert back["w_coil"].value is True


@pytest.mark.parametrize(
    ("point", "value", "message"),
    [
        ("ro", 1, "not writable"),
        ("in0", 1.0, "not writable"),
        ("w_u16", 70000, r"out of range for uint16"),
        ("w_scaled", 4000.0, "out of range for int16"),
        ("w_f32", "high", "not a number"),
        ("w_coil", 2, "is not true or false"),
        ("nope", 1, "has no point 'nope'"),
    ],
)
async def test_rejected_writes_send_nothing(
    modbus_server: LoopbackServer, point: str, value: Any, message: str
) -> None:
    async with device(modbus_server.port) as dev:
        with pytest.raises(DriverError, match=message):
            await dev.write(point, value)
    assert modbus_server.requests == []
    assert await modbus_server.get(3, WRITABLE_AREA, 8) == [0] * 8


async def test_a_point_of_another_device_is_rejected(modbus_server: LoopbackServer) -> None:
    stranger = pt("w_u16", RegisterTable.HOLDING, 41, DataType.UINT16, writable=True)
    async with device(modbus_server.port) as dev:
        with pytest.raises(DriverError, match="not one of"):
            await dev.write(stranger, 1)
    assert modbus_server.requests == []


async def test_an_exception_response_to_a_write_raises(modbus_server: LoopbackServer) -> None:
    async with device(modbus_server.port) as dev:
        with pytest.raises(DriverError, match=r"modbus exception 2 \(illegal data address\)"):
            await dev.write("w_unserved", 1)
        assert dev.health.connected


async def test_writes_to_a_dead_device_raise(silent_server: SilentServer, closed_port: int) -> None:
    async with device(silent_server.port) as dev:
        start = time.monotonic()
        with pytest.raises(DriverError, match=f"timeout after {TIMEOUT} s writing holding 40..40"):
            await dev.write("w_u16", 1)
        assert time.monotonic() - start < TIMEOUT + MARGIN
    async with device(closed_port) as dev:
        with pytest.raises(DriverError, match="connection refused"):
            await dev.write("w_coil", False)


def test_a_profile_that_can_never_be_read_fails_at_construction() -> None:
    wide = pt("name", RegisterTable.HOLDING, 0, DataType.STRING, length=20)
    with pytest.raises(DriverError, match="max_registers_per_read"):
        device(1, [wide], settings=ModbusProfileSettings(max_registers_per_read=10))
    with pytest.raises(DriverError, match="share a name"):
        device(1, [W_U16, W_U16])
