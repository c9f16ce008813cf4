"""Behind a real HAProxy (issue 14, item 10), with the shipped ``deploy/haproxy/`` config:
gateways provision and sync through TCP passthrough with their own mutual TLS, people
and services come through HTTP with the proxy's public certificate, access control still
holds, and the address the cloud throttles and logs sign-ins by is the client's as the
proxy saw it; an ``X-Forwarded-For`` the client made up counts for nothing.

The client binds 127.0.0.2 so that it is not the proxy (127.0.0.1, the only address the
cloud trusts with ``--trusted-proxy``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ldt.agent.identity import Identity, provision
from ldt.agent.transport import MutualTlsTransport
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.server import PKI_DIRNAME, running_cloud
from tests.cloud.batches import batch, encode, good_rows
from tests.mosquitto import TestCa, free_port

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "ldt-cloud.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CLIENT_ADDRESS = "127.0.0.2"
PASSTHROUGH_SOURCE = "127.0.0.3"  # the shipped config's source for gateway passthrough
GW = "gw-proxied"


@contextlib.contextmanager
def haproxy(tmp_path: Path, cloud_port: int, ca_file: Path) -> Iterator[tuple[int, int, Path]]:
    """The shipped config on free loopback ports: (gateways port, people port, public CA)."""
    if not Path(HAPROXY).exists():
        if os.environ.get("CI"):
            pytest.fail("haproxy is not installed: scripts/bootstrap installs it")
        pytest.skip("haproxy is not installed")
    public = TestCa("city public CA")
    crt, key = public.issue(tmp_path, "public", dns=("localhost",))
    (tmp_path / "public.pem").write_bytes(crt.read_bytes() + key.read_bytes())
    gateways, people = free_port(), free_port()
    text = (
        CONFIG.read_text()
        .replace("bind :9443", f"bind 127.0.0.1:{gateways}")
        .replace("bind :443 ssl", f"bind 127.0.0.1:{people} ssl")
        .replace("/etc/ldt/haproxy/twin.example.org.pem", str(tmp_path / "public.pem"))
        .replace("/etc/ldt/pki/ca.pem", str(ca_file))
        .replace("127.0.0.1:8443", f"127.0.0.1:{cloud_port}")
        .replace("twin.example.org", "localhost")
    )
    (tmp_path / "haproxy.cfg").write_text(text)
    proc = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(tmp_path / "haproxy.cfg")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        for port in (gateways, people):
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    out, _ = proc.communicate(timeout=10)
                    pytest.fail(f"haproxy did not start: {out.decode()}")
                time.sleep(0.05)
        yield gateways, people, public.write_ca(tmp_path / "public-ca.pem")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


async def test_gateways_and_people_through_haproxy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_cloud(
        tmp_path / "cloud", "127.0.0.1", 0, tls_hosts=["127.0.0.1", "localhost"],
        trusted_proxies=["127.0.0.1"],
    ) as cloud:  # fmt: skip
        cloud_port = int(cloud.url.rsplit(":", 1)[1])
        ca_file = cloud.data_dir / PKI_DIRNAME / "ca.pem"
        with haproxy(tmp_path, cloud_port, ca_file) as (gateways, people, public_ca):
            # a gateway: provisioned and syncing through the passthrough, its own mTLS
            pki = Provisioner(cloud.store, CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME))
            identity = Identity(tmp_path / "agent" / "identity", GW)
            via = f"https://127.0.0.1:{gateways}"
            await provision(via, await pki.create_claim("depot", 600), identity)
            transport = MutualTlsTransport(base_url=via, identity=identity, timeout_s=10)
            try:
                assert (await transport.send(encode(batch(GW, good_rows(1, 5))))).accepted == 5
            finally:
                await transport.aclose()
            assert await cloud.store.readings.count(GW) == 5

            # people: the proxy's public certificate, the cloud's access control behind it
            trust = ssl.create_default_context(cafile=str(public_ca))
            local = httpx.AsyncHTTPTransport(local_address=CLIENT_ADDRESS, verify=trust)
            async with httpx.AsyncClient(
                transport=local, base_url=f"https://localhost:{people}"
            ) as client:
                anonymous = await client.get("/ngsi-ld/v1/entities?type=Thing")
                assert anonymous.status_code == 401
                caplog.clear()
                with caplog.at_level(logging.WARNING, logger="ldt.cloud.access"):
                    form = {"grant_type": "password", "username": "nobody",
                            "password": "wrong password, long"}  # fmt: skip
                    resp = await client.post(
                        "/auth/token", data=form, headers={"X-Forwarded-For": "203.0.113.9"}
                    )
                assert resp.status_code == 400
                (refused,) = [r for r in caplog.records if r.getMessage() == "sign-in refused"]
                assert refused.__dict__["address"] == CLIENT_ADDRESS  # not the made-up one

            # the passthrough's connections come from an address the cloud does not trust:
            # a made-up X-Forwarded-For sent through it is not believed either
            trust = ssl.create_default_context(cafile=str(ca_file))
            local = httpx.AsyncHTTPTransport(local_address=CLIENT_ADDRESS, verify=trust)
            async with httpx.AsyncClient(transport=local, base_url=via) as client:
                caplog.clear()
                with caplog.at_level(logging.WARNING, logger="ldt.cloud.access"):
                    resp = await client.post(
                        "/auth/token", data=form, headers={"X-Forwarded-For": "203.0.113.9"}
                    )
                assert resp.status_code == 400
                (refused,) = [r for r in caplog.records if r.getMessage() == "sign-in refused"]
                assert refused.__dict__["address"] == PASSTHROUGH_SOURCE
