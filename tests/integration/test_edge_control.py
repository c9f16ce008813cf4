"""Edge control end to end: models, rules and commands from the cloud to real simulators.

A TLS cloud, a provisioned agent (in process) and loopback simulators: an energy meter
(Modbus TCP), a temperature transmitter (Modbus TCP, the rules' input, set by the test), a
relay module (Modbus coils) and a pumping station (OPC UA).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ldt.agent.config import load_gateway_config
from ldt.agent.identity import Identity, provision
from ldt.agent.runtime import AgentRuntime
from ldt.cloud.control.audit import AuditLog
from ldt.cloud.control.catalogue import Catalogue
from ldt.cloud.errors import CloudError
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.server import PKI_DIRNAME, CloudHandle, running_cloud
from ldt.models.forecaster import build_bundle
from ldt.simulators.modbus import ModbusSimulator
from ldt.simulators.opcua import OpcUaSimulator
from tests.integration.conftest import GATEWAY, wait_for

pytestmark = pytest.mark.integration

PROFILES = Path(__file__).resolve().parents[2] / "firmware_configs"
METER = f"urn:ngsi-ld:Device:{GATEWAY}:meter-1"
RELAY = f"urn:ngsi-ld:Device:{GATEWAY}:relay-1"
STATION = f"urn:ngsi-ld:Device:{GATEWAY}:station"

RULES_V1 = """
name = "cabinet"
description = "ventilation and pump by cabinet temperature"

[[limits]]
device = "station"
point = "pump1_speed_setpoint"
min = 0
max = 90

[[limits]]
device = "relay-1"
point = "relay1"
max_changes_per_hour = 3

[[rules]]
id = "fan-on-hot"
when = { device = "sensor-1", point = "temperature", above = 30.0, hysteresis = 2.0 }
then = { device = "relay-1", point = "relay1", value = true }
otherwise = { device = "relay-1", point = "relay1", value = false }
alert = { severity = "high", category = "environment", description = "cabinet too hot" }

[[rules]]
id = "pump-fast-hot"
when = { device = "sensor-1", point = "temperature", above = 30.0, hysteresis = 2.0 }
then = { device = "station", point = "pump1_speed_setpoint", value = 80.0 }
otherwise = { device = "station", point = "pump1_speed_setpoint", value = 20.0 }
"""


def _catalogue(cloud: CloudHandle) -> Catalogue:
    ca = CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME)
    return Catalogue(cloud.store, ArtifactService(cloud.store, ca), AuditLog(cloud.store))


def _config(tmp: Path, url: str, blocks: list[str]) -> Path:
    text = "\n".join(
        [
            "[gateway]",
            f'id = "{GATEWAY}"',
            f'data_dir = "{tmp / "agent-data"}"',
            "[cloud]",
            f'url = "{url}"',
            "interval_s = 0.2",
            "timeout_s = 5.0",
            "[buffer]",
            "flush_interval_ms = 50",
            *blocks,
        ]
    )
    path = tmp / "gateway.toml"
    path.write_text(text + "\n")
    return path


def _modbus(device: str, profile: str, port: int, poll_s: float = 0.2) -> str:
    return (
        f'[[devices]]\nid = "{device}"\nprofile = "{profile}"\npoll_interval_s = {poll_s}\n'
        f'connection = {{ host = "127.0.0.1", port = {port}, timeout_s = 0.5 }}'
    )


class Site:
    """The simulators and the agent's config of one test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.meter = ModbusSimulator(profile=PROFILES / "eastron-sdm120.toml", seed=5)
        self.sensor = ModbusSimulator(profile=PROFILES / "xymd02-th.toml", seed=6)
        self.relay = ModbusSimulator(profile=PROFILES / "waveshare-relay-8ch.toml", seed=7)
        self.station = OpcUaSimulator(seed=8, update_interval_s=0.1)

    async def __aenter__(self) -> Site:
        for sim in (self.meter, self.sensor, self.relay):
            await sim.start()
        await self.station.start()
        self.sensor.freeze()
        self.sensor.set_value("temperature", 21.0)
        for channel in range(1, 9):  # a relay module powers up with its contacts open
            self.relay.set_value(f"relay{channel}", False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sim in (self.meter, self.sensor, self.relay):
            await sim.stop()
        await self.station.stop()

    def blocks(self, *, dead_port: int | None = None) -> list[str]:
        blocks = [
            _modbus("meter-1", "eastron-sdm120", self.meter.port),
            _modbus("sensor-1", "xymd02-th", self.sensor.port),
            _modbus("relay-1", "waveshare-relay-8ch", self.relay.port),
            '[[devices]]\nid = "station"\nprofile = "pumping-station-opcua"\n'
            f'connection = {{ protocol = "opcua", endpoint = "{self.station.endpoint}" }}',
        ]
        if dead_port is not None:
            blocks.append(_modbus("relay-2", "waveshare-relay-8ch", dead_port, poll_s=1.0))
        return blocks


@contextlib.asynccontextmanager
async def _agent(tmp: Path, url: str, blocks: list[str]) -> AsyncIterator[AgentRuntime]:
    runtime = AgentRuntime(config=load_gateway_config(_config(tmp, url, blocks)))
    task = asyncio.create_task(runtime.run(), name="agent-under-test")
    try:
        yield runtime
    finally:
        runtime.stop.set()
        await asyncio.wait_for(task, timeout=20)


async def _provision(cloud: CloudHandle, tmp: Path) -> None:
    ca = CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME)
    token = await Provisioner(cloud.store, ca).create_claim("depot-7", 600)
    await provision(cloud.url, token, Identity.of(tmp / "agent-data", GATEWAY))


def _ca_file(cloud: CloudHandle) -> ssl.SSLContext:
    """Trusts the cloud's CA: how an NGSI-LD client (no certificate) reaches the TLS port."""
    return ssl.create_default_context(cafile=str(cloud.data_dir / PKI_DIRNAME / "ca.pem"))


async def _entity(cloud: CloudHandle, entity_id: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=cloud.url, verify=_ca_file(cloud)) as client:
        resp = await client.get(f"/ngsi-ld/v1/entities/{entity_id}")
    found: dict[str, Any] | None = resp.json() if resp.status_code == 200 else None
    return found


async def _exists(cloud: CloudHandle, entity_id: str) -> bool:
    return await _entity(cloud, entity_id) is not None


async def _attr(cloud: CloudHandle, entity_id: str, attr: str) -> dict[str, Any] | None:
    entity = await _entity(cloud, entity_id)
    value = (entity or {}).get(attr)
    return value if isinstance(value, dict) else None


async def _status(cloud: CloudHandle, kind: str, name: str) -> str:
    rows = await _catalogue(cloud).rollout(kind, name)
    return rows[0].status if rows else "none"


async def _wait_provenance(cloud: CloudHandle, version: str) -> None:
    async def shows() -> bool:
        attr = await _attr(cloud, METER, "activePowerForecast")
        prov = (attr or {}).get("provenance", {})
        return isinstance(prov, dict) and prov.get("value") == f"model meter-forecast {version}"

    await wait_for(shows, within=30, what=f"forecasts of model version {version} in the broker")


async def test_model_rollout_outputs_with_provenance_and_rollback(tmp_path: Path) -> None:
    v1 = build_bundle(seed=1, version="1.0.0")
    v2 = build_bundle(seed=2, version="2.0.0")
    async with (
        Site(tmp_path) as site,
        running_cloud(tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True) as cloud,
    ):
        await _provision(cloud, tmp_path)
        catalogue = _catalogue(cloud)
        first = await catalogue.upload("model", v1)
        assert (first.name, first.label) == ("meter-forecast", "1.0.0")
        assert first.metadata["license"] == "Apache-2.0"
        assert len(first.metadata["sha256"]) == 64
        await catalogue.assign("model", "meter-forecast", f"gateway:{GATEWAY}")
        assert await _status(cloud, "model", "meter-forecast") == "pending"
        async with _agent(tmp_path, cloud.url, site.blocks()) as runtime:
            await _wait_provenance(cloud, "1.0.0")
            await wait_for(
                lambda: _is(cloud, "model", "meter-forecast", "running"),
                within=10,
                what="rollout status running",
            )
            await catalogue.upload("model", v2)
            await _wait_provenance(cloud, "2.0.0")
            back = await catalogue.rollback("model", "meter-forecast")
            assert (back.version, back.rollback_of, back.label) == (3, 1, "1.0.0")
            await _wait_provenance(cloud, "1.0.0")
            assert runtime.edge is not None
            running = runtime.edge.inference.models["meter-forecast"]
            assert running.artifact_version == 3
            assert running.runs > 0
            assert running.model.latency().p50_ms > 0
            shown = runtime.edge.status()["models"]["meter-forecast"]
            assert shown["provenance"] == "model meter-forecast 1.0.0"
            assert 0 < shown["p50_ms"] <= shown["p95_ms"]
        reports = [
            (r.version, r.status)
            for r in await ArtifactService(
                cloud.store, CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME)
            ).reports()
        ]
        for version in (1, 2, 3):
            statuses = [s for v, s in reports if v == version]
            assert statuses == ["downloaded", "verified", "running"], (version, reports)
        history = await cloud.store.readings.history(METER, "activePowerForecast")
        assert history, "forecasts were not buffered and synced as readings"


async def test_bad_models_and_rules_are_refused_and_the_running_version_keeps_running(
    tmp_path: Path,
) -> None:
    from ldt.models.bundle import pack_bundle, read_bundle

    good = build_bundle(seed=1, version="1.0.0")
    bundle = read_bundle(good)
    corrupt = pack_bundle(bundle.manifest, b"\x00\x00\x00\x00TFL3" + b"\xff" * 200)
    wider = bundle.manifest.model_copy(
        update={"inputs": [bundle.manifest.inputs[0].model_copy(update={"window": 13})]}
    )
    mismatched = pack_bundle(wider, bundle.tflite)
    async with (
        Site(tmp_path) as site,
        running_cloud(tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True) as cloud,
    ):
        await _provision(cloud, tmp_path)
        catalogue = _catalogue(cloud)
        # the catalogue refuses what it can check itself
        with pytest.raises(CloudError, match="not a valid TFLite model"):
            await catalogue.upload("model", corrupt)
        with pytest.raises(CloudError, match=r"shape \[1, 13\].*\[1, 12\]"):
            await catalogue.upload("model", mismatched)
        with pytest.raises(CloudError, match="rule set refused"):
            await catalogue.upload("rules", b'name = "x"\n[[rules]]\nid = "r"\n')
        await catalogue.upload("model", good)
        await catalogue.assign("model", "meter-forecast", f"gateway:{GATEWAY}")
        await catalogue.upload("rules", RULES_V1.encode())
        await catalogue.assign("rules", "cabinet", f"gateway:{GATEWAY}")
        artifacts = ArtifactService(
            cloud.store, CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME)
        )
        async with _agent(tmp_path, cloud.url, site.blocks()) as runtime:
            await _wait_provenance(cloud, "1.0.0")
            await wait_for(
                lambda: _is(cloud, "rules", "cabinet", "running"), within=20, what="rules running"
            )
            # the gateway refuses what slips past the catalogue (published directly)
            await artifacts.publish("model", "meter-forecast", corrupt)
            await wait_for(
                lambda: _is(cloud, "model", "meter-forecast", "failed"),
                within=20,
                what="the corrupt model reported failed",
            )
            unknown = RULES_V1.replace(
                'point = "relay1", value = true', 'point = "relay9", value = true'
            )
            await artifacts.publish("rules", "cabinet", unknown.encode())
            await wait_for(
                lambda: _is(cloud, "rules", "cabinet", "failed"), within=20, what="rules failed"
            )
            reason = (await catalogue.rollout("rules", "cabinet"))[0].reason or ""
            assert "relay9" in reason, reason
            outside = RULES_V1.replace("value = 80.0", "value = 120.0")
            await artifacts.publish("rules", "cabinet", outside.encode())
            await wait_for(
                lambda: _reason_has(cloud, "rules", "cabinet", "120"),
                within=20,
                what="the out-of-bounds rule refused",
            )
            # an artifact whose signature does not verify (unsigned or re-signed elsewhere)
            await artifacts.publish("model", "meter-forecast", good)
            await _tamper_signature(cloud, "model", "meter-forecast")
            await wait_for(
                lambda: _is(cloud, "model", "meter-forecast", "refused"),
                within=20,
                what="the tampered model refused",
            )
            # still the first versions, still working
            assert runtime.edge is not None
            assert runtime.edge.inference.models["meter-forecast"].artifact_version == 1
            assert runtime.edge.stats.installed["rules/cabinet"] == 1
            before = runtime.edge.inference.models["meter-forecast"].runs
            await wait_for(
                lambda: (
                    runtime.edge is not None
                    and runtime.edge.inference.models["meter-forecast"].runs > before + 5
                ),
                within=10,
                what="the model still running",
            )
            site.sensor.set_value("temperature", 33.0)
            await wait_for(
                lambda: site.relay.expected("relay1") is True, within=10, what="rules still work"
            )


async def _is(cloud: CloudHandle, kind: str, name: str, status: str) -> bool:
    return await _status(cloud, kind, name) == status


async def _reason_has(cloud: CloudHandle, kind: str, name: str, text: str) -> bool:
    rows = await _catalogue(cloud).rollout(kind, name)
    return bool(rows) and rows[0].status == "failed" and text in (rows[0].reason or "")


async def _tamper_signature(cloud: CloudHandle, kind: str, name: str) -> None:
    latest = await cloud.store.artifacts.latest(kind, name)
    assert latest is not None
    envelope = dict(latest.envelope)
    signature = bytearray(envelope["signature"].encode())
    signature[5] = ord("A") if signature[5] != ord("A") else ord("B")
    envelope["signature"] = signature.decode()
    text = "UPDATE artifacts SET envelope = ? WHERE kind = ? AND name = ? AND version = ?"
    con = sqlite3.connect(cloud.data_dir / "cloud.db")  # behind the broker's back
    try:
        con.execute(text, (orjson.dumps(envelope).decode(), kind, name, envelope["version"]))
        con.commit()
    finally:
        con.close()


async def test_rules_switch_a_coil_and_an_opcua_variable_with_hysteresis_offline_too(
    tmp_path: Path,
) -> None:
    async with Site(tmp_path) as site:
        async with running_cloud(
            tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
        ) as cloud:
            await _provision(cloud, tmp_path)
            catalogue = _catalogue(cloud)
            await catalogue.upload("rules", RULES_V1.encode())
            await catalogue.group_add("cabinets", [GATEWAY])
            await catalogue.assign("rules", "cabinet", "group:cabinets")
            async with _agent(tmp_path, cloud.url, site.blocks()) as runtime:
                await wait_for(
                    lambda: _is(cloud, "rules", "cabinet", "running"), within=20, what="rules"
                )
                assert site.relay.expected("relay1") is False
                site.sensor.set_value("temperature", 31.0)
                await wait_for(
                    lambda: site.relay.expected("relay1") is True, within=10, what="coil on"
                )
                await wait_for(
                    lambda: site.station.expected("Pump1.SpeedSetpoint") == 80.0,
                    within=10,
                    what="OPC UA setpoint written",
                )
                # inside the hysteresis band: nothing moves
                site.sensor.set_value("temperature", 29.0)
                await asyncio.sleep(1.0)
                assert site.relay.expected("relay1") is True
                site.sensor.set_value("temperature", 27.5)
                await wait_for(
                    lambda: site.relay.expected("relay1") is False, within=10, what="coil off"
                )
                await wait_for(
                    lambda: site.station.expected("Pump1.SpeedSetpoint") == 20.0,
                    within=10,
                    what="OPC UA setpoint back",
                )
                alert_id = await _wait_alert(cloud)
                alert = await _entity(cloud, alert_id)
                assert alert is not None
                assert alert["severity"]["value"] == "high"
                assert alert["alertSource"]["object"] == f"urn:ngsi-ld:Device:{GATEWAY}:sensor-1"
            # the cloud's audit has the firings the gateway reported
            lines = await AuditLog(cloud.store).entries(500)
            actions = {(e.origin, e.action) for e in lines}
            assert ("gateway", "rule.fire") in actions
            assert ("gateway", "write.ok") in actions
        # the cloud is gone: the installed rules run from disk, across an agent restart,
        # and the changes counted against the coil's limit (3 an hour) survive it too
        async with _agent(tmp_path, "https://127.0.0.1:9", site.blocks()) as runtime:
            site.sensor.set_value("temperature", 35.0)
            await wait_for(
                lambda: site.relay.expected("relay1") is True, within=15, what="coil on offline"
            )
            await wait_for(
                lambda: site.station.expected("Pump1.SpeedSetpoint") == 80.0,
                within=10,
                what="OPC UA setpoint offline",
            )
            site.sensor.set_value("temperature", 20.0)
            await wait_for(
                lambda: site.station.expected("Pump1.SpeedSetpoint") == 20.0,
                within=10,
                what="the unlimited point follows",
            )
            await asyncio.sleep(0.5)
            assert site.relay.expected("relay1") is True, "a fourth change in an hour went through"
            assert runtime.edge is not None
            refused = [
                line
                for line in await runtime.edge.audit.lines(200)
                if line.action == "write.refused"
            ]
            errors = [str(line.detail.get("error")) for line in refused]
            assert any("changed 3 times" in e for e in errors), errors


async def _wait_alert(cloud: CloudHandle) -> str:
    found: dict[str, str] = {}

    async def alert_closed() -> bool:
        async with httpx.AsyncClient(base_url=cloud.url, verify=_ca_file(cloud)) as client:
            resp = await client.get("/ngsi-ld/v1/entities", params={"type": "Alert"})
        for entity in resp.json():
            if entity.get("alertStatus", {}).get("value") == "cleared":
                found["id"] = entity["id"]
                return True
        return False

    await wait_for(alert_closed, within=15, what="an Alert raised and cleared in the broker")
    return found["id"]


async def test_commands_ok_error_and_expired(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on: the unreachable relay
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    async with (
        Site(tmp_path) as site,
        running_cloud(tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True) as cloud,
    ):
        await _provision(cloud, tmp_path)
        async with (
            _agent(tmp_path, cloud.url, site.blocks(dead_port=dead_port)),
            httpx.AsyncClient(base_url=cloud.url, verify=_ca_file(cloud)) as api,
        ):
            await wait_for(
                lambda: _declared(cloud, RELAY, "relay2"), within=20, what="commands declared"
            )
            await wait_for(lambda: _exists(cloud, RELAY), within=20, what="the relay's entity")
            resp = await api.patch(
                f"/ngsi-ld/v1/entities/{RELAY}/attrs/relay2",
                json={"type": "Property", "value": True},
            )
            assert resp.status_code == 204, resp.text
            await _wait_command(cloud, RELAY, "relay2", "OK")
            assert site.relay.expected("relay2") is True
            dead = f"urn:ngsi-ld:Device:{GATEWAY}:relay-2"
            await wait_for(lambda: _exists(cloud, dead), within=20, what="the dead relay's entity")
            soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
            resp = await api.post(  # append: the dead relay never reported relay1
                f"/ngsi-ld/v1/entities/{dead}/attrs",
                json={
                    "relay1": {
                        "type": "Property",
                        "value": True,
                        "expiresAt": {"type": "Property", "value": soon},
                    }
                },
            )
            assert resp.status_code == 204, resp.text
            # a device that is down is no refusal: the command waits for it, and ends
            # EXPIRED at its expiry with the device's last reason (issue 15)
            info = await _wait_command(cloud, dead, "relay1", "EXPIRED")
            assert info.startswith("expired while the device was down"), info
            assert "relay-2" in info, info
            # a value the point cannot take is refused at once: ERROR
            resp = await api.patch(
                f"/ngsi-ld/v1/entities/{RELAY}/attrs/relay4",
                json={"type": "Property", "value": 7},
            )
            assert resp.status_code == 204, resp.text
            info = await _wait_command(cloud, RELAY, "relay4", "ERROR")
            assert "true or false" in info, info
            # a command on an attribute that is not a command is data, nothing more
            resp = await api.patch(
                f"/ngsi-ld/v1/entities/{METER}/attrs/voltage",
                json={"type": "Property", "value": 1.0},
            )
            assert resp.status_code == 204
        # the gateway is gone: a command with a short life expires in the cloud
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
        async with httpx.AsyncClient(base_url=cloud.url, verify=_ca_file(cloud)) as api:
            resp = await api.patch(
                f"/ngsi-ld/v1/entities/{RELAY}/attrs/relay3",
                json={
                    "type": "Property",
                    "value": True,
                    "expiresAt": {"type": "Property", "value": expires},
                },
            )
            assert resp.status_code == 204, resp.text
        await _wait_command(cloud, RELAY, "relay3", "EXPIRED", within=15)
        assert site.relay.expected("relay3") is False
        assert site.relay.expected("relay4") is False
        commands = await cloud.store.control.commands(10)
        assert sorted(c.status for c in commands) == ["ERROR", "EXPIRED", "EXPIRED", "OK"]
        lines = await AuditLog(cloud.store).entries(500)
        actions = [e.action for e in lines]
        for action in ("command.create", "command.delivered", "command.ok", "command.error"):
            assert action in actions, action
        assert "command.expired" in actions


async def _declared(cloud: CloudHandle, entity_id: str, attr: str) -> bool:
    points = await cloud.store.control.command_points()
    return any(p.entity_id == entity_id and p.attr == attr for p in points)


async def _wait_command(
    cloud: CloudHandle, entity_id: str, attr: str, status: str, within: float = 15
) -> str:
    found: dict[str, str] = {}

    async def settled() -> bool:
        shown = await _attr(cloud, entity_id, f"{attr}_status")
        if shown is not None and shown.get("value") == status:
            info = await _attr(cloud, entity_id, f"{attr}_info")
            found["info"] = str((info or {}).get("value"))
            return True
        return False

    await wait_for(settled, within=within, what=f"{attr}_status {status} on {entity_id}")
    return found["info"]


async def test_a_command_to_a_device_that_is_down_is_written_when_it_is_back(
    tmp_path: Path,
) -> None:
    """Issue 15: a command to a rebooting device ended ERROR at once with a connection
    reason. Now it is tried again every ``COMMAND_RETRY_S`` within its lifetime, against
    npm's modbus-serial (a device nobody here wrote): down for 5 s, then OK, and the coil
    is set; the audit says once that the device was unreachable, not at every retry."""
    from tests.thirdparty.modbus_server import modbus_serial_server

    relay = {"unit": 1, "coils": {str(i): False for i in range(8)}}
    async with (
        modbus_serial_server(tmp_path, relay) as device,
        running_cloud(tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True) as cloud,
    ):
        await _provision(cloud, tmp_path)
        block = _modbus("relay-1", "waveshare-relay-8ch", device.port)
        async with (
            _agent(tmp_path, cloud.url, [block]) as runtime,
            httpx.AsyncClient(base_url=cloud.url, verify=_ca_file(cloud)) as api,
        ):
            await wait_for(
                lambda: _declared(cloud, RELAY, "relay2"), within=20, what="commands declared"
            )
            await wait_for(lambda: _exists(cloud, RELAY), within=20, what="the relay's entity")
            await device.stop()  # a power cut at the cabinet
            sent = time.monotonic()
            later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30))
            resp = await api.patch(
                f"/ngsi-ld/v1/entities/{RELAY}/attrs/relay2",
                json={
                    "type": "Property",
                    "value": True,
                    "expiresAt": {"type": "Property", "value": later},
                },
            )
            assert resp.status_code == 204, resp.text
            await asyncio.sleep(5.0)
            shown = await _attr(cloud, RELAY, "relay2_status")
            assert shown is not None
            assert shown["value"] == "DELIVERED"  # it waits for the device: no ERROR
            await device.start()
            back = time.monotonic()
            info = await _wait_command(cloud, RELAY, "relay2", "OK", within=20)
            assert "coil 1" in info, info
            assert time.monotonic() - sent < 30
            print(f"command written {time.monotonic() - back:.1f} s after the device was back")
            edge = runtime.edge
            assert edge is not None
            rows = await edge.audit._run("SELECT action FROM audit WHERE action LIKE 'write.%'")
            # the first attempt is audited, not every retry; then the write
            assert [r[0] for r in rows] == ["write.refused", "write.ok"]
