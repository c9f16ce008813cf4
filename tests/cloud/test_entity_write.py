"""NGSI-LD entity writes (v1.9 5.6): every endpoint's success and error paths, JSON-LD names."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ldt.cloud.ngsild.entity_ops import NULL, present
from ldt.cloud.ngsild.jsonld import DEFAULT_VOCAB, ActiveContext, core_context
from ldt.cloud.ngsild.media import CORE_CONTEXT
from ldt.cloud.ngsild.routes_entities import MAX_ENTITY_BYTES
from ldt.cloud.store import Store
from ldt.contract import INGEST_PATH
from tests.cloud.batches import T0, batch, encode
from tests.cloud.conftest import AddGateway

API = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
EID = "urn:ngsi-ld:Sensor:001"
JSON = {"Content-Type": "application/json"}
LD = {"Content-Type": "application/ld+json"}
CTX_A = {"temperature": "https://a.example/ns#temperature", "Sensor": "https://a.example/ns#Sensor"}
CTX_B = {"temperature": "https://b.example/ns#temperature"}


def _entity(**attrs: Any) -> dict[str, Any]:
    return {
        "id": EID,
        "type": "Sensor",
        "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL"},
        **attrs,
    }


async def _send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> httpx.Response:
    return await client.request(
        method,
        API + path,
        content=body if isinstance(body, bytes) else orjson.dumps(body),
        headers=headers or JSON,
        **kw,
    )


def _problem(resp: httpx.Response, status: int, kind: str | None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["type"] == ("about:blank" if kind is None else ERR + kind)
    assert body["status"] == status
    assert body["detail"]
    return body


async def _stored(store: Store, entity_id: str = EID) -> dict[str, Any]:
    doc = await store.entities.get(entity_id)
    assert doc is not None
    return doc


async def _create(client: httpx.AsyncClient, entity: dict[str, Any] | None = None) -> None:
    resp = await _send(client, "POST", "/entities", entity or _entity())
    assert resp.status_code == 201, resp.text


async def _host_context(client: httpx.AsyncClient, context: dict[str, Any]) -> str:
    """Host ``context`` on the broker; its URL for a Link header."""
    resp = await client.post(f"{API}/jsonldContexts", json={"@context": context})
    assert resp.status_code == 201, resp.text
    return "http://cloud.test" + resp.headers["location"]


def _link(url: str) -> dict[str, str]:
    return {
        **JSON,
        "Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"',
    }


# --- POST /entities ------------------------------------------------------------------------


async def test_create_is_201_with_location_and_served(
    client: httpx.AsyncClient, store: Store
) -> None:
    resp = await _send(client, "POST", "/entities", _entity())
    assert resp.status_code == 201
    assert resp.headers["location"] == f"{API}/entities/{EID}"
    got = await client.get(f"{API}/entities/{EID}")
    assert got.json() == _entity()
    doc = await _stored(store)
    assert doc["createdAt"] == doc["modifiedAt"] == doc["temperature"]["createdAt"]


async def test_create_with_trailing_slash(client: httpx.AsyncClient, store: Store) -> None:
    resp = await _send(client, "POST", "/entities/", _entity())
    assert resp.status_code == 201, resp.text
    assert await store.entities.get(EID) is not None


async def test_create_twice_is_409(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client)
    before = await _stored(store)
    resp = await _send(client, "POST", "/entities", _entity(humidity=40))
    _problem(resp, 409, "AlreadyExists")
    assert await _stored(store) == before


async def test_concise_attributes_are_normalized(client: httpx.AsyncClient, store: Store) -> None:
    body = {
        "id": EID,
        "type": "Sensor",
        "name": "north",
        "owner": {"object": "urn:ngsi-ld:Person:1"},
        "location": {"type": "Point", "coordinates": [2.35, 48.85]},
        "address": {"street": "Rue X"},
    }
    await _create(client, body)
    doc = present(await _stored(store), core_context())
    assert doc == {
        "id": EID,
        "type": "Sensor",
        "name": {"type": "Property", "value": "north"},
        "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [2.35, 48.85]},
        },
        "address": {"type": "Property", "value": {"street": "Rue X"}},
    }


@pytest.mark.parametrize(
    "body",
    [
        {"id": EID},
        {"id": "not a uri", "type": "Sensor"},
        {"type": "Sensor"},
        {"id": EID, "type": "Sensor", "t": None},
        {"id": EID, "type": "Sensor", "t": {"type": "Property"}},
        {"id": EID, "type": "Sensor", "t": {"type": "Weird", "value": 1}},
        {"id": EID, "type": "Sensor", "r": {"type": "Relationship", "object": "x"}},
        {"id": EID, "type": "Sensor", "t": {"type": "Property", "value": 1, "datasetId": "x"}},
        {"id": EID, "type": "Sensor", "t": {"value": 1, "observedAt": "yesterday"}},
        {"id": EID, "type": "Sensor", "location": {"type": "GeoProperty", "value": [1, 2]}},
        {"id": EID, "type": "Sensor", "bad name": {"type": "Property", "value": 1}},
        {"id": EID, "type": ["Sensor", 3]},
        {"id": EID, "type": "type"},
    ],
)
async def test_invalid_entity_is_400_and_stores_nothing(
    client: httpx.AsyncClient, store: Store, body: Any
) -> None:
    _problem(await _send(client, "POST", "/entities", body), 400, "BadRequestData")
    assert await store.entities.get(EID) is None


async def test_invalid_json_is_400_invalid_request(client: httpx.AsyncClient) -> None:
    _problem(await _send(client, "POST", "/entities", b'{"id": '), 400, "InvalidRequest")
    _problem(await _send(client, "POST", "/entities", []), 400, "InvalidRequest")


async def test_oversized_body_is_413(client: httpx.AsyncClient, store: Store) -> None:
    big = _entity(blob={"type": "Property", "value": "x" * MAX_ENTITY_BYTES})
    _problem(await _send(client, "POST", "/entities", big), 413, None)
    assert await store.entities.get(EID) is None


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", ""])
async def test_wrong_content_type_is_415(client: httpx.AsyncClient, ctype: str) -> None:
    resp = await _send(client, "POST", "/entities", _entity(), {"Content-Type": ctype})
    _problem(resp, 415, None)


async def test_merge_patch_type_is_only_for_merge(client: httpx.AsyncClient) -> None:
    await _create(client)
    mp = {"Content-Type": "application/merge-patch+json"}
    _problem(await _send(client, "POST", "/entities", _entity(), mp), 415, None)
    _problem(await _send(client, "PATCH", f"/entities/{EID}/attrs", {"t": 1}, mp), 415, None)
    resp = await _send(client, "PATCH", f"/entities/{EID}", {"temperature": 3}, mp)
    assert resp.status_code == 204, resp.text


# --- JSON-LD -------------------------------------------------------------------------------


async def test_context_from_body_expands_names(client: httpx.AsyncClient, store: Store) -> None:
    body = {**_entity(), "@context": [CTX_A, CORE_CONTEXT]}
    assert (await _send(client, "POST", "/entities", body, LD)).status_code == 201
    doc = await _stored(store)
    assert doc["type"] == "https://a.example/ns#Sensor"
    assert "https://a.example/ns#temperature" in doc
    assert "temperature" not in doc
    ctx = ActiveContext.build([CTX_A])
    assert present(doc, ctx) == _entity()


async def test_context_from_link_header(client: httpx.AsyncClient, store: Store) -> None:
    url = await _host_context(client, CTX_B)
    assert (await _send(client, "POST", "/entities", _entity(), _link(url))).status_code == 201
    doc = await _stored(store)
    assert doc["type"] == "Sensor"  # not in CTX_B: the default vocab, stored short
    assert "https://b.example/ns#temperature" in doc


async def test_same_short_name_in_two_contexts_is_two_attributes(
    client: httpx.AsyncClient, store: Store
) -> None:
    await _create(client)  # core context: temperature is the default-vocab one
    url = await _host_context(client, CTX_B)
    patch = {"temperature": {"type": "Property", "value": -4}}
    resp = await _send(client, "POST", f"/entities/{EID}/attrs", patch, _link(url))
    assert resp.status_code == 204, resp.text
    doc = await _stored(store)
    assert doc["temperature"]["value"] == 21.5
    assert doc["https://b.example/ns#temperature"]["value"] == -4
    full = present(doc, core_context())
    assert full["https://b.example/ns#temperature"]["value"] == -4
    assert DEFAULT_VOCAB + "temperature" not in full


async def test_context_placement_errors_are_400(client: httpx.AsyncClient) -> None:
    url = await _host_context(client, CTX_B)
    with_ctx = {**_entity(), "@context": CORE_CONTEXT}
    _problem(await _send(client, "POST", "/entities", with_ctx), 400, "BadRequestData")
    _problem(await _send(client, "POST", "/entities", _entity(), LD), 400, "BadRequestData")
    both = {**LD, "Link": _link(url)["Link"]}
    _problem(await _send(client, "POST", "/entities", with_ctx, both), 400, "BadRequestData")


async def test_unknown_context_without_network_is_503(
    client: httpx.AsyncClient, store: Store
) -> None:
    url = "https://nowhere.example/ctx.jsonld"
    body = {**_entity(), "@context": url}
    _problem(await _send(client, "POST", "/entities", body, LD), 503, "LdContextNotAvailable")
    _problem(
        await _send(client, "POST", "/entities", _entity(), _link(url)),
        503,
        "LdContextNotAvailable",
    )
    assert await store.entities.get(EID) is None


# --- DELETE / PUT / PATCH /entities/{id} ---------------------------------------------------


async def test_delete_entity(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client)
    assert (await client.delete(f"{API}/entities/{EID}")).status_code == 204
    assert await store.entities.get(EID) is None
    _problem(await client.delete(f"{API}/entities/{EID}"), 404, "ResourceNotFound")
    _problem(await client.delete(f"{API}/entities/not-a-uri"), 400, "BadRequestData")


async def test_replace_entity_keeps_created_at(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client, _entity(humidity=40))
    before = await _stored(store)
    new = {"type": "Room", "pressure": {"type": "Property", "value": 1013}}
    assert (await _send(client, "PUT", f"/entities/{EID}", new)).status_code == 204
    doc = await _stored(store)
    assert present(doc, core_context()) == {"id": EID, **new}
    assert doc["createdAt"] == before["createdAt"]
    assert doc["modifiedAt"] >= before["modifiedAt"]
    _problem(await _send(client, "PUT", "/entities/urn:x:none", new), 404, "ResourceNotFound")
    other = {**new, "id": "urn:x:other"}
    _problem(await _send(client, "PUT", f"/entities/{EID}", other), 400, "BadRequestData")
    _problem(await _send(client, "PUT", f"/entities/{EID}", {"pressure": 1}), 400, "BadRequestData")


async def test_merge_entity(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client, _entity(humidity=40, name="x"))
    patch = {
        "temperature": {"value": 19},
        "humidity": "urn:ngsi-ld:null",
        "colour": "red",
        "type": "Thermometer",
    }
    assert (await _send(client, "PATCH", f"/entities/{EID}", patch)).status_code == 204
    doc = present(await _stored(store), core_context())
    assert doc == {
        "id": EID,
        "type": ["Sensor", "Thermometer"],
        "temperature": {"type": "Property", "value": 19, "unitCode": "CEL"},
        "name": {"type": "Property", "value": "x"},
        "colour": {"type": "Property", "value": "red"},
    }
    _problem(await _send(client, "PATCH", "/entities/urn:x:none", patch), 404, "ResourceNotFound")


# --- /entities/{id}/attrs -----------------------------------------------------------------------


async def test_append_attrs_and_no_overwrite(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client)
    path = f"/entities/{EID}/attrs"
    first = {"humidity": {"type": "Property", "value": 40}}
    assert (await _send(client, "POST", path, first)).status_code == 204
    again = {"humidity": {"type": "Property", "value": 99}, "co2": {"type": "Property", "value": 3}}
    resp = await _send(client, "POST", path, again, params={"options": "noOverwrite"})
    assert resp.status_code == 207
    assert resp.json() == {  # names are expanded IRIs (suite case 010_04_01)
        "updated": [f"{DEFAULT_VOCAB}co2"],
        "notUpdated": [
            {
                "attributeName": f"{DEFAULT_VOCAB}humidity",
                "reason": "attribute exists and noOverwrite was given",
            }
        ],
    }
    doc = await _stored(store)
    assert doc["humidity"]["value"] == 40
    assert doc["co2"]["value"] == 3
    assert (await _send(client, "POST", path, again)).status_code == 204
    assert (await _stored(store))["humidity"]["value"] == 99
    resp = await _send(client, "POST", path, first, params={"options": "bogus"})
    _problem(resp, 400, "BadRequestData")
    _problem(
        await _send(client, "POST", "/entities/urn:x:none/attrs", first), 404, "ResourceNotFound"
    )
    _problem(await _send(client, "POST", path, {}), 400, "BadRequestData")
    assert (await _send(client, "POST", path + "/", {"co2": 4})).status_code == 204
    _problem(await _send(client, "POST", "/entities//attrs/", first), 400, "BadRequestData")


async def test_update_attrs_replaces_and_adds(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client)
    before = await _stored(store)
    path = f"/entities/{EID}/attrs"
    body = {"temperature": {"type": "Property", "value": 30}}
    assert (await _send(client, "PATCH", path, body)).status_code == 204
    doc = await _stored(store)
    assert doc["temperature"]["value"] == 30
    assert doc["temperature"]["createdAt"] == before["temperature"]["createdAt"]
    # an attribute the entity lacks is added (suite cases 011_01_03, 046_23, 046_41)
    added = {"extra": {"type": "Property", "value": 1}}
    assert (await _send(client, "PATCH", path, added)).status_code == 204
    assert (await _stored(store))["extra"]["value"] == 1
    # the NGSI-LD null of something absent deletes nothing: reported as not updated
    resp = await _send(client, "PATCH", path, {"missing": {"type": "Property", "value": NULL}})
    assert resp.status_code == 207
    assert resp.json()["notUpdated"][0]["attributeName"] == f"{DEFAULT_VOCAB}missing"
    assert "missing" not in await _stored(store)
    _problem(
        await _send(client, "PATCH", "/entities/urn:x:none/attrs", body), 404, "ResourceNotFound"
    )


async def test_partial_attribute_update(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client)
    path = f"/entities/{EID}/attrs/temperature"
    assert (await _send(client, "PATCH", path, {"value": 25})).status_code == 204
    attr = present(await _stored(store), core_context())["temperature"]
    assert attr == {"type": "Property", "value": 25, "unitCode": "CEL"}
    _problem(
        await _send(client, "PATCH", f"/entities/{EID}/attrs/nope", {"value": 1}),
        404,
        "ResourceNotFound",
    )
    _problem(await _send(client, "PATCH", path, {"value": None}), 400, "BadRequestData")


async def test_replace_attribute(client: httpx.AsyncClient, store: Store) -> None:
    await _create(client)
    path = f"/entities/{EID}/attrs/temperature"
    new = {"type": "Property", "value": 7}
    assert (await _send(client, "PUT", path, new)).status_code == 204
    assert present(await _stored(store), core_context())["temperature"] == new
    _problem(
        await _send(client, "PUT", f"/entities/{EID}/attrs/nope", new), 404, "ResourceNotFound"
    )
    _problem(await _send(client, "PUT", path, {"type": "Property"}), 400, "BadRequestData")


async def test_delete_attribute_by_dataset(client: httpx.AsyncClient, store: Store) -> None:
    speeds = [
        {"type": "Property", "value": 1},
        {"type": "Property", "value": 2, "datasetId": "urn:ds:gps"},
        {"type": "Property", "value": 3, "datasetId": "urn:ds:radar"},
    ]
    await _create(client, _entity(speed=speeds))
    path = f"{API}/entities/{EID}/attrs/speed"
    assert (await client.delete(path, params={"datasetId": "urn:ds:gps"})).status_code == 204
    left = present(await _stored(store), core_context())["speed"]
    assert [i["value"] for i in left] == [1, 3]
    _problem(await client.delete(path, params={"datasetId": "urn:ds:gps"}), 404, "ResourceNotFound")
    assert (await client.delete(path)).status_code == 204  # the default instance
    assert present(await _stored(store), core_context())["speed"]["value"] == 3
    assert (await client.delete(path, params={"deleteAll": "true"})).status_code == 204
    assert "speed" not in await _stored(store)
    _problem(await client.delete(path), 404, "ResourceNotFound")
    _problem(await client.delete(path, params={"deleteAll": "yes"}), 400, "BadRequestData")
    _problem(await client.delete(path, params={"datasetId": "nope"}), 400, "BadRequestData")


async def test_sys_attrs_are_hidden_from_reads(client: httpx.AsyncClient) -> None:
    await _create(client)
    got = (await client.get(f"{API}/entities/{EID}")).json()
    assert "createdAt" not in got
    assert "createdAt" not in got["temperature"]


async def test_api_writes_keep_the_gateway_owner(
    client: httpx.AsyncClient, store: Store, gw1_token: str, add_gateway: AddGateway
) -> None:
    def send(token: str, gw: str, seq: int) -> Any:
        return client.post(
            INGEST_PATH,
            content=encode(
                batch(
                    gw,
                    [[seq, 0, T0 + seq, 1.0, "good", None]],
                    series_map={
                        "0": {
                            "entity_id": "urn:ngsi-ld:Device:gw-1:m0",
                            "entity_type": "Device",
                            "attr": "activePower",
                            "unit": "WTT",
                        }
                    },
                )
            ),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

    assert (await send(gw1_token, "gw-1", 1)).status_code == 200
    device = "urn:ngsi-ld:Device:gw-1:m0"
    resp = await _send(client, "POST", f"/entities/{device}/attrs", {"note": "kitchen"})
    assert resp.status_code == 204
    assert (await send(gw1_token, "gw-1", 2)).status_code == 200
    gw2 = await add_gateway("gw-2")
    assert (await send(gw2, "gw-2", 1)).status_code == 403
    doc = await _stored(store, device)
    assert doc["note"]["value"] == "kitchen"
    assert doc["activePower"]["value"] == 1.0
