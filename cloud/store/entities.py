"""The current entities, written once for both engines: reads, searches, writes, purges.

Writes: ``write`` applies pure changes (``ldt.cloud.ngsild.entity_ops``) in one transaction,
and calls that arrive while one runs share the next transaction (``Coalescer``: group
commit, one COMMIT and fsync for many single-entity PATCHes). A change may refuse itself
by raising one of the ``refusable`` exception types its caller names; it is left out alone
and its exception takes its place in the results, so the store needs no knowledge of the
API's error type. Every write records what changed in the temporal history in the same
transaction (``entity_rows.record_history``).

Searches push what SQL can decide into the statement (``entity_search``: ids, types,
attributes, most of ``q``; ``geo_cells``: the location prefilter) and check the rest in
Python over a streamed scan, so a query SQL cannot fully express is still exact.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Collection, Sequence
from typing import Any, Final, Generic, Literal, TypeVar

import orjson

from ldt.cloud.errors import QueryTooSlowError
from ldt.cloud.ngsild import order_by
from ldt.cloud.ngsild.entity_query import LOCATION_NAMES, EntityQuery
from ldt.cloud.ngsild.geo import BBox, search_bbox
from ldt.cloud.store import entity_rows, entity_search, geo_cells, value_index
from ldt.cloud.store.base import Entity, TypeAttributeCount
from ldt.cloud.store.coalesce import Coalescer
from ldt.cloud.store.database import Database, Row, Tx
from ldt.cloud.store.entity_rows import dumps, load_doc
from ldt.cloud.store.purge_sql import Purge

__all__ = ["EntityChange", "EntityRepository", "WriteOutcome"]

EntityChange = Callable[[Entity | None], Entity | None]
"""A pure change of one entity: its current document (None: absent) -> new one (None: delete)."""

WriteOutcome = Literal["created", "updated", "deleted", "unchanged"]
"""What ``EntityRepository.write`` did with one change."""

_E = TypeVar("_E", bound=Exception)
_GROUP_COMMIT_ITEMS: Final = 2000
"""At most this many changes in one shared write transaction (a bigger batch runs alone)."""

# type_attribute_counts: the one statement whose JSON walking has no common spelling
_COUNTS_SQLITE: Final = (
    "WITH t AS (SELECT e.doc AS doc, tt.value AS etype FROM entities AS e,"
    " json_each(CASE WHEN json_type(e.doc, '$.type') = 'array'"
    " THEN json_extract(e.doc, '$.type') ELSE json_array(e.type) END) AS tt)"
    " SELECT etype, NULL, NULL, count(*) FROM t GROUP BY etype"
    " UNION ALL"
    " SELECT etype, a.key, coalesce(json_extract(a.value, '$.type'),"
    " json_extract(a.value, '$[0].type')), count(*) FROM t, json_each(t.doc) AS a"
    " WHERE a.key NOT IN (SELECT value FROM json_each(?))"
    " AND a.type IN ('object', 'array')"
    " GROUP BY 1, 2, 3"
)
_COUNTS_POSTGRES: Final = (
    "WITH t AS (SELECT e.doc, tt.etype FROM entities AS e CROSS JOIN LATERAL"
    " jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.doc->'type') = 'array'"
    " THEN e.doc->'type' ELSE jsonb_build_array(e.type) END) AS tt (etype))"
    " SELECT etype, NULL, NULL, count(*) FROM t GROUP BY etype"
    " UNION ALL"
    " SELECT etype, a.key, coalesce(a.value->>'type', a.value->0->>'type'), count(*)"
    " FROM t CROSS JOIN LATERAL jsonb_each(t.doc) AS a (key, value)"
    " WHERE NOT (a.key IN (SELECT jsonb_array_elements_text(?::jsonb)))"
    " AND jsonb_typeof(a.value) IN ('object', 'array')"
    " GROUP BY 1, 2, 3"
)


def _outcome(old: Entity | None, new: Entity | None) -> WriteOutcome:
    if old is None:
        return "unchanged" if new is None else "created"
    if new is None:
        return "deleted"
    return "unchanged" if new is old or new == old else "updated"


async def _aiter(rows: list[Row]) -> AsyncGenerator[Row, None]:
    for row in rows:
        yield row


def _boxes(query: EntityQuery) -> tuple[BBox, ...] | None:
    """The boxes a ``location`` geo-query prefilters with (None: no geo prefilter)."""
    if query.geo is not None and set(query.geo_names) <= set(LOCATION_NAMES):
        return search_bbox(query.geo)
    return None


async def _search_sql(
    tx: Tx, query: EntityQuery, boxes: tuple[BBox, ...] | None
) -> tuple[entity_search.Pushdown, str, list[Any], str, list[Any], value_index.Driver | None]:
    """(pushdown, WHERE clause, its parameters, the ordered SELECT, its parameters, the
    value index that named the candidates)."""
    d = tx.dialect
    multi = query.types is not None and await _multi_typed(tx)
    # with a geo clause the grid cells' few rows are where to start, not the type; with a
    # selective indexed term, its index
    driver = None if boxes is not None else await value_index.choose(tx, query.q)
    push = entity_search.where(
        query,
        dialect=d.name,
        multi_typed=multi,
        type_index=boxes is None and (driver is None or driver.ids is None),
        driver=driver,
    )
    clauses, params = list(push.clauses), list(push.params)
    if boxes is not None:
        text, values = geo_cells.search_clause(d, boxes)
        clauses.append(text)
        params.extend(values)
    clause = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    order = order_by.entity_order(query.order, dialect=d.name)
    select = order_by.ordered_select(d.doc_text(), f"entities{clause}", order)
    ordered = [*(order.params if order is not None else ()), *params]
    return push, clause, params, select, ordered, driver


QUERY_DEADLINE_S: Final = 10.0
"""How long one search may spend checking documents in Python (``q`` terms SQL cannot
decide, regular expressions, geometry): past it the search stops (``QueryTooSlowError``)
rather than hold a reader that every other request needs."""


class _Deadline:
    """Checks the clock every 64 documents (a call to ``time.monotonic`` per row cost 2 %)."""

    __slots__ = ("_at", "_seconds", "_seen")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._at = time.monotonic() + seconds
        self._seen = 0

    def tick(self) -> None:
        self._seen += 1
        if self._seen & 63 == 0 and time.monotonic() > self._at:
            raise QueryTooSlowError(
                f"the query checked {self._seen:,} entities in {self._seconds:g} s and was"
                " stopped: narrow it (type, id, an indexed attribute in q, a smaller page)"
            )


async def _candidates_page(
    tx: Tx,
    clause: str,
    params: list[Any],
    ids: Sequence[str],
    keep: Callable[[Entity], bool] | None,
    *,
    limit: int,
    offset: int,
    count: bool,
    deadline: _Deadline,
) -> tuple[list[Entity], int]:
    """One page in id order from a value index's sorted candidates, and how many matched
    (all of them only with ``count``). ``clause`` ends with the list of ids, the last of
    ``params``: they are read a slice at a time, so about a page of rows is visited.
    PostgreSQL spent ~10 us a candidate on its own checks and sort, 10 ms for 1,000
    candidates where the page needs 100. ``keep``: the Python re-check, if any."""
    d = tx.dialect
    want = offset + limit
    page: list[Entity] = []
    total = 0
    start, step = 0, max(16, want + want // 4)
    while start < len(ids) and (count or total < want):
        part = ids[start : start + step]
        rows = await tx.fetchall(
            f"SELECT {d.doc_text()} FROM entities{clause} ORDER BY id",  # noqa: S608
            [*params[:-1], d.list_param(part)],
        )
        for (text,) in rows:
            if not count and total >= want:
                break
            entity = load_doc(text)
            if keep is not None:
                deadline.tick()
                if not keep(entity):
                    continue
            if offset <= total < want:
                page.append(entity)
            total += 1
        start, step = start + step, step * 2
    return page, total


async def _multi_typed(tx: Tx) -> bool:
    """Whether any entity has a list of types (the partial index answers)."""
    d = tx.dialect
    return await tx.fetchone(f"SELECT 1 FROM entities WHERE {d.multi_typed} LIMIT 1") is not None  # noqa: S608


class _Writer(Generic[_E]):
    """The group-committed write path of one kind of refusal."""

    def __init__(self, db: Database, refusable: type[_E]) -> None:
        self._db = db
        self._refusable = refusable
        self.queue: Coalescer[tuple[str, EntityChange], WriteOutcome | _E] = Coalescer(
            self._write_now, max_items=_GROUP_COMMIT_ITEMS
        )

    async def _write_now(self, changes: list[tuple[str, EntityChange]]) -> list[WriteOutcome | _E]:
        ids = sorted({eid for eid, _ in changes})

        async def apply(tx: Tx) -> list[WriteOutcome | _E]:
            now = entity_rows.now_iso()
            before: dict[str, Entity | None] = dict.fromkeys(ids)
            before.update((e, doc) for e, (_, doc) in (await entity_rows.load(tx, ids)).items())
            current = dict(before)
            results: list[WriteOutcome | _E] = []
            for eid, change in changes:
                old = current[eid]
                try:
                    new = change(old)
                except self._refusable as exc:
                    results.append(exc)
                    continue
                current[eid] = new
                results.append(_outcome(old, new))
            moved = [i for i in ids if current[i] is not before[i]]
            changed = [(i, before[i], current[i]) for i in moved]
            await entity_rows.save(tx, changed, now=now)
            if moved:  # deletions leave records in the history too
                await entity_rows.record_history(tx, changed, now)
            return results

        return await self._db.write(apply)


class EntityRepository:
    """``store.entities``: the current NGSI-LD entities (normalized, without ``@context``)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writers: dict[type[Exception], _Writer[Any]] = {}

    async def get(self, entity_id: str) -> Entity | None:
        """The entity, or None."""

        async def read(tx: Tx) -> Entity | None:
            row = await tx.fetchone(
                f"SELECT {tx.dialect.doc_text()} FROM entities WHERE id = ?",  # noqa: S608
                (entity_id,),
            )
            return None if row is None else load_doc(row[0])

        return await self._db.read(read, snapshot=False)

    async def query(
        self,
        *,
        types: Sequence[str] | None,
        ids: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Entity], int]:
        """Entities of any of ``types`` and any of ``ids`` (None: no filter), by id; one page
        and the total number of matches."""

        async def read(tx: Tx) -> tuple[list[Entity], int]:
            d = tx.dialect
            where: list[str] = []
            params: list[Any] = []
            if types is not None:
                where.append(f"type IN ({d.text_values})")
                params.append(dumps(list(types)))
            if ids is not None:
                where.append(f"id IN ({d.text_values})")
                params.append(dumps(list(ids)))
            clause = (" WHERE " + " AND ".join(where)) if where else ""
            total = int(await tx.scalar(f"SELECT count(*) FROM entities{clause}", params))  # noqa: S608
            if limit == 0:
                return [], total
            rows = await tx.fetchall(
                f"SELECT {d.doc_text()} FROM entities{clause} ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
                [*params, limit, offset],
            )
            return [load_doc(r[0]) for r in rows], total

        return await self._db.read(read)

    async def search(
        self,
        query: EntityQuery,
        *,
        limit: int,
        offset: int,
        count: bool = True,
        deadline_s: float | None = None,
    ) -> tuple[list[Entity], int | None]:
        """Entities matching ``query`` (``EntityQuery.matches``), in its order (default: id).

        One page (``limit`` 0: none) and, with ``count``, the total number of matches (None
        without: counting may cost a scan the page does not need).
        """
        boxes = _boxes(query)

        async def read(tx: Tx) -> tuple[list[Entity], int | None]:
            deadline = _Deadline(QUERY_DEADLINE_S if deadline_s is None else deadline_s)
            push, clause, params, select, ordered, driver = await _search_sql(tx, query, boxes)
            if driver is not None and driver.ids is not None and not query.order:
                keep = None
                sql_count: int | None = None
                if push.residual:

                    def keep(entity: Entity) -> bool:
                        return query.matches(entity, q=not push.q_exact)

                elif count:  # the database counts without reading the documents
                    sql_count = int(
                        await tx.scalar(f"SELECT count(*) FROM entities{clause}", params)  # noqa: S608
                    )
                found_page, matched = await _candidates_page(
                    tx,
                    clause,
                    params,
                    driver.ids,
                    keep,
                    limit=limit,
                    offset=offset,
                    count=count and sql_count is None,
                    deadline=deadline,
                )
                return found_page, (matched if sql_count is None else sql_count) if count else None
            if push.residual:
                page: list[Entity] = []
                total = 0
                if boxes is not None and geo_cells.bounded(boxes):
                    # the cells bound the candidates to a few rows: one round trip
                    rows: Any = _aiter(await tx.fetchall(select, ordered))
                else:
                    rows = tx.stream(select, ordered)
                async with contextlib.aclosing(rows) as candidates:
                    async for (text,) in candidates:
                        if not count and total >= offset + limit:
                            break
                        entity = load_doc(text)
                        deadline.tick()
                        if not query.matches(entity, q=not push.q_exact):
                            continue
                        if offset <= total < offset + limit:
                            page.append(entity)
                        total += 1
                return page, total if count else None
            counted: int | None = None
            if count:
                counted = int(
                    await tx.scalar(f"SELECT count(*) FROM entities{clause}", params)  # noqa: S608
                )
                if limit == 0 or counted <= offset:
                    return [], counted
            found = await tx.fetchall(f"{select} LIMIT ? OFFSET ?", [*ordered, limit, offset])
            return [load_doc(r[0]) for r in found], counted

        return await self._db.read(read)

    async def plan(self, query: EntityQuery) -> str:
        """How the database would run ``search(query)``'s page: its query plan as text
        (``EXPLAIN``), for the tests that keep the indexes in use, and for an operator."""

        async def read(tx: Tx) -> str:
            _, _, _, select, ordered, driver = await _search_sql(tx, query, _boxes(query))
            explain = "EXPLAIN" if tx.dialect.postgres else "EXPLAIN QUERY PLAN"
            rows = await tx.fetchall(f"{explain} {select} LIMIT 100", ordered)
            if driver is not None and driver.ids is not None:  # how it found the candidates
                rows = [
                    *await tx.fetchall(f"{explain} {driver.sql}", driver.params),
                    ("then",),
                    *rows,
                ]
            return "\n".join(str(r[-1]) for r in rows)

        return await self._db.read(read)

    async def type_attribute_counts(
        self, within: Sequence[tuple[Collection[str], str]] | None = None
    ) -> list[TypeAttributeCount]:
        """Per entity type: its entity count and, per attribute name and type, how many have it.

        ``within``: only the entities a scoped grant reaches (``Dialect.within``, by the
        main type).
        """
        skipped = orjson.dumps(entity_search.DISCOVERY_SKIPPED).decode()

        async def read(tx: Tx) -> list[TypeAttributeCount]:
            sql = _COUNTS_POSTGRES if tx.dialect.postgres else _COUNTS_SQLITE
            params: list[Any] = []
            if within is not None:
                clause, params = tx.dialect.within(within)
                sql = sql.replace(
                    "FROM entities AS e",
                    f"FROM (SELECT id, type, doc FROM entities WHERE {clause}) AS e",  # noqa: S608
                )
            return [
                TypeAttributeCount(entity_type=t, attribute=a, attribute_type=k, entities=int(n))
                for t, a, k, n in await tx.fetchall(sql, (*params, skipped))
            ]

        return await self._db.read(read)

    async def upsert(self, entities: Sequence[Entity], *, replace: bool) -> list[bool]:
        """Create or update entities in one transaction; True per entity that was created.

        ``replace``: an existing entity's attributes are all replaced; otherwise the given
        attributes are merged into it (each attribute replaced whole). Owners are kept. The
        same id twice behaves as two calls in order.
        """
        ids = sorted({e["id"] for e in entities})

        async def apply(tx: Tx) -> list[bool]:
            now = entity_rows.now_iso()
            current = {e: doc for e, (_, doc) in (await entity_rows.load(tx, ids)).items()}
            before = dict(current)
            created: list[bool] = []
            for entity in entities:
                old = current.get(entity["id"])
                created.append(old is None)
                merged = dict(entity) if old is None or replace else {**old, **entity}
                current[entity["id"]] = merged
            await entity_rows.save(tx, [(i, before.get(i), current[i]) for i in ids], now=now)
            return created

        return await self._db.write(apply)

    async def write(
        self, changes: Sequence[tuple[str, EntityChange]], *, refusable: type[_E]
    ) -> list[WriteOutcome | _E]:
        """Apply pure changes to entities, all in one transaction.

        Each change gets the entity's current document (None: absent) and returns the new
        one (None: delete it). The same id may appear more than once: changes apply in
        order, each seeing the previous result. A change that raises ``refusable`` is
        refused alone and its exception takes its place in the result; anything else rolls
        the whole call back. Changes may run more than once (a retried transaction), so they
        must not have side effects. Owners are kept; created entities have none.
        """
        writer = self._writers.get(refusable)
        if writer is None:
            writer = self._writers[refusable] = _Writer(self._db, refusable)
        results: list[WriteOutcome | _E] = await writer.queue.submit(changes)
        return results

    async def purge(self, query: EntityQuery, purge: Purge) -> list[tuple[Entity, Entity | None]]:
        """Purge entities (5.6.21): every entity matching ``query``, in one transaction.

        ``purge`` says whether each is deleted whole or loses attributes; entities it would
        not change are left alone. One statement changes every chosen row. Returns (document
        before, after; None: deleted) per changed entity, for notifications; the history
        records the change as for ``write``.
        """

        async def apply(tx: Tx) -> list[tuple[Entity, Entity | None]]:
            d = tx.dialect
            now = entity_rows.now_iso()
            multi = query.types is not None and await _multi_typed(tx)
            push = entity_search.where(query, dialect=d.name, multi_typed=multi)
            rows = await tx.fetchall(
                f"SELECT id, {d.doc_text()} FROM entities{push.sql()}{d.for_update}",  # noqa: S608
                push.params,
            )
            before: dict[str, Entity] = {}
            for eid, text in rows:
                doc = load_doc(text)
                matched = not push.residual or query.matches(doc, q=not push.q_exact)
                if matched and purge.changes(doc):
                    before[eid] = doc
            if not before:
                return []
            after: dict[str, Entity | None] = dict.fromkeys(before)
            if purge.whole:
                await tx.execute(
                    f"DELETE FROM entities WHERE id IN ({d.text_values})",  # noqa: S608
                    (dumps(list(before)),),
                )
            else:
                sql, params = purge.update(d, list(before), now)
                fresh = {eid: load_doc(text) for eid, text in await tx.fetchall(sql, params)}
                after.update(fresh)
                await tx.executemany(
                    geo_cells.UPDATE,
                    [(*geo_cells.columns(doc), eid) for eid, doc in fresh.items()],
                )
            changed = [(eid, before[eid], after[eid]) for eid in before]
            await value_index.maintain(tx, changed)
            await entity_rows.record_history(tx, changed, now)
            return [(before[eid], after[eid]) for eid in before]

        return await self._db.write(apply)

    async def drain(self) -> None:
        """Finish the writes queued for a shared transaction."""
        for writer in list(self._writers.values()):
            await writer.queue.drain()
