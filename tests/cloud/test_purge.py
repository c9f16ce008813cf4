"""Purge entities (``DELETE /ngsi-ld/v1/entities``, v1.9.1 clause 5.6.21) on both stores.

Each test runs on SQLite and PostgreSQL: the purge is one set-based statement per store, so
the two must agree on which entities go, which attributes ``keep``/``drop`` leave, the
temporal history, and the notifications subscribers get.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from ldt.cloud.ngsild.entity_query import EntityQuery
from ldt.cloud.store import Store
from ldt.cloud.store.purge_sql import Purge
from tests.cloud.helpers import receiver
from tests.cloud.test_subscriptions import CORE, LD, subscription

API = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def _entity(n: int, etype: str = "Building", **attrs: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": f"urn:ngsi-ld:{etype}:p{n}", "type": etype}
    doc.update({k: {"type": "Property", "value": v} for k, v in attrs.items()})
    return doc


async def _create(client: httpx.AsyncClient, *docs: dict[str, Any]) -> None:
    for doc in docs:
        resp = await client.post(
            f"{API}/entities", content=orjson.dumps({**doc, "@context": CORE}), headers=LD
        )
        assert resp.status_code == 201, resp.text


async def _ids(store: Store) -> list[str]:
    page, _ = await store.entities.search(EntityQuery(), limit=100, offset=0)
    return [doc["id"] for doc in page]


def _problem(resp: httpx.Response, status: int, kind: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["type"] == ERR + kind


async def test_purge_by_type_id_pattern_and_q(client: httpx.AsyncClient, store: Store) -> None:
    await _create(
        client,
        _entity(1, name="Eiffel Tower"),
        _entity(2, name="Louvre"),
        _entity(3, name="Eiffel Tower"),
        _entity(4, "Car", name="Eiffel Tower"),
    )
    purge = f"{API}/entities"
    resp = await client.delete(purge, params={"type": "Building", "q": 'name=="Eiffel Tower"'})
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert await _ids(store) == ["urn:ngsi-ld:Building:p2", "urn:ngsi-ld:Car:p4"]
    resp = await client.delete(purge, params={"idPattern": "^urn:ngsi-ld:Car:"})
    assert resp.status_code == 204
    assert await _ids(store) == ["urn:ngsi-ld:Building:p2"]
    # nothing matches: still 204, nothing touched
    assert (await client.delete(purge, params={"type": "Nothing"})).status_code == 204
    assert (
        await client.delete(f"{purge}/", params={"id": "urn:ngsi-ld:Building:p2"})
    ).status_code == 204
    assert await _ids(store) == []


async def test_purge_every_entity_needs_local_true(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client, _entity(1, name="a"), _entity(2, "Car", name="b"))
    _problem(await client.delete(f"{API}/entities"), 400, "BadRequestData")
    _problem(
        await client.delete(f"{API}/entities", params={"local": "false"}), 400, "BadRequestData"
    )
    assert len(await _ids(store)) == 2
    assert (await client.delete(f"{API}/entities", params={"local": "true"})).status_code == 204
    assert await _ids(store) == []


async def test_bad_purge_requests_write_nothing(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client, _entity(1, name="a", height=3))
    purge = f"{API}/entities"
    bad: list[tuple[dict[str, str], str]] = [
        ({"type": "Building", "keep": "name", "drop": "height"}, "BadRequestData"),
        ({"type": "Building", "invalidParams": "x"}, "InvalidRequest"),
        ({"q": "name=="}, "BadRequestData"),
        ({"id": "not a uri"}, "BadRequestData"),
        ({"type": "Building", "drop": "id"}, "BadRequestData"),
        ({"local": "yes"}, "BadRequestData"),
    ]
    for params, kind in bad:
        _problem(await client.delete(purge, params=params), 400, kind)
    assert await _ids(store) == ["urn:ngsi-ld:Building:p1"]


async def test_purge_keep_and_drop_attributes(client: httpx.AsyncClient, store: Store) -> None:
    await _create(
        client,
        _entity(1, name="a", height=3, colour="red"),
        _entity(2, name="b", height=4),
        {
            **_entity(3),
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [2.3, 48.8]},
            },
        },
    )
    before = await store.entities.get("urn:ngsi-ld:Building:p1")
    assert before is not None
    purge = f"{API}/entities"
    resp = await client.delete(purge, params={"type": "Building", "drop": "height,location"})
    assert resp.status_code == 204, resp.text
    one = await store.entities.get("urn:ngsi-ld:Building:p1")
    assert one is not None
    assert set(one) - {"createdAt", "modifiedAt"} == {"id", "type", "name", "colour"}
    assert one["modifiedAt"] >= before["modifiedAt"]
    three = await store.entities.get("urn:ngsi-ld:Building:p3")
    assert three is not None
    assert "location" not in three
    # the location index forgot it too: a geo-query no longer finds the entity
    near = await client.get(
        f"{API}/entities",
        params={"type": "Building", "georel": "near;maxDistance==1000", "geometry": "Point",
                "coordinates": "[2.3,48.8]"},
    )  # fmt: skip
    assert near.status_code == 200
    assert near.json() == []
    resp = await client.delete(purge, params={"id": "urn:ngsi-ld:Building:p1", "keep": "name"})
    assert resp.status_code == 204
    one = await store.entities.get("urn:ngsi-ld:Building:p1")
    assert one is not None
    assert set(one) - {"createdAt", "modifiedAt"} == {"id", "type", "name"}
    two = await store.entities.get("urn:ngsi-ld:Building:p2")
    assert two is not None
    assert "name" in two


async def test_store_purge_reports_changes_and_records_history(store: Store) -> None:
    docs = [
        {"id": f"urn:x:{n}", "type": "T", "a": {"type": "Property", "value": n},
         "b": {"type": "Property", "value": -n}}
        for n in range(3)
    ]  # fmt: skip
    await store.entities.upsert(docs, replace=True)
    changes = await store.entities.purge(
        EntityQuery(ids=("urn:x:0", "urn:x:1")), Purge(drop=frozenset({"b"}))
    )
    assert sorted((old["id"], sorted(new or {})) for old, new in changes) == [
        ("urn:x:0", ["a", "id", "modifiedAt", "type"]),
        ("urn:x:1", ["a", "id", "modifiedAt", "type"]),
    ]
    # an entity the purge would not change is left out (and not rewritten)
    again = await store.entities.purge(EntityQuery(ids=("urn:x:0",)), Purge(drop=frozenset({"b"})))
    assert again == []
    gone = await store.entities.purge(EntityQuery(types="T"), Purge())
    assert sorted(old["id"] for old, new in gone if new is None) == [
        "urn:x:0",
        "urn:x:1",
        "urn:x:2",
    ]
    assert await _ids(store) == []
    temporal = await store.temporal.get("urn:x:2")
    assert temporal is not None  # the deletion is in the temporal history, as for DELETE


async def test_purge_notifies_like_delete(client: httpx.AsyncClient, store: Store) -> None:
    del store
    async with receiver() as rec:
        body = subscription(rec.url, notificationTrigger=["entityDeleted", "attributeDeleted"])
        resp = await client.post(f"{API}/subscriptions", content=orjson.dumps(body), headers=LD)
        assert resp.status_code == 201, resp.text
        await _create(client, _entity(1, name="a", height=1), _entity(2, name="b"))
        resp = await client.delete(
            f"{API}/entities", params={"id": "urn:ngsi-ld:Building:p1", "drop": "height"}
        )
        assert resp.status_code == 204
        resp = await client.delete(f"{API}/entities", params={"type": "Building"})
        assert resp.status_code == 204
        dropped, deleted = await rec.wait(2)
    (shown,) = dropped["data"]
    assert shown["height"]["value"] == "urn:ngsi-ld:null"
    assert sorted(e["id"] for e in deleted["data"]) == [
        "urn:ngsi-ld:Building:p1",
        "urn:ngsi-ld:Building:p2",
    ]
    assert all("deletedAt" in e for e in deleted["data"])
