"""SQLite side of the temporal representation: attribute-instance history (``ngsild.temporal``).

Synchronous functions on the store's one connection (its writer thread), called
inside the caller's transaction where they write. ``attr_instances`` is indexed
on (entity_id, attr, observed_at_ms): a window over one attribute is a range scan.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ldt.cloud.ngsild.order_by import OrderKey, ordered_select, temporal_order
from ldt.cloud.ngsild.temporal import AttrInstance, Window
from ldt.cloud.store.temporal_rows import (
    header_doc,
    header_params,
    instance_from_row,
    instance_params,
)

__all__ = [
    "SCHEMA",
    "delete",
    "delete_instance",
    "drop_same_time",
    "header",
    "instances",
    "migrate",
    "query",
    "record",
    "replace_instance",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS temporal_entities (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,      -- main type (first), for type= filters
    types TEXT NOT NULL,     -- JSON: the type as written (a name or a list)
    created_at_ms INTEGER NOT NULL,
    modified_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS temporal_entities_by_type ON temporal_entities (type, id);
CREATE TABLE IF NOT EXISTS attr_instances (
    instance_id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL,
    attr TEXT NOT NULL,      -- stored spelling (entity_ops)
    dataset_id TEXT,
    observed_at_ms INTEGER,
    created_at_ms INTEGER NOT NULL,
    modified_at_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,       -- the normalized instance JSON, without instanceId
    deleted_at_ms INTEGER    -- deletion records only (temporal.deletion_row)
);
CREATE INDEX IF NOT EXISTS attr_instances_by_observed
    ON attr_instances (entity_id, attr, observed_at_ms);
CREATE INDEX IF NOT EXISTS attr_instances_by_modified
    ON attr_instances (entity_id, attr, modified_at_ms);
"""


def migrate(con: sqlite3.Connection) -> None:
    """Bring an older ``attr_instances`` up to ``SCHEMA`` (run after it, idempotent).

    Files written before deletion records existed lack ``deleted_at_ms``; the
    column is added (NULL: an ordinary instance). Its index is partial: only
    deletion records have the time, so ordinary instances (nearly every row)
    cost no index insert; a ``deleted_at_ms IS NOT NULL`` query still uses it.
    Files whose index was created whole get it rebuilt partial.
    """
    columns = {r[1] for r in con.execute("PRAGMA table_info(attr_instances)")}
    if "deleted_at_ms" not in columns:
        con.execute("ALTER TABLE attr_instances ADD COLUMN deleted_at_ms INTEGER")
    found = con.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'attr_instances_by_deleted'"
    ).fetchone()
    if found is not None and "WHERE" not in str(found[0]).upper():
        con.execute("DROP INDEX attr_instances_by_deleted")
    con.execute(
        "CREATE INDEX IF NOT EXISTS attr_instances_by_deleted"
        " ON attr_instances (entity_id, attr, deleted_at_ms) WHERE deleted_at_ms IS NOT NULL"
    )


_COLUMNS = {
    "observedAt": "observed_at_ms",
    "createdAt": "created_at_ms",
    "modifiedAt": "modified_at_ms",
    "deletedAt": "deleted_at_ms",
}
_UPSERT_HEADER = (
    "INSERT INTO temporal_entities (id, type, types, created_at_ms, modified_at_ms)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET type = excluded.type,"
    " types = excluded.types, modified_at_ms = excluded.modified_at_ms"
)
_INSERT_INSTANCE = (
    "INSERT OR REPLACE INTO attr_instances (instance_id, entity_id, attr, dataset_id,"
    " observed_at_ms, created_at_ms, modified_at_ms, doc, deleted_at_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def record(
    con: sqlite3.Connection, headers: dict[str, tuple[Any, str]], rows: Sequence[AttrInstance]
) -> None:
    """Upsert temporal entity headers (id -> (type, now)) and insert instances (in a txn)."""
    if headers:
        con.executemany(
            _UPSERT_HEADER,
            header_params(headers),
        )
    if rows:
        con.executemany(
            _INSERT_INSTANCE,
            instance_params(rows),
        )


def drop_same_time(con: sqlite3.Connection, rows: Sequence[AttrInstance]) -> None:
    """Delete stored instances that ``rows`` replace: same attribute, datasetId and observedAt."""
    con.executemany(
        "DELETE FROM attr_instances WHERE entity_id = ? AND attr = ? AND dataset_id IS ?"
        " AND observed_at_ms = ?",
        [
            (r.entity_id, r.attr, r.dataset_id, r.observed_at_ms)
            for r in rows
            if r.observed_at_ms is not None
        ],
    )


_HEADER_COLUMNS = "id, types, created_at_ms, modified_at_ms"
_SELECT_HEADER = f"SELECT {_HEADER_COLUMNS} FROM temporal_entities"  # noqa: S608


def header(con: sqlite3.Connection, entity_id: str) -> dict[str, Any] | None:
    """One temporal entity's header, or None."""
    row = con.execute(f"{_SELECT_HEADER} WHERE id = ?", (entity_id,)).fetchone()
    return None if row is None else header_doc(row)


def exists(con: sqlite3.Connection, entity_id: str) -> bool:
    """Whether the temporal entity exists."""
    return (
        con.execute("SELECT 1 FROM temporal_entities WHERE id = ?", (entity_id,)).fetchone()
        is not None
    )


def query(
    con: sqlite3.Connection,
    types: Sequence[str] | None,
    ids: Sequence[str] | None,
    limit: int,
    offset: int,
    *,
    order: Sequence[OrderKey] = (),
) -> tuple[list[dict[str, Any]], int]:
    """One page of headers in ``order`` (``order_by``; empty: by id), and the total."""
    where: list[str] = []
    params: list[Any] = []
    for column, values in (("type", types), ("id", ids)):
        if values is not None:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = int(
        con.execute(f"SELECT count(*) FROM temporal_entities{clause}", params).fetchone()[0]  # noqa: S608
    )
    keys = temporal_order(order, dialect="sqlite")
    select = ordered_select(_HEADER_COLUMNS, f"temporal_entities{clause}", keys)
    rows = con.execute(
        f"{select} LIMIT ? OFFSET ?",
        [*(keys.params if keys is not None else ()), *params, limit, offset],
    ).fetchall()
    return [header_doc(r) for r in rows], total


def instances(
    con: sqlite3.Connection,
    entity_ids: Sequence[str],
    attrs: Sequence[str] | None,
    window: Window,
) -> list[AttrInstance]:
    """Instances of ``entity_ids`` (and ``attrs``) in ``window``; lastN per attribute."""
    if not entity_ids:
        return []
    column = _COLUMNS[window.time_property]
    where = [f"entity_id IN ({','.join('?' * len(entity_ids))})"]
    params: list[Any] = list(entity_ids)
    if attrs is not None:
        where.append(f"attr IN ({','.join('?' * len(attrs))})")
        params.extend(attrs)
    # deletion records have only deletedAt: they answer that time property and no other
    where.append(f"deleted_at_ms IS {'NOT ' if window.time_property == 'deletedAt' else ''}NULL")
    if window.start_ms is not None:
        where.append(f"{column} >= ?")
        params.append(window.start_ms)
    if window.end_ms is not None:
        where.append(f"{column} < ?")
        params.append(window.end_ms)
    clause = " AND ".join(where)
    if window.last_n is None:
        found = con.execute(f"{_SELECT_INSTANCES} WHERE {clause}", params).fetchall()
        return [instance_from_row(r) for r in found]
    # lastN: one indexed, LIMITed scan per (entity, attribute), newest first; instances
    # without the time property count as the oldest
    pairs = con.execute(
        f"SELECT DISTINCT entity_id, attr FROM attr_instances WHERE {where[0]}"  # noqa: S608
        + (f" AND {where[1]}" if attrs is not None else ""),
        params[: len(entity_ids) + (len(attrs) if attrs is not None else 0)],
    ).fetchall()
    ranges = where[2 if attrs is not None else 1 :]
    range_params = params[len(entity_ids) + (len(attrs) if attrs is not None else 0) :]
    sql = " AND ".join([f"{_SELECT_INSTANCES} WHERE entity_id = ? AND attr = ?", *ranges])
    sql += f" ORDER BY {column} DESC, instance_id DESC LIMIT ?"
    out: list[AttrInstance] = []
    for entity_id, attr in pairs:
        rows = con.execute(sql, [entity_id, attr, *range_params, window.last_n])
        out.extend(instance_from_row(r) for r in rows)
    return out


_SELECT_INSTANCES = (
    "SELECT entity_id, attr, instance_id, dataset_id, observed_at_ms, created_at_ms,"
    " modified_at_ms, doc, deleted_at_ms FROM attr_instances"
)


def delete(
    con: sqlite3.Connection,
    entity_id: str,
    attr: str | None,
    dataset_id: str | None,
    all_datasets: bool,
) -> bool:
    """Delete the temporal entity (``attr`` None) or one attribute's instances."""
    if attr is None:
        gone = con.execute("DELETE FROM temporal_entities WHERE id = ?", (entity_id,)).rowcount
        con.execute("DELETE FROM attr_instances WHERE entity_id = ?", (entity_id,))
        return gone > 0
    sql = "DELETE FROM attr_instances WHERE entity_id = ? AND attr = ?"
    params: list[Any] = [entity_id, attr]
    if not all_datasets:
        sql += " AND dataset_id IS ?"
        params.append(dataset_id)
    return con.execute(sql, params).rowcount > 0


def delete_instance(con: sqlite3.Connection, entity_id: str, attr: str, instance_id: str) -> bool:
    """Delete one instance."""
    return (
        con.execute(
            "DELETE FROM attr_instances WHERE entity_id = ? AND attr = ? AND instance_id = ?",
            (entity_id, attr, instance_id),
        ).rowcount
        > 0
    )


def replace_instance(con: sqlite3.Connection, row: AttrInstance) -> bool:
    """Replace one instance in place (same instanceId)."""
    return (
        con.execute(
            "UPDATE attr_instances SET dataset_id = ?, observed_at_ms = ?, modified_at_ms = ?,"
            " doc = ? WHERE entity_id = ? AND attr = ? AND instance_id = ?",
            (
                row.dataset_id,
                row.observed_at_ms,
                row.modified_at_ms,
                orjson.dumps(row.doc).decode(),
                row.entity_id,
                row.attr,
                row.instance_id,
            ),
        ).rowcount
        > 0
    )
