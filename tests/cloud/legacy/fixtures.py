"""Where the legacy-store fixtures live, and how to read and restore them.

The fixtures (``make_fixtures.py`` wrote them; README.md says when and how) are a populated
store in the table layout from before issue 12's rewrite: ``cloud.db`` (SQLite) and
``postgres.sql`` (a plain ``pg_dump`` of one schema), with ``manifest.json`` stating what
they hold. A migration test copies them, lets today's code upgrade them, and compares with
the manifest.

Nothing here imports the store: reading the fixtures must not depend on the layout the code
of the day writes. ``restore_postgres`` needs the tests' PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from tests.pg import PostgresServer

__all__ = [
    "DIR",
    "MANIFEST",
    "PG_DUMP",
    "PG_SCHEMA",
    "SQLITE_DB",
    "copy_sqlite",
    "load_manifest",
    "postgres_counts",
    "restore_postgres",
    "sqlite_counts",
]

DIR = Path(__file__).resolve().parent
SQLITE_DB = DIR / "cloud.db"
PG_DUMP = DIR / "postgres.sql"
MANIFEST = DIR / "manifest.json"
PG_SCHEMA = "ldt_legacy"
"""The schema the dump creates (and fills); ``restore_postgres`` can rename it."""


def load_manifest() -> dict[str, Any]:
    """``manifest.json``, parsed."""
    loaded: dict[str, Any] = orjson.loads(MANIFEST.read_bytes())
    return loaded


def copy_sqlite(folder: Path) -> Path:
    """A writable copy of ``cloud.db`` in ``folder`` (a data folder: ``folder/cloud.db``)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SQLITE_DB.name
    shutil.copyfile(SQLITE_DB, target)
    return target


def sqlite_counts(path: Path) -> dict[str, int]:
    """Rows per table of an SQLite file (SQLite's own ``sqlite_*`` tables left out)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            str(r[0])
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        return {n: int(con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}
    finally:
        con.close()


def postgres_counts(dsn: str, schema: str) -> dict[str, int]:
    """Rows per table of one PostgreSQL schema."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as con:
        names = [
            str(r[0])
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
                (schema,),
            )
        ]
        counts: dict[str, int] = {}
        for name in names:
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)
            )
            row = con.execute(query).fetchone()
            counts[name] = 0 if row is None else int(row[0])
        return counts


def restore_postgres(
    server: PostgresServer, dbname: str, *, schema: str = PG_SCHEMA, dump: Path = PG_DUMP
) -> str:
    """Load the dump into database ``dbname`` with ``psql``; the URL of a store on it.

    The dump creates schema ``ldt_legacy``; with another ``schema`` it is renamed after
    loading (that schema must not exist yet). The URL's ``search_path`` is that schema, as
    ``PostgresServer.schema_dsn`` gives a test, so ``PostgresStore(dsn=url)`` opens it.
    Raises ``RuntimeError`` with psql's output if the dump does not load.
    """
    loaded = subprocess.run(
        [
            str(server.bin_dir / "psql"),
            "--no-psqlrc",
            "--quiet",
            "--set",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "--dbname",
            server.dsn(dbname),
            "--file",
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if loaded.returncode != 0:
        raise RuntimeError(f"psql could not load {dump}: {loaded.stderr.strip()}")
    if schema != PG_SCHEMA:
        with psycopg.connect(server.dsn(dbname), autocommit=True, connect_timeout=10) as con:
            con.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(PG_SCHEMA), sql.Identifier(schema)
                )
            )
    return server.schema_dsn(dbname, schema)
