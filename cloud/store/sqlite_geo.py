"""Keeps the SQLite R*Tree of entity locations in step with the ``entities`` table, by triggers.

Why triggers: every path that writes an entity (ingest, upserts, the NGSI-LD write routes,
deletes) then updates the index in the same statement, hence the same transaction, without
each path having to remember it. The triggers are TEMP (per connection, never stored in the
file) and call a Python function registered on the connection, so another program opening
the file (the sqlite3 shell, ``ldt cloud gateway``) neither needs nor breaks them; it must not
write entities, or the index misses its writes until the next ``install`` rebuilds an empty one.

The box is the union of the entity's ``location`` geometries (short or expanded name; several
instances allowed); an entity without a valid one is not indexed and matches no
``location`` geo-query. Other geoproperties are not indexed: those queries scan.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import orjson

from ldt.cloud.ngsild.geo import BBox
from ldt.cloud.store.geo_index import GeoIndex, GeoIndexError
from ldt.cloud.store.locations import location_bbox

__all__ = ["GEO_TABLE", "install", "location_box", "search_clause"]

GEO_TABLE: Final = "geo_location"
_FUNCTION: Final = "ldt_location_box"
# literal SQL (no request input anywhere); the box is JSON [minx, maxx, miny, maxy]. The
# LIMIT keeps SQLite from flattening the subquery, which would call the (Python) function
# once for the WHERE and again for the columns: twice the cost of every entity write.
_PUT_NEW: Final = (
    "INSERT OR REPLACE INTO geo_location (id, minx, maxx, miny, maxy)"
    " SELECT new.rowid, json_extract(b, '$[0]'), json_extract(b, '$[1]'),"
    " json_extract(b, '$[2]'), json_extract(b, '$[3]')"
    " FROM (SELECT ldt_location_box(new.doc) AS b LIMIT 1) WHERE b IS NOT NULL;"
)
_TRIGGERS: Final = (
    "CREATE TEMP TRIGGER IF NOT EXISTS ldt_geo_insert AFTER INSERT ON main.entities BEGIN"  # noqa: S608
    " DELETE FROM geo_location WHERE id = new.rowid; " + _PUT_NEW + " END;"
    "CREATE TEMP TRIGGER IF NOT EXISTS ldt_geo_update AFTER UPDATE ON main.entities BEGIN"
    " DELETE FROM geo_location WHERE id = old.rowid; " + _PUT_NEW + " END;"
    "CREATE TEMP TRIGGER IF NOT EXISTS ldt_geo_delete AFTER DELETE ON main.entities BEGIN"
    " DELETE FROM geo_location WHERE id = old.rowid; END;"
)
_REBUILD: Final = (
    "INSERT OR REPLACE INTO geo_location (id, minx, maxx, miny, maxy)"
    " SELECT rid, json_extract(b, '$[0]'), json_extract(b, '$[1]'),"
    " json_extract(b, '$[2]'), json_extract(b, '$[3]')"
    " FROM (SELECT rowid AS rid, ldt_location_box(doc) AS b FROM entities) WHERE b IS NOT NULL"
)
_MULTI_TYPED: Final = (  # type queries find entities with several types through it
    "CREATE INDEX IF NOT EXISTS entities_multi_typed ON entities (id)"
    " WHERE json_type(doc, '$.type') = 'array'"
)
_SEARCH: Final = (
    "rowid IN (SELECT id FROM geo_location"
    " WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)"
)


def location_box(doc: str | bytes | None) -> str | None:
    """``[minx, maxx, miny, maxy]`` (JSON) of a stored document's locations, or None.

    Runs inside SQLite for each written entity: it never raises (a document that is not
    JSON or has no valid location is simply not indexed).
    """
    if doc is None:
        return None
    raw = doc.encode() if isinstance(doc, str) else doc
    if b"location" not in raw:
        return None
    try:
        entity = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entity, dict):
        return None
    box = location_bbox(entity)
    if box is None:
        return None
    return orjson.dumps([box.min_lon, box.max_lon, box.min_lat, box.max_lat]).decode()


def install(con: sqlite3.Connection) -> bool:
    """Create the indexes and this connection's triggers; rebuild the R*Tree if it is empty.

    Returns False (geo-queries then scan) if this SQLite has no R*Tree module.
    """
    con.execute(_MULTI_TYPED)
    try:
        GeoIndex(table=GEO_TABLE).create(con)
    except GeoIndexError:
        return False
    con.create_function(_FUNCTION, 1, location_box, deterministic=True)
    con.executescript(_TRIGGERS)
    empty = con.execute("SELECT 1 FROM geo_location LIMIT 1").fetchone() is None
    if empty and con.execute("SELECT 1 FROM entities LIMIT 1").fetchone() is not None:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(_REBUILD)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    return True


def search_clause(boxes: tuple[BBox, ...]) -> tuple[str, list[float]]:
    """A ``WHERE`` fragment over the entities' ``rowid``: its box meets one of ``boxes``."""
    parts = []
    params: list[float] = []
    for box in boxes:
        parts.append(_SEARCH)
        params.extend((box.max_lon, box.min_lon, box.max_lat, box.min_lat))
    return "(" + " OR ".join(parts) + ")", params
