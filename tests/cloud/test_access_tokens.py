"""Sign-in, tokens and their refusals: every bad credential gets 401, is logged, writes nothing.

The app runs on a real store with access control on; tokens are made the way an attacker
would make them (PyJWT with the wrong key, algorithm, audience, issuer or times).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ldt.cloud.access import service as service_module
from ldt.cloud.access.guard import AccessControl
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import SIGNING_KEY_FILE, TokenSigner
from ldt.cloud.server import build_app
from ldt.cloud.store.base import Store
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import asgi_client

PASSWORD = "a long test password"
ENTITY = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing"}


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, AccessService, Store]]:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        service = AccessService(store, TokenSigner.open(tmp_path / "pki"))
        await service.add_user("otto", "operator", "", PASSWORD)
        app = build_app(store, access=AccessControl(service))
        try:
            async with asgi_client(app) as client:
                yield client, service, store
        finally:
            await app.state.notifier.aclose()
            await app.state.tenants.aclose()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": "ldt", "aud": "ldt", "sub": "user:otto", "iat": now, "nbf": now,
              "exp": now + 600}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: bytes, body: str, secret: bytes) -> str:
    """A token "signed" with HMAC and ``secret`` (the key-confusion attack)."""
    signing_input = f"{_b64(header)}.{body}"
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), 'sha256').digest())}"


async def _sign_in(client: httpx.AsyncClient, name: str = "otto", password: str = PASSWORD) -> Any:
    return await client.post(
        "/auth/token", data={"grant_type": "password", "username": name, "password": password}
    )


async def _write(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/ngsi-ld/v1/entities", json=ENTITY, headers={"Authorization": f"Bearer {token}"}
    )


async def test_sign_in_refresh_and_revoke(
    cloud: tuple[httpx.AsyncClient, AccessService, Store],
) -> None:
    client, _service, store = cloud
    resp = await _sign_in(client)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    grant = resp.json()
    assert grant["token_type"] == "Bearer"
    assert 0 < grant["expires_in"] <= 900
    resp = await _write(client, grant["access_token"])
    assert resp.status_code == 201, resp.text
    resp = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    )
    assert resp.status_code == 200, resp.text
    refreshed = resp.json()["access_token"]
    headers = {"Authorization": f"Bearer {refreshed}"}
    assert (await client.get("/ngsi-ld/v1/types", headers=headers)).status_code == 200
    # signing out ends the session: its refresh token and its access tokens
    assert (
        await client.post("/auth/revoke", data={"token": grant["refresh_token"]})
    ).status_code == 200
    assert (await client.get("/ngsi-ld/v1/types", headers=headers)).status_code == 401
    resp = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    # the store keeps hashes only
    (record,) = await store.access.tokens_of("user:otto")
    assert grant["refresh_token"] not in repr(record)


async def test_bad_tokens_are_refused_and_write_nothing(
    cloud: tuple[httpx.AsyncClient, AccessService, Store],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _service, store = cloud
    key = serialization.load_pem_private_key(
        (tmp_path / "pki" / SIGNING_KEY_FILE).read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = TokenSigner(key).kid
    good = jwt.encode(_claims(), key, algorithm="ES256", headers={"kid": kid})
    head, body, signature = good.split(".")
    other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    bad = {
        "expired": jwt.encode(_claims(exp=now - 120), key, "ES256", headers={"kid": kid}),
        "not yet valid": jwt.encode(_claims(nbf=now + 600), key, "ES256", headers={"kid": kid}),
        "wrong audience": jwt.encode(_claims(aud="else"), key, "ES256", headers={"kid": kid}),
        "wrong issuer": jwt.encode(_claims(iss="else"), key, "ES256", headers={"kid": kid}),
        "another key": jwt.encode(_claims(), other, "ES256", headers={"kid": kid}),
        "alg none": ".".join((_b64(b'{"alg":"none","kid":"' + kid.encode() + b'"}'), body, "")),
        "HS256 with the public key": _hs256(
            b'{"alg":"HS256","typ":"JWT","kid":"' + kid.encode() + b'"}', body, public_pem
        ),
        "tampered": ".".join(
            (head, _b64(b'{"sub":"user:admin","iss":"ldt","aud":"ldt"}'), signature)
        ),
        "unknown user": jwt.encode(_claims(sub="user:nobody"), key, "ES256", headers={"kid": kid}),
        "garbage": "not-a-token",
    }
    for what, token in bad.items():
        resp = await _write(client, token)
        assert resp.status_code == 401, f"{what}: {resp.status_code}"
        assert resp.json()["detail"] == "the token is not valid (expired, revoked or not ours)"
    assert "refused: token not accepted" in caplog.text
    resp = await client.get("/ngsi-ld/v1/types", headers={"Authorization": "Bearer " + "x" * 9000})
    assert resp.status_code == 401  # oversized credentials
    assert await store.entities.get(ENTITY["id"]) is None
    assert (await _write(client, good)).status_code == 201  # the control: a good one works


async def test_a_disabled_user_is_refused_within_the_recheck(
    cloud: tuple[httpx.AsyncClient, AccessService, Store],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    client, _service, store = cloud
    monkeypatch.setattr(service_module, "RECHECK_S", 0.3)
    token = (await _sign_in(client)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/ngsi-ld/v1/types", headers=headers)).status_code == 200
    # another broker process (its own service on the same store) disables the user
    other = AccessService(store, TokenSigner.open(tmp_path / "pki"))
    await other.set_disabled("user", "otto", True)
    await asyncio.sleep(0.4)
    assert (await client.get("/ngsi-ld/v1/types", headers=headers)).status_code == 401
    assert (await _sign_in(client)).status_code == 400


async def test_failed_sign_ins_are_throttled(
    cloud: tuple[httpx.AsyncClient, AccessService, Store],
) -> None:
    client, _service, _store = cloud
    for _ in range(5):
        resp = await _sign_in(client, password="wrong password, long")
        assert resp.status_code == 400
        assert resp.json()["error"] == "invalid_grant"
    resp = await _sign_in(client)  # even the right password waits now
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) > 0


async def test_service_accounts_sign_in_with_their_secret_and_tokens(
    cloud: tuple[httpx.AsyncClient, AccessService, Store],
) -> None:
    client, service, _store = cloud
    secret = await service.add_client("grafana", "viewer")
    resp = await client.post(
        "/auth/token", data={"grant_type": "client_credentials"}, auth=("grafana", secret)
    )
    assert resp.status_code == 200, resp.text
    assert "refresh_token" not in resp.json()
    headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    assert (await client.get("/ngsi-ld/v1/types", headers=headers)).status_code == 200
    assert (await _write(client, resp.json()["access_token"])).status_code == 403
    resp = await client.post(
        "/auth/token", data={"grant_type": "client_credentials"}, auth=("grafana", "wrong")
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    long_lived, token_id = await service.client_token("grafana")
    headers = {"Authorization": f"Bearer {long_lived}"}
    assert (await client.get("/ngsi-ld/v1/types", headers=headers)).status_code == 200
    assert await service.revoke_token_id(token_id)
    assert (await client.get("/ngsi-ld/v1/types", headers=headers)).status_code == 401


async def test_admins_manage_users_over_the_api_and_never_see_a_hash(
    cloud: tuple[httpx.AsyncClient, AccessService, Store],
) -> None:
    client, service, _store = cloud
    await service.add_user("ada", "admin", "*", PASSWORD)
    admin = {"Authorization": f"Bearer {(await _sign_in(client, 'ada')).json()['access_token']}"}
    operator = {"Authorization": f"Bearer {(await _sign_in(client)).json()['access_token']}"}
    resp = await client.post(
        "/ldt/v1/admin/users", json={"name": "vera", "role": "viewer"}, headers=operator
    )
    assert resp.status_code == 403  # an operator manages no users
    resp = await client.post(
        "/ldt/v1/admin/users", json={"name": "vera", "role": "viewer"}, headers=admin
    )
    assert resp.status_code == 201, resp.text
    password = resp.json()["password"]
    assert (await _sign_in(client, "vera", password)).status_code == 200
    listing = (await client.get("/ldt/v1/admin/users", headers=admin)).text
    assert "argon2" not in listing
    assert password not in listing
    resp = await client.patch("/ldt/v1/admin/users/vera", json={"disabled": True}, headers=admin)
    assert resp.status_code == 200
    assert (await _sign_in(client, "vera", password)).status_code == 400


async def test_old_expired_and_revoked_tokens_are_pruned(
    cloud: tuple[httpx.AsyncClient, AccessService, Store],
) -> None:
    client, _service, store = cloud
    month_ago = int(time.time() * 1000) - 30 * 86400 * 1000
    await store.access.add_token("old-expired", "id-1", "refresh", "user:otto", month_ago)
    await store.access.add_token("old-revoked", "id-2", "service", "user:otto", None)
    await store.access.revoke_tokens(token_id="id-2")
    await store.db.write(
        lambda tx: tx.execute("UPDATE auth_tokens SET revoked_at_ms = ? WHERE id = 'id-2'",
                              (month_ago,))
    )  # fmt: skip
    assert (await _sign_in(client)).status_code == 200  # a sign-in prunes (at most hourly)
    left = {t.id for t in await store.access.tokens_of("user:otto")}
    assert "id-1" not in left
    assert "id-2" not in left
    assert len(left) == 1  # the session just made
