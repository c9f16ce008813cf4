"""A store written by the layout before issue 12 upgrades with nothing lost, on both engines.

The fixtures (``fixtures``) hold 32 synced readings, of which only each batch's newest per
attribute reached the temporal API before; after the upgrade every one of them is a
temporal instance with its own observedAt, the internal ``readings`` table is gone, the
API-made history, entities, subscriptions and registrations are all still there, and
locations are found through the new grid index. Opening the upgraded store again changes
nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ldt.cloud.ngsild.entity_query import EntityQuery
from ldt.cloud.ngsild.geo import parse_geoquery
from ldt.cloud.store import PostgresStore, SqliteStore, Store
from ldt.cloud.store.database import Tx
from tests.cloud.legacy import fixtures
from tests.pg import PostgresServer


async def _check(store: Store, manifest: dict[str, Any]) -> None:
    total = 0
    for series in manifest["readings"]:
        got = await store.readings.history(series["entity_id"], series["attr"])
        want = series["readings"]
        assert [(h.gateway_id, h.seq, h.observed_at_ms, h.quality) for h in got] == [
            (w[0], w[1], w[2], w[4]) for w in want
        ]
        for h, w in zip(got, want, strict=True):
            if w[4] != "bad":
                assert h.value == w[3]
            else:
                assert h.reason == w[5]
        total += len(got)
    assert total == manifest["readings_total"] == 32

    async def tables(tx: Tx) -> tuple[bool, int]:
        if tx.dialect.postgres:
            gone = await tx.scalar("SELECT to_regclass('readings') IS NULL")
        else:
            gone = await tx.scalar("SELECT 1 FROM sqlite_master WHERE name = 'readings'") is None
        return bool(gone), int(await tx.scalar("SELECT count(*) FROM attr_instances"))

    gone, instances = await store.db.read(tables)
    assert gone
    made_by_api = sum(r["instances"] for r in manifest["attr_instances"])
    assert instances >= made_by_api + 32
    for eid in manifest["entities"]:
        assert await store.entities.get(eid) is not None, eid
    for sub in manifest["subscriptions"]:
        assert await store.subscriptions.get(sub) is not None
    for reg in manifest["registrations"]:
        assert await store.registrations.get(reg) is not None
    located = [eid for eid, info in manifest["entities"].items() if "location" in info["attrs"]]
    if located:
        doc = await store.entities.get(located[0])
        assert doc is not None
        lon, lat = doc["location"]["value"]["coordinates"][:2]
        query = EntityQuery(
            geo=parse_geoquery(
                georel="near;maxDistance==50", geometry="Point", coordinates=f"[{lon},{lat}]"
            )
        )
        found, _ = await store.entities.search(query, limit=100, offset=0)
        assert located[0] in {e["id"] for e in found}


async def test_a_legacy_sqlite_store_upgrades_with_nothing_lost(tmp_path: Path) -> None:
    path = fixtures.copy_sqlite(tmp_path)
    manifest = fixtures.load_manifest()
    async with SqliteStore(path=path) as store:
        await _check(store, manifest)
    async with SqliteStore(path=path) as again:
        await _check(again, manifest)


async def test_a_legacy_postgresql_store_upgrades_with_nothing_lost(
    postgres_server: PostgresServer,
) -> None:
    dsn = fixtures.restore_postgres(postgres_server, postgres_server.create_database())
    manifest = fixtures.load_manifest()
    async with PostgresStore(dsn=dsn) as store:
        await _check(store, manifest)
    async with PostgresStore(dsn=dsn) as again:
        await _check(again, manifest)
