"""The technician's local API on a running agent (in-process), against a Modbus simulator."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from ldt.agent.config import ConfigError, load_gateway_config
from ldt.agent.runtime import AgentRuntime
from ldt.cloud.server import add_gateway, running_cloud
from ldt.simulators.modbus import ModbusSimulator, resolve_profile
from tests.integration.conftest import wait_for

GW = "gw-api"


def _config(tmp: Path, url: str, token: str, sim_port: int, api: str) -> Path:
    path = tmp / "gateway.toml"
    path.write_text(
        "\n".join(
            [
                "[gateway]",
                f'id = "{GW}"',
                'data_dir = "agent-data"',
                "[cloud]",
                f'url = "{url}"',
                f'token = "{token}"',
                "interval_s = 0.2",
                "[discovery]",
                "enabled = false",
                "[local_api]",
                api,
                "[[devices]]",
                'id = "meter-1"',
                'profile = "eastron-sdm120"',
                "poll_interval_s = 0.2",
                f'connection = {{ host = "127.0.0.1", port = {sim_port}, timeout_s = 0.5 }}',
            ]
        )
        + "\n"
    )
    return path


@asynccontextmanager
async def _agent(tmp_path: Path, api: str) -> AsyncIterator[tuple[AgentRuntime, str]]:
    token = add_gateway(tmp_path / "cloud", GW)
    async with (
        ModbusSimulator(profile=resolve_profile("eastron-sdm120"), seed=2) as sim,
        running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud,
    ):
        runtime = AgentRuntime(
            config=load_gateway_config(_config(tmp_path, cloud.url, token, sim.port, api))
        )
        task = asyncio.create_task(runtime.run())
        try:
            await wait_for(lambda: runtime.local_api is not None, within=10, what="local API")
            assert runtime.local_api is not None
            yield runtime, f"http://127.0.0.1:{runtime.local_api.port}"
        finally:
            runtime.stop.set()
            await asyncio.wait_for(task, 20)


async def test_status_live_readings_and_device_health(tmp_path: Path) -> None:
    async with _agent(tmp_path, "port = 0") as (runtime, url), httpx.AsyncClient() as client:

        async def has_readings() -> bool:
            got = (await client.get(f"{url}/readings")).json()
            return bool(got.get("meter-1"))

        await wait_for(has_readings, within=10, what="live readings")
        readings = (await client.get(f"{url}/readings")).json()["meter-1"]
        assert readings["voltage"]["quality"] == "good"
        assert 200 < readings["voltage"]["value"] < 260
        status = (await client.get(f"{url}/status")).json()
        assert status["gateway_id"] == GW
        assert status["provisioned"] is False
        assert status["devices"] == {"meter-1": True}
        assert status["buffer"]["pending"] >= 0
        device = (await client.get(f"{url}/devices/meter-1")).json()
        assert device["connected"] is True
        assert device["good"] > 0
        assert (await client.post(f"{url}/devices/meter-1/test", json={})).status_code == 401
        secret = (runtime.config.gateway.data_dir / "local-api.token").read_text().strip()
        assert (
            oct((runtime.config.gateway.data_dir / "local-api.token").stat().st_mode)[-3:] == "600"
        )
        client.headers["Authorization"] = f"Bearer {secret}"  # POSTs need it, on loopback too
        probe = (await client.post(f"{url}/devices/meter-1/test", json={})).json()
        assert probe["path"]["kind"] == "tcp"
        assert probe["path"]["reachable"] is True
        assert probe["path"]["latency_ms"] >= 0
        assert probe["health"]["connected"] is True
        assert (await client.post(f"{url}/devices/nope/test", json={})).status_code == 404
        assert (await client.get(f"{url}/devices/nope")).status_code == 404
        assert (await client.get(f"{url}/nothing")).status_code == 404
        assert (await client.delete(f"{url}/status")).status_code == 405
        json_type = {"Content-Type": "application/json"}
        bad = await client.post(f"{url}/provision", content=b"{not json", headers=json_type)
        assert bad.status_code == 400
        plain = await client.post(f"{url}/provision", content=b"{}")  # no JSON type: refused
        assert plain.status_code == 415
        huge = await client.post(f"{url}/provision", content=b"x" * (100 << 10))
        assert huge.status_code == 400
        assert runtime.local_api is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", runtime.local_api.port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 400")
        writer.close()
        assert (await client.get(f"{url}/status")).status_code == 200  # still serving


async def test_a_credential_is_required_when_configured(tmp_path: Path) -> None:
    secret = tmp_path / "api-secret"
    secret.write_text("s3cret-for-the-technician\n")
    api = f'port = 0\ncredential_file = "{secret}"'
    async with _agent(tmp_path, api) as (_runtime, url), httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/status")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get(f"{url}/status", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer s3cret-for-the-technician"}
        assert (await client.get(f"{url}/status", headers=right)).status_code == 200


def test_a_lan_address_without_a_credential_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, "http://127.0.0.1:9", "0123456789abcdef0123", 502, 'host = "0.0.0.0"')
    with pytest.raises(ConfigError, match="credential_file"):
        load_gateway_config(path)


async def test_probe_reports_unreachable_addresses_and_serial_nodes(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from ldt.agent.reachability import probe_connection

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there now
    refused = await probe_connection(SimpleNamespace(host="127.0.0.1", port=port))
    assert refused["reachable"] is False
    assert refused["detail"]
    missing = await probe_connection(SimpleNamespace(port=str(tmp_path / "ttyUSB9")))
    assert (missing["kind"], missing["reachable"], missing["detail"]) == (
        "serial",
        False,
        "no such device",
    )
    opc = await probe_connection(SimpleNamespace(endpoint=f"opc.tcp://127.0.0.1:{port}/x"))
    assert (opc["target"], opc["reachable"]) == (f"127.0.0.1:{port}", False)
    ble = await probe_connection(SimpleNamespace(address="C0:FF:EE:00:00:01"))
    assert ble["reachable"] is None
