"""NGSI-LD entity writes as pure functions on stored documents (GS CIM 009 v1.9, 5.6 and 5.9).

No I/O: a route validates the request with ``entity_fragment``/``attribute_fragment``,
builds a change with one of the operations below, and the store applies it
to the current document inside its transaction (``Store.write_entities``).
An operation raises ``NgsiLdError`` to refuse (404, 409...), which rejects
that one item only.

How names are stored (the one place that decides it): every type and
attribute name is expanded with the request's @context and then compacted
with the CORE context alone. That spelling is a lossless encoding of the
expanded IRI: a name of the default vocab is stored short (``temperature``,
which is what gateways write), any other IRI is stored whole
(``https://example.org/ctx#temperature``). Two contexts that map one short
name to two IRIs therefore give two attributes, as JSON-LD requires. Whoever
serves or queries entities must translate: ``present`` turns a stored
document into what a client with a given @context sees, ``stored_name``
turns a name from a query (``type=``, ``attrs=``, ``q``) into the stored one.

System attributes: ``createdAt``/``modifiedAt`` are kept on the entity and
on each attribute instance; ``present`` drops them unless asked for
(``options=sysAttrs``). Input values for them are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.jsonld import (
    ATTRIBUTE_TYPES,
    ActiveContext,
    compact_entity,
    core_context,
    expand_entity,
    stored_entity,
)
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.timestamps import parse_iso_ms

__all__ = [
    "NULL",
    "Change",
    "UpdateReport",
    "append_attrs",
    "attribute_fragment",
    "create",
    "delete_attr",
    "delete_entity",
    "entity_fragment",
    "merge_entity",
    "patch_attr",
    "present",
    "replace_attr",
    "replace_entity",
    "stored_name",
    "update_attrs",
    "upsert",
]

Entity = dict[str, Any]
Change = Callable[[Entity | None], Entity | None]
"""What a store applies: the current document (None: absent) -> the new one (None: delete)."""

NULL = "urn:ngsi-ld:null"
"""The value that deletes an attribute (or a member) in a merge or an update (v1.9 4.5.0)."""

_SYS = frozenset({"createdAt", "modifiedAt", "deletedAt"})
_IGNORED_INPUT = _SYS | {"instanceId"}
_KIND_OF_MEMBER = {
    "value": "Property",
    "object": "Relationship",
    "languageMap": "LanguageProperty",
    "vocab": "VocabProperty",
    "json": "JsonProperty",
    "valueList": "ListProperty",
    "objectList": "ListRelationship",
}
_MEMBER_OF_KIND = {kind: member for member, kind in _KIND_OF_MEMBER.items()}
_MEMBER_OF_KIND["GeoProperty"] = "value"
_CORE_MEMBERS = frozenset(
    {*_KIND_OF_MEMBER, "type", "objectType", "observedAt", "unitCode", "datasetId", "lang"}
)
_GEOMETRIES = frozenset(
    {
        "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
        "GeometryCollection",
    }
)  # fmt: skip
_GEO_ATTRS = frozenset({"location", "observationSpace", "operationSpace"})
_TYPE_NAME = re.compile(r"^[^\s<>\"'=;()\\]+$")
_ATTR_NAME = re.compile(r"^[A-Za-z_][^\s<>\"'=;()\\]*$")
_MAX_DEPTH = 4
_NOT_ATTRIBUTES = frozenset({"id", "type", "scope", "@id", "@type", "@context"}) | _SYS


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid entity", detail)


def _not_found(detail: str) -> NgsiLdError:
    return NgsiLdError(404, "ResourceNotFound", "Not found", detail)


# --- names ---------------------------------------------------------------------------


def stored_name(term: str, ctx: ActiveContext) -> str | None:
    """A type or attribute name from a request, spelled as stored (None: the term maps to null)."""
    iri = ctx.expand(term)
    return None if iri is None else core_context().compact(iri)


def present(doc: Mapping[str, Any], ctx: ActiveContext, *, sys_attrs: bool = False) -> Entity:
    """A stored entity as a client with ``ctx`` must see it (THE read-side translation).

    Names are compacted with ``ctx``; ``createdAt``/``modifiedAt`` are kept
    only with ``sys_attrs`` (``options=sysAttrs``).
    """
    out = dict(doc) if sys_attrs else _strip_sys(doc)
    core = core_context()
    if ctx is core:
        return out
    return compact_entity(expand_entity(out, core), ctx)


def _strip_sys(doc: Mapping[str, Any]) -> Entity:
    out: Entity = {}
    for key, value in doc.items():
        if key in _SYS:
            continue
        if key in {"id", "type", "scope"}:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if k not in _SYS}
        elif isinstance(value, list):
            out[key] = [
                {k: v for k, v in i.items() if k not in _SYS} if isinstance(i, dict) else i
                for i in value
            ]
        else:
            out[key] = value
    return out


# --- validation ------------------------------------------------------------------------


def _check_geometry(value: Any, where: str) -> None:
    if not isinstance(value, dict) or value.get("type") not in _GEOMETRIES:
        raise _bad(f"{where}: a GeoProperty value must be a GeoJSON geometry")
    if value["type"] == "GeometryCollection":
        geometries = value.get("geometries")
        if not isinstance(geometries, list):
            raise _bad(f"{where}: a GeometryCollection needs 'geometries'")
        for geometry in geometries:
            _check_geometry(geometry, where)
    elif not isinstance(value.get("coordinates"), list) or not value["coordinates"]:
        raise _bad(f"{where}: a {value['type']} needs non-empty 'coordinates'")


def _is_geometry(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") in _GEOMETRIES
        and ("coordinates" in value or "geometries" in value)
    )


def _looks_like_attribute(value: Any) -> bool:
    return isinstance(value, dict) and (
        value.get("type") in ATTRIBUTE_TYPES or any(m in value for m in _KIND_OF_MEMBER)
    )


def _check_member(kind: str, member: str, value: Any, where: str) -> None:
    if value is None:
        raise _bad(f"{where}: {member} must not be null")
    if kind == "Relationship":
        targets = value if isinstance(value, list) else [value]
        if not targets or not all(is_uri(t) for t in targets):
            raise _bad(f"{where}: a Relationship must point to URIs, got {value!r}")
    elif kind == "ListRelationship":
        if not isinstance(value, list) or not all(
            is_uri(t.get("object") if isinstance(t, dict) else t) for t in value
        ):
            raise _bad(f"{where}: objectList must be a list of URIs")
    elif kind == "GeoProperty" and value != NULL:
        _check_geometry(value, where)
    elif kind == "LanguageProperty" and not (
        isinstance(value, dict) and all(isinstance(v, str | list) for v in value.values())
    ):
        raise _bad(f"{where}: languageMap must map language tags to strings")
    elif kind == "ListProperty" and not isinstance(value, list):
        raise _bad(f"{where}: valueList must be a list")


def _instance(name: str, raw: dict[str, Any], where: str, *, partial: bool, depth: int) -> Entity:
    """One attribute instance in normalized form (concise input is converted)."""
    kind = raw.get("type")
    if kind is None:
        kinds = [k for m, k in _KIND_OF_MEMBER.items() if m in raw]
        if kinds:
            kind = (
                "GeoProperty" if name in _GEO_ATTRS and _is_geometry(raw.get("value")) else kinds[0]
            )
        elif not partial:
            return {"type": "Property", "value": raw}  # concise: a JSON object value
    elif kind in _GEOMETRIES and _is_geometry(raw) and not any(m in raw for m in _KIND_OF_MEMBER):
        _check_geometry(raw, f"{where}, attribute {name}")
        return {"type": "GeoProperty", "value": raw}
    elif kind not in ATTRIBUTE_TYPES:
        raise _bad(f"{where}: attribute {name} has unknown type {kind!r}")
    here = f"{where}, attribute {name}"
    if kind is not None:
        member = _MEMBER_OF_KIND[kind]
        if member not in raw and not partial:
            raise _bad(f"{here}: a {kind} needs {member!r}")
        if member in raw:
            _check_member(kind, member, raw[member], here)
    out: Entity = {} if kind is None else {"type": kind}
    for key, value in raw.items():
        if key == "type" or key in _IGNORED_INPUT:
            continue
        if key in _CORE_MEMBERS:
            if key == "datasetId" and not is_uri(value):
                raise _bad(f"{here}: datasetId must be a URI, got {value!r}")
            if key == "observedAt" and parse_iso_ms(value) is None:
                raise _bad(f"{here}: observedAt must be a DateTime, got {value!r}")
            if key == "unitCode" and not isinstance(value, str):
                raise _bad(f"{here}: unitCode must be a string")
            if key in _KIND_OF_MEMBER and key != _MEMBER_OF_KIND.get(kind or "", key):
                raise _bad(f"{here}: a {kind} cannot have {key!r}")
            out[key] = value
        else:
            out[key] = _attribute(key, value, here, partial=False, depth=depth + 1)
    return out


def _attribute(
    name: str, raw: Any, where: str, *, partial: bool, depth: int = 0
) -> Entity | list[Entity]:
    if depth > _MAX_DEPTH:
        raise _bad(f"{where}: sub-attributes nest deeper than {_MAX_DEPTH} levels")
    if name.startswith("@") or not _ATTR_NAME.match(name):
        raise _bad(f"{where}: invalid attribute name {name!r}")
    if raw is None:
        raise _bad(f"{where}: attribute {name} is null")
    if isinstance(raw, list) and raw and all(_looks_like_attribute(i) for i in raw):
        instances = [_instance(name, i, where, partial=partial, depth=depth) for i in raw]
        seen: set[Any] = set()
        for instance in instances:
            dataset = instance.get("datasetId")
            if dataset in seen:
                raise _bad(f"{where}: attribute {name} repeats datasetId {dataset!r}")
            seen.add(dataset)
        return instances if len(instances) > 1 else instances[0]
    if isinstance(raw, dict):
        return _instance(name, raw, where, partial=partial, depth=depth)
    if isinstance(raw, list) and any(v is None for v in raw):
        raise _bad(f"{where}: attribute {name} has a null in its value")
    return {"type": "Property", "value": raw}


def _check_types(value: Any, where: str) -> None:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(t, str) and _TYPE_NAME.match(t) for t in names):
        raise _bad(f"{where}: type must be a name or a list of names, got {value!r}")


def entity_fragment(
    raw: Any,
    ctx: ActiveContext,
    *,
    need_id: bool,
    need_type: bool,
    partial: bool = False,
) -> Entity:
    """A request's entity (or fragment) validated, normalized and with names as stored.

    ``@context`` must already have been resolved into ``ctx`` (it is dropped
    here). ``partial``: attributes may omit their value member (merge).
    Raises ``NgsiLdError`` (400 BadRequestData) naming what is wrong.
    """
    if not isinstance(raw, dict):
        raise _bad("an entity must be a JSON object")
    entity_id = raw.get("id", raw.get("@id"))
    where = f"entity {entity_id}" if isinstance(entity_id, str) else "entity"
    if (entity_id is not None or need_id) and not is_uri(entity_id):
        raise _bad(f"entity id must be a URI, got {entity_id!r}")
    etype = raw.get("type", raw.get("@type"))
    if etype is None and need_type:
        raise _bad(f"{where}: type is missing")
    doc: Entity = {}
    if entity_id is not None:
        doc["id"] = entity_id
    if etype is not None:
        _check_types(etype, where)
        doc["type"] = etype
    for name, value in raw.items():
        if name in {"id", "type", "@id", "@type", "@context"} or name in _IGNORED_INPUT:
            continue
        if name == "scope":
            scopes = value if isinstance(value, list) else [value]
            if not all(isinstance(s, str) and s.startswith("/") for s in scopes):
                raise _bad(f"{where}: scope must be /paths, got {value!r}")
            doc[name] = value
            continue
        if name in _GEO_ATTRS and _is_geometry(value):
            doc[name] = {"type": "GeoProperty", "value": value}
        else:
            doc[name] = _attribute(name, value, where, partial=partial)
    return _stored(doc, ctx)


def attribute_fragment(raw: Any, name: str, ctx: ActiveContext, *, partial: bool) -> Entity:
    """The body of ``PATCH``/``PUT /entities/{id}/attrs/{name}``: one instance, names as stored.

    Returns ``{stored_name: instance}``. Raises ``NgsiLdError`` (400).
    """
    if not isinstance(raw, dict):
        raise _bad(f"attribute {name}: the body must be a JSON object")
    if name in _NOT_ATTRIBUTES:  # scope has no instances to patch or replace (055_03_05)
        raise _bad(f"{name} is not an attribute")
    if "@context" in raw:
        raw = {k: v for k, v in raw.items() if k != "@context"}
    if name in _GEO_ATTRS and _is_geometry(raw):
        raw = {"type": "GeoProperty", "value": raw}
    value = _instance(name, raw, "request", partial=partial, depth=0)
    if not _ATTR_NAME.match(name):
        raise _bad(f"invalid attribute name {name!r}")
    return _stored({name: value}, ctx)


def _stored(doc: Entity, ctx: ActiveContext) -> Entity:
    etype: Any = doc.get("type")
    for name in etype if isinstance(etype, list) else [etype]:
        if not isinstance(name, str):
            continue
        iri = ctx.expand(name)
        expanded = name if iri is None else iri  # as expand_entity spells the type
        if expanded.startswith("@") or ":" not in expanded:
            raise _bad(f"entity type {expanded!r} is not a type name under the @context")
    return stored_entity(doc, ctx)


# --- multi-attributes and system attributes ----------------------------------------------


def _instances(attr: Any) -> list[Entity]:
    if isinstance(attr, list):
        return [i for i in attr if isinstance(i, dict)]
    return [attr] if isinstance(attr, dict) else []


def _pack(instances: list[Entity]) -> Entity | list[Entity] | None:
    if not instances:
        return None
    return instances[0] if len(instances) == 1 else instances


def _same(a: Any, b: Any) -> bool:
    """Whether ``a == b`` once system attributes are dropped at any depth ("did anything change").

    Walks both at once instead of copying them: a write compares the whole old
    and new documents, whose unchanged attributes are mostly the same objects
    (``a is b`` answers at once), and stops at the first difference.
    """
    if a is b:
        return True
    if isinstance(a, dict):
        if not isinstance(b, dict):
            return False
        seen = 0
        for key, value in a.items():
            if key in _SYS:
                continue
            if key not in b or not _same(value, b[key]):
                return False
            seen += 1
        return seen == sum(1 for key in b if key not in _SYS)
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


_NOT_STAMPED = _SYS | {"id", "type", "scope"}


def _stamp(new: Entity, old: Entity | None, now: str) -> Entity:
    """``new`` with system attributes: kept where nothing changed, ``now`` where it did."""
    out: Entity = {}
    for key, value in new.items():
        if key in _NOT_STAMPED:
            out[key] = value
            continue
        prior_attr = None if old is None else old.get(key)
        if prior_attr is value:  # left alone by the write: its stamps stay
            out[key] = value
            continue
        if prior_attr is None and isinstance(value, dict):  # a new attribute, one instance
            if _SYS.isdisjoint(value):
                fresh = dict(value)  # a C-level copy: validated input has no system members
            else:
                fresh = {k: v for k, v in value.items() if k not in _SYS}
            fresh["createdAt"] = fresh["modifiedAt"] = now
            out[key] = fresh
            continue
        before = {i.get("datasetId"): i for i in _instances(prior_attr)}
        stamped: list[Entity] = []
        for instance in _instances(value):
            prior = before.get(instance.get("datasetId"))
            if prior is not None and _same(prior, instance):
                stamped.append(prior)
                continue
            created = prior.get("createdAt", now) if prior is not None else now
            fresh = {k: v for k, v in instance.items() if k not in _SYS}
            stamped.append({**fresh, "createdAt": created, "modifiedAt": now})
        packed = _pack(stamped)
        if packed is not None:
            out[key] = packed
    created = old.get("createdAt", now) if old is not None else now
    out["createdAt"] = created
    out["modifiedAt"] = now
    return out


def _finish(new: Entity, old: Entity | None, now: str) -> Entity:
    """Stamp ``new``; if it says nothing new, return ``old`` itself (no write, no modifiedAt)."""
    if old is not None and _same(new, old):
        return old
    return _stamp(new, old, now)


def _merge_types(old: Any, new: Any) -> Any:
    if new is None:
        return old
    names = [*(old if isinstance(old, list) else [old])]
    for name in new if isinstance(new, list) else [new]:
        if name not in names:
            names.append(name)
    return names[0] if len(names) == 1 else names


def _attrs(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in {"id", "type", "scope"} and k not in _SYS}


def _is_null(instance: Mapping[str, Any]) -> bool:
    """Whether ``instance`` is the NGSI-LD null of its kind (4.5.0), i.e. says "delete me".

    Besides ``"urn:ngsi-ld:null"`` as the value member, each kind has its own null shape:
    a LanguageProperty ``{"@none": NULL}``, a ListProperty ``[NULL]``, a ListRelationship
    ``[{"object": NULL}]`` (suite cases 056_03_04, 011_07_04, 012_05_04...).
    """
    if any(instance.get(m) == NULL for m in _KIND_OF_MEMBER):
        return True
    return (
        instance.get("languageMap") == {"@none": NULL}
        or instance.get("valueList") == [NULL]
        or instance.get("objectList") in ([NULL], [{"object": NULL}])
    )


# --- operations ----------------------------------------------------------------------------


def create(fragment: Entity, now: str) -> Change:
    """``POST /entities`` and batch create: 409 AlreadyExists if the id is taken."""

    def change(current: Entity | None) -> Entity:
        if current is not None:
            raise NgsiLdError(
                409, "AlreadyExists", "Already exists", f"entity {fragment['id']} already exists"
            )
        return _stamp(fragment, None, now)

    return change


def replace_entity(fragment: Entity, now: str, *, must_exist: bool = True) -> Change:
    """``PUT /entities/{id}`` (5.6.18); with ``must_exist=False`` batch upsert's replace."""

    def change(current: Entity | None) -> Entity:
        if current is None and must_exist:
            raise _not_found(f"no entity with id {fragment['id']}")
        new = dict(fragment)
        if "type" not in new and current is not None:
            new["type"] = current["type"]
        return _finish(new, current, now)

    return change


def upsert(fragment: Entity, now: str, *, replace: bool) -> Change:
    """Batch upsert (5.6.8): create, else replace (default) or update the entity."""
    if replace:
        return replace_entity(fragment, now, must_exist=False)

    def change(current: Entity | None) -> Entity:
        if current is None:
            return _stamp(fragment, None, now)
        new = {
            **current,
            **_attrs(fragment),
            "type": _merge_types(current["type"], fragment.get("type")),
        }
        if "scope" in fragment:
            new["scope"] = fragment["scope"]
        return _finish(new, current, now)

    return change


def delete_entity(entity_id: str) -> Change:
    """``DELETE /entities/{id}`` and batch delete: 404 if absent."""

    def change(current: Entity | None) -> None:
        if current is None:
            raise _not_found(f"no entity with id {entity_id}")

    return change


@dataclass(slots=True)
class UpdateReport:
    """What an append or update did, per stored attribute name (for a 207 UpdateResult)."""

    updated: list[str] = field(default_factory=list)
    not_updated: dict[str, str] = field(default_factory=dict)


def _put_instance(instances: list[Entity], new: Entity) -> list[Entity]:
    dataset = new.get("datasetId")
    kept = [i for i in instances if i.get("datasetId") != dataset]
    return [*kept, new]


def _scopes(value: Any) -> list[str]:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _packed_scope(scopes: list[str]) -> str | list[str]:
    return scopes[0] if len(scopes) == 1 else scopes


def append_attrs(
    entity_id: str, fragment: Entity, now: str, *, no_overwrite: bool, report: UpdateReport
) -> Change:
    """``POST /entities/{id}/attrs`` (5.6.3): add attributes, replacing same-named ones.

    ``no_overwrite``: an existing attribute (same datasetId) is left alone
    and listed in ``report.not_updated``. A type in the fragment is added.
    ``scope`` (4.18) is a list, not an attribute with instances: it replaces the
    entity's scopes, or with ``no_overwrite`` is added to them (suite case 010_07_01).
    """

    def change(current: Entity | None) -> Entity:
        if current is None:
            raise _not_found(f"no entity with id {entity_id}")
        report.updated.clear()
        report.not_updated.clear()
        new = dict(current)
        new["type"] = _merge_types(current["type"], fragment.get("type"))
        if "scope" in fragment:
            scopes = _scopes(fragment["scope"])
            if no_overwrite:
                scopes = [*_scopes(current.get("scope")), *scopes]
            new["scope"] = _packed_scope(list(dict.fromkeys(scopes)))
        for name, value in _attrs(fragment).items():
            instances = _instances(new.get(name))
            for instance in _instances(value):
                exists = any(i.get("datasetId") == instance.get("datasetId") for i in instances)
                if exists and no_overwrite:
                    report.not_updated[name] = "attribute exists and noOverwrite was given"
                    continue
                instances = _put_instance(instances, instance)
                if name not in report.updated:
                    report.updated.append(name)
            packed = _pack(instances)
            if packed is not None:
                new[name] = packed
        return _finish(new, current, now)

    return change


def update_attrs(entity_id: str, fragment: Entity, now: str, *, report: UpdateReport) -> Change:
    """``PATCH /entities/{id}/attrs`` and batch update (5.6.2).

    An attribute instance is replaced; one the entity lacks is added: ETSI's suite
    (v1.6.1 onwards: 011_01_03 "Update Existing Attributes And Append Non-existing
    Attributes", 046_23..046_30, 046_41) expects 204 and the attribute stored, so a
    missing attribute is not reported as ``notUpdated``. An instance whose value is the
    NGSI-LD null deletes that instance; one that names nothing to delete is reported.
    A type in the fragment is added (011_06). ``scope`` replaces the entity's scopes if it
    has some, and is reported as not updated if it has none (011_05_02).
    """

    def change(current: Entity | None) -> Entity:
        if current is None:
            raise _not_found(f"no entity with id {entity_id}")
        report.updated.clear()
        report.not_updated.clear()
        new = dict(current)
        if "type" in fragment:
            new["type"] = _merge_types(current["type"], fragment["type"])
        if "scope" in fragment:
            if current.get("scope") is None:
                report.not_updated["scope"] = "the entity has no scope to update"
            else:
                new["scope"] = fragment["scope"]
                report.updated.append("scope")
        for name, value in _attrs(fragment).items():
            instances = _instances(new.get(name))
            for instance in _instances(value):
                dataset = instance.get("datasetId")
                exists = any(i.get("datasetId") == dataset for i in instances)
                if _is_null(instance):
                    if not exists:
                        why = "no such attribute" if not instances else f"no instance {dataset}"
                        report.not_updated[name] = why
                        continue
                    instances = [i for i in instances if i.get("datasetId") != dataset]
                else:
                    instances = _put_instance(instances, instance)
                if name not in report.updated:
                    report.updated.append(name)
            packed = _pack(instances)
            if packed is None:
                new.pop(name, None)
            else:
                new[name] = packed
        return _finish(new, current, now)

    return change


def _merge_instance(old: Entity, patch: Entity) -> Entity | None:
    """Merge-patch of one instance: members replaced, sub-attributes merged, NULL deletes."""
    if _is_null(patch):
        return None
    out = dict(old)
    for key, value in patch.items():
        if key in _SYS:
            continue
        if value == NULL:
            out.pop(key, None)
        elif key in _CORE_MEMBERS:
            if key in _KIND_OF_MEMBER:
                for member in _KIND_OF_MEMBER:
                    out.pop(member, None)
            out[key] = value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            merged = _merge_instance(out[key], value)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        else:
            out[key] = value
    return out


def merge_entity(entity_id: str, fragment: Entity, now: str, *, must_exist: bool = True) -> Change:
    """``PATCH /entities/{id}`` and batch merge (5.6.17): JSON merge-patch of an entity."""

    def change(current: Entity | None) -> Entity:
        if current is None:
            raise _not_found(f"no entity with id {entity_id}")
        new = dict(current)
        new["type"] = _merge_types(current["type"], fragment.get("type"))
        if "scope" in fragment:
            new["scope"] = fragment["scope"]
        for name, value in _attrs(fragment).items():
            instances = _instances(new.get(name))
            for patch in _instances(value):
                dataset = patch.get("datasetId")
                old = next((i for i in instances if i.get("datasetId") == dataset), None)
                merged = _merge_instance(old, patch) if old is not None else patch
                rest = [i for i in instances if i.get("datasetId") != dataset]
                if merged is None or (old is None and _is_null(patch)):
                    instances = rest
                else:
                    if "type" not in merged:
                        merged = {"type": "Property", **merged}
                    instances = [*rest, merged]
            packed = _pack(instances)
            if packed is None:
                new.pop(name, None)
            else:
                new[name] = packed
        return _finish(new, current, now)

    return change


def _one_attr(fragment: Entity) -> tuple[str, Entity]:
    ((name, value),) = _attrs(fragment).items()
    return name, value


def patch_attr(entity_id: str, fragment: Entity, now: str) -> Change:
    """``PATCH /entities/{id}/attrs/{name}`` (5.6.4): members of one existing instance."""
    name, patch = _one_attr(fragment)

    def change(current: Entity | None) -> Entity:
        if current is None:
            raise _not_found(f"no entity with id {entity_id}")
        instances = _instances(current.get(name))
        dataset = patch.get("datasetId")
        old = next((i for i in instances if i.get("datasetId") == dataset), None)
        if old is None:
            raise _not_found(
                f"entity {entity_id} has no attribute {name}"
                + (f" with datasetId {dataset}" if dataset else "")
            )
        kind = patch.get("type")
        if kind is not None and kind != old.get("type", "Property") and not _is_null(patch):
            raise _bad(  # 5.6.4: a partial update keeps the attribute's type (012_02_03)
                f"attribute {name} is a {old.get('type', 'Property')}, not a {kind}"
            )
        merged = _merge_instance(old, patch)
        rest = [i for i in instances if i.get("datasetId") != dataset]
        packed = _pack(rest if merged is None else [*rest, merged])
        new = {k: v for k, v in current.items() if k != name}
        if packed is not None:
            new[name] = packed
        return _finish(new, current, now)

    return change


def replace_attr(entity_id: str, fragment: Entity, now: str) -> Change:
    """``PUT /entities/{id}/attrs/{name}`` (5.6.19): one existing instance replaced whole."""
    name, value = _one_attr(fragment)

    def change(current: Entity | None) -> Entity:
        if current is None:
            raise _not_found(f"no entity with id {entity_id}")
        instances = _instances(current.get(name))
        dataset = value.get("datasetId")
        if not any(i.get("datasetId") == dataset for i in instances):
            raise _not_found(f"entity {entity_id} has no attribute {name}")
        new = dict(current)
        new[name] = _pack(_put_instance(instances, value))
        return _finish(new, current, now)

    return change


def delete_attr(
    entity_id: str, name: str, now: str, *, dataset_id: str | None, delete_all: bool
) -> Change:
    """``DELETE /entities/{id}/attrs/{name}`` (5.6.5): the default instance, one, or all."""

    def change(current: Entity | None) -> Entity:
        if current is None:
            raise _not_found(f"no entity with id {entity_id}")
        if name == "scope" and current.get("scope") is not None:  # 4.18: a list, no instances
            return _stamp({k: v for k, v in current.items() if k != "scope"}, current, now)
        instances = _instances(current.get(name))
        if delete_all:
            rest: list[Entity] = []
        else:
            rest = [i for i in instances if i.get("datasetId") != dataset_id]
        if not instances or len(rest) == len(instances):
            which = f" with datasetId {dataset_id}" if dataset_id else ""
            raise _not_found(f"entity {entity_id} has no attribute {name}{which}")
        new = {k: v for k, v in current.items() if k != name}
        packed = _pack(rest)
        if packed is not None:
            new[name] = packed
        return _stamp(new, current, now)

    return change
