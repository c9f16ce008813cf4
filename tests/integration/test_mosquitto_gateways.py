"""deploy/mosquitto/ldt-gateways.conf and its ACL against a real mosquitto.

Certificates come from the cloud's own CA (``CertificateAuthority``) and the
gateway's own key (``Identity``), exactly as production would have them; the test
only rewrites the file paths and the port of the shipped config.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from ldt.agent.identity import Identity
from ldt.cloud.pki.broker_files import ACL_BASE, ACL_FILE, CRL_FILE, acl_text
from ldt.cloud.pki.ca import CertificateAuthority, CsrError
from tests.gateway_mosquitto import DEPLOY, client_tls, deployed_mosquitto

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[int, CertificateAuthority]]:
    ca = CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    mqtt_dir = tmp_path / "mqtt"
    mqtt_dir.mkdir()
    (mqtt_dir / CRL_FILE).write_bytes(ca.revocation_list([], valid_for=dt.timedelta(days=1)))
    (mqtt_dir / ACL_FILE).write_text(acl_text([]))
    with deployed_mosquitto(tmp_path, ca, mqtt_dir) as (port, _proc):
        yield port, ca


def _client_tls(ca: CertificateAuthority, tmp_path: Path, name: str) -> ssl.SSLContext:
    if name == "ldt-cloud":  # the cloud's own certificate, never a gateway's
        cert, key = ca.service_client_certificate(name)
        ctx = ssl.create_default_context(cafile=str(ca.folder / "ca.pem"))
        ctx.load_cert_chain(cert, key)
        return ctx
    return client_tls(ca, tmp_path, name)


def test_the_shipped_acl_is_the_one_the_cloud_writes() -> None:
    assert (DEPLOY / "ldt-gateways.acl").read_text() == ACL_BASE


def test_no_gateway_certificate_carries_a_service_name(tmp_path: Path) -> None:
    ca = CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    identity = Identity(tmp_path / "x", "ldt-cloud")
    identity.folder.mkdir(parents=True)
    with pytest.raises(CsrError, match="cloud's services"):
        ca.issue_gateway(identity.csr(), "ldt-cloud")


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
