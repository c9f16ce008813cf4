"""Scoped grants hold everywhere: writes, single reads, queries, listings, batches,
temporal reads and subscriptions' notifications. On SQLite and PostgreSQL.

The water department's operator writes only ``PumpingStation`` entities; district 3's
viewer reads only ``urn:ngsi-ld:Device:district-3:...``; an admin does the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import TokenSigner
from ldt.cloud.server import build_app
from ldt.cloud.store.base import Store
from tests.cloud.helpers import asgi_client, receiver

API = "/ngsi-ld/v1"
DISTRICT_3 = "urn:ngsi-ld:Device:district-3:"
PASSWORD = "a long test password"


def device(district: int, n: int, value: float = 1.0) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Device:district-{district}:{n}",
        "type": "Device",
        "temperature": {"type": "Property", "value": value},
    }


def station(n: int, value: float = 1.0) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:PumpingStation:{n}",
        "type": "PumpingStation",
        "flow": {"type": "Property", "value": value},
    }


class People:
    """Headers of an admin, a scoped operator and a scoped viewer."""

    def __init__(self, service: AccessService) -> None:
        self.service = service
        self.headers: dict[str, dict[str, str]] = {}

    async def add(self, name: str, role: str, **scope: Any) -> None:
        await self.service.add_user(name, "viewer", "", PASSWORD)
        await self.service.revoke_grant(f"user:{name}", "")
        await self.service.grant(f"user:{name}", role, "", **scope)
        token = self.service.signer.issue(f"user:{name}", None)
        self.headers[name] = {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def secured(store: Store, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, People]]:
    service = AccessService(store, TokenSigner.open(tmp_path / "pki"))
    app = build_app(store, access=AccessControl(service))
    people = People(service)
    await store.access.notify.allow("", "127.0.0.1")  # the test's receivers are on loopback
    await people.add("ada", "admin")
    await people.add("otto", "operator", types=["PumpingStation"])
    await people.add("vic", "viewer", id_prefix=DISTRICT_3)
    try:
        async with asgi_client(app) as client:
            admin = people.headers["ada"]
            for doc in (device(3, 1), device(3, 2), device(4, 1), station(1)):
                resp = await client.post(f"{API}/entities", json=doc, headers=admin)
                assert resp.status_code == 201, resp.text
            yield client, people
    finally:
        await app.state.notifier.aclose()
        await app.state.tenants.aclose()


async def test_a_scoped_operator_writes_only_inside_the_scope(
    secured: tuple[httpx.AsyncClient, People],
) -> None:
    client, people = secured
    otto = people.headers["otto"]
    resp = await client.post(f"{API}/entities", json=station(2), headers=otto)
    assert resp.status_code == 201, resp.text
    resp = await client.post(f"{API}/entities", json=device(3, 9), headers=otto)
    assert resp.status_code == 403
    resp = await client.patch(
        f"{API}/entities/{device(4, 1)['id']}/attrs",
        json={"temperature": {"type": "Property", "value": 99}},
        headers=otto,
    )
    assert resp.status_code == 403
    resp = await client.delete(f"{API}/entities/{device(4, 1)['id']}", headers=otto)
    assert resp.status_code == 403
    # a write may not carry an entity out of the scope either
    moved = {**station(1), "type": "Device"}
    resp = await client.put(f"{API}/entities/{station(1)['id']}", json=moved, headers=otto)
    assert resp.status_code in (403, 400), resp.text
    # batches report each refused entity and write the others
    resp = await client.post(
        f"{API}/entityOperations/upsert", json=[station(3), device(3, 8)], headers=otto
    )
    assert resp.status_code == 207, resp.text
    result = resp.json()
    assert result["success"] == [station(3)["id"]]
    assert [e["entityId"] for e in result["errors"]] == [device(3, 8)["id"]]
    assert result["errors"][0]["error"]["status"] == 403
    admin = people.headers["ada"]
    left = (await client.get(f"{API}/entities/{device(4, 1)['id']}", headers=admin)).json()
    assert left["temperature"]["value"] == 1.0
    for missing in (device(3, 9), device(3, 8)):
        resp = await client.get(f"{API}/entities/{missing['id']}", headers=admin)
        assert resp.status_code == 404
    # temporal writes too
    resp = await client.post(
        f"{API}/temporal/entities",
        json={**device(3, 1), "temperature": [{"type": "Property", "value": 5,
                                               "observedAt": "2026-12-01T00:00:00Z"}]},
        headers=otto,
    )  # fmt: skip
    assert resp.status_code == 403


async def test_a_scoped_viewer_sees_only_its_entities(
    secured: tuple[httpx.AsyncClient, People],
) -> None:
    client, people = secured
    vic = people.headers["vic"]
    resp = await client.get(
        f"{API}/entities", params={"type": "Device", "count": "true"}, headers=vic
    )
    assert resp.status_code == 200
    assert sorted(e["id"] for e in resp.json()) == [device(3, 1)["id"], device(3, 2)["id"]]
    assert resp.headers["NGSILD-Results-Count"] == "2"
    resp = await client.get(f"{API}/entities", params={"q": "temperature>0"}, headers=vic)
    assert sorted(e["id"] for e in resp.json()) == [device(3, 1)["id"], device(3, 2)["id"]]
    resp = await client.post(
        f"{API}/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "Device"}, {"type": "PumpingStation"}]},
        headers=vic,
    )
    assert sorted(e["id"] for e in resp.json()) == [device(3, 1)["id"], device(3, 2)["id"]]
    resp = await client.get(f"{API}/entities/{device(4, 1)['id']}", headers=vic)
    assert resp.status_code == 403
    resp = await client.get(f"{API}/entities/{device(3, 1)['id']}", headers=vic)
    assert resp.status_code == 200
    types = (await client.get(f"{API}/types", headers=vic)).json()["typeList"]
    assert types == ["Device"]  # not PumpingStation
    attrs = (await client.get(f"{API}/attributes", headers=vic)).json()["attributeList"]
    assert attrs == ["temperature"]  # not flow
    resp = await client.post(f"{API}/entities", json=device(3, 7), headers=vic)
    assert resp.status_code == 403  # a viewer writes nothing


async def test_temporal_reads_follow_the_scope(secured: tuple[httpx.AsyncClient, People]) -> None:
    client, people = secured
    vic = people.headers["vic"]
    resp = await client.get(f"{API}/temporal/entities", params={"type": "Device"}, headers=vic)
    assert resp.status_code == 200, resp.text
    assert sorted(e["id"] for e in resp.json()) == [device(3, 1)["id"], device(3, 2)["id"]]
    resp = await client.get(f"{API}/temporal/entities/{device(4, 1)['id']}", headers=vic)
    assert resp.status_code == 403
    resp = await client.get(f"{API}/temporal/entities/{device(3, 1)['id']}", headers=vic)
    assert resp.status_code == 200


async def test_notifications_carry_only_what_the_owner_may_read(
    secured: tuple[httpx.AsyncClient, People],
) -> None:
    client, people = secured
    otto, admin = people.headers["otto"], people.headers["ada"]
    async with receiver() as rec:
        subscription = {
            "id": "urn:ngsi-ld:Subscription:water",
            "type": "Subscription",
            "entities": [{"type": "Device"}, {"type": "PumpingStation"}],
            "notification": {"endpoint": {"uri": rec.url, "accept": "application/json"}},
        }
        resp = await client.post(f"{API}/subscriptions", json=subscription, headers=otto)
        assert resp.status_code == 201, resp.text
        for doc in (device(3, 1, 5.0), station(1, 7.0)):
            attr = "temperature" if doc["type"] == "Device" else "flow"
            resp = await client.patch(
                f"{API}/entities/{doc['id']}/attrs", json={attr: doc[attr]}, headers=admin
            )
            assert resp.status_code == 204, resp.text
        (note,) = await rec.wait(1)
        await asyncio.sleep(0.3)
        assert len(rec.received) == 1  # the Device's change was not notified
    assert [e["id"] for e in note["data"]] == [station(1)["id"]]
