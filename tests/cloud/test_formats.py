"""Representations (normalized, concise, keyValues), options/format, Accept, Link, GeoJSON."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from ldt.cloud.ngsild.formats import (
    GEO_JSON,
    Representation,
    entities_response,
    feature,
    feature_collection,
    link_context,
    negotiate_read,
    parse_representation,
    render,
)
from ldt.cloud.ngsild.problems import NgsiLdError

POINT = {"type": "Point", "coordinates": [13.4, 52.5]}
ENTITY: dict[str, Any] = {
    "id": "urn:ngsi-ld:Car:1",
    "type": "Car",
    "createdAt": "2024-01-01T00:00:00.000Z",
    "speed": {
        "type": "Property",
        "value": 80,
        "unitCode": "KMH",
        "createdAt": "2024-01-01T00:00:00.000Z",
        "accuracy": {"type": "Property", "value": 0.5, "modifiedAt": "2024-01-01T00:00:00.000Z"},
    },
    "plain": {"type": "Property", "value": 3},
    "config": {"type": "Property", "value": {"a": 1, "createdAt": "kept: it is a value"}},
    "location": {"type": "GeoProperty", "value": POINT},
    "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
    "name": {"type": "LanguageProperty", "languageMap": {"en": "car", "de": "Auto"}},
    "tags": {"type": "ListProperty", "valueList": [1, 2]},
    "color": {"type": "VocabProperty", "vocab": "red"},
    "raw": {"type": "JsonProperty", "json": {"x": [1]}},
    "fleet": {"type": "ListRelationship", "objectList": [{"object": "urn:a:1"}]},
    "multi": [
        {"type": "Property", "value": 1, "datasetId": "urn:d:1"},
        {"type": "Property", "value": 2, "datasetId": "urn:d:2"},
    ],
}


def _request(query: str = "", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/ngsi-ld/v1/entities",
        "query_string": query.encode(),
        "headers": raw,
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", Representation()),
        ("options=keyValues", Representation("simplified")),
        ("options=sysAttrs,concise", Representation("concise", sys_attrs=True)),
        ("format=simplified&options=sysAttrs", Representation("simplified", sys_attrs=True)),
        ("format=keyValues", Representation("simplified")),
        ("format=normalized&options=keyValues", Representation("normalized")),
        ("options=normalized", Representation("normalized")),
    ],
)
def test_parse_representation(query: str, expected: Representation) -> None:
    assert parse_representation(_request(query)) == expected


@pytest.mark.parametrize(
    "query",
    [
        "options=invalid",
        "options=keyValues,invalid",
        "options=",
        "options=keyValues,concise",
        "format=x",
    ],
)
def test_bad_representation_is_invalid_request(query: str) -> None:
    with pytest.raises(NgsiLdError) as caught:
        parse_representation(_request(query))
    assert (caught.value.status, caught.value.kind) == (400, "InvalidRequest")


def test_normalized_drops_system_attributes_only_in_attributes() -> None:
    out = render(ENTITY, Representation())
    assert "createdAt" not in out
    assert out["speed"] == {
        "type": "Property",
        "value": 80,
        "unitCode": "KMH",
        "accuracy": {"type": "Property", "value": 0.5},
    }
    assert out["config"]["value"]["createdAt"] == "kept: it is a value"
    with_sys = render(ENTITY, Representation(sys_attrs=True))
    assert with_sys["createdAt"] == ENTITY["createdAt"]
    assert with_sys["speed"]["accuracy"]["modifiedAt"] == "2024-01-01T00:00:00.000Z"


def test_simplified() -> None:
    out = render(ENTITY, Representation("simplified", sys_attrs=True))
    assert out == {
        "id": "urn:ngsi-ld:Car:1",
        "type": "Car",
        "speed": 80,
        "plain": 3,
        "config": {"a": 1, "createdAt": "kept: it is a value"},
        "location": POINT,
        "owner": "urn:ngsi-ld:Person:1",
        "name": {"en": "car", "de": "Auto"},
        "tags": [1, 2],
        "color": "red",
        "raw": {"x": [1]},
        "fleet": [{"object": "urn:a:1"}],
        "multi": {"dataset": {"urn:d:1": 1, "urn:d:2": 2}},
    }


def test_concise() -> None:
    out = render(ENTITY, Representation("concise"))
    assert out["speed"] == {"value": 80, "unitCode": "KMH", "accuracy": 0.5}
    assert out["plain"] == 3
    assert out["config"] == {"value": {"a": 1, "createdAt": "kept: it is a value"}}
    assert out["location"] == POINT
    assert out["owner"] == {"object": "urn:ngsi-ld:Person:1"}
    assert out["name"] == {"languageMap": {"en": "car", "de": "Auto"}}
    assert out["tags"] == {"valueList": [1, 2]}
    assert out["color"] == {"vocab": "red"}
    assert out["raw"] == {"json": {"x": [1]}}
    assert out["multi"] == [
        {"value": 1, "datasetId": "urn:d:1"},
        {"value": 2, "datasetId": "urn:d:2"},
    ]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/ld+json", "application/ld+json"),
        ("application/geo+json", GEO_JSON),
        ("application/json;q=0.5, application/geo+json", GEO_JSON),
        ("application/geo+json;q=0.1, application/json", "application/json"),
        ("text/html, application/*", "application/json"),
    ],
)
def test_negotiate_read(accept: str | None, expected: str) -> None:
    headers = {} if accept is None else {"accept": accept}
    assert negotiate_read(_request(headers=headers)) == expected


def test_negotiate_refuses_what_it_cannot_send() -> None:
    with pytest.raises(NgsiLdError) as caught:
        negotiate_read(_request(headers={"accept": "text/csv, application/json;q=0"}))
    assert caught.value.status == 406


def test_link_context() -> None:
    link = (
        '<https://x.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context";'
        ' type="application/ld+json"'
    )
    assert link_context(_request(headers={"link": link})) == "https://x.org/ctx.jsonld"
    assert link_context(_request(headers={"link": '<https://x.org/a>; rel="next"'})) is None
    assert link_context(_request()) is None
    with pytest.raises(NgsiLdError):
        link_context(_request(headers={"link": f"{link}, {link}"}))


def test_geojson_feature_and_collection() -> None:
    rendered = render(ENTITY, Representation("simplified"))
    one = feature(ENTITY, rendered, geometry_property="location")
    assert one["id"] == "urn:ngsi-ld:Car:1"
    assert one["type"] == "Feature"
    assert one["geometry"] == POINT
    assert one["properties"]["type"] == "Car"
    assert "id" not in one["properties"]
    assert feature(ENTITY, rendered, geometry_property="speed")["geometry"] is None
    assert feature(ENTITY, rendered, geometry_property="absent")["geometry"] is None
    collection = feature_collection([one])
    response = entities_response(collection, GEO_JSON, context=None)
    assert response.media_type == GEO_JSON
    assert b'"@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"' in (
        response.body
    )
    assert b'"type":"FeatureCollection"' in response.body
