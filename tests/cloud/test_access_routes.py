"""Every route declares who may call it, ``docs/access.md`` says so, and the server agrees.

Walks the app's route table: a route without a policy fails the test; the matrix in
``docs/access.md`` must equal the one made from the code; then every route is called as
every column of the matrix (anonymous, viewer, operator, technician, admin, global admin)
on a real store with access control on, and the answer must be what the matrix says.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.access.matrix import COLUMNS, cell, document, route_table, rows
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import TokenSigner
from ldt.cloud.server import build_app
from ldt.cloud.store.base import Store
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import asgi_client

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"
_PARAMS = {
    "entity_id": "urn:ngsi-ld:Thing:x",
    "attr": "a",
    "instance_id": "urn:ngsi-ld:Instance:x",
    "kind": "rules",
    "name": "nobody",
    "token_id": "t",
    "type_name": "Thing",
    "attr_name": "a",
    "context_id": "c",
    "sub_id": "urn:ngsi-ld:Subscription:x",
    "reg_id": "urn:ngsi-ld:ContextSourceRegistration:x",
}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: _PARAMS[m.group(1)], path)


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Starlette, Store, AccessService]]:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        service = AccessService(store, TokenSigner.open(tmp_path / "pki"))
        app = build_app(store, access=AccessControl(service))
        try:
            yield app, store, service
        finally:
            await app.state.notifier.aclose()
            await app.state.tenants.aclose()


def test_every_route_declares_a_policy_and_the_document_is_the_code() -> None:
    table = route_table()
    undeclared = [f"{r.method} {r.path}" for r in rows(table) if r.policy is None]
    assert undeclared == []
    assert DOC.read_text(encoding="utf-8") == document(table), (
        "docs/access.md is stale: python -m ldt.cloud.access.matrix > docs/access.md"
    )


async def test_every_route_answers_every_role_as_the_matrix_says(
    secured: tuple[Starlette, Store, AccessService],
) -> None:
    app, _store, service = secured
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for column, principal in COLUMNS:
        if principal is None:
            continue
        name = column.replace(" ", "-")
        grant = principal.grants[0]
        await service.add_user(name, grant.role.value, grant.tenant, "a long test password")
        token = service.signer.issue(f"user:{name}", None)
        headers[column] = {"Authorization": f"Bearer {token}"}
    wrong: list[str] = []
    checked = 0
    async with asgi_client(app) as client:
        for row in rows(list(app.routes)):
            path = _concrete(row.path)
            answers: dict[str, int] = {}
            for column, principal in COLUMNS:
                sent = {**headers[column], "Content-Type": "application/json"}
                body = b"{}" if row.method in ("POST", "PATCH", "PUT") else None
                resp = await client.request(row.method, path, headers=sent, content=body)
                answers[column] = resp.status_code
                expected = cell(row.policy, principal)
                got = resp.status_code
                ok = (
                    got == int(expected)
                    if expected in ("401", "403")
                    else got not in (401, 403)
                    if expected == "yes"
                    else True
                )
                if not ok:
                    wrong.append(f"{row.method} {row.path} as {column}: {got}, matrix {expected}")
                checked += 1
            if row.policy is not None and row.policy.kind == "gateway":
                # a person's token changes nothing on a gateway's route
                if len(set(answers.values())) != 1:
                    wrong.append(f"{row.method} {row.path}: {answers}")
                if answers["anonymous"] < 400:
                    wrong.append(f"{row.method} {row.path} answers anonymous {answers}")
    assert wrong == []
    assert checked > 500


async def test_a_refusal_says_only_401_or_403_and_writes_nothing(
    secured: tuple[Starlette, Store, AccessService],
) -> None:
    app, store, service = secured
    await service.add_user("vera", "viewer", "", "a long test password")
    viewer = {"Authorization": f"Bearer {service.signer.issue('user:vera', None)}"}
    entity = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "p": {"type": "Property", "value": 1}}
    async with asgi_client(app) as client:
        resp = await client.post("/ngsi-ld/v1/entities", json=entity)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert resp.json()["title"] == "Unauthorized"
        resp = await client.post("/ngsi-ld/v1/entities", json=entity, headers=viewer)
        assert resp.status_code == 403
        assert "write" in resp.json()["detail"]
    assert await store.entities.get("urn:ngsi-ld:Thing:1") is None


async def test_x_auth_token_is_accepted_as_fiware_sends_it(
    secured: tuple[Starlette, Store, AccessService],
) -> None:
    app, _store, service = secured
    await service.add_user("vera", "viewer", "", "a long test password")
    token = service.signer.issue("user:vera", None)
    async with asgi_client(app) as client:
        resp = await client.get("/ngsi-ld/v1/types", headers={"X-Auth-Token": token})
        assert resp.status_code == 200
        # iotagent-node-lib's default: the header named X-Auth-Token, the value "Bearer T"
        bearer = {"X-Auth-Token": f"Bearer {token}"}
        assert (await client.get("/ngsi-ld/v1/types", headers=bearer)).status_code == 200


async def test_unknown_tenants_are_401_to_strangers_and_404_to_users(
    secured: tuple[Starlette, Store, AccessService],
) -> None:
    app, _store, service = secured
    await service.add_user("ada", "admin", "*", "a long test password")
    admin = {"Authorization": f"Bearer {service.signer.issue('user:ada', None)}"}
    entity = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing"}
    async with asgi_client(app) as client:
        tenant = {"NGSILD-Tenant": "water"}
        resp = await client.post("/ngsi-ld/v1/entities", json=entity, headers=tenant)
        assert resp.status_code == 401  # a stranger does not learn which tenants exist
        resp = await client.post("/ngsi-ld/v1/entities", json=entity, headers=tenant | admin)
        assert resp.status_code == 404  # no request creates a tenant on the side
        assert resp.json()["type"].endswith("NonexistentTenant")
        resp = await client.post("/ldt/v1/admin/tenants", json={"name": "water"}, headers=admin)
        assert resp.status_code == 201
        resp = await client.post("/ngsi-ld/v1/entities", json=entity, headers=tenant | admin)
        assert resp.status_code == 201, resp.text
        assert (await client.get("/ldt/v1/admin/tenants", headers=admin)).json() == ["water"]
