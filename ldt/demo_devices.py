"""The simulated devices ``ldt demo`` starts: one per protocol that runs without a radio.

Each starter enters its simulator (and, for MQTT, a throw-away mosquitto on
loopback) into the demo's exit stack and returns how the agent reaches it.
A protocol whose Debian tool is missing (mosquitto) is skipped with a note,
never a traceback: the demo must run on any fresh machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DemoDevice",
    "ble_tag",
    "modbus_meters",
    "mqtt_station",
    "opcua_station",
    "relay_module",
    "rtu_transmitter",
]

MODBUS_PROFILES = ("eastron-sdm120", "eastron-sdm630", "xymd02-th")


@dataclass
class DemoDevice:
    """One simulated device as the gateway config names it."""

    device_id: str
    profile: str
    where: str
    connection: str
    """The device's ``connection`` as a TOML inline table."""
    driver_kwargs: dict[str, Any] = field(default_factory=dict)


async def modbus_meters(stack: AsyncExitStack, count: int) -> list[DemoDevice]:
    """``count`` Modbus TCP devices (Eastron meters, a T/H transmitter) on free ports."""
    from ldt.simulators.modbus import ModbusSimulator, resolve_profile

    out = []
    for i in range(count):
        profile = MODBUS_PROFILES[i % len(MODBUS_PROFILES)]
        sim = await stack.enter_async_context(
            ModbusSimulator(profile=resolve_profile(profile), seed=i + 1)
        )
        out.append(
            DemoDevice(
                device_id=f"dev-{i + 1}",
                profile=profile,
                where=f"modbus-tcp 127.0.0.1:{sim.port}",
                connection=f'{{ host = "127.0.0.1", port = {sim.port}, timeout_s = 1.0 }}',
            )
        )
    return out


async def relay_module(stack: AsyncExitStack) -> DemoDevice:
    """An 8-channel Modbus relay module (coils): what rules and commands switch."""
    from ldt.simulators.modbus import ModbusSimulator, resolve_profile

    profile = "waveshare-relay-8ch"
    sim = await stack.enter_async_context(
        ModbusSimulator(profile=resolve_profile(profile), seed=11)
    )
    for channel in range(1, 9):  # contacts open at power-up
        sim.set_value(f"relay{channel}", False)
    return DemoDevice(
        device_id="relay-1",
        profile=profile,
        where=f"modbus-tcp 127.0.0.1:{sim.port}",
        connection=f'{{ host = "127.0.0.1", port = {sim.port}, timeout_s = 1.0 }}',
    )


async def opcua_station(stack: AsyncExitStack) -> DemoDevice:
    """A pumping station's PLC with an OPC UA server."""
    from ldt.simulators.opcua import OpcUaSimulator

    sim = await stack.enter_async_context(OpcUaSimulator(seed=7, update_interval_s=1.0))
    return DemoDevice(
        device_id="station-1",
        profile="pumping-station-opcua",
        where=sim.endpoint,
        connection=f'{{ protocol = "opcua", endpoint = "{sim.endpoint}" }}',
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _mosquitto(stack: AsyncExitStack, data: Path) -> int | None:
    """Start Debian's mosquitto on a loopback port for the demo; None if not installed."""
    # Debian installs mosquitto in /usr/sbin, which is not on a normal user's PATH
    binary = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if binary is None:
        return None
    port = _free_port()
    conf = data / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest file {data / 'mosquitto.log'}\n",
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def stop() -> None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    stack.push_async_callback(stop)
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return port
    raise OSError(f"mosquitto did not start on port {port} (see {data / 'mosquitto.log'})")


async def mqtt_station(stack: AsyncExitStack, data: Path) -> DemoDevice | None:
    """An UltraLight 2.0 air-quality station publishing to a local mosquitto."""
    from ldt.simulators.modbus import resolve_profile
    from ldt.simulators.mqtt import MqttDeviceSimulator

    port = await _mosquitto(stack, data)
    if port is None:
        return None
    profile = "fiware-ul-air-quality"
    await stack.enter_async_context(
        MqttDeviceSimulator(
            broker_host="127.0.0.1",
            broker_port=port,
            device_id="air-1",
            profile=resolve_profile(profile),
            api_key="demo",
            seed=3,
            interval_s=2.0,
        )
    )
    return DemoDevice(
        device_id="air-1",
        profile=profile,
        where=f"mqtt 127.0.0.1:{port} (mosquitto)",
        connection=f'{{ protocol = "mqtt", host = "127.0.0.1", port = {port}, api_key = "demo" }}',
    )


async def rtu_transmitter(stack: AsyncExitStack, data: Path) -> DemoDevice | None:
    """An XY-MD02 transmitter on an RS-485 line: a socat pty pair stands in for the wire."""
    from ldt.simulators.modbus import ModbusRtuSimulator, resolve_profile

    socat = shutil.which("socat")
    if socat is None:
        return None
    master, devices = data / "rs485-gateway", data / "rs485-devices"
    proc = await asyncio.create_subprocess_exec(
        socat,
        f"pty,raw,echo=0,link={master}",
        f"pty,raw,echo=0,link={devices}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def stop() -> None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    stack.push_async_callback(stop)
    for _ in range(100):
        if master.exists() and devices.exists():
            break
        await asyncio.sleep(0.02)
    else:
        raise OSError("socat did not create the serial pty pair")
    profile = "xymd02-th"
    await stack.enter_async_context(
        ModbusRtuSimulator(
            port=str(devices), devices=[(1, resolve_profile(profile), 9)], baudrate=9600
        )
    )
    return DemoDevice(
        device_id="th-1",
        profile=profile,
        where=f"modbus-rtu {master} 9600 8N1, unit 1 (a socat pty pair as the RS-485 line)",
        connection=(
            f'{{ protocol = "modbus-rtu", port = "{master}", baudrate = 9600, unit_id = 1 }}'
        ),
    )


def ble_tag() -> DemoDevice:
    """A RuuviTag; with no radio its advertisements enter at the driver's source seam."""
    from ldt.simulators.ble import BleAdvertiser

    address = "C0:FF:EE:00:00:01"
    source = BleAdvertiser(devices=[(address, "ruuvi", 5)], interval_s=1.0)
    return DemoDevice(
        device_id="tag-1",
        profile="ruuvitag",
        where="ble (no radio: simulated advertisements at the driver's seam)",
        connection=f'{{ protocol = "ble", address = "{address}" }}',
        driver_kwargs={"source": source},
    )
