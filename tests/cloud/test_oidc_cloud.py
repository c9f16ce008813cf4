"""The cloud accepts an OIDC provider's access tokens, with roles from their claims.

The provider is made inside the test (``test_oidc.Issuer``: its own keys and JWKS on
loopback); the broker is the real app on a real store, its access service holding an
``OidcVerifier`` as ``ldt cloud serve --oidc-issuer`` builds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.access.oidc import OidcSettings, OidcVerifier
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import TokenSigner
from ldt.cloud.server import build_app
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import asgi_client
from tests.cloud.test_oidc import AUDIENCE, Issuer, public_jwk, rsa_key, running_issuer

ENTITY = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "p": {"type": "Property", "value": 1}}


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    async with running_issuer([public_jwk(rsa_key("rsa-1"), "rsa-1", alg="RS256")]) as running:
        yield running


@pytest.fixture
async def broker(issuer: Issuer, tmp_path: Path) -> AsyncIterator[Starlette]:
    settings = OidcSettings(issuer=issuer.url, audience=AUDIENCE)
    verifier = OidcVerifier(settings, min_refresh_interval_s=0.2)
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        service = AccessService(store, TokenSigner.open(tmp_path / "pki"), verifier)
        app = build_app(store, access=AccessControl(service))
        try:
            yield app
        finally:
            await app.state.notifier.aclose()
            await app.state.tenants.aclose()
            await verifier.aclose()


async def test_roles_come_from_the_claims(issuer: Issuer, broker: Starlette) -> None:
    async with asgi_client(broker) as client:
        # realm roles: viewer (default tenant), operator@water, offline_access (ignored)
        viewer = {"Authorization": f"Bearer {issuer.token()}"}
        assert (await client.get("/ngsi-ld/v1/types", headers=viewer)).status_code == 200
        resp = await client.post("/ngsi-ld/v1/entities", json=ENTITY, headers=viewer)
        assert resp.status_code == 403
        assert "oidc:alice" in resp.json()["detail"]
        operator = issuer.token(realm_access={"roles": ["operator"]}, preferred_username="bob")
        resp = await client.post(
            "/ngsi-ld/v1/entities", json=ENTITY, headers={"Authorization": f"Bearer {operator}"}
        )
        assert resp.status_code == 201, resp.text
        for bad in (
            issuer.token(aud="someone-else"),
            issuer.token(iss="https://elsewhere.example/realms/city"),
            issuer.token(exp=1),
        ):
            resp = await client.get("/ngsi-ld/v1/types", headers={"Authorization": f"Bearer {bad}"})
            assert resp.status_code == 401


async def test_a_key_rotation_is_picked_up(issuer: Issuer, broker: Starlette) -> None:
    async with asgi_client(broker) as client:
        first = {"Authorization": f"Bearer {issuer.token()}"}
        assert (await client.get("/ngsi-ld/v1/types", headers=first)).status_code == 200
        issuer.jwks = [public_jwk(rsa_key("rsa-2"), "rsa-2", alg="RS256")]
        rotated = {"Authorization": f"Bearer {issuer.token(rsa_key('rsa-2'), 'rsa-2')}"}
        await asyncio.sleep(0.25)  # the verifier's refresh interval in this test
        assert (await client.get("/ngsi-ld/v1/types", headers=rotated)).status_code == 200
        assert issuer.jwks_hits == 2
