"""The temporal representation (attribute-instance history), written once for both engines.

``temporal_entities`` holds one header per temporal entity (its type as written,
created and modified times); ``attr_instances`` one row per attribute instance,
indexed on (entity_id, attr, observed_at_ms) so that a window over one attribute
is a range scan. Entity writes add their history inside their own transaction
(``record``); the temporal API's own writes and every read go through
``TemporalRepository`` (``store.temporal``), each method one unit of work.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ldt.cloud.ngsild.order_by import OrderKey, ordered_select, temporal_order
from ldt.cloud.ngsild.temporal import AttrInstance, Window
from ldt.cloud.ngsild.temporal_page import Render, TemporalPage
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.database import Database, Row, Tx
from ldt.cloud.store.dialect import BulkKind
from ldt.cloud.store.temporal_read import read_page
from ldt.cloud.store.temporal_rows import (
    HEADER_KINDS,
    INSTANCE_COLUMNS,
    INSTANCE_KINDS,
    TIME_COLUMNS,
    header_params,
    instance_from_row,
    instance_params,
)

__all__ = ["TemporalHeader", "TemporalRepository", "drop_same_time", "record"]


@dataclass(frozen=True, slots=True)
class TemporalHeader:
    """A temporal entity's header: its id, its type as written (a name or a list), times."""

    id: str
    type: str | list[str]
    created_at_ms: int
    modified_at_ms: int

    def as_doc(self) -> dict[str, Any]:
        """The header as the members of a temporal entity (``temporal.temporal_entity``)."""
        return {
            "id": self.id,
            "type": self.type,
            "createdAt": iso_ms(self.created_at_ms),
            "modifiedAt": iso_ms(self.modified_at_ms),
        }


_HEADER_COLUMNS: Final = "id, types, created_at_ms, modified_at_ms"


def _header(row: Row) -> TemporalHeader:
    return TemporalHeader(
        id=str(row[0]),
        type=orjson.loads(row[1]),
        created_at_ms=int(row[2]),
        modified_at_ms=int(row[3]),
    )


async def _bulk_insert(
    tx: Tx, head: str, kinds: Sequence[BulkKind], rows: Sequence[Row], tail: str
) -> None:
    """``{head} <rows> {tail}``: every row in one statement (``Dialect.bulk_rows``)."""
    sql = f"{head} {tx.dialect.bulk_rows(kinds)} {tail}"
    await tx.bulk(sql, tx.dialect.bulk_params(kinds, rows))


async def record(tx: Tx, headers: dict[str, tuple[Any, str]], rows: Sequence[AttrInstance]) -> None:
    """Upsert temporal entity headers (id -> (type, ISO now)) and add instances, in ``tx``.

    For the entity write path: its history goes in with the write, in the same
    transaction. An instance whose id is already stored is left as it is.
    """
    if headers:
        await _bulk_insert(
            tx,
            "INSERT INTO temporal_entities (id, type, types, created_at_ms, modified_at_ms)",
            HEADER_KINDS,
            header_params(headers),
            "ON CONFLICT (id) DO UPDATE SET type = excluded.type, types = excluded.types,"
            " modified_at_ms = excluded.modified_at_ms",
        )
    if rows:
        await _bulk_insert(
            tx,
            f"INSERT INTO attr_instances ({INSTANCE_COLUMNS})",
            INSTANCE_KINDS,
            instance_params(rows, doc_text=False),
            "ON CONFLICT (instance_id) DO NOTHING",
        )


async def drop_same_time(tx: Tx, rows: Sequence[AttrInstance]) -> None:
    """Delete stored instances that ``rows`` replace: same attribute, datasetId and observedAt.

    One statement per attribute and datasetId with all its times (a DELETE per
    instance is 3,600 statements for an hour's POST). The times' range lets the
    planner search the (entity_id, attr, observed_at_ms) index with or without
    statistics: without it PostgreSQL read every instance of the attribute, a
    quarter of a second per POST once a day was stored.
    """
    times: dict[tuple[str, str, str | None], list[int]] = {}
    for r in rows:
        if r.observed_at_ms is not None:
            times.setdefault((r.entity_id, r.attr, r.dataset_id), []).append(r.observed_at_ms)
    if not times:
        return
    d = tx.dialect
    sql = (
        "DELETE FROM attr_instances WHERE entity_id = ? AND attr = ?"  # noqa: S608
        " AND observed_at_ms BETWEEN ? AND ?"
        f" AND {d.any_of('observed_at_ms', cast='bigint')}"
        " AND dataset_id IS NOT DISTINCT FROM CAST(? AS text)"
    )
    for (entity_id, attr, dataset_id), observed in times.items():
        span = [min(observed), max(observed)]
        await tx.execute(sql, [entity_id, attr, *span, d.list_param(observed), dataset_id])


_SELECT_COLUMNS: Final = (
    "entity_id, attr, instance_id, dataset_id, observed_at_ms, created_at_ms,"
    " modified_at_ms, {doc} AS doc, deleted_at_ms"
)
"""What ``instance_from_row`` reads, ``{doc}`` the document as text."""


async def _instances(
    tx: Tx, entity_ids: Sequence[str], attrs: Sequence[str] | None, window: Window
) -> list[AttrInstance]:
    d = tx.dialect
    column = TIME_COLUMNS[window.time_property]
    where = [d.any_of("entity_id")]
    params: list[Any] = [d.list_param(entity_ids)]
    if attrs is not None:
        where.append(d.any_of("attr"))
        params.append(d.list_param(attrs))
    # deletion records have only deletedAt: they answer that time property and no other
    where.append(f"deleted_at_ms IS {'NOT ' if window.time_property == 'deletedAt' else ''}NULL")
    if window.start_ms is not None:
        where.append(f"{column} >= ?")
        params.append(window.start_ms)
    if window.end_ms is not None:
        where.append(f"{column} < ?")
        params.append(window.end_ms)
    columns = _SELECT_COLUMNS.format(doc=d.doc_text())
    clause = " AND ".join(where)
    if window.last_n is None:
        select = f"SELECT {columns} FROM attr_instances WHERE {clause}"  # noqa: S608
        return [instance_from_row(r) for r in await tx.fetchall(select, params)]
    # lastN per (entity, attribute), newest first; instances without the time count
    # as the oldest. Not on the API's read path (``page`` is): one statement will do.
    rank = (
        f"row_number() OVER (PARTITION BY entity_id, attr ORDER BY {column} DESC NULLS LAST,"
        f" {d.code_points('instance_id')} DESC)"
    )
    found = await tx.fetchall(
        f"SELECT {_SELECT_COLUMNS.format(doc='doc')} FROM (SELECT {columns}, {rank} AS n"  # noqa: S608
        f" FROM attr_instances WHERE {clause}) AS r WHERE n <= ?",
        [*params, window.last_n],
    )
    return [instance_from_row(r) for r in found]


async def _query(
    tx: Tx,
    types: Sequence[str] | None,
    ids: Sequence[str] | None,
    *,
    limit: int,
    offset: int,
    order: Sequence[OrderKey],
    within: Sequence[tuple[Collection[str], str]] | None = None,
) -> tuple[list[TemporalHeader], int]:
    d = tx.dialect
    where: list[str] = []
    params: list[Any] = []
    for column, values in (("type", types), ("id", ids)):
        if values is not None:
            where.append(d.any_of(column))
            params.append(d.list_param(values))
    if within is not None:  # a scoped grant; by the main type (``type``), as type= is
        text, values = d.within(within)
        where.append(text)
        params.extend(values)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = int(await tx.scalar(f"SELECT count(*) FROM temporal_entities{clause}", params))  # noqa: S608
    keys = temporal_order(order, dialect=d.name)
    select = ordered_select(_HEADER_COLUMNS, f"temporal_entities{clause}", keys)
    rows = await tx.fetchall(
        f"{select} LIMIT ? OFFSET ?",
        [*(keys.params if keys is not None else ()), *params, limit, offset],
    )
    return [_header(r) for r in rows], total


async def _get(tx: Tx, entity_id: str) -> TemporalHeader | None:
    row = await tx.fetchone(
        f"SELECT {_HEADER_COLUMNS} FROM temporal_entities WHERE id = ?",  # noqa: S608
        [entity_id],
    )
    return None if row is None else _header(row)


async def _page(
    tx: Tx,
    entity_ids: Sequence[str],
    attrs: Sequence[str] | None,
    window: Window,
    *,
    datasets: frozenset[str | None] | None,
    limit: int,
    render: Render | None,
) -> TemporalPage:
    if tx.dialect.index_order is not None:
        await tx.execute(tx.dialect.index_order)
    return await read_page(
        tx, entity_ids, attrs, window, datasets=datasets, limit=limit, render=render
    )


class TemporalRepository:
    """The temporal API's store: headers, instances, pages of a window, deletions.

    Names are as stored (``entity_ops``); times are epoch milliseconds in rows
    and ISO 8601 in documents. Every method is one unit of work and raises only
    ``StoreError``.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, entity_id: str, etype: Any, instances: Sequence[AttrInstance], *, now: str
    ) -> bool:
        """Create or update a temporal entity and add ``instances``; True if it was created.

        A stored instance of the same attribute, datasetId and observedAt as one of
        ``instances`` is replaced by it. Entity writes record their history
        themselves (``record``); this is the temporal API's own provision (5.6.11,
        5.6.12). ``etype`` is the type as written (a name or a list); ``now`` ISO 8601.
        """

        async def work(tx: Tx) -> bool:
            created = await tx.fetchone("SELECT 1 FROM temporal_entities WHERE id = ?", [entity_id])
            await drop_same_time(tx, instances)
            await record(tx, {entity_id: (etype, now)}, instances)
            return created is None

        return await self._db.write(work)

    async def get(self, entity_id: str) -> TemporalHeader | None:
        """A temporal entity's header, or None."""

        return await self._db.read(lambda tx: _get(tx, entity_id), snapshot=False)

    async def query(
        self,
        *,
        types: Sequence[str] | None,
        ids: Sequence[str] | None,
        limit: int,
        offset: int,
        order: Sequence[OrderKey] = (),
        within: Sequence[tuple[Collection[str], str]] | None = None,
    ) -> tuple[list[TemporalHeader], int]:
        """Headers of temporal entities of any of ``types`` and ``ids`` (None: all); the total.

        One page, in ``order`` (``order_by.temporal_order``; empty: by id), ties by id.
        ``within``: only the entities a scoped grant reaches (``Dialect.within``).
        """
        return await self._db.read(
            lambda tx: _query(
                tx, types, ids, limit=limit, offset=offset, order=order, within=within
            )
        )

    async def instances(
        self, entity_ids: Sequence[str], attrs: Sequence[str] | None, window: Window
    ) -> list[AttrInstance]:
        """Every instance of these entities (and attributes) in ``window``; lastN per attribute."""
        if not entity_ids or (attrs is not None and not attrs):
            return []
        return await self._db.read(lambda tx: _instances(tx, entity_ids, attrs, window))

    async def page(
        self,
        entity_ids: Sequence[str],
        attrs: Sequence[str] | None,
        window: Window,
        *,
        datasets: frozenset[str | None] | None,
        limit: int,
        render: Render | None = None,
    ) -> TemporalPage:
        """What a temporal answer shows: at most ``limit`` instances, cut in SQL.

        As ``instances`` of the ``datasets`` (None: all) then ``temporal.paginate``,
        without reading the instances past the cut (``temporal_read``); ``render``:
        the instances as JSON the store wrote (``temporal_page``), not parsed.
        """

        async def work(tx: Tx) -> TemporalPage:
            return await _page(
                tx, entity_ids, attrs, window, datasets=datasets, limit=limit, render=render
            )

        return await self._db.read(work)

    async def entity(
        self,
        entity_id: str,
        attrs: Sequence[str] | None,
        window: Window,
        *,
        datasets: frozenset[str | None] | None,
        limit: int,
        render: Render | None = None,
    ) -> tuple[TemporalHeader, TemporalPage] | None:
        """One temporal entity's header and ``page``, read together; None if it does not exist.

        One unit of work for what a retrieval (5.7.3) reads: ``get`` then ``page``
        cost two transactions' statements and waits, a third of a lastN answer's
        time on SQLite.
        """

        async def work(tx: Tx) -> tuple[TemporalHeader, TemporalPage] | None:
            header = await _get(tx, entity_id)
            if header is None:
                return None
            page = await _page(
                tx, [entity_id], attrs, window, datasets=datasets, limit=limit, render=render
            )
            return header, page

        return await self._db.read(work)

    async def delete(
        self,
        entity_id: str,
        *,
        attr: str | None = None,
        dataset_id: str | None = None,
        all_datasets: bool = False,
    ) -> bool:
        """Delete a temporal entity, or one attribute's instances (of ``dataset_id`` or all).

        False if there was nothing to delete.
        """

        async def work(tx: Tx) -> bool:
            if attr is None:
                gone = await tx.execute("DELETE FROM temporal_entities WHERE id = ?", [entity_id])
                await tx.execute("DELETE FROM attr_instances WHERE entity_id = ?", [entity_id])
                return gone > 0
            sql = "DELETE FROM attr_instances WHERE entity_id = ? AND attr = ?"
            params: list[Any] = [entity_id, attr]
            if not all_datasets:
                sql += " AND dataset_id IS NOT DISTINCT FROM CAST(? AS text)"
                params.append(dataset_id)
            return await tx.execute(sql, params) > 0

        return await self._db.write(work)

    async def delete_instance(self, entity_id: str, attr: str, instance_id: str) -> bool:
        """Delete one instance; False if absent."""
        return await self._db.write(
            lambda tx: _changed(
                tx,
                "DELETE FROM attr_instances WHERE entity_id = ? AND attr = ? AND instance_id = ?",
                [entity_id, attr, instance_id],
            )
        )

    async def replace_instance(self, row: AttrInstance) -> bool:
        """Replace instance ``row.instance_id`` of ``row``'s entity and attribute; False: absent."""

        async def work(tx: Tx) -> bool:
            return await _changed(
                tx,
                "UPDATE attr_instances SET dataset_id = ?, observed_at_ms = ?,"  # noqa: S608
                f" modified_at_ms = ?, doc = {tx.dialect.json_param}"
                " WHERE entity_id = ? AND attr = ? AND instance_id = ?",
                [
                    row.dataset_id,
                    row.observed_at_ms,
                    row.modified_at_ms,
                    orjson.dumps(row.doc).decode(),
                    row.entity_id,
                    row.attr,
                    row.instance_id,
                ],
            )

        return await self._db.write(work)


async def _changed(tx: Tx, sql: str, params: Sequence[Any]) -> bool:
    return await tx.execute(sql, params) > 0
