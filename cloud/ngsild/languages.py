"""The ``lang`` parameter (GS CIM 009 v1.9.1 clause 4.15): one language per LanguageProperty.

``lang=fr``, ``lang=fr-CH,fr``, ``lang=*`` or ranked ``lang=fr-CH,fr;q=0.9,en;q=0.8,*;q=0.5``
(the syntax of HTTP's Accept-Language, RFC 9110 12.5.4). With it, every LanguageProperty of an
answered entity (sub-attributes included) is shown as a Property whose ``value`` is the string
of the best language and whose ``lang`` names it, as ETSI's suite expects (018_07):
``{"type": "Property", "value": "Grand Place", "lang": "fr"}``.

Matching is RFC 4647 basic filtering: a range matches a tag equal to it or starting with it
and ``-`` (``fr`` matches ``fr-CH``, not the reverse), case-insensitively; ranges are tried by
descending ``q`` (ties in the order given); ``*`` takes the map's first language; ``q=0``
ranges are never wanted. When nothing matches, the ``@none`` entry is shown if there is one,
else the first language of the map (the spec leaves this open; a value beats none).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from ldt.cloud.ngsild.problems import NgsiLdError

__all__ = ["parse_lang", "select_languages"]

_RANGE: Final = re.compile(r"^(\*|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*)$")
_Q: Final = re.compile(r"^[qQ]=(0(\.\d{0,3})?|1(\.0{0,3})?)$")
_MAX_RANGES: Final = 64
_NONE: Final = "@none"
# members holding an attribute's value (not sub-attributes): never searched for LanguageProperty
_VALUE_MEMBERS: Final = frozenset(
    {"value", "object", "objectList", "languageMap", "valueList", "json", "vocab"}
)


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid lang", detail)


def parse_lang(text: str) -> tuple[str, ...]:
    """The wanted language ranges, most preferred first (``q=0`` ones dropped); 400 if bad."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or len(parts) > _MAX_RANGES:
        raise _bad(f"lang must list 1 to {_MAX_RANGES} language ranges, got {text!r}")
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(parts):
        tag, *params = [p.strip() for p in part.split(";")]
        if not _RANGE.match(tag):
            raise _bad(f"{tag!r} is not a language range (RFC 4647)")
        weight = 1.0
        for param in params:
            if not _Q.match(param):
                raise _bad(f"{param!r} is not a weight (q=0 to q=1, three decimals at most)")
            weight = float(param[2:])
        if weight > 0:
            ranked.append((-weight, index, tag.lower()))
    return tuple(tag for _, _, tag in sorted(ranked))


def _pick(language_map: Mapping[str, Any], ranges: tuple[str, ...]) -> tuple[str, Any] | None:
    tags = [t for t in language_map if t != _NONE]
    for wanted in ranges:
        for tag in tags:
            low = tag.lower()
            if wanted in ("*", low) or low.startswith(wanted + "-"):
                return tag, language_map[tag]
    if _NONE in language_map:
        return _NONE, language_map[_NONE]
    return (tags[0], language_map[tags[0]]) if tags else None


def _attribute(value: Any, ranges: tuple[str, ...]) -> Any:
    if isinstance(value, list):
        return [_attribute(v, ranges) for v in value]
    if not isinstance(value, Mapping) or "type" not in value:
        return value
    out = {k: v if k in _VALUE_MEMBERS else _attribute(v, ranges) for k, v in value.items()}
    language_map = value.get("languageMap")
    if value.get("type") == "LanguageProperty" and isinstance(language_map, Mapping):
        chosen = _pick(language_map, ranges)
        del out["languageMap"]
        out["type"] = "Property"
        if chosen is not None:
            out["value"], out["lang"] = chosen[1], chosen[0]
    return out


def select_languages(entity: Mapping[str, Any], ranges: tuple[str, ...]) -> dict[str, Any]:
    """``entity`` (normalized, compacted) with each LanguageProperty narrowed to one language."""
    return {k: _attribute(v, ranges) for k, v in entity.items()}
