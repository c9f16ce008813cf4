"""``store.temporal.page`` (the temporal read cut in SQL) against the Python reference, both stores.

The reference is what the broker did before: every instance of the window
(``store.temporal.instances``), the datasetIds kept, then ``temporal.paginate`` and
``temporal.temporal_entity``. The page must hold the same instances in the same
order, the same attributes, the same Content-Range, and render the same JSON.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from ldt.cloud.ngsild.temporal import (
    AttrInstance,
    Window,
    deletion_row,
    instance_row,
    paginate,
    temporal_entity,
)
from ldt.cloud.ngsild.temporal_page import Render, TemporalPage, attribute_values
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store import PostgresStore, Store, sqlite_temporal
from ldt.cloud.store.database import Row, Tx
from ldt.cloud.store.dialect import POSTGRESQL, SQLITE, Dialect
from ldt.cloud.store.temporal_read import read_page

E1 = "urn:ngsi-ld:Vehicle:p1"
E2 = "urn:ngsi-ld:Vehicle:p2"
T0 = 1_700_000_000_000
DS = "urn:ngsi-ld:Dataset:b"


def _rows(entity_id: str) -> list[AttrInstance]:
    """speed: 12 instances a minute apart, two at the same instant; fuel: two datasets,
    one instance without observedAt; a Relationship; a language map; a deletion record."""
    now = T0 + 3_600_000
    rows = []
    doc: dict[str, Any]
    for i in range(12):
        at = T0 + 60_000 * (i if i != 5 else 4)  # 4 and 5 share an instant: the id decides
        doc = {"type": "Property", "value": 10 * i, "observedAt": iso_ms(at)}
        rows.append(instance_row(entity_id, "speed", doc, now + i))
    for i in range(4):
        doc = {"type": "Property", "value": i / 3}
        if i != 2:  # one without observedAt: it counts at its modifiedAt
            doc["observedAt"] = iso_ms(T0 + 90_000 * i + 30_000)
        if i % 2:
            doc["datasetId"] = DS
        doc["modifiedAt"] = iso_ms(T0 + 100_000 * i)
        rows.append(instance_row(entity_id, "fuel", doc, now))
    for i in range(3):
        doc = {"type": "Relationship", "object": f"urn:x:{i}", "observedAt": iso_ms(T0 + i)}
        rows.append(instance_row(entity_id, "owner", doc, now))
    doc = {"type": "LanguageProperty", "languageMap": {"en": "car"}, "observedAt": iso_ms(T0)}
    rows.append(instance_row(entity_id, "name", doc, now))
    rows.append(deletion_row(entity_id, "speed", {"type": "Property"}, now + 99))
    return rows


@pytest.fixture
async def filled(store: Store) -> Store:
    for entity_id in (E1, E2):
        await store.temporal.add(entity_id, "Vehicle", _rows(entity_id), now=iso_ms(T0))
    return store


async def _reference(
    store: Store,
    ids: list[str],
    attrs: list[str] | None,
    window: Window,
    datasets: frozenset[str | None] | None,
    limit: int,
) -> tuple[list[AttrInstance], set[tuple[str, str]], str | None]:
    found = await store.temporal.instances(ids, attrs, window)
    if datasets is not None:
        found = [r for r in found if r.dataset_id in datasets]
    rows, content_range = paginate(found, window, limit)
    if content_range is None:  # not cut: in any order (the renderer sorts)
        rows = sorted(rows, key=lambda r: r.instance_id)
    return rows, {(r.entity_id, r.attr) for r in found}, content_range


WINDOWS = [
    Window(),
    Window(start_ms=T0 + 120_000),
    Window(start_ms=T0 + 60_000, end_ms=T0 + 300_000),
    Window(end_ms=T0 + 240_000),
    Window(last_n=3),
    Window(last_n=2, start_ms=T0 + 60_000),
    Window(time_property="modifiedAt"),
    Window(time_property="modifiedAt", last_n=2),
    Window(time_property="createdAt", start_ms=T0),
    Window(time_property="deletedAt"),
]


@pytest.mark.parametrize("window", WINDOWS, ids=repr)
@pytest.mark.parametrize("limit", [1, 5, 19, 20, 21, 40, 41, 42, 10_000])
async def test_page_is_the_reference_cut(filled: Store, window: Window, limit: int) -> None:
    ids = [E1, E2]
    for attrs, datasets in [
        (None, None),
        (["speed", "fuel"], None),
        (["fuel"], frozenset({None})),
        (["fuel", "owner"], frozenset({DS, None})),
        (None, frozenset({DS})),
    ]:
        want_rows, want_present, want_range = await _reference(
            filled, ids, attrs, window, datasets, limit
        )
        page = await filled.temporal.page(ids, attrs, window, datasets=datasets, limit=limit)
        got = (
            page.rows if want_range is not None else sorted(page.rows, key=lambda r: r.instance_id)
        )
        assert [r.instance_id for r in got] == [r.instance_id for r in want_rows], (attrs, datasets)
        assert got == want_rows
        assert page.present == want_present
        assert page.more == (want_range is not None)
        assert page.content_range(window) == want_range


@pytest.mark.parametrize("window", WINDOWS, ids=repr)
@pytest.mark.parametrize("limit", [3, 20, 10_000])
@pytest.mark.parametrize("render", ["full", "full_sys", "values"])
async def test_rendered_page_is_the_reference_json(
    filled: Store, window: Window, limit: int, render: Render
) -> None:
    ids = [E1, E2]
    parsed = await filled.temporal.page(ids, None, window, datasets=None, limit=limit)
    page = await filled.temporal.page(ids, None, window, datasets=None, limit=limit, render=render)
    assert page.texts is not None
    assert not page.rows
    assert page.present == parsed.present
    assert page.more == parsed.more
    assert page.content_range(window) == parsed.content_range(window)
    values = attribute_values(page.texts, page.present, render)
    for entity_id in ids:
        want = temporal_entity(
            {"id": entity_id, "type": "Vehicle"},
            [r for r in parsed.rows if r.entity_id == entity_id],
            temporal_values=render == "values",
            sys_attrs=render == "full_sys",
            time_property=window.time_property,
            empty_attrs=[a for e, a in parsed.present if e == entity_id],
        )
        got = {"id": entity_id, "type": "Vehicle", **values.get(entity_id, {})}
        assert orjson.loads(orjson.dumps(got)) == want


async def test_empty_asks_read_nothing(filled: Store) -> None:
    asks: list[tuple[list[str], list[str] | None]] = [
        ([], None),
        ([E1], []),
        (["urn:ngsi-ld:Vehicle:none"], None),
    ]
    for ids, attrs in asks:
        page = await filled.temporal.page(ids, attrs, Window(), datasets=None, limit=10)
        assert page == TemporalPage([], frozenset(), more=False)


async def test_attributes_cut_away_still_show_empty(filled: Store) -> None:
    """With room for one instance (speed's first, at T0), the other attributes show, empty."""
    page = await filled.temporal.page([E1], None, Window(), datasets=None, limit=1)
    assert [(r.attr, r.observed_at_ms) for r in page.rows] == [("speed", T0)]
    assert page.present == {(E1, a) for a in ("speed", "fuel", "owner", "name")}
    assert page.more
    assert page.content_range(Window()) == f"date-time {iso_ms(T0)}-{iso_ms(T0)}/*"


class _Recorder(Tx):
    """A transaction that only records the statements it is given (and finds no rows)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.issued: list[str] = []

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.issued.append(sql)
        return 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        self.issued.append(sql)
        return 0

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.issued.append(sql)
        return []


async def _statements(window: Window, dialect: Dialect) -> list[str]:
    """The statements a one-attribute read issues (against no data: the first of each kind)."""
    tx = _Recorder(dialect)
    await read_page(tx, [E1], ["speed"], window, datasets=None, limit=10_000, render="full")
    return tx.issued


PLANNED = [Window(start_ms=T0, end_ms=T0 + 86_400_000), Window(last_n=100)]


@pytest.mark.parametrize("window", PLANNED, ids=["between", "lastN"])
async def test_sqlite_reads_the_time_index_in_order(tmp_path: Path, window: Window) -> None:
    """The page is a range of the (entity_id, attr, observed_at_ms) index, read in its order."""
    con = sqlite3.connect(tmp_path / "plan.db")
    con.executescript(sqlite_temporal.SCHEMA)
    sqlite_temporal.migrate(con)
    (sql,) = (await _statements(window, SQLITE))[:1]
    params = [E1, "speed", *([T0, T0 + 1] if window.last_n is None else []), 1]
    plan = " | ".join(r[3] for r in con.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX attr_instances_by_observed (entity_id=? AND attr=?" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives the order


@pytest.mark.parametrize("window", PLANNED, ids=["between", "lastN"])
async def test_postgresql_reads_the_time_index_in_order(postgres_dsn: str, window: Window) -> None:
    """Right after a load, without statistics, the page is still an ordered index scan."""
    async with PostgresStore(dsn=postgres_dsn, pool_size=1) as store:
        rows = [
            instance_row(
                E1, "speed", {"type": "Property", "value": i, "observedAt": iso_ms(T0 + i)}, T0
            )
            for i in range(5_000)
        ]
        await store.temporal.add(E1, "Vehicle", rows, now=iso_ms(T0))
    (sql,) = (await _statements(window, POSTGRESQL))[:1]
    params = [E1, "speed", *([T0, T0 + 86_400_000] if window.last_n is None else []), 100]
    async with await psycopg.AsyncConnection.connect(postgres_dsn) as con, con.transaction():
        assert POSTGRESQL.index_order is not None  # as TemporalRepository.page
        await con.execute(POSTGRESQL.index_order.encode())
        cur = await con.execute(f"EXPLAIN {POSTGRESQL.sql(sql)}".encode(), params)
        plan = " | ".join(str(r[0]) for r in await cur.fetchall())
    assert "Index Scan" in plan, plan
    assert "attr_instances_by_observed" in plan, plan
    assert "Sort" not in plan, plan
