"""NGSI-LD geo-queries (ETSI GS CIM 009 v1.9, clause 4.10) and GeoProperty values.

Pure functions, no I/O: the API layer turns ``GeometryError`` and
``GeoQueryError`` into ProblemDetails ``BadRequestData``/``InvalidRequest``
(their message is the sentence the client sees); the store uses ``bbox`` and
``search_bbox`` to prefilter with the grid index (``ldt.cloud.store.geo_cells``)
and ``matches`` for the exact test.

Geometry: GeoJSON (IETF RFC 7946) ``Point``, ``MultiPoint``, ``LineString``,
``MultiLineString``, ``Polygon`` and ``MultiPolygon``, positions
``[longitude, latitude(, altitude)]`` in WGS84 degrees. ``GeometryCollection``
is refused: clause 4.10 lists only the six types above, so a collection
could be stored but never queried.

Metric: distances are metres on a sphere of the IUGG mean Earth radius
(``EARTH_RADIUS_M``). Against the WGS84 ellipsoid's geodesic this is off by at
most about 0.56 % (typically 0.1-0.3 %; about 2.8 m at the worst for a 500 m
``near``), the approximation MongoDB's 2dsphere and PostGIS' ``geography``
with ``use_spheroid=false`` make too. Point to point is the haversine formula.
When either side is not a point, both geometries are projected with the
azimuthal equidistant projection centred on the query geometry (distances
from the centre are exact on the sphere) after densifying their edges to
``_SEGMENT_DEG``; the extra error is below 0.1 % for geometries within a few
hundred kilometres of the query, which is what ``near`` is for.

Topological relations (``within``, ``contains``, ``intersects``, ``disjoint``,
``equals``, ``overlaps``) are evaluated in longitude/latitude as planar
geometry, which is what RFC 7946 says an edge is (a straight line in
longitude/latitude); geometries crossing the antimeridian must be cut there
(RFC 7946 clause 3.1.9).

Self-intersecting polygons: RFC 7946 does not forbid them and ETSI's suite queries with them
(019_11_01 ``equals`` and 019_11_06 ``within`` send bow-tied rings and expect 200, and its
stored polygons are bow-tied too), so a polygon that is not OGC-valid is not refused but
evaluated as its repair (``_shape``: ``shapely.make_valid`` by structure, the area its rings
enclose), on both sides of every relation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast, get_args

import numpy as np
import orjson
import shapely  # type: ignore[import-untyped]
from shapely.errors import GEOSException  # type: ignore[import-untyped]
from shapely.geometry import shape as _shapely_shape  # type: ignore[import-untyped]

__all__ = [
    "DEFAULT_GEOPROPERTY",
    "EARTH_RADIUS_M",
    "GEOMETRY_TYPES",
    "WORLD",
    "BBox",
    "GeoQuery",
    "GeoQueryError",
    "GeometryError",
    "Georel",
    "bbox",
    "bboxes_union",
    "distance_m",
    "haversine_m",
    "matches",
    "parse_geoquery",
    "search_bbox",
    "validate_geometry",
]

EARTH_RADIUS_M: Final = 6_371_008.8
"""IUGG mean radius R1 of the WGS84 ellipsoid, (2a + b) / 3, in metres."""

DEFAULT_GEOPROPERTY: Final = "location"

GeometryType = Literal[
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"
]
GEOMETRY_TYPES: Final[tuple[str, ...]] = get_args(GeometryType)

Georel = Literal["near", "within", "contains", "intersects", "disjoint", "equals", "overlaps"]
_GEORELS: Final[tuple[str, ...]] = get_args(Georel)

_SEGMENT_DEG: Final = 0.01
"""Longest edge (degrees, about 1.1 km) kept when projecting for ``near``."""

_EPS_DEG: Final = 1e-9
"""Slack added to prefilter boxes so floating-point rounding never loses a match."""

_ATTR_FORBIDDEN: Final = frozenset("<>\"'=;()&?#/\\ \t\r\n")


class GeometryError(ValueError):
    """A GeoProperty value is not a GeoJSON geometry NGSI-LD accepts.

    The message is the reason, written for the client (ProblemDetails
    ``BadRequestData`` detail).
    """


class GeoQueryError(ValueError):
    """A geo-query (``georel``, ``geometry``, ``coordinates``, ``geoproperty``) is malformed.

    The message is one sentence for the client (ProblemDetails
    ``BadRequestData``/``InvalidRequest`` detail).
    """


# --- bounding boxes --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BBox:
    """A longitude/latitude box in degrees, ``min_lon <= max_lon`` (never wraps).

    A region that crosses the antimeridian is two boxes (see ``search_bbox``).
    """

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def __post_init__(self) -> None:
        if not (self.min_lon <= self.max_lon and self.min_lat <= self.max_lat):
            raise ValueError(f"an inverted box: {self}")

    def intersects(self, other: BBox) -> bool:
        """Whether the two boxes share at least one point (edges included)."""
        return (
            self.min_lon <= other.max_lon
            and other.min_lon <= self.max_lon
            and self.min_lat <= other.max_lat
            and other.min_lat <= self.max_lat
        )

    def contains_point(self, lon: float, lat: float) -> bool:
        """Whether (lon, lat) lies in the box, edges included."""
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat


WORLD: Final = BBox(-180.0, -90.0, 180.0, 90.0)


# --- GeoJSON validation ----------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _position(value: object, path: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= 3:
        raise GeometryError(
            f"{path} must be a position, an array of 2 or 3 numbers"
            " [longitude, latitude] or [longitude, latitude, altitude]"
        )
    for number in value:
        if not _is_number(number) or not math.isfinite(number):
            raise GeometryError(f"{path} must hold finite numbers, not {number!r}")
    lon, lat = float(value[0]), float(value[1])
    if not -180.0 <= lon <= 180.0:
        raise GeometryError(
            f"{path}: longitude {lon:g} is outside [-180, 180]"
            " (GeoJSON positions are [longitude, latitude])"
        )
    if not -90.0 <= lat <= 90.0:
        raise GeometryError(
            f"{path}: latitude {lat:g} is outside [-90, 90]"
            " (GeoJSON positions are [longitude, latitude])"
        )
    return lon, lat


def _array(value: object, path: str, what: str) -> Sequence[object]:
    if not isinstance(value, list | tuple):
        raise GeometryError(f"{path} must be an array of {what}")
    if not value:
        raise GeometryError(f"{path} is empty; it needs at least one of {what}")
    return value


def _positions(value: object, path: str, minimum: int, what: str) -> list[tuple[float, float]]:
    items = _array(value, path, "positions")
    if len(items) < minimum:
        raise GeometryError(f"{path} has {len(items)} position(s); {what} needs at least {minimum}")
    return [_position(p, f"{path}[{i}]") for i, p in enumerate(items)]


def _ring(value: object, path: str) -> None:
    positions = _positions(value, path, 4, "a linear ring (RFC 7946 3.1.6)")
    items = cast("Sequence[Sequence[float]]", value)
    if list(items[0]) != list(items[-1]):
        raise GeometryError(
            f"{path} is not closed: its first position {list(items[0])}"
            f" differs from its last {list(items[-1])}"
        )
    if len(set(positions)) < 3:
        raise GeometryError(f"{path} encloses no area: it needs 3 distinct positions")


def _polygon(value: object, path: str) -> None:
    for i, ring in enumerate(_array(value, path, "linear rings")):
        _ring(ring, f"{path}[{i}]")


def _coordinates(kind: str, coords: object) -> None:
    path = "coordinates"
    if kind == "Point":
        _position(coords, path)
    elif kind == "MultiPoint":
        for i, p in enumerate(_array(coords, path, "positions")):
            _position(p, f"{path}[{i}]")
    elif kind == "LineString":
        _positions(coords, path, 2, "a LineString")
    elif kind == "MultiLineString":
        for i, line in enumerate(_array(coords, path, "LineString coordinate arrays")):
            _positions(line, f"{path}[{i}]", 2, "a LineString")
    elif kind == "Polygon":
        _polygon(coords, path)
    else:  # MultiPolygon
        for i, polygon in enumerate(_array(coords, path, "Polygon coordinate arrays")):
            _polygon(polygon, f"{path}[{i}]")


def validate_geometry(value: object) -> Mapping[str, Any]:
    """Return ``value`` if it is a GeoJSON geometry a GeoProperty may hold, else raise.

    Checks the type, the nesting, every position (2 or 3 finite numbers,
    longitude in [-180, 180], latitude in [-90, 90]), closed rings of at least
    4 positions, and rings that enclose an area. A self-intersecting polygon
    passes: the predicates use its repair (``_shape``, module docstring).
    Foreign members (``bbox`` and others) are allowed, as RFC 7946 allows them.

    Raises ``GeometryError`` whose message is the reason.
    """
    if not isinstance(value, Mapping):
        raise GeometryError(
            "a GeoProperty value must be a GeoJSON geometry object"
            f' ({{"type": ..., "coordinates": [...]}}), not {type(value).__name__}'
        )
    kind = value.get("type")
    if kind == "GeometryCollection":
        raise GeometryError(
            "GeometryCollection is not supported: NGSI-LD geo-queries (ETSI GS CIM 009"
            " clause 4.10) know only " + ", ".join(GEOMETRY_TYPES)
        )
    if kind not in GEOMETRY_TYPES:
        raise GeometryError(
            f"GeoJSON geometry type {kind!r} is not one of " + ", ".join(GEOMETRY_TYPES)
        )
    if "coordinates" not in value:
        raise GeometryError(f"the {kind} has no 'coordinates' member")
    _coordinates(kind, value["coordinates"])
    return value


def _shape(value: Mapping[str, Any]) -> Any:
    """The shapely geometry of checked GeoJSON; an invalid polygon as its repaired area."""
    geom = _shapely_shape(value)
    if value.get("type") in ("Polygon", "MultiPolygon") and not shapely.is_valid(geom):
        geom = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    return geom


# --- distances -------------------------------------------------------------------------------


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two points given in degrees (sphere R1)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _point_lists(geometry: Mapping[str, Any]) -> list[tuple[float, float]] | None:
    """The positions of a Point or MultiPoint, else None."""
    kind, coords = geometry.get("type"), geometry["coordinates"]
    if kind == "Point":
        return [(float(coords[0]), float(coords[1]))]
    if kind == "MultiPoint":
        return [(float(p[0]), float(p[1])) for p in coords]
    return None


def _aeqd(center_lon: float, center_lat: float) -> Any:
    """A vectorized spherical azimuthal equidistant projection (metres) around a centre."""
    lam0, phi0 = math.radians(center_lon), math.radians(center_lat)
    sin0, cos0 = math.sin(phi0), math.cos(phi0)

    def project(xy: Any) -> Any:
        lam, phi = np.radians(xy[:, 0]), np.radians(xy[:, 1])
        dlam = lam - lam0
        sin_p, cos_p, cos_dl = np.sin(phi), np.cos(phi), np.cos(dlam)
        c = np.arccos(np.clip(sin0 * sin_p + cos0 * cos_p * cos_dl, -1.0, 1.0))
        sin_c = np.sin(c)
        k = np.where(sin_c < 1e-15, 1.0, c / np.where(sin_c < 1e-15, 1.0, sin_c))
        x = EARTH_RADIUS_M * k * cos_p * np.sin(dlam)
        y = EARTH_RADIUS_M * k * (cos0 * sin_p - sin0 * cos_p * cos_dl)
        return np.column_stack((x, y))

    return project


def _projected_distance(reference: Any, target: Any) -> float:
    centre = reference if reference.geom_type == "Point" else reference.centroid
    project = _aeqd(float(centre.x), float(centre.y))
    ref = shapely.transform(shapely.segmentize(reference, _SEGMENT_DEG), project)
    tgt = shapely.transform(shapely.segmentize(target, _SEGMENT_DEG), project)
    return float(shapely.distance(ref, tgt))


def distance_m(reference: Mapping[str, Any], target: Mapping[str, Any]) -> float:
    """Shortest distance in metres between two validated GeoJSON geometries (0 if they meet).

    Points and MultiPoints: exact haversine. Anything else: the projection
    described in the module docstring, centred on ``reference``.
    """
    ref_points, tgt_points = _point_lists(reference), _point_lists(target)
    if ref_points is not None and tgt_points is not None:
        return min(haversine_m(a, b, c, d) for a, b in ref_points for c, d in tgt_points)
    return _projected_distance(_shape(reference), _shape(target))


# --- bounding boxes of geometries ------------------------------------------------------------


def _flatten(coords: Any, out: list[tuple[float, float]]) -> None:
    if coords and _is_number(coords[0]):
        out.append((float(coords[0]), float(coords[1])))
        return
    for item in coords:
        _flatten(item, out)


def bbox(geometry: Mapping[str, Any]) -> BBox:
    """The longitude/latitude box of a validated GeoJSON geometry (its positions' extent).

    Edges are straight in longitude/latitude (RFC 7946), so the positions'
    extent bounds the whole geometry.
    """
    points: list[tuple[float, float]] = []
    _flatten(geometry["coordinates"], points)
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    return BBox(min(lons), min(lats), max(lons), max(lats))


def _expand(box: BBox, metres: float) -> tuple[BBox, ...]:
    """Boxes covering every point within ``metres`` (great-circle) of ``box``.

    Latitude grows by the angular distance. Longitude grows by the widest
    reach of a small circle at the box's most poleward latitude,
    asin(sin d / cos lat); a circle that reaches a pole covers every
    longitude, and a box pushed across the antimeridian is split in two.
    """
    delta = metres / EARTH_RADIUS_M
    if delta >= math.pi:
        return (WORLD,)
    dlat = math.degrees(delta) + _EPS_DEG
    min_lat, max_lat = box.min_lat - dlat, box.max_lat + dlat
    if min_lat <= -90.0 or max_lat >= 90.0:
        return (BBox(-180.0, max(min_lat, -90.0), 180.0, min(max_lat, 90.0)),)
    phi = math.radians(max(abs(box.min_lat), abs(box.max_lat)))
    dlon = math.degrees(math.asin(min(1.0, math.sin(delta) / math.cos(phi)))) + _EPS_DEG
    min_lon, max_lon = box.min_lon - dlon, box.max_lon + dlon
    if max_lon - min_lon >= 360.0:
        return (BBox(-180.0, min_lat, 180.0, max_lat),)
    if min_lon < -180.0:
        return (
            BBox(min_lon + 360.0, min_lat, 180.0, max_lat),
            BBox(-180.0, min_lat, max_lon, max_lat),
        )
    if max_lon > 180.0:
        return (
            BBox(min_lon, min_lat, 180.0, max_lat),
            BBox(-180.0, min_lat, max_lon - 360.0, max_lat),
        )
    return (BBox(min_lon, min_lat, max_lon, max_lat),)


# --- the query -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """One NGSI-LD geo-query: the entity's ``geoproperty`` related by ``georel`` to ``geometry``.

    ``near`` needs ``max_distance_m`` and/or ``min_distance_m`` (metres; the
    spec's grammar has one of them, both together select a ring); the other
    relations take neither. ``geometry`` is validated GeoJSON. Construction
    raises ``GeoQueryError``.
    """

    georel: Georel
    geometry: Mapping[str, Any]
    geoproperty: str = DEFAULT_GEOPROPERTY
    max_distance_m: float | None = None
    min_distance_m: float | None = None
    _shape: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.georel not in _GEORELS:
            raise GeoQueryError(f"georel {self.georel!r} is not one of " + ", ".join(_GEORELS))
        try:
            validate_geometry(self.geometry)
        except GeometryError as exc:
            kind = self.geometry.get("type") if isinstance(self.geometry, Mapping) else None
            what = f"the query {kind}" if kind in GEOMETRY_TYPES else "the query geometry"
            raise GeoQueryError(f"{what} is invalid: {exc}") from exc
        _check_attribute(self.geoproperty)
        distances = (self.max_distance_m, self.min_distance_m)
        if self.georel == "near":
            if distances == (None, None):
                raise GeoQueryError(
                    "georel near needs maxDistance or minDistance, e.g. near;maxDistance==500"
                )
            for name, value in zip(("maxDistance", "minDistance"), distances, strict=True):
                if value is not None and not (math.isfinite(value) and value > 0):
                    raise GeoQueryError(f"{name} must be a positive number of metres, not {value}")
            if (
                self.max_distance_m is not None
                and self.min_distance_m is not None
                and self.min_distance_m > self.max_distance_m
            ):
                raise GeoQueryError("minDistance is larger than maxDistance: nothing can match")
        elif distances != (None, None):
            raise GeoQueryError(
                f"maxDistance and minDistance apply to near only, not to {self.georel}"
            )
        shape = _shape(self.geometry)
        shapely.prepare(shape)
        object.__setattr__(self, "_shape", shape)


def _check_attribute(name: str) -> None:
    if not name or any(ch in _ATTR_FORBIDDEN for ch in name) or not name.isprintable():
        raise GeoQueryError(f"geoproperty {name!r} is not a valid attribute name")


def _parse_georel(text: str) -> tuple[Georel, float | None, float | None]:
    name, *modifiers = text.split(";")
    if name not in _GEORELS:
        raise GeoQueryError(
            f"georel {text!r} is not understood: it must be one of "
            + ", ".join(_GEORELS)
            + " (near with ;maxDistance==<metres> or ;minDistance==<metres>)"
        )
    distances: dict[str, float] = {}
    for modifier in modifiers:
        key, sep, number = modifier.partition("==")
        if not sep or key not in ("maxDistance", "minDistance"):
            raise GeoQueryError(
                f"georel modifier {modifier!r} is not understood: expected"
                " maxDistance==<metres> or minDistance==<metres>"
            )
        if key in distances:
            raise GeoQueryError(f"georel gives {key} twice")
        try:
            distances[key] = float(number)
        except ValueError:
            raise GeoQueryError(f"{key} must be a number of metres, not {number!r}") from None
    return cast("Georel", name), distances.get("maxDistance"), distances.get("minDistance")


def parse_geoquery(
    *,
    georel: str | None,
    geometry: str | None,
    coordinates: str | Sequence[Any] | None,
    geoproperty: str | None = None,
) -> GeoQuery | None:
    """Parse the geo-query parameters of a query (clause 4.10); None when there is none.

    ``coordinates`` is the JSON array text of the query string (already
    URL-decoded), or the decoded array of a POST query's ``geoQ``. All three
    of ``georel``, ``geometry`` and ``coordinates`` must be given together;
    ``geoproperty`` defaults to ``location`` (expanding it with the
    ``@context`` is the caller's job). Raises ``GeoQueryError``.
    """
    given = {"georel": georel, "geometry": geometry, "coordinates": coordinates}
    if all(v is None for v in given.values()):
        if geoproperty is not None:
            raise GeoQueryError("geoproperty was given without georel, geometry and coordinates")
        return None
    if georel is None or geometry is None or coordinates is None:
        missing = [k for k, v in given.items() if v is None]
        raise GeoQueryError(
            "a geo-query needs georel, geometry and coordinates together; missing: "
            + ", ".join(missing)
        )
    relation, max_d, min_d = _parse_georel(georel)
    if geometry not in GEOMETRY_TYPES:
        raise GeoQueryError(
            f"geometry {geometry!r} is not one of "
            + ", ".join(GEOMETRY_TYPES)
            + " (the names are case-sensitive)"
        )
    if isinstance(coordinates, str):
        try:
            coords: object = orjson.loads(coordinates)
        except orjson.JSONDecodeError:
            raise GeoQueryError(
                f"coordinates {coordinates!r} is not a JSON array, e.g. [8.68,49.41]"
            ) from None
    else:
        coords = coordinates
    if not isinstance(coords, list | tuple):
        raise GeoQueryError(f"coordinates must be a JSON array, not {coordinates!r}")
    return GeoQuery(
        georel=relation,
        geometry={"type": geometry, "coordinates": coords},
        geoproperty=DEFAULT_GEOPROPERTY if geoproperty is None else geoproperty,
        max_distance_m=max_d,
        min_distance_m=min_d,
    )


def search_bbox(query: GeoQuery) -> tuple[BBox, ...] | None:
    """Boxes an entity's ``bbox`` must intersect to possibly match; None: no prefilter.

    Sound for the index (no false negatives): ``near;maxDistance`` widens the
    query geometry's box by the distance (``_expand``); ``within``,
    ``contains``, ``intersects``, ``equals`` and ``overlaps`` all need the two
    geometries to share a point, so the query's own box. ``disjoint`` and
    ``near`` with only ``minDistance`` select by being far away: no box helps.
    """
    box = bbox(query.geometry)
    if query.georel == "near":
        if query.max_distance_m is None:
            return None
        return _expand(box, query.max_distance_m)
    if query.georel == "disjoint":
        return None
    return (box,)


def _valid_points(geometry: object) -> list[tuple[float, float]] | None:
    """The positions of a valid Point or MultiPoint; None for other types; raises if invalid."""
    if isinstance(geometry, Mapping) and geometry.get("type") in ("Point", "MultiPoint"):
        _coordinates(str(geometry["type"]), geometry.get("coordinates"))
        return _point_lists(geometry)
    return None


def _shape_of(geometry: object) -> Any | None:
    try:
        return _shape(validate_geometry(geometry))
    except (GeometryError, GEOSException, ValueError, TypeError, IndexError):
        return None


def matches(query: GeoQuery, entity_geometry: object) -> bool:
    """Whether an entity whose ``geoproperty`` holds ``entity_geometry`` satisfies ``query``.

    ``near``: the shortest distance (``distance_m``) is <= maxDistance and
    >= minDistance. The others are the OGC simple-features predicates with
    the entity on the left: ``within`` = entity within query geometry,
    ``contains`` = entity contains it. An entity value that is not a valid
    GeoJSON geometry matches nothing (it cannot be compared; it is not the
    query's fault).
    """
    if query.georel == "near":
        try:
            target_points = _valid_points(entity_geometry)
        except GeometryError:
            return False
        ref_points = _point_lists(query.geometry)
        if target_points is not None and ref_points is not None:
            d = min(haversine_m(a, b, c, e) for a, b in ref_points for c, e in target_points)
            return _within_distance(query, d)
        target = _shape_of(entity_geometry)
        if target is None:
            return False
        return _within_distance(query, _projected_distance(query._shape, target))
    target = _shape_of(entity_geometry)
    if target is None:
        return False
    ref = query._shape
    try:
        if query.georel == "within":
            return bool(shapely.within(target, ref))
        if query.georel == "contains":
            return bool(shapely.contains(target, ref))
        if query.georel == "intersects":
            return bool(shapely.intersects(target, ref))
        if query.georel == "disjoint":
            return bool(shapely.disjoint(target, ref))
        if query.georel == "equals":
            return bool(shapely.equals(target, ref))
        return bool(shapely.overlaps(target, ref))
    except GEOSException:
        return False


def _within_distance(query: GeoQuery, d: float) -> bool:
    if query.max_distance_m is not None and d > query.max_distance_m:
        return False
    return not (query.min_distance_m is not None and d < query.min_distance_m)


def bboxes_union(boxes: Iterable[BBox]) -> BBox:
    """The smallest box holding all ``boxes`` (an entity with several geometries)."""
    items = list(boxes)
    return BBox(
        min(b.min_lon for b in items),
        min(b.min_lat for b in items),
        max(b.max_lon for b in items),
        max(b.max_lat for b in items),
    )
