"""The NGSI-LD API: retrieval, query, batch upsert, media types and every error path."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ldt.cloud.ngsild.media import CORE_CONTEXT, LINK_HEADER
from ldt.cloud.store import SqliteStore

API = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def _entity(n: int, etype: str = "Sensor", **attrs: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{etype}:{n:03d}",
        "type": etype,
        "temperature": {"type": "Property", "value": 20 + n, "unitCode": "CEL"},
        **attrs,
    }


async def _upsert(
    client: httpx.AsyncClient, body: Any, *, options: str | None = None, ld: bool = False
) -> httpx.Response:
    params = {"options": options} if options else None
    return await client.post(
        f"{API}/entityOperations/upsert",
        content=body if isinstance(body, bytes) else orjson.dumps(body),
        params=params,
        headers={"Content-Type": "application/ld+json" if ld else "application/json"},
    )


def _problem(resp: httpx.Response, status: int, kind: str | None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()
    assert body["type"] == ("about:blank" if kind is None else ERR + kind)
    assert body["status"] == status
    assert body["detail"]
    return body


async def test_upsert_creates_then_retrieves(client: httpx.AsyncClient) -> None:
    resp = await _upsert(client, [_entity(1), _entity(2)])
    assert resp.status_code == 201
    assert resp.json() == ["urn:ngsi-ld:Sensor:001", "urn:ngsi-ld:Sensor:002"]
    got = await client.get(f"{API}/entities/urn:ngsi-ld:Sensor:001")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert got.headers["link"] == LINK_HEADER
    assert got.json() == _entity(1)


async def test_json_ld_is_served_when_accepted(client: httpx.AsyncClient) -> None:
    await _upsert(client, [_entity(1)])
    got = await client.get(
        f"{API}/entities/urn:ngsi-ld:Sensor:001", headers={"Accept": "application/ld+json"}
    )
    assert got.headers["content-type"] == "application/ld+json"
    assert "link" not in got.headers
    assert got.json() == {**_entity(1), "@context": CORE_CONTEXT}
    listed = await client.get(
        f"{API}/entities", params={"type": "Sensor"}, headers={"Accept": "application/ld+json"}
    )
    assert [e["@context"] for e in listed.json()] == [CORE_CONTEXT]


async def test_json_is_preferred_by_quality(client: httpx.AsyncClient) -> None:
    await _upsert(client, [_entity(1)])
    got = await client.get(
        f"{API}/entities/urn:ngsi-ld:Sensor:001",
        headers={"Accept": "application/ld+json;q=0.5, application/json"},
    )
    assert got.headers["content-type"] == "application/json"


async def test_unacceptable_media_type_is_406(client: httpx.AsyncClient) -> None:
    resp = await client.get(
        f"{API}/entities/urn:ngsi-ld:Sensor:001", headers={"Accept": "text/html"}
    )
    _problem(resp, 406, None)


async def test_upsert_of_existing_entities_is_204_and_replaces_by_default(
    client: httpx.AsyncClient,
) -> None:
    await _upsert(client, [_entity(1, humidity={"type": "Property", "value": 40})])
    resp = await _upsert(client, [_entity(1)])
    assert resp.status_code == 204
    assert resp.content == b""
    got = (await client.get(f"{API}/entities/urn:ngsi-ld:Sensor:001")).json()
    assert "humidity" not in got


async def test_upsert_update_merges_attributes(client: httpx.AsyncClient) -> None:
    await _upsert(client, [_entity(1, humidity={"type": "Property", "value": 40})])
    change = {
        "id": "urn:ngsi-ld:Sensor:001",
        "type": "Sensor",
        "humidity": {"type": "Property", "value": 41},
    }
    assert (await _upsert(client, [change], options="update")).status_code == 204
    got = (await client.get(f"{API}/entities/urn:ngsi-ld:Sensor:001")).json()
    assert got["humidity"]["value"] == 41
    assert got["temperature"]["value"] == 21


async def test_upsert_mixed_new_and_existing_is_201_with_only_new_ids(
    client: httpx.AsyncClient,
) -> None:
    await _upsert(client, [_entity(1)])
    resp = await _upsert(client, [_entity(1), _entity(2)])
    assert resp.status_code == 201
    assert resp.json() == ["urn:ngsi-ld:Sensor:002"]


async def test_upsert_with_invalid_entities_is_207(client: httpx.AsyncClient) -> None:
    body = [
        _entity(1),
        {"id": "not a uri", "type": "Sensor"},
        {"id": "urn:ngsi-ld:Sensor:009"},
        {"id": "urn:ngsi-ld:Sensor:010", "type": "Sensor", "t": None},
        {"id": "urn:ngsi-ld:Sensor:011", "type": "Sensor", "t": {"type": "Property"}},
        {
            "id": "urn:ngsi-ld:Sensor:012",
            "type": "Sensor",
            "r": {"type": "Relationship", "object": "x"},
        },
        "just a string",
    ]
    resp = await _upsert(client, body)
    assert resp.status_code == 207
    result = resp.json()
    assert result["success"] == ["urn:ngsi-ld:Sensor:001"]
    assert [e["entityId"] for e in result["errors"]] == [
        "not a uri",
        "urn:ngsi-ld:Sensor:009",
        "urn:ngsi-ld:Sensor:010",
        "urn:ngsi-ld:Sensor:011",
        "urn:ngsi-ld:Sensor:012",
        "",
    ]
    for err in result["errors"]:
        assert err["error"]["type"] == ERR + "BadRequestData"
        assert err["error"]["status"] == 400
    assert (await client.get(f"{API}/entities/urn:ngsi-ld:Sensor:001")).status_code == 200
    assert (await client.get(f"{API}/entities/urn:ngsi-ld:Sensor:010")).status_code == 404


async def test_upsert_ld_json_needs_context_and_json_forbids_it(client: httpx.AsyncClient) -> None:
    with_ctx = {**_entity(1), "@context": CORE_CONTEXT}
    assert (await _upsert(client, [with_ctx], ld=True)).status_code == 201
    stored = (await client.get(f"{API}/entities/urn:ngsi-ld:Sensor:001")).json()
    assert "@context" not in stored
    assert (await _upsert(client, [_entity(2)], ld=True)).status_code == 207
    assert (await _upsert(client, [{**_entity(3), "@context": CORE_CONTEXT}])).status_code == 207


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"{not json", "InvalidRequest"),
        (b"", "InvalidRequest"),
        (b'{"id": "urn:a:b", "type": "T"}', "BadRequestData"),
        (b"[]", "BadRequestData"),
        (b"null", "BadRequestData"),
    ],
)
async def test_upsert_body_that_is_not_an_array_is_400(
    client: httpx.AsyncClient, body: bytes, kind: str
) -> None:
    _problem(await _upsert(client, body), 400, kind)


async def test_upsert_bad_options_is_400(client: httpx.AsyncClient) -> None:
    _problem(await _upsert(client, [_entity(1)], options="merge"), 400, "BadRequestData")
    assert (await client.get(f"{API}/entities/urn:ngsi-ld:Sensor:001")).status_code == 404


async def test_upsert_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        f"{API}/entityOperations/upsert",
        content=orjson.dumps([_entity(1)]),
        headers={"Content-Type": "text/plain"},
    )
    _problem(resp, 415, None)


async def test_get_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    body = _problem(
        await client.get(f"{API}/entities/urn:ngsi-ld:Sensor:404"), 404, "ResourceNotFound"
    )
    assert "urn:ngsi-ld:Sensor:404" in body["detail"]


@pytest.mark.parametrize("bad_id", ["not-a-uri", "with%20space:x", "1abc:def"])
async def test_get_entity_with_non_uri_id_is_400(client: httpx.AsyncClient, bad_id: str) -> None:
    _problem(await client.get(f"{API}/entities/{bad_id}"), 400, "BadRequestData")


async def test_query_by_type_paginates_by_id_and_counts(client: httpx.AsyncClient) -> None:
    await _upsert(client, [_entity(n) for n in range(25, 0, -1)] + [_entity(1, etype="Room")])
    first = await client.get(f"{API}/entities", params={"type": "Sensor"})
    assert first.status_code == 200
    assert first.headers["link"] == LINK_HEADER
    assert [e["id"] for e in first.json()] == [f"urn:ngsi-ld:Sensor:{n:03d}" for n in range(1, 21)]
    assert "ngsild-results-count" not in first.headers
    rest = await client.get(
        f"{API}/entities", params={"type": "Sensor", "offset": "20", "limit": "10", "count": "true"}
    )
    assert [e["id"] for e in rest.json()] == [f"urn:ngsi-ld:Sensor:{n:03d}" for n in range(21, 26)]
    assert rest.headers["ngsild-results-count"] == "25"
    only_count = await client.get(
        f"{API}/entities", params={"type": "Sensor,Room", "limit": "0", "count": "true"}
    )
    assert only_count.json() == []
    assert only_count.headers["ngsild-results-count"] == "26"


async def test_query_by_id_list_and_type(client: httpx.AsyncClient) -> None:
    await _upsert(client, [_entity(1), _entity(2), _entity(3), _entity(1, etype="Room")])
    ids = "urn:ngsi-ld:Sensor:003,urn:ngsi-ld:Sensor:001,urn:ngsi-ld:Room:001"
    # an id list alone is not a query (ETSI conformance 019_03_05): 400
    _problem(await client.get(f"{API}/entities", params={"id": ids}), 400, "BadRequestData")
    resp = await client.get(f"{API}/entities", params={"id": ids, "type": "Sensor,Room"})
    assert [e["id"] for e in resp.json()] == [
        "urn:ngsi-ld:Room:001",
        "urn:ngsi-ld:Sensor:001",
        "urn:ngsi-ld:Sensor:003",
    ]
    typed = await client.get(
        f"{API}/entities",
        params={"id": "urn:ngsi-ld:Sensor:003,urn:ngsi-ld:Room:001", "type": "Room"},
    )
    assert [e["id"] for e in typed.json()] == ["urn:ngsi-ld:Room:001"]
    none = await client.get(f"{API}/entities", params={"type": "Nothing"})
    assert none.status_code == 200
    assert none.json() == []


async def test_key_values_is_the_simplified_form(client: httpx.AsyncClient) -> None:
    await _upsert(client, [_entity(1)])
    got = await client.get(
        f"{API}/entities/urn:ngsi-ld:Sensor:001", params={"options": "keyValues"}
    )
    assert got.json() == {"id": "urn:ngsi-ld:Sensor:001", "type": "Sensor", "temperature": 21}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"type": "Sensor", "limit": "-1"},
        {"type": "Sensor", "limit": "ten"},
        {"type": "Sensor", "limit": "0"},
        {"type": "Sensor", "offset": "-5"},
        {"type": "Sensor", "count": "yes"},
        {"type": "Sensor,"},
        {"id": "urn:ngsi-ld:Sensor:001,nope"},
    ],
)
async def test_bad_query_parameters_are_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    _problem(await client.get(f"{API}/entities", params=params), 400, "BadRequestData")


async def test_a_page_above_the_maximum_is_403_too_many_results(client: httpx.AsyncClient) -> None:
    resp = await client.get(f"{API}/entities", params={"type": "Sensor", "limit": "1001"})
    _problem(resp, 403, "TooManyResults")


async def test_unknown_path_is_404_and_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    _problem(await client.get(f"{API}/noSuchThing"), 404, "ResourceNotFound")
    _problem(await client.get("/"), 404, "ResourceNotFound")
    resp = await client.post(f"{API}/entities/urn:ngsi-ld:Sensor:001")
    _problem(resp, 405, None)
    assert "GET" in resp.headers["allow"]
    _problem(await client.get(f"{API}/entityOperations/upsert"), 405, None)


async def test_ingested_device_is_served_through_the_api(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    from tests.cloud.batches import batch, encode, good_rows

    resp = await client.post(
        "/ldt/v1/ingest",
        content=encode(batch("gw-1", good_rows(1, 10))),
        headers={"Authorization": f"Bearer {gw1_token}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 200
    devices = (await client.get(f"{API}/entities", params={"type": "Device"})).json()
    assert [d["id"] for d in devices] == ["urn:ngsi-ld:Device:gw-1:m0"]
    assert devices[0]["activePower"]["value"] == 210.0
    assert "createdAt" not in devices[0]["activePower"]  # system attributes only when asked
    with_sys = await client.get(f"{API}/entities", params={"type": "Device", "options": "sysAttrs"})
    assert with_sys.json()[0] == await store.entities.get("urn:ngsi-ld:Device:gw-1:m0")
