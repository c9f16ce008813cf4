"""The shared store: PostgreSQL, so several broker processes can serve one city.

Same contract and results as ``SqliteStore`` (the same tests run on both);
what differs is how correctness under concurrency is obtained, since other
processes write the same tables at the same time:

- Readings: ``PRIMARY KEY (gateway_id, seq)`` and ``INSERT ... ON CONFLICT DO
  NOTHING``; the row count is what was new. A batch replayed concurrently by
  two processes waits on the other's uncommitted keys and is counted once.
- Entities: read-modify-write under row locks. Existing rows are locked with
  ``SELECT ... FOR UPDATE`` (sorted by id, so two writers never lock in
  opposite orders); missing ones are created with ``INSERT ... ON CONFLICT DO
  NOTHING`` and, if another process created them meanwhile, locked and merged
  like existing ones. Ownership is checked on the locked rows, so two gateways
  racing to create one entity cannot both own it.
- Isolation is READ COMMITTED: every statement sees what committed before it
  and the locks do the rest; SERIALIZABLE would turn every concurrent replay
  into a retry. A deadlock or serialization failure (possible only with
  writers outside this class) is retried a few times with jittered backoff.

Connections come from a fixed-size ``psycopg_pool.AsyncConnectionPool``
(asyncio tasks, no threads): each call borrows one connection for one
transaction, so reads never queue behind a batch, and a broken connection (a
server restart) is replaced by the pool rather than failing every later call.

Durability is the server's: a batch is acknowledged after COMMIT, which with
PostgreSQL's defaults (``fsync=on``, ``synchronous_commit=on``) is on disk.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

import orjson
import psycopg
from psycopg import errors as pg_errors

from ldt.cloud.errors import GatewayExistsError, OwnershipError, StoreError
from ldt.cloud.ngsild import order_by
from ldt.cloud.ngsild.device_model import apply_update, summarize
from ldt.cloud.ngsild.entity_query import LOCATION_NAMES, EntityQuery
from ldt.cloud.ngsild.geo import search_bbox
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.temporal import AttrInstance, history_of
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store import (
    control_sql,
    entity_search,
    pg_geo,
    pg_temporal,
    pki_sql,
    registration_sql,
    temporal,
)
from ldt.cloud.store.base import (
    Entity,
    EntityChange,
    GatewayRecord,
    HistoryRow,
    IngestResult,
    NotificationCounts,
    Store,
    SubscriptionRecord,
    TypeAttributeCount,
    WriteOutcome,
)
from ldt.cloud.store.coalesce import Coalescer
from ldt.cloud.store.database import PostgresDatabase, _PgTx
from ldt.cloud.store.purge_sql import Purge
from ldt.contract import IngestBatch

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

_T = TypeVar("_T")
_Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: gateways, reading history, entities
    """
    CREATE TABLE gateways (
        id text PRIMARY KEY,
        token_sha256 bytea NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE readings (
        gateway_id text NOT NULL,
        seq bigint NOT NULL,
        entity_id text NOT NULL,
        attr text NOT NULL,
        observed_at_ms bigint NOT NULL,
        value jsonb,            -- NULL for a reading without value
        quality text NOT NULL,
        reason text,
        PRIMARY KEY (gateway_id, seq)
    );
    CREATE INDEX readings_by_attr ON readings (entity_id, attr, observed_at_ms);
    CREATE TABLE entities (
        id text PRIMARY KEY,
        type text NOT NULL,
        doc jsonb NOT NULL,     -- normalized NGSI-LD, without @context
        gateway_id text,        -- owner; NULL for entities created through the NGSI-LD API
        created_at timestamptz NOT NULL DEFAULT now(),
        modified_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX entities_by_type ON entities (type, id);
    """,
    # 2: NGSI-LD subscriptions (document and delivery counters)
    """
    CREATE TABLE subscriptions (
        id text PRIMARY KEY,
        doc jsonb NOT NULL,
        times_sent bigint NOT NULL DEFAULT 0,
        times_failed bigint NOT NULL DEFAULT 0,
        last_notification text,
        last_success text,
        last_failure text
    );
    """,
    # 3: temporal representation: attribute-instance history
    pg_temporal.SCHEMA,
    # 4: location boxes under GiST, multi-typed entities (pg_geo; boxes backfilled by _migrate)
    pg_geo.MIGRATION,
    # 5: deletion records in the temporal history (deletedAt)
    pg_temporal.DELETED_AT,
    # 6: context source registrations
    registration_sql.PG_SCHEMA,
    # 7: several brokers on one database: subscription generation, notification slots
    """
    CREATE TABLE subscription_generation (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        n bigint NOT NULL
    );
    INSERT INTO subscription_generation (one, n) VALUES (true, 0);
    CREATE TABLE subscription_slots (
        id text PRIMARY KEY,
        due_ms bigint NOT NULL
    );
    """,
    # 8: deletedAt indexed for deletion records only (cheaper history inserts)
    pg_temporal.PARTIAL_DELETED_INDEX,
    # 9: provisioning: claim tokens, gateway certificates
    pki_sql.PG_SCHEMA,
    # 10: signed artifacts and the gateways' reports on them
    pki_sql.PG_ARTIFACTS,
    # 11: edge control: catalogue, rollouts, groups, commands, audit
    control_sql.PG_SCHEMA,
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The schema this code writes; ``open()`` migrates older databases up to it."""

_MIGRATION_LOCK: Final = 0x6C64_7473_6368  # pg_advisory_xact_lock key: "ldtsch"
_RETRIES: Final = 5
_GROUP_COMMIT_ITEMS: Final = 2000
"""At most this many changes in one shared write transaction (a bigger batch runs alone)."""
_ISO_UTC: Final = """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""

_INSERT_READINGS: Final = (
    # readings carry a series number; the (few) series name entity and attribute
    # once, joined here, so the 5,000-element arrays hold no repeated long strings
    "INSERT INTO readings"
    " (gateway_id, seq, entity_id, attr, observed_at_ms, value, quality, reason)"
    " SELECT %s, r.seq, s.entity_id, s.attr, r.ts, r.value, r.quality, r.reason"
    " FROM unnest(%s::bigint[], %s::integer[], %s::bigint[], %s::jsonb[], %s::text[],"
    " %s::text[]) AS r (seq, sid, ts, value, quality, reason)"
    " JOIN unnest(%s::integer[], %s::text[], %s::text[]) AS s (sid, entity_id, attr) USING (sid)"
    " ON CONFLICT (gateway_id, seq) DO NOTHING"
)
_ANY_MULTI_TYPED: Final = (  # answered from the partial index entities_multi_typed (pg_geo)
    "SELECT 1 FROM entities WHERE jsonb_typeof(doc->'type') = 'array' LIMIT 1"
)
_LOCK_ENTITIES: Final = (
    "SELECT id, gateway_id, doc::text FROM entities WHERE id = ANY(%s::text[])"
    " ORDER BY id FOR UPDATE"
)
_CREATE_ENTITIES: Final = (
    "INSERT INTO entities (id, type, doc, gateway_id, location_box)"
    # the last four arrays are pg_geo.box_params (the location box)
    " SELECT id, type, doc, gw, box(point(x0, y0), point(x1, y1))"
    " FROM unnest(%s::text[], %s::text[],"  # the documents: _json_docs
    " ARRAY(SELECT d FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS j (d, n) ORDER BY n),"
    " %s::text[],"
    " %s::float8[], %s::float8[], %s::float8[], %s::float8[])"
    " AS u (id, type, doc, gw, x0, y0, x1, y1)"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)
_UPDATE_ENTITIES: Final = (
    "UPDATE entities AS e SET type = u.type, doc = u.doc, modified_at = now(),"
    " gateway_id = coalesce(e.gateway_id, %s::text),"
    " location_box = box(point(x0, y0), point(x1, y1))"
    " FROM unnest(%s::text[], %s::text[],"  # the documents: _json_docs
    " ARRAY(SELECT d FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS j (d, n) ORDER BY n),"
    " %s::float8[], %s::float8[], %s::float8[], %s::float8[])"
    " AS u (id, type, doc, x0, y0, x1, y1) WHERE e.id = u.id"
)


def _dumps(doc: object) -> str:
    return orjson.dumps(doc).decode()


def _json_docs(docs: Iterable[Entity]) -> str:
    """Documents as one JSON array, which the statements take apart in order.

    Not a ``jsonb[]`` of texts: psycopg escapes every quote of every document in
    a text array with a regex substitution, a third of the CPU of a 1,000-entity
    upsert. orjson writes the one array in C and PostgreSQL parses it in C.
    """
    return orjson.dumps(list(docs)).decode()


def _load(text: str) -> Entity:
    """An entity document as stored; ``id`` and ``type`` first, as users expect to read them.

    jsonb keeps keys sorted by length, not as written. orjson reads jsonb's
    integral renderings of huge floats (1e20 comes back as
    "100000000000000000000") as floats, where json.loads would make ints.
    """
    loaded: Entity = orjson.loads(text)
    if "id" in loaded and "type" in loaded:
        return {"id": loaded.pop("id"), "type": loaded.pop("type"), **loaded}
    return loaded


class PostgresStore(Store):
    """``Store`` on a PostgreSQL database that other broker processes may share.

    ``dsn``: a libpq URL or ``key=value`` string (``postgresql://user@host/db``;
    a password is best left to ``PGPASSWORD`` or ``~/.pgpass``). ``pool_size``
    connections are kept open; ``timeout_s`` bounds every call, waiting for a
    connection included; ``connect_timeout_s`` bounds ``open()``.
    """

    def __init__(
        self,
        *,
        dsn: str,
        pool_size: int = 4,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._pg = PostgresDatabase(
            dsn=dsn,
            setup=_migrate,
            pool_size=pool_size,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        super().__init__(self._pg)
        self._writes: Coalescer[tuple[str, EntityChange], WriteOutcome | NgsiLdError] = Coalescer(
            self._write_now, max_items=_GROUP_COMMIT_ITEMS
        )

    @property
    def dsn(self) -> str:
        """The connection URL (tenant stores derive theirs from it; may hold a password)."""
        return self._pg.dsn

    # lifecycle ------------------------------------------------------------
    async def open(self) -> None:
        """Migrate the schema on one connection, then open the pool; idempotent.

        Raises ``StoreError`` if the server cannot be reached within
        ``connect_timeout_s`` or its schema is newer than this code.
        """
        await self.db.open()

    async def close(self) -> None:
        """Close every connection (waits for calls in progress to return them)."""
        await self._writes.drain()
        await self.db.close()

    async def _call(self, fn: Callable[[_Conn], Awaitable[_T]], *, transaction: bool) -> _T:
        return await self._pg.call(fn, transaction=transaction)

    # gateways -------------------------------------------------------------
    async def add_gateway(self, gateway_id: str, token_sha256: bytes, *, rotate: bool) -> None:
        """See ``Store.add_gateway``."""

        async def add(conn: _Conn) -> None:
            if rotate:
                await conn.execute(
                    "INSERT INTO gateways (id, token_sha256) VALUES (%s, %s)"
                    " ON CONFLICT (id) DO UPDATE SET token_sha256 = excluded.token_sha256",
                    (gateway_id, token_sha256),
                )
                return
            cur = await conn.execute(
                "INSERT INTO gateways (id, token_sha256) VALUES (%s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (gateway_id, token_sha256),
            )
            if cur.rowcount == 0:
                raise GatewayExistsError(f"gateway {gateway_id} already exists")

        await self._call(add, transaction=True)

    async def gateways(self) -> list[GatewayRecord]:
        """See ``Store.gateways``."""

        async def read(conn: _Conn) -> list[GatewayRecord]:
            cur = await conn.execute(f"SELECT id, {_ISO_UTC} FROM gateways ORDER BY id")  # noqa: S608
            return [GatewayRecord(id=r[0], created_at=r[1]) for r in await cur.fetchall()]

        return await self._call(read, transaction=False)

    async def gateway_for_token(self, token_sha256: bytes) -> str | None:
        """See ``Store.gateway_for_token``."""

        async def find(conn: _Conn) -> str | None:
            cur = await conn.execute(
                "SELECT id, token_sha256 FROM gateways WHERE token_sha256 = %s", (token_sha256,)
            )
            row = await cur.fetchone()
            if row is None or not hmac.compare_digest(bytes(row[1]), token_sha256):
                return None
            return str(row[0])

        return await self._call(find, transaction=False)

    async def pki_query(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """See ``Store.pki_query``."""
        text = pki_sql.sql(statement, postgres=True)

        async def run(conn: _Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(text.encode(), tuple(params))
            if cur.description is None:
                return []
            return [tuple(r) for r in await cur.fetchall()]

        return await self._call(run, transaction=True)

    # ingest ---------------------------------------------------------------
    async def ingest(self, gateway_id: str, batch: IngestBatch) -> IngestResult:
        """See ``Store.ingest``."""
        sids = [int(k) for k in batch.series]
        series = list(batch.series.values())
        rows = sorted(batch.readings)  # by seq: concurrent replays take key locks in one order
        seqs = [r[0] for r in rows]
        params = (
            gateway_id,
            seqs,
            [r[1] for r in rows],
            [r[2] for r in rows],
            [None if r[3] is None else _dumps(r[3]) for r in rows],
            [r[4] for r in rows],
            [r[5] for r in rows],
            sids,
            [s.entity_id for s in series],
            [s.attr for s in series],
        )
        updates = summarize(batch)

        async def apply(conn: _Conn) -> int:
            def merge(eid: str, owner: str | None, doc: Entity | None) -> Entity:
                if owner is not None and owner != gateway_id:
                    raise OwnershipError(eid, owner)
                return apply_update(doc, eid, updates[eid])

            await _write_entities(conn, sorted(updates), merge, owner=gateway_id)
            cur = await conn.execute(_INSERT_READINGS, params)
            return max(cur.rowcount, 0)

        inserted = await self._call(apply, transaction=True)
        return IngestResult(
            accepted=inserted,
            duplicates=len(rows) - inserted,
            max_seq=max(seqs, default=0),
        )

    async def reading_count(self, gateway_id: str) -> int:
        """See ``Store.reading_count``."""

        async def count(conn: _Conn) -> int:
            cur = await conn.execute(
                "SELECT count(*) FROM readings WHERE gateway_id = %s", (gateway_id,)
            )
            row = await cur.fetchone()
            return 0 if row is None else int(row[0])

        return await self._call(count, transaction=False)

    async def seqs(self, gateway_id: str) -> list[int]:
        """See ``Store.seqs``."""

        async def read(conn: _Conn) -> list[int]:
            cur = await conn.execute(
                "SELECT seq FROM readings WHERE gateway_id = %s ORDER BY seq", (gateway_id,)
            )
            return [int(r[0]) for r in await cur.fetchall()]

        return await self._call(read, transaction=False)

    async def history(self, entity_id: str, attr: str) -> list[HistoryRow]:
        """See ``Store.history``."""

        async def read(conn: _Conn) -> list[HistoryRow]:
            cur = await conn.execute(
                "SELECT gateway_id, seq, observed_at_ms, value::text, quality, reason"
                " FROM readings WHERE entity_id = %s AND attr = %s"
                " ORDER BY observed_at_ms, seq",
                (entity_id, attr),
            )
            return [
                HistoryRow(
                    gateway_id=gw,
                    seq=seq,
                    observed_at_ms=ts,
                    value=None if value is None else orjson.loads(value),
                    quality=quality,
                    reason=reason,
                )
                for gw, seq, ts, value, quality, reason in await cur.fetchall()
            ]

        return await self._call(read, transaction=False)

    # entities -------------------------------------------------------------
    async def get_entity(self, entity_id: str) -> Entity | None:
        """See ``Store.get_entity``."""

        async def read(conn: _Conn) -> Entity | None:
            cur = await conn.execute("SELECT doc::text FROM entities WHERE id = %s", (entity_id,))
            row = await cur.fetchone()
            return None if row is None else _load(row[0])

        return await self._call(read, transaction=False)

    async def query_entities(
        self,
        *,
        types: Sequence[str] | None,
        ids: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Entity], int]:
        """See ``Store.query_entities``; the page and the total come from one snapshot."""
        where: list[str] = []
        params: list[object] = []
        if types is not None:
            where.append("type = ANY(%s::text[])")
            params.append(list(types))
        if ids is not None:
            where.append("id = ANY(%s::text[])")
            params.append(list(ids))
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        async def read(conn: _Conn) -> tuple[list[Entity], int]:
            cur = await conn.execute(f"SELECT count(*) FROM entities{clause}", params)  # noqa: S608
            row = await cur.fetchone()
            total = 0 if row is None else int(row[0])
            if limit == 0 or total == 0:
                return [], total
            cur = await conn.execute(
                f"SELECT doc::text FROM entities{clause} ORDER BY id LIMIT %s OFFSET %s",  # noqa: S608
                [*params, limit, offset],
            )
            return [_load(r[0]) for r in await cur.fetchall()], total

        async def snapshot(conn: _Conn) -> tuple[list[Entity], int]:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return await read(conn)

        return await self._call(snapshot, transaction=True)

    async def upsert_entities(self, entities: Sequence[Entity], *, replace: bool) -> list[bool]:
        """See ``Store.upsert_entities``.

        The same id twice in one call behaves as two calls in order (the
        first creates, the second merges or replaces), as with SQLite.
        """
        by_id: dict[str, list[int]] = {}
        for index, entity in enumerate(entities):
            by_id.setdefault(entity["id"], []).append(index)

        async def apply(conn: _Conn) -> list[bool]:
            created = [False] * len(entities)

            def merge(eid: str, owner: str | None, doc: Entity | None) -> Entity:
                for index in by_id[eid]:  # may run twice for an id another process created
                    entity = entities[index]
                    created[index] = doc is None
                    doc = dict(entity) if doc is None or replace else {**doc, **entity}
                assert doc is not None  # by_id lists at least one entity per id
                return doc

            await _write_entities(conn, sorted(by_id), merge, owner=None)
            return created

        return await self._call(apply, transaction=True)

    async def write_entities(
        self, changes: Sequence[tuple[str, EntityChange]]
    ) -> list[WriteOutcome | NgsiLdError]:
        """See ``Store.write_entities``.

        The rows are locked (``FOR UPDATE``, by id) before the changes run; an
        entity another process creates meanwhile makes the INSERT conflict,
        and the whole call is retried (the changes are pure). Calls that arrive
        while a write runs share the next transaction (``Coalescer``: group commit).
        """
        return await self._writes.submit(changes)

    async def _write_now(
        self, changes: list[tuple[str, EntityChange]]
    ) -> list[WriteOutcome | NgsiLdError]:
        ids = sorted({eid for eid, _ in changes})

        async def apply(conn: _Conn) -> list[WriteOutcome | NgsiLdError]:
            cur = await conn.execute(_LOCK_ENTITIES, (ids,))
            before: dict[str, Entity | None] = dict.fromkeys(ids)
            for eid, _owner, text in await cur.fetchall():
                before[eid] = _load(text)
            current = dict(before)
            results: list[WriteOutcome | NgsiLdError] = []
            for eid, change in changes:
                old = current[eid]
                try:
                    new = change(old)
                except NgsiLdError as exc:
                    results.append(exc)
                    continue
                current[eid] = new
                results.append(_outcome(old, new))
            created: list[tuple[str, Entity]] = []
            updated: list[tuple[str, Entity]] = []
            deleted: list[str] = []
            for eid in ids:
                new, old = current[eid], before[eid]
                if new is old:
                    continue
                if new is None:
                    deleted.append(eid)
                elif old is None:
                    created.append((eid, new))
                else:
                    updated.append((eid, new))
            if deleted:
                await conn.execute("DELETE FROM entities WHERE id = ANY(%s::text[])", (deleted,))
            if created:
                cur = await conn.execute(_CREATE_WRITTEN, _write_params(created))
                if len(await cur.fetchall()) != len(created):
                    # created by another process since the lock: run again on the new rows
                    raise pg_errors.SerializationFailure("an entity was created concurrently")
            if updated:
                await conn.execute(_UPDATE_WRITTEN, _write_params(updated))
            await _record_history(conn, [(e, before[e], current[e]) for e in ids])
            return results

        return await self._call(apply, transaction=True)

    async def search_entities(
        self, query: EntityQuery, *, limit: int, offset: int, count: bool = True
    ) -> tuple[list[Entity], int | None]:
        """See ``Store.search_entities``; geo-queries are checked in Python (no PostGIS).

        A ``location`` geo-query reads only the entities whose box meets the query's
        (``pg_geo``, GiST); the type test is the plain column one when no entity is
        multi-typed, asked in the same snapshot (``entity_search.where``).
        """
        geo: tuple[str, list[float]] | None = None
        if query.geo is not None and set(query.geo_names) <= set(LOCATION_NAMES):
            boxes = search_bbox(query.geo)
            if boxes is not None:
                geo = pg_geo.search_clause(boxes)

        async def read(conn: _Conn) -> tuple[list[Entity], int | None]:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            multi = False
            if query.types is not None:
                cur = await conn.execute(_ANY_MULTI_TYPED)
                multi = await cur.fetchone() is not None
            push = entity_search.where(query, dialect="postgresql", multi_typed=multi)
            clauses, params = list(push.clauses), list(push.params)
            if geo is not None:
                clauses.append(geo[0])
                params.extend(geo[1])
            clause = (" WHERE " + " AND ".join(clauses)) if clauses else ""
            order = order_by.entity_order(query.order, dialect="postgresql")
            select = order_by.ordered_select("doc::text", f"entities{clause}", order)
            ordered = [*(order.params if order is not None else ()), *params]
            if push.residual:
                page: list[Entity] = []
                total = 0
                if geo is not None:
                    # a cursor is planned for its first 10 % of rows, which picks a walk of the
                    # whole table in id order over the GiST index's few candidates and a sort
                    await conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
                async with conn.cursor(name="ldt_search") as stream:  # server-side cursor
                    await stream.execute(select, ordered)
                    async for (text,) in stream:
                        if not count and total >= offset + limit:
                            break
                        entity = _load(text)
                        if not query.matches(entity, q=not push.q_exact):
                            continue
                        if offset <= total < offset + limit:
                            page.append(entity)
                        total += 1
                return page, total if count else None
            counted: int | None = None
            if count:
                cur = await conn.execute(f"SELECT count(*) FROM entities{clause}", params)  # noqa: S608
                row = await cur.fetchone()
                counted = 0 if row is None else int(row[0])
                if limit == 0 or counted <= offset:
                    return [], counted
            cur = await conn.execute(f"{select} LIMIT %s OFFSET %s", [*ordered, limit, offset])
            return [_load(r[0]) for r in await cur.fetchall()], counted

        return await self._call(read, transaction=True)

    async def purge_entities(
        self, query: EntityQuery, purge: Purge
    ) -> list[tuple[Entity, Entity | None]]:
        """See ``Store.purge_entities``: the matching rows locked, then one ``DELETE``/``UPDATE``
        over the array of their ids (and one more for the location boxes a purge changed)."""

        async def apply(conn: _Conn) -> list[tuple[Entity, Entity | None]]:
            return await _purge(conn, query, purge)

        return await self._call(apply, transaction=True)

    async def type_attribute_counts(self) -> list[TypeAttributeCount]:
        """See ``Store.type_attribute_counts``."""
        sql = (
            "WITH t AS (SELECT e.doc, tt.etype FROM entities AS e CROSS JOIN LATERAL"
            " jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.doc->'type') = 'array'"
            " THEN e.doc->'type' ELSE jsonb_build_array(e.type) END) AS tt (etype))"
            " SELECT etype, NULL, NULL, count(*) FROM t GROUP BY etype"
            " UNION ALL"
            " SELECT etype, a.key, coalesce(a.value->>'type', a.value->0->>'type'), count(*)"
            " FROM t CROSS JOIN LATERAL jsonb_each(t.doc) AS a (key, value)"
            " WHERE a.key <> ALL(%s::text[]) AND jsonb_typeof(a.value) IN ('object', 'array')"
            " GROUP BY 1, 2, 3"
        )

        async def read(conn: _Conn) -> list[TypeAttributeCount]:
            cur = await conn.execute(sql, (list(entity_search.DISCOVERY_SKIPPED),))
            return [
                TypeAttributeCount(entity_type=t, attribute=a, attribute_type=k, entities=int(n))
                for t, a, k, n in await cur.fetchall()
            ]

        return await self._call(read, transaction=False)

    # subscriptions --------------------------------------------------------
    async def create_subscription(self, doc: dict[str, Any]) -> bool:
        """See ``Store.create_subscription``."""

        async def insert(conn: _Conn) -> bool:
            cur = await conn.execute(
                "INSERT INTO subscriptions (id, doc) VALUES (%s, %s::jsonb)"
                " ON CONFLICT (id) DO NOTHING",
                (doc["id"], _dumps(doc)),
            )
            return await _subscription_changed(conn, doc["id"], cur.rowcount == 1)

        return await self._call(insert, transaction=True)

    async def replace_subscription(self, doc: dict[str, Any]) -> bool:
        """See ``Store.replace_subscription``."""

        async def update(conn: _Conn) -> bool:
            cur = await conn.execute(
                "UPDATE subscriptions SET doc = %s::jsonb WHERE id = %s", (_dumps(doc), doc["id"])
            )
            return await _subscription_changed(conn, doc["id"], cur.rowcount == 1)

        return await self._call(update, transaction=True)

    async def delete_subscription(self, sub_id: str) -> bool:
        """See ``Store.delete_subscription``."""

        async def delete(conn: _Conn) -> bool:
            cur = await conn.execute("DELETE FROM subscriptions WHERE id = %s", (sub_id,))
            return await _subscription_changed(conn, sub_id, cur.rowcount == 1)

        return await self._call(delete, transaction=True)

    async def put_registration(self, doc: dict[str, Any], *, create: bool) -> bool:
        """See ``Store.put_registration``."""
        if create:
            sql, params = registration_sql.sql("create", postgres=True), (doc["id"], _dumps(doc))
        else:
            sql, params = registration_sql.sql("replace", postgres=True), (_dumps(doc), doc["id"])

        async def write(conn: _Conn) -> bool:
            return (await conn.execute(sql.encode(), params)).rowcount == 1

        return await self._call(write, transaction=True)

    async def delete_registration(self, reg_id: str) -> bool:
        """See ``Store.delete_registration``."""
        sql = registration_sql.sql("delete", postgres=True)

        async def write(conn: _Conn) -> bool:
            return (await conn.execute(sql.encode(), (reg_id,))).rowcount == 1

        return await self._call(write, transaction=True)

    async def get_registration(self, reg_id: str) -> dict[str, Any] | None:
        """See ``Store.get_registration``."""
        sql = registration_sql.sql("get", postgres=True)

        async def read(conn: _Conn) -> dict[str, Any] | None:
            row = await (await conn.execute(sql.encode(), (reg_id,))).fetchone()
            return None if row is None else _load(row[0])

        return await self._call(read, transaction=False)

    async def list_registrations(self) -> list[dict[str, Any]]:
        """See ``Store.list_registrations``."""
        sql = registration_sql.sql("list", postgres=True)

        async def read(conn: _Conn) -> list[dict[str, Any]]:
            return [_load(r[0]) for r in await (await conn.execute(sql.encode())).fetchall()]

        return await self._call(read, transaction=False)

    async def get_subscription(self, sub_id: str) -> SubscriptionRecord | None:
        """See ``Store.get_subscription``."""

        async def read(conn: _Conn) -> SubscriptionRecord | None:
            cur = await conn.execute(f"{_SELECT_SUBSCRIPTION} WHERE id = %s", (sub_id,))
            row = await cur.fetchone()
            return None if row is None else _subscription(row)

        return await self._call(read, transaction=False)

    async def list_subscriptions(
        self, *, limit: int | None = None, offset: int = 0
    ) -> tuple[list[SubscriptionRecord], int]:
        """See ``Store.list_subscriptions``."""

        async def read(conn: _Conn) -> tuple[list[SubscriptionRecord], int]:
            cur = await conn.execute("SELECT count(*) FROM subscriptions")
            row = await cur.fetchone()
            total = 0 if row is None else int(row[0])
            cur = await conn.execute(
                f"{_SELECT_SUBSCRIPTION} ORDER BY id LIMIT %s OFFSET %s", (limit, offset)
            )
            return [_subscription(r) for r in await cur.fetchall()], total

        return await self._call(read, transaction=True)

    async def record_notifications(self, counts: Sequence[NotificationCounts]) -> None:
        """See ``Store.record_notifications``: one UPDATE over arrays of the counts.

        Each statement adds to the row as it is when the row lock is granted, so brokers
        flushing at once add up; a deadlock between two of them is retried by ``_call``.
        """
        if not counts:
            return
        ordered = sorted(counts, key=lambda c: c.sub_id)  # same lock order in every broker
        columns = (
            [c.sub_id for c in ordered],
            [c.sent for c in ordered],
            [c.failed for c in ordered],
            [c.last_notification for c in ordered],
            [c.last_success for c in ordered],
            [c.last_failure for c in ordered],
        )

        async def update(conn: _Conn) -> None:
            await conn.execute(_RECORD_NOTIFICATIONS, columns)

        await self._call(update, transaction=False)

    async def subscriptions_generation(self) -> int:
        """See ``Store.subscriptions_generation``."""

        async def read(conn: _Conn) -> int:
            cur = await conn.execute("SELECT n FROM subscription_generation")
            row = await cur.fetchone()
            return 0 if row is None else int(row[0])

        return await self._call(read, transaction=False)

    async def claim_notification_slot(
        self, sub_id: str, *, now_ms: int, period_ms: int
    ) -> tuple[bool, int]:
        """See ``Store.claim_notification_slot``: one upsert, so only one broker wins."""

        async def claim(conn: _Conn) -> tuple[bool, int]:
            cur = await conn.execute(_CLAIM_SLOT, (sub_id, now_ms + period_ms, now_ms))
            row = await cur.fetchone()
            if row is not None:
                return True, int(row[0])
            cur = await conn.execute(
                "SELECT due_ms FROM subscription_slots WHERE id = %s", (sub_id,)
            )
            row = await cur.fetchone()
            return False, now_ms if row is None else int(row[0])

        return await self._call(claim, transaction=False)


_SELECT_SUBSCRIPTION: Final = (
    "SELECT doc::text, times_sent, times_failed, last_notification, last_success, last_failure"
    " FROM subscriptions"
)
# Store.record_notifications: rows of one id summed first (UPDATE .. FROM applies one source
# row per target row); greatest() ignores NULLs and ISO times sort by time.
_RECORD_NOTIFICATIONS: Final = (
    "UPDATE subscriptions AS s SET times_sent = s.times_sent + u.sent,"
    " times_failed = s.times_failed + u.failed,"
    " last_notification = greatest(s.last_notification, u.ln),"
    " last_success = greatest(s.last_success, u.ls),"
    " last_failure = greatest(s.last_failure, u.lf)"
    " FROM (SELECT id, sum(sent) AS sent, sum(failed) AS failed, max(ln) AS ln,"
    " max(ls) AS ls, max(lf) AS lf"
    " FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[])"
    " AS t(id, sent, failed, ln, ls, lf) GROUP BY id) AS u"
    " WHERE s.id = u.id"
)


_CLAIM_SLOT: Final = (
    "INSERT INTO subscription_slots AS s (id, due_ms) VALUES (%s, %s)"
    " ON CONFLICT (id) DO UPDATE SET due_ms = excluded.due_ms WHERE s.due_ms <= %s"
    " RETURNING due_ms"
)


async def _subscription_changed(conn: _Conn, sub_id: str, changed: bool) -> bool:
    """After a subscription write (in its transaction): move the generation, free its slot."""
    if changed:
        await conn.execute("UPDATE subscription_generation SET n = n + 1")
        await conn.execute("DELETE FROM subscription_slots WHERE id = %s", (sub_id,))
    return changed


def _subscription(row: Sequence[Any]) -> SubscriptionRecord:
    loaded: dict[str, Any] = orjson.loads(row[0])
    return SubscriptionRecord(
        doc=loaded,
        times_sent=int(row[1]),
        times_failed=int(row[2]),
        last_notification=row[3],
        last_success=row[4],
        last_failure=row[5],
    )


async def _write_entities(
    conn: _Conn,
    ids: list[str],
    merge: Callable[[str, str | None, Entity | None], Entity],
    *,
    owner: str | None,
) -> None:
    """Read-modify-write ``ids`` (sorted) inside the caller's transaction.

    ``merge(id, owner, stored_doc_or_None)`` returns the new document or raises
    (``OwnershipError``: the transaction rolls back). Existing rows are locked
    first; rows created meanwhile by another process are locked and merged
    after the insert. ``owner`` is given to new rows and claims written rows
    that have none (entities provisioned through the API are claimed by the
    first gateway that reports on them); an owned row keeps its owner.
    """
    if not ids:
        return
    cur = await conn.execute(_LOCK_ENTITIES, (ids,))
    found = {eid: (own, _load(doc)) for eid, own, doc in await cur.fetchall()}
    changed: dict[str, Entity] = {}
    for eid, (own, doc) in found.items():
        new = merge(eid, own, doc)
        if new != doc:
            changed[eid] = new
    missing = [eid for eid in ids if eid not in found]
    if missing:
        fresh = [merge(eid, owner, None) for eid in missing]
        cur = await conn.execute(
            _CREATE_ENTITIES,
            (
                missing,
                [d["type"] for d in fresh],
                _json_docs(fresh),
                [owner] * len(missing),
                *pg_geo.box_params(fresh),
            ),
        )
        inserted = {r[0] for r in await cur.fetchall()}
        raced = [eid for eid in missing if eid not in inserted]
        if raced:  # another process created them after our first look: they exist now
            cur = await conn.execute(_LOCK_ENTITIES, (raced,))
            for eid, own, text in await cur.fetchall():
                doc = _load(text)
                new = merge(eid, own, doc)
                if new != doc:
                    changed[eid] = new
    if changed:
        await conn.execute(
            _UPDATE_ENTITIES,
            (
                owner,
                list(changed),
                [d["type"] for d in changed.values()],
                _json_docs(changed.values()),
                *pg_geo.box_params(changed.values()),
            ),
        )
    olds = {eid: doc for eid, (_own, doc) in found.items()}
    history = [(eid, olds.get(eid), new) for eid, new in changed.items()]
    if missing:
        history += [(e, None, d) for e, d in zip(missing, fresh, strict=True) if e not in changed]
    await _record_history(conn, history)


async def _purge(
    conn: _Conn, query: EntityQuery, purge: Purge
) -> list[tuple[Entity, Entity | None]]:
    """``PostgresStore.purge_entities`` inside the caller's transaction."""
    multi = False
    if query.types is not None:
        cur = await conn.execute(_ANY_MULTI_TYPED)
        multi = await cur.fetchone() is not None
    push = entity_search.where(query, dialect="postgresql", multi_typed=multi)
    cur = await conn.execute(
        f"SELECT id, doc::text FROM entities{push.sql()} ORDER BY id FOR UPDATE",  # noqa: S608
        push.params,
    )
    before: dict[str, Entity] = {}
    for eid, text in await cur.fetchall():
        doc = _load(text)
        matched = not push.residual or query.matches(doc, q=not push.q_exact)
        if matched and purge.changes(doc):
            before[eid] = doc
    if not before:
        return []
    after: dict[str, Entity | None] = dict.fromkeys(before)
    if purge.whole:
        await conn.execute("DELETE FROM entities WHERE id = ANY(%s::text[])", (list(before),))
    else:
        sql, params = purge.postgres_update(list(before), iso_ms(time.time_ns() // 1_000_000))
        cur = await conn.execute(sql, params)
        fresh = {eid: _load(text) for eid, text in await cur.fetchall()}
        after.update(fresh)
        moved = [  # location boxes are computed in Python (pg_geo): redo the ones that lost one
            (eid, doc)
            for eid, doc in fresh.items()
            if any(n in before[eid] and n not in doc for n in LOCATION_NAMES)
        ]
        if moved:
            await conn.execute(
                "UPDATE entities AS e SET location_box = box(point(x0, y0), point(x1, y1))"
                " FROM unnest(%s::text[], %s::float8[], %s::float8[], %s::float8[],"
                " %s::float8[]) AS u (id, x0, y0, x1, y1) WHERE e.id = u.id",
                ([eid for eid, _ in moved], *pg_geo.box_params(doc for _, doc in moved)),
            )
    await _record_history(conn, [(eid, before[eid], after[eid]) for eid in before])
    return [(before[eid], after[eid]) for eid in before]


async def _record_history(
    conn: _Conn, docs: Sequence[tuple[str, Entity | None, Entity | None]]
) -> None:
    """Add what changed in each (id, old, new) to the temporal history (same transaction)."""
    now_ms = time.time_ns() // 1_000_000
    now = iso_ms(now_ms)
    headers: dict[str, tuple[Any, str]] = {}
    rows: list[AttrInstance] = []
    for eid, old, new in docs:
        doc = new if new is not None else old
        if new is old or doc is None:
            continue
        added = history_of(eid, old, new, now_ms)
        if added:
            headers[eid] = (doc["type"], now)
            rows.extend(added)
    await temporal.record(_PgTx(conn), headers, rows)  # the write's own transaction


async def _migrate(conn: _Conn) -> None:
    """Bring the schema up to ``SCHEMA_VERSION`` in one transaction.

    An advisory lock makes concurrent openers (several broker processes
    starting together) migrate one after the other; the second finds the work
    done. Raises ``StoreError`` for a schema newer than this code.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ldt_schema_version (version integer NOT NULL)"
        )
        cur = await conn.execute("SELECT max(version) FROM ldt_schema_version")
        row = await cur.fetchone()
        current = 0 if row is None or row[0] is None else int(row[0])
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the database schema is version {current}, newer than this ldt"
                f" ({SCHEMA_VERSION}): upgrade ldt"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            await conn.execute(_MIGRATIONS[version - 1].encode())
            if _MIGRATIONS[version - 1] is pg_geo.MIGRATION:
                await pg_geo.backfill(conn)
            await conn.execute("INSERT INTO ldt_schema_version (version) VALUES (%s)", (version,))


_CREATE_WRITTEN: Final = (
    "INSERT INTO entities (id, type, doc, created_at, modified_at, location_box)"
    " SELECT id, type, doc, coalesce(c, now()), coalesce(m, now()),"
    " box(point(x0, y0), point(x1, y1))"
    " FROM unnest(%s::text[], %s::text[],"  # the documents: _json_docs
    " ARRAY(SELECT d FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS j (d, n) ORDER BY n),"
    " %s::timestamptz[], %s::timestamptz[],"
    " %s::float8[], %s::float8[], %s::float8[], %s::float8[])"
    " AS u (id, type, doc, c, m, x0, y0, x1, y1)"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)
_UPDATE_WRITTEN: Final = (
    "UPDATE entities AS e SET type = u.type, doc = u.doc,"
    " modified_at = coalesce(u.modified_at, now()),"
    " location_box = box(point(x0, y0), point(x1, y1))"
    " FROM unnest(%s::text[], %s::text[],"  # the documents: _json_docs
    " ARRAY(SELECT d FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS j (d, n) ORDER BY n),"
    " %s::timestamptz[], %s::timestamptz[],"
    " %s::float8[], %s::float8[], %s::float8[], %s::float8[])"
    " AS u (id, type, doc, created_at, modified_at, x0, y0, x1, y1)"
    " WHERE e.id = u.id"
)


def _write_params(rows: list[tuple[str, Entity]]) -> tuple[Any, ...]:
    """Parameters of ``_CREATE_WRITTEN``/``_UPDATE_WRITTEN``; owners are never touched.

    Arrays for ``unnest``, except the documents: one JSON array (``_json_docs``).
    """
    return (
        [eid for eid, _ in rows],
        [d["type"][0] if isinstance(d["type"], list) else d["type"] for _, d in rows],
        _json_docs(d for _, d in rows),
        [d.get("createdAt") for _, d in rows],
        [d.get("modifiedAt") for _, d in rows],
        *pg_geo.box_params(d for _, d in rows),
    )


def _outcome(old: Entity | None, new: Entity | None) -> WriteOutcome:
    if old is None:
        return "unchanged" if new is None else "created"
    if new is None:
        return "deleted"
    return "unchanged" if new is old or new == old else "updated"


def _describe(exc: psycopg.Error) -> str:
    """One line: libpq's messages span lines and may end with a hint."""
    return " ".join(str(exc).split()) or type(exc).__name__
