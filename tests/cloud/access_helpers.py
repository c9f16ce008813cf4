"""Users and tokens for tests that run the cloud with access control on."""

from __future__ import annotations

import httpx

from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import TokenSigner
from ldt.cloud.server import PKI_DIRNAME, CloudHandle

PASSWORD = "correct horse battery staple"


def access_service(cloud: CloudHandle) -> AccessService:
    """An ``AccessService`` over the running cloud's store and key (as the CLI makes one)."""
    return AccessService(cloud.store, TokenSigner.open(cloud.data_dir / PKI_DIRNAME))


async def add_user(
    cloud: CloudHandle,
    name: str,
    role: str,
    tenant: str = "",
    *,
    types: tuple[str, ...] = (),
    id_prefix: str = "",
) -> None:
    """Create ``name`` with ``PASSWORD`` and one (optionally scoped) role."""
    service = access_service(cloud)
    if types or id_prefix:
        await service.add_user(name, "viewer", tenant, PASSWORD)
        await service.revoke_grant(f"user:{name}", tenant)
        await service.grant(f"user:{name}", role, tenant, types=types, id_prefix=id_prefix)
    else:
        await service.add_user(name, role, tenant, PASSWORD)


async def bearer(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    """``Authorization`` headers for ``name``, signed in through ``POST /auth/token``."""
    resp = await client.post(
        "/auth/token", data={"grant_type": "password", "username": name, "password": password}
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def signed_in(
    cloud: CloudHandle, client: httpx.AsyncClient, name: str, role: str, tenant: str = ""
) -> dict[str, str]:
    """Create a user with ``role`` and sign them in."""
    await add_user(cloud, name, role, tenant)
    return await bearer(client, name)
