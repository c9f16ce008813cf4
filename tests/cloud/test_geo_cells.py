"""The grid index's columns (``geo_cells``): the Point fast path agrees with the general one,
and a search's cells cover every point its box holds."""

from __future__ import annotations

import json
import random
from typing import Any

from ldt.cloud.ngsild.geo import BBox
from ldt.cloud.store import geo_cells
from ldt.cloud.store.dialect import SQLITE
from ldt.cloud.store.locations import location_bbox


def _point(lon: Any, lat: Any) -> dict[str, Any]:
    return {
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}
    }


def test_the_point_fast_path_agrees_with_the_general_one() -> None:
    rng = random.Random(3)
    docs = [_point(rng.uniform(-180, 180), rng.uniform(-90, 90)) for _ in range(2000)]
    docs += [_point(True, 1), _point(200, 1), _point(1, -91), _point("1", 2), _point(1, None)]
    for doc in docs:
        box = location_bbox(doc)
        cell, *rest = geo_cells.columns(doc)
        if box is None:
            assert (cell, *rest) == (None, None, None, None, None), doc
        else:
            assert tuple(rest) == (box.min_lon, box.min_lat, box.max_lon, box.max_lat)
            assert cell is not None
            assert cell >= 0


def test_a_search_lists_the_cell_of_every_point_in_its_box() -> None:
    rng = random.Random(5)
    for _ in range(200):
        lon, lat = rng.uniform(-170, 170), rng.uniform(-80, 80)
        box = BBox(lon - 0.005, lat - 0.004, lon + 0.005, lat + 0.004)
        sql, params = geo_cells.search_clause(SQLITE, [box])
        assert "geo_cell IN" in sql
        listed = set(json.loads(params[0]))
        for _ in range(20):
            inside = _point(
                rng.uniform(box.min_lon, box.max_lon), rng.uniform(box.min_lat, box.max_lat)
            )
            assert geo_cells.columns(inside)[0] in listed
    wide = BBox(0, 0, 10, 10)  # a city-wide or larger box tests the boxes alone
    assert not geo_cells.bounded([wide])
    assert "geo_cell IS NOT NULL" in geo_cells.search_clause(SQLITE, [wide])[0]
