"""What an index on one attribute's values holds for an entity, in the semantics of ``q``.

Why beside ``query``: a value index answers a term such as ``temperature>20`` instead of
``evaluate``, so it is exact only if it holds precisely the values ``evaluate`` compares.
The facts therefore come from the very functions ``evaluate`` uses (``_instances``,
``_value_of``, ``_coerce``), never from a second reading of the document:

- ``NUMBER``/``TEXT``: each number or string a term ``attr OP literal`` compares, over every
  instance (``datasetId``) and every element of an array value, for every kind of attribute
  (a Property's ``value``, a ListProperty's ``valueList``, a LanguageProperty's strings ...);
- ``OBJECT``: a Relationship's object ids, which only ``==`` compares (an ordering term
  skips Relationships, so they are kept apart from ``TEXT``);
- ``OBSERVED``: each instance's ``observedAt``, as Unix seconds;
- ``UNINDEXED``: this entity's attribute holds something the index does not keep (an array
  of more than ``MAX_ELEMENTS``, a string longer than ``MAX_TEXT``, an integer beyond 2**53,
  an ``observedAt`` that is not a string). A search must check such entities against their
  document: the index names them, it does not answer for them.

Booleans, objects and nulls make no fact: no number, string or date-time term compares
them (``_coerce``), and the index is used for no other term.
"""

from __future__ import annotations

from typing import Any, Final

from ldt.cloud.ngsild.query import (
    _MISMATCH,
    _RELATIONSHIPS,
    _coerce,
    _instances,
    _value_of,
)

__all__ = [
    "MAX_ELEMENTS",
    "MAX_TEXT",
    "NUMBER",
    "OBJECT",
    "OBSERVED",
    "TEXT",
    "UNINDEXED",
    "Fact",
    "facts",
]

NUMBER: Final = 0
TEXT: Final = 1
OBJECT: Final = 2
OBSERVED: Final = 3
UNINDEXED: Final = 9

MAX_ELEMENTS: Final = 64
"""Elements of one array value an index keeps (a longer array is ``UNINDEXED``)."""
MAX_TEXT: Final = 200
"""Characters of one string an index keeps: index keys stay small (PostgreSQL's B-tree
refuses keys over ~2,700 bytes, and a long text is not what a comparison looks for)."""
_EXACT_INT: Final = 2**53

Fact = tuple[int, float | None, str | None]
"""(kind, number, string): one value an index keeps for one attribute of one entity."""

_NOTHING: Final[frozenset[Fact]] = frozenset()
_UNINDEXED: Final[Fact] = (UNINDEXED, None, None)


def facts(member: Any) -> frozenset[Fact]:
    """The facts of one entity member (the attribute's value in the normalized entity)."""
    if member is None:
        return _NOTHING
    out: set[Fact] = set()
    for instance in _instances(member):
        _values(instance, out)
        observed = instance.get("observedAt")
        if observed is None:
            continue
        if not isinstance(observed, str):
            out.add(_UNINDEXED)  # evaluate might read it as a sub-attribute
            continue
        when = _coerce(observed, "datetime")
        if when is not _MISMATCH:
            out.add((OBSERVED, when.timestamp(), None))
    return frozenset(out)


def _values(instance: Any, out: set[Fact]) -> None:
    target = _value_of(True, instance, None)
    if target is _MISMATCH:
        return
    elements = target if isinstance(target, list) else (target,)
    if len(elements) > MAX_ELEMENTS:
        out.add(_UNINDEXED)
        return
    text_kind = OBJECT if instance.get("type") in _RELATIONSHIPS else TEXT
    for element in elements:
        if isinstance(element, bool):
            continue
        if isinstance(element, int):
            out.add((NUMBER, float(element), None) if abs(element) <= _EXACT_INT else _UNINDEXED)
        elif isinstance(element, float):
            out.add((NUMBER, element, None))
        elif isinstance(element, str):
            out.add((text_kind, None, element) if len(element) <= MAX_TEXT else _UNINDEXED)
