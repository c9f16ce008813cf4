"""The location index both engines share: a grid cell and a box per entity, in plain columns.

Before, SQLite kept an R*Tree filled by triggers and PostgreSQL a GiST ``box`` column: two
index structures, two write paths, and on SQLite the R*Tree insert alone cost ~20-26 µs of
the ~81 µs of SQL per created entity. Now every entity row carries ``geo_cell`` (an integer
naming a 0.01 by 0.01 degree cell, about 1.1 by 0.7 km at 50° N) and its location's box
(``x0, y0, x1, y1``: min lon, min lat, max lon, max lat), computed in Python once per write
and indexed by an ordinary B-tree on ``geo_cell`` in both engines.

A search lists the cells its box covers and asks for ``geo_cell IN (those)`` plus the box
overlap; a location whose box spans more than one cell gets ``LARGE`` and is always a
candidate (checked by its box). A search box covering more than ``MAX_SEARCH_CELLS`` cells
(a city-wide query) tests the boxes alone. The box is a prefilter: ``EntityQuery.matches``
decides, so a wrong candidate costs time, never a wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ldt.cloud.ngsild.geo import BBox
from ldt.cloud.store.dialect import Dialect
from ldt.cloud.store.locations import location_bbox

__all__ = [
    "CELL_DEG",
    "LARGE",
    "MAX_SEARCH_CELLS",
    "UPDATE",
    "GeoColumns",
    "bounded",
    "columns",
    "search_clause",
]

CELL_DEG: Final = 0.01
LARGE: Final = -1
"""The cell of a location whose box spans several cells."""
MAX_SEARCH_CELLS: Final = 400
UPDATE: Final = "UPDATE entities SET geo_cell = ?, x0 = ?, y0 = ?, x1 = ?, y1 = ? WHERE id = ?"
"""Set one entity's location columns: parameters ``(*columns(doc), id)``."""
_COLS: Final = 36_001  # cells per row of latitude (0 .. 360 / CELL_DEG)

GeoColumns = tuple[int | None, float | None, float | None, float | None, float | None]
"""(geo_cell, x0, y0, x1, y1) of one entity; all None without a valid location."""

_NONE: Final[GeoColumns] = (None, None, None, None, None)


def _cx(lon: float) -> int:
    return min(_COLS - 1, max(0, math.floor((lon + 180.0) / CELL_DEG)))


def _cy(lat: float) -> int:
    return min(18_000, max(0, math.floor((lat + 90.0) / CELL_DEG)))


def _point(doc: Mapping[str, Any]) -> tuple[float, float] | None:
    """(lon, lat) of the common case, a single valid ``location`` Point, else None.

    Validating the geometry in general cost a created entity more than its SQL did.
    """
    loc = doc.get("location")
    if not isinstance(loc, dict) or loc.get("type") != "GeoProperty":
        return None
    value = loc.get("value")
    if not isinstance(value, dict) or value.get("type") != "Point":
        return None
    coordinates = value.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) not in (2, 3):
        return None
    lon, lat = coordinates[0], coordinates[1]
    if type(lon) not in (int, float) or type(lat) not in (int, float):  # not bool
        return None
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        return None
    return float(lon), float(lat)


def columns(doc: Mapping[str, Any]) -> GeoColumns:
    """The location columns of one entity document (never raises)."""
    if "location" not in doc and not any("location" in k for k in doc):
        return _NONE
    point = _point(doc)
    if point is not None:
        lon, lat = point
        return _cy(lat) * _COLS + _cx(lon), lon, lat, lon, lat
    box = location_bbox(doc)
    if box is None:
        return _NONE
    cx0, cx1 = _cx(box.min_lon), _cx(box.max_lon)
    cy0, cy1 = _cy(box.min_lat), _cy(box.max_lat)
    cell = cy0 * _COLS + cx0 if (cx0, cy0) == (cx1, cy1) else LARGE
    return cell, box.min_lon, box.min_lat, box.max_lon, box.max_lat


def _cells(box: BBox) -> list[int] | None:
    cx0, cx1 = _cx(box.min_lon), _cx(box.max_lon)
    cy0, cy1 = _cy(box.min_lat), _cy(box.max_lat)
    if (cx1 - cx0 + 1) * (cy1 - cy0 + 1) > MAX_SEARCH_CELLS:
        return None
    return [cy * _COLS + cx for cy in range(cy0, cy1 + 1) for cx in range(cx0, cx1 + 1)]


def bounded(boxes: Sequence[BBox]) -> bool:
    """Whether ``search_clause`` lists cells (a few rows) rather than testing boxes alone."""
    return all(_cells(box) is not None for box in boxes)


def search_clause(dialect: Dialect, boxes: Sequence[BBox]) -> tuple[str, list[Any]]:
    """A ``WHERE`` fragment over ``entities``: the location box meets one of ``boxes``."""
    parts: list[str] = []
    params: list[Any] = []
    cells: set[int] = set()
    small = True
    for box in boxes:
        parts.append("(x1 >= ? AND x0 <= ? AND y1 >= ? AND y0 <= ?)")
        params.extend((box.min_lon, box.max_lon, box.min_lat, box.max_lat))
        found = _cells(box)
        if found is None:
            small = False
        else:
            cells.update(found)
    overlap = "(" + " OR ".join(parts) + ")"
    if not small:
        return f"(geo_cell IS NOT NULL AND {overlap})", params
    # an array PostgreSQL's planner sees (it plans an index scan of the cells); a set from a
    # JSON function was estimated at 100 rows and answered by a scan of the table
    listed = dialect.list_param(sorted({*cells, LARGE}))
    return f"({dialect.any_of('geo_cell', cast='bigint')} AND {overlap})", [listed, *params]
