"""The manifest of a model bundle: what the model reads, what it writes, what it may cost.

The manifest is the contract between a ``.tflite`` file and the gateway. Its
``inputs`` say which readings feed the model and how they are scaled; the
input tensor is their windows concatenated in order, shape ``[1, sum(window)]``
float32. Its ``outputs`` say which NGSI-LD attribute each element of the
``[1, len(outputs)]`` float32 output tensor becomes. The interpreter checks
the tensors against this before the model runs, so a mismatch is refused at
load time, never discovered as garbage on the dashboard.

Every refusal in ``ldt.models`` is a ``ModelError`` whose message is the reason.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ldt.error_location import error_location

__all__ = [
    "MAX_MODEL_BYTES",
    "Limits",
    "ModelError",
    "ModelInput",
    "ModelManifest",
    "ModelOutput",
    "Normalisation",
    "parse_manifest",
]

MAX_MODEL_BYTES: Final = 64 << 20
"""The most any manifest may allow a model to weigh: a gateway is a Raspberry Pi."""

_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,31}$")
_ATTRIBUTE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_UNIT: Final = re.compile(r"^[A-Z0-9]{1,16}$")
_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ModelError(ValueError):
    """A model, bundle or manifest refused, or a model that cannot run; the message says why."""


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not {what}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Normalisation(_Strict):
    """An affine scaling: inputs become ``(x - mean) / std``, outputs ``y * std + mean``."""

    mean: float
    std: Annotated[float, Field(gt=0.0)]

    @field_validator("mean", "std")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class ModelInput(_Strict):
    """One block of the input tensor: the last ``window`` readings of one point."""

    device: str
    """Device id, as in the gateway's configuration."""
    point: str
    """Point name in the device's profile: the reading source."""
    window: Annotated[int, Field(ge=1, le=4096)]
    """Consecutive readings that form the block, oldest first."""
    step: Annotated[int, Field(ge=1)] = 1
    """Run the model every ``step`` new readings of this point."""
    normalise: Normalisation = Normalisation(mean=0.0, std=1.0)

    @field_validator("device", "point")
    @classmethod
    def _ident(cls, v: str) -> str:
        return _check(_ID, v, "a device id or point name (letters, digits, '.', '_', ':', '-')")


class ModelOutput(_Strict):
    """One element of the output tensor, published as an NGSI-LD attribute."""

    attribute: str
    device: str
    """The device whose entity receives the attribute."""
    unit: str | None = None
    """UN/CEFACT common code (``KWT``, ``CEL``), as NGSI-LD ``unitCode``."""
    denormalise: Normalisation | None = None

    @field_validator("attribute")
    @classmethod
    def _attribute(cls, v: str) -> str:
        return _check(
            _ATTRIBUTE, v, "an NGSI-LD attribute name (a letter or '_', then [A-Za-z0-9_])"
        )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return _check(_ID, v, "a device id (letters, digits, '.', '_', ':', '-')")

    @field_validator("unit")
    @classmethod
    def _unit(cls, v: str | None) -> str | None:
        if v is None:
            return v
        return _check(_UNIT, v, "a UN/CEFACT unit code (1-16 capitals or digits, e.g. 'KWT')")


class Limits(_Strict):
    """What one inference and the model may cost on a gateway."""

    max_latency_ms: Annotated[float, Field(gt=0.0, le=60_000.0)] = 50.0
    """Budget per inference; slower runs are counted, not refused."""
    max_model_bytes: Annotated[int, Field(ge=1, le=MAX_MODEL_BYTES)] = 4 << 20
    threads: Annotated[int, Field(ge=1, le=64)] = 1


class ModelManifest(_Strict):
    """``manifest.json`` of a bundle; validated on construction (pydantic errors)."""

    name: str
    version: str
    license: str
    """SPDX identifier; required, so no model of unknown terms reaches a gateway."""
    description: str = ""
    inputs: Annotated[list[ModelInput], Field(min_length=1)]
    outputs: Annotated[list[ModelOutput], Field(min_length=1)]
    limits: Limits = Limits()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check(_NAME, v, "a model name (1-64 letters, digits, '.', '_', '-')")

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _check(_VERSION, v, "a version (e.g. '1.0.0': letters, digits, '.', '+', '-')")

    @field_validator("license")
    @classmethod
    def _license(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name the model's licence (e.g. 'Apache-2.0')")
        return v

    @model_validator(mode="after")
    def _unique(self) -> ModelManifest:
        seen: set[tuple[str, str]] = set()
        for out in self.outputs:
            key = (out.device, out.attribute)
            if key in seen:
                raise ValueError(f"output {out.attribute!r} of device {out.device!r} is repeated")
            seen.add(key)
        return self

    @property
    def input_size(self) -> int:
        """Width of the input tensor: the windows added up."""
        return sum(i.window for i in self.inputs)

    @property
    def output_size(self) -> int:
        """Width of the output tensor: one element per output."""
        return len(self.outputs)

    def to_json(self) -> bytes:
        """``manifest.json`` bytes; the key order is fixed, so bundles are reproducible."""
        return (json.dumps(self.model_dump(mode="json"), indent=2) + "\n").encode()


def _problem(err: Any) -> str:
    loc = error_location(tuple(err["loc"]))
    kind = err["type"]
    if kind == "missing":
        return f"{loc} is required"
    if kind == "extra_forbidden":
        return f"{loc} is not a manifest field"
    return f"{loc}: {err['msg'].removeprefix('Value error, ')}"


def parse_manifest(data: bytes | str | dict[str, Any]) -> ModelManifest:
    """Validate ``manifest.json`` (bytes, text or parsed); raises ``ModelError`` with one sentence.

    The sentence lists every problem, e.g. ``manifest is invalid: inputs[0].window:
    Input should be greater than or equal to 1; license is required``.
    """
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError("manifest must be a JSON object")
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors(include_url=False))
        raise ModelError(f"manifest is invalid: {problems}") from None
