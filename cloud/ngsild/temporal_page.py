"""One temporal answer's page of instances, and its rendering from JSON the store wrote.

A store cuts a temporal read at the instance limit in SQL (``TemporalRepository.page``,
``store.temporal_read``). For the normalized and the simplified formats it can
also render each instance's JSON in SQL (``Render``), so a 10,000-instance
answer costs no JSON parsing and no per-instance dict in Python: the texts are
joined into ``orjson.Fragment`` arrays that ``orjson.dumps`` copies as they are.
The result equals ``temporal.temporal_entity`` over the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ldt.cloud.ngsild.temporal import VALUE_MEMBERS, AttrInstance, Window
from ldt.cloud.ngsild.timestamps import iso_ms

__all__ = ["InstanceText", "Render", "TemporalPage", "attribute_values", "present_pairs"]

Render = Literal["full", "full_sys", "values"]
"""What the store renders per instance: the instance (without createdAt/modifiedAt, or
with them: ``full_sys``) and its instanceId; or its simplified ``[value, time]`` pair."""


@dataclass(frozen=True, slots=True)
class InstanceText:
    """One instance as the store rendered it (``Render``), with what orders and groups it."""

    entity_id: str
    attr: str
    instance_id: str
    dataset_id: str | None
    sort_ms: int
    """Its observedAt, or modifiedAt without one: the order within an attribute."""
    kind: str
    """Its type (Property, Relationship, ...): the simplified group's type and member."""
    text: str


@dataclass(frozen=True, slots=True)
class TemporalPage:
    """At most the instance limit of a temporal read, first by (time, instanceId).

    Newest first with lastN. ``rows`` are parsed instances, or empty when the
    store rendered ``texts`` instead; ``present``: every (entity, attribute)
    with an instance in the window, on the page or not (an attribute cut away
    entirely still shows, empty); ``more``: the window held more than the page;
    ``span``: the first and last instance's time, in answer order.
    """

    rows: list[AttrInstance]
    present: frozenset[tuple[str, str]]
    more: bool
    span: tuple[int, int] | None = None
    texts: list[InstanceText] | None = None

    def content_range(self, window: Window) -> str | None:
        """``date-time <from>-<to>/<lastN or *>`` (6.3.10); None when nothing was cut (200)."""
        if not self.more or self.span is None:
            return None
        first, cut = self.span
        if window.last_n is not None:
            start = window.end_ms if window.end_ms is not None else first
        else:
            start = window.start_ms if window.start_ms is not None else first
        size = "*" if window.last_n is None else str(window.last_n)
        return f"date-time {iso_ms(start)}-{iso_ms(cut)}/{size}"


def _array(texts: Iterable[str]) -> orjson.Fragment:
    return orjson.Fragment(f"[{','.join(texts)}]")


def _simplified(texts: list[InstanceText]) -> Any:
    """``temporal._simplified`` over rendered pairs: one group per datasetId, in order."""
    groups: dict[str | None, tuple[str, list[str]]] = {}
    for t in texts:
        groups.setdefault(t.dataset_id, (t.kind, []))[1].append(t.text)
    if not groups:
        return {"type": "Property", "values": []}
    packed = []
    for dataset_id, (kind, pairs) in groups.items():
        plural = VALUE_MEMBERS.get(kind, ("value", "values"))[1]
        group: dict[str, Any] = {"type": kind, plural: _array(pairs)}
        if dataset_id is not None:
            group["datasetId"] = dataset_id
        packed.append(group)
    return packed[0] if len(packed) == 1 else packed


def attribute_values(
    texts: Iterable[InstanceText], attrs: Iterable[tuple[str, str]], render: Render
) -> dict[str, dict[str, Any]]:
    """entity id -> attribute -> its temporal value, from rendered instances.

    ``attrs``: (entity, attribute) pairs to show even without an instance on
    the page (empty). Within an attribute, instances are oldest first by
    observedAt (modifiedAt without one), then instanceId: ``temporal_entity``'s order.
    """
    by_pair: dict[tuple[str, str], list[InstanceText]] = {}
    for t in sorted(texts, key=lambda t: (t.sort_ms, t.instance_id)):
        by_pair.setdefault((t.entity_id, t.attr), []).append(t)
    out: dict[str, dict[str, Any]] = {}
    for entity_id, attr in attrs:
        if (entity_id, attr) not in by_pair:
            empty = _simplified([]) if render == "values" else []
            out.setdefault(entity_id, {})[attr] = empty
    for (entity_id, attr), mine in by_pair.items():
        value = _simplified(mine) if render == "values" else _array(t.text for t in mine)
        out.setdefault(entity_id, {})[attr] = value
    return out


def present_pairs(page: TemporalPage) -> Mapping[str, set[str]]:
    """entity id -> its attributes with an instance in the window."""
    out: dict[str, set[str]] = {}
    for entity_id, attr in page.present:
        out.setdefault(entity_id, set()).add(attr)
    return out
