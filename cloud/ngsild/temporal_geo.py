"""Geo-queries on the temporal representation (GS CIM 009 v1.9.1 clause 5.7.4, 4.10).

A temporal entity matches when one instance of its geoproperty in the query's time window
holds a geometry that satisfies the geo-query (``geo.matches``): where the entity was during
the window, not where it is now. That is what ETSI's 021_09 expects: a vehicle that passed
near the point within the window is answered, one without a location is not.

History has no spatial index, so the candidates (the type/id selection) are read a page at a
time, only the geoproperty's instances of each page are fetched, and what matches is kept as an
id list; the caller then pages and orders that selection with ``store.temporal.query`` as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ldt.cloud.ngsild import geo
from ldt.cloud.ngsild.temporal import Window
from ldt.cloud.store.base import Store

__all__ = ["matching_ids"]

_PAGE: Final = 1000


async def matching_ids(
    store: Store,
    query: geo.GeoQuery,
    geoproperty: str,
    window: Window,
    *,
    types: Sequence[str] | None,
    ids: Sequence[str] | None,
) -> list[str]:
    """The ids (of ``types``/``ids``) whose ``geoproperty`` matched the query in ``window``.

    ``geoproperty`` is the stored attribute name. lastN does not narrow the search: any
    instance in the time range counts.
    """
    matched: list[str] = []
    span = Window(
        time_property=window.time_property, start_ms=window.start_ms, end_ms=window.end_ms
    )
    offset = 0
    while True:
        headers, total = await store.temporal.query(
            types=types, ids=ids, limit=_PAGE, offset=offset
        )
        page = [h.id for h in headers]
        found = {
            row.entity_id
            for row in await store.temporal.instances(page, [geoproperty], span)
            if geo.matches(query, row.doc.get("value"))
        }
        matched.extend(i for i in page if i in found)
        offset += _PAGE
        if not headers or offset >= total:
            return matched
