"""The manifest: what it accepts, and a readable sentence for everything it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ldt.models.manifest import ModelError, parse_manifest
from tests.models.factories import manifest_dict


def test_a_valid_manifest_round_trips_through_json() -> None:
    m = parse_manifest(manifest_dict(windows=(12, 4), outputs=2))
    assert m.input_size == 16
    assert m.output_size == 2
    assert m.limits.max_latency_ms == 50.0
    assert m.limits.max_model_bytes == 4 << 20
    assert m.limits.threads == 1
    assert parse_manifest(m.to_json()) == m


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid manifest with one field (``inputs.0.window``) replaced, or removed if ``...``."""
    data = manifest_dict()
    *parents, key = path.split(".")
    target: Any = data
    for p in parents:
        target = target[int(p)] if p.isdigit() else target[p]
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        ("name", "-leading-dash", "name: '-leading-dash' is not a model name"),
        ("name", "x" * 65, "is not a model name"),
        ("version", "1 0", "version: '1 0' is not a version"),
        ("license", ..., "license is required"),
        ("license", " ", "license: must name the model's licence"),
        ("inputs", [], "inputs: List should have at least 1 item"),
        ("inputs.0.window", 0, "inputs[0].window: Input should be greater than or equal to 1"),
        ("inputs.0.window", "12", "inputs[0].window: Input should be a valid integer"),
        ("inputs.0.step", 0, "inputs[0].step: Input should be greater than or equal to 1"),
        (
            "inputs.0.normalise",
            {"mean": 0, "std": 0},
            "inputs[0].normalise.std: Input should be greater than 0",
        ),
        ("inputs.0.device", "", "inputs[0].device: '' is not a device id"),
        ("inputs.0.colour", "red", "inputs[0].colour is not a manifest field"),
        (
            "outputs.0.attribute",
            "9lives",
            "outputs[0].attribute: '9lives' is not an NGSI-LD attribute name",
        ),
        ("outputs.0.unit", "kW", "outputs[0].unit: 'kW' is not a UN/CEFACT unit code"),
        ("outputs.0.denormalise", {"mean": 1}, "outputs[0].denormalise.std is required"),
        ("limits", {"threads": 0}, "limits.threads: Input should be greater than or equal to 1"),
        (
            "limits",
            {"max_model_bytes": 1 << 40},
            "limits.max_model_bytes: Input should be less than",
        ),
        ("limits", {"max_latency_ms": -1}, "limits.max_latency_ms: Input should be greater than 0"),
    ],
)
def test_invalid_fields_are_refused_with_their_place_and_reason(
    path: str, value: Any, says: str
) -> None:
    with pytest.raises(ModelError, match=r"^manifest is invalid: ") as exc:
        parse_manifest(json.dumps(_with(path, value)))
    assert says in str(exc.value)


def test_every_problem_is_reported_in_one_sentence() -> None:
    data = manifest_dict()
    data["name"] = "bad name"
    data["inputs"][0]["window"] = -3
    del data["license"]
    with pytest.raises(ModelError) as exc:
        parse_manifest(data)
    message = str(exc.value)
    assert "\n" not in message
    assert message.count(";") == 2
    for part in ("name:", "inputs[0].window:", "license is required"):
        assert part in message


def test_repeated_outputs_are_refused() -> None:
    data = manifest_dict(outputs=2)
    data["outputs"][1]["attribute"] = data["outputs"][0]["attribute"]
    with pytest.raises(ModelError, match="output 'out0' of device 'meter-1' is repeated"):
        parse_manifest(data)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "manifest is not valid JSON"),
        (b"\xff\xfe", "manifest is not valid JSON"),
        (b"[1, 2]", "manifest must be a JSON object"),
    ],
)
def test_a_manifest_that_is_not_a_json_object_is_refused(raw: bytes, says: str) -> None:
    with pytest.raises(ModelError, match=says):
        parse_manifest(raw)
