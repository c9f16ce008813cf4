"""GET /entities, /entities/{id}, /types and /attributes over HTTP, on both stores.

Entities are seeded through ``Store.write_entities`` with ``entity_ops.upsert``, in their stored
form (names compacted with the core context), so these tests exercise the read side alone.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from ldt.cloud.ngsild.entity_ops import upsert
from ldt.cloud.ngsild.entity_query import EntityQuery, map_q_names, parse_types
from ldt.cloud.ngsild.geo import parse_geoquery
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import parse_q
from ldt.cloud.store import Store

BASE = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
TV_TOWER = [13.4094, 52.5208]
GATE = [13.3777, 52.5163]  # 2.2 km west of the TV tower
MUNICH = [11.5755, 48.1374]


def _building(n: int, lonlat: list[float] | None, **attrs: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Building:{n:03d}",
        "type": "Building",
        "name": {"type": "Property", "value": f"b{n}"},
        "floors": {"type": "Property", "value": n % 7},
    }
    if lonlat is not None:
        doc["location"] = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": lonlat}}
    doc.update(attrs)
    return doc


@pytest.fixture
async def seeded(store: Store) -> Store:
    await _put(
        store,
        [
            _building(1, TV_TOWER, scope="/berlin/mitte"),
            _building(2, GATE, scope="/berlin/mitte"),
            _building(3, MUNICH, scope="/munich"),
            {**_building(4, None), "type": ["Building", "Museum"]},
            {
                "id": "urn:ngsi-ld:Museum:001",
                "type": "Museum",
                "name": {"type": "Property", "value": "Pergamon"},
                "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Org:1"},
            },
            {
                "id": "urn:ngsi-ld:Car:001",
                "type": "Car",
                "speed": {"type": "Property", "value": 80, "observedAt": "2024-01-01T00:00:00Z"},
                "parked": {"type": "Property", "value": {"type": "Point", "coordinates": GATE}},
            },
        ],
    )
    return store


async def _put(store: Store, docs: list[dict[str, Any]]) -> None:
    """Create or replace entities in their stored form (as the write routes would)."""
    now = "2024-05-01T12:00:00.000Z"
    outcomes = await store.entities.write(
        refusable=NgsiLdError, changes=[(d["id"], upsert(d, now, replace=True)) for d in docs]
    )
    assert all(isinstance(o, str) for o in outcomes), outcomes


def _ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [e["id"] for e in resp.json()]


async def _get(client: httpx.AsyncClient, path: str = "/entities", **params: Any) -> httpx.Response:
    return await client.get(BASE + path, params=params)


# --- selection ----------------------------------------------------------------------------


async def test_type_query_is_ordered_by_id(client: httpx.AsyncClient, seeded: Store) -> None:
    resp = await _get(client, type="Building")
    assert _ids(resp) == [f"urn:ngsi-ld:Building:00{i}" for i in (1, 2, 3, 4)]
    assert resp.headers["content-type"] == "application/json"
    assert "ngsi-ld-core-context" in resp.headers["link"]
    assert "createdAt" not in resp.json()[0]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("Museum", ["urn:ngsi-ld:Building:004", "urn:ngsi-ld:Museum:001"]),
        ("Building;Museum", ["urn:ngsi-ld:Building:004"]),
        (
            "Car,Museum",
            ["urn:ngsi-ld:Building:004", "urn:ngsi-ld:Car:001", "urn:ngsi-ld:Museum:001"],
        ),
        ("Car|(Building;Museum)", ["urn:ngsi-ld:Building:004", "urn:ngsi-ld:Car:001"]),
        ("Nothing", []),
    ],
)
async def test_type_selection_language(
    client: httpx.AsyncClient, seeded: Store, selection: str, expected: list[str]
) -> None:
    assert _ids(await _get(client, type=selection)) == expected


async def test_ids_and_id_pattern(client: httpx.AsyncClient, seeded: Store) -> None:
    ids = "urn:ngsi-ld:Building:003,urn:ngsi-ld:Building:001,urn:ngsi-ld:Building:999"
    assert _ids(await _get(client, type="Building", id=ids)) == [
        "urn:ngsi-ld:Building:001",
        "urn:ngsi-ld:Building:003",
    ]
    assert _ids(
        await _get(client, type="Building,Car", idPattern="^urn:ngsi-ld:(Car|Building):00[13]$")
    ) == [
        "urn:ngsi-ld:Building:001",
        "urn:ngsi-ld:Building:003",
        "urn:ngsi-ld:Car:001",
    ]


async def test_attrs_selects_entities_and_members(client: httpx.AsyncClient, seeded: Store) -> None:
    resp = await _get(client, attrs="owner,speed")
    assert _ids(resp) == ["urn:ngsi-ld:Car:001", "urn:ngsi-ld:Museum:001"]
    assert resp.json()[0] == {
        "id": "urn:ngsi-ld:Car:001",
        "type": "Car",
        "speed": {"type": "Property", "value": 80, "observedAt": "2024-01-01T00:00:00Z"},
    }


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("floors>=2", ["002", "003", "004"]),
        ('floors==1|name=="b3"', ["001", "003"]),
        ("floors==2..3;location", ["002", "003"]),
        ('name~="b[24]"', ["002", "004"]),
        ("!location", None),  # not a valid q: there is no negation
    ],
)
async def test_q(
    client: httpx.AsyncClient, seeded: Store, q: str, expected: list[str] | None
) -> None:
    resp = await _get(client, type="Building", q=q)
    if expected is None:
        assert resp.status_code == 400
        assert resp.json()["type"] == ERR + "BadRequestData"
        return
    assert _ids(resp) == [f"urn:ngsi-ld:Building:{n}" for n in expected]


async def test_q_alone_and_sub_members(client: httpx.AsyncClient, seeded: Store) -> None:
    assert _ids(await _get(client, q="speed.observedAt>=2023-12-31T00:00:00Z")) == [
        "urn:ngsi-ld:Car:001"
    ]
    assert _ids(await _get(client, q='owner=="urn:ngsi-ld:Org:1"')) == ["urn:ngsi-ld:Museum:001"]


async def test_scope_q(client: httpx.AsyncClient, seeded: Store) -> None:
    assert _ids(await _get(client, type="Building", scopeQ="/berlin/#")) == [
        "urn:ngsi-ld:Building:001",
        "urn:ngsi-ld:Building:002",
    ]
    assert _ids(await _get(client, type="Building", scopeQ="/munich")) == [
        "urn:ngsi-ld:Building:003"
    ]


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "expected"),
    [
        ("near;maxDistance==1000", "Point", TV_TOWER, ["001"]),
        ("near;maxDistance==3000", "Point", TV_TOWER, ["001", "002"]),
        ("near;minDistance==3000", "Point", TV_TOWER, ["003"]),
        (
            "within",
            "Polygon",
            [[[13.0, 52.3], [13.8, 52.3], [13.8, 52.7], [13.0, 52.7], [13.0, 52.3]]],
            ["001", "002"],
        ),
        ("disjoint", "Point", TV_TOWER, ["002", "003"]),
        ("equals", "Point", GATE, ["002"]),
    ],
)
async def test_geo_queries(
    client: httpx.AsyncClient,
    seeded: Store,
    georel: str,
    geometry: str,
    coordinates: Any,
    expected: list[str],
) -> None:
    import json

    resp = await _get(
        client,
        type="Building",
        georel=georel,
        geometry=geometry,
        coordinates=json.dumps(coordinates),
    )
    assert _ids(resp) == [f"urn:ngsi-ld:Building:{n}" for n in expected]


async def test_geo_on_another_geoproperty(client: httpx.AsyncClient, seeded: Store) -> None:
    resp = await _get(
        client,
        georel="near;maxDistance==10",
        geometry="Point",
        coordinates=str(GATE),
        geoproperty="parked",
    )
    assert _ids(resp) == ["urn:ngsi-ld:Car:001"]


async def test_location_index_follows_writes(client: httpx.AsyncClient, seeded: Store) -> None:
    near_munich = {
        "georel": "near;maxDistance==500",
        "geometry": "Point",
        "coordinates": str(MUNICH),
    }
    assert _ids(await _get(client, type="Building", **near_munich)) == ["urn:ngsi-ld:Building:003"]
    await _put(seeded, [_building(1, MUNICH)])  # moved
    await _put(seeded, [_building(3, None)])  # location removed
    assert _ids(await _get(client, type="Building", **near_munich)) == ["urn:ngsi-ld:Building:001"]


# --- paging -----------------------------------------------------------------------------------


async def test_limit_offset_count(client: httpx.AsyncClient, seeded: Store) -> None:
    resp = await _get(client, type="Building", limit=2, offset=1, count="true")
    assert _ids(resp) == ["urn:ngsi-ld:Building:002", "urn:ngsi-ld:Building:003"]
    assert resp.headers["ngsild-results-count"] == "4"
    only_count = await _get(client, type="Building", q="floors>=2", limit=0, count="true")
    assert only_count.json() == []
    assert only_count.headers["ngsild-results-count"] == "3"
    residual = await _get(client, type="Building", scopeQ="/#", limit=1, offset=2, count="true")
    assert _ids(residual) == ["urn:ngsi-ld:Building:003"]
    assert residual.headers["ngsild-results-count"] == "3"
    assert "ngsild-results-count" not in (await _get(client, type="Building")).headers


async def test_default_limit_is_20(client: httpx.AsyncClient, store: Store) -> None:
    await _put(store, [_building(n, None) for n in range(25)])
    assert len(_ids(await _get(client, type="Building"))) == 20
    assert len(_ids(await _get(client, type="Building", limit=1000))) == 25


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "kind"),
    [
        ({"type": "Building", "invalidParams": "x"}, 400, "InvalidRequest"),
        ({"type": "Building", "options": "keyValues,invalid"}, 400, "InvalidRequest"),
        ({"type": "Building", "options": "keyValues,concise"}, 400, "InvalidRequest"),
        ({"type": "Building", "format": "pretty"}, 400, "InvalidRequest"),
        ({"id": "urn:ngsi-ld:Building:001"}, 400, "BadRequestData"),
        ({}, 400, "BadRequestData"),
        ({"type": "Building", "id": "thisisnotauri"}, 400, "BadRequestData"),
        ({"type": "Building", "idPattern": "invalid_entity_id_pattern**"}, 400, "BadRequestData"),
        ({"type": "Building", "idPattern": "(a"}, 400, "BadRequestData"),
        ({"type": "(Building"}, 400, "BadRequestData"),
        ({"type": "Building;;Car"}, 400, "BadRequestData"),
        ({"attrs": "id,type"}, 400, "BadRequestData"),
        ({"type": "Building", "q": "floors>>1"}, 400, "BadRequestData"),
        ({"type": "Building", "scopeQ": "berlin"}, 400, "BadRequestData"),
        (
            {"type": "Building", "georel": "invalid", "geometry": "Point", "coordinates": "[1,2]"},
            400,
            "BadRequestData",
        ),
        (
            {"type": "Building", "georel": "near;maxDistance==5", "geometry": "Point"},
            400,
            "BadRequestData",
        ),
        (
            {"type": "Building", "georel": "within", "geometry": "Point", "coordinates": "[1"},
            400,
            "BadRequestData",
        ),
        ({"type": "Building", "limit": "1001"}, 403, "TooManyResults"),
        ({"type": "Building", "limit": "-1"}, 400, "BadRequestData"),
        ({"type": "Building", "limit": "ten"}, 400, "BadRequestData"),
        ({"type": "Building", "offset": "-5"}, 400, "BadRequestData"),
        ({"type": "Building", "limit": "0"}, 400, "BadRequestData"),
        ({"type": "Building", "count": "yes"}, 400, "BadRequestData"),
        ({"type": "Building", "pick": "name", "omit": "floors"}, 400, "BadRequestData"),
        ({"type": "Building", "pick": "name{"}, 400, "BadRequestData"),
    ],
)
async def test_rejected_queries(
    client: httpx.AsyncClient, seeded: Store, params: dict[str, str], status: int, kind: str
) -> None:
    resp = await _get(client, **params)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == ERR + kind
    assert body["title"]
    assert body["detail"]
    assert resp.headers["content-type"] == "application/json"


async def test_repeated_parameter_and_bad_accept(client: httpx.AsyncClient, seeded: Store) -> None:
    resp = await client.get(BASE + "/entities?type=Building&type=Car")
    assert resp.status_code == 400
    assert resp.json()["type"] == ERR + "InvalidRequest"
    resp = await client.get(
        BASE + "/entities", params={"type": "Car"}, headers={"accept": "text/csv"}
    )
    assert resp.status_code == 406


# --- representations -------------------------------------------------------------------------


async def test_key_values_concise_and_sys_attrs(client: httpx.AsyncClient, seeded: Store) -> None:
    car = "urn:ngsi-ld:Car:001"
    kv = (await _get(client, type="Car", options="keyValues")).json()[0]
    assert kv == {
        "id": car,
        "type": "Car",
        "speed": 80,
        "parked": {"type": "Point", "coordinates": GATE},
    }
    assert (await _get(client, type="Car", format="simplified")).json()[0] == kv
    concise = (await _get(client, type="Car", options="concise")).json()[0]
    assert concise["speed"] == {"value": 80, "observedAt": "2024-01-01T00:00:00Z"}
    assert concise["parked"] == {"value": {"type": "Point", "coordinates": GATE}}
    museum = (await _get(client, "/entities/urn:ngsi-ld:Museum:001", options="concise")).json()
    assert museum["owner"] == {"object": "urn:ngsi-ld:Org:1"}
    assert museum["name"] == "Pergamon"
    normal = (await _get(client, type="Car", format="normalized", options="keyValues")).json()[0]
    assert normal["speed"]["type"] == "Property"


async def test_pick_and_omit(client: httpx.AsyncClient, seeded: Store) -> None:
    picked = (await _get(client, type="Car", pick="id,speed")).json()
    assert picked == [{"id": "urn:ngsi-ld:Car:001", "speed": picked[0]["speed"]}]
    omitted = (await _get(client, type="Car", omit="speed,parked")).json()
    assert omitted == [{"id": "urn:ngsi-ld:Car:001", "type": "Car"}]


async def test_json_ld_and_geojson(client: httpx.AsyncClient, seeded: Store) -> None:
    ld = await client.get(
        BASE + "/entities", params={"type": "Car"}, headers={"accept": "application/ld+json"}
    )
    assert ld.headers["content-type"] == "application/ld+json"
    assert "ngsi-ld-core-context" in ld.json()[0]["@context"]
    assert "link" not in ld.headers
    geo = await client.get(
        BASE + "/entities",
        params={"type": "Building", "q": "floors<=2", "options": "keyValues"},
        headers={"accept": "application/geo+json"},
    )
    assert geo.headers["content-type"] == "application/geo+json"
    body = geo.json()
    assert body["type"] == "FeatureCollection"
    first, second = body["features"]
    assert first["id"] == "urn:ngsi-ld:Building:001"
    assert first["geometry"] == {"type": "Point", "coordinates": TV_TOWER}
    assert first["properties"]["type"] == "Building"
    assert first["properties"]["floors"] == 1
    assert second["geometry"] == {"type": "Point", "coordinates": GATE}
    one = await client.get(
        BASE + "/entities/urn:ngsi-ld:Car:001",
        params={"geometryProperty": "parked"},
        headers={"accept": "application/geo+json"},
    )
    feature = one.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Point", "coordinates": GATE}
    assert "@context" in feature


# --- retrieve one --------------------------------------------------------------------------------


async def test_retrieve_entity(client: httpx.AsyncClient, seeded: Store) -> None:
    resp = await _get(client, "/entities/urn:ngsi-ld:Building:001", attrs="name")
    assert resp.json() == {
        "id": "urn:ngsi-ld:Building:001",
        "type": "Building",
        "scope": "/berlin/mitte",
        "name": {"type": "Property", "value": "b1"},
    }
    missing = await _get(client, "/entities/urn:ngsi-ld:Building:999")
    assert missing.status_code == 404
    assert missing.json()["type"] == ERR + "ResourceNotFound"
    wrong_type = await _get(client, "/entities/urn:ngsi-ld:Building:001", type="Car")
    assert wrong_type.status_code == 404
    for params, kind in (
        ({"format": "invalidFormat"}, "InvalidRequest"),
        ({"options": "invalidOptions"}, "InvalidRequest"),
        ({"format": "keyValues", "options": "invalid"}, "InvalidRequest"),
        ({"q": "a==1"}, "InvalidRequest"),
    ):  # checked before the (missing) entity is looked up
        resp = await _get(client, "/entities/urn:ngsi-ld:Building:999", **params)
        assert resp.status_code == 400
        assert resp.json()["type"] == ERR + kind
    not_uri = await _get(client, "/entities/not-a-uri")
    assert not_uri.status_code == 400


# --- @context -------------------------------------------------------------------------------------


async def test_names_follow_the_link_context(client: httpx.AsyncClient, store: Store) -> None:
    ctx = {
        "@context": {
            "ex": "https://example.org/ctx#",
            "Building": "ex:Building",
            "height": "ex:height",
        }
    }
    created = await client.post(BASE + "/jsonldContexts", json=ctx)
    assert created.status_code == 201
    url = created.headers["location"]
    await _put(
        store,
        [
            {
                "id": "urn:ngsi-ld:Building:x1",
                "type": "https://example.org/ctx#Building",
                "https://example.org/ctx#height": {"type": "Property", "value": 30},
            },
            _building(1, None),  # the default-vocab Building: another type
        ],
    )
    link = f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    resp = await client.get(
        BASE + "/entities", params={"type": "Building", "q": "height>10"}, headers={"link": link}
    )
    assert resp.json() == [
        {
            "id": "urn:ngsi-ld:Building:x1",
            "type": "Building",
            "height": {"type": "Property", "value": 30},
        }
    ]
    assert url in resp.headers["link"]
    plain = await _get(client, type="Building")
    assert _ids(plain) == ["urn:ngsi-ld:Building:001"]
    expanded = (await _get(client, type="https://example.org/ctx#Building")).json()
    assert expanded[0]["type"] == "https://example.org/ctx#Building"
    assert "https://example.org/ctx#height" in expanded[0]
    types = await client.get(BASE + "/types", headers={"link": link})
    assert sorted(types.json()["typeList"]) == ["Building", "ngsi-ld:default-context/Building"]


# --- discovery ------------------------------------------------------------------------------------


async def test_types_and_attributes(client: httpx.AsyncClient, seeded: Store) -> None:
    types = (await _get(client, "/types")).json()
    assert types["type"] == "EntityTypeList"
    assert types["id"].startswith("urn:ngsi-ld:EntityTypeList:")
    assert types["typeList"] == ["Building", "Car", "Museum"]
    details = (await _get(client, "/types", details="true")).json()
    car = next(t for t in details if t["typeName"] == "Car")
    assert car == {
        "id": "https://uri.etsi.org/ngsi-ld/default-context/Car",
        "type": "EntityType",
        "typeName": "Car",
        "attributeNames": ["parked", "speed"],
    }
    info = (await _get(client, "/types/Building")).json()
    assert info["type"] == "EntityTypeInfo"
    assert info["entityCount"] == 4
    location = next(a for a in info["attributeDetails"] if a["attributeName"] == "location")
    assert location["attributeTypes"] == ["GeoProperty"]
    assert location["id"] == "https://uri.etsi.org/ngsi-ld/location"
    by_iri = await client.get(
        BASE + "/types/https%3A%2F%2Furi.etsi.org%2Fngsi-ld%2Fdefault-context%2FMuseum"
    )
    assert by_iri.json()["entityCount"] == 2
    attrs = (await _get(client, "/attributes")).json()
    assert attrs["type"] == "AttributeList"
    assert attrs["attributeList"] == ["floors", "location", "name", "owner", "parked", "speed"]
    name = (await _get(client, "/attributes/name")).json()
    assert name == {
        "id": "https://uri.etsi.org/ngsi-ld/default-context/name",
        "type": "Attribute",
        "attributeName": "name",
        "attributeCount": 6,  # Building:004 counts once per type (Building and Museum)
        "attributeTypes": ["Property"],
        "typeNames": ["Building", "Museum"],
    }
    attr_details = (await _get(client, "/attributes", details="true")).json()
    owner = next(a for a in attr_details if a["attributeName"] == "owner")
    assert owner["typeNames"] == ["Museum"]
    for path in ("/types/Nothing", "/attributes/nothing"):
        resp = await _get(client, path)
        assert resp.status_code == 404
        assert resp.json()["type"] == ERR + "ResourceNotFound"
    bad = await _get(client, "/types", invalidParams="x")
    assert bad.status_code == 400
    assert bad.json()["type"] == ERR + "InvalidRequest"


async def test_discovery_of_an_empty_broker(client: httpx.AsyncClient) -> None:
    assert (await _get(client, "/types")).json()["typeList"] == []
    assert (await _get(client, "/attributes", details="true")).json() == []


# --- the store against a pure-Python evaluation ---------------------------------------------------


async def test_2000_entities_match_python_evaluation(
    client: httpx.AsyncClient, store: Store
) -> None:
    rng = random.Random(7)
    docs = []
    for n in range(2000):
        doc: dict[str, Any] = {
            "id": f"urn:ngsi-ld:Sensor:{n:05d}",
            "type": rng.choice(["Sensor", "Meter", ["Sensor", "Meter"]]),
            "temperature": {"type": "Property", "value": round(rng.uniform(-10, 40), 2)},
            "status": {"type": "Property", "value": rng.choice(["ok", "fault", "stale"])},
        }
        if rng.random() < 0.8:
            lonlat = [round(rng.uniform(13.0, 13.8), 5), round(rng.uniform(52.3, 52.7), 5)]
            doc["location"] = {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": lonlat},
            }
        if rng.random() < 0.5:
            doc["scope"] = rng.choice(["/a", "/a/b", "/c"])
        docs.append(doc)
    await _put(store, docs)
    cases: list[dict[str, str]] = [
        {"type": "Sensor", "q": "temperature>20;status==\"ok\""},
        {"type": "Sensor;Meter", "q": "temperature<0|status==\"fault\""},
        {"type": "Meter", "q": 'status~="^(ok|st)"'},
        {"type": "Sensor,Meter", "georel": "near;maxDistance==8000", "geometry": "Point",
         "coordinates": "[13.4,52.5]"},
        {"q": "temperature>=10", "georel": "within", "geometry": "Polygon",
         "coordinates": "[[[13.2,52.4],[13.5,52.4],[13.5,52.6],[13.2,52.6],[13.2,52.4]]]"},
        {"type": "Sensor", "scopeQ": "/a/#", "q": "temperature<25"},
        {"type": "Sensor", "idPattern": "0[0-4]$", "attrs": "location"},
    ]  # fmt: skip
    for params in cases:
        expected = [d["id"] for d in docs if _python_query(params).matches(d)]
        got: list[str] = []
        offset = 0
        while True:
            resp = await _get(client, limit=1000, offset=offset, count="true", **params)
            page = _ids(resp)
            assert int(resp.headers["ngsild-results-count"]) == len(expected), params
            got.extend(page)
            offset += 1000
            if offset >= len(expected):
                break
        assert got == sorted(expected), params
        assert expected, params  # each case selects something


def _python_query(params: dict[str, str]) -> EntityQuery:
    from ldt.cloud.ngsild.query import parse_scope_q
    from ldt.cloud.ngsild.safe_regex import SafeRegex

    geo = parse_geoquery(
        georel=params.get("georel"),
        geometry=params.get("geometry"),
        coordinates=params.get("coordinates"),
    )
    return EntityQuery(
        types=parse_types(params["type"]) if "type" in params else None,
        id_pattern=SafeRegex(params["idPattern"]) if "idPattern" in params else None,
        attrs=tuple(params["attrs"].split(",")) if "attrs" in params else None,
        q=map_q_names(parse_q(params["q"]), str) if "q" in params else None,
        scope=parse_scope_q(params["scopeQ"]) if "scopeQ" in params else None,
        geo=geo,
    )


async def test_a_trailing_slash_queries_rather_than_retrieving_an_empty_id(
    client: httpx.AsyncClient,
) -> None:
    """ETSI's conformance suite sends ``GET /entities/?type=...``: a query, not id ''."""
    resp = await client.get("/ngsi-ld/v1/entities/", params={"type": "Nothing"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == []


@pytest.mark.parametrize("path", ["/ngsi-ld/v1/types/", "/ngsi-ld/v1/attributes/"])
async def test_discovery_lists_answer_with_a_trailing_slash(
    client: httpx.AsyncClient, path: str
) -> None:
    """ETSI's suite sends ``GET /types/``: the list, not the type named ''."""
    resp = await client.get(path)
    assert resp.status_code == 200, resp.text
