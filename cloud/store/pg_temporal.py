"""PostgreSQL side of the temporal representation: attribute-instance history (``ngsild.temporal``).

Async functions on a psycopg connection, called inside the caller's transaction
where they write. ``attr_instances`` is indexed
on (entity_id, attr, observed_at_ms): a window over one attribute is a range scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from ldt.cloud.ngsild.order_by import OrderKey, ordered_select, temporal_order
from ldt.cloud.ngsild.temporal import AttrInstance, Window
from ldt.cloud.store.temporal_rows import (
    header_doc,
    header_params,
    instance_from_row,
    instance_params,
)

_Conn = psycopg.AsyncConnection[tuple[Any, ...]]

__all__ = [
    "DELETED_AT",
    "PARTIAL_DELETED_INDEX",
    "SCHEMA",
    "delete",
    "delete_instance",
    "drop_same_time",
    "header",
    "instances",
    "query",
    "record",
    "replace_instance",
]

SCHEMA = """
CREATE TABLE temporal_entities (
    id text PRIMARY KEY,
    type text NOT NULL,      -- main type (first), for type= filters
    types text NOT NULL,     -- JSON: the type as written (a name or a list)
    created_at_ms bigint NOT NULL,
    modified_at_ms bigint NOT NULL
);
CREATE INDEX temporal_entities_by_type ON temporal_entities (type, id);
CREATE TABLE attr_instances (
    instance_id text PRIMARY KEY,
    entity_id text NOT NULL,
    attr text NOT NULL,      -- stored spelling (entity_ops)
    dataset_id text,
    observed_at_ms bigint,
    created_at_ms bigint NOT NULL,
    modified_at_ms bigint NOT NULL,
    doc jsonb NOT NULL        -- the normalized instance JSON, without instanceId
);
CREATE INDEX attr_instances_by_observed
    ON attr_instances (entity_id, attr, observed_at_ms);
CREATE INDEX attr_instances_by_modified
    ON attr_instances (entity_id, attr, modified_at_ms);
"""

DELETED_AT = """
ALTER TABLE attr_instances ADD COLUMN deleted_at_ms bigint;
CREATE INDEX attr_instances_by_deleted ON attr_instances (entity_id, attr, deleted_at_ms);
"""
"""Migration after ``SCHEMA``: deletion records (``temporal.deletion_row``) carry deletedAt."""

PARTIAL_DELETED_INDEX = """
DROP INDEX attr_instances_by_deleted;
CREATE INDEX attr_instances_by_deleted ON attr_instances (entity_id, attr, deleted_at_ms)
    WHERE deleted_at_ms IS NOT NULL;
"""
"""Migration after ``DELETED_AT``: only deletion records have deletedAt, so only they are indexed.

Every entity write adds instances; with the index whole, each paid an insert
into it for a NULL. A ``deleted_at_ms IS NOT NULL`` query (``timeproperty=
deletedAt``) is still answered from the partial index.
"""

_COLUMNS = {
    "observedAt": "observed_at_ms",
    "createdAt": "created_at_ms",
    "modifiedAt": "modified_at_ms",
    "deletedAt": "deleted_at_ms",
}
_UPSERT_HEADERS = (
    "INSERT INTO temporal_entities (id, type, types, created_at_ms, modified_at_ms)"
    " SELECT r->>0, r->>1, r->>2, (r->>3)::bigint, (r->>4)::bigint"
    " FROM jsonb_array_elements(%s::jsonb) AS r"
    " ON CONFLICT (id) DO UPDATE SET type = excluded.type,"
    " types = excluded.types, modified_at_ms = excluded.modified_at_ms"
)
_INSERT_INSTANCES = (
    "INSERT INTO attr_instances (instance_id, entity_id, attr, dataset_id,"
    " observed_at_ms, created_at_ms, modified_at_ms, doc, deleted_at_ms)"
    " SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::bigint, (r->>5)::bigint, (r->>6)::bigint,"
    " r->7, (r->>8)::bigint FROM jsonb_array_elements(%s::jsonb) AS r"
    " ON CONFLICT (instance_id) DO NOTHING"
)
_RECORD_BOTH = f"WITH headers AS ({_UPSERT_HEADERS}) {_INSERT_INSTANCES}"


async def record(
    con: _Conn, headers: dict[str, tuple[Any, str]], rows: Sequence[AttrInstance]
) -> None:
    """Upsert temporal entity headers (id -> (type, now)) and insert instances (in a txn).

    One statement for both (the header upsert in a CTE: one round trip) over a JSON
    array of the rows each, not ``executemany``: an upsert of 1,000 entities adds
    ~8,000 instances, and a statement per row cost the server a parse and
    execution each. Not ``unnest`` of text arrays either:
    psycopg escapes every quote of every document in an array with a regex
    substitution (most of the time of a batch). orjson writes the whole array
    at once, documents included, and PostgreSQL parses it in C.
    """
    header_array = orjson.dumps(header_params(headers)).decode() if headers else None
    if not rows:
        if header_array is not None:
            await con.execute(_UPSERT_HEADERS, (header_array,))
        return
    instances = orjson.dumps(instance_params(rows, doc_text=False)).decode()
    if header_array is None:
        await con.execute(_INSERT_INSTANCES, (instances,))
    else:  # one round trip for both (a PATCH's transaction is mostly round trips)
        await con.execute(_RECORD_BOTH, (header_array, instances))


async def drop_same_time(con: _Conn, rows: Sequence[AttrInstance]) -> None:
    """Delete stored instances that ``rows`` replace: same attribute, datasetId and observedAt."""
    times: dict[tuple[str, str, str | None], list[int]] = {}
    for r in rows:
        if r.observed_at_ms is not None:
            times.setdefault((r.entity_id, r.attr, r.dataset_id), []).append(r.observed_at_ms)
    # one statement per attribute, an index range of (entity_id, attr, observed_at_ms) = ANY:
    # a DELETE per instance (3,600 in a POST) or a join with unnest() was planned as a scan
    # of the table per instance until autovacuum analyzed it, seconds per POST
    for (entity_id, attr, dataset_id), observed in times.items():
        await con.execute(
            "DELETE FROM attr_instances WHERE entity_id = %s AND attr = %s"
            " AND observed_at_ms = ANY(%s::bigint[]) AND dataset_id IS NOT DISTINCT FROM %s::text",
            (entity_id, attr, observed, dataset_id),
        )


_HEADER_COLUMNS = "id, types, created_at_ms, modified_at_ms"
_SELECT_HEADER = f"SELECT {_HEADER_COLUMNS} FROM temporal_entities"  # noqa: S608


async def header(con: _Conn, entity_id: str) -> dict[str, Any] | None:
    """One temporal entity's header, or None."""
    cur = await con.execute(f"{_SELECT_HEADER} WHERE id = %s", (entity_id,))
    row = await cur.fetchone()
    return None if row is None else header_doc(row)


async def exists(con: _Conn, entity_id: str) -> bool:
    """Whether the temporal entity exists."""
    cur = await con.execute("SELECT 1 FROM temporal_entities WHERE id = %s", (entity_id,))
    return await cur.fetchone() is not None


async def query(
    con: _Conn,
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
            where.append(f"{column} = ANY(%s::text[])")
            params.append(list(values))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    cur = await con.execute(f"SELECT count(*) FROM temporal_entities{clause}", params)  # noqa: S608
    found = await cur.fetchone()
    total = 0 if found is None else int(found[0])
    keys = temporal_order(order, dialect="postgresql")
    select = ordered_select(_HEADER_COLUMNS, f"temporal_entities{clause}", keys)
    cur = await con.execute(
        f"{select} LIMIT %s OFFSET %s",
        [*(keys.params if keys is not None else ()), *params, limit, offset],
    )
    rows = await cur.fetchall()
    return [header_doc(r) for r in rows], total


async def instances(
    con: _Conn,
    entity_ids: Sequence[str],
    attrs: Sequence[str] | None,
    window: Window,
) -> list[AttrInstance]:
    """Instances of ``entity_ids`` (and ``attrs``) in ``window``; lastN per attribute."""
    if not entity_ids:
        return []
    column = _COLUMNS[window.time_property]
    where = ["entity_id = ANY(%s::text[])"]
    params: list[Any] = [list(entity_ids)]
    if attrs is not None:
        where.append("attr = ANY(%s::text[])")
        params.append(list(attrs))
    # deletion records have only deletedAt: they answer that time property and no other
    where.append(f"deleted_at_ms IS {'NOT ' if window.time_property == 'deletedAt' else ''}NULL")
    if window.start_ms is not None:
        where.append(f"{column} >= %s")
        params.append(window.start_ms)
    if window.end_ms is not None:
        where.append(f"{column} < %s")
        params.append(window.end_ms)
    clause = " AND ".join(where)
    if window.last_n is None:
        cur = await con.execute(f"{_SELECT_INSTANCES} WHERE {clause}".encode(), params)
        return [instance_from_row(r) for r in await cur.fetchall()]
    # lastN: one LIMITed index scan per (entity, attribute), newest first; instances
    # without the time property count as the oldest
    keys = where[: 2 if attrs is not None else 1]
    ranges = where[len(keys) :]
    sql = (
        f"SELECT i.* FROM (SELECT DISTINCT entity_id, attr FROM attr_instances"  # noqa: S608
        f" WHERE {' AND '.join(keys)}) AS k CROSS JOIN LATERAL ("
        f"{_SELECT_INSTANCES} AS a WHERE a.entity_id = k.entity_id AND a.attr = k.attr"
        + "".join(f" AND a.{r}" for r in ranges)
        + f" ORDER BY a.{column} DESC NULLS LAST, a.instance_id DESC LIMIT %s) AS i"
    )
    cur = await con.execute(sql.encode(), [*params, window.last_n])
    return [instance_from_row(r) for r in await cur.fetchall()]


_SELECT_INSTANCES = (
    "SELECT entity_id, attr, instance_id, dataset_id, observed_at_ms, created_at_ms,"
    " modified_at_ms, doc::text, deleted_at_ms FROM attr_instances"
)


async def delete(
    con: _Conn,
    entity_id: str,
    attr: str | None,
    dataset_id: str | None,
    all_datasets: bool,
) -> bool:
    """Delete the temporal entity (``attr`` None) or one attribute's instances."""
    if attr is None:
        cur = await con.execute("DELETE FROM temporal_entities WHERE id = %s", (entity_id,))
        gone = cur.rowcount
        await con.execute("DELETE FROM attr_instances WHERE entity_id = %s", (entity_id,))
        return gone > 0
    sql = "DELETE FROM attr_instances WHERE entity_id = %s AND attr = %s"
    params: list[Any] = [entity_id, attr]
    if not all_datasets:
        sql += " AND dataset_id IS NOT DISTINCT FROM %s::text"
        params.append(dataset_id)
    return (await con.execute(sql.encode(), params)).rowcount > 0


async def delete_instance(con: _Conn, entity_id: str, attr: str, instance_id: str) -> bool:
    """Delete one instance."""
    return (
        await con.execute(
            "DELETE FROM attr_instances WHERE entity_id = %s AND attr = %s AND instance_id = %s",
            (entity_id, attr, instance_id),
        )
    ).rowcount > 0


async def replace_instance(con: _Conn, row: AttrInstance) -> bool:
    """Replace one instance in place (same instanceId)."""
    return (
        await con.execute(
            "UPDATE attr_instances SET dataset_id = %s, observed_at_ms = %s, modified_at_ms = %s,"
            " doc = %s::jsonb WHERE entity_id = %s AND attr = %s AND instance_id = %s",
            (
                row.dataset_id,
                row.observed_at_ms,
                row.modified_at_ms,
                orjson.dumps(row.doc).decode(),
                row.entity_id,
                row.attr,
                row.instance_id,
            ),
        )
    ).rowcount > 0
