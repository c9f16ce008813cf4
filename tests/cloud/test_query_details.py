"""Read-side details on both stores: ``lang``, ``datasetId``, pick/omit rules, ``local=true``,
``attrs`` naming nothing the entity has, and geo-queries on the temporal representation.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ldt.cloud.ngsild.datasets import keep_datasets, parse_dataset_ids
from ldt.cloud.ngsild.languages import parse_lang, select_languages
from ldt.cloud.ngsild.problems import NgsiLdError

BASE = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
PLACE = "urn:ngsi-ld:Place:1"
STREET = {"type": "LanguageProperty", "languageMap": {"fr": "Grand Place", "nl": "Grote Markt"}}


# --- lang ------------------------------------------------------------------------------------


def test_lang_ranges_are_ranked_by_weight_then_order() -> None:
    assert parse_lang("fr") == ("fr",)
    assert parse_lang("fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5") == ("fr-ch", "fr", "en", "*")
    assert parse_lang("en;q=0.2,nl") == ("nl", "en")
    assert parse_lang("de;q=0,fr") == ("fr",)  # q=0: not wanted


@pytest.mark.parametrize("text", ["", "fr;q=2", "fr;x=1", "f r", "fr;q=0.12345", "123"])
def test_bad_lang_is_400(text: str) -> None:
    with pytest.raises(NgsiLdError) as caught:
        parse_lang(text)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("lang", "value", "tag"),
    [
        ("fr", "Grand Place", "fr"),
        ("fr-CH,fr", "Grand Place", "fr"),  # fr-CH matches no tag; fr does
        ("nl;q=0.8,fr", "Grand Place", "fr"),
        ("NL", "Grote Markt", "nl"),
        ("*", "Grand Place", "fr"),  # the map's first language
        ("de", "Grand Place", "fr"),  # nothing matches, no @none: the first
    ],
)
def test_a_language_property_becomes_one_property(lang: str, value: str, tag: str) -> None:
    shown = select_languages({"id": PLACE, "street": STREET}, parse_lang(lang))
    assert shown["street"] == {"type": "Property", "value": value, "lang": tag}


def test_at_none_is_the_fallback_and_sub_attributes_are_narrowed_too() -> None:
    sign = {
        "type": "Property",
        "value": 1,
        "label": {"type": "LanguageProperty", "languageMap": {"@none": "x", "de": "y"}},
    }
    shown = select_languages({"sign": sign}, parse_lang("fr"))
    assert shown["sign"]["label"] == {"type": "Property", "value": "x", "lang": "@none"}
    assert shown["sign"]["value"] == 1


# --- datasetId -------------------------------------------------------------------------------


def test_dataset_ids_keep_instances_not_entities() -> None:
    entity = {
        "id": PLACE,
        "type": "Place",
        "name": [
            {"type": "Property", "value": "a"},
            {"type": "Property", "value": "b", "datasetId": "urn:ds:b"},
        ],
        "size": {"type": "Property", "value": 3, "datasetId": "urn:ds:c"},
    }
    assert keep_datasets(entity, parse_dataset_ids("@none")) == {
        "id": PLACE,
        "type": "Place",
        "name": {"type": "Property", "value": "a"},
    }
    both = keep_datasets(entity, parse_dataset_ids("urn:ds:b,urn:ds:c"))
    assert both["name"] == {"type": "Property", "value": "b", "datasetId": "urn:ds:b"}
    assert both["size"]["value"] == 3
    assert keep_datasets(entity, parse_dataset_ids("urn:ds:z")) == {"id": PLACE, "type": "Place"}
    with pytest.raises(NgsiLdError):
        parse_dataset_ids("not a uri")


# --- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture
async def places(client: httpx.AsyncClient) -> httpx.AsyncClient:
    docs: list[dict[str, Any]] = [
        {
            "id": PLACE,
            "type": "Place",
            "street": STREET,
            "name": [
                {"type": "Property", "value": "Grand Place"},
                {"type": "Property", "value": "Big Square", "datasetId": "urn:ds:en"},
            ],
        },
        {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": {"type": "Property", "value": 3}},
    ]
    for doc in docs:
        resp = await client.post(f"{BASE}/entities", json=doc)
        assert resp.status_code == 201, resp.text
    return client


async def test_lang_on_retrieval_and_query(places: httpx.AsyncClient) -> None:
    one = await places.get(f"{BASE}/entities/{PLACE}", params={"lang": "nl"})
    assert one.json()["street"] == {"type": "Property", "value": "Grote Markt", "lang": "nl"}
    simplified = await places.get(
        f"{BASE}/entities", params={"type": "Place", "lang": "*", "options": "keyValues"}
    )
    assert simplified.json()[0]["street"] == "Grand Place"
    bad = await places.get(f"{BASE}/entities/{PLACE}", params={"lang": "fr;q=7"})
    assert bad.status_code == 400


async def test_dataset_id_on_query(places: httpx.AsyncClient) -> None:
    resp = await places.get(
        f"{BASE}/entities", params={"type": "Place", "datasetId": "urn:ds:en", "attrs": "name"}
    )
    (place,) = resp.json()
    assert place["name"] == {"type": "Property", "value": "Big Square", "datasetId": "urn:ds:en"}
    default = await places.get(f"{BASE}/entities", params={"type": "Place", "datasetId": "@none"})
    assert default.json()[0]["name"] == {"type": "Property", "value": "Grand Place"}


async def test_pick_and_omit_rules(places: httpx.AsyncClient) -> None:
    for params in ({"pick": "name", "attrs": "name"}, {"omit": "name", "attrs": "name"}):
        for path in (f"/entities/{PLACE}", "/entities"):
            resp = await places.get(BASE + path, params={"type": "Place", **params})
            assert resp.status_code == 400, (path, params, resp.text)
            assert resp.json()["type"] == ERR + "BadRequestData"
    # a query leaves out what pick leaves empty; a retrieval answers 404
    picked = await places.get(f"{BASE}/entities", params={"type": "Place,Car", "pick": "speed"})
    assert picked.json() == [{"speed": {"type": "Property", "value": 3}}]
    gone = await places.get(f"{BASE}/entities/{PLACE}", params={"pick": "speed"})
    assert gone.status_code == 404
    assert gone.json()["type"] == ERR + "ResourceNotFound"
    everything = await places.get(
        f"{BASE}/entities/{PLACE}", params={"omit": "id,type,street,name"}
    )
    assert everything.status_code == 404


async def test_attrs_naming_nothing_the_entity_has_is_404(places: httpx.AsyncClient) -> None:
    resp = await places.get(f"{BASE}/entities/{PLACE}", params={"attrs": "unknownThing"})
    assert resp.status_code == 404
    assert resp.json()["type"] == ERR + "ResourceNotFound"
    some = await places.get(f"{BASE}/entities/{PLACE}", params={"attrs": "unknownThing,name"})
    assert some.status_code == 200


async def test_local_true_queries_every_entity(places: httpx.AsyncClient) -> None:
    resp = await places.get(f"{BASE}/entities", params={"local": "true"})
    assert sorted(e["id"] for e in resp.json()) == ["urn:ngsi-ld:Car:1", PLACE]
    assert (await places.get(f"{BASE}/entities")).status_code == 400


def _vehicle(n: int, positions: list[tuple[list[float], str]]) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Vehicle:{n}",
        "type": "Vehicle",
        "speed": {"type": "Property", "value": n, "observedAt": positions[0][1]},
        "location": [
            {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": lonlat},
                "observedAt": at,
            }
            for lonlat, at in positions
        ],
    }


async def test_temporal_geo_query_matches_where_the_entity_was(client: httpx.AsyncClient) -> None:
    porto, paris = [-8.5, 41.2], [2.35, 48.85]
    vehicles = [
        _vehicle(1, [(paris, "2020-10-01T12:00:00Z"), (porto, "2020-10-01T12:05:00Z")]),
        _vehicle(2, [(paris, "2020-10-01T12:00:00Z")]),
        _vehicle(3, [(porto, "2020-09-01T12:00:00Z")]),  # there, but before the window
    ]
    for doc in vehicles:
        resp = await client.post(f"{BASE}/temporal/entities", json=doc)
        assert resp.status_code == 201, resp.text
    params = {
        "type": "Vehicle",
        "georel": "near;maxDistance==2000",
        "geometry": "Point",
        "coordinates": "[-8.503,41.202]",
        "timerel": "after",
        "timeAt": "2020-10-01T00:00:00Z",
        "count": "true",
    }
    resp = await client.get(f"{BASE}/temporal/entities", params=params)
    assert resp.status_code == 200, resp.text
    assert [e["id"] for e in resp.json()] == ["urn:ngsi-ld:Vehicle:1"]
    assert resp.headers["NGSILD-Results-Count"] == "1"
    bad = await client.get(f"{BASE}/temporal/entities", params={**params, "georel": "nearby"})
    assert bad.status_code == 400
    rows = await client.get(
        f"{BASE}/temporal/entities",
        params={**params, "coordinates": "[100,0]", "georel": "near;maxDistance==10"},
    )
    assert rows.json() == []
    assert rows.headers["NGSILD-Results-Count"] == "0"


async def test_temporal_dataset_id_keeps_instances_and_drops_empty_entities(
    client: httpx.AsyncClient,
) -> None:
    doc = {
        "id": "urn:ngsi-ld:Vehicle:9",
        "type": "Vehicle",
        "speed": [
            {"type": "Property", "value": 1, "observedAt": "2020-10-01T12:00:00Z"},
            {
                "type": "Property",
                "value": 2,
                "observedAt": "2020-10-01T12:00:00Z",
                "datasetId": "urn:ds:gps",
            },
        ],
    }
    resp = await client.post(f"{BASE}/temporal/entities", json=doc)
    assert resp.status_code == 201, resp.text
    params = {"type": "Vehicle", "timerel": "after", "timeAt": "2020-01-01T00:00:00Z"}
    gps = await client.get(
        f"{BASE}/temporal/entities", params={**params, "datasetId": "urn:ds:gps"}
    )
    (vehicle,) = gps.json()
    assert [i["value"] for i in _instances(vehicle["speed"])] == [2]
    default = await client.get(f"{BASE}/temporal/entities", params={**params, "datasetId": "@none"})
    assert [i["value"] for i in _instances(default.json()[0]["speed"])] == [1]
    none = await client.get(f"{BASE}/temporal/entities", params={**params, "datasetId": "urn:ds:x"})
    assert none.json() == []


def _instances(attr: Any) -> list[dict[str, Any]]:
    return attr if isinstance(attr, list) else [attr]
