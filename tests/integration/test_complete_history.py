"""Every reading a gateway buffers becomes an attribute instance in the temporal API.

The scenario a new user tried: one meter polled every 0.5 s, uploads every 2 s, and a
10 s cloud outage in the middle (its backlog arrives as backfill, older than the live
values already synced). Before, the temporal API held one instance per attribute per
batch (135 of 260 readings; 13 % after the outage). Now the sum of instances over the
device's point attributes equals the readings the gateway buffered, on both engines.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldt.agent.config import load_gateway_config
from ldt.agent.runtime import AgentRuntime, drain
from ldt.agent.transport import HttpTransport
from ldt.cloud.ngsild.device_model import READING_ID_PREFIX
from ldt.cloud.server import running_cloud
from tests.cloud.conftest import postgres_dsn, postgres_server, register
from tests.integration.conftest import GATEWAY, gateway_toml, wait_for
from tests.integration.test_crash_and_outage import _buffer_last_seq

pytestmark = pytest.mark.integration
__all__ = ["postgres_dsn", "postgres_server"]  # fixtures used by the PostgreSQL run

_SUMMARY = {"deviceState", "dateLastValueReported"}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


async def _instances(url: str, entity_id: str) -> dict[str, list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        answer = await http.get(
            f"/ngsi-ld/v1/temporal/entities/{entity_id}",
            params={"timerel": "after", "timeAt": "1970-01-01T00:00:00Z"},
        )
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    return {
        k: v if isinstance(v, list) else [v] for k, v in doc.items() if isinstance(v, (list, dict))
    }


async def test_every_buffered_reading_is_an_instance_outage_included(
    tmp_path: Path, sims: Any, store_url: str | None
) -> None:
    meter = await sims("eastron-sdm120", seed=7)
    async with running_cloud(
        tmp_path / "cloud", store_url=store_url, insecure_no_auth=True
    ) as cloud:
        token = await register(cloud.store, GATEWAY)
        url = cloud.url
        port = int(url.rsplit(":", 1)[1])
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        gateway_toml(
            cloud_url=url,
            token=token,
            devices=[("m", "eastron-sdm120", meter.port)],
            poll_interval_s=0.5,
            uplink_interval_s=2.0,
        )
    )
    config = load_gateway_config(cfg)
    runtime = AgentRuntime(
        config=config, transport=HttpTransport(base_url=url, token=token, timeout_s=5)
    )
    agent = asyncio.create_task(runtime.run())
    try:
        async with running_cloud(
            tmp_path / "cloud", port=port, store_url=store_url, insecure_no_auth=True
        ):
            await asyncio.sleep(5)
        await asyncio.sleep(10)  # the outage: the gateway keeps polling into its buffer
        async with running_cloud(
            tmp_path / "cloud", port=port, store_url=store_url, insecure_no_auth=True
        ) as cloud:

            async def caught_up() -> bool:
                assert runtime.buffer is not None
                return (await runtime.buffer.stats()).pending == 0

            await asyncio.sleep(5)
            await wait_for(caught_up, within=30, what="the backlog to drain")
            runtime.stop.set()
            await asyncio.wait_for(agent, timeout=15)
            await drain(config, transport=HttpTransport(base_url=url, token=token, timeout_s=2))
            last_seq, pending = _buffer_last_seq(cfg)
            assert pending == 0
            history = await _instances(url, f"urn:ngsi-ld:Device:{GATEWAY}:m")
    finally:
        runtime.stop.set()
        if not agent.done():
            await asyncio.wait_for(agent, timeout=15)
    points = {k: v for k, v in history.items() if k not in _SUMMARY}
    assert points, history.keys()
    total = sum(len(v) for v in points.values())
    assert last_seq > 150, "too few readings for the scenario"
    assert total == last_seq, f"{total} instances for {last_seq} buffered readings"
    ids = [i["instanceId"] for v in points.values() for i in v]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(READING_ID_PREFIX) for i in ids)
