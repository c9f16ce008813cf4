"""Reading, locking and writing entity rows inside a caller's transaction, written once.

Every path that changes entities (the NGSI-LD writes, batch upserts, a gateway's ingest)
is the same read-modify-write: lock the rows (``load``), compute the new documents in
Python, then ``save`` what changed and record its history in the same transaction. The
location columns (``geo_cells``) are computed here for both engines, so no trigger or
engine-specific column keeps the location index.

Concurrency: SQLite's write transaction is exclusive. On PostgreSQL the existing rows are
locked ``FOR UPDATE`` (by id, so two writers never lock in opposite orders); a row that
another process creates between our read and our insert makes the insert do nothing,
and ``ConcurrentChangeError`` runs the whole unit of work again on the new row.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson

from ldt.cloud.errors import ConcurrentChangeError
from ldt.cloud.ngsild.temporal import AttrInstance, history_of
from ldt.cloud.ngsild.timestamps import parse_iso_ms
from ldt.cloud.store import temporal, value_index
from ldt.cloud.store.base import Entity
from ldt.cloud.store.database import Tx
from ldt.cloud.store.dialect import BulkKind
from ldt.cloud.store.geo_cells import columns

__all__ = ["dumps", "load", "load_doc", "main_type", "now_iso", "record_history", "save"]

_COLUMNS: Final = ("id", "type", "doc", "gateway_id", "created_at", "modified_at")
_GEO: Final = ("geo_cell", "x0", "y0", "x1", "y1")
_KINDS: Final[tuple[BulkKind, ...]] = ("text", "text", "json", "text", "time", "time")
_GEO_KINDS: Final[tuple[BulkKind, ...]] = ("int", "real", "real", "real", "real")


def now_iso() -> str:
    """The current time as the stores write it (ISO 8601 UTC, milliseconds)."""
    ms = time.time_ns() // 1_000_000
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def dumps(doc: object) -> str:
    """JSON text of a document."""
    return orjson.dumps(doc).decode()


def load_doc(text: str | bytes) -> Entity:
    """An entity document as stored; ``id`` and ``type`` first, as users expect to read them
    (PostgreSQL's jsonb keeps keys sorted by length, not as written)."""
    loaded: Entity = orjson.loads(text)
    if "id" in loaded and "type" in loaded and next(iter(loaded)) != "id":
        return {"id": loaded.pop("id"), "type": loaded.pop("type"), **loaded}
    return loaded


def main_type(doc: Entity) -> str:
    """The type an entity is filed under (the first of several)."""
    etype = doc["type"]
    return str(etype[0] if isinstance(etype, list) else etype)


async def load(tx: Tx, ids: Sequence[str]) -> dict[str, tuple[str | None, Entity]]:
    """(owner, document) of each existing entity of ``ids``, locked for this transaction."""
    if not ids:
        return {}
    d = tx.dialect
    rows = await tx.fetchall(
        f"SELECT id, gateway_id, {d.doc_text()} FROM entities"  # noqa: S608
        f" WHERE id IN ({d.text_values}){d.for_update}",
        (dumps(list(ids)),),
    )
    return {eid: (owner, load_doc(text)) for eid, owner, text in rows}


async def save(
    tx: Tx,
    changes: Sequence[tuple[str, Entity | None, Entity | None]],
    *,
    owner: str | None = None,
    now: str,
) -> None:
    """Write what changed, as (id, document before, after; None: absent), after ``load``
    locked the rows: created, changed and deleted entities, and the declared value
    indexes (``value_index``). ``owner`` becomes the owner of created entities and of
    updated ones that had none (a gateway's ingest), and is never taken away."""
    d = tx.dialect
    moved = [c for c in changes if c[1] is not c[2]]
    deleted = [eid for eid, old, new in moved if new is None and old is not None]
    created = [new for _, old, new in moved if old is None and new is not None]
    updated = [new for _, old, new in moved if old is not None and new is not None]
    if deleted:
        await tx.execute(f"DELETE FROM entities WHERE id IN ({d.text_values})", (dumps(deleted),))  # noqa: S608
    if created:
        kinds = (*_KINDS, *_GEO_KINDS)
        sql = (
            f"INSERT INTO entities ({', '.join((*_COLUMNS, *_GEO))})"
            f" {d.bulk_rows(kinds)} ON CONFLICT (id) DO NOTHING"
        )
        rows = [
            (
                doc["id"],
                main_type(doc),
                doc,
                owner,
                str(doc.get("createdAt", now)),
                str(doc.get("modifiedAt", now)),
                *columns(doc),
            )
            for doc in created
        ]
        done = await tx.bulk(sql, d.bulk_params(kinds, rows))
        if done != len(rows):
            raise ConcurrentChangeError("an entity was created by another process meanwhile")
    if updated:
        sets = ("type", "doc", "modified_at", *_GEO, "gateway_id")
        kinds = ("text", "json", "time", *_GEO_KINDS, "text", "text")
        # the owner is set only where there is none
        sql = d.bulk_update("entities", "id", sets, kinds, keep=("gateway_id",))
        changed = [
            (main_type(doc), doc, str(doc.get("modifiedAt", now)), *columns(doc), owner, doc["id"])
            for doc in updated
        ]
        await tx.bulk(sql, d.bulk_params(kinds, changed))
    await value_index.maintain(tx, moved)


async def record_history(
    tx: Tx,
    docs: Iterable[tuple[str, Entity | None, Entity | None]],
    now: str,
    *,
    skip: frozenset[tuple[str, str]] = frozenset(),
) -> None:
    """Add what changed in each (id, old, new) to the temporal history (same transaction).

    ``skip``: (entity, attribute) pairs whose history is kept elsewhere (the readings a
    gateway synced are instances of their own, ``readings``).
    """
    now_ms = parse_iso_ms(now) or 0
    headers: dict[str, tuple[Any, str]] = {}
    rows: list[AttrInstance] = []
    for eid, old, new in docs:
        doc = new if new is not None else old
        if new is old or doc is None:
            continue
        added = history_of(eid, old, new, now_ms)
        if skip:
            added = [r for r in added if (r.entity_id, r.attr) not in skip]
        if added:
            headers[eid] = (doc["type"], now)
            rows.extend(added)
    await temporal.record(tx, headers, rows)
