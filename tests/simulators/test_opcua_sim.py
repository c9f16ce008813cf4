"""The OPC UA pumping-station simulator: determinism, knobs, restart and its CLI.

Checked with a bare asyncua client, never with ldt's driver.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest
from asyncua import ua
from asyncua.client.client import Client

from ldt.simulators.opcua import OpcUaSimulator, SimulatorError
from ldt.simulators.opcua.model import StationModel

pytestmark = pytest.mark.integration


def test_values_depend_only_on_the_seed_and_steps() -> None:
    a, b, c = StationModel(seed=5), StationModel(seed=5), StationModel(seed=6)
    for m in (a, b, c):
        for _ in range(20):
            m.step(0.5)
    assert (a.level_m, a.pumps) == (b.level_m, b.pumps)
    assert (a.level_m, a.pumps["Pump1"].speed_rpm) != (c.level_m, c.pumps["Pump1"].speed_rpm)
    assert a.pumps["Pump2"].speed_rpm == 0.0  # pump 2 starts stopped
    assert 0.3 <= a.level_m <= 4.5


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SimulatorError, match="port"):
        OpcUaSimulator(port=70000)
    with pytest.raises(SimulatorError, match="interval"):
        OpcUaSimulator(update_interval_s=0)
    with pytest.raises(SimulatorError, match="no variable"):
        OpcUaSimulator().expected("Pump3.Speed")


async def test_serves_expected_values_knobs_and_restarts() -> None:
    async with OpcUaSimulator(seed=2, update_interval_s=0.05) as sim:
        with pytest.raises(SimulatorError, match="already started"):
            await sim.start()
        with pytest.raises(SimulatorError, match="not a Bad"):
            await sim.set_bad("Pump1.Speed", "Good")
        with pytest.raises(SimulatorError, match="not a Bad"):
            await sim.set_bad("Pump1.Speed", "BadNoSuchThing")
        client = Client(sim.endpoint, timeout=2)
        async with client:
            speed = client.get_node("ns=2;s=Pump1.Speed")
            sim.freeze()
            await asyncio.sleep(0.1)
            assert await speed.read_value() == sim.expected("Pump1.Speed")
            first = sim.expected("PumpingStation.InletLevel")
            await sim.advance(5)
            assert sim.expected("PumpingStation.InletLevel") != first
            await sim.set_bad("Pump1.Speed", "BadSensorFailure")
            dv = await speed.read_data_value(raise_on_bad_status=False)
            assert dv.StatusCode is not None
            assert dv.StatusCode.name == "BadSensorFailure"
            await sim.set_bad("Pump1.Speed", None)
            good = (await speed.read_data_value()).StatusCode
            assert good is not None
            assert good.is_good()
            sp = client.get_node("ns=2;s=Pump1.SpeedSetpoint")
            await sp.write_value(ua.Variant(40.0, ua.VariantType.Double))
            assert sim.written == [("Pump1.SpeedSetpoint", 40.0)]
            await sim.advance()
            assert 0 < float(sim.expected("Pump1.Speed")) < 0.45 * 1480
            station = client.get_node("ns=2;s=PumpingStation")
            started = await station.call_method("2:StartPump", ua.Variant(2, ua.VariantType.Byte))
            assert started is True
            assert sim.expected("Pump2.Running") is True
            assert sim.calls == [("StartPump", (2,))]
            port = sim.port
            await sim.restart()
            assert sim.port == port
            assert sim.restarts == 1
        async with Client(sim.endpoint, timeout=2) as again:
            assert await again.get_node("ns=2;s=Pump2.Running").read_value() is True


async def test_cli_prints_one_ready_line_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ldt.cli",
        "sim",
        "opcua",
        "--port",
        "0",
        "--seed",
        "4",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("ldt sim opcua: serving pumping-station on opc.tcp://127.0.0.1:")
        assert line.rstrip().endswith("(seed 4)")
        endpoint = line.split(" on ")[1].split(" ")[0]
        async with Client(endpoint, timeout=2) as client:
            assert await client.get_node("ns=2;s=PumpingStation.Mode").read_value() == "auto"
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert err.decode() == ""
