"""Per protocol: simulator -> driver -> agent -> buffer -> sync -> cloud; entity values match.

Each test runs the real simulator of its protocol (a real MQTT device against
a real mosquitto, a real OPC UA server, a real Modbus RTU server on a socat pty
pair), the real agent runtime and the real cloud on loopback, then compares
what the broker serves with what the simulator sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldt.agent.config import load_gateway_config, load_profile
from ldt.agent.runtime import AgentRuntime
from ldt.cloud.server import CloudHandle, add_gateway, running_cloud
from tests.integration.conftest import GATEWAY, wait_for
from tests.mosquitto import Mosquitto, mosquitto_module

__all__ = ["mosquitto_module"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.integration

PROFILES = Path(__file__).resolve().parents[2] / "firmware_configs"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1.2e-7, abs_tol=1e-9)
    return bool(a == b)


def _config(tmp: Path, url: str, token: str, devices: list[str]) -> Path:
    """A gateway config with ``devices`` given as ready TOML ``[[devices]]`` blocks."""
    text = "\n".join(
        [
            "[gateway]",
            f'id = "{GATEWAY}"',
            'data_dir = "agent-data"',
            'profile_dirs = ["profiles"]',
            "[cloud]",
            f'url = "{url}"',
            f'token = "{token}"',
            "interval_s = 0.2",
            "[buffer]",
            "flush_interval_ms = 50",
            *devices,
        ]
    )
    path = tmp / "gateway.toml"
    path.write_text(text + "\n")
    return path


@contextlib.asynccontextmanager
async def _twin(tmp: Path, devices: list[str]) -> AsyncIterator[tuple[CloudHandle, AgentRuntime]]:
    token = add_gateway(tmp / "cloud", GATEWAY)
    async with running_cloud(tmp / "cloud", insecure_no_auth=True) as cloud:
        runtime = AgentRuntime(config=load_gateway_config(_config(tmp, cloud.url, token, devices)))
        task = asyncio.create_task(runtime.run(), name="agent-under-test")
        try:
            yield cloud, runtime
        finally:
            runtime.stop.set()
            await asyncio.wait_for(task, timeout=15)


async def _wait_entity(
    cloud: CloudHandle, entity_id: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    holder: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=cloud.url) as client:

        async def matches() -> bool:
            resp = await client.get(f"/ngsi-ld/v1/entities/{entity_id}")
            if resp.status_code != 200:
                return False
            holder["e"] = resp.json()
            return check(holder["e"])

        await wait_for(matches, within=15, what=what)
    entity: dict[str, Any] = holder["e"]
    return entity


@pytest.mark.parametrize("profile", ["fiware-ul-air-quality", "shelly-plus-1pm"])
async def test_mqtt_device_end_to_end(
    tmp_path: Path, mosquitto_module: Mosquitto, profile: str
) -> None:
    from ldt.simulators.mqtt import MqttDeviceSimulator

    device = "dev-mqtt"
    prof = load_profile(PROFILES / f"{profile}.toml")
    block = (
        f'[[devices]]\nid = "{device}"\nprofile = "{profile}"\n'
        f'connection = {{ protocol = "mqtt", host = "{mosquitto_module.host}", '
        f'port = {mosquitto_module.port}, api_key = "k1", client_id = "ldt-{device}" }}'
    )
    async with (
        _twin(tmp_path, [block]) as (cloud, _runtime),
        MqttDeviceSimulator(
            broker_host=mosquitto_module.host,
            broker_port=mosquitto_module.port,
            device_id=device,
            profile=PROFILES / f"{profile}.toml",
            api_key="k1",
            seed=3,
            interval_s=0.2,
        ) as sim,
    ):
        await sim.wait_published(3)
        sim.pause()
        await asyncio.sleep(0.3)  # a message in flight when paused still lands
        last = sim.published[-1].values
        attrs = {p.name: p.attribute_name for p in prof.points}
        entity_id = f"urn:ngsi-ld:{prof.profile.entity_type}:{GATEWAY}:{device}"

        def equal(e: dict[str, Any]) -> bool:
            return all(attrs[n] in e and _same(e[attrs[n]]["value"], v) for n, v in last.items())

        ent = await _wait_entity(cloud, entity_id, equal, "the last published values")
        for n in last:
            unit = next(p.unit for p in prof.points if p.name == n)
            if unit:
                assert ent[attrs[n]]["unitCode"] == unit


async def test_ble_advertisements_end_to_end(tmp_path: Path) -> None:
    """No radio here: the simulator's advertisements enter at the driver's source seam."""
    from ldt.simulators.ble import BleAdvertiser

    address = "C0:FF:EE:00:00:01"
    prof = load_profile(PROFILES / "ruuvitag.toml")
    advertiser = BleAdvertiser(devices=[(address, "ruuvi", 5)], interval_s=0.05)
    block = (
        '[[devices]]\nid = "tag-1"\nprofile = "ruuvitag"\n'
        f'connection = {{ protocol = "ble", address = "{address}" }}'
    )
    token = add_gateway(tmp_path / "cloud", GATEWAY)
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        config = load_gateway_config(_config(tmp_path, cloud.url, token, [block]))
        runtime = AgentRuntime(config=config, driver_kwargs={"tag-1": {"source": advertiser}})
        task = asyncio.create_task(runtime.run())
        try:
            await wait_for(lambda: advertiser.sent(address) >= 5, within=10, what="adverts")
            advertiser.silence(address)
            await asyncio.sleep(0.2)
            entity_id = f"urn:ngsi-ld:Device:{GATEWAY}:tag-1"

            def want(p: Any) -> Any:
                raw = advertiser.expected(address, p.field or p.name)
                if isinstance(raw, bool) or not isinstance(raw, int | float):
                    return raw
                return raw * p.scale + p.offset if (p.scale, p.offset) != (1.0, 0.0) else raw

            def equal(e: dict[str, Any]) -> bool:
                return all(
                    p.attribute_name in e and _same(e[p.attribute_name]["value"], want(p))
                    for p in prof.points
                )

            await _wait_entity(cloud, entity_id, equal, "the last advertised values")
        finally:
            runtime.stop.set()
            await asyncio.wait_for(task, timeout=15)


async def test_opcua_station_end_to_end(tmp_path: Path) -> None:
    from ldt.simulators.opcua import OpcUaSimulator

    # Observed with asyncua 2.1.0's server: a value drifting by less than the deadband
    # per sample is never reported (it seems to compare consecutive samples, not the
    # last reported value). The deadband itself is tested in tests/drivers/opcua;
    # here every change must reach the twin, so the test profile has none.
    text = (PROFILES / "pumping-station-opcua.toml").read_text()
    (tmp_path / "profiles").mkdir()
    local = tmp_path / "profiles" / "pumping-station-opcua.toml"
    local.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("deadband")))
    prof = load_profile(local)
    async with OpcUaSimulator(seed=4, update_interval_s=0.1) as sim:
        block = (
            '[[devices]]\nid = "station-1"\nprofile = "pumping-station-opcua"\n'
            "poll_interval_s = 0.3\n"
            f'connection = {{ protocol = "opcua", endpoint = "{sim.endpoint}" }}'
        )
        async with _twin(tmp_path, [block]) as (cloud, _runtime):
            await asyncio.sleep(1.0)  # subscriptions deliver the changing values
            sim.freeze()  # then every point settles on its final value
            entity_id = f"urn:ngsi-ld:{prof.profile.entity_type}:{GATEWAY}:station-1"

            def sim_name(node: str) -> str:
                """``ns=2;s=Pump1.Speed`` or ``/Objects/2:PumpingStation/2:Pump1/2:Flow``."""
                if node.startswith("ns="):
                    return node.split(";s=", 1)[1]
                return ".".join(part.split(":", 1)[1] for part in node.split("/")[-2:])

            def close(p: Any, got: Any) -> bool:
                want = sim.expected(sim_name(p.node))
                if p.poll_interval_s and p.poll_interval_s > 5:
                    return True  # hourly counters: present is all this test can ask
                return _same(got, want)

            def equal(e: dict[str, Any]) -> bool:
                return all(
                    p.attribute_name in e and close(p, e[p.attribute_name]["value"])
                    for p in prof.points
                )

            await _wait_entity(cloud, entity_id, equal, "every station variable's value")


async def test_modbus_rtu_bus_end_to_end(tmp_path: Path) -> None:
    """Two unit ids with different profiles on one serial line (a real socat pty pair)."""
    from ldt.simulators.modbus import ModbusRtuSimulator
    from tests.drivers.modbus.serial_pty import pty_pair

    units = {1: "eastron-sdm120", 2: "xymd02-th"}
    with pty_pair(tmp_path) as pty:
        sim = ModbusRtuSimulator(
            port=pty.devices,
            devices=[(u, PROFILES / f"{p}.toml", u) for u, p in units.items()],
            baudrate=115200,
        )
        async with sim:
            for u in units:
                sim.unit(u).freeze()
            blocks = [
                f'[[devices]]\nid = "rtu-{u}"\nprofile = "{p}"\npoll_interval_s = 0.5\n'
                f'connection = {{ protocol = "modbus-rtu", port = "{pty.master}", '
                f"baudrate = 115200, unit_id = {u}, timeout_s = 0.5 }}"
                for u, p in units.items()
            ]
            async with _twin(tmp_path, blocks) as (cloud, _runtime):
                for u, p in units.items():
                    prof = load_profile(PROFILES / f"{p}.toml")
                    fast = [q for q in prof.points if not q.poll_interval_s]
                    unit = sim.unit(u)

                    def equal(e: dict[str, Any], fast: Any = fast, unit: Any = unit) -> bool:
                        return all(
                            q.attribute_name in e
                            and _same(e[q.attribute_name]["value"], unit.expected(q.name))
                            for q in fast
                        )

                    entity_id = f"urn:ngsi-ld:{prof.profile.entity_type}:{GATEWAY}:rtu-{u}"
                    await _wait_entity(cloud, entity_id, equal, f"unit {u}'s registers")
            assert not sim.overlapping(), "two transactions were on the line at once"


async def test_simulators_restarted_mid_run_gap_shows_as_quality(tmp_path: Path) -> None:
    """A Modbus device and an OPC UA server go away and come back while the agent runs."""
    from ldt.simulators.modbus import ModbusSimulator
    from ldt.simulators.opcua import OpcUaSimulator

    meter_profile = PROFILES / "eastron-sdm120.toml"
    meter = ModbusSimulator(profile=meter_profile, seed=1)
    await meter.start()
    port = meter.port
    async with OpcUaSimulator(seed=2, update_interval_s=0.1) as station:
        blocks = [
            '[[devices]]\nid = "meter"\nprofile = "eastron-sdm120"\npoll_interval_s = 0.1\n'
            f'connection = {{ host = "127.0.0.1", port = {port}, timeout_s = 0.3 }}',
            '[[devices]]\nid = "station"\nprofile = "pumping-station-opcua"\n'
            f'connection = {{ protocol = "opcua", endpoint = "{station.endpoint}" }}',
        ]
        try:
            async with _twin(tmp_path, blocks) as (cloud, runtime):

                def good(device: str) -> int:
                    return sum(d.health.good for d in runtime.devices if d.device_id == device)

                await wait_for(
                    lambda: good("meter") > 20 and good("station") > 5,
                    within=10,
                    what="both devices read",
                )
                await meter.stop()
                await station.restart()  # sessions and subscriptions are gone
                await asyncio.sleep(1.0)
                meter = ModbusSimulator(profile=meter_profile, seed=1, port=port)
                await meter.start()
                before_meter, before_station = good("meter"), good("station")
                await wait_for(
                    lambda: (
                        good("meter") > before_meter + 10 and good("station") > before_station + 2
                    ),
                    within=10,
                    what="both devices recovered",
                )
                await asyncio.sleep(0.5)  # the recovery's readings sync
                meter_health = next(d.health for d in runtime.devices if d.device_id == "meter")
                assert meter_health.bad > 0, "the Modbus outage left no trace in the data"
                station_health = next(d.health for d in runtime.devices if d.device_id == "station")
                assert station_health.bad > 0, "the OPC UA restart left no trace in the data"
                entity = f"urn:ngsi-ld:Device:{GATEWAY}:meter"
                voltage = await cloud.store.readings.history(entity, "voltage")
                qualities = [h.quality for h in sorted(voltage, key=lambda h: h.seq)]
                first_bad = qualities.index("bad")
                assert "good" in qualities[:first_bad]
                assert "good" in qualities[first_bad:]
                seqs = await cloud.store.readings.seqs(GATEWAY)
                assert len(seqs) == len(set(seqs))
        finally:
            await meter.stop()


async def test_opcua_types_from_a_third_party_server_reach_the_twin(tmp_path: Path) -> None:
    """node-opcua -> driver -> buffer -> sync -> broker (issue 15): a DateTime is an NGSI-LD
    DateTime, arrays and a structure are JSON values, a Float keeps its shortest decimal,
    and a ByteString is a bad reading with its reason; the history holds the same."""
    from tests.thirdparty.opcua_server import node_opcua_server

    points = {
        "temperature": "Temperature", "stamp": "Stamp", "series": "Series",
        "pressureRange": "PressureRange", "blob": "Blob", "running": "Running",
    }  # fmt: skip
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "plc.toml").write_text(
        '[profile]\nname = "plc"\nmanufacturer = "test"\nmodel = "node-opcua"\n'
        'protocol = "opcua"\nentity_type = "Plc"\npoll_interval_s = 0.3\n'
        'source = "tests/thirdparty/opcua/server.js"\ndescription = "node-opcua"\n'
        + "".join(
            f'\n[[points]]\nname = "{attr}"\nnode = "ns=1;s={node}"\nmode = "poll"\n'
            for attr, node in points.items()
        )
    )
    instant = {"@type": "DateTime", "@value": "2026-01-02T03:04:05.678Z"}
    want = {
        "temperature": 1.35,
        "stamp": instant,
        "series": [1.5, 2.25, 3.0],
        "pressureRange": {"low": 0.0, "high": 10.5},
        "running": True,
    }
    async with node_opcua_server(tmp_path) as server:
        block = (
            f'[[devices]]\nid = "plc-1"\nprofile = "plc"\n'
            f'connection = {{ protocol = "opcua", endpoint = "{server.endpoint}" }}'
        )
        async with _twin(tmp_path, [block]) as (cloud, _runtime):
            entity_id = f"urn:ngsi-ld:Plc:{GATEWAY}:plc-1"

            def equal(e: dict[str, Any]) -> bool:
                return all(e.get(k, {}).get("value") == v for k, v in want.items())

            await _wait_entity(cloud, entity_id, equal, "every typed value")
            async with httpx.AsyncClient(base_url=cloud.url) as client:
                resp = await client.get(
                    f"/ngsi-ld/v1/temporal/entities/{entity_id}",
                    params={"attrs": "stamp,series,blob", "lastN": "1"},
                )
            assert resp.status_code == 200, resp.text
            history = resp.json()
            assert history["stamp"][0]["value"] == instant
            assert history["series"][0]["value"] == [1.5, 2.25, 3.0]
            # a point with no JSON form: its history says why, once per poll, no value
            blob = history["blob"][0]
            assert blob["quality"]["value"] == "bad"
            assert "ByteString values are not supported" in blob["reason"]["value"]
