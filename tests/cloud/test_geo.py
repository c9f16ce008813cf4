"""NGSI-LD geo-queries: GeoJSON validation, the clause 4.10 parser, distances, relations, boxes."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldt.cloud.ngsild.geo import (
    EARTH_RADIUS_M,
    WORLD,
    BBox,
    GeometryError,
    GeoQuery,
    GeoQueryError,
    bbox,
    bboxes_union,
    distance_m,
    haversine_m,
    matches,
    parse_geoquery,
    search_bbox,
    validate_geometry,
)

# Reference geodesic lengths on the WGS84 ellipsoid (GeographicLib / Vincenty, to 1 mm).
JFK_LHR_M = 5_551_759.400  # (40.6 N, 73.8 W) -> (51.6 N, 0.5 W), GeographicLib's own example
MERIDIAN_DEGREE_AT_EQUATOR_M = 110_574.389  # (0, 0) -> (1 N, 0)
EQUATOR_A_M = 6_378_137.0
KM_ON_EQUATOR_DEG = 1000.0 / (EQUATOR_A_M * math.pi / 180.0)  # the equator is a geodesic
SPHERE_DEG_M = EARTH_RADIUS_M * math.pi / 180.0


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def square(lon0: float, lat0: float, lon1: float, lat1: float) -> dict[str, Any]:
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    return {"type": "Polygon", "coordinates": [ring]}


def near(
    geometry: dict[str, Any], *, max_m: float | None = None, min_m: float | None = None
) -> GeoQuery:
    return GeoQuery(georel="near", geometry=geometry, max_distance_m=max_m, min_distance_m=min_m)


# --- validation corpus -----------------------------------------------------------------------

GOOD = [
    point(8.68, 49.41),
    {"type": "Point", "coordinates": [-180, -90, 12.5]},
    {"type": "Point", "coordinates": [180, 90], "bbox": [180, 90, 180, 90]},
    {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
    {"type": "LineString", "coordinates": [[0, 0], [1, 1], [2, 0]]},
    {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]},
    square(0, 0, 1, 1),
    {
        "type": "Polygon",  # with a hole
        "coordinates": [
            [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
            [[2, 2], [2, 4], [4, 4], [4, 2], [2, 2]],
        ],
    },
    {"type": "MultiPolygon", "coordinates": [square(0, 0, 1, 1)["coordinates"]]},
]

BAD = [
    ("not a mapping", [0, 0], "must be a GeoJSON geometry object"),
    ("no type", {"coordinates": [0, 0]}, "is not one of"),
    ("unknown type", {"type": "Circle", "coordinates": [0, 0]}, "'Circle' is not one of"),
    ("wrong case", {"type": "point", "coordinates": [0, 0]}, "'point' is not one of"),
    (
        "collection",
        {"type": "GeometryCollection", "geometries": [point(0, 0)]},
        "GeometryCollection is not supported",
    ),
    ("feature", {"type": "Feature", "geometry": point(0, 0)}, "'Feature' is not one of"),
    ("no coordinates", {"type": "Point"}, "has no 'coordinates'"),
    ("point not array", {"type": "Point", "coordinates": "0,0"}, "must be a position"),
    ("point one number", {"type": "Point", "coordinates": [0]}, "must be a position"),
    ("point four numbers", {"type": "Point", "coordinates": [0, 0, 0, 0]}, "must be a position"),
    ("string number", {"type": "Point", "coordinates": ["1", 2]}, "finite numbers, not '1'"),
    ("bool", {"type": "Point", "coordinates": [True, 2]}, "finite numbers, not True"),
    ("nan", {"type": "Point", "coordinates": [math.nan, 2]}, "finite numbers"),
    ("infinite", {"type": "Point", "coordinates": [0, math.inf]}, "finite numbers"),
    ("longitude", {"type": "Point", "coordinates": [180.5, 0]}, "longitude 180.5 is outside"),
    ("latitude", {"type": "Point", "coordinates": [0, -91]}, "latitude -91 is outside"),
    ("lat/lon swapped", {"type": "Point", "coordinates": [49.4, 120.1]}, "latitude 120.1"),
    ("empty multipoint", {"type": "MultiPoint", "coordinates": []}, "is empty"),
    (
        "bad position in multi",
        {"type": "MultiPoint", "coordinates": [[0, 0], [0]]},
        "coordinates[1]",
    ),
    ("line of one", {"type": "LineString", "coordinates": [[0, 0]]}, "needs at least 2"),
    (
        "multiline not nested",
        {"type": "MultiLineString", "coordinates": [[0, 0], [1, 1]]},
        "coordinates[0][0] must be a position",
    ),
    ("polygon no rings", {"type": "Polygon", "coordinates": []}, "is empty"),
    (
        "ring of three",
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]},
        "has 3 position(s); a linear ring (RFC 7946 3.1.6) needs at least 4",
    ),
    (
        "open ring",
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
        "coordinates[0] is not closed",
    ),
    (
        "degenerate ring",
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0], [0, 0]]]},
        "encloses no area",
    ),
    (
        "open hole in multipolygon",
        {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 1]]]]},
        "coordinates[0][0] is not closed",
    ),
]


@pytest.mark.parametrize("geometry", GOOD, ids=lambda g: str(g["type"]))
def test_valid_geometries_are_accepted(geometry: dict[str, Any]) -> None:
    assert validate_geometry(geometry) is geometry


@pytest.mark.parametrize(
    ("value", "reason"), [(v, r) for _, v, r in BAD], ids=[n for n, _, _ in BAD]
)
def test_invalid_geometries_are_rejected_with_their_reason(value: object, reason: str) -> None:
    with pytest.raises(GeometryError) as caught:
        validate_geometry(value)
    assert reason in str(caught.value)


@given(lon=st.floats(-180, 180), lat=st.floats(-90, 90))
def test_any_point_in_range_is_valid_and_boxes_to_itself(lon: float, lat: float) -> None:
    geometry = validate_geometry(point(lon, lat))
    assert bbox(geometry) == BBox(lon, lat, lon, lat)


@given(
    lon=st.one_of(st.floats(max_value=-180.0001), st.floats(min_value=180.0001), st.just(math.nan)),
    lat=st.floats(-90, 90),
)
def test_any_point_out_of_range_is_rejected(lon: float, lat: float) -> None:
    with pytest.raises(GeometryError):
        validate_geometry(point(lon, lat))


# --- parser corpus ---------------------------------------------------------------------------

PARSED = [
    (("near;maxDistance==500", "Point", "[8.68,49.41]"), ("near", 500.0, None)),
    (("near;minDistance==10.5", "Point", "[8.68,49.41]"), ("near", None, 10.5)),
    (("near;maxDistance==1e3;minDistance==5", "Point", "[0,0]"), ("near", 1000.0, 5.0)),
    (("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1],[0,0]]]"), ("within", None, None)),
    (("contains", "Point", "[0.5, 0.5]"), ("contains", None, None)),
    (("intersects", "LineString", "[[0,0],[1,1]]"), ("intersects", None, None)),
    (("disjoint", "MultiPoint", "[[0,0],[1,1]]"), ("disjoint", None, None)),
    (("equals", "Point", "[1,2]"), ("equals", None, None)),
    (("overlaps", "MultiPolygon", "[[[[0,0],[1,0],[1,1],[0,1],[0,0]]]]"), ("overlaps", None, None)),
    (("within", "MultiLineString", "[[[0,0],[1,1]]]"), ("within", None, None)),
]


@pytest.mark.parametrize(("params", "expected"), PARSED, ids=[p[0][0] for p in PARSED])
def test_parser_reads_every_georel(
    params: tuple[str, str, str], expected: tuple[str, float | None, float | None]
) -> None:
    georel, geometry, coordinates = params
    query = parse_geoquery(georel=georel, geometry=geometry, coordinates=coordinates)
    assert query is not None
    assert (query.georel, query.max_distance_m, query.min_distance_m) == expected
    assert query.geometry["type"] == geometry
    assert query.geoproperty == "location"


def test_parser_takes_a_decoded_array_and_a_geoproperty() -> None:
    query = parse_geoquery(
        georel="near;maxDistance==50",
        geometry="Point",
        coordinates=[8.68, 49.41],
        geoproperty="observationSpace",
    )
    assert query == GeoQuery(
        georel="near",
        geometry={"type": "Point", "coordinates": [8.68, 49.41]},
        geoproperty="observationSpace",
        max_distance_m=50.0,
    )


def test_no_geo_parameters_is_no_geoquery() -> None:
    assert parse_geoquery(georel=None, geometry=None, coordinates=None) is None


PARSE_ERRORS = [
    ({"georel": "near;maxDistance==5", "geometry": "Point"}, "missing: coordinates"),
    ({"georel": "within"}, "missing: geometry, coordinates"),
    ({"geometry": "Point", "coordinates": "[0,0]"}, "missing: georel"),
    ({"geoproperty": "location"}, "geoproperty was given without georel"),
    ({"georel": "close", "geometry": "Point", "coordinates": "[0,0]"}, "'close' is not understood"),
    (
        {"georel": "near", "geometry": "Point", "coordinates": "[0,0]"},
        "needs maxDistance or minDistance",
    ),
    (
        {"georel": "near;maxDistance=5", "geometry": "Point", "coordinates": "[0,0]"},
        "modifier 'maxDistance=5'",
    ),
    (
        {"georel": "near;maxDistance:5", "geometry": "Point", "coordinates": "[0,0]"},
        "is not understood",
    ),
    ({"georel": "near;radius==5", "geometry": "Point", "coordinates": "[0,0]"}, "'radius==5'"),
    ({"georel": "near;maxDistance==abc", "geometry": "Point", "coordinates": "[0,0]"}, "not 'abc'"),
    (
        {"georel": "near;maxDistance==-5", "geometry": "Point", "coordinates": "[0,0]"},
        "positive number",
    ),
    (
        {"georel": "near;maxDistance==0", "geometry": "Point", "coordinates": "[0,0]"},
        "positive number",
    ),
    (
        {"georel": "near;maxDistance==inf", "geometry": "Point", "coordinates": "[0,0]"},
        "positive number",
    ),
    (
        {"georel": "near;maxDistance==nan", "geometry": "Point", "coordinates": "[0,0]"},
        "positive number",
    ),
    (
        {
            "georel": "near;maxDistance==5;maxDistance==6",
            "geometry": "Point",
            "coordinates": "[0,0]",
        },
        "gives maxDistance twice",
    ),
    (
        {
            "georel": "near;maxDistance==5;minDistance==6",
            "geometry": "Point",
            "coordinates": "[0,0]",
        },
        "minDistance is larger than maxDistance",
    ),
    (
        {"georel": "within;maxDistance==5", "geometry": "Point", "coordinates": "[0,0]"},
        "apply to near only",
    ),
    (
        {"georel": "Within", "geometry": "Point", "coordinates": "[0,0]"},
        "'Within' is not understood",
    ),
    ({"georel": "within", "geometry": "point", "coordinates": "[0,0]"}, "case-sensitive"),
    ({"georel": "within", "geometry": "GeometryCollection", "coordinates": "[]"}, "is not one of"),
    ({"georel": "within", "geometry": "Point", "coordinates": "8.68,49.41"}, "is not a JSON array"),
    ({"georel": "within", "geometry": "Point", "coordinates": "[8.68,"}, "is not a JSON array"),
    ({"georel": "within", "geometry": "Point", "coordinates": '{"x": 1}'}, "must be a JSON array"),
    (
        {"georel": "within", "geometry": "Point", "coordinates": "[200, 0]"},
        "longitude 200 is outside",
    ),
    (
        {"georel": "within", "geometry": "Polygon", "coordinates": "[[[0,0],[1,0],[1,1]]]"},
        "at least 4",
    ),
    ({"georel": "within", "geometry": "LineString", "coordinates": "[0,0]"}, "LineString"),
    (
        {"georel": "within", "geometry": "Point", "coordinates": "[0,0]", "geoproperty": ""},
        "not a valid attribute name",
    ),
    (
        {"georel": "within", "geometry": "Point", "coordinates": "[0,0]", "geoproperty": "a;b"},
        "not a valid attribute name",
    ),
]


@pytest.mark.parametrize(("params", "reason"), PARSE_ERRORS, ids=[r for _, r in PARSE_ERRORS])
def test_malformed_geoqueries_are_rejected_with_a_sentence(
    params: dict[str, Any], reason: str
) -> None:
    args: dict[str, Any] = {"georel": None, "geometry": None, "coordinates": None} | params
    with pytest.raises(GeoQueryError) as caught:
        parse_geoquery(**args)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


@given(st.text(max_size=40))
def test_the_parser_never_fails_with_anything_but_geoqueryerror(text: str) -> None:
    for args in (
        {"georel": text, "geometry": "Point", "coordinates": "[0,0]"},
        {"georel": "within", "geometry": text, "coordinates": "[0,0]"},
        {"georel": "within", "geometry": "Polygon", "coordinates": text},
    ):
        with contextlib.suppress(GeoQueryError):
            parse_geoquery(**args)


# --- distances against geodesic references ---------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "geodesic_m", "max_error"),
    [
        ((0.0, 0.0), (KM_ON_EQUATOR_DEG, 0.0), 1000.0, 0.0012),
        ((-73.8, 40.6), (-0.5, 51.6), JFK_LHR_M, 0.003),
        ((0.0, 0.0), (0.0, 1.0), MERIDIAN_DEGREE_AT_EQUATOR_M, 0.0057),
    ],
    ids=["1 km on the equator", "JFK-LHR", "1 degree of meridian"],
)
def test_haversine_is_within_its_documented_error_of_the_wgs84_geodesic(
    a: tuple[float, float], b: tuple[float, float], geodesic_m: float, max_error: float
) -> None:
    d = haversine_m(*a, *b)
    assert abs(d - geodesic_m) / geodesic_m < max_error
    assert haversine_m(*b, *a) == pytest.approx(d)


def test_near_finds_a_point_one_geodesic_km_away_with_the_sphere_margin() -> None:
    # 1000 m on WGS84 is 998.88 m on the mean sphere: inside 1000, outside 998.
    query_point = point(0.0, 0.0)
    other = point(KM_ON_EQUATOR_DEG, 0.0)
    assert matches(near(query_point, max_m=1000), other)
    assert not matches(near(query_point, max_m=998), other)
    assert matches(near(query_point, min_m=998), other)
    assert not matches(near(query_point, min_m=1000), other)
    assert matches(near(query_point, max_m=1000, min_m=990), other)


def test_near_across_the_antimeridian_is_short() -> None:
    east, west = point(179.999, 0.0), point(-179.999, 0.0)
    expected = 0.002 * SPHERE_DEG_M  # about 222 m
    assert haversine_m(179.999, 0.0, -179.999, 0.0) == pytest.approx(expected, rel=1e-9)
    assert matches(near(east, max_m=250), west)
    assert not matches(near(east, max_m=200), west)


def test_near_a_multipoint_uses_its_closest_point() -> None:
    far_and_close = {"type": "MultiPoint", "coordinates": [[1.0, 0.0], [0.0, 0.001]]}
    assert distance_m(point(0, 0), far_and_close) == pytest.approx(0.001 * SPHERE_DEG_M)
    assert matches(near(point(0, 0), max_m=120), far_and_close)


def test_projected_distance_to_a_line_matches_the_spherical_answer() -> None:
    # The equator is a great circle: the distance from (lon, lat) to it is R * lat exactly.
    equator = {"type": "LineString", "coordinates": [[-0.2, 0.0], [0.2, 0.0]]}
    for lat in (0.001, 0.01, 0.05):
        assert distance_m(point(0.03, lat), equator) == pytest.approx(lat * SPHERE_DEG_M, rel=1e-4)
    assert distance_m(equator, point(0.03, 0.01)) == pytest.approx(0.01 * SPHERE_DEG_M, rel=1e-3)


def test_projected_distance_to_a_polygon_is_to_its_nearest_edge_or_zero_inside() -> None:
    block = square(0.0, -0.01, 0.01, 0.01)
    one_km_east = point(0.01 + 1000.0 / SPHERE_DEG_M, 0.0)
    assert distance_m(one_km_east, block) == pytest.approx(1000.0, abs=0.5)
    assert matches(near(one_km_east, max_m=1001), block)
    assert not matches(near(one_km_east, max_m=999), block)
    assert distance_m(point(0.005, 0.0), block) == 0.0
    assert matches(near(point(0.005, 0.0), max_m=1), block)


def test_projected_distance_in_a_city_against_haversine_between_vertices() -> None:
    # A polygon vertex is the nearest point: the projection must give the haversine distance.
    centre = (8.6821, 50.1109)  # Frankfurt
    corner = (8.7, 50.12)
    block = square(corner[0], corner[1], corner[0] + 0.01, corner[1] + 0.01)
    expected = haversine_m(*centre, *corner)
    assert distance_m(point(*centre), block) == pytest.approx(expected, rel=1e-6)


# --- topological relations -------------------------------------------------------------------

UNIT = square(0, 0, 1, 1)
INNER = square(0.2, 0.2, 0.4, 0.4)
SHIFTED = square(0.5, 0.5, 1.5, 1.5)
FAR = square(5, 5, 6, 6)


@pytest.mark.parametrize(
    ("georel", "reference", "entity", "expected"),
    [
        ("within", UNIT, point(0.5, 0.5), True),
        ("within", UNIT, INNER, True),
        ("within", UNIT, point(1.5, 0.5), False),
        ("within", UNIT, SHIFTED, False),
        ("within", INNER, UNIT, False),
        ("contains", point(0.5, 0.5), UNIT, True),
        ("contains", INNER, UNIT, True),
        ("contains", UNIT, INNER, False),
        ("contains", point(2, 2), UNIT, False),
        ("intersects", UNIT, SHIFTED, True),
        ("intersects", UNIT, {"type": "LineString", "coordinates": [[-1, 0.5], [2, 0.5]]}, True),
        ("intersects", UNIT, FAR, False),
        ("intersects", UNIT, point(1, 1), True),  # a corner touches
        ("disjoint", UNIT, FAR, True),
        ("disjoint", UNIT, SHIFTED, False),
        ("disjoint", UNIT, point(1, 0.5), False),  # on the edge
        ("equals", UNIT, square(0, 0, 1, 1), True),
        (
            "equals",  # same square, ring starting at another corner
            UNIT,
            {"type": "Polygon", "coordinates": [[[1, 1], [0, 1], [0, 0], [1, 0], [1, 1]]]},
            True,
        ),
        ("equals", point(1, 2), point(1, 2), True),
        ("equals", UNIT, SHIFTED, False),
        ("overlaps", UNIT, SHIFTED, True),
        ("overlaps", UNIT, INNER, False),
        ("overlaps", UNIT, FAR, False),
    ],
)
def test_relations_have_their_simple_features_meaning(
    georel: Any, reference: dict[str, Any], entity: dict[str, Any], expected: bool
) -> None:
    assert matches(GeoQuery(georel=georel, geometry=reference), entity) is expected


@pytest.mark.parametrize(
    "entity",
    [
        None,
        "POINT (0 0)",
        {"type": "Point", "coordinates": [500, 0]},
        {"type": "Point", "coordinates": ["0", "0"]},
        {"type": "GeometryCollection", "geometries": []},
    ],
)
def test_an_invalid_stored_geometry_matches_no_query(entity: object) -> None:
    for query in (
        near(point(0, 0), max_m=1e7),
        near(point(0, 0), min_m=1),
        GeoQuery(georel="disjoint", geometry=FAR),
    ):
        assert matches(query, entity) is False


BOW_TIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
"""Self-intersecting at (0.5, 0.5): two triangles, as ETSI's 019_11 polygons are near a vertex."""


def test_a_self_intersecting_polygon_is_evaluated_as_its_repair() -> None:
    assert validate_geometry(BOW_TIE) is BOW_TIE
    left_triangle_point = point(0.1, 0.5)
    top_triangle_gap = point(0.5, 0.9)  # inside the ring's box, outside both triangles
    assert matches(GeoQuery(georel="within", geometry=BOW_TIE), left_triangle_point)
    assert not matches(GeoQuery(georel="within", geometry=BOW_TIE), top_triangle_gap)
    assert matches(GeoQuery(georel="contains", geometry=left_triangle_point), BOW_TIE)
    assert matches(GeoQuery(georel="equals", geometry=BOW_TIE), BOW_TIE)
    assert matches(GeoQuery(georel="disjoint", geometry=FAR), BOW_TIE)
    assert not matches(GeoQuery(georel="disjoint", geometry=UNIT), BOW_TIE)


# --- prefilter boxes -------------------------------------------------------------------------


def test_boxes_of_geometries_and_their_union() -> None:
    assert bbox(UNIT) == BBox(0, 0, 1, 1)
    line = {"type": "LineString", "coordinates": [[3, -2, 100], [-1, 4, 0]]}
    assert bbox(line) == BBox(-1, -2, 3, 4)
    assert bboxes_union([bbox(UNIT), bbox(line)]) == BBox(-1, -2, 3, 4)
    with pytest.raises(ValueError, match="inverted"):
        BBox(1, 0, 0, 1)


def test_search_boxes_per_relation() -> None:
    assert search_bbox(GeoQuery(georel="within", geometry=UNIT)) == (BBox(0, 0, 1, 1),)
    assert search_bbox(GeoQuery(georel="disjoint", geometry=UNIT)) is None
    assert search_bbox(near(point(0, 0), min_m=100)) is None
    (box,) = search_bbox(near(point(10, 0), max_m=1000)) or ()
    reach = 1000 / SPHERE_DEG_M
    assert (box.min_lat, box.max_lat) == pytest.approx((-reach, reach))
    assert (box.min_lon, box.max_lon) == pytest.approx((10 - reach, 10 + reach))


def test_search_box_widens_in_longitude_towards_the_poles() -> None:
    (box,) = search_bbox(near(point(0, 60), max_m=1000)) or ()
    reach = 1000 / SPHERE_DEG_M
    assert box.max_lon == pytest.approx(reach / math.cos(math.radians(60)), rel=1e-3)


def test_search_box_splits_at_the_antimeridian() -> None:
    boxes = search_bbox(near(point(179.999, 0), max_m=1000)) or ()
    assert len(boxes) == 2
    east, west = boxes
    assert (east.max_lon, west.min_lon) == (180, -180)
    assert west.contains_point(-179.995, 0)
    boxes = search_bbox(near(point(-179.999, 0), max_m=1000)) or ()
    assert len(boxes) == 2
    assert any(b.contains_point(179.995, 0) for b in boxes)


def test_search_box_over_a_pole_takes_every_longitude() -> None:
    (box,) = search_bbox(near(point(30, 89.99), max_m=5000)) or ()
    assert (box.min_lon, box.max_lon, box.max_lat) == (-180, 180, 90)
    assert box.contains_point(-150, 89.99)
    assert search_bbox(near(point(0, 0), max_m=math.pi * EARTH_RADIUS_M)) == (WORLD,)


lons = st.floats(-180, 180)
lats = st.floats(-90, 90)


def _destination(lon: float, lat: float, bearing: float, metres: float) -> tuple[float, float]:
    """The spherical direct problem: where ``metres`` along ``bearing`` (radians) leads."""
    d = metres / EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lon2 = (math.degrees(l2) + 540.0) % 360.0 - 180.0
    return lon2, max(-90.0, min(90.0, math.degrees(p2)))


@settings(max_examples=500)
@given(
    lon=lons,
    lat=lats,
    max_m=st.floats(1.0, 3_000_000.0),
    bearing=st.floats(0, 2 * math.pi),
    fraction=st.floats(0, 1),
)
def test_every_point_within_max_distance_is_in_a_search_box(
    lon: float, lat: float, max_m: float, bearing: float, fraction: float
) -> None:
    other = _destination(lon, lat, bearing, fraction * max_m)
    query = near(point(lon, lat), max_m=max_m)
    if matches(query, point(*other)):
        boxes = search_bbox(query) or ()
        assert any(b.contains_point(*other) for b in boxes), (other, boxes)


@settings(max_examples=300)
@given(lon=lons, lat=lats, other_lon=lons, other_lat=lats, max_m=st.floats(1.0, 20_000_000.0))
def test_no_uniformly_drawn_match_escapes_the_search_boxes(
    lon: float, lat: float, other_lon: float, other_lat: float, max_m: float
) -> None:
    query = near(point(lon, lat), max_m=max_m)
    if matches(query, point(other_lon, other_lat)):
        boxes = search_bbox(query) or ()
        assert any(b.contains_point(other_lon, other_lat) for b in boxes)


@pytest.mark.parametrize("length_deg", [0.5, 2.0, 4.0])
def test_projection_around_a_line_stays_within_a_tenth_of_a_percent(length_deg: float) -> None:
    # The nearest point is the line's far end: the exact answer is a haversine distance,
    # measured up to about 250 km from the projection's centre (the line's centroid).
    line = {"type": "LineString", "coordinates": [[10.0, 50.0], [10.0, 50.0 + length_deg]]}
    target = (11.5, 50.0 + length_deg + 0.7)
    expected = haversine_m(10.0, 50.0 + length_deg, *target)
    assert distance_m(line, point(*target)) == pytest.approx(expected, rel=1e-3)
