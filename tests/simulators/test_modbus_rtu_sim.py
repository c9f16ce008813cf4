"""The RTU simulator over a real serial line (socat pty pair), through pymodbus's own client.

Deliberately not through ldt's driver: the simulator is checked on its own,
with pymodbus's serial client and raw frames written to the pty.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.framer.rtu import FramerRTU

from ldt.simulators.modbus import ModbusRtuSimulator, SimulatorError, resolve_profile
from tests.drivers.modbus.serial_pty import PtyPair, pty_pair

pytestmark = pytest.mark.integration

SDM120 = resolve_profile("eastron-sdm120")
XYMD02 = resolve_profile("xymd02-th")
BAUD = 115200


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyPair]:
    with pty_pair(tmp_path) as pair:
        yield pair


@pytest.fixture
async def bus(line: PtyPair) -> AsyncIterator[ModbusRtuSimulator]:
    sim = ModbusRtuSimulator(
        port=line.devices, devices=[(1, SDM120, 1), (2, XYMD02, 2)], baudrate=BAUD
    )
    async with sim:
        sim.unit(1).freeze()
        sim.unit(2).freeze()
        yield sim


@pytest.fixture
async def client(line: PtyPair) -> AsyncIterator[AsyncModbusSerialClient]:
    c = AsyncModbusSerialClient(line.master, baudrate=BAUD, timeout=0.3, retries=0)
    assert await c.connect()
    try:
        yield c
    finally:
        c.close()


def f32(registers: Sequence[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *registers))[0])


def frame(unit: int, pdu: bytes) -> bytes:
    body = bytes([unit]) + pdu
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


async def test_each_unit_serves_its_own_profile(
    bus: ModbusRtuSimulator, client: AsyncModbusSerialClient
) -> None:
    voltage = await client.read_input_registers(0, count=2, device_id=1)
    assert f32(voltage.registers) == pytest.approx(bus.unit(1).expected("voltage"), rel=1e-6)
    temperature = await client.read_input_registers(1, count=1, device_id=2)
    raw = struct.unpack(">h", struct.pack(">H", temperature.registers[0]))[0]
    assert raw * 0.1 == pytest.approx(bus.unit(2).expected("temperature"))
    # unit 2 has no register 0; unit 1 has no holding 257
    assert (await client.read_input_registers(0, count=2, device_id=2)).exception_code == 2
    assert (await client.read_holding_registers(257, count=1, device_id=1)).exception_code == 2
    assert (bus.unit(1).request_count, bus.unit(2).request_count) == (2, 2)
    assert [t.unit_id for t in bus.transactions] == [1, 2, 2, 1]
    assert all(t.answered for t in bus.transactions)


async def test_writes_reach_only_their_unit(
    bus: ModbusRtuSimulator, client: AsyncModbusSerialClient
) -> None:
    assert not (await client.write_register(259, 0xFFF1, device_id=2)).isError()  # -1.5 degC
    assert bus.unit(2).expected("temperature_correction") == pytest.approx(-1.5)
    assert (await client.write_register(1, 5, device_id=2)).exception_code == 2  # input: r/o
    assert (await client.write_register(259, 1, device_id=1)).exception_code == 2


async def test_an_absent_unit_is_silent(
    bus: ModbusRtuSimulator, client: AsyncModbusSerialClient
) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.25):
            await client.read_input_registers(1, count=1, device_id=3)
    assert time.monotonic() - start >= 0.25
    assert bus.transactions[-1].unit_id == 3
    assert not bus.transactions[-1].answered
    # the line is still fine for the others
    assert not (await client.read_input_registers(1, count=1, device_id=2)).isError()


async def test_answers_take_the_line_time(line: PtyPair) -> None:
    async with ModbusRtuSimulator(
        port=line.devices, devices=[(1, SDM120, 0)], baudrate=9600
    ) as sim:
        c = AsyncModbusSerialClient(line.master, baudrate=9600, timeout=1, retries=0)
        assert await c.connect()
        try:
            start = time.monotonic()
            await c.read_input_registers(0, count=30, device_id=1)
            paced = time.monotonic() - start
            sim.line_timing = False
            start = time.monotonic()
            await c.read_input_registers(0, count=30, device_id=1)
            free = time.monotonic() - start
        finally:
            c.close()
    wire = (8 + 5 + 60) * 10 / 9600  # request and answer bytes at 10 bits each
    assert wire <= paced < wire + 0.1
    assert free < wire


async def test_corrupted_crcs_are_not_accepted(
    bus: ModbusRtuSimulator, client: AsyncModbusSerialClient
) -> None:
    bus.crc_error_rate = 1.0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await client.read_input_registers(1, count=1, device_id=2)
    assert bus.corrupted == 1
    bus.crc_error_rate = 0.0
    assert not (await client.read_input_registers(1, count=1, device_id=2)).isError()


async def test_overlapping_requests_are_detected(line: PtyPair) -> None:
    async with ModbusRtuSimulator(
        port=line.devices, devices=[(1, SDM120, 0), (2, XYMD02, 0)], baudrate=9600
    ) as sim:
        fd = os.open(line.master, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(fd, frame(1, bytes.fromhex("0400000020")))  # FC 4, 0, 32 registers
            await asyncio.sleep(0.01)  # the answer takes ~80 ms of line time at 9600
            os.write(fd, frame(2, bytes.fromhex("0400010001")))
            await asyncio.sleep(0.2)
        finally:
            os.close(fd)
        pairs = sim.overlapping()
    assert [(a.unit_id, b.unit_id) for a, b in pairs] == [(1, 2)]


async def test_unit_knobs_act_on_their_unit_only(
    bus: ModbusRtuSimulator, client: AsyncModbusSerialClient
) -> None:
    bus.unit(2).exception_rate = 1.0
    assert (await client.read_input_registers(1, count=1, device_id=2)).exception_code == 4
    assert not (await client.read_input_registers(0, count=2, device_id=1)).isError()


async def test_restart_keeps_the_values(line: PtyPair) -> None:
    sim = ModbusRtuSimulator(port=line.devices, devices=[(2, XYMD02, 5)], baudrate=BAUD)
    async with sim:
        sim.unit(2).set_value("humidity_correction", 2.5)
    c = AsyncModbusSerialClient(line.master, baudrate=BAUD, timeout=0.3, retries=0)
    assert await c.connect()
    try:
        async with sim:
            rr = await c.read_holding_registers(260, count=1, device_id=2)
    finally:
        c.close()
    assert rr.registers == [25]


@pytest.mark.parametrize(
    ("devices", "kwargs", "message"),
    [
        ([], {}, "at least one device"),
        ([(0, XYMD02, 0)], {}, "outside 1..247"),
        ([(248, XYMD02, 0)], {}, "outside 1..247"),
        ([(1, XYMD02, 0), (1, SDM120, 0)], {}, "appears twice"),
        ([(1, XYMD02, 0)], {"baudrate": 300}, "outside 1200..115200"),
        ([(1, XYMD02, 0)], {"crc_error_rate": 2.0}, "between 0 and 1"),
        ([(1, XYMD02, 0)], {"parity": "X"}, "not Modbus RTU framings"),
    ],
)
def test_bad_settings_are_rejected(
    devices: list[tuple[int, Path, int]], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SimulatorError, match=message):
        ModbusRtuSimulator(port="/dev/null", devices=devices, **kwargs)  # type: ignore[arg-type]


async def test_a_missing_port_is_reported(tmp_path: Path) -> None:
    sim = ModbusRtuSimulator(port=str(tmp_path / "nope"), devices=[(1, XYMD02, 0)])
    with pytest.raises(SimulatorError, match="cannot open serial port"):
        await sim.start()
    await sim.stop()


# -- CLI -----------------------------------------------------------------------------


def _ldt(*args: str) -> list[str]:
    return [sys.executable, "-m", "ldt", *args]


async def test_cli_serves_an_rtu_line_until_sigterm(line: PtyPair) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_ldt(
            "sim", "modbus", "--serial", line.devices, "--baudrate", str(BAUD),
            "--unit", "1:eastron-sdm120", "--unit", "2:xymd02-th:7",
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            ready = (await proc.stdout.readline()).decode().rstrip()
        assert ready == (
            f"ldt sim modbus: serving RTU on {line.devices} at {BAUD} 8N1: "
            "unit 1 eastron-sdm120 (seed 0), unit 2 xymd02-th (seed 7)"
        )
        c = AsyncModbusSerialClient(line.master, baudrate=BAUD, timeout=1, retries=0)
        assert await c.connect()
        try:
            freq = await c.read_input_registers(70, count=2, device_id=1)
            humidity = await c.read_input_registers(2, count=1, device_id=2)
        finally:
            c.close()
        assert 49 < f32(freq.registers) < 51
        assert 0 < humidity.registers[0] <= 1000
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
        assert proc.returncode == 0
        assert err == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "give either --port (TCP) or --serial (RTU)"),
        (["--port", "0", "--serial", "/dev/null"], 2, "give either --port (TCP) or --serial"),
        (["--serial", "/dev/null", "--unit", "one:xymd02-th"], 1, "must be integers"),
        (["--serial", "/dev/null", "--unit", "1"], 1, "is not ID:PROFILE"),
        (["--serial", "/dev/null", "--unit", "1:no-such"], 1, "no profile named 'no-such'"),
    ],
)
def test_cli_rejects_bad_rtu_options_in_one_line(args: list[str], code: int, message: str) -> None:
    done = subprocess.run(
        _ldt("sim", "modbus", *args), capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
