"""Provisioning and sync over real TLS 1.3 on loopback: the agent's identity, the cloud's CA.

Every refusal the secure-sync issue lists is exercised on the wire: no client
certificate, a self-signed one, an expired one, a revoked one, another gateway's
entity, a bearer token on the TLS listener, garbage on the port, a truncated batch, a
forged gateway id, a reused token and a CSR for another gateway.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from ldt.agent.artifacts import ArtifactFetcher
from ldt.agent.config import load_gateway_config
from ldt.agent.identity import Identity, IdentityError, client_context, provision, renew
from ldt.agent.runtime import AgentRuntime
from ldt.agent.transport import HttpTransport, TransportRejectedError
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.pki.broker_files import ACL_FILE, CHECK_S, CRL_FILE
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.server import PKI_DIRNAME, CloudHandle, add_gateway, running_cloud
from ldt.cloud.store.gateways import CertificateRecord
from ldt.contract import INGEST_PATH
from ldt.contract.artifacts import ArtifactError, sign_artifact
from tests.cloud.batches import batch, encode, good_rows
from tests.integration.conftest import GATEWAY, wait_for

pytestmark = pytest.mark.integration


def _pki(cloud: CloudHandle) -> Provisioner:
    return Provisioner(cloud.store, CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME))


async def _provisioned(cloud: CloudHandle, tmp_path: Path, gateway_id: str) -> Identity:
    token = await _pki(cloud).create_claim("depot-7", 600)
    identity = Identity.of(tmp_path / gateway_id, gateway_id)
    await provision(cloud.url, token, identity)
    return identity


def _foreign_context(cloud: CloudHandle, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cloud.data_dir / PKI_DIRNAME / "ca.pem"))
    ctx.load_cert_chain(cert, key)
    return ctx


def _self_signed(tmp_path: Path, cn: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{cn}-self.pem", tmp_path / f"{cn}-self.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_token_to_provisioned_gateway_to_data_over_mutual_tls(tmp_path: Path) -> None:
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        assert cloud.url.startswith("https://127.0.0.1:")
        identity = await _provisioned(cloud, tmp_path, "gw-1")
        assert identity.key_path.stat().st_mode & 0o777 == 0o600
        transport = HttpTransport(
            base_url=cloud.url, token=None, timeout_s=10, tls=client_context(identity)
        )
        try:
            ack = await transport.send(encode(batch("gw-1", good_rows(1, 50))))
            assert (ack.gateway_id, ack.accepted) == ("gw-1", 50)
        finally:
            await transport.aclose()
        assert await cloud.store.readings.count("gw-1") == 50
        before = identity.certificate().serial_number
        await renew(cloud.url, identity)
        assert identity.certificate().serial_number != before
        transport = HttpTransport(
            base_url=cloud.url, token=None, timeout_s=10, tls=client_context(identity)
        )
        try:
            assert (await transport.send(encode(batch("gw-1", good_rows(51, 5))))).accepted == 5
        finally:
            await transport.aclose()


async def test_connections_without_a_good_certificate_are_refused_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        ca = cloud.data_dir / PKI_DIRNAME / "ca.pem"
        body = encode(batch("gw-1", good_rows(1, 5)))
        headers = {"Content-Type": "application/json"}
        # no client certificate: TLS lets it in (provisioning needs that), ingest refuses
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(ca)), timeout=10
        ) as client:
            response = await client.post(f"{cloud.url}{INGEST_PATH}", content=body, headers=headers)
        assert response.status_code == 401
        assert "client certificate" in response.json()["detail"]
        # a bearer token is not accepted on the TLS listener either
        token = add_gateway(cloud.data_dir, "gw-1")
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(ca)), timeout=10
        ) as client:
            response = await client.post(
                f"{cloud.url}{INGEST_PATH}",
                content=body,
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 401
        # self-signed: the handshake fails, and the server logs the alert it sent
        cert, key = _self_signed(tmp_path, "gw-1")
        async with httpx.AsyncClient(verify=_foreign_context(cloud, cert, key)) as client:
            with pytest.raises(httpx.HTTPError):
                await client.post(f"{cloud.url}{INGEST_PATH}", content=body, headers=headers)
        # expired, issued by our CA: the handshake fails too
        pki = _pki(cloud)
        expired_id = Identity.of(tmp_path / "old", "gw-old")
        issued = pki.ca.issue_gateway(expired_id.csr(), "gw-old", days=-0.001)
        expired_id.cert_path.write_bytes(issued.pem)
        async with httpx.AsyncClient(
            verify=_foreign_context(cloud, expired_id.cert_path, expired_id.key_path)
        ) as client:
            with pytest.raises(httpx.HTTPError):
                await client.post(f"{cloud.url}{INGEST_PATH}", content=body, headers=headers)
        await asyncio.sleep(0.1)
        assert await cloud.store.readings.count("gw-1") == 0
    logged = caplog.text
    assert "ingest refused: no client certificate" in logged
    assert "TLS connection refused: unknown_ca" in logged
    assert "TLS connection refused: certificate_expired" in logged


async def test_revoked_gateway_is_refused_on_its_next_request(tmp_path: Path) -> None:
    mqtt_dir = tmp_path / "mqtt"
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True, mosquitto_dir=mqtt_dir
    ) as cloud:
        assert "deny" not in (mqtt_dir / ACL_FILE).read_text()  # written at start
        crl_at_start = (mqtt_dir / CRL_FILE).read_bytes()
        identity = await _provisioned(cloud, tmp_path, "gw-1")
        transport = HttpTransport(
            base_url=cloud.url, token=None, timeout_s=10, tls=client_context(identity)
        )
        try:
            assert (await transport.send(encode(batch("gw-1", good_rows(1, 5))))).accepted == 5
            assert await _pki(cloud).revoke("gw-1") == 1
            with pytest.raises(TransportRejectedError) as refused:  # same keep-alive connection
                await transport.send(encode(batch("gw-1", good_rows(6, 5))))
            assert refused.value.status == 401
            assert "revoked" in refused.value.detail
        finally:
            await transport.aclose()
        with pytest.raises(IdentityError, match="revoked"):
            await renew(cloud.url, identity)
        assert await cloud.store.readings.count("gw-1") == 5
        # and mosquitto's files follow within CHECK_S (tests/security/test_mqtt_revocation.py)
        async with asyncio.timeout(CHECK_S + 5):
            while "user gw-1" not in (mqtt_dir / ACL_FILE).read_text():  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        assert (mqtt_dir / CRL_FILE).read_bytes() != crl_at_start


async def test_forged_foreign_and_malformed_batches_write_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        gw1 = await _provisioned(cloud, tmp_path, "gw-1")
        gw2 = await _provisioned(cloud, tmp_path, "gw-2")
        t2 = HttpTransport(base_url=cloud.url, token=None, timeout_s=10, tls=client_context(gw2))
        t1 = HttpTransport(base_url=cloud.url, token=None, timeout_s=10, tls=client_context(gw1))
        try:
            assert (await t2.send(encode(batch("gw-2", good_rows(1, 5))))).accepted == 5
            # a batch naming another gateway in its payload: the certificate decides
            with pytest.raises(TransportRejectedError) as forged:
                await t1.send(encode(batch("gw-2", good_rows(1, 5))))
            assert forged.value.status == 403
            # gw-1 writing gw-2's entity (series naming it)
            theirs = batch("gw-2", good_rows(10, 2))
            theirs["gateway_id"] = "gw-1"
            with pytest.raises(TransportRejectedError) as foreign:
                await t1.send(encode(theirs))
            assert foreign.value.status == 403
            whole = encode(batch("gw-1", good_rows(1, 5)))
            with pytest.raises(TransportRejectedError) as truncated:
                await t1.send(whole[: len(whole) // 2])
            assert truncated.value.status == 400
        finally:
            await t1.aclose()
            await t2.aclose()
        assert await cloud.store.readings.count("gw-1") == 0
        assert await cloud.store.readings.count("gw-2") == 5
    assert "ingest refused: batch names another gateway" in caplog.text
    assert "ingest refused: entity not this gateway's" in caplog.text


async def test_garbage_on_the_tls_port_leaves_the_server_serving(tmp_path: Path) -> None:
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        host, port = "127.0.0.1", int(cloud.url.rsplit(":", 1)[1])
        for junk in (b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 4, b"\x16\x03\x01\xff\xff"):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(junk)
            await writer.drain()
            await asyncio.wait_for(reader.read(), 10)  # the server closes it
            writer.close()
        ca = cloud.data_dir / PKI_DIRNAME / "ca.pem"
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(ca)), timeout=10
        ) as client:
            response = await client.get(f"{cloud.url}/ldt/v1/pki/ca")
        assert response.status_code == 200
        assert response.content == ca.read_bytes()


async def test_provisioning_refusals_seen_from_the_gateway(tmp_path: Path) -> None:
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        pki = _pki(cloud)
        bound = await pki.create_claim("depot-7", 600, gateway_id="gw-1")
        with pytest.raises(IdentityError, match="for gateway gw-1, the CSR names gw-evil"):
            await provision(cloud.url, bound, Identity.of(tmp_path / "evil", "gw-evil"))
        gw1 = Identity.of(tmp_path / "gw1", "gw-1")
        await provision(cloud.url, bound, gw1)  # the refusal above did not spend it
        with pytest.raises(IdentityError, match="already used"):
            await provision(cloud.url, bound, Identity.of(tmp_path / "again", "gw-1"))
        # a token from another cloud: refused by the gateway before it sends the token
        other = await Provisioner(
            cloud.store, CertificateAuthority.open(tmp_path / "other-ca", passphrase=b"")
        ).create_claim("depot-7", 600)
        with pytest.raises(IdentityError, match="not the cloud that issued this token"):
            await provision(cloud.url, other, Identity.of(tmp_path / "x", "gw-x"))
        with pytest.raises(IdentityError, match="https only"):
            await provision("http://127.0.0.1:1", bound, Identity.of(tmp_path / "y", "gw-y"))


async def test_plain_http_cloud_refuses_provisioning(tmp_path: Path) -> None:
    async with (
        running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud,
        httpx.AsyncClient() as client,
    ):
        response = await client.post(
            f"{cloud.url}/ldt/v1/pki/provision",
            content=orjson.dumps({"token": "x", "csr": "y"}),
        )
        assert response.status_code == 403
        assert "TLS only" in response.json()["detail"]


async def test_technician_steps_then_the_agent_syncs_over_mutual_tls(
    tmp_path: Path, sims: Any, agent_process: Any
) -> None:
    """The README's steps with the real CLIs: token (admin), provision + run (technician)."""
    sim = await sims("eastron-sdm120", seed=3)
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        made = await _ldt("cloud", "token", "create", "--site", "depot-7", "--data", cloud.data_dir)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[-1]
        config = tmp_path / "gateway.toml"
        config.write_text(
            "\n".join(
                [
                    "[gateway]",
                    f'id = "{GATEWAY}"',
                    f'data_dir = "{tmp_path / "agent-data"}"',
                    "[cloud]",
                    f'url = "{cloud.url}"',
                    "interval_s = 0.2",
                    "[[devices]]",
                    'id = "meter-1"',
                    'profile = "eastron-sdm120"',
                    "poll_interval_s = 0.2",
                    f'connection = {{ host = "127.0.0.1", port = {sim.port}, timeout_s = 0.5 }}',
                ]
            )
            + "\n"
        )
        # installed before provisioning: the agent collects and buffers, and says why it waits
        agent = agent_process(config)
        agent.start()
        try:
            await wait_for(
                lambda: "not provisioned yet" in agent.log.read_text(errors="replace"),
                within=30,
                what="the agent saying it waits for provisioning",
            )
            assert await cloud.store.readings.count(GATEWAY) == 0
            key = tmp_path / "agent-data" / "identity" / "key.pem"
            assert key.stat().st_mode & 0o777 == 0o600  # made at first start, on the device
            key_before = key.read_bytes()
            host = cloud.url.removeprefix("https://")
            done = await _ldt("gw", "provision", host, "--token", token, "--config", config)
            assert done.returncode == 0, done.stderr
            # no restart: the next batch goes out over mutual TLS, the backlog with it
            await wait_for(lambda: _count(cloud), within=30, what="readings synced over mTLS")
        finally:
            assert agent.terminate() == 0
        seqs = await cloud.store.readings.seqs(GATEWAY)
        assert seqs == list(range(1, len(seqs) + 1))  # nothing lost while waiting
        assert key.read_bytes() == key_before  # provisioning certified that key, kept it


async def test_provisioning_through_the_local_api(tmp_path: Path) -> None:
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        token = await _pki(cloud).create_claim("depot-7", 600)
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[gateway]\nid = "{GATEWAY}"\ndata_dir = "{tmp_path / "agent"}"\n'
            f'[cloud]\nurl = "{cloud.url}"\ninterval_s = 0.2\n[local_api]\nport = 0\n'
            "[discovery]\nenabled = false\n"
        )
        runtime = AgentRuntime(config=load_gateway_config(config))
        task = asyncio.create_task(runtime.run())
        try:
            await wait_for(lambda: runtime.local_api is not None, within=10, what="local API")
            assert runtime.local_api is not None
            api = f"http://127.0.0.1:{runtime.local_api.port}"
            secret = (tmp_path / "agent" / "local-api.token").read_text().strip()
            async with httpx.AsyncClient(
                timeout=30, headers={"Authorization": f"Bearer {secret}"}
            ) as client:
                before = (await client.get(f"{api}/status")).json()
                assert before["provisioned"] is False
                bad = await client.post(
                    f"{api}/provision", json={"host": cloud.url, "token": "ldt1.nope"}
                )
                assert bad.status_code == 400
                got = await client.post(
                    f"{api}/provision", json={"host": cloud.url, "token": token}
                )
                assert got.status_code == 200, got.text
                after = (await client.get(f"{api}/status")).json()
            assert after["provisioned"] is True
            assert after["certificate_expires"]
        finally:
            runtime.stop.set()
            await asyncio.wait_for(task, 20)


async def _ldt(*args: object) -> subprocess.CompletedProcess[str]:
    """``ldt ARGS`` in a child process, off the event loop (the cloud runs on it)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ldt", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _count(cloud: CloudHandle) -> bool:
    return await cloud.store.readings.count(GATEWAY) >= 10


async def test_the_agent_renews_its_certificate_before_it_expires(tmp_path: Path) -> None:
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        identity = await _provisioned(cloud, tmp_path, GATEWAY)
        pki = _pki(cloud)
        short = pki.ca.issue_gateway(identity.csr(), GATEWAY, days=0.0005)  # ~43 s left
        await cloud.store.gateways.add_certificate(
            CertificateRecord(
                short.serial_hex, GATEWAY, "depot-7", 0, int(short.not_after.timestamp() * 1000)
            )
        )
        identity.store_certificate(short.pem)
        assert identity.renewal_due()
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[gateway]\nid = "{GATEWAY}"\ndata_dir = "{identity.folder.parent}"\n'
            f'[cloud]\nurl = "{cloud.url}"\n'
        )
        runtime = AgentRuntime(config=load_gateway_config(config), renewal_check_s=0.1)
        task = asyncio.create_task(runtime.run())
        try:
            await wait_for(
                lambda: not identity.renewal_due(), within=20, what="the certificate renewed"
            )
        finally:
            runtime.stop.set()
            await asyncio.wait_for(task, 20)
        renewed = identity.certificate()
        assert format(renewed.serial_number, "x") != short.serial_hex
        assert await pki.authenticate(
            renewed.public_bytes(serialization.Encoding.PEM).decode()
        ) == (GATEWAY, "depot-7")


async def test_artifacts_are_verified_and_refusals_reported_to_the_cloud(
    tmp_path: Path,
) -> None:
    async with running_cloud(
        tmp_path / "cloud", tls_hosts=["127.0.0.1"], insecure_no_auth=True
    ) as cloud:
        identity = await _provisioned(cloud, tmp_path, "gw-1")
        service = ArtifactService(cloud.store, _pki(cloud).ca)
        fetcher = ArtifactFetcher(cloud.url, identity)
        await service.publish("rules", "cooling", b'{"v": 1}')
        assert (await fetcher.fetch("rules", "cooling")).content == b'{"v": 1}'
        # tampered at rest (the database, not the signing key, is what leaked)
        await service.publish("rules", "cooling", b'{"v": 2}')
        await _sql(cloud, "UPDATE artifacts SET content = ? WHERE version = 2", b'{"v": 6}')
        with pytest.raises(ArtifactError, match="SHA-256"):
            await fetcher.fetch("rules", "cooling")
        # an older, validly signed version served again (a replay)
        await service.publish("rules", "cooling", b'{"v": 3}')
        assert (await fetcher.fetch("rules", "cooling")).version == 3
        await _sql(cloud, "DELETE FROM artifacts WHERE version >= ?", 2)
        with pytest.raises(ArtifactError, match="not newer than the accepted 3"):
            await fetcher.fetch("rules", "cooling")
        # signed with another key (not by this cloud)
        forged = sign_artifact(ed25519.Ed25519PrivateKey.generate(), "rules", "cooling", 9, b"{}")
        await cloud.store.artifacts.add(
            "rules", "cooling", 9, envelope=forged, content=b"{}", created_at_ms=0
        )
        with pytest.raises(ArtifactError, match="signature does not verify"):
            await fetcher.fetch("rules", "cooling")
        assert fetcher.ledger.current("rules", "cooling") == 3  # what runs keeps running
        reports = [(r.version, r.status, r.reason or "") for r in await service.reports()]
    verdicts = [(v, s, r) for v, s, r in reports if s != "downloaded"]
    assert [(v, s) for v, s, _ in verdicts] == [
        (1, "verified"),
        (2, "refused"),
        (3, "verified"),
        (1, "refused"),
        (9, "refused"),
    ]
    assert "SHA-256" in verdicts[1][2]
    assert "replay" in verdicts[3][2]
    assert "signature" in verdicts[4][2]
    # each fetch says it downloaded before it says what it made of it
    assert [s for _, s, _ in reports] == ["downloaded", "verified"] * 1 + [
        "downloaded",
        "refused",
        "downloaded",
        "verified",
        "downloaded",
        "refused",
        "downloaded",
        "refused",
    ]


async def _sql(cloud: CloudHandle, statement: str, param: object) -> None:
    """Change the SQLite store's file behind the broker's back (what an attacker could do)."""
    import sqlite3

    con = sqlite3.connect(cloud.data_dir / "cloud.db")
    try:
        con.execute(statement, (param,))
        con.commit()
    finally:
        con.close()
