"""The stores' search prefilters give the exact answer: the plain type-column test (used while
no entity is multi-typed) and the location grid cells and boxes (``geo_cells``, both engines),
which must follow every write."""

from __future__ import annotations

import random
from typing import Any

from ldt.cloud.ngsild.entity_ops import delete_entity, upsert
from ldt.cloud.ngsild.entity_query import EntityQuery, parse_types
from ldt.cloud.ngsild.geo import parse_geoquery
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.store import Store, schema
from ldt.cloud.store.database import Tx

NOW = "2024-05-01T12:00:00.000Z"
TYPES = ("Alpha", "Beta", "Gamma")
SELECTIONS = ("Alpha", "Alpha,Beta", "Alpha|Gamma", "Alpha;Beta", "Beta,(Alpha;Gamma)", "Delta")


async def _put(store: Store, docs: list[dict[str, Any]]) -> None:
    outcomes = await store.entities.write(
        refusable=NgsiLdError, changes=[(d["id"], upsert(d, NOW, replace=True)) for d in docs]
    )
    assert all(isinstance(o, str) for o in outcomes), outcomes


async def _ids(store: Store, query: EntityQuery) -> list[str]:
    page, total = await store.entities.search(query, limit=1000, offset=0)
    assert total == len(page)
    return [e["id"] for e in page]


def _point(lon: float, lat: float, name: str = "location") -> dict[str, Any]:
    return {name: {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}}


def _near(lon: float, lat: float, metres: int = 200) -> EntityQuery:
    geo = parse_geoquery(
        georel=f"near;maxDistance=={metres}",
        geometry="Point",
        coordinates=f"[{lon},{lat}]",
        geoproperty=None,
    )
    assert geo is not None
    return EntityQuery(geo=geo)


async def test_type_selections_are_exact_with_and_without_multi_typed_entities(
    store: Store,
) -> None:
    rng = random.Random(7)
    docs: list[dict[str, Any]] = [
        {"id": f"urn:ngsi-ld:T:{i:03d}", "type": rng.choice(TYPES)} for i in range(40)
    ]
    await _put(store, docs)

    async def check() -> None:
        for selection in SELECTIONS:
            query = EntityQuery(types=parse_types(selection))
            want = sorted(d["id"] for d in docs if query.matches(d))
            assert await _ids(store, query) == want, selection

    await check()  # single-typed only: the type column alone
    both = {"id": "urn:ngsi-ld:T:100", "type": ["Alpha", "Beta"]}
    docs.append(both)
    await _put(store, [both])
    await check()  # the general form, which also reads the documents' type lists
    assert both["id"] in await _ids(store, EntityQuery(types=parse_types("Alpha;Beta")))
    assert both["id"] in await _ids(store, EntityQuery(types=parse_types("Beta")))


async def test_location_boxes_follow_every_write(store: Store) -> None:
    eid = "urn:ngsi-ld:Spot:1"
    await _put(store, [{"id": eid, "type": "Spot", **_point(2.35, 48.85)}])
    assert await _ids(store, _near(2.35, 48.85)) == [eid]

    await _put(store, [{"id": eid, "type": "Spot", **_point(13.40, 52.52)}])  # moved
    assert await _ids(store, _near(2.35, 48.85)) == []
    assert await _ids(store, _near(13.40, 52.52)) == [eid]

    expanded = _point(11.57, 48.13, name="https://uri.etsi.org/ngsi-ld/location")
    await _put(store, [{"id": eid, "type": "Spot", **expanded}])
    assert await _ids(store, _near(13.40, 52.52)) == []
    assert await _ids(store, _near(11.57, 48.13)) == [eid]

    await _put(store, [{"id": eid, "type": "Spot"}])  # no location any more
    assert await _ids(store, _near(11.57, 48.13)) == []

    await store.entities.upsert([{"id": eid, "type": "Spot", **_point(4.0, 50.0)}], replace=True)
    assert await _ids(store, _near(4.0, 50.0)) == [eid]

    (outcome,) = await store.entities.write(
        refusable=NgsiLdError, changes=[(eid, delete_entity(eid))]
    )
    assert outcome == "deleted"
    assert await _ids(store, _near(4.0, 50.0)) == []


async def test_a_polygon_is_found_by_a_point_inside_it_far_from_its_corners(store: Store) -> None:
    ring = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    doc = {
        "id": "urn:ngsi-ld:Area:1",
        "type": "Area",
        "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [ring]}},
    }
    await _put(store, [doc])
    assert await _ids(store, _near(0.5, 0.5, metres=10)) == [doc["id"]]
    assert await _ids(store, _near(1.5, 0.5, metres=10)) == []


async def test_the_location_migration_indexes_rows_written_before_it(store: Store) -> None:
    await _put(
        store, [{"id": f"urn:ngsi-ld:Spot:{i}", "type": "Spot", **_point(i, i)} for i in (1, 2)]
    )

    async def as_before(tx: Tx) -> None:  # rows written before schema 12 had no cell
        await tx.execute("UPDATE entities SET geo_cell = NULL, x0 = NULL")
        await tx.execute("DELETE FROM ldt_schema_version WHERE version > 11")

    await store.db.write(as_before)
    assert await _ids(store, _near(1, 1)) == []
    await schema.migrate(store.db)
    assert await _ids(store, _near(1, 1)) == ["urn:ngsi-ld:Spot:1"]
    assert await _ids(store, _near(2, 2)) == ["urn:ngsi-ld:Spot:2"]


async def test_a_near_query_starts_from_the_grid_cells(store: Store) -> None:
    """The plan a regression would change: a typed near-query reads the cell index, not every
    entity of the type (SQLite, without statistics, walked the type index: 8x slower at
    10,000 entities) nor the whole table (PostgreSQL, with a cell set it could not see)."""
    await _put(
        store,
        [
            {
                "id": f"urn:ngsi-ld:Spot:{i}",
                "type": "Spot",
                **_point(4 + (i % 50) / 250, 50 + (i // 50) / 250),
            }
            for i in range(2500)
        ],
    )

    async def analyze(tx: Tx) -> None:  # PostgreSQL runs autovacuum; SQLite never analyzes
        if tx.dialect.postgres:
            await tx.execute("ANALYZE entities")

    await store.db.write(analyze)
    query = _near(4.1, 50.1)
    plan = await store.entities.plan(EntityQuery(types=parse_types("Spot"), geo=query.geo))
    assert "entities_by_cell" in plan, plan
    assert "entities_by_type" not in plan, plan
