"""The temporal API through the ASGI app, on both stores: provision, queries, recorded history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.temporal import Window, parse_window
from ldt.cloud.server import build_app
from ldt.cloud.store import Store
from ldt.contract import INGEST_PATH
from tests.cloud.batches import batch, encode

API = "/ngsi-ld/v1"
EID = "urn:ngsi-ld:Vehicle:t1"
BAD_DATA = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
INVALID = "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"
NOT_FOUND = "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


def _vehicle(entity_id: str = EID) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": "Vehicle",
        "speed": [
            {"type": "Property", "value": 120, "observedAt": "2020-09-01T12:03:00Z"},
            {"type": "Property", "value": 80, "observedAt": "2020-09-01T12:05:00Z"},
            {"type": "Property", "value": 100, "observedAt": "2020-09-01T12:07:00Z"},
        ],
        "fuelLevel": [
            {"type": "Property", "value": 67, "observedAt": "2020-09-01T12:03:00Z"},
            {
                "type": "Property",
                "value": 40,
                "observedAt": "2020-09-01T14:07:00Z",
                "datasetId": "urn:ngsi-ld:Dataset:fuel",
            },
        ],
    }


async def _create(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"{API}/temporal/entities", content=orjson.dumps(body),
                             headers={"Content-Type": "application/json"})  # fmt: skip


def _problem(resp: httpx.Response, status: int, kind: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["type"] == kind


def _values(resp: httpx.Response, attr: str) -> list[Any]:
    assert resp.status_code == 200, resp.text
    return [i["value"] for i in resp.json()[attr]]


async def test_create_then_retrieve_every_instance_oldest_first(client: httpx.AsyncClient) -> None:
    resp = await _create(client, _vehicle())
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{API}/temporal/entities/{EID}"
    got = await client.get(f"{API}/temporal/entities/{EID}")
    body = got.json()
    assert (body["id"], body["type"]) == (EID, "Vehicle")
    assert _values(got, "speed") == [120, 80, 100]
    assert all(i["instanceId"].startswith("urn:") for i in body["speed"])
    assert "createdAt" not in body["speed"][0]
    fuel = {i.get("datasetId"): i["value"] for i in body["fuelLevel"]}
    assert fuel == {None: 67, "urn:ngsi-ld:Dataset:fuel": 40}
    # posting again adds instances: 204
    again = await _create(
        client,
        {"id": EID, "type": "Vehicle", "speed": {"value": 1, "observedAt": "2020-09-01T12:09:00Z"}},
    )
    assert again.status_code == 204, again.text
    assert _values(await client.get(f"{API}/temporal/entities/{EID}?attrs=speed"), "speed")[-1] == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("timerel=before&timeAt=2020-09-01T12:05:00Z", [120]),
        ("timerel=after&timeAt=2020-09-01T12:05:00Z", [80, 100]),
        ("timerel=between&timeAt=2020-09-01T12:04:00Z&endTimeAt=2020-09-01T12:07:00Z", [80]),
        ("lastN=2", [80, 100]),
        ("timerel=before&timeAt=2020-09-01T12:06:00Z&lastN=1", [80]),
    ],
)
async def test_timerel_and_last_n_select_instances(
    client: httpx.AsyncClient, query: str, expected: list[int]
) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    resp = await client.get(f"{API}/temporal/entities/{EID}?attrs=speed&{query}")
    assert _values(resp, "speed") == expected
    assert "fuelLevel" not in resp.json()


async def test_temporal_values_and_sys_attrs(client: httpx.AsyncClient) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    resp = await client.get(f"{API}/temporal/entities/{EID}?options=temporalValues&attrs=speed")
    assert resp.json()["speed"] == {
        "type": "Property",
        "values": [
            [120, "2020-09-01T12:03:00Z"],
            [80, "2020-09-01T12:05:00Z"],
            [100, "2020-09-01T12:07:00Z"],
        ],
    }
    sys = (await client.get(f"{API}/temporal/entities/{EID}?options=sysAttrs")).json()
    assert "createdAt" in sys
    assert "modifiedAt" in sys["speed"][0]


async def test_query_by_type_and_count(client: httpx.AsyncClient) -> None:
    for n in range(3):
        assert (await _create(client, _vehicle(f"{EID}:{n}"))).status_code == 201
    resp = await client.get(f"{API}/temporal/entities?type=Vehicle&lastN=1&count=true&limit=2")
    assert resp.status_code == 200, resp.text
    assert resp.headers["ngsild-results-count"] == "3"
    assert [e["id"] for e in resp.json()] == [f"{EID}:0", f"{EID}:1"]
    assert [len(e["speed"]) for e in resp.json()] == [1, 1]
    none = await client.get(f"{API}/temporal/entities?type=Car")
    assert none.json() == []


async def test_history_is_recorded_from_entity_patch(client: httpx.AsyncClient) -> None:
    entity = {"id": "urn:ngsi-ld:Room:r1", "type": "Room", "temperature": {"value": 20}}
    resp = await client.post(f"{API}/entities", content=orjson.dumps(entity),
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert resp.status_code == 201, resp.text
    for value in (21, 22, 22):  # the last PATCH changes nothing: no instance
        patch = await client.patch(
            f"{API}/entities/urn:ngsi-ld:Room:r1/attrs/temperature",
            content=orjson.dumps({"value": value}),
            headers={"Content-Type": "application/json"},
        )
        assert patch.status_code == 204, patch.text
    got = await client.get(f"{API}/temporal/entities/urn:ngsi-ld:Room:r1")
    assert _values(got, "temperature") == [20, 21, 22]
    window = await client.get(
        f"{API}/temporal/entities/urn:ngsi-ld:Room:r1?timeproperty=modifiedAt&lastN=1"
    )
    assert _values(window, "temperature") == [22]


async def test_history_is_recorded_from_gateway_ingest(
    client: httpx.AsyncClient, gw1_token: str
) -> None:
    eid = "urn:ngsi-ld:Device:gw-1:m0"
    headers = {"Authorization": f"Bearer {gw1_token}", "Content-Type": "application/json"}
    for seq, value in ((1, 10.0), (2, 11.0)):
        body = batch("gw-1", [[seq, 0, 1_795_780_800_000 + seq * 1000, value, "good", None]])
        resp = await client.post(INGEST_PATH, content=encode(body), headers=headers)
        assert resp.status_code == 200, resp.text
    got = await client.get(f"{API}/temporal/entities/{eid}?attrs=activePower")
    assert _values(got, "activePower") == [10.0, 11.0]
    after = await client.get(
        f"{API}/temporal/entities/{eid}?attrs=activePower&timerel=after&timeAt=2026-11-27T12:00:02Z"
    )
    assert _values(after, "activePower") == [11.0]


async def test_add_attrs_patch_and_delete_instances(client: httpx.AsyncClient) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    url = f"{API}/temporal/entities/{EID}"
    add = await client.post(f"{url}/attrs", content=orjson.dumps(
        {"speed": {"type": "Property", "value": 5, "observedAt": "2020-09-01T13:00:00Z"}}
    ), headers={"Content-Type": "application/json"})  # fmt: skip
    assert add.status_code == 204, add.text
    speeds = (await client.get(url)).json()["speed"]
    assert [i["value"] for i in speeds] == [120, 80, 100, 5]
    first = speeds[0]["instanceId"]
    patch = await client.patch(f"{url}/attrs/speed/{first}", content=orjson.dumps(
        {"type": "Property", "value": 121, "observedAt": "2020-09-01T12:03:00Z"}
    ), headers={"Content-Type": "application/json"})  # fmt: skip
    assert patch.status_code == 204, patch.text
    assert _values(await client.get(url), "speed") == [121, 80, 100, 5]
    assert (await client.delete(f"{url}/attrs/speed/{first}")).status_code == 204
    _problem(await client.delete(f"{url}/attrs/speed/{first}"), 404, NOT_FOUND)
    assert _values(await client.get(url), "speed") == [80, 100, 5]
    # deleting an attribute: the default dataset only, then every dataset
    assert (await client.delete(f"{url}/attrs/fuelLevel")).status_code == 204
    fuel = (await client.get(url)).json()["fuelLevel"]
    assert [i["datasetId"] for i in fuel] == ["urn:ngsi-ld:Dataset:fuel"]
    assert (await client.delete(f"{url}/attrs/fuelLevel?deleteAll=true")).status_code == 204
    _problem(await client.delete(f"{url}/attrs/fuelLevel"), 404, NOT_FOUND)
    assert (await client.delete(url)).status_code == 204
    _problem(await client.get(url), 404, NOT_FOUND)
    _problem(await client.delete(url), 404, NOT_FOUND)


async def test_bad_requests_are_400(client: httpx.AsyncClient) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    url = f"{API}/temporal/entities/{EID}"
    for query in (
        "timerel=during&timeAt=2020-09-01T12:00:00Z",
        "timerel=before",
        "timerel=after&timeAt=yesterday",
        "timerel=between&timeAt=2020-09-01T12:00:00Z",
        "lastN=0",
        "timeproperty=expiresAt",
    ):
        _problem(await client.get(f"{url}?{query}"), 400, BAD_DATA)
    for query in ("options=bogus", "format=bogus"):
        _problem(await client.get(f"{url}?{query}"), 400, INVALID)
    _problem(await client.delete(f"{url}/attrs/bad(name"), 400, BAD_DATA)
    _problem(await client.delete(f"{url}/attrs/speed/not-a-uri"), 400, BAD_DATA)
    _problem(await client.get(f"{API}/temporal/entities"), 400, BAD_DATA)
    _problem(await _create(client, {"id": "not a uri", "type": "Vehicle"}), 400, BAD_DATA)
    _problem(await _create(client, {"id": EID, "speed": {"value": 1}}), 400, BAD_DATA)
    _problem(await client.get(f"{API}/temporal/entities/urn:ngsi-ld:Vehicle:none"), 404, NOT_FOUND)
    add = await client.post(f"{API}/temporal/entities/urn:ngsi-ld:Vehicle:none/attrs",
                            content=b'{"speed": {"value": 1}}',
                            headers={"Content-Type": "application/json"})  # fmt: skip
    _problem(add, 404, NOT_FOUND)


def test_parse_window() -> None:
    assert parse_window({}) == Window()
    assert parse_window(
        {"timerel": "between", "timeAt": "1970-01-01T00:00:01Z",
         "endTimeAt": "1970-01-01T00:00:02Z", "timeproperty": "modifiedAt", "lastN": "3"}
    ) == Window(time_property="modifiedAt", start_ms=1000, end_ms=2000, last_n=3)  # fmt: skip
    with pytest.raises(NgsiLdError):
        parse_window({"timerel": "between", "timeAt": "1970-01-01T00:00:02Z",
                      "endTimeAt": "1970-01-01T00:00:01Z"})  # fmt: skip


@pytest.fixture
async def small_client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app answering at most 4 instances per temporal request."""
    app = build_app(store, access=AccessControl.lab())
    app.state.temporal_instance_limit = 4
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as c:
        yield c


async def test_too_many_instances_is_206_with_a_content_range(
    small_client: httpx.AsyncClient,
) -> None:
    assert (await _create(small_client, _vehicle())).status_code == 201
    url = f"{API}/temporal/entities/{EID}"
    oldest = await small_client.get(url)
    assert oldest.status_code == 206, oldest.text
    assert oldest.headers["content-range"] == (
        "date-time 2020-09-01T12:03:00.000Z-2020-09-01T12:07:00.000Z/*"
    )
    assert [i["value"] for i in oldest.json()["speed"]] == [120, 80, 100]
    newest = await small_client.get(f"{url}?lastN=3")
    assert newest.status_code == 206
    assert newest.headers["content-range"].endswith("/3")
    kept = newest.json()
    assert len(kept["speed"]) + len(kept["fuelLevel"]) == 4  # the newest 4 of 5
    assert [i["value"] for i in kept["speed"]][-2:] == [80, 100]
    assert [i["value"] for i in kept["fuelLevel"]][-1:] == [40]
    assert (await small_client.get(f"{url}?attrs=speed")).status_code == 200


async def test_aggregated_values_per_period(client: httpx.AsyncClient) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    url = f"{API}/temporal/entities/{EID}?attrs=speed&options=aggregatedValues"
    resp = await client.get(f"{url}&aggrMethods=avg,max,totalCount&aggrPeriodDuration=PT3M")
    assert resp.status_code == 200, resp.text
    assert resp.json()["speed"] == {
        "type": "Property",
        "avg": [[100.0, "2020-09-01T12:03:00Z", "2020-09-01T12:06:00Z"],
                [100.0, "2020-09-01T12:06:00Z", "2020-09-01T12:09:00Z"]],
        "max": [[120.0, "2020-09-01T12:03:00Z", "2020-09-01T12:06:00Z"],
                [100.0, "2020-09-01T12:06:00Z", "2020-09-01T12:09:00Z"]],
        "totalCount": [[2, "2020-09-01T12:03:00Z", "2020-09-01T12:06:00Z"],
                       [1, "2020-09-01T12:06:00Z", "2020-09-01T12:09:00Z"]],
    }  # fmt: skip
    _problem(await client.get(url), 400, BAD_DATA)  # no aggrMethods
    _problem(await client.get(f"{url}&aggrMethods=median"), 400, BAD_DATA)
    _problem(await client.get(f"{url}&aggrMethods=avg&aggrPeriodDuration=1h"), 400, BAD_DATA)


async def test_post_query_pick_and_replacing_an_observation(client: httpx.AsyncClient) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    same_time = {"id": EID, "type": "Vehicle",
                 "speed": {"value": 121, "observedAt": "2020-09-01T12:03:00Z"}}  # fmt: skip
    assert (await _create(client, same_time)).status_code == 204
    query = {"type": "Query", "entities": [{"type": "Vehicle"}],
             "temporalQ": {"timerel": "before", "timeAt": "2020-09-01T12:06:00Z"}}  # fmt: skip
    resp = await client.post(f"{API}/temporal/entityOperations/query?pick=id,speed",
                             content=orjson.dumps(query),
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    (entity,) = resp.json()
    assert set(entity) == {"id", "speed"}
    assert [i["value"] for i in entity["speed"]] == [121, 80]
    bad = await client.post(f"{API}/temporal/entityOperations/query", content=b'{"type": "X"}',
                            headers={"Content-Type": "application/json"})  # fmt: skip
    _problem(bad, 400, BAD_DATA)
    _problem(await client.get(f"{API}/temporal/entities/{EID}?pick=nothing"), 404, NOT_FOUND)
