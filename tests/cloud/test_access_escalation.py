"""Ways around the roles that a security review of the access change found, each closed.

- a tenant's admin putting a user into a group that holds grants elsewhere;
- anyone who may write taking over another's subscription (endpoint, headers);
- scoped grants counting as full ones on routes that are not about entities (purge,
  registrations, catalogue) or for administration;
- concurrent wrong passwords all reaching the hash before the throttle counted them;
- a removed tenant adopted again by the next request;
- the lab mode (``--insecure-no-auth``) answering a page that rebinds a name to loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import TokenSigner
from ldt.cloud.server import build_app, running_cloud
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import asgi_client

PASSWORD = "a long test password"
API = "/ngsi-ld/v1"


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Starlette, AccessService]]:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        service = AccessService(store, TokenSigner.open(tmp_path / "pki"))
        app = build_app(store, access=AccessControl(service))
        try:
            yield app, service
        finally:
            await app.state.notifier.aclose()
            await app.state.tenants.aclose()


async def _person(
    service: AccessService, name: str, role: str, tenant: str = "", **scope: object
) -> dict[str, str]:
    await service.add_user(name, "viewer", "", PASSWORD)
    await service.revoke_grant(f"user:{name}", "")
    await service.grant(f"user:{name}", role, tenant, **scope)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {service.signer.issue(f'user:{name}', None)}"}


async def test_a_tenant_admin_cannot_put_users_into_groups(
    secured: tuple[Starlette, AccessService],
) -> None:
    app, service = secured
    await app.state.tenants.add("water")
    root = await _person(service, "root", "admin", "*")
    await service.grant("group:platform", "admin", "*")
    water_admin = await _person(service, "wadmin", "admin", "water")
    async with asgi_client(app) as client:
        body = {"name": "mallory", "role": "viewer", "tenant": "water", "password": PASSWORD,
                "groups": ["platform"]}  # fmt: skip
        resp = await client.post("/ldt/v1/admin/users", json=body, headers=water_admin)
        assert resp.status_code == 403
        assert await service.store.access.principal("user", "mallory") is None
        body.pop("groups")
        resp = await client.post("/ldt/v1/admin/users", json=body, headers=water_admin)
        assert resp.status_code == 201, resp.text
        # the tenant's admin sees the accounts with roles in its tenant, not root
        names = [
            u["name"] for u in (await client.get("/ldt/v1/admin/users", headers=water_admin)).json()
        ]
        assert "root" not in names
        assert "mallory" in names
        assert len((await client.get("/ldt/v1/admin/users", headers=root)).json()) == 3


async def test_only_its_owner_or_an_admin_changes_a_subscription(
    secured: tuple[Starlette, AccessService],
) -> None:
    app, service = secured
    await service.store.access.notify.allow("", "127.0.0.1")
    admin = await _person(service, "ada", "admin")
    otto = await _person(service, "otto", "operator", types=["PumpingStation"])
    viewer = await _person(service, "vic", "viewer")
    sub = {
        "id": "urn:ngsi-ld:Subscription:ops",
        "type": "Subscription",
        "entities": [{"type": "Device"}],
        "notification": {
            "endpoint": {
                "uri": "http://127.0.0.1:9/notify",
                "receiverInfo": [{"key": "Authorization", "value": "Bearer RECEIVER-SECRET"}],
            }
        },
    }
    async with asgi_client(app) as client:
        assert (
            await client.post(f"{API}/subscriptions", json=sub, headers=admin)
        ).status_code == 201
        where = f"{API}/subscriptions/{sub['id']}"
        hijack = {"notification": {"endpoint": {"uri": "http://evil.example/x"}}}
        assert (await client.patch(where, json=hijack, headers=otto)).status_code == 403
        assert (await client.delete(where, headers=otto)).status_code == 403
        for who in (otto, viewer):
            shown = await client.get(where, headers=who)
            assert shown.status_code == 200
            assert "RECEIVER-SECRET" not in shown.text
            assert (
                "RECEIVER-SECRET"
                not in (await client.get(f"{API}/subscriptions", headers=who)).text
            )
        # the owner and admins see which headers are sent, never their values (issue 14)
        managed = (await client.get(where, headers=admin)).json()["notification"]["endpoint"]
        assert managed["receiverInfo"] == [{"key": "Authorization", "value": "***"}]
        # otto's own subscription is otto's to change
        mine = {
            **sub,
            "id": "urn:ngsi-ld:Subscription:mine",
            "entities": [{"type": "PumpingStation"}],
        }
        assert (
            await client.post(f"{API}/subscriptions", json=mine, headers=otto)
        ).status_code == 201
        resp = await client.patch(
            f"{API}/subscriptions/{mine['id']}", json={"description": "pumps"}, headers=otto
        )
        assert resp.status_code == 204, resp.text


async def test_scoped_grants_do_not_reach_routes_without_entities(
    secured: tuple[Starlette, AccessService],
) -> None:
    app, service = secured
    admin = await _person(service, "ada", "admin")
    scoped_admin = await _person(service, "sam", "admin", types=["PumpingStation"])
    scoped_operator = await _person(service, "otto", "operator", types=["PumpingStation"])
    device = {"id": "urn:ngsi-ld:Device:1", "type": "Device"}
    async with asgi_client(app) as client:
        assert (await client.post(f"{API}/entities", json=device, headers=admin)).status_code == 201
        resp = await client.delete(
            f"{API}/entities", params={"type": "Device"}, headers=scoped_admin
        )
        assert resp.status_code == 403  # a purge is an unscoped admin's
        assert (
            await client.get(f"{API}/entities/{device['id']}", headers=admin)
        ).status_code == 200
        for path in ("/ldt/v1/admin/users", "/ldt/v1/audit"):
            assert (await client.get(path, headers=scoped_admin)).status_code == 403
        registration = {
            "id": "urn:ngsi-ld:ContextSourceRegistration:1",
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": "Device"}]}],
            "endpoint": "http://127.0.0.1:9",
        }
        resp = await client.post(
            f"{API}/csourceRegistrations", json=registration, headers=scoped_operator
        )
        assert resp.status_code == 403
        assert (await client.get("/ldt/v1/commands", headers=scoped_operator)).status_code == 403


async def test_concurrent_wrong_passwords_are_counted_before_hashing(
    secured: tuple[Starlette, AccessService],
) -> None:
    app, service = secured
    await service.add_user("alice", "viewer", "", PASSWORD)
    async with asgi_client(app) as client:
        form = {"grant_type": "password", "username": "alice", "password": "wrong password, long"}
        answers = await asyncio.gather(*(client.post("/auth/token", data=form) for _ in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(400) == 5  # the first five reach the hash
    assert statuses.count(429) == 15


async def test_a_removed_tenant_is_not_adopted_again(
    secured: tuple[Starlette, AccessService],
) -> None:
    app, service = secured
    root = await _person(service, "root", "admin", "*")
    viewer = await _person(service, "vic", "viewer")
    tenant = {"NGSILD-Tenant": "water"}
    async with asgi_client(app) as client:
        assert (
            await client.post("/ldt/v1/admin/tenants", json={"name": "water"}, headers=root)
        ).status_code == 201
        entity = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing"}
        resp = await client.post(f"{API}/entities", json=entity, headers=root | tenant)
        assert resp.status_code == 201, resp.text
        assert (await client.delete("/ldt/v1/admin/tenants/water", headers=root)).status_code == 204
        for who in (viewer, root):
            resp = await client.get(f"{API}/entities/{entity['id']}", headers=who | tenant)
            assert resp.status_code == 404
        assert (await client.get("/ldt/v1/admin/tenants", headers=root)).json() == []
        # an admin brings it back, with its data
        assert (
            await client.post("/ldt/v1/admin/tenants", json={"name": "water"}, headers=root)
        ).status_code == 201
        resp = await client.get(f"{API}/entities/{entity['id']}", headers=root | tenant)
        assert resp.status_code == 200


async def test_the_lab_mode_answers_loopback_host_names_only(tmp_path: Path) -> None:
    async with (
        running_cloud(tmp_path, insecure_no_auth=True) as cloud,
        httpx.AsyncClient(base_url=cloud.url) as client,
    ):
        assert (await client.get(f"{API}/types")).status_code == 200
        rebound = await client.get(f"{API}/types", headers={"Host": "attacker.example"})
        assert rebound.status_code == 403
        assert (
            await client.get(f"{API}/types", headers={"Host": "localhost:1"})
        ).status_code == 200


async def test_a_technician_sends_no_command(secured: tuple[Starlette, AccessService]) -> None:
    """A command is a write to a command point: technicians (and viewers) make none."""
    app, service = secured
    admin = await _person(service, "ada", "admin")
    relay = {"id": "urn:ngsi-ld:Device:gw-1:relay-1", "type": "Device",
             "relay2": {"type": "Property", "value": False}}  # fmt: skip
    notes: list[object] = []

    async def observe(changes: object) -> None:  # where the control plane makes commands
        notes.append(changes)

    app.state.notifier.observers.append(observe)
    async with asgi_client(app) as client:
        assert (await client.post(f"{API}/entities", json=relay, headers=admin)).status_code == 201
        notes.clear()
        for role in ("technician", "viewer"):
            who = await _person(service, role, role)
            resp = await client.patch(
                f"{API}/entities/{relay['id']}/attrs/relay2", json={"value": True}, headers=who
            )
            assert resp.status_code == 403
        assert notes == []  # nothing reached the command hook
