"""NGSILD-Tenant: one store per tenant, on SQLite (a file each) and PostgreSQL (a schema each).

Every test using ``store`` runs on both. What is checked is what a client sees: entities,
subscriptions (and where notifications go) and temporal history of one tenant are
invisible from the others and from the default tenant; the first creating request makes a
tenant, other requests on a missing one get 404 NonexistentTenant; bad names get 400 and
create nothing; tenants outlive the broker and are shared by brokers on one database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from psycopg import sql
from starlette.applications import Starlette

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.server import build_app, running_cloud
from ldt.cloud.store import DB_FILENAME, PostgresStore, SqliteStore, Store
from ldt.cloud.tenancy import TENANTS_DIRNAME, tenant_key, validate_tenant
from ldt.contract import INGEST_PATH
from tests.cloud.batches import batch, encode, good_rows
from tests.cloud.conftest import register
from tests.cloud.helpers import asgi_client, receiver

API = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
JSON = {"Content-Type": "application/json"}
A = {"NGSILD-Tenant": "urn:ngsi-ld:tenant:city-a"}
B = {"NGSILD-Tenant": "city-b"}
GHOST = {"NGSILD-Tenant": "ghost"}
BAD_NAMES = ["../etc", "a/b", "x;DROP SCHEMA public", "a b", ".hidden", "-x", "t'--", "x" * 129]


def building(n: int, **attrs: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": f"urn:ngsi-ld:Building:b{n}", "type": "Building"}
    doc.update({k: {"type": "Property", "value": v} for k, v in attrs.items()})
    return doc


def vehicle_history(eid: str) -> dict[str, Any]:
    return {
        "id": eid,
        "type": "Vehicle",
        "speed": [
            {"type": "Property", "value": 120, "observedAt": "2020-09-01T12:03:00Z"},
            {"type": "Property", "value": 80, "observedAt": "2020-09-01T12:05:00Z"},
        ],
    }


def problem(resp: httpx.Response, status: int, kind: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["type"] == ERR + kind, resp.text


async def tenant_places(store: Store) -> list[str]:
    """What exists on disk or in the database for tenants beside ``store``."""
    if isinstance(store, SqliteStore):
        root = store.path.parent / TENANTS_DIRNAME
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    assert isinstance(store, PostgresStore)
    async with await psycopg.AsyncConnection.connect(store.dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, current_schema() || '__')"
        )
        return sorted(str(r[0]) for r in await cur.fetchall())


async def drop_tenant_schemas(store: Store) -> None:
    """PostgreSQL: tenant schemas live beside the test's schema, which the fixture drops."""
    if not isinstance(store, PostgresStore):
        return
    schemas = await tenant_places(store)
    async with await psycopg.AsyncConnection.connect(store.dsn, autocommit=True) as conn:
        for name in schemas:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


async def close_app(app: Starlette) -> None:
    await app.state.tenants.aclose()
    await app.state.notifier.aclose()


@pytest.fixture
async def app(store: Store) -> AsyncIterator[Starlette]:
    built = build_app(store, access=AccessControl.lab())
    try:
        yield built
    finally:
        await close_app(built)
        await drop_tenant_schemas(store)


async def post_entity(api: httpx.AsyncClient, doc: dict[str, Any], tenant: dict[str, str]) -> None:
    resp = await api.post(f"{API}/entities", content=orjson.dumps(doc), headers={**JSON, **tenant})
    assert resp.status_code == 201, resp.text


async def ids(api: httpx.AsyncClient, tenant: dict[str, str]) -> list[str]:
    resp = await api.get(f"{API}/entities", params={"type": "Building"}, headers=tenant)
    assert resp.status_code == 200, resp.text
    return sorted(e["id"] for e in resp.json())


def test_names_are_validated_and_mapped_to_safe_distinct_keys() -> None:
    for good in ("a", "city-a", "urn:ngsi-ld:tenant:x", "A.b_c~d", "x" * 128):
        key = tenant_key(validate_tenant(good))
        assert key.replace("_", "").isalnum()
        assert key.islower()
        assert len(key) <= 35
        assert tenant_key(good) == key  # deterministic: the same folder/schema after a restart
    assert tenant_key("CityA") != tenant_key("citya") != tenant_key("city-a")
    for bad in [*BAD_NAMES, "", "città", "a\tb"]:
        with pytest.raises(Exception, match="Invalid tenant") as info:
            validate_tenant(bad)
        assert getattr(info.value, "status", None) == 400


async def test_entities_are_invisible_across_tenants(api: httpx.AsyncClient) -> None:
    resp = await api.post(
        f"{API}/entities", content=orjson.dumps(building(1, height=10)), headers={**JSON, **A}
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["NGSILD-Tenant"] == A["NGSILD-Tenant"]
    # the same id in another tenant and in the default one: no conflict, separate documents
    await post_entity(api, building(1, height=20), B)
    await post_entity(api, building(2, height=30), B)
    await post_entity(api, building(3, height=40), {})
    assert await ids(api, A) == ["urn:ngsi-ld:Building:b1"]
    assert await ids(api, B) == ["urn:ngsi-ld:Building:b1", "urn:ngsi-ld:Building:b2"]
    assert await ids(api, {}) == ["urn:ngsi-ld:Building:b3"]
    got = await api.get(f"{API}/entities/urn:ngsi-ld:Building:b1", headers=A)
    assert got.json()["height"]["value"] == 10
    assert got.headers["NGSILD-Tenant"] == A["NGSILD-Tenant"]
    problem(
        await api.get(f"{API}/entities/urn:ngsi-ld:Building:b2", headers=A), 404, "ResourceNotFound"
    )
    problem(await api.get(f"{API}/entities/urn:ngsi-ld:Building:b1"), 404, "ResourceNotFound")
    # deleting in one tenant leaves the other's entity alone
    assert (
        await api.delete(f"{API}/entities/urn:ngsi-ld:Building:b1", headers=B)
    ).status_code == 204
    assert await ids(api, A) == ["urn:ngsi-ld:Building:b1"]
    types = await api.get(f"{API}/types", headers=A)
    assert types.json()["typeList"] == ["Building"]
    assert (await api.get(f"{API}/types", headers=GHOST)).status_code == 404


async def test_first_creating_request_makes_the_tenant_others_get_nonexistent_tenant(
    api: httpx.AsyncClient, store: Store
) -> None:
    eid = f"{API}/entities/urn:ngsi-ld:Building:b1"
    patch = orjson.dumps({"height": {"type": "Property", "value": 1}})
    attempts = [
        api.get(f"{API}/entities", params={"type": "Building"}, headers=GHOST),
        api.get(eid, headers=GHOST),
        api.delete(eid, headers=GHOST),
        api.patch(f"{eid}/attrs", content=patch, headers={**JSON, **GHOST}),
        api.put(eid, content=orjson.dumps(building(1)), headers={**JSON, **GHOST}),
        api.get(f"{API}/subscriptions", headers=GHOST),
        api.get(f"{API}/temporal/entities/urn:ngsi-ld:Building:b1", headers=GHOST),
        api.post(
            f"{API}/entityOperations/delete", content=b'["urn:x:1"]', headers={**JSON, **GHOST}
        ),
        api.post(
            f"{API}/temporal/entityOperations/query",
            content=b'{"type": "Query"}',
            headers={**JSON, **GHOST},
        ),
    ]
    for attempt in attempts:
        resp = await attempt
        problem(resp, 404, "NonexistentTenant")
        assert "ghost" in resp.json()["detail"]
    assert await tenant_places(store) == []  # none of those created anything
    await post_entity(api, building(1), GHOST)
    assert len(await tenant_places(store)) == 1
    assert await ids(api, GHOST) == ["urn:ngsi-ld:Building:b1"]
    # a subscription and a temporal entity create their tenant too
    sub = {
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
    }
    created = await api.post(
        f"{API}/subscriptions", content=orjson.dumps(sub), headers={**JSON, **A}
    )
    assert created.status_code == 201, created.text
    history = orjson.dumps(vehicle_history("urn:ngsi-ld:Vehicle:v1"))
    created = await api.post(f"{API}/temporal/entities", content=history, headers={**JSON, **B})
    assert created.status_code == 201, created.text
    assert len(await tenant_places(store)) == 3


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_invalid_tenant_names_get_400_and_create_nothing(
    api: httpx.AsyncClient, store: Store, name: str
) -> None:
    resp = await api.post(
        f"{API}/entities",
        content=orjson.dumps(building(1)),
        headers={**JSON, "NGSILD-Tenant": name},
    )
    problem(resp, 400, "BadRequestData")
    problem(
        await api.get(f"{API}/entities/urn:x:1", headers={"NGSILD-Tenant": name}),
        400,
        "BadRequestData",
    )
    assert await tenant_places(store) == []
    assert await ids(api, {}) == []


async def test_subscriptions_and_notifications_stay_in_their_tenant(
    api: httpx.AsyncClient,
) -> None:
    async with receiver() as in_a, receiver() as in_default:
        for tenant, rec in ((A, in_a), ({}, in_default)):
            sub = {
                "id": "urn:ngsi-ld:Subscription:s1",  # the same id in both: no conflict
                "type": "Subscription",
                "entities": [{"type": "Building"}],
                "notification": {"endpoint": {"uri": rec.url, "accept": "application/json"}},
            }
            resp = await api.post(
                f"{API}/subscriptions", content=orjson.dumps(sub), headers={**JSON, **tenant}
            )
            assert resp.status_code == 201, resp.text
        listed = await api.get(f"{API}/subscriptions", headers=A)
        endpoints = [s["notification"]["endpoint"]["uri"] for s in listed.json()]
        assert endpoints == [in_a.url]
        await post_entity(api, building(7, height=1), B)  # a third tenant: nobody is told
        await post_entity(api, building(1, height=1), A)
        bodies = await in_a.wait(1)
        assert [e["id"] for e in bodies[0]["data"]] == ["urn:ngsi-ld:Building:b1"]
        await post_entity(api, building(2, height=2), {})
        bodies = await in_default.wait(1)
        assert [e["id"] for e in bodies[0]["data"]] == ["urn:ngsi-ld:Building:b2"]
        await asyncio.sleep(0.2)  # room for a wrong delivery to arrive
        assert (len(in_a.received), len(in_default.received)) == (1, 1)
        # the receiver learns the tenant from the header (clause 6.3.14); the default has none
        assert in_a.received[0][0]["ngsild-tenant"] == A["NGSILD-Tenant"]
        assert "ngsild-tenant" not in in_default.received[0][0]
        one = await api.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1", headers=A)
        assert one.json()["notification"]["timesSent"] == 1
        assert (
            await api.delete(f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1", headers=A)
        ).status_code == 204
        kept = await api.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1")
        assert kept.json()["notification"]["endpoint"]["uri"] == in_default.url


async def test_temporal_history_stays_in_its_tenant(api: httpx.AsyncClient) -> None:
    eid = "urn:ngsi-ld:Vehicle:v1"
    history = orjson.dumps(vehicle_history(eid))
    created = await api.post(f"{API}/temporal/entities", content=history, headers={**JSON, **A})
    assert created.status_code == 201, created.text
    got = await api.get(f"{API}/temporal/entities/{eid}", headers=A)
    assert [i["value"] for i in got.json()["speed"]] == [120, 80]
    problem(await api.get(f"{API}/temporal/entities/{eid}"), 404, "ResourceNotFound")
    await post_entity(api, building(1), B)
    problem(await api.get(f"{API}/temporal/entities/{eid}", headers=B), 404, "ResourceNotFound")
    listed = await api.get(f"{API}/temporal/entities", params={"type": "Vehicle"}, headers=B)
    assert listed.status_code == 200, listed.text
    assert listed.json() == []


async def test_gateway_ingest_stays_on_the_default_tenant(
    api: httpx.AsyncClient, store: Store
) -> None:
    token = await register(store, "gw-1")
    headers = {"Authorization": f"Bearer {token}", **JSON, **A}
    resp = await api.post(
        INGEST_PATH, content=encode(batch("gw-1", good_rows(1, 3))), headers=headers
    )
    assert resp.status_code == 200, resp.text
    device = f"{API}/entities/urn:ngsi-ld:Device:gw-1:m0"
    assert (await api.get(device)).status_code == 200
    problem(await api.get(device, headers=A), 404, "NonexistentTenant")


def _reopened(store: Store) -> Store:
    if isinstance(store, SqliteStore):
        return SqliteStore(path=store.path)
    assert isinstance(store, PostgresStore)
    return PostgresStore(dsn=store.dsn, pool_size=2)


async def test_tenants_survive_a_broker_restart(app: Starlette, store: Store) -> None:
    async with asgi_client(app) as first:
        await post_entity(first, building(1, height=5), A)
    await close_app(app)
    async with _reopened(store) as again:
        restarted = build_app(again, access=AccessControl.lab())
        try:
            async with asgi_client(restarted) as api:
                got = await api.get(f"{API}/entities/urn:ngsi-ld:Building:b1", headers=A)
                assert got.status_code == 200, got.text
                assert got.json()["height"]["value"] == 5
                problem(
                    await api.get(f"{API}/entities", params={"type": "Building"}, headers=GHOST),
                    404,
                    "NonexistentTenant",
                )
        finally:
            await close_app(restarted)


async def test_postgres_brokers_on_one_database_share_tenants(postgres_dsn: str) -> None:
    async with (
        PostgresStore(dsn=postgres_dsn, pool_size=2) as one,
        PostgresStore(dsn=postgres_dsn, pool_size=2) as two,
    ):
        app_one, app_two = (
            build_app(one, access=AccessControl.lab()),
            build_app(two, access=AccessControl.lab()),
        )
        try:
            async with asgi_client(app_one) as api_one, asgi_client(app_two) as api_two:
                await post_entity(api_one, building(1), A)
                assert await ids(api_two, A) == ["urn:ngsi-ld:Building:b1"]  # created by one
                await post_entity(api_two, building(2), A)
                assert await ids(api_one, A) == [
                    "urn:ngsi-ld:Building:b1",
                    "urn:ngsi-ld:Building:b2",
                ]
                assert await ids(api_one, {}) == []
                # both brokers creating the same new tenant at once: one schema, both writes
                await asyncio.gather(
                    post_entity(api_one, building(3), B), post_entity(api_two, building(4), B)
                )
                assert await ids(api_two, B) == [
                    "urn:ngsi-ld:Building:b3",
                    "urn:ngsi-ld:Building:b4",
                ]
            schemas = await tenant_places(one)
            async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
                row = await (await conn.execute("SELECT current_schema()")).fetchone()
            assert row is not None
            current = row[0]
            expected = [f"{current}__{tenant_key(t['NGSILD-Tenant'])}" for t in (A, B)]
            assert schemas == sorted(expected)
        finally:
            await close_app(app_one)
            await close_app(app_two)
            await drop_tenant_schemas(one)


async def test_sqlite_tenant_databases_live_under_the_data_folder(tmp_path: Path) -> None:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        app = build_app(store, access=AccessControl.lab())
        try:
            async with asgi_client(app) as api:
                await post_entity(api, building(1), A)
        finally:
            await close_app(app)
    key = tenant_key(A["NGSILD-Tenant"])
    assert (tmp_path / TENANTS_DIRNAME / key / DB_FILENAME).is_file()
    assert [p.name for p in (tmp_path / TENANTS_DIRNAME).iterdir()] == [key]


async def test_a_served_broker_closes_its_tenants_on_exit(tmp_path: Path) -> None:
    async with (
        running_cloud(tmp_path, insecure_no_auth=True) as cloud,
        httpx.AsyncClient(base_url=cloud.url) as http,
    ):
        resp = await http.post(
            f"{API}/entities", content=orjson.dumps(building(1)), headers={**JSON, **A}
        )
        assert resp.status_code == 201, resp.text
        assert resp.headers["NGSILD-Tenant"] == A["NGSILD-Tenant"]
    # the tenant's SQLite thread is gone (else the suite's leak guard fails this test)
    path = tmp_path / TENANTS_DIRNAME / tenant_key(A["NGSILD-Tenant"]) / DB_FILENAME
    async with SqliteStore(path=path) as reopened:
        assert await reopened.entities.get("urn:ngsi-ld:Building:b1") is not None
