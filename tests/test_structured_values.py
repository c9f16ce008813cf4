"""Structured values (an instant, JSON data) travel only when both sides can store them:
the rule ``ldt.reading.json_problem`` applies in the drivers, the buffer and the cloud's
ingest (found by the review of issue 15: a NUL inside a structure, or an integer beyond
64 bits, was accepted by the agent and failed later, with a 500 or a crash loop)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from ldt.contract import IngestBatch, wire_value
from ldt.reading import Structured

BAD = [
    ({"k": "a\x00b"}, "NUL"),
    ([2**70], "beyond 64 bits"),
    ([float("nan")], "finite"),
    ({"x": [float("inf")]}, "finite"),
]


@pytest.mark.parametrize(("data", "words"), BAD)
def test_a_driver_cannot_build_a_value_that_would_not_travel(data: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Structured.of_json(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "words"), BAD)
def test_the_cloud_refuses_such_a_value_with_a_400_not_a_500(data: object, words: str) -> None:
    text = json.dumps(data, allow_nan=True).replace("NaN", "1e400").replace("Infinity", "1e400")
    body = (
        '{"gateway_id":"g","series":{"1":{"entity_id":"urn:a:b","entity_type":"T",'
        f'"attr":"x"}}}},"readings":[[1,1,0,{text},"good",null]]}}'
    )
    with pytest.raises(ValidationError, match=words if words != "finite" else "finite|inf"):
        IngestBatch.model_validate_json(body)


def test_good_values_travel_as_they_are() -> None:
    instant = wire_value(Structured("instant", "2026-01-02T03:04:05.678Z"))
    assert instant == {"@type": "DateTime", "@value": "2026-01-02T03:04:05.678Z"}
    data = Structured.of_json({"low": 0.0, "high": 10.5, "tags": ["a", None, True, 2**63]})
    assert wire_value(data) == {"low": 0.0, "high": 10.5, "tags": ["a", None, True, 2**63]}
