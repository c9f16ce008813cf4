"""How a gateway's readings become attributes of FIWARE Smart Data Models ``Device`` entities.

Pure functions, no I/O: the store calls ``summarize`` once per batch and
``apply_update`` once per touched entity, inside the batch's transaction, so
each attribute is written once per batch (with its newest reading) rather
than once per reading. The rules (docs/smart-data-models.md):

- an attribute takes a reading's value only if the reading is ``good`` or
  ``stale`` and at least as new as the attribute's ``observedAt``: a backfill
  after an outage never overwrites fresher live values (equal timestamps: the
  later batch wins, as devices with whole-second clocks repeat a timestamp);
- a ``bad`` reading never changes the value; if it is the newest thing known
  about the attribute it sets the sub-properties ``quality`` = "bad" and
  ``reason``, so the twin shows that the value is no longer being refreshed;
- ``dateLastValueReported`` is the newest good or stale reading of the device;
- ``deviceState`` follows the quality of the device's newest reading
  ("ok", "stale" or "error");
- an attribute a model on the gateway derived carries the sub-property ``provenance``
  (the model's name and version), so the twin tells predictions from measurements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ldt.cloud.ngsild.timestamps import iso_ms, parse_iso_ms
from ldt.contract import IngestBatch, WireValue

__all__ = [
    "READING_ID_PREFIX",
    "AttrUpdate",
    "EntityUpdate",
    "apply_update",
    "reading_id",
    "reading_instance",
    "summarize",
]

READING_ID_PREFIX = "urn:ngsi-ld:reading:"
"""A synced reading's instanceId is this, its gateway, ``:`` and its seq."""
NULL_VALUE = "urn:ngsi-ld:null"
"""The value of an instance that records a reading without one (NGSI-LD's null)."""

_DEVICE_STATE = {"good": "ok", "stale": "stale", "bad": "error"}


@dataclass(slots=True)
class AttrUpdate:
    """The newest readings of one attribute within one batch."""

    unit: str | None
    provenance: str | None = None
    """What produced a derived series (a model and its version); None: the device."""
    value_key: tuple[int, int] | None = None
    """(observed_at_ms, seq) of the newest good/stale reading with a value."""
    value: WireValue = None
    value_quality: str = "good"
    newest_key: tuple[int, int] = (-1, -1)
    """(observed_at_ms, seq) of the newest reading of any quality."""
    newest_quality: str = "good"
    newest_reason: str | None = None


@dataclass(slots=True)
class EntityUpdate:
    """What one batch says about one entity."""

    entity_type: str
    attrs: dict[str, AttrUpdate] = field(default_factory=dict)


def summarize(batch: IngestBatch) -> dict[str, EntityUpdate]:
    """The newest readings per (entity, attribute) of a batch; row order does not matter."""
    out: dict[str, EntityUpdate] = {}
    by_series: dict[int, AttrUpdate] = {}
    for key, info in batch.series.items():
        ent = out.get(info.entity_id)
        if ent is None:
            ent = out[info.entity_id] = EntityUpdate(entity_type=info.entity_type)
        upd = ent.attrs.get(info.attr)
        if upd is None:
            upd = ent.attrs[info.attr] = AttrUpdate(unit=info.unit, provenance=info.provenance)
        by_series[int(key)] = upd
    for seq, sid, ts, value, quality, reason in batch.readings:
        upd = by_series[sid]
        rkey = (ts, seq)
        if rkey > upd.newest_key:
            upd.newest_key = rkey
            upd.newest_quality = quality
            upd.newest_reason = reason
        if (
            quality != "bad"
            and value is not None
            and (upd.value_key is None or rkey > upd.value_key)
        ):
            upd.value_key = rkey
            upd.value = value
            upd.value_quality = quality
    # an entity only referenced by series without readings changes nothing
    return {
        eid: ent
        for eid, ent in out.items()
        if any(a.newest_key[0] >= 0 for a in ent.attrs.values())
    }


def reading_id(gateway_id: str, seq: int) -> str:
    """The instanceId of reading ``seq`` of ``gateway_id``: the same on every replay, so
    storing it twice is a key conflict, not a second instance."""
    return f"{READING_ID_PREFIX}{gateway_id}:{seq}"


def reading_instance(
    value: WireValue,
    ts: int,
    quality: str,
    reason: str | None,
    *,
    unit: str | None,
    provenance: str | None,
    observed: str | None = None,
) -> dict[str, Any]:
    """The temporal instance of one synced reading (the history keeps every reading).

    It reads like the attribute ``apply_update`` gives the entity when this reading is
    the newest: the value with ``observedAt``, ``unitCode``, ``quality`` and, for a
    derived series, ``provenance``. A reading without a value (a ``bad`` one) records
    NGSI-LD's null with its ``quality`` and ``reason``, so the history shows when and
    why the device was not read, where an older value would hide the gap.
    """
    at = observed or iso_ms(ts)  # ``observed``: iso_ms(ts), when the caller has it
    has_value = quality != "bad" and value is not None
    doc: dict[str, Any] = {
        "type": "Property",
        "value": value if has_value else NULL_VALUE,
        "observedAt": at,
    }
    if unit is not None:
        doc["unitCode"] = unit
    if provenance is not None:
        doc["provenance"] = {"type": "Property", "value": provenance, "observedAt": at}
    doc["quality"] = {"type": "Property", "value": quality, "observedAt": at}
    if reason is not None or not has_value:  # a good reading may carry one (a skewed clock)
        doc["reason"] = {"type": "Property", "value": reason or "read failed", "observedAt": at}
    return doc


def _prop(value: Any, ms: int) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": iso_ms(ms)}


def _observed_ms(attr: object) -> int | None:
    if isinstance(attr, dict):
        return parse_iso_ms(attr.get("observedAt"))
    return None


def apply_update(
    doc: dict[str, Any] | None, entity_id: str, update: EntityUpdate, *, now: str | None = None
) -> dict[str, Any]:
    """The entity after one batch; ``doc`` (the stored entity, or None) is not modified.

    Changed attributes and the entity get ``createdAt``/``modifiedAt`` (``now``, default the
    current time) as the NGSI-LD API's writes give them, so a gateway's entity reads like
    any other with ``options=sysAttrs``; an unchanged entity comes back equal to ``doc``.
    """
    new: dict[str, Any] = (
        dict(doc) if doc is not None else {"id": entity_id, "type": update.entity_type}
    )
    last_value_ms: int | None = None
    newest_ms = -1
    newest_quality = "good"
    for name, upd in update.attrs.items():
        cur = new.get(name)
        cur_ms = _observed_ms(cur)
        # ">=": a device whose clock reports whole seconds stamps several readings with
        # the same second; the one that arrived later (higher seq) is the current value
        if upd.value_key is not None and (cur_ms is None or upd.value_key[0] >= cur_ms):
            ms = upd.value_key[0]
            attr = _prop(upd.value, ms)
            if upd.unit is not None:
                attr["unitCode"] = upd.unit
            if upd.provenance is not None:
                attr["provenance"] = _prop(upd.provenance, ms)
            old_quality = cur.get("quality") if isinstance(cur, dict) else None
            old_q_ms = _observed_ms(old_quality)
            if old_q_ms is not None and old_q_ms > ms and isinstance(cur, dict):
                # a newer bad reading is already known: keep saying so
                attr["quality"] = old_quality
                if "reason" in cur:
                    attr["reason"] = cur["reason"]
            else:
                attr["quality"] = _prop(upd.value_quality, ms)
            new[name] = cur = attr
            last_value_ms = ms if last_value_ms is None else max(last_value_ms, ms)
        if upd.newest_quality == "bad" and isinstance(cur, dict) and "value" in cur:
            bad_ms = upd.newest_key[0]
            q_ms = _observed_ms(cur.get("quality"))
            if q_ms is None:
                q_ms = _observed_ms(cur)
            if q_ms is None or bad_ms > q_ms:
                cur = new[name] = dict(cur)
                cur["quality"] = _prop("bad", bad_ms)
                cur["reason"] = _prop(upd.newest_reason or "read failed", bad_ms)
        if upd.newest_key[0] > newest_ms:
            newest_ms = upd.newest_key[0]
            newest_quality = upd.newest_quality
    if last_value_ms is not None:
        reported = new.get("dateLastValueReported")
        prev = (
            parse_iso_ms(reported.get("value", {}).get("@value"))
            if isinstance(reported, dict) and isinstance(reported.get("value"), dict)
            else None
        )
        if prev is None or last_value_ms > prev:
            new["dateLastValueReported"] = {
                "type": "Property",
                "value": {"@type": "DateTime", "@value": iso_ms(last_value_ms)},
            }
    if newest_ms >= 0:
        state_ms = _observed_ms(new.get("deviceState"))
        if state_ms is None or newest_ms > state_ms:
            new["deviceState"] = _prop(_DEVICE_STATE[newest_quality], newest_ms)
    return _stamped(new, doc, now)


def _stamped(new: dict[str, Any], doc: dict[str, Any] | None, now: str | None) -> dict[str, Any]:
    """System attributes on what ``apply_update`` replaced (a changed member is a new object)."""
    old = doc or {}
    changed = [
        k
        for k, v in new.items()
        if k not in ("id", "type") and isinstance(v, dict) and v is not old.get(k)
    ]
    if not changed and doc is not None:
        return new
    stamp = now or iso_ms(time.time_ns() // 1_000_000)
    for key in changed:
        prior = old.get(key)
        created = prior.get("createdAt", stamp) if isinstance(prior, dict) else stamp
        new[key] = {**new[key], "createdAt": created, "modifiedAt": stamp}
    new["createdAt"] = old.get("createdAt", stamp)
    new["modifiedAt"] = stamp
    return new
