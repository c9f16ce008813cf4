"""Simulator -> Modbus TCP -> agent -> buffer -> sync -> cloud -> NGSI-LD, all real, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldt.agent.config import load_gateway_config, load_profile
from ldt.agent.runtime import AgentRuntime
from ldt.cloud.server import running_cloud
from ldt.simulators.modbus import resolve_profile
from tests.integration.conftest import GATEWAY, gateway_toml, wait_for

pytestmark = pytest.mark.integration

POLL_S = 0.2
SYNC_S = 0.2


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        # float32 registers travel as their shortest decimal: equal to float32 precision
        return math.isclose(float(a), float(b), rel_tol=1.2e-7, abs_tol=1e-9)
    return bool(a == b)


async def _entity(client: httpx.AsyncClient, entity_id: str) -> dict[str, Any] | None:
    resp = await client.get(f"/ngsi-ld/v1/entities/{entity_id}")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


@contextlib.asynccontextmanager
async def _agent(config: Path) -> Any:
    runtime = AgentRuntime(config=load_gateway_config(config))
    task = asyncio.create_task(runtime.run(), name="agent-under-test")
    try:
        yield runtime
    finally:
        runtime.stop.set()
        await asyncio.wait_for(task, timeout=15)


@pytest.mark.parametrize("profile", ["eastron-sdm120", "xymd02-th"])
async def test_cloud_entity_equals_simulator_registers(
    tmp_path: Path, sims: Any, token_for: Any, profile: str
) -> None:
    token = token_for()
    sim = await sims(profile, seed=7)
    sim.freeze()
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(
            gateway_toml(
                cloud_url=cloud.url,
                token=token,
                devices=[("dev-1", profile, sim.port)],
                poll_interval_s=POLL_S,
                uplink_interval_s=SYNC_S,
            )
        )
        points = load_profile(resolve_profile(profile)).points
        entity_id = f"urn:ngsi-ld:Device:{GATEWAY}:dev-1"
        async with _agent(cfg), httpx.AsyncClient(base_url=cloud.url) as client:
            holder: dict[str, Any] = {}

            async def complete() -> bool:
                ent = await _entity(client, entity_id)
                if ent is None or any(p.attribute_name not in ent for p in points):
                    return False
                holder["entity"] = ent
                holder["fetched_ms"] = int(time.time() * 1000)
                return True

            await wait_for(complete, within=10, what="every point of the device in the broker")
            ent = holder["entity"]
            assert ent["type"] == "Device"
            for p in points:
                attr = ent[p.attribute_name]
                assert attr["type"] == "Property"
                assert _same(attr["value"], sim.expected(p.name)), (
                    p.name,
                    attr,
                    sim.expected(p.name),
                )
                if p.unit:
                    assert attr["unitCode"] == p.unit
                # observed within one poll interval (plus one sync cycle to reach the broker)
                interval = p.poll_interval_s or POLL_S
                age = holder["fetched_ms"] - _ms(attr["observedAt"])
                assert -50 <= age <= (interval + SYNC_S) * 1000 + 500, (p.name, age)

            if profile == "eastron-sdm120" and shutil.which("mbpoll"):
                # an independent Modbus client reads the same register the agent read
                voltage = next(p for p in points if p.unit == "VLT")
                proc = await asyncio.create_subprocess_exec(
                    "mbpoll", "-m", "tcp", "-a", "1", "-t", "3:float", "-B", "-0", "-r",
                    str(voltage.address), "-c", "1", "-p", str(sim.port), "-1", "127.0.0.1",
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
                assert proc.returncode == 0
                text = stdout.decode()
                line = next(ln for ln in text.splitlines() if ln.startswith("["))
                mb_value = float(line.split(":", 1)[1])  # printed as %g: 6 significant digits
                assert math.isclose(mb_value, ent[voltage.attribute_name]["value"], rel_tol=1e-5)


async def test_dead_and_failing_devices_do_not_stop_the_healthy_one(
    tmp_path: Path, sims: Any, token_for: Any
) -> None:
    token = token_for()
    good = await sims("eastron-sdm120", seed=1)
    silent = await sims("eastron-sdm120", seed=2, drop_rate=1.0)
    failing = await sims("eastron-sdm120", seed=3, exception_rate=1.0)
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(
            gateway_toml(
                cloud_url=cloud.url,
                token=token,
                devices=[
                    ("good", "eastron-sdm120", good.port),
                    ("silent", "eastron-sdm120", silent.port),
                    ("failing", "eastron-sdm120", failing.port),
                    ("absent", "eastron-sdm120", 1),  # nothing listens on port 1
                ],
            )
        )
        async with _agent(cfg) as runtime, httpx.AsyncClient(base_url=cloud.url) as client:
            good_id = f"urn:ngsi-ld:Device:{GATEWAY}:good"

            async def good_flows() -> bool:
                ent = await _entity(client, good_id)
                return ent is not None and "voltage" in ent

            await wait_for(good_flows, within=10, what="the healthy device's values")
            health = {d.device_id: d.health for d in runtime.devices}

            def all_reported() -> bool:
                return all(health[d].bad > 0 for d in ("silent", "failing", "absent"))

            await wait_for(all_reported, within=10, what="bad readings from the broken devices")
        assert health["good"].bad == 0
        assert health["good"].good > 0
        assert "timeout" in (health["silent"].last_error or "")
        assert "exception" in (health["failing"].last_error or "")
        assert "refused" in (health["absent"].last_error or "")
        # the failures are data too: synced as bad readings with their reason, nothing lost
        history = await cloud.store.readings.history(
            f"urn:ngsi-ld:Device:{GATEWAY}:failing", "voltage"
        )
        assert history
        assert all(h.quality == "bad" and h.reason for h in history)
