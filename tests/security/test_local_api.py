"""The technician's local API on the gateway (issue 14, item 5): what a web page in the
technician's browser can send to loopback changes nothing.

A real agent runtime serves the API; the "browser" requests are what a page can make: a
``text/plain`` POST with an ``Origin``, a DNS-rebound ``Host``. A provisioned gateway is
re-provisioned only with ``"force": true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from ldt.agent.config import load_gateway_config
from ldt.agent.runtime import AgentRuntime
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.server import PKI_DIRNAME, running_cloud
from tests.integration.conftest import wait_for

GW = "gw-local"


@asynccontextmanager
async def local_api(
    tmp_path: Path, cloud_url: str = "https://127.0.0.1:9"
) -> AsyncIterator[tuple[str, str, Path]]:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "{GW}"\ndata_dir = "{tmp_path / "agent"}"\n'
        f'[cloud]\nurl = "{cloud_url}"\ninterval_s = 5\n'
        "[local_api]\nport = 0\n[discovery]\nenabled = false\n"
    )
    runtime = AgentRuntime(config=load_gateway_config(config))
    task = asyncio.create_task(runtime.run())
    try:
        await wait_for(lambda: runtime.local_api is not None, within=10, what="local API")
        assert runtime.local_api is not None
        secret = (tmp_path / "agent" / "local-api.token").read_text().strip()
        yield f"http://127.0.0.1:{runtime.local_api.port}", secret, tmp_path / "agent"
    finally:
        runtime.stop.set()
        await asyncio.wait_for(task, 20)


async def test_a_browser_page_cannot_provision_the_gateway(tmp_path: Path) -> None:
    body = b'{"host": "https://attacker.example", "token": "ldt1.x"}'
    async with local_api(tmp_path) as (url, secret, _data), httpx.AsyncClient() as client:
        page = {"Content-Type": "text/plain", "Origin": "https://attacker.example"}
        assert (
            await client.post(f"{url}/provision", content=body, headers=page)
        ).status_code == 403
        simple = {"Content-Type": "text/plain"}  # no Origin, no credential
        assert (
            await client.post(f"{url}/provision", content=body, headers=simple)
        ).status_code == 401
        rebound = {"Host": "attacker.example", "Authorization": f"Bearer {secret}"}
        resp = await client.get(f"{url}/status", headers=rebound)
        assert resp.status_code == 403  # DNS rebinding: the page's name, loopback's address
        with_secret = {"Authorization": f"Bearer {secret}", "Content-Type": "text/plain"}
        resp = await client.post(f"{url}/provision", content=body, headers=with_secret)
        assert resp.status_code == 415  # only JSON, even with the credential
        assert (await client.get(f"{url}/status")).json()["provisioned"] is False


async def test_re_provisioning_needs_force(tmp_path: Path) -> None:
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        pki = Provisioner(cloud.store, CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME))
        async with (
            local_api(tmp_path, cloud.url) as (url, secret, _data),
            httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {secret}"}) as client,
        ):
            first = {"host": cloud.url, "token": await pki.create_claim("depot-7", 600)}
            assert (await client.post(f"{url}/provision", json=first)).status_code == 200
            again = {"host": cloud.url, "token": await pki.create_claim("depot-7", 600, GW)}
            resp = await client.post(f"{url}/provision", json=again)
            assert resp.status_code == 409
            assert "force" in resp.json()["detail"]
            resp = await client.post(f"{url}/provision", json={**again, "force": True})
            assert resp.status_code == 200, resp.text
