"""SQL of the ``csource_registrations`` table, for SQLite (``?``) and PostgreSQL (``%s``).

One row per context source registration: its id and the document
``ldt.cloud.ngsild.registrations.validate`` made. Queries filter in Python
(``registrations.matches``): registrations are few, and their selectors
(idPattern, arrays of types) do not index well.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PG_SCHEMA", "SQLITE_SCHEMA", "sql"]

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

_SQL: Final = {
    "create": "INSERT INTO csource_registrations (id, doc) VALUES ({p}, {p}{j})"
    " ON CONFLICT (id) DO NOTHING",
    "replace": "UPDATE csource_registrations SET doc = {p}{j} WHERE id = {p}",
    "delete": "DELETE FROM csource_registrations WHERE id = {p}",
    "get": "SELECT doc{t} FROM csource_registrations WHERE id = {p}",
    "list": "SELECT doc{t} FROM csource_registrations ORDER BY id",
}


def sql(statement: str, *, postgres: bool) -> str:
    """One statement in a dialect: create/replace take (id, doc) and (doc, id) as text."""
    if postgres:
        return _SQL[statement].format(p="%s", j="::jsonb", t="::text")
    return _SQL[statement].format(p="?", j="", t="")
