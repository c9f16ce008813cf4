"""A gateway's batch becomes history and current state: the mapping and the ownership rule.

This used to live inside each store, written twice with a different flow in each. It is
the twin's logic, not storage: every reading becomes a temporal instance of its own
(``readings``), the device entities take the newest values (``device_model``), and a
gateway may only write the entities it owns. All of it is one transaction, so a batch is
acknowledged only when its readings and the entity changes are committed together.

Exactly once: a reading's instance id names its gateway and seq. The entity rows are
locked first, then the ids already stored are set aside, and only the new readings move
the entities, so a replayed batch (after a lost acknowledgement) adds no instance and
changes no entity, and a late backfill adds its instances without moving current values
(newest wins in ``apply_update``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ldt.cloud.errors import OwnershipError
from ldt.cloud.ngsild.device_model import apply_update, reading_id, reading_instance, summarize
from ldt.cloud.ngsild.timestamps import iso_ms, parse_iso_ms
from ldt.cloud.store import entity_rows, readings, temporal
from ldt.cloud.store.base import Entity
from ldt.cloud.store.database import Database, Tx
from ldt.contract import IngestBatch

__all__ = ["IngestResult", "ingest", "namespaced"]


def namespaced(entity_id: str, gateway_id: str) -> bool:
    """Whether ``entity_id`` lies in ``gateway_id``'s space: it holds ``:<gateway id>:`` (the
    agent's ids are ``urn:ngsi-ld:<type>:<gateway>:<device>``). A gateway creates only
    such entities; any other one an admin creates and assigns to it."""
    return f":{gateway_id}:" in entity_id


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one committed batch changed: new readings, replayed ones, highest seq seen."""

    accepted: int
    duplicates: int
    max_seq: int


async def ingest(db: Database, gateway_id: str, batch: IngestBatch) -> IngestResult:
    """Apply one batch in one transaction; returns only after it is committed.

    Raises ``OwnershipError`` (nothing written) if the batch touches an entity another
    gateway owns.
    """
    series = {int(k): v for k, v in batch.series.items()}
    # a poll cycle stamps many readings with one time: format each time once
    times = {ts: iso_ms(ts) for ts in {r[2] for r in batch.readings}}
    rows = [
        readings.ReadingRow(
            instance_id=reading_id(gateway_id, seq),
            entity_id=series[sid].entity_id,
            attr=series[sid].attr,
            observed_at_ms=ts,
            doc=reading_instance(
                value, ts, quality, reason, unit=series[sid].unit,
                provenance=series[sid].provenance, observed=times[ts],
            ),
        )
        for seq, sid, ts, value, quality, reason in batch.readings
    ]  # fmt: skip
    ids = sorted({s.entity_id for s in series.values()})
    points = frozenset((s.entity_id, s.attr) for s in series.values())
    types = {s.entity_id: s.entity_type for s in series.values()}

    async def apply(tx: Tx) -> int:
        current = await entity_rows.load(tx, ids)
        for eid in ids:
            found = current.get(eid)
            owner = None if found is None else found[0]
            if found is None and not namespaced(eid, gateway_id):
                raise OwnershipError(eid, None)  # it would create an id of another's space
            if found is not None and owner != gateway_id:
                raise OwnershipError(eid, owner)  # another gateway's, or the API's
        now = entity_rows.now_iso()
        now_ms = parse_iso_ms(now) or 0
        # a replay is rare (a lost acknowledgement): try the batch whole, and only when a
        # reading turns out to be stored already, undo that and set the stored ones aside
        await tx.execute("SAVEPOINT readings")
        inserted = await readings.insert(tx, rows, now_ms)
        fresh_rows = rows
        if inserted != len(rows):
            await tx.execute("ROLLBACK TO SAVEPOINT readings")
            stored = await readings.existing(tx, [r.instance_id for r in rows])
            fresh_rows = [r for r in rows if r.instance_id not in stored]
            inserted = await readings.insert(tx, fresh_rows, now_ms)
        await tx.execute("RELEASE SAVEPOINT readings")
        if not fresh_rows:
            return 0
        fresh = batch
        if len(fresh_rows) != len(rows):
            keep = {r.instance_id for r in fresh_rows}
            fresh = batch.model_copy(
                update={
                    "readings": [r for r in batch.readings if reading_id(gateway_id, r[0]) in keep]
                }
            )
        changes: list[tuple[str, Entity | None, Entity | None]] = []
        for eid, upd in summarize(fresh).items():
            before = current.get(eid)
            old = None if before is None else before[1]
            doc = apply_update(old, eid, upd, now=now)
            if old is not None and doc == old:
                continue
            changes.append((eid, old, doc))
        await entity_rows.save(tx, changes, owner=gateway_id, now=now)
        # the points' history is their readings; the entity's own summary attributes
        # (deviceState, dateLastValueReported) are recorded as any entity change is
        await entity_rows.record_history(tx, changes, now, skip=points)
        await temporal.record(
            tx,
            {eid: (types.get(eid, "Device"), now) for eid in {r.entity_id for r in fresh_rows}},
            [],
        )
        return inserted

    accepted = await db.write(apply)
    return IngestResult(
        accepted=accepted,
        duplicates=len(rows) - accepted,
        max_seq=max((r[0] for r in batch.readings), default=0),
    )
