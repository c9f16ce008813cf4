"""Endpoint secrets are write-only and sealed at rest (issue 14, item 2): a subscription's
``receiverInfo`` values and an MQTT endpoint's credentials are never read back (the owner
and admins see ``***``), are not in the database in the clear, still reach the receiver,
and survive a PATCH that sends the mask back. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import TokenSigner
from ldt.cloud.errors import StoreError
from ldt.cloud.server import build_app
from ldt.cloud.store.base import Store
from ldt.cloud.store.database import Tx
from ldt.cloud.store.sealing import KEY_FILE, Sealer
from ldt.cloud.store.sqlite import SqliteStore
from tests.cloud.helpers import Receiver, asgi_client, receiver

API = "/ngsi-ld/v1"
HEADER_SECRET = "Bearer RECEIVER-SECRET-4711"
MQTT_PASSWORD = "MQTT-PASSWORD-0815"
MQTT_TOKEN = "MQTT-TOKEN-AS-USER"


async def _stored_text(store: Store) -> str:
    """Every subscription document as the database holds it."""
    query = f"SELECT {store.db.dialect.doc_text()} FROM subscriptions"

    async def work(tx: Tx) -> str:
        return "\n".join(str(row[0]) for row in await tx.fetchall(query, ()))

    return await store.db.read(work)


def _on_disk(store: Store) -> bytes:
    """The SQLite database's files, WAL included (b"" for PostgreSQL)."""
    if not isinstance(store, SqliteStore):
        return b""
    files = [store.path, store.path.with_name(store.path.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


@pytest.fixture
async def cloud(store: Store, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    sealer = Sealer.open(tmp_path / "pki")
    await store.subscriptions.seal_with(sealer)  # as ldt cloud serve does
    service = AccessService(store, TokenSigner.open(tmp_path / "pki"))
    await service.add_user("ada", "admin", "", "a long test password")
    await store.access.notify.allow("", "127.0.0.1")
    app = build_app(store, access=AccessControl(service), sealer=sealer)
    try:
        async with asgi_client(app) as client:
            client.headers["Authorization"] = f"Bearer {service.signer.issue('user:ada', None)}"
            yield client, store
    finally:
        await app.state.notifier.aclose()
        await app.state.tenants.aclose()


def _sub(sub_id: str, entity_type: str, endpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Subscription:{sub_id}",
        "type": "Subscription",
        "entities": [{"type": entity_type}],
        "notification": {"endpoint": endpoint},
    }


THING = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "p": {"type": "Property", "value": 0}}


async def _touch(client: httpx.AsyncClient, value: int) -> None:
    patch = {"p": {"type": "Property", "value": value}}
    resp = await client.patch(f"{API}/entities/{THING['id']}/attrs", json=patch)
    assert resp.status_code == 204, resp.text


async def _header_of_next(rec: Receiver, n: int) -> str:
    await rec.wait(n)
    return rec.received[n - 1][0]["authorization"]


async def test_endpoint_secrets_are_write_only_and_sealed(
    cloud: tuple[httpx.AsyncClient, Store],
) -> None:
    client, store = cloud
    assert (await client.post(f"{API}/entities", json=THING)).status_code == 201
    async with receiver() as rec:
        http_sub = _sub("http", "Thing", {
            "uri": rec.url,
            "receiverInfo": [{"key": "Authorization", "value": HEADER_SECRET}],
        })  # fmt: skip
        mqtt_sub = _sub("mqtt", "Pump", {"uri": f"mqtt://bob:{MQTT_PASSWORD}@127.0.0.1:1883/t"})
        token_sub = _sub("token", "Pump", {"uri": f"mqtts://{MQTT_TOKEN}@127.0.0.1:8883/t"})
        for body in (http_sub, mqtt_sub, token_sub):
            resp = await client.post(f"{API}/subscriptions", json=body)
            assert resp.status_code == 201, resp.text

        # never read back, not even by an admin; listed or one by one
        listed = (await client.get(f"{API}/subscriptions")).text
        for secret in (HEADER_SECRET, MQTT_PASSWORD, MQTT_TOKEN):
            assert secret not in listed
        one = (await client.get(f"{API}/subscriptions/{http_sub['id']}")).json()
        assert one["notification"]["endpoint"]["receiverInfo"] == [
            {"key": "Authorization", "value": "***"}
        ]
        mqtt = (await client.get(f"{API}/subscriptions/{mqtt_sub['id']}")).json()
        assert mqtt["notification"]["endpoint"]["uri"] == "mqtt://bob:***@127.0.0.1:1883/t"

        # not in the database in the clear (nor, on SQLite, anywhere in its files)
        stored = await _stored_text(store)
        assert "sealed:v1:" in stored
        for secret in (HEADER_SECRET, MQTT_PASSWORD, MQTT_TOKEN):
            assert secret not in stored
            assert secret.encode() not in _on_disk(store)

        # the receiver still gets the real header
        await _touch(client, 1)
        assert await _header_of_next(rec, 1) == HEADER_SECRET

        # what a client read, changed and sent back keeps the secret it could not see
        one["q"] = "p>0"
        for member in ("id", "type", "status", "createdAt", "modifiedAt"):
            one.pop(member, None)
        resp = await client.patch(f"{API}/subscriptions/{http_sub['id']}", json=one)
        assert resp.status_code == 204, resp.text
        await _touch(client, 2)
        assert await _header_of_next(rec, 2) == HEADER_SECRET

        # and a new value replaces it
        one["notification"]["endpoint"]["receiverInfo"] = [
            {"key": "Authorization", "value": "Bearer NEW"}
        ]
        resp = await client.patch(f"{API}/subscriptions/{http_sub['id']}", json=one)
        assert resp.status_code == 204, resp.text
        await _touch(client, 3)
        assert await _header_of_next(rec, 3) == "Bearer NEW"


async def test_plaintext_subscriptions_are_sealed_when_a_sealer_comes(
    store: Store, tmp_path: Path
) -> None:
    """A database written before sealing (or by a tool without the key) is sealed at start."""
    doc = _sub("old", "Thing", {
        "uri": "http://127.0.0.1:9/n",
        "receiverInfo": [{"key": "X-Key", "value": HEADER_SECRET}],
    })  # fmt: skip
    assert await store.subscriptions.create(doc)
    assert HEADER_SECRET in await _stored_text(store)
    sealer = Sealer.open(tmp_path / "pki")
    assert await store.subscriptions.seal_with(sealer) == 1
    assert await store.subscriptions.seal_with(sealer) == 0
    assert HEADER_SECRET not in await _stored_text(store)
    record = await store.subscriptions.get(doc["id"])
    assert record is not None
    assert record.doc["notification"]["endpoint"]["receiverInfo"][0]["value"] == HEADER_SECRET
    # a store without the key refuses to hand out what it cannot open
    store.subscriptions.sealer = None
    with pytest.raises(StoreError, match="sealed secrets"):
        await store.subscriptions.get(doc["id"])


def test_a_sealed_value_opens_only_where_it_belongs(tmp_path: Path) -> None:
    sealer = Sealer.open(tmp_path / "pki")
    assert (tmp_path / "pki" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    sealed = sealer.seal("s3cret", bound_to="urn:a receiverInfo K")
    assert sealer.unseal(sealed, bound_to="urn:a receiverInfo K") == "s3cret"
    with pytest.raises(StoreError, match="damaged"):  # copied into another subscription
        sealer.unseal(sealed, bound_to="urn:b receiverInfo K")
    other = Sealer.open(tmp_path / "other-pki")
    with pytest.raises(StoreError, match=f"must share DATA/pki/{KEY_FILE}"):
        other.unseal(sealed, bound_to="urn:a receiverInfo K")
    assert Sealer.open(tmp_path / "pki").unseal(sealed, bound_to="urn:a receiverInfo K")
