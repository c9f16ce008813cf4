"""deploy/mosquitto/ldt-gateways.conf and its ACL against a real mosquitto.

Certificates come from the cloud's own CA (``CertificateAuthority``) and the
gateway's own key (``Identity``), exactly as production would have them; the test
only rewrites the file paths and the port of the shipped config.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from ldt.agent.identity import Identity
from ldt.cloud.pki.ca import CertificateAuthority
from tests.mosquitto import MOSQUITTO, free_port

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[int, CertificateAuthority]]:
    ca = CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    cert, key = ca.server_certificate(["127.0.0.1"])
    port = free_port()
    acl = tmp_path / "ldt-gateways.acl"
    acl.write_text((DEPLOY / "ldt-gateways.acl").read_text())
    conf = (DEPLOY / "ldt-gateways.conf").read_text()
    conf = (
        conf.replace("/etc/ldt/pki/ca.pem", str(tmp_path / "pki" / "ca.pem"))
        .replace("/etc/ldt/pki/server.pem", str(cert))
        .replace("/etc/ldt/pki/server.key", str(key))
        .replace("/etc/mosquitto/conf.d/ldt-gateways.acl", str(acl))
        .replace("listener 8883", f"listener {port} 127.0.0.1")
    )
    assert str(tmp_path) in conf  # every path was rewritten
    log = tmp_path / "mosquitto.log"
    (tmp_path / "mosquitto.conf").write_text(
        f"user root\npersistence false\nlog_dest file {log}\nlog_type all\n" + conf
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")])
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not start: {log.read_text() if log.exists() else ''}")
            time.sleep(0.05)
        yield port, ca
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client_tls(ca: CertificateAuthority, tmp_path: Path, name: str) -> ssl.SSLContext:
    identity = Identity(tmp_path / name, name)
    identity.folder.mkdir(parents=True, exist_ok=True)
    identity.store_certificate(ca.issue_gateway(identity.csr(), name).pem)
    ctx = ssl.create_default_context(cafile=str(ca.folder / "ca.pem"))
    ctx.load_cert_chain(identity.cert_path, identity.key_path)
    return ctx


async def _collect(client: aiomqtt.Client, into: list[str], stop: asyncio.Event) -> None:
    async for message in client.messages:
        into.append(f"{message.topic}={message.payload!r}")
        if stop.is_set():
            return


async def test_each_gateway_stays_in_its_own_subtree(
    broker: tuple[int, CertificateAuthority], tmp_path: Path
) -> None:
    port, ca = broker
    tls = {name: _client_tls(ca, tmp_path, name) for name in ("gw-1", "gw-2", "ldt-cloud")}
    seen: dict[str, list[str]] = {"gw-1": [], "ldt-cloud": []}
    stop = asyncio.Event()
    async with (
        aiomqtt.Client("127.0.0.1", port, identifier="gw-1", tls_context=tls["gw-1"]) as gw1,
        aiomqtt.Client("127.0.0.1", port, identifier="gw-2", tls_context=tls["gw-2"]) as gw2,
        aiomqtt.Client(
            "127.0.0.1", port, identifier="cloud", tls_context=tls["ldt-cloud"]
        ) as cloud,
    ):
        await gw1.subscribe("ldt/gw/gw-1/#", qos=1)
        await gw1.subscribe("ldt/gw/gw-2/#", qos=1)  # not allowed: nothing will arrive
        await cloud.subscribe("ldt/gw/#", qos=1)
        tasks = [
            asyncio.create_task(_collect(gw1, seen["gw-1"], stop)),
            asyncio.create_task(_collect(cloud, seen["ldt-cloud"], stop)),
        ]
        await gw2.publish("ldt/gw/gw-2/up", b"two", qos=1)
        await gw1.publish("ldt/gw/gw-2/cmd", b"forged", qos=1)  # dropped by the ACL
        await gw1.publish("ldt/gw/gw-1/up", b"one", qos=1)
        await asyncio.sleep(1.0)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(seen["ldt-cloud"]) == ["ldt/gw/gw-1/up=b'one'", "ldt/gw/gw-2/up=b'two'"]
    assert seen["gw-1"] == ["ldt/gw/gw-1/up=b'one'"]


async def test_clients_without_a_certificate_from_the_ca_are_refused(
    broker: tuple[int, CertificateAuthority], tmp_path: Path
) -> None:
    port, ca = broker
    bare = ssl.create_default_context(cafile=str(ca.folder / "ca.pem"))
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="anon", tls_context=bare, timeout=2
        ):
            pass
    foreign_ca = CertificateAuthority.open(tmp_path / "foreign", passphrase=b"")
    foreign = _client_tls(foreign_ca, tmp_path / "f", "gw-1")
    foreign.load_verify_locations(cafile=str(ca.folder / "ca.pem"))  # trusts the broker
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="gw-1", tls_context=foreign, timeout=2
        ):
            pass
