"""The embedded store: one SQLite file in WAL mode, one connection on one writer thread.

Why one thread: SQLite allows one writer at a time anyway, and a single
connection keeps transactions simple and correct (an ingest batch is one
``BEGIN IMMEDIATE ... COMMIT``). Reads go through the same thread; they are
short.

Durability: ``synchronous=FULL`` by default, so an acknowledged batch survives
a power cut. ``NORMAL`` in WAL mode survives a crash of the process but may
lose the last commits on power loss; those readings were already acked, and
the gateway has pruned them, so they would be gone for good. FULL still meets
the sync throughput target (docs/smart-data-models.md, "Durability").
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild import order_by
from ldt.cloud.ngsild.entity_query import LOCATION_NAMES, EntityQuery
from ldt.cloud.ngsild.geo import search_bbox
from ldt.cloud.ngsild.temporal import AttrInstance, Window, history_of
from ldt.cloud.ngsild.temporal_page import Render, TemporalPage
from ldt.cloud.ngsild.timestamps import parse_iso_ms
from ldt.cloud.store import (
    control_sql,
    entity_search,
    geo_cells,
    pki_sql,
    registration_sql,
    sqlite_temporal,
    temporal_read,
)
from ldt.cloud.store.base import (
    Entity,
    Store,
    TypeAttributeCount,
)
from ldt.cloud.store.database import SqliteDatabase
from ldt.cloud.store.dialect import SQLITE
from ldt.cloud.store.geo_cells import columns
from ldt.cloud.store.purge_sql import Purge

__all__ = ["DB_FILENAME", "SqliteStore", "connect"]

DB_FILENAME = "cloud.db"

_T = TypeVar("_T")
_GROUP_COMMIT_ITEMS = 2000
"""At most this many changes in one shared write transaction (a bigger batch runs alone)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    doc TEXT NOT NULL,       -- normalized NGSI-LD JSON, without @context
    gateway_id TEXT,         -- owner; NULL for entities created through the NGSI-LD API
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entities_by_type ON entities (type, id);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,       -- ldt.cloud.ngsild.subscriptions.validate's document
    times_sent INTEGER NOT NULL DEFAULT 0,
    times_failed INTEGER NOT NULL DEFAULT 0,
    last_notification TEXT,
    last_success TEXT,
    last_failure TEXT
);
CREATE TABLE IF NOT EXISTS subscription_generation (  -- subscriptions.py
    one INTEGER PRIMARY KEY CHECK (one = 1),
    n INTEGER NOT NULL
);
INSERT OR IGNORE INTO subscription_generation (one, n) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS subscription_slots (  -- notification slots (subscriptions.py)
    id TEXT PRIMARY KEY,
    due_ms INTEGER NOT NULL
);
"""

_UPSERT_ENTITY = (
    "INSERT INTO entities (id, type, doc, gateway_id, created_at, modified_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET type = excluded.type, doc = excluded.doc,"
    " gateway_id = excluded.gateway_id, modified_at = excluded.modified_at"
)


def _now() -> str:
    ms = time.time_ns() // 1_000_000
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def connect(path: Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> sqlite3.Connection:
    """Open (creating) the database file with the schema, WAL and the given sync policy.

    Used by the store's thread and by ``ldt.cloud.gateways`` for CLI work.
    Raises ``StoreError``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={synchronous}")
        con.execute("PRAGMA busy_timeout=10000")
        con.execute("PRAGMA foreign_keys=OFF")
        con.executescript(_SCHEMA)
        con.execute(
            "CREATE INDEX IF NOT EXISTS entities_multi_typed ON entities (id)"
            " WHERE json_type(doc, '$.type') = 'array'"
        )
        con.executescript(sqlite_temporal.SCHEMA)
        sqlite_temporal.migrate(con)
        con.executescript(registration_sql.SQLITE_SCHEMA)
        con.executescript(pki_sql.SQLITE_SCHEMA)
        con.executescript(control_sql.SQLITE_SCHEMA)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open the cloud database {path}: {exc}") from exc
    return con


class SqliteStore(Store):
    """``Store`` on one SQLite file. ``timeout_s`` bounds every call (queueing included)."""

    def __init__(
        self,
        *,
        path: Path,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        timeout_s: float = 30.0,
    ) -> None:
        self._sqlite = SqliteDatabase(
            path=path,
            connect=self._connect_indexed,
            timeout_s=timeout_s,
            synchronous=synchronous,
        )
        super().__init__(self._sqlite)
        self._path = path
        self._synchronous: Literal["FULL", "NORMAL"] = synchronous

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def synchronous(self) -> Literal["FULL", "NORMAL"]:
        """The sync policy (tenant databases beside this one open with the same)."""
        return self._synchronous

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        return await self._sqlite.call(fn)

    def _connect_indexed(self) -> sqlite3.Connection:
        """Open the file and install the location index's triggers (store thread)."""
        return connect(self._path, synchronous=self._synchronous)

    async def close(self) -> None:
        """Finish coalesced writes, then close the connections and stop the threads."""
        await self.drain()
        await self.db.close()

    # ingest ---------------------------------------------------------------
    # entities -------------------------------------------------------------
    async def get_entity(self, entity_id: str) -> Entity | None:
        """See ``Store.get_entity``."""

        def read(con: sqlite3.Connection) -> Entity | None:
            row = con.execute("SELECT doc FROM entities WHERE id = ?", (entity_id,)).fetchone()
            return None if row is None else _load(row[0])

        return await self._run(read)

    async def query_entities(
        self,
        *,
        types: Sequence[str] | None,
        ids: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Entity], int]:
        """See ``Store.query_entities``."""
        where: list[str] = []
        params: list[object] = []
        if types is not None:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def read(con: sqlite3.Connection) -> tuple[list[Entity], int]:
            total = int(con.execute(f"SELECT count(*) FROM entities{clause}", params).fetchone()[0])  # noqa: S608
            if limit == 0:
                return [], total
            rows = con.execute(
                f"SELECT doc FROM entities{clause} ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
                [*params, limit, offset],
            )
            return [_load(r[0]) for r in rows], total

        return await self._run(read)

    async def search_entities(
        self, query: EntityQuery, *, limit: int, offset: int, count: bool = True
    ) -> tuple[list[Entity], int | None]:
        """See ``Store.search_entities``; a ``location`` geo-query uses the R*Tree."""
        geo_clause: tuple[str, list[Any]] | None = None
        if query.geo is not None and set(query.geo_names) <= set(LOCATION_NAMES):
            boxes = search_bbox(query.geo)
            if boxes is not None:
                geo_clause = geo_cells.search_clause(SQLITE, boxes)

        def read(con: sqlite3.Connection) -> tuple[list[Entity], int | None]:
            # this thread is the only writer: the answer holds for the statements below. With
            # a geo clause the general (OR) form stays: a plain type test would make SQLite
            # walk the type index in id order instead of starting from the R*Tree's few rows
            multi = query.types is not None and (
                geo_clause is not None or bool(con.execute(_ANY_MULTI_TYPED).fetchone())
            )
            push = entity_search.where(query, dialect="sqlite", multi_typed=multi)
            clauses, params = list(push.clauses), list(push.params)
            if geo_clause is not None:
                clauses.append(geo_clause[0])
                params.extend(geo_clause[1])
            clause = (" WHERE " + " AND ".join(clauses)) if clauses else ""
            order = order_by.entity_order(query.order, dialect="sqlite")
            select = order_by.ordered_select("doc", f"entities{clause}", order)
            ordered = [*(order.params if order is not None else ()), *params]
            if push.residual:
                rows = con.execute(select, ordered)
                return entity_search.paginate(
                    rows,
                    lambda r: _load(r[0]),
                    query,
                    limit=limit,
                    offset=offset,
                    q_checked=push.q_exact,
                    count=count,
                )
            con.execute("BEGIN")  # one snapshot for the count and the page
            try:
                total: int | None = None
                if count:
                    total = int(
                        con.execute(f"SELECT count(*) FROM entities{clause}", params).fetchone()[0]  # noqa: S608
                    )
                    if limit == 0 or total <= offset:
                        return [], total
                rows = con.execute(f"{select} LIMIT ? OFFSET ?", [*ordered, limit, offset])
                return [_load(r[0]) for r in rows], total
            finally:
                con.execute("COMMIT")

        return await self._run(read)

    async def purge_entities(
        self, query: EntityQuery, purge: Purge
    ) -> list[tuple[Entity, Entity | None]]:
        """See ``Store.purge_entities``: one ``DELETE``/``UPDATE`` over a JSON array of ids."""
        return await self._run(lambda con: _purge(con, query, purge))

    async def type_attribute_counts(self) -> list[TypeAttributeCount]:
        """See ``Store.type_attribute_counts``."""
        skipped = orjson.dumps(entity_search.DISCOVERY_SKIPPED).decode()
        sql = (
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

        def read(con: sqlite3.Connection) -> list[TypeAttributeCount]:
            return [
                TypeAttributeCount(entity_type=t, attribute=a, attribute_type=k, entities=n)
                for t, a, k, n in con.execute(sql, (skipped,))
            ]

        return await self._run(read)

    # temporal ---------------------------------------------------------------
    async def add_temporal(
        self, entity_id: str, etype: Any, instances: Sequence[AttrInstance], *, now: str
    ) -> bool:
        """See ``Store.add_temporal``."""

        def write(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                created = not sqlite_temporal.exists(con, entity_id)
                sqlite_temporal.drop_same_time(con, instances)
                sqlite_temporal.record(con, {entity_id: (etype, now)}, instances)
            return created

        return await self._run(write)

    async def get_temporal(self, entity_id: str) -> Entity | None:
        """See ``Store.get_temporal``."""
        return await self._run(lambda con: sqlite_temporal.header(con, entity_id))

    async def query_temporal(
        self,
        *,
        types: Sequence[str] | None,
        ids: Sequence[str] | None,
        limit: int,
        offset: int,
        order: Sequence[order_by.OrderKey] = (),
    ) -> tuple[list[Entity], int]:
        """See ``Store.query_temporal``."""
        return await self._run(
            lambda con: sqlite_temporal.query(con, types, ids, limit, offset, order=order)
        )

    async def temporal_instances(
        self, entity_ids: Sequence[str], attrs: Sequence[str] | None, window: Window
    ) -> list[AttrInstance]:
        """See ``Store.temporal_instances``."""
        return await self._run(
            lambda con: sqlite_temporal.instances(con, entity_ids, attrs, window)
        )

    async def temporal_page(
        self,
        entity_ids: Sequence[str],
        attrs: Sequence[str] | None,
        window: Window,
        *,
        datasets: frozenset[str | None] | None,
        limit: int,
        render: Render | None = None,
    ) -> TemporalPage:
        """See ``Store.temporal_page``."""

        def read(con: sqlite3.Connection) -> TemporalPage:
            async def fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                return con.execute(sql, params).fetchall()

            page = temporal_read.read_page(
                fetch, temporal_read.SQLITE, entity_ids, attrs, window,
                datasets=datasets, limit=limit, render=render,
            )  # fmt: skip
            return temporal_read.run_sync(page)

        return await self._run(read)

    async def delete_temporal(
        self,
        entity_id: str,
        *,
        attr: str | None = None,
        dataset_id: str | None = None,
        all_datasets: bool = False,
    ) -> bool:
        """See ``Store.delete_temporal``."""

        def write(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                return sqlite_temporal.delete(con, entity_id, attr, dataset_id, all_datasets)

        return await self._run(write)

    async def delete_temporal_instance(self, entity_id: str, attr: str, instance_id: str) -> bool:
        """See ``Store.delete_temporal_instance``."""

        def write(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                return sqlite_temporal.delete_instance(con, entity_id, attr, instance_id)

        return await self._run(write)

    async def replace_temporal_instance(self, row: AttrInstance) -> bool:
        """See ``Store.replace_temporal_instance``."""

        def write(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                return sqlite_temporal.replace_instance(con, row)

        return await self._run(write)


@contextlib.contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``; any exception rolls back and propagates."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _load(doc: str | bytes) -> Entity:
    loaded: Entity = orjson.loads(doc)
    return loaded


def _main_type(doc: Entity) -> str:
    etype = doc["type"]
    return str(etype[0] if isinstance(etype, list) else etype)


_ANY_MULTI_TYPED = (  # answered from the partial index entities_multi_typed
    "SELECT 1 FROM entities WHERE json_type(doc, '$.type') = 'array' LIMIT 1"
)


def _purge(
    con: sqlite3.Connection, query: EntityQuery, purge: Purge
) -> list[tuple[Entity, Entity | None]]:
    """``SqliteStore.purge_entities`` on the store thread (one ``BEGIN IMMEDIATE``)."""
    now = _now()
    with _transaction(con):
        multi = query.types is not None and bool(con.execute(_ANY_MULTI_TYPED).fetchone())
        push = entity_search.where(query, dialect="sqlite", multi_typed=multi)
        rows = con.execute(f"SELECT id, doc FROM entities{push.sql()}", push.params)  # noqa: S608
        before: dict[str, Entity] = {}
        for eid, text in rows:
            doc = _load(text)
            matched = not push.residual or query.matches(doc, q=not push.q_exact)
            if matched and purge.changes(doc):
                before[eid] = doc
        if not before:
            return []
        ids = orjson.dumps(list(before)).decode()
        after: dict[str, Entity | None] = dict.fromkeys(before)
        if purge.whole:
            con.execute("DELETE FROM entities WHERE id IN (SELECT value FROM json_each(?))", (ids,))
        else:
            sql, params = purge.sqlite_update(list(before), now)
            after.update((eid, _load(text)) for eid, text in con.execute(sql, params).fetchall())
            con.executemany(
                geo_cells.UPDATE,
                [(*columns(doc), eid) for eid, doc in after.items() if doc is not None],
            )
        _record_history(con, [(eid, before[eid], after[eid]) for eid in before], now)
    return [(before[eid], after[eid]) for eid in before]


def _record_history(
    con: sqlite3.Connection, docs: Sequence[tuple[str, Entity | None, Entity | None]], now: str
) -> None:
    """Add what changed in each (id, old, new) to the temporal history (same transaction)."""
    now_ms = parse_iso_ms(now) or 0
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
    sqlite_temporal.record(con, headers, rows)
