"""``store.temporal`` (``TemporalRepository``) and ``temporal.record``, on both databases.

The HTTP tests (test_temporal*.py) cover what the API answers; these pin down the
repository's own promises: typed headers, same-time replacement per datasetId,
history recorded inside the caller's transaction, and the replacing DELETE
searching the time index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.temporal import AttrInstance, Window, instance_row
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store import Store
from ldt.cloud.store.database import Row, Tx
from ldt.cloud.store.temporal import TemporalHeader, drop_same_time, record

E = "urn:ngsi-ld:Vehicle:r1"
T0 = 1_700_000_000_000
DS = "urn:ngsi-ld:Dataset:b"


def _speed(value: float, at_ms: int, dataset: str | None = None) -> AttrInstance:
    doc: dict[str, Any] = {"type": "Property", "value": value, "observedAt": iso_ms(at_ms)}
    if dataset is not None:
        doc["datasetId"] = dataset
    return instance_row(E, "speed", doc, T0)


async def _values(store: Store) -> list[tuple[str, float]]:
    rows = await store.temporal.instances([E], ["speed"], Window())
    return sorted((r.dataset_id or "", r.doc["value"]) for r in rows)


async def test_headers_are_typed_and_entity_reads_header_and_page(store: Store) -> None:
    assert await store.temporal.add(E, ["Vehicle", "Car"], [_speed(1, T0)], now=iso_ms(T0))
    later = iso_ms(T0 + 5)
    assert not await store.temporal.add(E, ["Vehicle", "Car"], [_speed(2, T0 + 1)], now=later)
    header = await store.temporal.get(E)
    assert header == TemporalHeader(E, ["Vehicle", "Car"], T0, T0 + 5)
    assert header.as_doc()["modifiedAt"] == iso_ms(T0 + 5)
    headers, total = await store.temporal.query(types=["Vehicle"], ids=None, limit=10, offset=0)
    assert (headers, total) == ([header], 1)
    assert await store.temporal.query(types=["Car"], ids=None, limit=10, offset=0) == ([], 0)
    assert await store.temporal.entity("urn:x:none", None, Window(), datasets=None, limit=5) is None
    found = await store.temporal.entity(E, None, Window(), datasets=None, limit=1)
    assert found is not None
    assert found[0] == header
    assert [r.doc["value"] for r in found[1].rows] == [1]
    assert found[1].more


async def test_same_time_replaces_only_its_dataset(store: Store) -> None:
    rows = [_speed(1, T0), _speed(2, T0, DS), _speed(3, T0 + 1000)]
    await store.temporal.add(E, "Vehicle", rows, now=iso_ms(T0))
    await store.temporal.add(E, "Vehicle", [_speed(10, T0), _speed(4, T0 + 2000)], now=iso_ms(T0))
    assert await _values(store) == [("", 3), ("", 4), ("", 10), (DS, 2)]


async def test_record_is_part_of_the_callers_transaction(store: Store) -> None:
    class RefusedError(Exception):
        pass

    async def fails(tx: Tx) -> None:
        await record(tx, {E: ("Vehicle", iso_ms(T0))}, [_speed(1, T0), _speed(2, T0 + 1)])
        raise RefusedError

    with pytest.raises(RefusedError):
        await store.db.write(fails)
    assert await store.temporal.get(E) is None
    assert await _values(store) == []

    async def replaces(tx: Tx) -> None:
        await drop_same_time(tx, [_speed(5, T0)])
        await record(tx, {E: ("Vehicle", iso_ms(T0))}, [_speed(5, T0)])

    await store.temporal.add(E, "Vehicle", [_speed(1, T0)], now=iso_ms(T0))
    await store.db.write(replaces)
    assert await _values(store) == [("", 5)]


async def test_instance_changes_and_deletions(store: Store) -> None:
    rows = [_speed(1, T0), _speed(2, T0 + 1000, DS), _speed(3, T0 + 2000)]
    await store.temporal.add(E, "Vehicle", rows, now=iso_ms(T0))
    doc = {"type": "Property", "value": 7, "instanceId": rows[0].instance_id}
    new = instance_row(E, "speed", doc, T0 + 9)
    assert await store.temporal.replace_instance(new)
    assert not await store.temporal.replace_instance(instance_row(E, "speed", {"value": 1}, T0))
    assert await _values(store) == [("", 3), ("", 7), (DS, 2)]
    assert await store.temporal.delete_instance(E, "speed", rows[2].instance_id)
    assert not await store.temporal.delete_instance(E, "speed", rows[2].instance_id)
    assert await store.temporal.delete(E, attr="speed", dataset_id=DS)
    assert await _values(store) == [("", 7)]
    assert not await store.temporal.delete(E, attr="speed", dataset_id=DS)
    assert await store.temporal.delete(E, attr="speed", all_datasets=True)
    assert await _values(store) == []
    assert await store.temporal.delete(E)
    assert not await store.temporal.delete(E)
    assert await store.temporal.get(E) is None


async def test_lastn_instances_per_attribute(store: Store) -> None:
    rows = [_speed(i, T0 + 1000 * i, DS if i % 2 else None) for i in range(6)]
    untimed = instance_row(E, "speed", {"type": "Property", "value": 99}, T0)
    await store.temporal.add(E, "Vehicle", [*rows, untimed], now=iso_ms(T0))
    found = await store.temporal.instances([E], None, Window(last_n=2))
    assert sorted(r.doc["value"] for r in found) == [4, 5]
    found = await store.temporal.instances([E], ["speed"], Window(last_n=10))
    assert len(found) == 7  # the one without observedAt counts, as the oldest


async def test_closed_store_raises_store_error(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.temporal.get(E)


def _explaining(tx: Tx, plans: list[str]) -> Tx:
    """A transaction that records the plan of each ``execute`` instead of running it."""
    explain = "EXPLAIN" if tx.dialect.postgres else "EXPLAIN QUERY PLAN"

    class Explaining(Tx):
        dialect = tx.dialect

        async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
            found = await tx.fetchall(f"{explain} {sql}", params)
            plans.append(" | ".join(str(r[-1] if len(r) > 1 else r[0]) for r in found))
            return 0

        async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
            raise AssertionError(sql)

        async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
            raise AssertionError(sql)

    return Explaining()


async def test_replacing_searches_the_index_with_every_time_at_once(store: Store) -> None:
    """Right after a load (no statistics): one indexed DELETE for an hour's 3,600 times.

    On PostgreSQL the times are an array the planner sees (it hashes it): built
    by a subquery, they were compared one by one with every instance of the
    attribute, seconds per POST once a day was stored.
    """
    await store.temporal.add(
        E, "Vehicle", [_speed(i, T0 + 1000 * i) for i in range(5_000)], now=iso_ms(T0)
    )
    plans: list[str] = []

    async def explain(tx: Tx) -> None:
        again = [_speed(0, T0 + 1000 * i) for i in range(3_600)]
        await drop_same_time(_explaining(tx, plans), again)

    await store.db.write(explain)
    (plan,) = plans
    if store.db.dialect.postgres:
        assert "Index Scan using attr_instances_by_" in plan, plan[:500]
        assert "Plan" not in plan.replace("Planning", ""), plan[:500]  # no InitPlan/SubPlan
        assert "::bigint[]" in plan, plan[:500]
    else:
        assert "INDEX attr_instances_by_observed (entity_id=? AND attr=? AND observed_at_ms>?" in (
            plan
        ), plan
