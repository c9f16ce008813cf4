"""Context source registrations (GS CIM 009 v1.9 clauses 5.2.9, 5.9, 5.10), pure.

This broker keeps registrations (create, retrieve, query, update, delete) so a
client can publish and discover context sources, but it performs NO distributed
operations: queries, retrievals and writes are answered from its own store and
are never forwarded to a registered endpoint, whatever ``mode`` or
``operations`` a registration declares. Context source registration
subscriptions (5.11) are not offered either (``GET /csourceSubscriptions``
lists none).

Names (entity types, property and relationship names) are stored as entity
names are (``entity_ops.stored_name``) so that a query in any @context finds
them; ``present`` shows them back in the reader's @context.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.entity_ops import stored_name
from ldt.cloud.ngsild.jsonld import ActiveContext, core_context
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.safe_regex import SafeRegex
from ldt.cloud.ngsild.timestamps import expiry_problem, parse_iso_ms

__all__ = ["MODES", "matches", "merge", "present", "validate"]

MODES: Final = frozenset({"inclusive", "exclusive", "redirect", "auxiliary"})
_READ_ONLY: Final = frozenset({"createdAt", "modifiedAt", "status", "timesSent", "timesFailed"})
_INTERVALS: Final = ("observationInterval", "managementInterval")
_GEOMETRIES: Final = ("location", "observationSpace", "operationSpace")
_STRINGS: Final = ("registrationName", "description", "tenant")
_NAME_LISTS: Final = ("propertyNames", "relationshipNames")


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid context source registration", detail)


def _stored(name: str, ctx: ActiveContext) -> str:
    return stored_name(name, ctx) or name


def _client(stored: str, ctx: ActiveContext) -> str:
    iri = core_context().expand(stored)
    return stored if iri is None else ctx.compact(iri)


def _entity_info(item: Any, ctx: ActiveContext) -> dict[str, Any]:
    if not isinstance(item, dict) or not item.keys() <= {"id", "idPattern", "type"}:
        raise _bad(f"an EntityInfo has id, idPattern and type only, got {item!r}")
    etype = item.get("type")
    types = etype if isinstance(etype, list) else [etype]
    names = [t for t in types if isinstance(t, str) and t]
    if not names or len(names) != len(types):
        raise _bad("every EntityInfo needs a type (a name or an array of names)")
    out: dict[str, Any] = {"type": [_stored(t, ctx) for t in names]}
    if not isinstance(etype, list):
        out["type"] = out["type"][0]
    if "id" in item:
        if not is_uri(item["id"]):
            raise _bad(f"EntityInfo id {item['id']!r} is not a URI")
        out["id"] = item["id"]
    if "idPattern" in item:
        pattern = item["idPattern"]
        if not isinstance(pattern, str):
            raise _bad("idPattern must be a regular expression")
        try:
            SafeRegex(pattern)
        except ValueError as exc:
            raise _bad(f"idPattern {pattern!r}: {exc}") from None
        out["idPattern"] = pattern
    return out


def _information(value: Any, ctx: ActiveContext) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _bad("information must be a non-empty array of RegistrationInfo")
    out: list[dict[str, Any]] = []
    for info in value:
        if not isinstance(info, dict) or not info.keys() <= {"entities", *_NAME_LISTS}:
            raise _bad("a RegistrationInfo has entities, propertyNames or relationshipNames only")
        if not info:
            raise _bad("a RegistrationInfo needs entities, propertyNames or relationshipNames")
        kept: dict[str, Any] = {}
        if "entities" in info:
            if not isinstance(info["entities"], list) or not info["entities"]:
                raise _bad("RegistrationInfo entities must be a non-empty array")
            kept["entities"] = [_entity_info(e, ctx) for e in info["entities"]]
        for key in _NAME_LISTS:
            if key in info:
                names = info[key]
                if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                    raise _bad(f"{key} must be an array of names")
                kept[key] = [_stored(n, ctx) for n in names]
        out.append(kept)
    return out


def _interval(value: Any, key: str) -> None:
    if not isinstance(value, dict) or "startAt" not in value:
        raise _bad(f"{key} must be a TimeInterval with startAt (and endAt)")
    start = parse_iso_ms(value.get("startAt"))
    end = None if "endAt" not in value else parse_iso_ms(value["endAt"])
    if start is None or ("endAt" in value and end is None):
        raise _bad(f"{key}: startAt and endAt must be DateTimes")
    if end is not None and end < start:
        raise _bad(f"{key}: endAt is before startAt")


def _geometry(value: Any, key: str) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise _bad(f"{key} must be a GeoJSON geometry")
    if "coordinates" not in value and "geometries" not in value:
        raise _bad(f"{key} is a GeoJSON geometry without coordinates")


def validate(body: Any, ctx: ActiveContext, *, now: str) -> dict[str, Any]:
    """The document to store for a CSourceRegistration (5.2.9); raises ``NgsiLdError`` 400.

    Members this module does not know are context source properties (5.2.9) and
    are kept as given.
    """
    if not isinstance(body, dict):
        raise _bad("a registration must be a JSON object")
    doc = {k: v for k, v in body.items() if k not in _READ_ONLY and k != "@context"}
    reg_id = doc.setdefault("id", f"urn:ngsi-ld:ContextSourceRegistration:{uuid.uuid4()}")
    if not is_uri(reg_id):
        raise _bad(f"id {reg_id!r} is not a URI")
    if doc.get("type") != "ContextSourceRegistration":
        raise _bad("type must be 'ContextSourceRegistration'")
    if "information" not in doc:
        raise _bad("information is required")
    doc["information"] = _information(doc["information"], ctx)
    if not isinstance(doc.get("endpoint"), str) or not is_uri(doc["endpoint"]):
        raise _bad("endpoint must be the URI of the context source")
    for key in _INTERVALS:
        if key in doc:
            _interval(doc[key], key)
    for key in _GEOMETRIES:
        if key in doc:
            _geometry(doc[key], key)
    for key in _STRINGS:
        if key in doc and not isinstance(doc[key], str):
            raise _bad(f"{key} must be a string")
    if "expiresAt" in doc and (why := expiry_problem(doc["expiresAt"], now)) is not None:
        raise _bad(why)
    if "mode" in doc and doc["mode"] not in MODES:
        raise _bad(f"mode must be one of {sorted(MODES)}")
    operations = doc.get("operations")
    if operations is not None and (
        not isinstance(operations, list) or not all(isinstance(o, str) for o in operations)
    ):
        raise _bad("operations must be an array of operation names")
    info = doc.get("contextSourceInfo")
    if info is not None and (
        not isinstance(info, list)
        or not all(isinstance(i, dict) and i.keys() == {"key", "value"} for i in info)
    ):
        raise _bad("contextSourceInfo must be an array of {key, value} pairs")
    doc.setdefault("createdAt", now)
    doc["modifiedAt"] = now
    return doc


def merge(stored: Mapping[str, Any], fragment: Mapping[str, Any], ctx: ActiveContext) -> Any:
    """``stored`` as ``ctx`` shows it with ``fragment``'s members replacing its own (5.9.3).

    The result goes through ``validate`` again (keep the stored ``createdAt``); ``id``
    cannot change.
    """
    if not isinstance(fragment, dict) or not fragment:
        raise _bad("the fragment must be a non-empty JSON object")
    if fragment.get("id", stored["id"]) != stored["id"]:
        raise _bad(f"the fragment's id is not {stored['id']}")
    merged = present(stored, ctx)
    for key, value in fragment.items():
        if key == "@context":
            continue
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def present(doc: Mapping[str, Any], ctx: ActiveContext) -> dict[str, Any]:
    """A stored registration as a client reading with ``ctx`` sees it."""
    out = {k: v for k, v in doc.items() if k not in ("createdAt", "modifiedAt")}
    shown: list[dict[str, Any]] = []
    for info in doc.get("information", []):
        one: dict[str, Any] = {}
        if "entities" in info:
            one["entities"] = [_present_entity(e, ctx) for e in info["entities"]]
        for key in _NAME_LISTS:
            if key in info:
                one[key] = [_client(n, ctx) for n in info[key]]
        shown.append(one)
    out["information"] = shown
    return out


def _present_entity(info: Mapping[str, Any], ctx: ActiveContext) -> dict[str, Any]:
    etype = info["type"]
    shown = [_client(t, ctx) for t in etype] if isinstance(etype, list) else _client(etype, ctx)
    return {**info, "type": shown}


def matches(
    doc: Mapping[str, Any],
    *,
    types: Sequence[str] | None,
    ids: Sequence[str] | None,
    id_pattern: SafeRegex | None,
    attrs: Sequence[str] | None,
) -> bool:
    """Whether a registration names a matching entity and attribute (5.10.2, stored names).

    A RegistrationInfo without entities matches any entity; one without names
    matches any attribute.
    """
    for info in doc.get("information", []):
        entities = info.get("entities")
        if entities is not None and not any(
            _entity_matches(e, types, ids, id_pattern) for e in entities
        ):
            continue
        if entities is None and (types is not None or ids is not None or id_pattern is not None):
            continue
        if attrs is not None:
            names = [n for key in _NAME_LISTS for n in info.get(key, [])]
            if names and not set(names) & set(attrs):
                continue
        return True
    return False


def _entity_matches(
    info: Mapping[str, Any],
    types: Sequence[str] | None,
    ids: Sequence[str] | None,
    id_pattern: SafeRegex | None,
) -> bool:
    etype = info.get("type")
    mine = etype if isinstance(etype, list) else [etype]
    if types is not None and not set(mine) & set(types):
        return False
    if ids is not None and "id" in info and info["id"] not in ids:
        return False
    return id_pattern is None or "id" not in info or id_pattern.search(str(info["id"]))
