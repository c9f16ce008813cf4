"""ModbusRtuDevice over a real serial line (socat pty pair) against the RTU simulator.

Two units with different profiles on one bus (eastron-sdm120 at 1, xymd02-th at
2) and an absent unit 3: concurrent reads are correct and never collide, the
dead unit times out and backs off without stalling the others, garbled
answers fail fast, and the bus recovers when the simulator restarts.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ldt.backoff import Backoff
from ldt.drivers.base import Device
from ldt.drivers.errors import DriverError
from ldt.drivers.modbus import ModbusRtuDevice, plan_reads
from ldt.drivers.modbus.config import ModbusPoint, ModbusProfileSettings, ModbusRtuConnection
from ldt.reading import Quality, Reading
from ldt.simulators.modbus import ModbusRtuSimulator, resolve_profile
from tests.drivers.modbus.serial_pty import PtyPair, pty_pair

pytestmark = pytest.mark.integration

BAUD = 115200
TIMEOUT = 0.3
MARGIN = 0.4  # scheduling slack on a loaded 2-core CI machine
CAP = 0.5  # backoff ceiling in these tests
SDM120 = resolve_profile("eastron-sdm120")
XYMD02 = resolve_profile("xymd02-th")


def load_profile(path: Path) -> tuple[ModbusProfileSettings, list[ModbusPoint]]:
    """The ``[modbus]`` table and points of a shipped profile, validated by the driver's models."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return ModbusProfileSettings(**data.get("modbus", {})), [
        ModbusPoint(**p) for p in data["points"]
    ]


SDM_BLOCKS = len(plan_reads(*reversed(load_profile(SDM120))))  # type: ignore[arg-type]
XY_BLOCKS = len(plan_reads(*reversed(load_profile(XYMD02))))  # type: ignore[arg-type]


def rtu_device(
    port: str, unit_id: int, profile: Path, *, timeout_s: float = TIMEOUT, **conn: Any
) -> ModbusRtuDevice:
    settings, points = load_profile(profile)
    return ModbusRtuDevice(
        device_id=f"unit-{unit_id}",
        connection=ModbusRtuConnection(
            port=port, baudrate=BAUD, unit_id=unit_id, timeout_s=timeout_s, **conn
        ),
        settings=settings,
        points=points,
        backoff=Backoff(base_s=0.1, cap_s=CAP, rng=random.Random(unit_id)),
    )


def same_value(expected: Any, got: Any) -> bool:
    """Equal, or the same float32 (the driver prints float32 in its shortest form)."""
    if isinstance(expected, float) and isinstance(got, float):
        return expected == got or struct.pack(">f", expected) == struct.pack(">f", got)
    return bool(expected == got)


def assert_matches(sim_values: dict[str, Any], readings: list[Reading]) -> None:
    for r in readings:
        assert r.quality is Quality.GOOD, r
        assert same_value(sim_values[r.point], r.value), (r.point, sim_values[r.point], r.value)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyPair]:
    with pty_pair(tmp_path) as pair:
        yield pair


@pytest.fixture
async def bus(line: PtyPair) -> AsyncIterator[ModbusRtuSimulator]:
    """SDM120 at unit 1 and XY-MD02 at unit 2, values frozen, served on the devices' end."""
    sim = ModbusRtuSimulator(
        port=line.devices, devices=[(1, SDM120, 1), (2, XYMD02, 2)], baudrate=BAUD
    )
    async with sim:
        sim.unit(1).freeze()
        sim.unit(2).freeze()
        yield sim


# ---------------------------------------------------------------------- config


def test_inter_frame_delay_follows_the_spec() -> None:
    def conn(**kw: Any) -> ModbusRtuConnection:
        return ModbusRtuConnection(port="/dev/ttyUSB0", **kw)

    assert conn(baudrate=9600).inter_frame_delay_s == pytest.approx(3.5 * 10 / 9600)
    assert conn(baudrate=9600, parity="E").inter_frame_delay_s == pytest.approx(3.5 * 11 / 9600)
    assert conn(baudrate=19200, stopbits=2).inter_frame_delay_s == pytest.approx(3.5 * 11 / 19200)
    assert conn(baudrate=38400).inter_frame_delay_s == 0.00175
    assert conn(baudrate=115200).inter_frame_delay_s == 0.00175
    assert conn(baudrate=9600, inter_frame_delay_ms=20).inter_frame_delay_s == 0.02
    assert conn().protocol == "modbus-rtu"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("baudrate", 300),
        ("baudrate", 230400),
        ("parity", "X"),
        ("stopbits", 3),
        ("bytesize", 7),
        ("unit_id", 0),
        ("unit_id", 248),
        ("timeout_s", 0),
        ("port", ""),
        ("speed", 9600),
    ],
)
def test_bad_connections_are_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        ModbusRtuConnection(**{"port": "/dev/ttyUSB0", field: value})


def test_satisfies_the_driver_contract() -> None:
    dev = rtu_device("/dev/null", 1, XYMD02)
    assert isinstance(dev, Device)
    assert dev.streams is False
    assert dev.polled_points() == dev.points
    assert len(dev.points) == 6


async def test_stream_is_refused() -> None:
    async def emit(_: Reading) -> None:
        raise AssertionError("nothing to emit")

    with pytest.raises(DriverError, match="does not push"):
        await rtu_device("/dev/null", 1, XYMD02).stream(emit)


# ------------------------------------------------------------------ the shared line


async def test_two_units_read_concurrently_and_correctly(
    line: PtyPair, bus: ModbusRtuSimulator
) -> None:
    meter, climate = rtu_device(line.master, 1, SDM120), rtu_device(line.master, 2, XYMD02)
    async with meter, climate:
        assert meter.line is climate.line  # one serial client for the bus
        for _ in range(5):
            m, c = await asyncio.gather(meter.read(), climate.read())
            assert_matches(bus.unit(1).values(), m)
            assert_matches(bus.unit(2).values(), c)
        assert meter.health.connected
        assert climate.health.consecutive_failures == 0
        assert bus.overlapping() == []  # never two requests on the wire
        assert {t.unit_id for t in bus.transactions} == {1, 2}
        assert all(t.answered for t in bus.transactions)
        assert meter.line is not None
        assert meter.line.transactions == len(bus.transactions) == 5 * (SDM_BLOCKS + XY_BLOCKS)
        shared = meter.line
    assert not shared.open  # the last device out closes the port


async def test_the_line_keeps_the_inter_frame_silence(
    line: PtyPair, bus: ModbusRtuSimulator
) -> None:
    gap_s = 0.02
    meter = rtu_device(line.master, 1, SDM120, inter_frame_delay_ms=gap_s * 1000)
    climate = rtu_device(line.master, 2, XYMD02, inter_frame_delay_ms=gap_s * 1000)
    async with meter, climate:
        await asyncio.gather(meter.read(), climate.read(), meter.read())
    done = sorted(bus.transactions, key=lambda t: t.started)
    assert len(done) == SDM_BLOCKS + XY_BLOCKS + SDM_BLOCKS
    gaps = [b.started - a.ended for a, b in itertools.pairwise(done) if a.ended]
    assert min(gaps) >= gap_s * 0.9


async def test_an_absent_unit_times_out_backs_off_and_spares_the_others(
    line: PtyPair, bus: ModbusRtuSimulator
) -> None:
    meter, climate = rtu_device(line.master, 1, SDM120), rtu_device(line.master, 2, XYMD02)
    ghost = rtu_device(line.master, 3, XYMD02)
    good: list[Reading] = []
    bad: list[Reading] = []
    slowest = 0.0

    async def poll(dev: ModbusRtuDevice, into: list[Reading], until: float) -> None:
        nonlocal slowest
        while time.monotonic() < until:
            start = time.monotonic()
            into.extend(await dev.read())
            if dev is not ghost:
                slowest = max(slowest, time.monotonic() - start)
            await asyncio.sleep(0.01)

    async with meter, climate, ghost:
        until = time.monotonic() + 1.5
        await asyncio.gather(
            poll(meter, good, until), poll(climate, good, until), poll(ghost, bad, until)
        )
        first = await ghost.read()
    assert good
    assert all(r.quality is Quality.GOOD for r in good)
    assert {r.quality for r in bad} == {Quality.BAD}
    reasons = {r.reason for r in bad}
    assert any(
        r is not None
        and r.startswith(
            f"timeout after {TIMEOUT} s reading holding 257..258 (no answer at all: is unit_id"
        )
        for r in reasons
    ), reasons
    assert all(
        r is not None and (r.startswith(("timeout after", "not connected: timeout after")))
        for r in reasons
    )
    assert first[0].reason is not None
    # a neighbour waits at most for one of the ghost's timeouts, plus its own turn
    assert slowest < TIMEOUT + MARGIN
    # backoff: the ghost tried a handful of times, the live units many more
    ghost_tries = sum(1 for t in bus.transactions if t.unit_id == 3)
    assert 2 <= ghost_tries <= 8, ghost_tries
    # (5x, not 10x: on a loaded 2-core machine the live units managed 40 to the ghost's 4)
    assert sum(1 for t in bus.transactions if t.unit_id == 1) > 5 * ghost_tries
    assert not ghost.health.connected
    assert ghost.health.consecutive_failures == ghost_tries
    assert bus.overlapping() == []


async def test_garbled_answers_fail_fast_and_only_their_block(
    line: PtyPair, bus: ModbusRtuSimulator
) -> None:
    meter = rtu_device(line.master, 1, SDM120)
    async with meter:
        bus.crc_error_rate = 1.0
        start = time.monotonic()
        readings = await meter.read()
        elapsed = time.monotonic() - start
        assert elapsed < TIMEOUT  # every block failed at once, none waited for a timeout
        assert {r.quality for r in readings} == {Quality.BAD}
        assert readings[0].reason is not None
        assert readings[0].reason.startswith("garbled answer (")
        assert readings[0].reason.endswith("failed the CRC check) reading input 0..31")
        assert meter.line is not None
        assert meter.line.garbled == bus.corrupted == SDM_BLOCKS  # all tried: no backoff
        bus.crc_error_rate = 0.0
        assert_matches(bus.unit(1).values(), await meter.read())
        assert meter.health.last_error is not None
        assert "garbled" in meter.health.last_error


async def test_recovers_after_the_simulator_restarts(line: PtyPair) -> None:
    def simulator() -> ModbusRtuSimulator:
        return ModbusRtuSimulator(port=line.devices, devices=[(2, XYMD02, 2)], baudrate=BAUD)

    climate = rtu_device(line.master, 2, XYMD02)
    async with climate:
        sim = simulator()
        async with sim:
            sim.unit(2).freeze()
            assert_matches(sim.unit(2).values(), await climate.read())
        down = await climate.read()  # the line is silent now
        assert {r.quality for r in down} == {Quality.BAD}
        assert down[0].reason is not None
        assert down[0].reason.startswith(f"timeout after {TIMEOUT} s")
        sim = simulator()
        async with sim:
            sim.unit(2).freeze()
            restarted = time.monotonic()
            while True:
                readings = await climate.read()
                if all(r.quality is Quality.GOOD for r in readings):
                    break
                assert time.monotonic() - restarted < 2 * CAP + TIMEOUT + MARGIN
                await asyncio.sleep(0.02)
            assert_matches(sim.unit(2).values(), readings)
        assert climate.health.connected
        assert climate.health.consecutive_failures == 0


async def test_a_missing_port_is_reported_and_retried(tmp_path: Path) -> None:
    dev = rtu_device(str(tmp_path / "ttyUSB9"), 1, XYMD02)
    async with dev:
        start = time.monotonic()
        readings = await dev.read()
        assert time.monotonic() - start < MARGIN
        again = await dev.read()
    reason = readings[0].reason
    assert reason is not None
    assert reason.startswith(f"not connected: cannot open {tmp_path / 'ttyUSB9'}: ")
    assert "retry in " not in reason  # no countdown (issue 15)
    assert {r.quality for r in readings + again} == {Quality.BAD}
    assert dev.health.consecutive_failures == 1  # the second read waited out the backoff


async def test_one_line_one_speed(line: PtyPair) -> None:
    fast = rtu_device(line.master, 1, XYMD02)
    slow = ModbusRtuDevice(
        device_id="slow",
        connection=ModbusRtuConnection(port=line.master, baudrate=9600, unit_id=2),
        settings=ModbusProfileSettings(),
        points=[],
    )
    async with fast:
        with pytest.raises(DriverError, match=r"in use at 115200 8N1; .* cannot use 9600 8N1"):
            await slow.__aenter__()


async def test_reading_before_entering_is_a_programming_error(line: PtyPair) -> None:
    with pytest.raises(DriverError, match="async with"):
        await rtu_device(line.master, 1, XYMD02).read()


async def test_cancellation_propagates_and_keeps_the_line_quiet(
    line: PtyPair, bus: ModbusRtuSimulator
) -> None:
    bus.unit(2).delay_ms = 200  # answers late
    climate = rtu_device(line.master, 2, XYMD02)
    async with climate:
        task = asyncio.create_task(climate.read())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        bus.unit(2).delay_ms = 0
        start = time.monotonic()
        readings = await climate.read()
        # the next request waited for the abandoned one's answer window to pass
        assert time.monotonic() - start >= TIMEOUT - 0.1
    assert_matches(bus.unit(2).values(), readings)
