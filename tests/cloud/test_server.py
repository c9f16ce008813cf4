"""The cloud over real loopback HTTP (uvicorn in the test's loop), with the agent's transport."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from ldt.agent.transport import HttpTransport, TransportError
from ldt.cloud.errors import CloudError
from ldt.cloud.server import add_gateway, running_cloud
from ldt.contract import INGEST_PATH
from tests.cloud.batches import batch, encode, good_rows

pytestmark = pytest.mark.integration


async def test_agent_transport_syncs_and_replays_exactly_once(tmp_path: Path) -> None:
    token = add_gateway(tmp_path, "gw-1")
    async with running_cloud(tmp_path, insecure_no_auth=True) as cloud:
        assert cloud.url.startswith("http://127.0.0.1:")
        transport = HttpTransport(base_url=cloud.url, token=token, timeout_s=10)
        try:
            body = encode(batch("gw-1", good_rows(1, 500)))
            ack = await transport.send(body)
            assert (ack.accepted, ack.duplicates, ack.max_seq) == (500, 0, 500)
            replay = await transport.send(body)
            assert (replay.accepted, replay.duplicates) == (0, 500)
            with pytest.raises(TransportError) as rejected:  # the permanent-rejection subclass
                await transport.send(encode(batch("gw-other", good_rows(501, 5))))
            assert getattr(rejected.value, "status", None) == 403
            assert "gw-1" in str(rejected.value)
        finally:
            await transport.aclose()
        assert await cloud.store.readings.seqs("gw-1") == list(range(1, 501))
        async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as client:
            got = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:gw-1:m0")
        assert got.status_code == 200
        assert got.json()["activePower"]["value"] == 200.0


async def test_data_survives_a_restart_and_the_port_is_released(tmp_path: Path) -> None:
    token = add_gateway(tmp_path, "gw-1")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with running_cloud(tmp_path, insecure_no_auth=True) as cloud:
        port = int(cloud.url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as client:
            resp = await client.post(
                INGEST_PATH, content=encode(batch("gw-1", good_rows(1, 10))), headers=headers
            )
            assert resp.status_code == 200
    async with running_cloud(tmp_path, port=port, insecure_no_auth=True) as again:
        assert again.url.endswith(f":{port}")
        assert await again.store.readings.count("gw-1") == 10


async def test_busy_port_is_a_cloud_error(tmp_path: Path) -> None:
    async with running_cloud(tmp_path / "a", insecure_no_auth=True) as cloud:
        port = int(cloud.url.rsplit(":", 1)[1])
        with pytest.raises(CloudError, match="cannot listen"):
            async with running_cloud(tmp_path / "b", port=port, insecure_no_auth=True):
                pass


async def test_sync_throughput_5000_reading_batches(tmp_path: Path) -> None:
    """Prints readings/s for 20 batches of 5,000 over loopback (measured, not asserted)."""
    token = add_gateway(tmp_path, "gw-bench")
    bodies = [
        encode(batch("gw-bench", good_rows(1 + i * 5000, 5000, n_series=1))) for i in range(20)
    ]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with (
        running_cloud(tmp_path, insecure_no_auth=True) as cloud,
        httpx.AsyncClient(base_url=cloud.url, timeout=30, headers=headers) as client,
    ):
        started = time.perf_counter()
        for body in bodies:
            resp = await client.post(INGEST_PATH, content=body)
            assert resp.status_code == 200, resp.text
        elapsed = time.perf_counter() - started
        assert await cloud.store.readings.count("gw-bench") == 100_000
    print(f"\ncloud ingest over loopback HTTP: {100_000 / elapsed:,.0f} readings/s")
