"""Readings/s per protocol, from a real simulator through the driver into the durable buffer.

Each row runs the protocol's simulator and driver in this one process, pinned
to one core (``sched_setaffinity``), with the readings going through the real
``BufferWriter`` into the SQLite buffer (synchronous=full): the whole edge path
short of sync. The simulator's own cost is on the same core, so the figures
are a floor for the driver. The baseline, measured in the same run, is the
same readings put straight into the writer with no protocol at all.

Polled protocols are read back to back (no poll interval: the ceiling of one
device); pushing protocols are fed as fast as their simulator publishes.

    python bench/protocols.py            # 5 s per protocol
    python bench/protocols.py --quick    # 1.5 s per protocol (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from _table import print_table

from ldt.agent.buffer import Buffer
from ldt.agent.buffer_writer import AsyncBuffer, BufferWriter
from ldt.agent.config import load_profile
from ldt.cancellation import cancel_and_wait
from ldt.contract import SeriesInfo
from ldt.reading import Reading

PROFILES = ROOT / "firmware_configs"


@contextlib.asynccontextmanager
async def buffered(
    tmp: Path, points: list[str]
) -> AsyncIterator[tuple[Callable[[Reading], Awaitable[None]], list[int]]]:
    """An emit function into a real buffer, and a one-element list counting readings."""
    abuf = AsyncBuffer(
        Buffer(path=tmp / f"buf-{time.monotonic_ns()}.db", max_bytes=1 << 31, max_age_s=1e9)
    )
    await abuf.open()
    try:
        series = {
            p: await abuf.series_id(
                SeriesInfo(entity_id="urn:ngsi-ld:Device:b", entity_type="Device", attr=p)
            )
            for p in points
        }
        count = [0]
        async with BufferWriter(buffer=abuf, flush_interval_ms=200, flush_max_readings=2000) as w:

            async def emit(r: Reading) -> None:
                await w.put(series[r.point], r)
                count[0] += 1

            yield emit, count
    finally:
        await abuf.close()


async def _poll_loop(dev: Any, emit: Callable[[Reading], Awaitable[None]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for r in await dev.read():
            await emit(r)


async def _stream_for(dev: Any, emit: Callable[[Reading], Awaitable[None]], seconds: float) -> None:
    task = asyncio.create_task(dev.stream(emit))
    await asyncio.sleep(seconds)
    await cancel_and_wait([task])


async def baseline(tmp: Path, seconds: float) -> tuple[str, int, float]:
    points = [f"p{i}" for i in range(10)]
    async with buffered(tmp, points) as (emit, count):
        deadline = time.monotonic() + seconds
        t0 = time.perf_counter()
        while time.monotonic() < deadline:
            for p in points:
                await emit(
                    Reading(
                        device_id="d", point=p, value=1.5, observed_at_ms=int(time.time() * 1000)
                    )
                )
        elapsed = time.perf_counter() - t0
    return (
        "no protocol: readings straight into the buffer writer (baseline)",
        count[0],
        count[0] / elapsed,
    )


async def modbus_tcp(tmp: Path, seconds: float) -> tuple[str, int, float]:
    from ldt.drivers.modbus.config import ModbusTcpConnection
    from ldt.drivers.modbus.device import ModbusTcpDevice
    from ldt.simulators.modbus import ModbusSimulator

    path = PROFILES / "eastron-sdm630.toml"
    prof = load_profile(path)
    async with (
        ModbusSimulator(profile=path, seed=1) as sim,
        buffered(tmp, [p.name for p in prof.points]) as (emit, count),
    ):
        dev = ModbusTcpDevice(
            device_id="d",
            connection=ModbusTcpConnection(host="127.0.0.1", port=sim.port),
            settings=prof.settings,
            points=prof.points,
        )
        async with dev:
            t0 = time.perf_counter()
            await _poll_loop(dev, emit, seconds)
            elapsed = time.perf_counter() - t0
    return (
        f"Modbus TCP, polled back to back ({len(prof.points)} points)",
        count[0],
        count[0] / elapsed,
    )


async def modbus_rtu(tmp: Path, seconds: float) -> tuple[str, int, float]:
    from ldt.drivers.modbus.config import ModbusRtuConnection
    from ldt.drivers.modbus.rtu import ModbusRtuDevice
    from ldt.simulators.modbus import ModbusRtuSimulator
    from tests.drivers.modbus.serial_pty import pty_pair

    path = PROFILES / "eastron-sdm120.toml"
    prof = load_profile(path)
    fast = [p for p in prof.points if not p.poll_interval_s]
    with pty_pair(tmp) as pty:
        sim = ModbusRtuSimulator(port=pty.devices, devices=[(1, path, 1)], baudrate=115200)
        async with sim, buffered(tmp, [p.name for p in fast]) as (emit, count):
            conn = ModbusRtuConnection(port=pty.master, baudrate=115200, unit_id=1)
            dev = ModbusRtuDevice(
                device_id="d", connection=conn, settings=prof.settings, points=fast
            )
            async with dev:
                t0 = time.perf_counter()
                await _poll_loop(dev, emit, seconds)
                elapsed = time.perf_counter() - t0
    return (
        f"Modbus RTU 115200 8N1 over a socat pty, wire time simulated ({len(fast)} points)",
        count[0],
        count[0] / elapsed,
    )


async def opcua(tmp: Path, seconds: float) -> tuple[str, int, float]:
    from ldt.drivers.opcua.config import OpcUaConnection
    from ldt.drivers.opcua.device import OpcUaDevice
    from ldt.simulators.opcua import OpcUaSimulator

    path = PROFILES / "pumping-station-opcua.toml"
    prof = load_profile(path)
    points = [p.model_copy(update={"mode": "poll"}) for p in prof.points]
    async with (
        OpcUaSimulator(seed=1, update_interval_s=0.05) as sim,
        buffered(tmp, [p.name for p in points]) as (emit, count),
    ):
        dev = OpcUaDevice(
            device_id="d",
            connection=OpcUaConnection(endpoint=sim.endpoint),
            settings=prof.settings,
            points=points,
        )
        async with dev:
            await dev.read()  # session and node resolution
            t0 = time.perf_counter()
            await _poll_loop(dev, emit, seconds)
            elapsed = time.perf_counter() - t0
    return (
        f"OPC UA, Read service back to back ({len(points)} variables)",
        count[0],
        count[0] / elapsed,
    )


async def mqtt(tmp: Path, seconds: float) -> tuple[str, int, float]:
    from ldt.drivers.mqtt.config import MqttConnection
    from ldt.drivers.mqtt.device import MqttDevice
    from ldt.simulators.mqtt import MqttDeviceSimulator
    from tests.mosquitto import Mosquitto

    path = PROFILES / "fiware-ul-air-quality.toml"
    prof = load_profile(path)
    with Mosquitto(workdir=tmp / "mosquitto") as broker:
        conn = MqttConnection(host=broker.host, port=broker.port, api_key="k")
        dev = MqttDevice(device_id="d", connection=conn, settings=prof.settings, points=prof.points)
        async with dev, buffered(tmp, [p.name for p in prof.points]) as (emit, count):
            task = asyncio.create_task(_stream_for(dev, emit, seconds + 0.5))
            await asyncio.sleep(0.5)  # subscribed
            start = count[0]
            t0 = time.perf_counter()
            async with MqttDeviceSimulator(
                broker_host=broker.host,
                broker_port=broker.port,
                device_id="d",
                profile=path,
                api_key="k",
                interval_s=0.0002,
            ):
                await asyncio.sleep(seconds)
                got = count[0] - start
                elapsed = time.perf_counter() - t0
            await task
    return (
        f"MQTT UltraLight 2.0 via mosquitto, QoS {prof.settings.qos} "
        f"({len(prof.points)} points/message)",
        got,
        got / elapsed,
    )


async def ble(tmp: Path, seconds: float) -> tuple[str, int, float]:
    from ldt.drivers.ble.config import BleConnection
    from ldt.drivers.ble.device import BleDevice
    from ldt.simulators.ble import BleAdvertiser

    path = PROFILES / "ruuvitag.toml"
    prof = load_profile(path)
    address = "C0:FF:EE:00:00:01"
    source = BleAdvertiser(devices=[(address, "ruuvi", 1)], interval_s=0.0)
    dev = BleDevice(
        device_id="d",
        connection=BleConnection(address=address),
        settings=prof.settings,
        points=prof.points,
        source=source,
    )
    async with dev, buffered(tmp, [p.name for p in prof.points]) as (emit, count):
        t0 = time.perf_counter()
        await _stream_for(dev, emit, seconds)
        elapsed = time.perf_counter() - t0
    return (
        f"BLE RuuviTag adverts at the source seam, no radio ({len(prof.points)} fields)",
        count[0],
        count[0] / elapsed,
    )


ROW_DEADLINE_S = 90.0
"""A row takes seconds; past this something did not stop (a swallowed cancellation)."""


async def _within(
    deadline_s: float, row: Awaitable[tuple[str, int, float]]
) -> tuple[str, int, float]:
    """Run one row; if it overruns, print every task's stack and fail (never hang CI)."""
    task = asyncio.ensure_future(row)
    done, _ = await asyncio.wait({task}, timeout=deadline_s)
    if task in done:
        return task.result()
    for other in asyncio.all_tasks():
        print(f"--- task {other.get_name()}", file=sys.stderr)
        other.print_stack(limit=8, file=sys.stderr)
    print(f"a protocol row did not finish within {deadline_s:g} s (stacks above)", file=sys.stderr)
    sys.stderr.flush()
    os._exit(1)  # asyncio.run would wait for the task that does not stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 5.0
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import logging

    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ldt-bench-proto-") as d:
        tmp = Path(d)
        base = asyncio.run(baseline(tmp, seconds))
        rows.append((base[0], f"{base[1]:,}", f"{base[2]:,.0f}", "1.00"))
        for bench in (modbus_tcp, modbus_rtu, opcua, mqtt, ble):
            name, n, rate = asyncio.run(_within(ROW_DEADLINE_S, bench(tmp, seconds)))
            rows.append((name, f"{n:,}", f"{rate:,.0f}", f"{rate / base[2]:.3f}"))
    print_table(
        "readings/s from simulator through driver into the buffer, one core (simulator included)",
        ("path", "readings", "readings/s", "ratio to baseline"),
        rows,
    )


if __name__ == "__main__":
    main()
