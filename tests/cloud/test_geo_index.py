"""The SQLite R*Tree geo index: writes, transactions with entity rows, and no lost matches."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.geo import (
    EARTH_RADIUS_M,
    BBox,
    GeoQuery,
    bbox,
    haversine_m,
    matches,
    search_bbox,
)
from ldt.cloud.store.geo_index import GeoIndex, GeoIndexError, rtree_available
from ldt.cloud.store.sqlite import connect


@pytest.fixture
def con() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def index(con: sqlite3.Connection) -> GeoIndex:
    geo = GeoIndex(table="geo_location")
    geo.create(con)
    return geo


def point(lon: float, lat: float) -> dict[str, object]:
    return {"type": "Point", "coordinates": [lon, lat]}


def test_this_python_sqlite_has_rtree(con: sqlite3.Connection) -> None:
    assert rtree_available(con)
    # the probe leaves nothing behind and can run again
    assert rtree_available(con)
    assert con.execute("SELECT count(*) FROM temp.sqlite_master").fetchone()[0] == 0


def test_insert_update_delete(con: sqlite3.Connection, index: GeoIndex) -> None:
    index.put(con, 1, BBox(8.0, 49.0, 8.0, 49.0))
    index.put(con, 2, BBox(9.0, 50.0, 9.5, 50.5))
    assert index.count(con) == 2
    assert index.candidates(con, BBox(7.9, 48.9, 8.1, 49.1)) == {1}
    assert index.candidates(con, BBox(0, 0, 20, 60)) == {1, 2}

    index.put(con, 1, BBox(9.2, 50.2, 9.2, 50.2))  # entity 1 moved
    assert index.count(con) == 2
    assert index.candidates(con, BBox(7.9, 48.9, 8.1, 49.1)) == set()
    assert index.candidates(con, BBox(9.1, 50.1, 9.3, 50.3)) == {1, 2}

    index.delete(con, 2)
    index.delete(con, 99)  # not indexed: nothing happens
    assert index.candidates(con, BBox(0, 0, 20, 60)) == {1}
    index.clear(con)
    assert index.count(con) == 0


def test_edges_touching_count_and_several_boxes_are_united(
    con: sqlite3.Connection, index: GeoIndex
) -> None:
    index.put(con, 1, BBox(179.5, 0, 180, 1))
    index.put(con, 2, BBox(-180, 0, -179.5, 1))
    index.put(con, 3, BBox(0, 0, 1, 1))
    assert index.candidates(con, BBox(1, 1, 2, 2)) == {3}  # corner touch
    split = (BBox(179.9, 0, 180, 1), BBox(-180, 0, -179.9, 1))
    assert index.candidates(con, split) == {1, 2}
    assert index.candidates(con, []) == set()


def test_stored_boxes_are_rounded_outwards(con: sqlite3.Connection, index: GeoIndex) -> None:
    rng = random.Random(3)
    for rowid in range(200):
        lon, lat = rng.uniform(-180, 180), rng.uniform(-90, 90)
        index.put(con, rowid, BBox(lon, lat, lon, lat))
        stored = index.box(con, rowid)
        assert stored is not None
        assert stored.contains_point(lon, lat)
        assert stored.max_lon - stored.min_lon < 1e-4
        assert index.candidates(con, BBox(lon, lat, lon, lat)) >= {rowid}
    assert index.box(con, 10_000) is None


def test_put_geometry_indexes_valid_values_and_forgets_the_rest(
    con: sqlite3.Connection, index: GeoIndex
) -> None:
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]]}
    assert index.put_geometry(con, 7, polygon)
    assert index.candidates(con, BBox(1.9, 0.9, 3, 3)) == {7}
    assert not index.put_geometry(con, 7, {"type": "Point", "coordinates": [200, 0]})
    assert index.count(con) == 0
    assert index.put_geometry(con, 7, point(1, 1))
    assert not index.put_geometry(con, 7, None)
    assert index.count(con) == 0


def test_put_many(con: sqlite3.Connection, index: GeoIndex) -> None:
    index.put_many(con, ((i, BBox(i, 0, i, 0)) for i in range(100)))
    assert index.count(con) == 100
    assert index.candidates(con, BBox(10.5, -1, 20.5, 1)) == set(range(11, 21))


def test_bad_names_and_a_missing_table_are_geo_index_errors(con: sqlite3.Connection) -> None:
    for name in ("", "geo location", "geo;DROP TABLE entities", "1geo", "x" * 64):
        with pytest.raises(GeoIndexError, match="plain SQL identifier"):
            GeoIndex(table=name)
    never_created = GeoIndex(table="geo_other")
    with pytest.raises(GeoIndexError, match="geo_other") as caught:
        never_created.candidates(con, BBox(0, 0, 1, 1))
    assert isinstance(caught.value, StoreError)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


def test_create_is_idempotent_and_the_index_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "geo.db"
    index = GeoIndex()
    first = sqlite3.connect(path, isolation_level=None)
    try:
        index.create(first)
        index.create(first)
        index.put(first, 1, BBox(1, 1, 1, 1))
    finally:
        first.close()
    second = sqlite3.connect(path, isolation_level=None)
    try:
        index.create(second)
        assert index.candidates(second, BBox(0, 0, 2, 2)) == {1}
    finally:
        second.close()


def test_the_index_shares_the_stores_transactions(tmp_path: Path) -> None:
    """An entity write and its index row commit or roll back together."""
    con = connect(tmp_path / "cloud.db", synchronous="NORMAL")
    index = GeoIndex()
    try:
        index.create(con)

        def write(entity_id: str, lon: float, lat: float) -> int:
            doc = {"id": entity_id, "type": "Sensor", "location": point(lon, lat)}
            cur = con.execute(
                "INSERT INTO entities (id, type, doc, created_at, modified_at)"
                " VALUES (?, 'Sensor', ?, 'now', 'now')",
                (entity_id, orjson.dumps(doc).decode()),
            )
            rowid = cur.lastrowid
            assert rowid is not None
            index.put_geometry(con, rowid, doc["location"])
            return rowid

        con.execute("BEGIN IMMEDIATE")
        kept = write("urn:ngsi-ld:Sensor:kept", 8.68, 49.41)
        con.execute("COMMIT")
        con.execute("BEGIN IMMEDIATE")
        write("urn:ngsi-ld:Sensor:lost", 8.681, 49.411)
        con.execute("ROLLBACK")

        query = GeoQuery(georel="near", geometry=point(8.68, 49.41), max_distance_m=1000)
        found = index.candidates(con, search_bbox(query) or ())
        assert found == {kept}
        (doc,) = con.execute("SELECT doc FROM entities WHERE rowid = ?", (kept,)).fetchone()
        assert matches(query, orjson.loads(doc)["location"])
    finally:
        con.close()


def _destination(lon: float, lat: float, bearing: float, metres: float) -> tuple[float, float]:
    d = metres / EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return (math.degrees(l2) + 540.0) % 360.0 - 180.0, max(-90.0, min(90.0, math.degrees(p2)))


@settings(max_examples=150, deadline=None)
@given(
    lon=st.floats(-180, 180),
    lat=st.floats(-90, 90),
    max_m=st.floats(1.0, 2_000_000.0),
    offsets=st.lists(
        st.tuples(st.floats(0, 2 * math.pi), st.floats(0, 1.2)), min_size=1, max_size=30
    ),
)
def test_the_index_prefilter_loses_no_point_within_max_distance(
    lon: float, lat: float, max_m: float, offsets: list[tuple[float, float]]
) -> None:
    """Every point the exact test accepts is among the R*Tree's candidates (float32 included)."""
    con = sqlite3.connect(":memory:", isolation_level=None)
    try:
        index = GeoIndex()
        index.create(con)
        points = [_destination(lon, lat, b, f * max_m) for b, f in offsets]
        for rowid, (plon, plat) in enumerate(points):
            index.put_geometry(con, rowid, point(plon, plat))
        query = GeoQuery(georel="near", geometry=point(lon, lat), max_distance_m=max_m)
        boxes = search_bbox(query)
        assert boxes is not None
        found = index.candidates(con, boxes)
        for rowid, (plon, plat) in enumerate(points):
            if haversine_m(lon, lat, plon, plat) <= max_m:
                assert rowid in found, (rowid, points[rowid], boxes)
                assert matches(query, point(plon, plat))
    finally:
        con.close()


def test_prefilter_plus_exact_test_equals_a_full_scan() -> None:
    rng = random.Random(11)
    con = sqlite3.connect(":memory:", isolation_level=None)
    try:
        index = GeoIndex()
        index.create(con)
        centre = (2.3522, 48.8566)
        located = {}
        for rowid in range(2000):
            where = _destination(*centre, rng.uniform(0, 2 * math.pi), rng.uniform(0, 5000))
            located[rowid] = point(*where)
            index.put(con, rowid, bbox(located[rowid]))
        for _ in range(20):
            at = _destination(*centre, rng.uniform(0, 2 * math.pi), rng.uniform(0, 5000))
            query = GeoQuery(georel="near", geometry=point(*at), max_distance_m=800)
            candidates = index.candidates(con, search_bbox(query) or ())
            fast = {r for r in candidates if matches(query, located[r])}
            scan = {r for r, g in located.items() if matches(query, g)}
            assert fast == scan
            assert len(candidates) < len(located) / 5
    finally:
        con.close()
