"""NGSI-LD temporal representation, pure (GS CIM 009 v1.9 clauses 4.5.7-4.5.9, 5.6.11-5.7.4).

No I/O. A store records ``AttrInstance`` rows (``history_of`` says which ones an
entity write produced); a route parses ``timerel``/``lastN`` with ``parse_window``
and turns rows back into a temporal entity with ``temporal_entity``.
Names are as stored (``entity_ops``); ``present`` translates for a client.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.timestamps import iso_ms, parse_iso_ms

__all__ = [
    "AGGREGATION_METHODS",
    "VALUE_MEMBERS",
    "WRAPPED_MEMBERS",
    "Aggregation",
    "AttrInstance",
    "TimeProperty",
    "Window",
    "deletion_row",
    "history_of",
    "instance_row",
    "new_instance_id",
    "paginate",
    "parse_aggregation",
    "parse_window",
    "split_latest",
    "temporal_entity",
]

TimeProperty = Literal["observedAt", "createdAt", "modifiedAt", "deletedAt"]
_SYS = frozenset({"createdAt", "modifiedAt", "deletedAt"})
_HIDDEN = frozenset({"createdAt", "modifiedAt"})
_NOT_ATTRS = frozenset({"id", "type", "scope", "@context"}) | _SYS
_VALUES_OF_KIND = {
    "Property": ("value", "values"),
    "GeoProperty": ("value", "values"),
    "Relationship": ("object", "objects"),
    "LanguageProperty": ("languageMap", "languageMaps"),
    "VocabProperty": ("vocab", "vocabs"),
    "JsonProperty": ("json", "jsons"),
    "ListProperty": ("valueList", "valueLists"),
    "ListRelationship": ("objectList", "objectLists"),
}


NULL = "urn:ngsi-ld:null"
_NULL_OF: dict[str, tuple[str, Any]] = {
    "Property": ("value", NULL),
    "GeoProperty": ("value", NULL),
    "Relationship": ("object", NULL),
    "LanguageProperty": ("languageMap", {"@none": NULL}),
    "VocabProperty": ("vocab", NULL),
    "JsonProperty": ("json", NULL),
    "ListProperty": ("valueList", [NULL]),
    "ListRelationship": ("objectList", [{"object": NULL}]),
}
"""What a deleted instance holds: its kind's value member set to the NGSI-LD null (4.5.7)."""

_WRAPPED = frozenset({"languageMap", "json", "vocab"})
VALUE_MEMBERS: Mapping[str, tuple[str, str]] = _VALUES_OF_KIND
"""Each attribute kind's value member and its simplified plural (for SQL that renders them)."""
WRAPPED_MEMBERS = _WRAPPED
"""Members whose simplified temporal values keep their name (4.5.9: ``[{"vocab": v}, t]``)."""


@dataclass(slots=True)
class AttrInstance:
    """One stored attribute instance of an entity's history (times in Unix ms).

    Treat it as immutable; it is not ``frozen`` because a frozen dataclass sets each
    field through ``object.__setattr__``: 1.6 µs a row against 0.3 µs, and every
    entity write makes one row per changed attribute (``history_of`` fell from ~74 to
    ~42 µs for an entity of eight attributes). Rows compare by value and do not hash.
    """

    entity_id: str
    attr: str
    instance_id: str
    dataset_id: str | None
    observed_at_ms: int | None
    created_at_ms: int
    modified_at_ms: int
    doc: dict[str, Any]
    deleted_at_ms: int | None = None
    """Set on a deletion record only: the instance it stands for was deleted then."""


@dataclass(frozen=True, slots=True)
class Window:
    """Which instances a temporal query wants: a time range on one time property, lastN."""

    time_property: TimeProperty = "observedAt"
    start_ms: int | None = None  # inclusive
    end_ms: int | None = None  # exclusive
    last_n: int | None = None


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid temporal query", detail)


def _id_prefix() -> str:
    return (
        f"urn:ngsi-ld:attribute:instance:{time.time_ns() // 1_000_000:012x}-{secrets.token_hex(4)}-"
    )


_ID_PREFIX = [_id_prefix()]  # one slot, replaced in a forked child
_ID_COUNTER = itertools.count()


def _reseed_ids() -> None:
    """A forked child gets its own prefix: it would otherwise repeat its parent's ids."""
    _ID_PREFIX[0] = _id_prefix()


os.register_at_fork(after_in_child=_reseed_ids)


def new_instance_id() -> str:
    """A fresh instanceId (a URI, as 4.5.7 asks): this process's prefix and a counter.

    Not a uuid4: every entity write adds several instances, and random ids cost
    a urandom call each and land all over the ``instance_id`` primary-key
    B-tree (a page read and split per row). The prefix (process start in ms,
    then 32 random bits) keeps ids unique across processes and restarts; the
    zero-padded counter makes one process's ids ascend, so new rows append to
    the index and instances of one instant tie-break in write order.
    """
    return f"{_ID_PREFIX[0]}{next(_ID_COUNTER):012x}"


@lru_cache(maxsize=4096)
def _ms_of_text(text: str) -> int | None:
    return parse_iso_ms(text)


def _ms(value: Any) -> int | None:
    """``parse_iso_ms`` memoized for strings: one write stamps the same few times on every row."""
    return _ms_of_text(value) if isinstance(value, str) else None


def instance_row(
    entity_id: str, attr: str, instance: Mapping[str, Any], now_ms: int
) -> AttrInstance:
    """A history row for ``instance`` (a normalized instance, stored names)."""
    created = _ms(instance.get("createdAt"))
    modified = _ms(instance.get("modifiedAt"))
    instance_id = instance.get("instanceId")
    if not isinstance(instance_id, str):
        instance_id = new_instance_id()
    dataset = instance.get("datasetId")
    if "instanceId" in instance or not isinstance(instance, dict):
        doc = {k: v for k, v in instance.items() if k != "instanceId"}
    else:  # shared with the entity document, not copied: rows are written, never changed
        doc = instance
    return AttrInstance(
        entity_id=entity_id,
        attr=attr,
        instance_id=instance_id,
        dataset_id=dataset if isinstance(dataset, str) else None,
        observed_at_ms=_ms(instance.get("observedAt")),
        created_at_ms=now_ms if created is None else created,
        modified_at_ms=now_ms if modified is None else modified,
        doc=doc,
    )


def _instances(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, list):
        return [i for i in value if isinstance(i, dict)]
    return [value] if isinstance(value, dict) else []


def deletion_row(
    entity_id: str, attr: str, instance: Mapping[str, Any], now_ms: int
) -> AttrInstance:
    """The record of deleting ``instance``: same kind and datasetId, NGSI-LD null, deletedAt.

    Deleting keeps the history and adds this instance (GS CIM 009 4.5.7, and the
    ETSI suite's 020_17-020_20 expectations); it has no observedAt/createdAt/
    modifiedAt of its own, so only ``timeproperty=deletedAt`` reads it.
    """
    kind = str(instance.get("type", "Property"))
    member, null = _NULL_OF.get(kind, ("value", NULL))
    dataset = instance.get("datasetId")
    doc: dict[str, Any] = {"type": kind, member: null}
    if isinstance(dataset, str):
        doc["datasetId"] = dataset
    doc["deletedAt"] = iso_ms(now_ms)
    return AttrInstance(
        entity_id=entity_id,
        attr=attr,
        instance_id=new_instance_id(),
        dataset_id=dataset if isinstance(dataset, str) else None,
        observed_at_ms=None,
        created_at_ms=now_ms,
        modified_at_ms=now_ms,
        doc=doc,
        deleted_at_ms=now_ms,
    )


def _deletions(
    entity_id: str, old: Mapping[str, Any], new: Mapping[str, Any], now_ms: int
) -> list[AttrInstance]:
    """Deletion records of the instances (and the scope) of ``old`` that ``new`` lacks."""
    rows: list[AttrInstance] = []
    if old.get("scope") is not None and new.get("scope") is None:
        rows.append(deletion_row(entity_id, "scope", {"type": "Property"}, now_ms))
        rows[-1].doc["value"] = []  # a scope is a list: deleted, it is the empty one
    for attr, value in old.items():
        if attr in _NOT_ATTRS or new.get(attr) is value:  # the same object: kept whole
            continue
        kept = {i.get("datasetId") for i in _instances(new.get(attr))}
        rows.extend(
            deletion_row(entity_id, attr, i, now_ms)
            for i in _instances(value)
            if i.get("datasetId") not in kept
        )
    return rows


def history_of(
    entity_id: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, now_ms: int
) -> list[AttrInstance]:
    """The instances an entity write adds to the history: every new or changed one.

    An instance counts as changed when its ``modifiedAt`` (stamped by
    ``entity_ops`` on every real change) or, for gateway documents without
    system attributes, its content differs from the old document's instance of
    the same datasetId. A deleted instance, attribute, scope or entity (``new``
    None) adds a deletion record (``deletion_row``): history is kept.
    """
    if old is not None:
        deleted = _deletions(entity_id, old, {} if new is None else new, now_ms)
    else:
        deleted = []
    if new is None:
        return deleted
    rows: list[AttrInstance] = deleted
    for attr, value in new.items():
        if attr in _NOT_ATTRS:
            continue
        prior_value = None if old is None else old.get(attr)
        if prior_value is value:  # an attribute the write left alone (the same object)
            continue
        before = {i.get("datasetId"): i for i in _instances(prior_value)}
        for instance in _instances(value):
            prior = before.get(instance.get("datasetId"))
            if prior is not None and prior == instance:
                continue
            rows.append(instance_row(entity_id, attr, instance, now_ms))
    return rows


def split_latest(
    head: Mapping[str, Any], rows: Sequence[AttrInstance]
) -> tuple[dict[str, Any], list[AttrInstance]]:
    """An entity's current state from temporal instances, and the instances it leaves out.

    The newest instance of each attribute and datasetId (by observedAt; without
    one, the last given) is the current value. ``head`` holds id, type (and
    scope). The entity write that creates this state records its instances in
    the history itself, so only the others are to be added as they are.
    """
    latest: dict[tuple[str, str | None], AttrInstance] = {}
    for row in rows:
        key = (row.attr, row.dataset_id)
        prior = latest.get(key)
        if prior is None or (row.observed_at_ms or 0) >= (prior.observed_at_ms or 0):
            latest[key] = row
    state: dict[str, Any] = dict(head)
    for (attr, _), row in latest.items():
        doc = {k: v for k, v in row.doc.items() if k not in _SYS}
        state.setdefault(attr, []).append(doc)
    for attr in {a for a, _ in latest}:
        if len(state[attr]) == 1:
            state[attr] = state[attr][0]
    kept = {id(r) for r in latest.values()}
    return state, [r for r in rows if id(r) not in kept]


def _int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"{name} must be an integer, got {value!r}") from None
    if number < 1:
        raise _bad(f"{name} must be at least 1, got {number}")
    return number


def _time(value: str | None, name: str) -> int:
    ms = parse_iso_ms(value)
    if value is None or ms is None:
        raise _bad(f"{name} must be an ISO 8601 DateTime, got {value!r}")
    return ms


def parse_window(params: Mapping[str, str]) -> Window:
    """``timerel``/``timeAt``/``endTimeAt``/``timeproperty``/``lastN`` (5.7.4) -> a ``Window``.

    ``before``: time < timeAt; ``after``: time >= timeAt; ``between``: timeAt <=
    time < endTimeAt. Raises ``NgsiLdError`` 400 BadRequestData.
    """
    prop = params.get("timeproperty", "observedAt")
    if prop not in ("observedAt", "createdAt", "modifiedAt", "deletedAt"):
        raise _bad(
            f"timeproperty must be observedAt, createdAt, modifiedAt or deletedAt, not {prop!r}"
        )
    last_n = None if params.get("lastN") is None else _int(params["lastN"], "lastN")
    timerel = params.get("timerel")
    start = end = None
    if timerel is None:
        if "timeAt" in params or "endTimeAt" in params:
            raise _bad("timeAt and endTimeAt need timerel")
    elif timerel == "before":
        end = _time(params.get("timeAt"), "timeAt")
    elif timerel == "after":
        start = _time(params.get("timeAt"), "timeAt")
    elif timerel == "between":
        start = _time(params.get("timeAt"), "timeAt")
        end = _time(params.get("endTimeAt"), "endTimeAt")
        if end <= start:
            raise _bad("endTimeAt must be after timeAt")
    else:
        raise _bad(f"timerel must be before, after or between, not {timerel!r}")
    return Window(time_property=prop, start_ms=start, end_ms=end, last_n=last_n)  # type: ignore[arg-type]


AGGREGATION_METHODS = frozenset(
    {"totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq"}
)
_DURATION = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_MS_OF = {
    "y": 365 * 86_400_000,
    "mo": 30 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "mi": 60_000,
}


@dataclass(frozen=True, slots=True)
class Aggregation:
    """``aggrMethods`` over periods of ``period_ms`` (0: one period for everything), 4.5.19."""

    methods: tuple[str, ...]
    period_ms: int


def parse_duration_ms(text: str) -> int:
    """An ISO 8601 duration in ms (years 365 days, months 30); 400 if it is not one."""
    match = _DURATION.match(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise _bad(f"aggrPeriodDuration must be an ISO 8601 duration, got {text!r}")
    total = sum(int(match[k]) * ms for k, ms in _MS_OF.items() if match[k])
    if match["s"]:
        total += round(float(match["s"]) * 1000)
    return total


def parse_aggregation(params: Mapping[str, str]) -> Aggregation:
    """``aggrMethods`` (required) and ``aggrPeriodDuration`` (default P0D: one period)."""
    raw = params.get("aggrMethods")
    if not raw:
        raise _bad("aggregatedValues needs aggrMethods")
    methods = tuple(m.strip() for m in raw.split(","))
    unknown = [m for m in methods if m not in AGGREGATION_METHODS]
    if unknown:
        raise _bad(f"unknown aggrMethods {unknown}; known: {sorted(AGGREGATION_METHODS)}")
    return Aggregation(methods, parse_duration_ms(params.get("aggrPeriodDuration", "P0D")))


def _iso(ms: int) -> str:
    text = iso_ms(ms)
    return text[:-5] + "Z" if text.endswith(".000Z") else text


def _aggregate(method: str, values: Sequence[Any]) -> Any:
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len({orjson_key(v) for v in values})
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    if method == "sum":
        return sum(numbers)
    if method == "avg":
        return sum(numbers) / len(numbers)
    if method == "min":
        return min(numbers)
    if method == "max":
        return max(numbers)
    if method == "sumsq":
        return sum(n * n for n in numbers)
    mean = sum(numbers) / len(numbers)
    return math.sqrt(sum((n - mean) ** 2 for n in numbers) / len(numbers))


def orjson_key(value: Any) -> str:
    """A hashable, order-stable key for any JSON value (distinctCount)."""
    return json.dumps(value, sort_keys=True)


def _aggregated(
    rows: Sequence[AttrInstance], aggr: Aggregation, prop: TimeProperty, origin: int | None
) -> dict[str, Any]:
    kind = str(rows[0].doc.get("type", "Property")) if rows else "Property"
    member = _VALUES_OF_KIND.get(kind, ("value", "values"))[0]
    times = [_time_of(r, prop) for r in rows]
    start = origin if origin is not None else min(times, default=0)
    end_all = max(times, default=start) + 1
    period = aggr.period_ms or max(end_all - start, 1)
    buckets: dict[int, list[Any]] = {}
    for row, t in zip(rows, times, strict=True):
        if t >= start:
            buckets.setdefault((t - start) // period, []).append(row.doc.get(member))
    out: dict[str, Any] = {"type": kind}
    for method in aggr.methods:
        series = []
        for k in sorted(buckets):
            value = _aggregate(method, buckets[k])
            if value is not None:
                lo = start + k * period
                series.append([value, _iso(lo), _iso(lo + period)])
        out[method] = series
    return out


def _sort_key(row: AttrInstance) -> tuple[int, str]:
    t = row.observed_at_ms if row.observed_at_ms is not None else row.modified_at_ms
    return (t, row.instance_id)


def _time_of(row: AttrInstance, prop: TimeProperty) -> int:
    ms = {
        "observedAt": row.observed_at_ms,
        "createdAt": row.created_at_ms,
        "modifiedAt": row.modified_at_ms,
        "deletedAt": row.deleted_at_ms,
    }[prop]
    return row.modified_at_ms if ms is None else ms


def paginate(
    rows: Sequence[AttrInstance], window: Window, limit: int
) -> tuple[list[AttrInstance], str | None]:
    """At most ``limit`` instances in all, cut at one instant (6.3.10); and a Content-Range.

    Oldest first, or newest first with lastN (which asks for the most recent).
    The Content-Range (``date-time <from>-<to>/<lastN or *>``) is None when
    nothing was cut: the answer is then complete (200, not 206).
    """
    if len(rows) <= limit:
        return list(rows), None
    prop = window.time_property
    newest_first = window.last_n is not None
    ordered = sorted(rows, key=lambda r: (_time_of(r, prop), r.instance_id), reverse=newest_first)
    kept = ordered[:limit]
    first, cut = _time_of(kept[0], prop), _time_of(kept[-1], prop)
    if newest_first:
        start = window.end_ms if window.end_ms is not None else first
    else:
        start = window.start_ms if window.start_ms is not None else first
    size = "*" if window.last_n is None else str(window.last_n)
    return kept, f"date-time {iso_ms(start)}-{iso_ms(cut)}/{size}"


def temporal_entity(
    header: Mapping[str, Any],
    rows: Iterable[AttrInstance],
    *,
    temporal_values: bool = False,
    sys_attrs: bool = False,
    time_property: TimeProperty = "observedAt",
    empty_attrs: Iterable[str] = (),
    aggregation: Aggregation | None = None,
    origin_ms: int | None = None,
) -> dict[str, Any]:
    """A temporal entity (4.5.7) from its header (id, type, ...) and instance rows.

    Every attribute is an array of instances, oldest first; with
    ``temporal_values`` the simplified form (4.5.9): one object per attribute
    (and datasetId) with ``values``: ``[[value, time], ...]``.
    """
    out: dict[str, Any] = {
        k: v for k, v in header.items() if k in ("id", "type", "scope") or (sys_attrs and k in _SYS)
    }
    by_attr: dict[str, list[AttrInstance]] = {}
    for row in sorted(rows, key=_sort_key):
        by_attr.setdefault(row.attr, []).append(row)
    if aggregation is not None:
        for attr, attr_rows in by_attr.items():
            out[attr] = _aggregated(attr_rows, aggregation, time_property, origin_ms)
        return out
    for attr in empty_attrs:
        if attr not in by_attr:
            out[attr] = _simplified([], time_property) if temporal_values else []
    for attr, attr_rows in by_attr.items():
        if temporal_values:
            out[attr] = _simplified(attr_rows, time_property)
        else:
            out[attr] = [_full(row, sys_attrs) for row in attr_rows]
    return out


def _full(row: AttrInstance, sys_attrs: bool) -> dict[str, Any]:
    # deletedAt stays: it is a deletion record's only time, what the record says
    doc = row.doc if sys_attrs else {k: v for k, v in row.doc.items() if k not in _HIDDEN}
    return {**doc, "instanceId": row.instance_id}


def _simplified(rows: Sequence[AttrInstance], time_property: TimeProperty) -> Any:
    groups: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        kind = str(row.doc.get("type", "Property"))
        member, plural = _VALUES_OF_KIND.get(kind, ("value", "values"))
        group = groups.get(row.dataset_id)
        if group is None:
            group = {"type": kind, plural: []}
            if row.dataset_id is not None:
                group["datasetId"] = row.dataset_id
            groups[row.dataset_id] = group
        at = row.doc.get(time_property)
        if at is None:
            at = row.doc.get("modifiedAt")
        value = row.doc.get(member)
        if member in _WRAPPED:
            value = {member: value}
        group[plural].append([value, at])
    if not groups:
        return {"type": "Property", "values": []}
    packed = list(groups.values())
    return packed[0] if len(packed) == 1 else packed
