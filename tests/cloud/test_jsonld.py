"""JSON-LD expansion/compaction of NGSI-LD names against the core and user @contexts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldt.cloud.ngsild.jsonld import (
    DEFAULT_VOCAB,
    ActiveContext,
    ContextError,
    compact_entity,
    compact_iri,
    core_context,
    expand_entity,
    expand_term,
    expand_terms,
)

NGSI = "https://uri.etsi.org/ngsi-ld/"
SDM = "https://smartdatamodels.org/"
WEATHER = SDM + "dataModel.Weather/"

# the shape of Smart Data Models' context.jsonld: prefixes, then terms as CURIEs and IRIs
SDM_CONTEXT: dict[str, Any] = {
    "id": "@id",
    "type": "@type",
    "ngsi-ld": NGSI,
    "schema": "https://schema.org/",
    "sdm": SDM,
    "sdm-weather": WEATHER,
    "WeatherObserved": "sdm-weather:WeatherObserved",
    "temperature": "sdm-weather:temperature",
    "relativeHumidity": WEATHER + "relativeHumidity",
    "name": "schema:name",
    "refDevice": {"@id": "sdm:refDevice", "@type": "@id"},
    "dataProvider": {"@id": "sdm:dataProvider"},
}


def weather(**extra: Any) -> dict[str, Any]:
    return {
        "id": "urn:ngsi-ld:WeatherObserved:1",
        "type": "WeatherObserved",
        "temperature": {
            "type": "Property",
            "value": 21.5,
            "unitCode": "CEL",
            "observedAt": "2026-01-01T00:00:00.000Z",
            "accuracy": {"type": "Property", "value": 0.1},
        },
        "relativeHumidity": {"type": "Property", "value": 0.4},
        "name": "Plaza",
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
        "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:7"},
        "@context": ["https://example.org/ignored.jsonld"],
        **extra,
    }


def test_core_terms_prefixes_and_the_default_vocab() -> None:
    core = core_context()
    assert core.vocab == DEFAULT_VOCAB
    assert expand_term("location", core) == NGSI + "location"
    assert expand_term("Property", core) == NGSI + "Property"
    assert expand_term("Point", core) == "https://purl.org/geojson/vocab#Point"
    assert expand_term("ngsi-ld:anything", core) == NGSI + "anything"  # CURIE
    assert expand_term("temperature", core) == DEFAULT_VOCAB + "temperature"  # nobody defines it
    assert expand_term("urn:x:y", core) == "urn:x:y"  # an IRI is itself
    assert compact_iri(NGSI + "location", core) == "location"
    assert compact_iri(DEFAULT_VOCAB + "temperature", core) == "temperature"
    assert compact_iri(NGSI + "notATerm", core) == "ngsi-ld:notATerm"
    assert compact_iri("http://example.org/x", core) == "http://example.org/x"


def test_entity_round_trip_with_a_smart_data_models_context() -> None:
    ctx = ActiveContext.build([SDM_CONTEXT])
    doc = weather()
    expanded = expand_entity(doc, ctx)
    assert expanded["type"] == WEATHER + "WeatherObserved"
    assert set(expanded) == {
        "id",
        "type",
        WEATHER + "temperature",
        WEATHER + "relativeHumidity",
        "https://schema.org/name",
        NGSI + "location",
        SDM + "refDevice",
    }
    temp = expanded[WEATHER + "temperature"]
    assert temp["unitCode"] == "CEL"
    assert temp["observedAt"].endswith("Z")
    assert DEFAULT_VOCAB + "accuracy" in temp  # sub-attribute, undefined: default vocab
    assert expanded[NGSI + "location"]["value"] == {"type": "Point", "coordinates": [1, 2]}
    assert expanded[SDM + "refDevice"]["object"] == "urn:ngsi-ld:Device:7"  # values untouched
    del doc["@context"]
    assert compact_entity(expanded, ctx) == doc
    # another client, with only the core: the broker's names, full IRIs where it has no term
    seen = compact_entity(expanded, core_context())
    assert seen["type"] == WEATHER + "WeatherObserved"
    assert seen[WEATHER + "temperature"]["accuracy"]["value"] == 0.1
    assert "location" in seen


def test_concise_form_vocab_members_and_multi_instances() -> None:
    ctx = ActiveContext.build([{"ex": "http://example.org/", "Shade": "ex:Shade"}])
    doc = {
        "id": "urn:a",
        "type": ["Tree", "ex:Plant"],
        "location": {"type": "Point", "coordinates": [3, 4]},  # concise GeoProperty: a value
        "colour": {"vocab": "Shade"},  # concise VocabProperty
        "owner": {"object": "urn:b", "objectType": "Person"},
        "height": [
            {"type": "Property", "value": 3, "datasetId": "urn:d:1"},
            {"type": "Property", "value": 4, "datasetId": "urn:d:2", "ex:note": "x"},
        ],
        "label": "plain",
        "kind": {"type": "ngsi-ld:Property", "value": 1},  # a CURIE for the attribute type
    }
    out = expand_entity(doc, ctx)
    assert out["type"] == [DEFAULT_VOCAB + "Tree", "http://example.org/Plant"]
    assert out[NGSI + "location"] == {"type": "Point", "coordinates": [3, 4]}
    assert out[DEFAULT_VOCAB + "colour"] == {"vocab": "http://example.org/Shade"}
    assert out[DEFAULT_VOCAB + "owner"]["objectType"] == DEFAULT_VOCAB + "Person"
    assert out[DEFAULT_VOCAB + "height"][1]["http://example.org/note"] == "x"
    assert out[DEFAULT_VOCAB + "kind"]["type"] == "Property"
    back = compact_entity(out, ctx)
    assert back["type"] == ["Tree", "ex:Plant"]
    assert back["colour"] == {"vocab": "Shade"}
    assert back["height"][1]["ex:note"] == "x"


def test_the_core_context_is_applied_last_and_wins() -> None:
    ctx = ActiveContext.build(
        [{"@vocab": "http://example.org/vocab/", "location": "http://example.org/where"}]
    )
    assert expand_term("location", ctx) == NGSI + "location"  # core terms cannot be redefined
    assert expand_term("foo", ctx) == DEFAULT_VOCAB + "foo"  # nor its @vocab
    user_only = ActiveContext.build([{"@vocab": "http://example.org/vocab/"}], core=False)
    assert expand_term("foo", user_only) == "http://example.org/vocab/foo"


def test_prefix_rules_follow_json_ld_1_1() -> None:
    ctx = ActiveContext.build(
        [
            {
                "expanded": {"@id": "http://example.org/a/"},  # not a prefix without @prefix
                "flagged": {"@id": "http://example.org/b/", "@prefix": True},
                "hashed": "http://example.org/c#",
                "later": "hashed:term",  # order of definition does not matter
                "nulled": None,
            }
        ]
    )
    assert expand_term("expanded:x", ctx) == "expanded:x"
    assert expand_term("flagged:x", ctx) == "http://example.org/b/x"
    assert expand_term("later", ctx) == "http://example.org/c#term"
    assert expand_term("nulled", ctx) is None
    assert compact_iri("http://example.org/c#zzz", ctx) == "hashed:zzz"
    assert compact_iri("http://example.org/c#term", ctx) == "later"  # a term beats a CURIE
    assert expand_terms("later, location", ctx) == ["http://example.org/c#term", NGSI + "location"]
    doc = {"id": "urn:a", "type": "T", "nulled": {"type": "Property", "value": 1}}
    assert "nulled" not in str(expand_entity(doc, ctx))  # JSON-LD drops null-mapped terms


@pytest.mark.parametrize(
    ("local", "fragment"),
    [
        ({"a": "b:x", "b": "a:y"}, "cyclically"),
        ({"@import": "http://example.org/c"}, "@import"),
        ({"@vocab": 7}, "@vocab"),
        ({"@vocab": "relative"}, "not an absolute IRI"),
        ({"t": 5}, "string or object"),
        ({"t": {"@id": 5}}, "@id"),
        ({"t": {"@id": "http://x/", "@container": 3}}, "@container"),
    ],
)
def test_malformed_contexts_are_refused(local: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ContextError) as err:
        ActiveContext.build([local])
    assert err.value.problem == "InvalidRequest"
    assert fragment in str(err.value)


def test_two_names_for_one_attribute_are_bad_request_data() -> None:
    doc = {"id": "urn:a", "type": "T", "speed": 1, DEFAULT_VOCAB + "speed": 2}
    with pytest.raises(ContextError) as err:
        expand_entity(doc, core_context())
    assert err.value.problem == "BadRequestData"
    with pytest.raises(ContextError):
        expand_entity({"id": "urn:a", "type": 5}, core_context())
    with pytest.raises(ContextError):
        expand_terms("a,,b", core_context())


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,30}", fullmatch=True))
def test_every_plain_name_round_trips(name: str) -> None:
    ctx = ActiveContext.build([SDM_CONTEXT])
    iri = expand_term(name, ctx)
    assert iri is not None
    assert ":" in iri
    assert compact_iri(iri, ctx) == name


def test_expansion_speed_for_ten_attribute_entities() -> None:
    ctx = ActiveContext.build([SDM_CONTEXT])
    entities = [
        {
            "id": f"urn:ngsi-ld:WeatherObserved:{i}",
            "type": "WeatherObserved",
            **{
                f"attr{a}": {
                    "type": "Property",
                    "value": i + a,
                    "observedAt": "2026-01-01T00:00:00Z",
                }
                for a in range(10)
            },
        }
        for i in range(20_000)
    ]
    start = time.perf_counter()
    expanded = [expand_entity(e, ctx) for e in entities]
    expand_rate = len(entities) / (time.perf_counter() - start)
    start = time.perf_counter()
    for e in expanded:
        compact_entity(e, ctx)
    compact_rate = len(entities) / (time.perf_counter() - start)
    print(f"\nexpand {expand_rate:,.0f} entities/s, compact {compact_rate:,.0f} entities/s")
    assert expand_rate > 10_000
    assert compact_rate > 10_000
