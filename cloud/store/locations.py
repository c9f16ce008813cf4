"""The box both stores index an entity's ``location`` by: the union of its valid geometries.

One definition for the grid index both engines keep (``geo_cells``), so a geo-query
prefilters the same candidates on both. The box is only a
prefilter: ``EntityQuery.matches`` decides, so an entity whose ``location`` is not a valid
geometry simply gets no box (it can match no ``location`` geo-query).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ldt.cloud.ngsild.entity_query import LOCATION_NAMES, geometries
from ldt.cloud.ngsild.geo import BBox, GeometryError, bbox, bboxes_union, validate_geometry

__all__ = ["location_bbox"]


def location_bbox(entity: Mapping[str, Any]) -> BBox | None:
    """The union of the boxes of ``entity``'s ``location`` geometries (short or expanded
    name, every instance), or None when it has no valid one. Never raises."""
    boxes: list[BBox] = []
    for geometry in geometries(entity, LOCATION_NAMES):
        try:
            boxes.append(bbox(validate_geometry(geometry)))
        except (GeometryError, TypeError, ValueError):
            continue
    return bboxes_union(boxes) if boxes else None
