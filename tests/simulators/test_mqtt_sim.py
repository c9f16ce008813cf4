"""The MQTT device simulator against a real mosquitto, observed with a plain aiomqtt client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from ldt.simulators.mqtt import MqttDeviceSimulator, SimulatorError, resolve_profile
from tests.mosquitto import Mosquitto, free_port, mosquitto_module

__all__ = ["mosquitto_module"]

pytestmark = pytest.mark.integration

SHELLY = resolve_profile("shelly-plus-1pm")
UL_AQ = resolve_profile("fiware-ul-air-quality")


def sim(port: int, profile: Path, **kw: object) -> MqttDeviceSimulator:
    return MqttDeviceSimulator(
        broker_host="127.0.0.1",
        broker_port=port,
        device_id="s1",
        profile=profile,
        api_key="k",
        **kw,  # type: ignore[arg-type]
    )


async def test_publishes_seeded_telemetry_that_a_client_receives(
    mosquitto_module: Mosquitto,
) -> None:
    port = mosquitto_module.port
    async with aiomqtt.Client("127.0.0.1", port) as observer:
        await observer.subscribe("s1/status/switch:0", qos=1)
        async with sim(port, SHELLY, interval_s=0.05, seed=3) as a:
            sent = await a.wait_published(3)
            got = [await anext(observer.messages) for _ in range(3)]
    assert [m.payload for m in got] == [p.payload for p in sent[:3]]
    doc = json.loads(sent[0].payload)
    assert set(doc) >= {"output", "apower", "voltage", "current", "aenergy", "temperature"}
    assert sent[0].values["total_active_energy"] == pytest.approx(doc["aenergy"]["total"] / 1000)
    # same seed, same values
    b = sim(port, SHELLY, seed=3, interval_s=0.05)
    c = sim(port, SHELLY, seed=4, interval_s=0.05)
    assert b.build_telemetry().values == sent[0].values
    assert c.build_telemetry().values != sent[0].values


async def test_answers_ul_commands_and_records_them(mosquitto_module: Mosquitto) -> None:
    port = mosquitto_module.port
    async with aiomqtt.Client("127.0.0.1", port) as client, sim(port, UL_AQ) as s:
        await client.subscribe("/ul/k/s1/cmdexe", qos=1)
        await client.publish("/ul/k/s1/cmd", b"s1@setPeriod|15", qos=1)
        ok = await anext(client.messages)
        await client.publish("/ul/k/s1/cmd", b"s1@reboot|now", qos=1)
        unknown = await anext(client.messages)
    assert ok.payload == b"s1@setPeriod|OK"
    assert unknown.payload == b"s1@reboot|ERROR unknown command"
    assert [(c.point, c.value) for c in s.commands] == [("reporting_period", 15), (None, None)]
    assert s.values()["reporting_period"] == 15


async def test_pause_and_drop_knobs(mosquitto_module: Mosquitto) -> None:
    async with sim(mosquitto_module.port, UL_AQ, interval_s=0.02, drop_rate=1.0) as s:
        await asyncio.sleep(0.2)
        assert s.published == []
        s.drop_rate = 0.0
        await s.wait_published(2)
        s.pause()
        await asyncio.sleep(0.05)
        count = len(s.published)
        await asyncio.sleep(0.15)
        assert len(s.published) == count


async def test_bad_arguments_and_unreachable_broker() -> None:
    with pytest.raises(SimulatorError, match="malformed rate"):
        sim(1883, UL_AQ, malformed_rate=2.0)
    with pytest.raises(SimulatorError, match="no profile named 'nope'"):
        resolve_profile("nope")
    with pytest.raises(SimulatorError, match="cannot reach the MQTT broker"):
        async with sim(free_port(), UL_AQ, start_timeout_s=0.5):
            pass


def test_cli_prints_one_ready_line_and_stops_on_sigterm(mosquitto_module: Mosquitto) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ldt.cli",
            "sim",
            "mqtt",
            "--broker",
            f"127.0.0.1:{mosquitto_module.port}",
            "--device",
            "cli-1",
            "--profile",
            "fiware-ul-air-quality",
            "--interval",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ldt sim mqtt: publishing fiware-ul-air-quality as cli-1 to ")
        assert "/ul/ldt-api-key/cli-1/attrs" in line
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def test_stop_ends_even_when_a_publish_swallows_the_cancellation(
    mosquitto_module: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's wait_for (inside aiomqtt's publish) loses a cancellation when the
    PUBACK lands in the same loop turn, and TaskGroup passes its parent's cancellation to
    the children only once: the publish loop went on for good and CI's protocol bench
    hung. ``stop`` asks the loops themselves until they end."""
    real_publish = aiomqtt.Client.publish
    swallowed: list[bool] = []

    sent = [0]
    stalled = asyncio.Event()

    async def publish(self: aiomqtt.Client, *args: object, **kw: object) -> None:
        await real_publish(self, *args, **kw)  # type: ignore[arg-type]
        sent[0] += 1
        if sent[0] == 20 and not swallowed:
            stalled.set()
            try:
                await asyncio.sleep(30)  # the PUBACK wait the cancellation lands in
            except asyncio.CancelledError:
                swallowed.append(True)  # as the race does: carry on as if nothing happened

    monkeypatch.setattr(aiomqtt.Client, "publish", publish)
    s = sim(mosquitto_module.port, UL_AQ, interval_s=0.0005)
    await s.start()
    await asyncio.wait_for(stalled.wait(), 10)
    async with asyncio.timeout(10):
        await s.stop()
    assert swallowed == [True]


async def test_history_is_bounded(
    mosquitto_module: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ldt.simulators.mqtt.device as device

    monkeypatch.setattr(device, "HISTORY", 5)
    async with sim(mosquitto_module.port, UL_AQ, interval_s=0.0005) as s:
        await s.wait_published(20)
    assert len(s.published) == 5
    assert s.published_total >= 20
