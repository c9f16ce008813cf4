"""The embedded store: one SQLite file in WAL mode (``database.SqliteDatabase``).

This module only opens the file: pragmas and the tables as they were up to schema
version 11 (idempotent ``CREATE .. IF NOT EXISTS``); later steps are ``schema``'s, written
once for both engines, and every repository is written once over ``Database``.

Durability: ``synchronous=FULL`` by default, so an acknowledged batch survives
a power cut. ``NORMAL`` in WAL mode survives a crash of the process but may
lose the last commits on power loss; those readings were already acked, and
the gateway has pruned them, so they would be gone for good. FULL still meets
the sync throughput target (docs/smart-data-models.md, "Durability").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from ldt.cloud.errors import StoreError
from ldt.cloud.store import (
    control_sql,
    pki_sql,
    registration_sql,
    sqlite_temporal,
)
from ldt.cloud.store.base import (
    Store,
)
from ldt.cloud.store.database import SqliteDatabase
from ldt.private_files import create_private

__all__ = ["DB_FILENAME", "SqliteStore", "connect"]

DB_FILENAME = "cloud.db"

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


def connect(path: Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> sqlite3.Connection:
    """Open (creating) the database file with the schema, WAL and the given sync policy.

    Used by the store's thread and by ``ldt.cloud.gateways`` for CLI work.
    Raises ``StoreError``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private(path)  # 0600: SQLite gives its WAL and journal files the same mode
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
            connect=self._connect,
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

    def _connect(self) -> sqlite3.Connection:
        """Open the file with the tables up to schema 11 (on the writer's thread)."""
        return connect(self._path, synchronous=self._synchronous)
