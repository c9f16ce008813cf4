"""SQLite side of the temporal tables: their schema, and history from the sync write path.

The temporal API and every read are ``ldt.cloud.store.temporal``, written once.
What is left here is the DDL (``connect`` runs it) and ``record`` for
``SqliteStore``'s entity writes, which run synchronously on the writer's own
connection, not on a ``Tx``: they will call ``temporal.record`` once the entity
write path runs as units of work.
"""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA", "migrate"]

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


_UPSERT_HEADER = (
    "INSERT INTO temporal_entities (id, type, types, created_at_ms, modified_at_ms)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET type = excluded.type,"
    " types = excluded.types, modified_at_ms = excluded.modified_at_ms"
)
_INSERT_INSTANCE = (
    "INSERT INTO attr_instances (instance_id, entity_id, attr, dataset_id,"
    " observed_at_ms, created_at_ms, modified_at_ms, doc, deleted_at_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO NOTHING"
)
