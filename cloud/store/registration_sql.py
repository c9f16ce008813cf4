"""DDL of the ``csource_registrations`` table, for SQLite and PostgreSQL.

One row per context source registration: its id and the document
``ldt.cloud.ngsild.registrations.validate`` made. The statements over it are
``ldt.cloud.store.registrations``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PG_SCHEMA", "SQLITE_SCHEMA"]

SQLITE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS csource_registrations (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL        -- ldt.cloud.ngsild.registrations.validate's document
);
"""
PG_SCHEMA: Final = """
CREATE TABLE csource_registrations (
    id text PRIMARY KEY,
    doc jsonb NOT NULL
);
"""
"""A migration of ``PostgresStore`` (context source registrations)."""
