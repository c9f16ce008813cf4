"""Attribute writes as ETSI's suite (v1.6.1-v1.9.1) reads clauses 5.6.2-5.6.5 and 5.6.17.

NGSI-LD nulls of every kind, scope and type in append/update, and the errors of the
single-attribute endpoints. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from ldt.cloud.ngsild.entity_ops import NULL
from ldt.cloud.store import Store

API = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
EID = "urn:ngsi-ld:Building:w1"
JSON = {"Content-Type": "application/json"}
STREET = {"type": "LanguageProperty", "languageMap": {"fr": "Grand Place", "nl": "Grote Markt"}}
NULL_STREET = {"type": "LanguageProperty", "languageMap": {"@none": NULL}}


async def _send(
    client: httpx.AsyncClient, method: str, path: str, body: Any, **kw: Any
) -> httpx.Response:
    headers = dict(JSON)
    if method == "PATCH" and path == f"/entities/{EID}":
        headers["Content-Type"] = "application/merge-patch+json"
    return await client.request(
        method, API + path, content=orjson.dumps(body), headers=headers, **kw
    )


async def _create(client: httpx.AsyncClient, **attrs: Any) -> None:
    body = {"id": EID, "type": "Building", **attrs}
    assert (await _send(client, "POST", "/entities", body)).status_code == 201


async def _stored(store: Store) -> dict[str, Any]:
    doc = await store.entities.get(EID)
    assert doc is not None
    return doc


def _problem(resp: httpx.Response, status: int, kind: str | None) -> None:
    assert resp.status_code == status, resp.text
    if kind is not None:
        assert resp.json()["type"] == ERR + kind


async def test_language_property_null_deletes_it_everywhere(
    client: httpx.AsyncClient, store: Store
) -> None:
    instance = {**STREET, "datasetId": "urn:ds:1"}
    # merge entity (056_03_04)
    await _create(client, street=STREET, name={"type": "Property", "value": "n"})
    assert (
        await _send(client, "PATCH", f"/entities/{EID}", {"street": NULL_STREET})
    ).status_code == 204
    assert "street" not in await _stored(store)
    # update attributes, one datasetId instance (011_08_04)
    await _send(client, "POST", f"/entities/{EID}/attrs", {"street": [STREET, instance]})
    body = {"street": {**NULL_STREET, "datasetId": "urn:ds:1"}}
    assert (await _send(client, "PATCH", f"/entities/{EID}/attrs", body)).status_code == 204
    left = (await _stored(store))["street"]
    assert isinstance(left, dict)
    assert "datasetId" not in left
    # partial attribute update (012_05_04)
    path = f"/entities/{EID}/attrs/street"
    assert (await _send(client, "PATCH", path, NULL_STREET)).status_code == 204
    assert "street" not in await _stored(store)


async def test_list_nulls_delete_too(client: httpx.AsyncClient, store: Store) -> None:
    await _create(
        client,
        tags={"type": "ListProperty", "valueList": [1, 2]},
        links={"type": "ListRelationship", "objectList": [{"object": "urn:x:1"}]},
    )
    body = {
        "tags": {"type": "ListProperty", "valueList": [NULL]},
        "links": {"type": "ListRelationship", "objectList": [{"object": NULL}]},
    }
    assert (await _send(client, "PATCH", f"/entities/{EID}/attrs", body)).status_code == 204
    doc = await _stored(store)
    assert "tags" not in doc
    assert "links" not in doc


async def test_scope_in_append_and_update(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client, scope="/Madrid/Gardens")
    attrs = f"/entities/{EID}/attrs"
    one = {"scope": "/CompanyA/UnitC"}
    resp = await _send(client, "POST", attrs, one, params={"options": "noOverwrite"})
    assert resp.status_code == 204
    assert (await _stored(store))["scope"] == ["/Madrid/Gardens", "/CompanyA/UnitC"]
    assert (await _send(client, "POST", attrs, one)).status_code == 204  # overwrite: replaced
    assert (await _stored(store))["scope"] == "/CompanyA/UnitC"
    assert (await _send(client, "PATCH", attrs, {"scope": "/X"})).status_code == 204
    assert (await _stored(store))["scope"] == "/X"
    assert (await client.delete(f"{API}/entities/{EID}/attrs/scope")).status_code == 204
    resp = await _send(client, "PATCH", attrs, {"scope": "/Y"})  # nothing to update (011_05_02)
    assert resp.status_code == 207
    assert resp.json()["notUpdated"][0]["attributeName"] == "https://uri.etsi.org/ngsi-ld/scope"
    assert "scope" not in await _stored(store)


async def test_update_attrs_appends_types(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client)
    attrs = f"/entities/{EID}/attrs"
    assert (await _send(client, "PATCH", attrs, {"type": "Vehicle"})).status_code == 204
    assert (await _stored(store))["type"] == ["Building", "Vehicle"]
    body = {"type": ["Building", "Car"]}
    assert (await _send(client, "PATCH", attrs, body)).status_code == 204
    assert (await _stored(store))["type"] == ["Building", "Vehicle", "Car"]
    _problem(await _send(client, "PATCH", attrs, {"id": EID}), 400, "BadRequestData")


async def test_single_attribute_endpoint_errors(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client, speed={"type": "Property", "value": 5})
    before = await _stored(store)
    # a partial update keeps the attribute's type (012_02_03)
    other = {"type": "Relationship", "object": "urn:x:1"}
    path = f"/entities/{EID}/attrs/speed"
    _problem(await _send(client, "PATCH", path, other), 400, "BadRequestData")
    # scope is no attribute to replace (055_03_05)
    scope = f"/entities/{EID}/attrs/scope"
    _problem(await _send(client, "PUT", scope, {"scope": "/A"}), 400, "BadRequestData")
    # no attribute name: 405 (013_02_03), not a lookup of entity "{id}/attrs"
    for tail in ("attrs", "attrs/"):
        resp = await client.delete(f"{API}/entities/{EID}/{tail}")
        _problem(resp, 405, None)
        assert resp.headers["allow"] == "POST, PATCH"
    assert await _stored(store) == before
