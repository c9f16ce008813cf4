"""Deletion records in the temporal history (``timeproperty=deletedAt``) and read checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import orjson

from ldt.cloud.store import sqlite as sqlite_store
from tests.cloud.test_temporal import API, INVALID, _create, _problem

EID = "urn:ngsi-ld:Vehicle:d1"
NULL = "urn:ngsi-ld:null"
JSON = {"Content-Type": "application/json"}


def _vehicle() -> dict[str, Any]:
    return {
        "id": EID,
        "type": "Vehicle",
        "scope": ["/Madrid/Gardens"],
        "speed": [
            {"type": "Property", "value": 120, "observedAt": "2020-09-01T12:03:00Z"},
            {"type": "Property", "value": 80, "observedAt": "2020-09-01T12:05:00Z"},
        ],
        "name": {"type": "LanguageProperty", "languageMap": {"en": "my car"}},
        "parkedIn": {"type": "Relationship", "object": "urn:ngsi-ld:Parking:p1"},
    }


async def _deleted(client: httpx.AsyncClient, query: str = "") -> dict[str, Any]:
    resp = await client.get(f"{API}/temporal/entities/{EID}?timeproperty=deletedAt{query}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_temporal_create_makes_the_current_entity_from_the_newest_instances(
    client: httpx.AsyncClient,
) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    current = await client.get(f"{API}/entities/{EID}")
    assert current.status_code == 200, current.text
    assert current.json()["speed"]["value"] == 80
    assert current.json()["scope"] in ("/Madrid/Gardens", ["/Madrid/Gardens"])
    history = await client.get(f"{API}/temporal/entities/{EID}")
    assert [i["value"] for i in history.json()["speed"]] == [120, 80]  # each instance once
    assert (await client.delete(f"{API}/temporal/entities/{EID}")).status_code == 204
    assert (await client.get(f"{API}/entities/{EID}")).status_code == 404


async def test_deleting_attributes_leaves_deletion_records(client: httpx.AsyncClient) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    assert await _deleted(client) == {"id": EID, "type": "Vehicle"}  # nothing deleted yet
    for attr in ("speed", "name", "scope"):
        resp = await client.delete(f"{API}/entities/{EID}/attrs/{attr}")
        assert resp.status_code == 204, resp.text
    body = await _deleted(client)
    (speed,) = body["speed"]
    assert (speed["type"], speed["value"]) == ("Property", NULL)
    assert "deletedAt" in speed
    assert speed["instanceId"].startswith("urn:")
    assert body["name"][0]["languageMap"] == {"@none": NULL}
    assert "parkedIn" not in body
    assert body["scope"][0]["value"] == []
    values = await _deleted(client, "&options=temporalValues")
    assert values["speed"]["values"] == [[NULL, speed["deletedAt"]]]
    assert values["name"]["languageMaps"][0][0] == {"languageMap": {"@none": NULL}}
    # the other time properties read the history as it was, without deletion records
    plain = await client.get(f"{API}/temporal/entities/{EID}")
    assert [i["value"] for i in plain.json()["speed"]] == [120, 80]


async def test_deleting_the_entity_records_every_attribute(client: httpx.AsyncClient) -> None:
    entity = {**_vehicle(), "speed": {"type": "Property", "value": 5}}
    resp = await client.post(f"{API}/entities", content=orjson.dumps(entity), headers=JSON)
    assert resp.status_code == 201, resp.text
    assert (await client.delete(f"{API}/entities/{EID}")).status_code == 204
    body = await _deleted(client)
    assert body["parkedIn"][0]["object"] == NULL
    assert body["speed"][0]["value"] == NULL
    assert body["scope"][0]["value"] == []
    later = await _deleted(client, "&timerel=after&timeAt=2100-01-01T00:00:00Z")
    assert later == {"id": EID, "type": "Vehicle"}


async def test_reads_refuse_unknown_parameters_and_media(client: httpx.AsyncClient) -> None:
    assert (await _create(client, _vehicle())).status_code == 201
    _problem(await client.get(f"{API}/temporal/entities?type=Vehicle&bogus=1"), 400, INVALID)
    _problem(await client.get(f"{API}/temporal/entities/{EID}?bogus=1"), 400, INVALID)
    for accept in ("application/geo+json", "application/xml"):
        resp = await client.get(f"{API}/temporal/entities?type=Vehicle", headers={"Accept": accept})
        assert resp.status_code == 406, resp.text


def test_an_older_sqlite_file_gets_the_deleted_at_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE attr_instances (instance_id TEXT PRIMARY KEY, entity_id TEXT NOT NULL,"
        " attr TEXT NOT NULL, dataset_id TEXT, observed_at_ms INTEGER,"
        " created_at_ms INTEGER NOT NULL, modified_at_ms INTEGER NOT NULL, doc TEXT NOT NULL)"
    )
    con.close()
    migrated = sqlite_store.connect(path)
    columns = {r[1] for r in migrated.execute("PRAGMA table_info(attr_instances)")}
    migrated.close()
    assert "deleted_at_ms" in columns
