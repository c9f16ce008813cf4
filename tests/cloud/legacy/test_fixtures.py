"""The legacy-store fixtures are there, small, and hold what their manifest says.

Read with plain SQL, not through the store: these checks must keep passing after the
layout changes (the fixtures never do). The migration test itself comes with the new layout.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import psycopg

from tests.cloud.legacy import fixtures
from tests.pg import PostgresServer

_READINGS = (
    "SELECT gateway_id, seq, observed_at_ms, value, quality, reason FROM readings"
    " WHERE entity_id = {p} AND attr = {p} ORDER BY observed_at_ms, seq"
)
_INSTANCES = (
    "SELECT entity_id, attr, count(*), count(deleted_at_ms) FROM attr_instances"
    " GROUP BY entity_id, attr ORDER BY entity_id, attr"
)


def _instances(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [
        {"entity_id": r[0], "attr": r[1], "instances": int(r[2]), "deletion_records": int(r[3])}
        for r in sorted(rows)  # in Python: the server's collation may differ
    ]


def test_the_fixtures_are_there_and_small() -> None:
    files = [fixtures.SQLITE_DB, fixtures.PG_DUMP, fixtures.MANIFEST]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) < 1 << 20
    manifest = fixtures.load_manifest()
    assert manifest["files"]["postgresql_schema"] == fixtures.PG_SCHEMA
    assert manifest["readings_total"] == sum(len(r["readings"]) for r in manifest["readings"])


def test_the_sqlite_file_holds_what_the_manifest_says() -> None:
    manifest = fixtures.load_manifest()
    assert fixtures.sqlite_counts(fixtures.SQLITE_DB) == manifest["tables"]["sqlite"]
    con = sqlite3.connect(f"file:{fixtures.SQLITE_DB}?mode=ro", uri=True)
    try:
        for series in manifest["readings"]:
            rows = con.execute(
                _READINGS.format(p="?"), (series["entity_id"], series["attr"])
            ).fetchall()
            got = [[*r[:3], None if r[3] is None else orjson.loads(r[3]), *r[4:]] for r in rows]
            assert got == series["readings"], (series["entity_id"], series["attr"])
        ids = sorted(r[0] for r in con.execute("SELECT id FROM entities"))
        assert ids == sorted(manifest["entities"])
        assert _instances(con.execute(_INSTANCES).fetchall()) == manifest["attr_instances"]
    finally:
        con.close()


def test_the_postgresql_dump_restores_to_what_the_manifest_says(
    postgres_server: PostgresServer,
) -> None:
    manifest = fixtures.load_manifest()
    dbname = postgres_server.create_database()
    try:
        dsn = fixtures.restore_postgres(postgres_server, dbname, schema="legacy_check")
        counts = fixtures.postgres_counts(postgres_server.dsn(dbname), "legacy_check")
        assert counts == manifest["tables"]["postgresql"]
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as con:
            for series in manifest["readings"]:
                cur = con.execute(_READINGS.format(p="%s"), (series["entity_id"], series["attr"]))
                assert [list(r) for r in cur.fetchall()] == series["readings"]
            ids = sorted(r[0] for r in con.execute("SELECT id FROM entities"))
            assert ids == sorted(manifest["entities"])
            assert _instances(con.execute(_INSTANCES).fetchall()) == manifest["attr_instances"]
    finally:
        postgres_server.drop_database(dbname)
