"""Real loopback Modbus TCP servers for the driver tests.

The server is pymodbus 3.16.1's own ``ModbusTcpServer`` over its ``SimDevice``/
``SimData`` datastore (the ``ModbusDeviceContext``/``ModbusSequentialDataBlock``
API is deprecated in 3.16 and logs a warning on every use). Register contents
are written with pymodbus's typed ``SimData`` conversions or ``struct``, never
with our codec, so a codec bug cannot hide itself. Every received request is
recorded through the server's ``trace_pdu`` hook, so tests can count requests.

Deliberately independent of ``ldt.simulators``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import pytest
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

UNIT_ID = 1


def f32(value: float) -> list[int]:
    """float32 as two big-endian registers (ABCD), via struct."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def filled(*entries: SimData) -> list[SimData]:
    """``entries`` plus zero registers in the holes between them (holes are invalid otherwise)."""
    out: list[SimData] = []
    ordered = sorted(entries, key=lambda e: e.address)
    for entry, nxt in zip(ordered, [*ordered[1:], None], strict=True):
        out.append(entry)
        end = entry.address + len(entry.build_registers(False)) * entry.count
        if nxt is not None and nxt.address > end:
            out.append(SimData(end, count=nxt.address - end, values=0, datatype=DataType.REGISTERS))
    return out


# The SDM120-like input map: float32 values at these addresses; 342 is NOT served.
SDM120_VALUES: dict[int, float] = {
    0: 230.5,  # voltage
    6: 4.25,  # current
    12: 979.75,  # active power
    18: 1000.0,  # apparent power
    24: -20.5,  # reactive power
    30: 0.875,  # power factor
    70: 50.0,  # frequency
    72: 1234.5,  # import energy
    74: 0.5,  # export energy
}
UNSERVED_INPUT = 342

HOLDING_VALUES = {
    "int16": (0, -1234),
    "uint16": (1, 60000),
    "int32": (2, -123456789),
    "uint32": (4, 4_000_000_000),
    "int64": (6, -(2**62) - 5),
    "uint64": (10, 2**64 - 7),
    "float32": (14, 230.5),
    "float64": (16, -1.25e10),
}
BOOL_REGISTER = 20  # holds 7 -> true
STRING_ADDRESS = 21  # "SDM120  " in 4 registers, trailing spaces
CDAB_FLOAT = 30  # 230.0 word-swapped: 0x0000 0x4366
WRITABLE_AREA = 40  # 40..49 zeros, writable
ISLAND = 100  # served; 50..99 are not
COILS = [True, False, True, True, False, False, False, True] * 2
DISCRETES = [False, True, True, False, True, False, False, False] * 2


def standard_device() -> SimDevice:
    """Every table populated with known values (see the constants above)."""
    ht = DataType
    holding = filled(
        SimData(0, values=-1234, datatype=ht.INT16),
        SimData(1, values=60000, datatype=ht.UINT16),
        SimData(2, values=-123456789, datatype=ht.INT32),
        SimData(4, values=4_000_000_000, datatype=ht.UINT32),
        SimData(6, values=-(2**62) - 5, datatype=ht.INT64),
        SimData(10, values=2**64 - 7, datatype=ht.UINT64),
        SimData(14, values=230.5, datatype=ht.FLOAT32),
        SimData(16, values=-1.25e10, datatype=ht.FLOAT64),
        SimData(BOOL_REGISTER, values=7, datatype=ht.REGISTERS),
        SimData(STRING_ADDRESS, values="SDM120  ", datatype=ht.STRING),
        SimData(CDAB_FLOAT, values=[0x0000, 0x4366], datatype=ht.REGISTERS),
        SimData(WRITABLE_AREA, count=10, values=0, datatype=ht.REGISTERS),
    )
    holding.append(SimData(ISLAND, values=7, datatype=ht.REGISTERS))
    inputs = filled(
        *(SimData(a, values=f32(v), datatype=ht.REGISTERS) for a, v in SDM120_VALUES.items())
    )
    return SimDevice(
        UNIT_ID,
        simdata=(
            [SimData(0, values=COILS, datatype=ht.BITS)],
            [SimData(0, values=DISCRETES, datatype=ht.BITS)],
            holding,
            inputs,
        ),
    )


@dataclass
class LoopbackServer:
    """A running pymodbus server and what it received."""

    server: ModbusTcpServer
    port: int
    requests: list[tuple[int, int, int]] = field(default_factory=list)
    """(function code, address, count) of every request received."""

    async def get(self, function_code: int, address: int, count: int) -> list[int] | list[bool]:
        """Read the datastore directly (FC 1/2/3/4 semantics), bypassing the network."""
        return await self.server.async_getValues(UNIT_ID, function_code, address, count)

    async def stop(self) -> None:
        await self.server.shutdown()  # type: ignore[no-untyped-call]


async def start_server(device: SimDevice, *, port: int = 0) -> LoopbackServer:
    """Start a server on 127.0.0.1 (``port=0``: a free one)."""
    requests: list[tuple[int, int, int]] = []

    def trace(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            requests.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    server = ModbusTcpServer(device, address=("127.0.0.1", port), trace_pdu=trace)
    await server.serve_forever(background=True)
    listener = cast(asyncio.Server, server.transport)
    bound = listener.sockets[0].getsockname()[1]
    return LoopbackServer(server=server, port=bound, requests=requests)


@pytest.fixture
async def modbus_server() -> AsyncIterator[LoopbackServer]:
    """A server with ``standard_device()``'s registers."""
    srv = await start_server(standard_device())
    try:
        yield srv
    finally:
        await srv.stop()


@dataclass
class SilentServer:
    """Accepts TCP connections, reads whatever arrives and never answers."""

    port: int
    connections: int = 0


@pytest.fixture
async def silent_server() -> AsyncIterator[SilentServer]:
    state = SilentServer(port=0)
    handlers: set[asyncio.Task[None]] = set()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while await reader.read(1024):
                pass
        finally:
            writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        for t in handlers:
            t.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return cast(int, s.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    return free_port()
