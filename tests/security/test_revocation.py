"""Revoking a gateway (issue 14, item 7): its open long poll ends at once and carries no
command; its command points and its unused claim tokens are gone. Real TLS, a real
provisioned gateway identity, the real control exchange."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from ldt.agent.identity import Identity, client_context, provision
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.server import PKI_DIRNAME, running_cloud
from ldt.contract.claims import parse_claim_token
from ldt.contract.control import CONTROL_SYNC_PATH, ControlSync

RELAY = "urn:ngsi-ld:Device:gw-1:relay-1"


async def test_revocation_ends_the_long_poll_and_hands_out_nothing(tmp_path: Path) -> None:
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        pki = Provisioner(cloud.store, CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME))
        identity = Identity.of(tmp_path / "gw-1", "gw-1")
        await provision(cloud.url, await pki.create_claim("depot-7", 600), identity)
        spare = await pki.create_claim("depot-7", 600, "gw-1")  # an unused token for it
        async with httpx.AsyncClient(
            base_url=cloud.url, verify=client_context(identity), timeout=40
        ) as gateway:
            declare = ControlSync(command_points={RELAY: ["relay2"]}).model_dump_json()
            assert (await gateway.post(CONTROL_SYNC_PATH, content=declare)).status_code == 200
            assert await cloud.store.control.command_points()
            waiting = asyncio.create_task(
                gateway.post(CONTROL_SYNC_PATH, content=ControlSync(wait_s=25).model_dump_json())
            )
            await asyncio.sleep(0.5)  # the long poll is open
            started = time.monotonic()
            await pki.revoke("gw-1")
            answer = await asyncio.wait_for(waiting, timeout=10)
            ended_s = time.monotonic() - started
        assert answer.status_code == 200
        assert answer.json()["commands"] == []
        assert ended_s < 3  # not at the end of its 25 s wait
        assert await cloud.store.control.command_points() == []
        claim = await cloud.store.gateways.claim(parse_claim_token(spare).secret_sha256)
        assert claim is None  # the unused claim token for it is cancelled
