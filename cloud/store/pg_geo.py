"""PostgreSQL's prefilter for ``location`` geo-queries: a ``box`` column under a GiST index.

Why not PostGIS: the exact test stays in Python (``EntityQuery.matches``, shapely) on both
stores, so the database only has to find the entities whose location box meets the query's
box (``geo.search_bbox``). PostgreSQL's built-in ``box`` type and ``&&`` operator, indexed by
GiST, do that without an extension that a managed server may not offer.

The box is ``locations.location_bbox`` of the document, the same as SQLite's R*Tree; the store
computes it in Python when it writes the row (every statement that writes ``doc`` also sets
``location_box = box(point(x0, y0), point(x1, y1))`` from ``box_params``' four arrays, NULL
when they are), so it never disagrees with the document. ``&&`` counts touching edges as
overlapping, and the column is float8: no rounding, no lost candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import orjson
import psycopg

from ldt.cloud.ngsild.entity_query import LOCATION_NAMES
from ldt.cloud.ngsild.geo import BBox
from ldt.cloud.store.locations import location_bbox

__all__ = ["MIGRATION", "backfill", "box_params", "search_clause"]

MIGRATION: Final = """
ALTER TABLE entities ADD COLUMN location_box box;
CREATE INDEX entities_by_location ON entities USING gist (location_box);
CREATE INDEX entities_multi_typed ON entities (id) WHERE jsonb_typeof(doc->'type') = 'array';
"""
"""Schema 4: the location box and its index; the partial index that finds multi-typed entities
(``entity_search.where(multi_typed=...)``). ``backfill`` then boxes the existing rows."""

_SEARCH: Final = "location_box && box(point(%s, %s), point(%s, %s))"
_BACKFILL_CHUNK: Final = 1000


def box_params(docs: Iterable[Mapping[str, Any]]) -> tuple[list[float | None], ...]:
    """Four ``float8[]`` arrays (min lon, min lat, max lon, max lat) for ``BOX_SQL``."""
    x0: list[float | None] = []
    y0: list[float | None] = []
    x1: list[float | None] = []
    y1: list[float | None] = []
    for doc in docs:
        box = location_bbox(doc)
        x0.append(None if box is None else box.min_lon)
        y0.append(None if box is None else box.min_lat)
        x1.append(None if box is None else box.max_lon)
        y1.append(None if box is None else box.max_lat)
    return x0, y0, x1, y1


def search_clause(boxes: Sequence[BBox]) -> tuple[str, list[float]]:
    """A ``WHERE`` fragment: the entity's location box meets one of ``boxes``."""
    params: list[float] = []
    for b in boxes:
        params.extend((b.min_lon, b.min_lat, b.max_lon, b.max_lat))
    return "(" + " OR ".join([_SEARCH] * len(boxes)) + ")", params


async def backfill(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
    """Box every stored entity with a location (in the caller's migration transaction)."""
    last = ""
    while True:
        cur = await conn.execute(
            "SELECT id, doc::text FROM entities WHERE id > %s AND doc ?| %s::text[]"
            " ORDER BY id LIMIT %s",
            (last, list(LOCATION_NAMES), _BACKFILL_CHUNK),
        )
        rows = await cur.fetchall()
        if not rows:
            return
        ids = [r[0] for r in rows]
        await conn.execute(
            "UPDATE entities AS e SET location_box = box(point(x0, y0), point(x1, y1))"
            " FROM unnest(%s::text[], %s::float8[], %s::float8[], %s::float8[], %s::float8[])"
            " AS u (id, x0, y0, x1, y1) WHERE e.id = u.id",
            (ids, *box_params(orjson.loads(r[1]) for r in rows)),
        )
        last = ids[-1]
