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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

import orjson

from ldt.cloud.errors import StoreError
from ldt.cloud.store import (
    control_sql,
    pki_sql,
    registration_sql,
    sqlite_temporal,
)
from ldt.cloud.store.base import (
    Entity,
    Store,
)
from ldt.cloud.store.database import SqliteDatabase

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
