"""An SQLite R*Tree over entities' GeoProperty boxes: the prefilter of geo-queries.

Each row is one entity's longitude/latitude box (``ldt.cloud.ngsild.geo.bbox``)
keyed by the entity's rowid. A query asks for the rowids whose box meets the
query's ``search_bbox``, then tests only those exactly (``geo.matches``).

Transactions: every method takes the caller's ``sqlite3.Connection`` and only
executes statements: it never begins, commits or rolls back. The store calls
it inside the same ``BEGIN IMMEDIATE ... COMMIT`` as the entity write, so the
index never disagrees with the entities after a crash or a rollback.

Rowids: the entity table's rowid must be stable. A table whose rowid is not
an ``INTEGER PRIMARY KEY`` alias may renumber rows on ``VACUUM``; give the
entity table one, or rebuild the index after a vacuum.

Precision: the R*Tree keeps 32-bit floats and rounds each box outwards
(lower bounds down, upper bounds up), so a stored box always contains the
true one and the prefilter never loses a match; it may return a few extra
candidates within about 1e-5 degrees (1 m), which the exact test removes.
One box per rowid: an entity with several geometries (multi-instance
attributes) stores their union (``geo.bboxes_union``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.geo import BBox, GeometryError, bbox, validate_geometry

__all__ = ["GeoIndex", "GeoIndexError", "rtree_available"]

_TABLE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class GeoIndexError(StoreError):
    """The geo index cannot be created or used (no R*Tree in this SQLite, a bad name, I/O)."""


def rtree_available(con: sqlite3.Connection) -> bool:
    """Whether this connection's SQLite has the R*Tree module compiled in.

    Probes by creating (and dropping) a TEMP virtual table, the only test
    that works on every build (``PRAGMA compile_options`` omits modules that
    are on by default, ``pragma_module_list`` is not always compiled in).
    """
    try:
        con.execute("CREATE VIRTUAL TABLE temp._ldt_rtree_probe USING rtree(id, x0, x1)")
    except sqlite3.OperationalError as exc:
        if "no such module" in str(exc):
            return False
        raise
    con.execute("DROP TABLE temp._ldt_rtree_probe")
    return True


class GeoIndex:
    """One R*Tree virtual table ``table(id, minx, maxx, miny, maxy)``; x is longitude.

    Construction does no I/O; call ``create`` once per connection (idempotent)
    before the other methods. Every method raises ``GeoIndexError``.
    """

    def __init__(self, *, table: str = "geo_location") -> None:
        if not _TABLE_NAME.match(table):
            raise GeoIndexError(
                f"geo index table name {table!r} must be a plain SQL identifier"
                " (letters, digits, underscores; 63 characters at most)"
            )
        self._table = table
        # The name is a checked identifier set by our code, never request input.
        cols = "(id, minx, maxx, miny, maxy)"
        self._sql_create = f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING rtree{cols}"
        self._sql_put = f"INSERT OR REPLACE INTO {table} {cols} VALUES (?, ?, ?, ?, ?)"  # noqa: S608
        self._sql_delete = f"DELETE FROM {table} WHERE id = ?"  # noqa: S608
        self._sql_clear = f"DELETE FROM {table}"  # noqa: S608
        self._sql_search = (
            f"SELECT id FROM {table} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?"  # noqa: S608
        )
        self._sql_box = f"SELECT minx, miny, maxx, maxy FROM {table} WHERE id = ?"  # noqa: S608
        self._sql_count = f"SELECT count(*) FROM {table}"  # noqa: S608

    @property
    def table(self) -> str:
        """The virtual table's name."""
        return self._table

    def create(self, con: sqlite3.Connection) -> None:
        """Create the table if missing. Raises ``GeoIndexError`` if SQLite has no R*Tree."""
        try:
            if not rtree_available(con):
                raise GeoIndexError(
                    f"this Python's SQLite {sqlite3.sqlite_version} was built without the"
                    " R*Tree module, which geo-queries need: use a Python whose sqlite3 has"
                    " SQLITE_ENABLE_RTREE (python.org, Debian and Ubuntu builds do)"
                )
            con.execute(self._sql_create)
        except sqlite3.Error as exc:
            raise GeoIndexError(f"cannot create the geo index {self._table}: {exc}") from exc

    def put(self, con: sqlite3.Connection, rowid: int, box: BBox) -> None:
        """Insert or replace the box of entity ``rowid``."""
        self._execute(
            con, self._sql_put, (rowid, box.min_lon, box.max_lon, box.min_lat, box.max_lat)
        )

    def put_geometry(self, con: sqlite3.Connection, rowid: int, geometry: object) -> bool:
        """Index entity ``rowid`` by a GeoJSON geometry; drop its row if ``geometry`` is None.

        Returns whether the entity is indexed. A value that is not a valid
        geometry is not indexed (it can match no geo-query) and its old row,
        if any, is removed, so the index never points at a stale location.
        """
        if geometry is None:
            self.delete(con, rowid)
            return False
        try:
            valid: Mapping[str, Any] = validate_geometry(geometry)
        except GeometryError:
            self.delete(con, rowid)
            return False
        self.put(con, rowid, bbox(valid))
        return True

    def put_many(self, con: sqlite3.Connection, rows: Iterable[tuple[int, BBox]]) -> None:
        """Insert or replace many boxes in one ``executemany`` (bulk upserts, rebuilds)."""
        self._executemany(
            con,
            self._sql_put,
            ((r, b.min_lon, b.max_lon, b.min_lat, b.max_lat) for r, b in rows),
        )

    def delete(self, con: sqlite3.Connection, rowid: int) -> None:
        """Remove entity ``rowid`` (nothing happens if it is not indexed)."""
        self._execute(con, self._sql_delete, (rowid,))

    def clear(self, con: sqlite3.Connection) -> None:
        """Remove every row (before a rebuild)."""
        self._execute(con, self._sql_clear, ())

    def candidates(self, con: sqlite3.Connection, boxes: BBox | Iterable[BBox]) -> set[int]:
        """Rowids whose box meets any of ``boxes`` (edges count), e.g. ``geo.search_bbox``'s."""
        wanted = (boxes,) if isinstance(boxes, BBox) else tuple(boxes)
        found: set[int] = set()
        for box in wanted:
            rows = self._rows(
                con, self._sql_search, (box.max_lon, box.min_lon, box.max_lat, box.min_lat)
            )
            found.update(int(row[0]) for row in rows)
        return found

    def box(self, con: sqlite3.Connection, rowid: int) -> BBox | None:
        """The stored (outward-rounded) box of ``rowid``, or None."""
        rows = self._rows(con, self._sql_box, (rowid,))
        return BBox(*rows[0]) if rows else None

    def count(self, con: sqlite3.Connection) -> int:
        """How many entities are indexed."""
        return int(self._rows(con, self._sql_count, ())[0][0])

    def _execute(self, con: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> None:
        try:
            con.execute(sql, params)
        except sqlite3.Error as exc:
            raise GeoIndexError(f"geo index {self._table}: {exc}") from exc

    def _rows(
        self, con: sqlite3.Connection, sql: str, params: tuple[object, ...]
    ) -> list[tuple[Any, ...]]:
        try:
            return list(con.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise GeoIndexError(f"geo index {self._table}: {exc}") from exc

    def _executemany(
        self, con: sqlite3.Connection, sql: str, rows: Iterable[tuple[object, ...]]
    ) -> None:
        try:
            con.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise GeoIndexError(f"geo index {self._table}: {exc}") from exc
