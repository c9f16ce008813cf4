"""What entity writes leave in the temporal history, and the indexes that keep it cheap.

The write path skips work for attributes a write left alone and names instances
with a process prefix and a counter instead of uuid4s; these tests pin down that
nothing the history promises (every change kept, deletions recorded, indexed
time windows) is lost on the way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from ldt.cloud.ngsild.temporal import new_instance_id
from ldt.cloud.store import PostgresStore
from ldt.cloud.store import sqlite as sqlite_store
from ldt.cloud.store.postgres import SCHEMA_VERSION

API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
EID = "urn:ngsi-ld:WeatherObserved:h1"
_ONE_DAY = (
    "SELECT * FROM attr_instances WHERE entity_id IN (?) AND attr IN (?)"
    " AND deleted_at_ms IS {} NULL AND {col} >= ? AND {col} < ?"
)


def _station() -> dict[str, Any]:
    return {
        "id": EID,
        "type": "WeatherObserved",
        "temperature": {"type": "Property", "value": 20.5, "observedAt": "2024-05-01T12:00:00Z"},
        "windSpeed": {"type": "Property", "value": 3.0},
        "name": {"type": "Property", "value": "Station 1"},
    }


async def _history(client: httpx.AsyncClient, extra: str = "") -> dict[str, Any]:
    resp = await client.get(f"{API}/temporal/entities/{EID}?options=sysAttrs{extra}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_instance_ids_are_uris_unique_and_ascending() -> None:
    ids = [new_instance_id() for _ in range(1000)]
    assert all(i.startswith("urn:ngsi-ld:attribute:instance:") for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # new rows append to the primary-key index


async def test_every_change_is_kept_and_untouched_attributes_add_nothing(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post(f"{API}/entities", content=orjson.dumps(_station()), headers=JSON)
    assert resp.status_code == 201, resp.text
    for value in (21.0, 21.0, 22.5):  # the repeated value changes nothing
        patch = {"temperature": {"type": "Property", "value": value}}
        resp = await client.patch(
            f"{API}/entities/{EID}/attrs", content=orjson.dumps(patch), headers=JSON
        )
        assert resp.status_code == 204, resp.text
    body = await _history(client)
    assert [i["value"] for i in body["temperature"]] == [20.5, 21.0, 22.5]
    assert len(body["windSpeed"]) == 1
    assert len(body["name"]) == 1
    ids = [i["instanceId"] for a in ("temperature", "windSpeed", "name") for i in body[a]]
    assert len(set(ids)) == len(ids)
    current = (await client.get(f"{API}/entities/{EID}?options=sysAttrs")).json()
    assert current["windSpeed"]["modifiedAt"] == body["windSpeed"][0]["modifiedAt"]
    assert current["temperature"]["modifiedAt"] == body["temperature"][-1]["modifiedAt"]


async def test_a_sub_attribute_change_is_a_change(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{API}/entities", content=orjson.dumps(_station()), headers=JSON)
    assert resp.status_code == 201, resp.text
    patch = {
        "windSpeed": {
            "type": "Property",
            "value": 3.0,
            "accuracy": {"type": "Property", "value": 0.1},
        }
    }
    resp = await client.patch(
        f"{API}/entities/{EID}/attrs", content=orjson.dumps(patch), headers=JSON
    )
    assert resp.status_code == 204, resp.text
    body = await _history(client)
    assert [i.get("accuracy", {}).get("value") for i in body["windSpeed"]] == [None, 0.1]


async def test_upserting_an_entity_again_records_only_what_changed(
    client: httpx.AsyncClient,
) -> None:
    async def upsert(entity: dict[str, Any]) -> None:
        resp = await client.post(
            f"{API}/entityOperations/upsert", content=orjson.dumps([entity]), headers=JSON
        )
        assert resp.status_code in (201, 204), resp.text

    await upsert(_station())
    changed = _station()
    changed["windSpeed"] = {"type": "Property", "value": 4.0}
    del changed["name"]
    await upsert(changed)  # replace: name is deleted, windSpeed changed, temperature kept
    body = await _history(client)
    assert len(body["temperature"]) == 1
    assert [i["value"] for i in body["windSpeed"]] == [3.0, 4.0]
    deleted = await _history(client, "&timeproperty=deletedAt")
    assert [i["value"] for i in deleted["name"]] == ["urn:ngsi-ld:null"]


def test_sqlite_indexes_one_day_windows_and_deletion_records(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite_store.connect(path)
    con.execute("DROP INDEX attr_instances_by_deleted")  # as files before the partial index
    con.execute(
        "CREATE INDEX attr_instances_by_deleted ON attr_instances (entity_id, attr, deleted_at_ms)"
    )
    con.close()
    con = sqlite_store.connect(path)
    try:
        (sql,) = con.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'attr_instances_by_deleted'"
        ).fetchone()
        assert "WHERE deleted_at_ms IS NOT NULL" in sql
        for column, index, negated in (
            ("observed_at_ms", "attr_instances_by_observed", ""),
            ("modified_at_ms", "attr_instances_by_modified", ""),
            ("deleted_at_ms", "attr_instances_by_deleted", "NOT"),
        ):
            plan = con.execute(
                "EXPLAIN QUERY PLAN " + _ONE_DAY.format(negated, col=column),
                (EID, "temperature", 0, 86_400_000),
            ).fetchall()
            assert f"USING INDEX {index} (entity_id=? AND attr=? AND {column}>?" in str(plan)
    finally:
        con.close()


async def test_postgresql_migrates_the_deleted_index_to_partial(postgres_dsn: str) -> None:
    async with PostgresStore(dsn=postgres_dsn):
        pass
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as con:
        await con.execute("DROP INDEX attr_instances_by_deleted")  # back to schema version 7
        await con.execute(
            "CREATE INDEX attr_instances_by_deleted ON attr_instances"
            " (entity_id, attr, deleted_at_ms)"
        )
        await con.execute("DELETE FROM ldt_schema_version WHERE version >= 8")
    async with PostgresStore(dsn=postgres_dsn):
        pass
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as con:
        cur = await con.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'attr_instances_by_deleted'"
        )
        (definition,) = await cur.fetchone() or ("",)
        assert "WHERE (deleted_at_ms IS NOT NULL)" in definition
        cur = await con.execute("SELECT max(version) FROM ldt_schema_version")
        assert (await cur.fetchone() or (0,))[0] == SCHEMA_VERSION


def test_sqlite_partial_index_answers_deletion_records(tmp_path: Path) -> None:
    con = sqlite_store.connect(tmp_path / "x.db")
    try:
        rows = [
            (f"i{n}", EID, "temperature", None, n, n, n, "{}", n if n % 2 else None)
            for n in range(10)
        ]
        con.executemany("INSERT INTO attr_instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        indexed = con.execute(
            "SELECT count(*) FROM attr_instances INDEXED BY attr_instances_by_deleted"
            " WHERE entity_id = ? AND attr = ? AND deleted_at_ms IS NOT NULL",
            (EID, "temperature"),
        ).fetchone()[0]
        assert indexed == 5  # INDEXED BY raises if the planner could not use the index
    finally:
        con.close()


def test_a_forked_process_names_instances_apart() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, to the parent
        os.write(write, new_instance_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    parent = new_instance_id()
    assert child.rsplit("-", 1)[0] != parent.rsplit("-", 1)[0]
