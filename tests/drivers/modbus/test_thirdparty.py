"""The Modbus driver against npm's ``modbus-serial`` TCP server (issue 15): a device nobody
here wrote, with a register map that has holes, as real meters' maps do.

- With points at holding 32 and 37..39 and nothing at 33..36, the default profile
  (``max_gap = 8``) joined them into one read that the device refused (exception 2), and
  every point was bad on every poll. Now the read is split, every valid point reads, and
  later polls do not ask for the hole again.
- A point that is itself outside the map gets its own bad reading naming it; its
  neighbours read.
- A wrong ``unit_id``: the device ignores the request, and the reason says to check it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ldt.drivers.modbus.config import (
    DataType,
    ModbusPoint,
    ModbusProfileSettings,
    ModbusTcpConnection,
    RegisterTable,
)
from ldt.drivers.modbus.device import ModbusTcpDevice
from ldt.reading import Quality, Reading
from tests.thirdparty.modbus_server import modbus_serial_server

pytestmark = pytest.mark.integration

GAPPY = {
    "unit": 1,
    "holding": {"32": 100, "37": 7, "38": 0x4366, "39": 0x0000, "40": 5},
}


def _pt(name: str, address: int, dtype: DataType = DataType.UINT16) -> ModbusPoint:
    return ModbusPoint(name=name, table=RegisterTable.HOLDING, address=address, type=dtype)


def _device(port: int, points: list[ModbusPoint], **conn: Any) -> ModbusTcpDevice:
    return ModbusTcpDevice(
        device_id="meter",
        connection=ModbusTcpConnection(host="127.0.0.1", port=port, timeout_s=0.5, **conn),
        settings=ModbusProfileSettings(),  # the defaults: max_gap = 8
        points=points,
    )


def _by_name(readings: list[Reading]) -> dict[str, Reading]:
    return {r.point: r for r in readings}


async def test_a_gappy_map_reads_every_valid_point_with_the_defaults(tmp_path: Path) -> None:
    points = [_pt("a", 32), _pt("b", 37), _pt("c", 38, DataType.FLOAT32), _pt("d", 40)]
    async with (
        modbus_serial_server(tmp_path, GAPPY) as server,
        _device(server.port, points) as device,
    ):
        first = _by_name(await device.read())
        assert {n: r.value for n, r in first.items()} == {"a": 100, "b": 7, "c": 230.0, "d": 5}
        assert all(r.quality is Quality.GOOD for r in first.values())
        refused_once = len(server.refused)
        assert refused_once >= 1  # the joined read, refused for the hole
        for _ in range(3):
            again = _by_name(await device.read())
            assert all(r.quality is Quality.GOOD for r in again.values())
        assert len(server.refused) == refused_once  # the holes are not asked for again


async def test_an_invalid_point_is_bad_alone_and_named(tmp_path: Path) -> None:
    points = [_pt("a", 32), _pt("ghost", 34), _pt("b", 37)]
    async with (
        modbus_serial_server(tmp_path, GAPPY) as server,
        _device(server.port, points) as device,
    ):
        for _ in range(2):
            readings = _by_name(await device.read())
            assert readings["a"].value == 100
            assert readings["b"].value == 7
            ghost = readings["ghost"]
            assert ghost.quality is Quality.BAD
            assert ghost.reason is not None
            assert "illegal data address" in ghost.reason
            assert "holding 34" in ghost.reason
            assert "'ghost'" in ghost.reason


async def test_a_wrong_unit_id_is_named_in_the_reason(tmp_path: Path) -> None:
    async with (
        modbus_serial_server(tmp_path, GAPPY) as server,
        _device(server.port, [_pt("a", 32)], unit_id=9) as device,
    ):
        (reading,) = await device.read()
    assert reading.quality is Quality.BAD
    assert reading.reason is not None
    assert "unit_id 9" in reading.reason
