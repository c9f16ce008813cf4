"""The Modbus simulator, through real pymodbus clients, mbpoll and the CLI over loopback."""

from __future__ import annotations

import asyncio
import itertools
import math
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from ldt.simulators.modbus import ModbusSimulator, SimulatorError, resolve_profile
from ldt.simulators.modbus.profile import SimPoint
from ldt.simulators.modbus.registers import decode, encode

pytestmark = pytest.mark.integration

SDM120 = resolve_profile("eastron-sdm120")
F32 = AsyncModbusTcpClient.DATATYPE.FLOAT32

ALL_TABLES = """
[profile]
name = "all-tables"
manufacturer = "test"
model = "t"
protocol = "modbus"
source = "written for this test"

[modbus]
max_gap = 2

[[points]]
name = "relay"
table = "coil"
address = 3
type = "bool"
writable = true

[[points]]
name = "door_open"
table = "discrete"
address = 10
type = "bool"

[[points]]
name = "setpoint"
table = "holding"
address = 100
type = "int16"
scale = 0.5
writable = true

[[points]]
name = "model_name"
table = "holding"
address = 110
type = "string"
length = 4

[[points]]
name = "operating_hours"
table = "holding"
address = 120
type = "uint32"
word_order = "little"

[[points]]
name = "level"
table = "input"
address = 0
type = "uint16"
scale = 0.1

[[points]]
name = "temperature"
table = "input"
address = 3
type = "float32"
byte_order = "little"
"""


@pytest.fixture
def all_tables(tmp_path: Path) -> Path:
    path = tmp_path / "all-tables.toml"
    path.write_text(ALL_TABLES)
    return path


Connect = Callable[..., Awaitable[AsyncModbusTcpClient]]


@pytest.fixture
async def client_for() -> AsyncIterator[Connect]:
    """Connects pymodbus clients (no retries) to a port; closes them after the test."""
    clients: list[AsyncModbusTcpClient] = []

    async def connect(port: int, deadline_s: float = 2.0) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=deadline_s, retries=0)
        clients.append(client)
        assert await client.connect()
        return client

    yield connect
    for c in clients:
        c.close()


def _f32(regs: Sequence[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *regs))[0])


# -- codec ----------------------------------------------------------------------


def _point(kind: str, **kw: object) -> SimPoint:
    base: dict[str, object] = {
        "name": "p",
        "table": "holding",
        "address": 0,
        "type": kind,
        "registers": {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}.get(kind, 4),
        "byte_order": "big",
        "word_order": "big",
        "scale": 1.0,
        "offset": 0.0,
        "writable": True,
    }
    base.update(kw)
    return SimPoint(**base)  # type: ignore[arg-type]


def test_codec_matches_the_eastron_manual_example() -> None:
    # SDM manuals: "43 66 33 34 (Hex) = 230.2 (Floating point)"
    # (the meter's reading, one float32 step above the nearest float to 230.2)
    measured = decode(_point("float32"), [0x4366, 0x3334])
    assert measured == pytest.approx(230.2, abs=1e-4)
    assert encode(_point("float32"), measured) == [0x4366, 0x3334]
    assert encode(_point("float32"), 230.2) == [0x4366, 0x3333]
    # XY-MD02 manual: temperature 0xFF33 = -20.5 degC at 0.1 degC
    assert decode(_point("int16", scale=0.1), [0xFF33]) == pytest.approx(-20.5)
    assert encode(_point("int16", scale=0.1), -20.5) == [0xFF33]


def test_codec_orders() -> None:
    value = 0x11223344
    assert encode(_point("uint32"), value) == [0x1122, 0x3344]
    assert encode(_point("uint32", word_order="little"), value) == [0x3344, 0x1122]
    assert encode(_point("uint32", byte_order="little"), value) == [0x2211, 0x4433]
    text = _point("string", registers=2)
    assert encode(text, "ABC") == [0x4142, 0x4300]
    assert decode(text, [0x4142, 0x4300]) == "ABC"


@given(
    kind=st.sampled_from(["int16", "uint16", "int32", "uint32"]),
    byte_order=st.sampled_from(["big", "little"]),
    word_order=st.sampled_from(["big", "little"]),
    raw=st.integers(min_value=-(2**31), max_value=2**32 - 1),
)
def test_codec_integer_round_trip(kind: str, byte_order: str, word_order: str, raw: int) -> None:
    point = _point(kind, byte_order=byte_order, word_order=word_order)
    bits = 16 if "16" in kind else 32
    lo, hi = (0, 2**bits - 1) if kind.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if lo <= raw <= hi:
        regs = encode(point, raw)
        assert all(0 <= r <= 0xFFFF for r in regs)
        assert decode(point, regs) == raw
    else:
        with pytest.raises(ValueError, match="does not fit"):
            encode(point, raw)


@pytest.mark.parametrize("bad", ["text", math.nan, math.inf, [1]])
def test_codec_rejects_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match="p:"):
        encode(_point("float32"), bad)  # type: ignore[arg-type]


# -- values -----------------------------------------------------------------------


def test_same_seed_and_steps_give_same_values() -> None:
    a = ModbusSimulator(profile=SDM120, seed=7)
    b = ModbusSimulator(profile=SDM120, seed=7)
    c = ModbusSimulator(profile=SDM120, seed=8)
    for sim in (a, b, c):
        sim.advance(25)
    assert a.values() == b.values()
    assert a.values() != c.values()


def test_values_are_plausible_and_consistent() -> None:
    sim = ModbusSimulator(profile=SDM120, seed=1)
    for _ in range(50):
        sim.advance(10)
        v = sim.values()
        assert 215 < v["voltage"] < 245  # type: ignore[operator]
        assert 49.8 < v["frequency"] < 50.2  # type: ignore[operator]
        assert 0.8 <= v["power_factor"] <= 1.0  # type: ignore[operator]
        p = float(v["voltage"]) * float(v["current"]) * float(v["power_factor"])
        assert float(v["active_power"]) == pytest.approx(p, rel=1e-5)
        s = float(v["apparent_power"])
        assert math.hypot(float(v["active_power"]), float(v["reactive_power"])) == pytest.approx(
            s, rel=1e-4
        )


def test_energy_counters_only_grow_with_power_integrated() -> None:
    sim = ModbusSimulator(profile=SDM120, seed=2, update_interval_s=10.0)
    before = float(sim.expected("import_active_energy"))
    readings = []
    powers = []
    for _ in range(360):  # one simulated hour
        sim.advance()
        readings.append(float(sim.expected("import_active_energy")))
        powers.append(float(sim.expected("active_power")))
    assert all(b >= a for a, b in itertools.pairwise(readings))
    integrated = sum(powers) * 10.0 / 3.6e6
    assert readings[-1] - before == pytest.approx(integrated, rel=0.02)
    assert sim.expected("export_active_energy") == sim.values()["export_active_energy"]


def test_three_phase_and_climate_profiles() -> None:
    sdm630 = ModbusSimulator(profile=resolve_profile("eastron-sdm630"), seed=3)
    sdm630.advance(5)
    v = sdm630.values()
    total = sum(float(v[f"active_power_l{i}"]) for i in (1, 2, 3))
    assert float(v["total_active_power"]) == pytest.approx(total, rel=1e-5)
    assert 380 < float(v["voltage_line_to_line_l1"]) < 420
    assert isinstance(v["serial_number"], int)
    th = ModbusSimulator(profile=resolve_profile("xymd02-th"), seed=3, unit_id=9)
    start = th.values()
    th.advance(600)
    later = th.values()
    assert 15 <= float(later["temperature"]) <= 30
    assert 25 <= float(later["relative_humidity"]) <= 75
    assert later["temperature"] != start["temperature"]
    assert later["modbus_address"] == 9  # configuration holds
    assert later["temperature_correction"] == 0.0


def test_set_value_and_its_rejections() -> None:
    sim = ModbusSimulator(profile=resolve_profile("xymd02-th"))
    sim.set_value("temperature_correction", -1.5)
    assert sim.expected("temperature_correction") == pytest.approx(-1.5)
    with pytest.raises(SimulatorError, match="does not fit"):
        sim.set_value("temperature", 5000.0)
    with pytest.raises(SimulatorError, match="no point"):
        sim.set_value("nope", 1)
    with pytest.raises(SimulatorError, match="no point"):
        sim.expected("nope")


@pytest.mark.parametrize(
    "kwargs",
    [{"exception_rate": 1.5}, {"drop_rate": -0.1}, {"unit_id": 256}, {"update_interval_s": 0}],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(SimulatorError):
        ModbusSimulator(profile=SDM120, **kwargs)  # type: ignore[arg-type]


async def test_bad_profile_is_rejected_on_start(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[profile\n")
    with pytest.raises(SimulatorError, match="not valid TOML"):
        await ModbusSimulator(profile=path).start()
    with pytest.raises(SimulatorError, match="no profile named"):
        resolve_profile("no-such-device")


# -- serving ----------------------------------------------------------------------


async def test_each_table_is_served(all_tables: Path, client_for: Connect) -> None:
    async with ModbusSimulator(profile=all_tables, seed=5) as sim:
        sim.freeze()
        c = await client_for(sim.port)
        coil = await c.read_coils(3, count=1, device_id=1)
        assert not coil.isError()
        assert coil.bits[0] == sim.expected("relay")
        di = await c.read_discrete_inputs(10, count=1, device_id=1)
        assert not di.isError()
        assert di.bits[0] == sim.expected("door_open")
        hr = await c.read_holding_registers(100, count=1, device_id=1)
        assert not hr.isError()
        (raw,) = struct.unpack(">h", struct.pack(">H", hr.registers[0]))
        assert raw * 0.5 == sim.expected("setpoint")
        name = await c.read_holding_registers(110, count=4, device_id=1)
        assert str(c.convert_from_registers(name.registers, c.DATATYPE.STRING)).rstrip("\0") == (
            sim.expected("model_name")
        )
        hours = await c.read_holding_registers(120, count=2, device_id=1)
        value = c.convert_from_registers(hours.registers, c.DATATYPE.UINT32, word_order="little")
        assert value == sim.expected("operating_hours")
        ir = await c.read_input_registers(0, count=1, device_id=1)
        assert ir.registers[0] * 0.1 == pytest.approx(sim.expected("level"))
        temp = await c.read_input_registers(3, count=2, device_id=1)
        swapped = [((r & 0xFF) << 8) | (r >> 8) for r in temp.registers]
        assert _f32(swapped) == sim.expected("temperature")
        assert sim.request_count == 7


async def test_sdm120_floats_over_the_wire(client_for: Connect) -> None:
    async with ModbusSimulator(profile=SDM120, seed=11) as sim:
        sim.freeze()
        c = await client_for(sim.port)
        block = await c.read_input_registers(0, count=32, device_id=1)
        assert not block.isError()
        for name, addr in (("voltage", 0), ("current", 6), ("active_power", 12)):
            assert _f32(block.registers[addr : addr + 2]) == sim.expected(name)
        total = await c.read_input_registers(342, count=2, device_id=1)
        assert c.convert_from_registers(total.registers, F32) == sim.expected("total_active_energy")


async def test_values_change_over_time_unless_frozen(client_for: Connect) -> None:
    async with ModbusSimulator(profile=SDM120, update_interval_s=0.02) as sim:
        c = await client_for(sim.port)
        first = await c.read_input_registers(0, count=2, device_id=1)
        await asyncio.sleep(0.15)
        second = await c.read_input_registers(0, count=2, device_id=1)
        assert first.registers != second.registers
        sim.freeze()
        frozen = sim.values()
        await asyncio.sleep(0.1)
        assert sim.values() == frozen
        third = await c.read_input_registers(0, count=2, device_id=1)
        assert _f32(third.registers) == frozen["voltage"]
        sim.unfreeze()
        await asyncio.sleep(0.1)
        assert sim.values() != frozen


async def test_unmapped_addresses_get_illegal_data_address(
    all_tables: Path, client_for: Connect
) -> None:
    async with ModbusSimulator(profile=all_tables) as sim:
        c = await client_for(sim.port)
        for rr in (
            await c.read_input_registers(500, count=1, device_id=1),  # outside the map
            await c.read_holding_registers(103, count=1, device_id=1),  # gap > max_gap
            await c.read_holding_registers(100, count=5, device_id=1),  # runs into it
            await c.read_coils(0, count=1, device_id=1),
            await c.read_discrete_inputs(3, count=1, device_id=1),
        ):
            assert rr.isError()
            assert rr.exception_code == 2
        gap = await c.read_input_registers(0, count=5, device_id=1)  # gap 1..2 <= max_gap
        assert not gap.isError()
        assert gap.registers[1:3] == [0, 0]


async def test_writes_are_visible_and_read_only_points_refuse_them(
    all_tables: Path, client_for: Connect
) -> None:
    async with ModbusSimulator(profile=all_tables) as sim:
        c = await client_for(sim.port)
        wr = await c.write_register(100, (-42) & 0xFFFF, device_id=1)
        assert not wr.isError()
        assert sim.expected("setpoint") == -21.0
        now = not sim.expected("relay")
        assert not (await c.write_coil(3, now, device_id=1)).isError()
        assert sim.expected("relay") is now
        assert (await c.read_coils(3, count=1, device_id=1)).bits[0] is now
        sim.advance(10)
        assert sim.expected("setpoint") == -21.0  # writable points hold their value
        refused = await c.write_registers(120, [1, 2], device_id=1)
        assert refused.isError()
        assert refused.exception_code == 2


async def test_other_unit_ids_get_gateway_no_response(client_for: Connect) -> None:
    async with ModbusSimulator(profile=SDM120, unit_id=3) as sim:
        c = await client_for(sim.port)
        assert not (await c.read_input_registers(0, count=2, device_id=3)).isError()
        rr = await c.read_input_registers(0, count=2, device_id=1)
        assert rr.isError()
        assert rr.exception_code == 0x0B


async def test_exception_rate_one_fails_every_request(client_for: Connect) -> None:
    async with ModbusSimulator(profile=SDM120, exception_rate=1.0) as sim:
        c = await client_for(sim.port)
        for _ in range(5):
            rr = await c.read_input_registers(0, count=2, device_id=1)
            assert rr.isError()
            assert rr.exception_code == 4
        assert sim.request_count == 5


async def test_exception_rate_is_a_fraction(client_for: Connect) -> None:
    async with ModbusSimulator(profile=SDM120, exception_rate=0.5, seed=4) as sim:
        c = await client_for(sim.port)
        failed = 0
        for _ in range(40):
            failed += (await c.read_input_registers(0, count=2, device_id=1)).isError()
        assert 5 < failed < 35


async def test_drop_rate_one_never_answers(client_for: Connect) -> None:
    async with ModbusSimulator(profile=SDM120, drop_rate=1.0) as sim:
        c = await client_for(sim.port, deadline_s=0.3)
        started = time.monotonic()
        with pytest.raises(ModbusIOException):
            await c.read_input_registers(0, count=2, device_id=1)
        assert time.monotonic() - started >= 0.25
        assert sim.request_count == 1


async def test_delay_answers_late(client_for: Connect) -> None:
    async with ModbusSimulator(profile=SDM120, delay_ms=150) as sim:
        sim.freeze()
        c = await client_for(sim.port)
        started = time.monotonic()
        rr = await c.read_input_registers(0, count=2, device_id=1)
        assert time.monotonic() - started >= 0.14
        assert _f32(rr.registers) == sim.expected("voltage")


async def test_busy_port_is_reported() -> None:
    async with ModbusSimulator(profile=SDM120) as first:
        second = ModbusSimulator(profile=SDM120, port=first.port)
        with pytest.raises(SimulatorError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            await second.start()


# -- mbpoll: an independent Modbus master --------------------------------------------


MBPOLL = shutil.which("mbpoll")


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll is not installed (apt-get install mbpoll)")
async def test_mbpoll_reads_sdm120_floats() -> None:
    assert MBPOLL is not None
    async with ModbusSimulator(profile=SDM120, seed=21) as sim:
        sim.freeze()
        # -t 3:float: float32 input registers; -B: most significant word first;
        # -r 1: 1-based reference 1 = address 0; -c 4: four floats (addresses 0..7)
        proc = await asyncio.create_subprocess_exec(
            MBPOLL, "-m", "tcp", "-a", "1", "-t", "3:float", "-B", "-r", "1", "-c", "4",
            "-p", str(sim.port), "-1", "-o", "2", "127.0.0.1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(10):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        # lines such as "[1]: \t228.66": mbpoll prints floats with printf's %g
        printed = {}
        for line in out.decode().splitlines():
            if line.startswith("["):
                ref, value = line.split("]:", 1)
                printed[int(ref.strip("["))] = value.strip()
        assert set(printed) == {1, 3, 5, 7}
        assert printed[1] == f"{sim.expected('voltage'):g}"
        assert printed[3] == printed[5] == "0"  # registers 2..5: unmapped gap <= max_gap
        assert printed[7] == f"{sim.expected('current'):g}"


# -- CLI -----------------------------------------------------------------------------


def _ldt(*args: str) -> list[str]:
    return [sys.executable, "-m", "ldt", *args]


async def test_cli_serves_until_sigterm(client_for: Connect) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_ldt("sim", "modbus", "--port", "0", "--seed", "5"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("ldt sim modbus: serving eastron-sdm120 on 127.0.0.1:")
        assert line.rstrip().endswith("unit 1 (seed 5)")
        port = int(line.split("127.0.0.1:", 1)[1].split()[0])
        c = await client_for(port)
        rr = await c.read_input_registers(70, count=2, device_id=1)
        assert 49 < float(c.convert_from_registers(rr.registers, F32)) < 51  # type: ignore[arg-type]
        c.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
        assert proc.returncode == 0
        assert err == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_cli_rejects_a_bad_profile_in_one_line() -> None:
    done = subprocess.run(
        _ldt("sim", "modbus", "--port", "0", "--profile", "no-such-device"),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ldt sim modbus: no profile named 'no-such-device'")


def test_cli_reports_a_busy_port_in_one_line() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            _ldt("sim", "modbus", "--port", str(port)),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"ldt sim modbus: cannot listen on 127.0.0.1:{port} "
        "(in use, or not an address of this host)"
    ]
