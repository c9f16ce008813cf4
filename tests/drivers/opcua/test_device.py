"""OpcUaDevice against the real pumping-station simulator over loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from ldt.backoff import Backoff
from ldt.drivers.errors import DriverError
from ldt.drivers.opcua import OpcUaConnection, OpcUaDevice, OpcUaPoint, OpcUaProfileSettings
from ldt.drivers.opcua.config import PointMode
from ldt.reading import Quality, Reading
from ldt.simulators.opcua import OpcUaSimulator
from tests.drivers.modbus.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CAP_S = 1.0
SETTINGS = OpcUaProfileSettings(publishing_interval_ms=50, sampling_interval_ms=0)
POINTS = [
    OpcUaPoint(name="speed", node="ns=2;s=Pump1.Speed"),
    OpcUaPoint(name="flow", node="/Objects/2:PumpingStation/2:Pump1/2:Flow", deadband=0.0),
    OpcUaPoint(name="running", node="/Objects/2:PumpingStation/2:Pump1/2:Running"),
    OpcUaPoint(name="level", node="ns=2;s=PumpingStation.InletLevel", mode=PointMode.POLL),
    OpcUaPoint(name="mode", node="/Objects/2:PumpingStation/2:Mode", mode=PointMode.POLL),
    OpcUaPoint(
        name="setpoint", node="ns=2;s=Pump2.SpeedSetpoint", mode=PointMode.POLL, writable=True
    ),
    OpcUaPoint(
        name="duty", node="/Objects/2:PumpingStation/2:DutyPump", mode=PointMode.POLL, writable=True
    ),
    OpcUaPoint(name="alarm_count", node="ns=2;s=PumpingStation.AlarmCount", mode=PointMode.POLL),
]
SIM_NAME = {
    "speed": "Pump1.Speed",
    "flow": "Pump1.Flow",
    "running": "Pump1.Running",
    "level": "PumpingStation.InletLevel",
    "mode": "PumpingStation.Mode",
    "setpoint": "Pump2.SpeedSetpoint",
    "duty": "PumpingStation.DutyPump",
    "alarm_count": "PumpingStation.AlarmCount",
}


def device(endpoint: str, points: list[OpcUaPoint] | None = None, **conn: object) -> OpcUaDevice:
    return OpcUaDevice(
        device_id="station",
        connection=OpcUaConnection(
            endpoint=endpoint,
            timeout_s=1.0,
            watchdog_interval_s=0.3,
            **conn,  # type: ignore[arg-type,unused-ignore]
        ),
        settings=SETTINGS,
        points=points or POINTS,
        backoff=Backoff(base_s=0.2, cap_s=CAP_S),
    )


class Collector:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    async def __call__(self, reading: Reading) -> None:
        self.readings.append(reading)

    async def until(self, cond: Callable[[], bool], within: float) -> float:
        """Seconds until ``cond()`` holds (checked every 20 ms); TimeoutError after ``within``."""
        start = time.monotonic()
        async with asyncio.timeout(within):
            while not cond():  # noqa: ASYNC110 - polls the collected readings, not an event
                await asyncio.sleep(0.02)
        return time.monotonic() - start


@pytest_asyncio.fixture(loop_scope="module")
async def dev(sim: OpcUaSimulator) -> AsyncIterator[OpcUaDevice]:
    async with device(sim.endpoint) as d:
        yield d
    sim.unfreeze()


async def streaming(d: OpcUaDevice, out: Collector) -> asyncio.Task[None]:
    return asyncio.create_task(d.stream(out), name="test-stream")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_polled_read_matches_the_simulator(sim: OpcUaSimulator, dev: OpcUaDevice) -> None:
    sim.freeze()
    await asyncio.sleep(0.15)
    readings = await dev.read()
    assert [r.point for r in readings] == [p.name for p in POINTS]
    for r in readings:
        assert r.quality is Quality.GOOD, r
        assert r.value == sim.expected(SIM_NAME[r.point])
    assert type(next(r for r in readings if r.point == "running").value) is bool
    assert type(next(r for r in readings if r.point == "duty").value) is int
    # the server's SourceTimestamp, not the time of the read
    assert all(abs(r.observed_at_ms - time.time() * 1000) < 5000 for r in readings)
    assert dev.polled_points() == tuple(p for p in POINTS if p.mode == "poll")
    assert dev.streams


async def test_subscribed_values_follow_the_simulator(
    sim: OpcUaSimulator, dev: OpcUaDevice
) -> None:
    out = Collector()
    task = await streaming(dev, out)
    try:
        await out.until(lambda: len({r.value for r in out.readings if r.point == "speed"}) >= 3, 5)
        sim.freeze()
        await asyncio.sleep(0.4)  # last changes published
        latest = {r.point: r for r in out.readings}
        for name in ("speed", "flow", "running"):
            assert latest[name].quality is Quality.GOOD
            assert latest[name].value == sim.expected(SIM_NAME[name])
        assert {r.point for r in out.readings} <= {"speed", "flow", "running"}
        assert dev.notifications >= 3
    finally:
        await stop(task)


async def test_browse_paths_resolve_and_unknown_ones_are_bad(sim: OpcUaSimulator) -> None:
    points = [
        OpcUaPoint(name="by_id", node="ns=2;s=Pump1.Flow", mode=PointMode.POLL),
        OpcUaPoint(
            name="by_path", node="/Objects/2:PumpingStation/2:Pump1/2:Flow", mode=PointMode.POLL
        ),
        OpcUaPoint(
            name="missing", node="/Objects/2:PumpingStation/2:Pump9/2:Flow", mode=PointMode.POLL
        ),
        OpcUaPoint(name="unknown_id", node="ns=2;s=Pump9.Flow", mode=PointMode.POLL),
    ]
    sim.freeze()
    try:
        async with device(sim.endpoint, points) as d:
            by_id, by_path, missing, unknown = await d.read()
    finally:
        sim.unfreeze()
    assert by_id.value == by_path.value == sim.expected("Pump1.Flow")
    assert missing.quality is Quality.BAD
    assert (
        missing.reason
        == "browse path /Objects/2:PumpingStation/2:Pump9/2:Flow not found (BadNoMatch)"
    )
    assert (unknown.quality, unknown.reason) == (Quality.BAD, "BadNodeIdUnknown")


async def test_a_bad_status_is_a_bad_reading_polled_and_subscribed(
    sim: OpcUaSimulator, dev: OpcUaDevice
) -> None:
    await sim.set_bad("Pump1.Speed", "BadSensorFailure")
    await sim.set_bad("PumpingStation.InletLevel", "BadDeviceFailure")
    out = Collector()
    task = await streaming(dev, out)
    try:
        readings = {r.point: r for r in await dev.read()}
        assert (readings["level"].quality, readings["level"].reason) == (
            Quality.BAD,
            "BadDeviceFailure",
        )
        assert readings["level"].value is None
        assert readings["speed"].reason == "BadSensorFailure"
        assert readings["flow"].quality is Quality.GOOD
        await out.until(
            lambda: any(r.reason == "BadSensorFailure" for r in out.readings if r.point == "speed"),
            3,
        )
        await sim.set_bad("Pump1.Speed", None)
        await out.until(
            lambda: out.readings[-1].point != "speed" or out.readings[-1].quality is Quality.GOOD, 3
        )
        await out.until(
            lambda: [r for r in out.readings if r.point == "speed"][-1].quality is Quality.GOOD, 3
        )
    finally:
        await sim.set_bad("Pump1.Speed", None)
        await sim.set_bad("PumpingStation.InletLevel", None)
        await stop(task)


async def test_writes_use_the_variable_type_and_are_observed(
    sim: OpcUaSimulator, dev: OpcUaDevice
) -> None:
    before = len(sim.written)
    await dev.write("setpoint", 55)  # an int for a Double variable: converted, not refused
    await dev.write("duty", 2)  # Byte
    assert sim.written[before:] == [("Pump2.SpeedSetpoint", 55.0), ("PumpingStation.DutyPump", 2)]
    assert type(sim.written[before][1]) is float
    assert sim.expected("Pump2.SpeedSetpoint") == 55.0
    with pytest.raises(DriverError, match=r"300 is out of range for Byte \(0\.\.255\)"):
        await dev.write("duty", 300)
    with pytest.raises(DriverError, match="'fast' is not a number"):
        await dev.write("setpoint", "fast")
    with pytest.raises(DriverError, match=r"1\.5 would have to be rounded"):
        await dev.write("duty", 1.5)
    with pytest.raises(DriverError, match="not writable"):
        await dev.write("speed", 1.0)
    with pytest.raises(DriverError, match="has no point"):
        await dev.write("nope", 1.0)
    assert len(sim.written) == before + 2


async def test_a_refused_write_raises_with_the_status(sim: OpcUaSimulator) -> None:
    ro = OpcUaPoint(name="speed", node="ns=2;s=Pump1.Speed", mode=PointMode.POLL, writable=True)
    async with device(sim.endpoint, [ro]) as d:
        with pytest.raises(DriverError, match=r"refused: (BadUserAccessDenied|BadNotWritable)"):
            await d.write("speed", 1.0)


async def test_method_calls(sim: OpcUaSimulator, dev: OpcUaDevice) -> None:
    assert await dev.call("/Objects/2:PumpingStation/2:StopPump", 1) in ([True], [False])
    assert await dev.call("ns=2;s=PumpingStation.StartPump", 1) == [True]
    assert sim.calls[-2:] == [("StopPump", (1,)), ("StartPump", (1,))]
    assert sim.expected("Pump1.Running") is True
    (cleared,) = await dev.call("/Objects/2:PumpingStation/2:ResetAlarm")
    assert cleared in (0, 1)
    with pytest.raises(DriverError, match="refused: BadInvalidArgument"):
        await dev.call("/Objects/2:PumpingStation/2:StartPump", 7)
    with pytest.raises(DriverError, match=r"takes 1 argument\(s\), got 0"):
        await dev.call("/Objects/2:PumpingStation/2:StartPump")
    with pytest.raises(DriverError, match="out of range for Byte"):
        await dev.call("/Objects/2:PumpingStation/2:StartPump", -1)
    with pytest.raises(DriverError, match="not found"):
        await dev.call("/Objects/2:PumpingStation/2:Explode")
    with pytest.raises(DriverError, match="neither a NodeId"):
        await dev.call("Explode")


async def test_recovers_after_a_server_restart(sim: OpcUaSimulator, dev: OpcUaDevice) -> None:
    out = Collector()
    task = await streaming(dev, out)
    try:
        await out.until(lambda: any(r.point == "speed" for r in out.readings), 3)
        sessions = dev.health.sessions
        mark = len(out.readings)
        await sim.restart()
        await out.until(lambda: any(r.quality is Quality.BAD for r in out.readings[mark:]), 2)
        gap = [r for r in out.readings[mark:] if r.quality is Quality.BAD]
        assert {r.point for r in gap} >= {"speed", "flow", "running"}
        assert all(r.reason and "session lost" in r.reason for r in gap[:3])
        first_bad = len(out.readings) - len(out.readings[mark:]) + out.readings[mark:].index(gap[0])
        took = await out.until(
            lambda: (
                {r.point for r in out.readings[first_bad:] if r.quality is Quality.GOOD}
                >= {"speed", "flow", "running"}
            ),
            2 * CAP_S + 1.0,
        )
        assert took <= 2 * CAP_S
        assert dev.health.sessions == sessions + 1
        assert dev.health.connected
        # polled reads work on the new session as well
        assert all(r.quality is Quality.GOOD for r in await dev.read())
    finally:
        await stop(task)


async def test_a_dead_session_is_noticed_by_the_watchdog(
    sim: OpcUaSimulator, dev: OpcUaDevice
) -> None:
    out = Collector()
    task = await streaming(dev, out)
    try:
        await out.until(lambda: any(r.point == "speed" for r in out.readings), 3)
        sessions = dev.health.sessions
        mark = len(out.readings)
        sim.stall()  # the connection stays open; the server just stops answering on it
        await out.until(lambda: any(r.quality is Quality.BAD for r in out.readings[mark:]), 3)
        bad = next(r for r in out.readings[mark:] if r.quality is Quality.BAD)
        assert bad.reason is not None
        assert "watchdog" in bad.reason
        await out.until(lambda: dev.health.sessions == sessions + 1, 2 * CAP_S + 1.0)
        await out.until(lambda: out.readings[-1].quality is Quality.GOOD, 2)
    finally:
        await stop(task)


async def test_an_unreachable_server_gives_bad_readings_fast() -> None:
    port = free_port()
    async with device(f"opc.tcp://127.0.0.1:{port}") as d:
        start = time.monotonic()
        readings = await d.read()
        again = await d.read()  # during backoff: no network
        assert time.monotonic() - start < 1.5
        out = Collector()
        task = await streaming(d, out)
        await out.until(lambda: len(out.readings) >= 6, 3)
        await stop(task)
    assert all(r.quality is Quality.BAD for r in readings + again + out.readings)
    assert readings[0].reason is not None
    assert "connection refused" in readings[0].reason
    assert again[0].reason is not None
    assert again[0].reason.startswith("not connected: ")  # no countdown (issue 15)
    assert "retry in" not in again[0].reason
    assert d.health.consecutive_failures >= 2
    assert not d.health.connected
    with pytest.raises(DriverError, match="connection refused"):
        await d.write("setpoint", 1.0)


async def test_subscribed_readings_per_second(sim: OpcUaSimulator) -> None:
    """Throughput on one core: every variable subscribed, values changing every 10 ms."""
    names = sim.variable_names
    points = [OpcUaPoint(name=n.replace(".", "_"), node=f"ns=2;s={n}") for n in names]
    sim.update_interval_s = 0.01
    out = Collector()
    try:
        async with device(sim.endpoint, points) as d:
            task = await streaming(d, out)
            await out.until(lambda: len(out.readings) > 0, 3)
            mark, t0 = len(out.readings), time.monotonic()
            await asyncio.sleep(2.0)
            rate = (len(out.readings) - mark) / (time.monotonic() - t0)
            await stop(task)
    finally:
        sim.update_interval_s = 0.1
    print(f"\nsubscribed readings/s: {rate:.0f}")
    assert rate > 100
