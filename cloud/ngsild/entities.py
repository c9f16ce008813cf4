"""Checks an NGSI-LD entity payload before it is stored (normalized form only).

Minimal but strict: an entity is a JSON object with a URI ``id``, a ``type``
name, and attributes that are each an object with an NGSI-LD attribute type
and what that type requires (``value``, ``object``, ...). Every failure is an
``NgsiLdError`` (400 BadRequestData) naming the offending member.
"""

from __future__ import annotations

import re
from typing import Any

from ldt.cloud.ngsild.problems import NgsiLdError

__all__ = ["is_uri", "validate_entity"]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+$")
_TYPE_NAME = re.compile(r"^[^\s<>\"'=;()\\]+$")
_ATTR_NAME = re.compile(r"^[A-Za-z_@][^\s<>\"'=;()\\]*$")
_REQUIRED_MEMBER = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}
_SYSTEM = frozenset({"createdAt", "modifiedAt", "deletedAt"})


def is_uri(text: object) -> bool:
    """True for an absolute URI such as ``urn:ngsi-ld:Device:gw-1:meter-1``."""
    return isinstance(text, str) and len(text) <= 2048 and bool(_URI.match(text))


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid entity", detail)


def validate_entity(raw: object, *, allow_context: bool) -> dict[str, Any]:
    """The entity without ``@context``; raises ``NgsiLdError`` (400) if it is not valid.

    ``allow_context``: the request was ``application/ld+json`` (``@context``
    required in the body) rather than ``application/json`` (forbidden there).
    """
    if not isinstance(raw, dict):
        raise _bad("each entity must be a JSON object")
    if not is_uri(raw.get("id")):
        raise _bad(f"entity id must be a URI, got {raw.get('id')!r}")
    etype = raw.get("type")
    if not isinstance(etype, str) or not _TYPE_NAME.match(etype):
        raise _bad(f"entity {raw['id']}: type must be a name, got {etype!r}")
    if allow_context and "@context" not in raw:
        raise _bad(f"entity {raw['id']}: application/ld+json needs @context in the body")
    if not allow_context and "@context" in raw:
        raise _bad(
            f"entity {raw['id']}: @context in an application/json body; "
            "send application/ld+json or use a Link header"
        )
    out: dict[str, Any] = {"id": raw["id"], "type": etype}
    for name, attr in raw.items():
        if name in {"id", "type", "@context"} or name in _SYSTEM:
            continue
        if name == "scope":
            out[name] = attr
            continue
        if not _ATTR_NAME.match(name):
            raise _bad(f"entity {raw['id']}: invalid attribute name {name!r}")
        if not isinstance(attr, dict):
            raise _bad(
                f"entity {raw['id']}: attribute {name} must be an object with a type "
                "(normalized form)"
            )
        kind = attr.get("type")
        member = _REQUIRED_MEMBER.get(kind) if isinstance(kind, str) else None
        if member is None:
            raise _bad(f"entity {raw['id']}: attribute {name} has unknown type {kind!r}")
        if member not in attr:
            raise _bad(f"entity {raw['id']}: attribute {name} ({kind}) needs {member!r}")
        if kind == "Relationship" and not is_uri(attr["object"]):
            raise _bad(f"entity {raw['id']}: relationship {name} must point to a URI")
        out[name] = attr
    return out
