"""How entities are shown: normalized, concise or simplified (keyValues), JSON, JSON-LD or GeoJSON.

ETSI GS CIM 009 v1.9 clauses 4.5 (representations), 6.3.7 (``options``/``format``), 6.3.15
(GeoJSON). Pure functions over COMPACTED entities (names in the request's ``@context``); the
route compacts stored documents first. ``parse_representation`` checks ``options`` and
``format`` before anything is looked up: a bad value is a 400 ``InvalidRequest``.

Representations of one attribute (an object with ``type``):

- normalized: as stored;
- concise: ``type`` dropped; a Property or GeoProperty with nothing but its value becomes the
  bare value (unless that value is itself an object, which would read back as an attribute);
  other kinds keep their value member (``object``, ``languageMap``, ...) as the marker;
- simplified (keyValues): the value member only (``value``, ``object``, ``languageMap``...).
Multi-instance attributes (a list of instances) are rendered per instance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ldt.cloud.ngsild.jsonld import CORE_CONTEXT_URL
from ldt.cloud.ngsild.media import JSON, JSON_LD
from ldt.cloud.ngsild.problems import NgsiLdError

__all__ = [
    "GEO_JSON",
    "SYSTEM_ATTRIBUTES",
    "Representation",
    "entities_response",
    "feature",
    "feature_collection",
    "link_context",
    "negotiate_read",
    "parse_representation",
    "render",
]

GEO_JSON: Final = "application/geo+json"
SYSTEM_ATTRIBUTES: Final = frozenset({"createdAt", "modifiedAt", "deletedAt"})
_OPTIONS: Final = frozenset({"keyValues", "simplified", "concise", "normalized", "sysAttrs"})
_FORMATS: Final = {
    "normalized": "normalized",
    "concise": "concise",
    "simplified": "simplified",
    "keyValues": "simplified",
}
_VALUE_MEMBERS: Final = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "ListRelationship": "objectList",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
}
_VALUE_KEYS: Final = frozenset(_VALUE_MEMBERS.values())
_ENTITY_MEMBERS: Final = frozenset({"id", "type", "scope", "@context"}) | SYSTEM_ATTRIBUTES
_LINK_CONTEXT: Final = re.compile(
    r'<([^>]*)>\s*;(?=[^,]*rel\s*=\s*"?http://www\.w3\.org/ns/json-ld#context"?)'
)

Form = Literal["normalized", "concise", "simplified"]


def _invalid(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "InvalidRequest", "Invalid representation", detail)


@dataclass(frozen=True, slots=True)
class Representation:
    """The form asked for and whether system attributes (``createdAt``...) are included."""

    form: Form = "normalized"
    sys_attrs: bool = False


def parse_representation(request: Request) -> Representation:
    """``options`` and ``format`` of a read request. Raises ``NgsiLdError`` 400 InvalidRequest.

    ``format`` wins over a form given in ``options`` (clause 6.3.7); ``keyValues`` and
    ``concise`` together in ``options`` contradict each other.
    """
    params = request.query_params
    options = [o.strip() for o in params.get("options", "").split(",") if o.strip()]
    if "options" in params and not options:
        raise _invalid("options is empty")
    unknown = [o for o in options if o not in _OPTIONS]
    if unknown:
        raise _invalid(
            f"options {', '.join(unknown)} not understood; use keyValues, concise, normalized"
            " or sysAttrs"
        )
    forms: set[Form] = set()
    for option in options:
        if option in ("keyValues", "simplified"):
            forms.add("simplified")
        elif option in ("concise", "normalized"):
            forms.add(option)  # type: ignore[arg-type]
    fmt = params.get("format")
    if fmt is not None:
        chosen = _FORMATS.get(fmt)
        if chosen is None:
            raise _invalid(f"format {fmt!r} is not one of normalized, concise, simplified")
        form: Form = chosen  # type: ignore[assignment]
    elif len(forms) > 1:
        raise _invalid("options asks for more than one of keyValues, concise and normalized")
    else:
        form = forms.pop() if forms else "normalized"
    return Representation(form=form, sys_attrs="sysAttrs" in options)


def negotiate_read(request: Request) -> str:
    """``application/geo+json``, ``application/ld+json`` or ``application/json`` (406 otherwise).

    GeoJSON only when asked for by name (a wildcard means JSON).
    """
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    rank = {GEO_JSON: 3, JSON_LD: 2, JSON: 1, "application/*": 0, "*/*": 0}
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if media not in rank:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        chosen = JSON if rank[media] == 0 else media
        candidate = (q, rank[media], chosen)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise NgsiLdError(
            406,
            None,
            "Not Acceptable",
            f"cannot answer with any of: {accept}; use {JSON}, {JSON_LD} or {GEO_JSON}",
        )
    return best[2]


def link_context(request: Request) -> str | None:
    """The @context URL of the request's JSON-LD ``Link`` header, or None.

    Raises 400 BadRequestData for a Link header naming more than one context.
    """
    header = request.headers.get("link")
    if not header:
        return None
    found = _LINK_CONTEXT.findall(header)
    if len(found) > 1:
        raise NgsiLdError(
            400, "BadRequestData", "Invalid Link header", "give one JSON-LD @context Link"
        )
    return found[0].strip() if found else None


def _strip_system(value: Any) -> Any:
    """An attribute without system members, in its sub-attributes too (never inside values)."""
    if isinstance(value, list):
        return [_strip_system(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        k: (_strip_system(v) if isinstance(v, dict | list) and k not in _VALUE_KEYS else v)
        for k, v in value.items()
        if k not in SYSTEM_ATTRIBUTES
    }


def _attribute(value: Any, form: Form) -> Any:
    if isinstance(value, list):
        if form == "simplified" and value and all(_is_attribute(v) for v in value):
            return _simplified_dataset(value)
        return [_attribute(v, form) for v in value]
    if not isinstance(value, dict) or form == "normalized":
        return value
    kind = value.get("type")
    member = _VALUE_MEMBERS.get(kind) if isinstance(kind, str) else None
    if member is None:
        return value  # not an attribute: a plain JSON member
    if form == "simplified":
        inner = value.get(member)
        return _attribute(inner, form) if member == "objectList" else inner
    rest = {
        k: (_attribute(v, form) if isinstance(v, dict | list) and k != member else v)
        for k, v in value.items()
        if k != "type"
    }
    if member == "value" and list(rest) == ["value"] and not isinstance(rest["value"], dict):
        return rest["value"]
    if kind == "GeoProperty" and list(rest) == ["value"]:
        return rest["value"]  # a GeoJSON geometry: its own "type" marks it
    return rest


def _is_attribute(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and (value["type"] in _VALUE_MEMBERS)
    )


def _simplified_dataset(instances: list[Any]) -> dict[str, Any]:
    """Several instances of one attribute, simplified: ``{"dataset": {datasetId: value}}``.

    GS CIM 009 v1.8+ (4.5.4) keys each instance's value by its ``datasetId`` (``@none``
    for the default instance) rather than a bare list, so a client can tell the values apart.
    """
    dataset: dict[str, Any] = {}
    for instance in instances:
        key = instance.get("datasetId")
        dataset[key if isinstance(key, str) else "@none"] = _attribute(instance, "simplified")
    return {"dataset": dataset}


def render(entity: Mapping[str, Any], rep: Representation) -> dict[str, Any]:
    """One compacted entity in the asked-for form (system attributes dropped unless asked)."""
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key in SYSTEM_ATTRIBUTES:
            if rep.sys_attrs and rep.form != "simplified":
                out[key] = value
            continue
        if key in _ENTITY_MEMBERS:
            out[key] = value
            continue
        shown = value if rep.sys_attrs else _strip_system(value)
        out[key] = _attribute(shown, rep.form)
    return out


def _geometry(entity: Mapping[str, Any], geometry_property: str) -> Any:
    member = entity.get(geometry_property)
    if isinstance(member, list):
        member = member[0] if member else None
    if isinstance(member, dict):
        value = (
            member.get("value")
            if "value" in member
            or member.get("type")
            in (
                "GeoProperty",
                "Property",
            )
            else member
        )
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return value
    return None


def feature(
    entity: Mapping[str, Any], rendered: Mapping[str, Any], *, geometry_property: str
) -> dict[str, Any]:
    """A GeoJSON Feature (6.3.15): ``geometry`` from the normalized entity's geometry property."""
    properties = {k: v for k, v in rendered.items() if k not in ("id", "@context")}
    return {
        "id": entity.get("id"),
        "type": "Feature",
        "geometry": _geometry(entity, geometry_property),
        "properties": properties,
    }


def feature_collection(features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The GeoJSON FeatureCollection of a query's page."""
    return {"type": "FeatureCollection", "features": list(features)}


def entities_response(
    payload: Any,
    media: str,
    *,
    context: str | None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Entities (or GeoJSON) with their @context: a Link header for JSON, in the body otherwise.

    ``context``: the request's @context URL (None: the core context).
    """
    url = context or CORE_CONTEXT_URL
    extra = dict(headers or {})
    if media == JSON:
        extra["Link"] = (
            f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        )
    elif media == GEO_JSON:
        payload = {**payload, "@context": url}
    elif isinstance(payload, list):
        payload = [{**e, "@context": url} for e in payload]
    else:
        payload = {**payload, "@context": url}
    return Response(orjson.dumps(payload), status_code=status, media_type=media, headers=extra)
