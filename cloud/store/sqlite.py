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
import hmac
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from ldt.cloud.errors import GatewayExistsError, OwnershipError, StoreError
from ldt.cloud.ngsild import order_by
from ldt.cloud.ngsild.device_model import apply_update, summarize
from ldt.cloud.ngsild.entity_query import LOCATION_NAMES, EntityQuery
from ldt.cloud.ngsild.geo import search_bbox
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.temporal import AttrInstance, history_of
from ldt.cloud.ngsild.timestamps import parse_iso_ms
from ldt.cloud.store import (
    control_sql,
    entity_search,
    pki_sql,
    registration_sql,
    sqlite_geo,
    sqlite_temporal,
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
from ldt.cloud.store.database import SqliteDatabase
from ldt.cloud.store.purge_sql import Purge
from ldt.contract import IngestBatch

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
CREATE TABLE IF NOT EXISTS readings (
    gateway_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entity_id TEXT NOT NULL,
    attr TEXT NOT NULL,
    observed_at_ms INTEGER NOT NULL,
    value TEXT,              -- JSON, NULL for a reading without value
    quality TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (gateway_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_by_attr ON readings (entity_id, attr, observed_at_ms);
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
CREATE TABLE IF NOT EXISTS subscription_generation (  -- Store.subscriptions_generation
    one INTEGER PRIMARY KEY CHECK (one = 1),
    n INTEGER NOT NULL
);
INSERT OR IGNORE INTO subscription_generation (one, n) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS subscription_slots (  -- Store.claim_notification_slot
    id TEXT PRIMARY KEY,
    due_ms INTEGER NOT NULL
);
"""

_INSERT_READING = (
    "INSERT OR IGNORE INTO readings"
    " (gateway_id, seq, entity_id, attr, observed_at_ms, value, quality, reason)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
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
        self._geo_indexed = False
        self._sqlite = SqliteDatabase(
            path=path,
            connect=self._connect_indexed,
            timeout_s=timeout_s,
            synchronous=synchronous,
        )
        super().__init__(self._sqlite)
        self._path = path
        self._synchronous: Literal["FULL", "NORMAL"] = synchronous
        self._writes: Coalescer[tuple[str, EntityChange], WriteOutcome | NgsiLdError] = Coalescer(
            self._write_now, max_items=_GROUP_COMMIT_ITEMS
        )

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

    async def open(self) -> None:
        """Open the file (the writer's thread creates or migrates the schema)."""
        await self.db.open()

    def _connect_indexed(self) -> sqlite3.Connection:
        """Open the file and install the location index's triggers (store thread)."""
        con = connect(self._path, synchronous=self._synchronous)
        try:
            self._geo_indexed = sqlite_geo.install(con)
        except sqlite3.Error as exc:
            con.close()
            raise StoreError(f"cannot set up the location index of {self._path}: {exc}") from exc
        return con

    async def close(self) -> None:
        """Finish coalesced writes, then close the connections and stop the threads."""
        await self._writes.drain()
        await self.db.close()

    # gateways -------------------------------------------------------------
    async def add_gateway(self, gateway_id: str, token_sha256: bytes, *, rotate: bool) -> None:
        """See ``Store.add_gateway``."""
        await self._run(lambda con: add_gateway_sync(con, gateway_id, token_sha256, rotate=rotate))

    async def gateways(self) -> list[GatewayRecord]:
        """See ``Store.gateways``."""
        return await self._run(list_gateways_sync)

    async def gateway_for_token(self, token_sha256: bytes) -> str | None:
        """See ``Store.gateway_for_token``."""

        def find(con: sqlite3.Connection) -> str | None:
            row = con.execute(
                "SELECT id, token_sha256 FROM gateways WHERE token_sha256 = ?", (token_sha256,)
            ).fetchone()
            if row is None or not hmac.compare_digest(bytes(row[1]), token_sha256):
                return None
            return str(row[0])

        return await self._run(find)

    async def pki_query(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """See ``Store.pki_query``."""
        text = pki_sql.sql(statement, postgres=False)

        def run(con: sqlite3.Connection) -> list[tuple[Any, ...]]:
            with _transaction(con):
                return [tuple(r) for r in con.execute(text, tuple(params)).fetchall()]

        return await self._run(run)

    # ingest ---------------------------------------------------------------
    async def ingest(self, gateway_id: str, batch: IngestBatch) -> IngestResult:
        """See ``Store.ingest``."""
        return await self._run(lambda con: _ingest(con, gateway_id, batch))

    async def reading_count(self, gateway_id: str) -> int:
        """See ``Store.reading_count``."""
        return await self._run(
            lambda con: int(
                con.execute(
                    "SELECT count(*) FROM readings WHERE gateway_id = ?", (gateway_id,)
                ).fetchone()[0]
            )
        )

    async def seqs(self, gateway_id: str) -> list[int]:
        """See ``Store.seqs``."""
        return await self._run(
            lambda con: [
                int(r[0])
                for r in con.execute(
                    "SELECT seq FROM readings WHERE gateway_id = ? ORDER BY seq", (gateway_id,)
                )
            ]
        )

    async def history(self, entity_id: str, attr: str) -> list[HistoryRow]:
        """See ``Store.history``."""

        def read(con: sqlite3.Connection) -> list[HistoryRow]:
            rows = con.execute(
                "SELECT gateway_id, seq, observed_at_ms, value, quality, reason FROM readings"
                " WHERE entity_id = ? AND attr = ? ORDER BY observed_at_ms, seq",
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
                for gw, seq, ts, value, quality, reason in rows
            ]

        return await self._run(read)

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

    async def upsert_entities(self, entities: Sequence[Entity], *, replace: bool) -> list[bool]:
        """See ``Store.upsert_entities``."""
        return await self._run(lambda con: _upsert(con, entities, replace=replace))

    async def write_entities(
        self, changes: Sequence[tuple[str, EntityChange]]
    ) -> list[WriteOutcome | NgsiLdError]:
        """See ``Store.write_entities``: one ``BEGIN IMMEDIATE`` transaction.

        Calls that arrive while a write runs share the next transaction (``Coalescer``:
        group commit, one fsync for many single-entity writes).
        """
        return await self._writes.submit(changes)

    async def _write_now(
        self, changes: list[tuple[str, EntityChange]]
    ) -> list[WriteOutcome | NgsiLdError]:
        return await self._run(lambda con: _write_entities(con, changes))

    async def search_entities(
        self, query: EntityQuery, *, limit: int, offset: int, count: bool = True
    ) -> tuple[list[Entity], int | None]:
        """See ``Store.search_entities``; a ``location`` geo-query uses the R*Tree."""
        geo_clause: tuple[str, list[float]] | None = None
        if (
            query.geo is not None
            and self._geo_indexed
            and set(query.geo_names) <= set(LOCATION_NAMES)
        ):
            boxes = search_bbox(query.geo)
            if boxes is not None:
                geo_clause = sqlite_geo.search_clause(boxes)

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

    # subscriptions --------------------------------------------------------
    async def create_subscription(self, doc: dict[str, Any]) -> bool:
        """See ``Store.create_subscription``."""
        text = orjson.dumps(doc).decode()

        def insert(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                cur = con.execute(
                    "INSERT INTO subscriptions (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                    (doc["id"], text),
                )
                return _subscription_changed(con, doc["id"], cur.rowcount == 1)

        return await self._run(insert)

    async def replace_subscription(self, doc: dict[str, Any]) -> bool:
        """See ``Store.replace_subscription``."""
        text = orjson.dumps(doc).decode()

        def update(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                cur = con.execute(
                    "UPDATE subscriptions SET doc = ? WHERE id = ?", (text, doc["id"])
                )
                return _subscription_changed(con, doc["id"], cur.rowcount == 1)

        return await self._run(update)

    async def delete_subscription(self, sub_id: str) -> bool:
        """See ``Store.delete_subscription``."""

        def delete(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                cur = con.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
                return _subscription_changed(con, sub_id, cur.rowcount == 1)

        return await self._run(delete)

    async def get_subscription(self, sub_id: str) -> SubscriptionRecord | None:
        """See ``Store.get_subscription``."""

        def read(con: sqlite3.Connection) -> SubscriptionRecord | None:
            row = con.execute(f"{_SELECT_SUBSCRIPTION} WHERE id = ?", (sub_id,)).fetchone()
            return None if row is None else _subscription(row)

        return await self._run(read)

    async def list_subscriptions(
        self, *, limit: int | None = None, offset: int = 0
    ) -> tuple[list[SubscriptionRecord], int]:
        """See ``Store.list_subscriptions``."""

        def read(con: sqlite3.Connection) -> tuple[list[SubscriptionRecord], int]:
            total = int(con.execute("SELECT count(*) FROM subscriptions").fetchone()[0])
            rows = con.execute(
                f"{_SELECT_SUBSCRIPTION} ORDER BY id LIMIT ? OFFSET ?",
                (-1 if limit is None else limit, offset),
            )
            return [_subscription(r) for r in rows], total

        return await self._run(read)

    async def record_notifications(self, counts: Sequence[NotificationCounts]) -> None:
        """See ``Store.record_notifications``: one UPDATE over a JSON array of the counts."""
        if not counts:
            return
        rows = orjson.dumps(
            [
                [c.sub_id, c.sent, c.failed, c.last_notification, c.last_success, c.last_failure]
                for c in counts
            ]
        ).decode()
        await self._run(lambda con: con.execute(_RECORD_NOTIFICATIONS, (rows,)))

    async def subscriptions_generation(self) -> int:
        """See ``Store.subscriptions_generation``."""
        return await self._run(
            lambda con: int(con.execute("SELECT n FROM subscription_generation").fetchone()[0])
        )

    async def claim_notification_slot(
        self, sub_id: str, *, now_ms: int, period_ms: int
    ) -> tuple[bool, int]:
        """See ``Store.claim_notification_slot``."""

        def claim(con: sqlite3.Connection) -> tuple[bool, int]:
            with _transaction(con):  # BEGIN IMMEDIATE: the read and the write are one step
                row = con.execute(
                    "SELECT due_ms FROM subscription_slots WHERE id = ?", (sub_id,)
                ).fetchone()
                if row is not None and int(row[0]) > now_ms:
                    return False, int(row[0])
                due = now_ms + period_ms
                con.execute(
                    "INSERT INTO subscription_slots (id, due_ms) VALUES (?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET due_ms = excluded.due_ms",
                    (sub_id, due),
                )
                return True, due

        return await self._run(claim)

    # context source registrations -------------------------------------------
    async def put_registration(self, doc: dict[str, Any], *, create: bool) -> bool:
        """See ``Store.put_registration``."""
        text = orjson.dumps(doc).decode()
        if create:
            sql, params = registration_sql.sql("create", postgres=False), (doc["id"], text)
        else:
            sql, params = registration_sql.sql("replace", postgres=False), (text, doc["id"])

        def write(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                return con.execute(sql, params).rowcount == 1

        return await self._run(write)

    async def delete_registration(self, reg_id: str) -> bool:
        """See ``Store.delete_registration``."""

        def write(con: sqlite3.Connection) -> bool:
            with _transaction(con):
                sql = registration_sql.sql("delete", postgres=False)
                return con.execute(sql, (reg_id,)).rowcount == 1

        return await self._run(write)

    async def get_registration(self, reg_id: str) -> dict[str, Any] | None:
        """See ``Store.get_registration``."""
        sql = registration_sql.sql("get", postgres=False)
        row = await self._run(lambda con: con.execute(sql, (reg_id,)).fetchone())
        return None if row is None else _load(row[0])

    async def list_registrations(self) -> list[dict[str, Any]]:
        """See ``Store.list_registrations``."""
        sql = registration_sql.sql("list", postgres=False)
        rows = await self._run(lambda con: con.execute(sql).fetchall())
        return [_load(r[0]) for r in rows]


_SELECT_SUBSCRIPTION = (
    "SELECT doc, times_sent, times_failed, last_notification, last_success, last_failure"
    " FROM subscriptions"
)
# Store.record_notifications: add the counts and keep the later of each time (ISO strings).
# Rows of one id are summed first (UPDATE .. FROM applies one source row per target row);
# SQLite's two-argument max() is NULL when either side is, hence the coalesce() pairs.
_RECORD_NOTIFICATIONS = (
    "UPDATE subscriptions SET times_sent = times_sent + u.sent,"
    " times_failed = times_failed + u.failed,"
    " last_notification ="
    " max(coalesce(last_notification, u.ln), coalesce(u.ln, last_notification)),"
    " last_success = max(coalesce(last_success, u.ls), coalesce(u.ls, last_success)),"
    " last_failure = max(coalesce(last_failure, u.lf), coalesce(u.lf, last_failure))"
    " FROM (SELECT value ->> 0 AS id, sum(value ->> 1) AS sent, sum(value ->> 2) AS failed,"
    " max(value ->> 3) AS ln, max(value ->> 4) AS ls, max(value ->> 5) AS lf"
    " FROM json_each(?) GROUP BY 1) AS u"
    " WHERE subscriptions.id = u.id"
)


def _subscription_changed(con: sqlite3.Connection, sub_id: str, changed: bool) -> bool:
    """After a subscription write (in its transaction): move the generation, free its slot."""
    if changed:
        con.execute("UPDATE subscription_generation SET n = n + 1")
        con.execute("DELETE FROM subscription_slots WHERE id = ?", (sub_id,))
    return changed


def _subscription(row: Sequence[Any]) -> SubscriptionRecord:
    return SubscriptionRecord(
        doc=_load(row[0]),
        times_sent=int(row[1]),
        times_failed=int(row[2]),
        last_notification=row[3],
        last_success=row[4],
        last_failure=row[5],
    )


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


def add_gateway_sync(
    con: sqlite3.Connection, gateway_id: str, token_sha256: bytes, *, rotate: bool
) -> None:
    """Register or re-key a gateway on an open connection (the CLI uses this directly)."""
    with _transaction(con):
        exists = con.execute("SELECT 1 FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
        if exists and not rotate:
            raise GatewayExistsError(f"gateway {gateway_id} already exists")
        if exists:
            con.execute(
                "UPDATE gateways SET token_sha256 = ? WHERE id = ?", (token_sha256, gateway_id)
            )
        else:
            con.execute(
                "INSERT INTO gateways (id, token_sha256, created_at) VALUES (?, ?, ?)",
                (gateway_id, token_sha256, _now()),
            )


def list_gateways_sync(con: sqlite3.Connection) -> list[GatewayRecord]:
    """All gateways by id, on an open connection."""
    return [
        GatewayRecord(id=r[0], created_at=r[1])
        for r in con.execute("SELECT id, created_at FROM gateways ORDER BY id")
    ]


def _ingest(con: sqlite3.Connection, gateway_id: str, batch: IngestBatch) -> IngestResult:
    series = {int(k): (v.entity_id, v.attr) for k, v in batch.series.items()}
    dumps = orjson.dumps
    rows = [
        (
            gateway_id,
            seq,
            *series[sid],
            ts,
            None if value is None else dumps(value).decode(),
            quality,
            reason,
        )
        for seq, sid, ts, value, quality, reason in batch.readings
    ]
    updates = summarize(batch)
    now = _now()
    with _transaction(con):
        current: dict[str, tuple[str | None, Entity]] = {}
        if updates:
            ids = list(updates)
            marks = ",".join("?" * len(ids))
            for eid, owner, doc in con.execute(
                f"SELECT id, gateway_id, doc FROM entities WHERE id IN ({marks})",  # noqa: S608
                ids,
            ):
                if owner is not None and owner != gateway_id:
                    raise OwnershipError(eid, owner)
                current[eid] = (owner, _load(doc))
        cur = con.executemany(_INSERT_READING, rows)
        inserted = max(cur.rowcount, 0)
        writes = []
        changed: list[tuple[str, Entity | None, Entity | None]] = []
        for eid, upd in updates.items():
            before = current.get(eid)
            doc = apply_update(None if before is None else before[1], eid, upd)
            if before is not None and doc == before[1]:
                continue
            writes.append((eid, doc["type"], orjson.dumps(doc).decode(), gateway_id, now, now))
            changed.append((eid, None if before is None else before[1], doc))
        if writes:
            con.executemany(_UPSERT_ENTITY, writes)
            _record_history(con, changed, now)
    return IngestResult(
        accepted=inserted,
        duplicates=len(rows) - inserted,
        max_seq=max((r[1] for r in rows), default=0),
    )


def _upsert(con: sqlite3.Connection, entities: Sequence[Entity], *, replace: bool) -> list[bool]:
    now = _now()
    created: list[bool] = []
    with _transaction(con):
        for entity in entities:
            eid = entity["id"]
            row = con.execute(
                "SELECT gateway_id, doc FROM entities WHERE id = ?", (eid,)
            ).fetchone()
            owner: Any = None
            doc: Entity = dict(entity)
            if row is not None:
                owner = row[0]
                if not replace:
                    doc = {**_load(row[1]), **entity}
            con.execute(
                _UPSERT_ENTITY, (eid, doc["type"], orjson.dumps(doc).decode(), owner, now, now)
            )
            created.append(row is None)
    return created


_WRITE_ENTITY = (
    "INSERT INTO entities (id, type, doc, gateway_id, created_at, modified_at)"
    " VALUES (?, ?, ?, NULL, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET type = excluded.type, doc = excluded.doc,"
    " modified_at = excluded.modified_at"
)
_ID_CHUNK = 500  # ids per "IN (...)": well under SQLite's 32,766 parameters
_ANY_MULTI_TYPED = (  # answered from the partial index entities_multi_typed (sqlite_geo.install)
    "SELECT 1 FROM entities WHERE json_type(doc, '$.type') = 'array' LIMIT 1"
)


def _main_type(doc: Entity) -> str:
    etype = doc["type"]
    return str(etype[0] if isinstance(etype, list) else etype)


def _write_entities(
    con: sqlite3.Connection, changes: Sequence[tuple[str, EntityChange]]
) -> list[WriteOutcome | NgsiLdError]:
    ids = list(dict.fromkeys(eid for eid, _ in changes))
    now = _now()
    with _transaction(con):
        before: dict[str, Entity | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            rows = con.execute(
                f"SELECT id, doc FROM entities WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608
                chunk,
            )
            for eid, doc in rows:
                before[eid] = _load(doc)
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
        writes, deletes = [], []
        for eid in ids:
            new = current[eid]
            if new is before[eid]:
                continue
            if new is None:
                deletes.append((eid,))
            else:
                created = str(new.get("createdAt", now))
                modified = str(new.get("modifiedAt", now))
                writes.append((eid, _main_type(new), orjson.dumps(new).decode(), created, modified))
        if deletes:
            con.executemany("DELETE FROM entities WHERE id = ?", deletes)
        if writes:
            con.executemany(_WRITE_ENTITY, writes)
        if writes or deletes:  # deletions leave records in the history too
            _record_history(con, [(eid, before[eid], current[eid]) for eid in ids], now)
    return results


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
            after.update((eid, _load(text)) for eid, text in con.execute(sql, params))
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


def _outcome(old: Entity | None, new: Entity | None) -> WriteOutcome:
    if old is None:
        return "unchanged" if new is None else "created"
    if new is None:
        return "deleted"
    return "unchanged" if new is old or new == old else "updated"
