"""Idle tenants' stores are closed (issue 14, item 4): 41 tenants used once kept 41 SQLite
files open, 41 threads and 123 descriptors for as long as the broker ran. Now a tenant no
request used for ``idle_s`` closes (and reopens on its next request), at most
``max_open`` stay open, a request in progress holds its tenant, and a tenant whose
notifier still has work (a ``timeInterval`` subscription) stays.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.server import build_app
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from ldt.cloud.tenancy import TenantRegistry
from tests.cloud.helpers import asgi_client

API = "/ngsi-ld/v1"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        app = build_app(store, access=AccessControl.lab())  # creating requests make tenants
        try:
            async with asgi_client(app) as client:
                yield client, app
        finally:
            await app.state.notifier.aclose()
            await app.state.tenants.aclose()


async def _touch(client: httpx.AsyncClient, tenant: str) -> None:
    thing = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing"}
    resp = await client.post(f"{API}/entities", json=thing, headers={"NGSILD-Tenant": tenant})
    assert resp.status_code == 201, resp.text


async def _until_closed(registry: TenantRegistry, left: int, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while len(registry.opened()) > left:  # noqa: ASYNC110 - the registry has no event
            await asyncio.sleep(0.05)


async def test_idle_tenants_give_back_threads_and_descriptors(
    lab: tuple[httpx.AsyncClient, Starlette],
) -> None:
    client, app = lab
    registry: TenantRegistry = app.state.tenants
    await _touch(client, "warmup")
    registry.idle_s = 0.0001
    assert await registry.close_idle() == ["warmup"]
    threads, fds = threading.active_count(), _fds()
    registry.idle_s = 3600.0
    for n in range(41):
        await _touch(client, f"t{n}")
    assert len(registry.opened()) == 41
    assert threading.active_count() >= threads + 41  # a connection thread each
    assert _fds() >= fds + 41
    registry.idle_s = 0.0001
    assert len(await registry.close_idle()) == 41
    assert registry.opened() == []
    assert threading.active_count() <= threads + 1
    assert _fds() <= fds + 2
    # a closed tenant opens again on its next request, its data intact
    resp = await client.get(f"{API}/entities/urn:ngsi-ld:Thing:1", headers={"NGSILD-Tenant": "t7"})
    assert resp.status_code == 200
    assert registry.opened() == ["t7"]


async def test_at_most_max_open_tenants_stay_open(
    lab: tuple[httpx.AsyncClient, Starlette],
) -> None:
    client, app = lab
    registry: TenantRegistry = app.state.tenants
    registry.max_open = 5  # idle_s stays at its default: only the cap closes them
    for n in range(12):
        await _touch(client, f"t{n}")
    await _until_closed(registry, 5)
    assert registry.opened() == sorted(f"t{n}" for n in range(7, 12))  # the most recent


async def test_a_request_in_progress_and_a_periodic_subscription_hold_their_tenant(
    lab: tuple[httpx.AsyncClient, Starlette],
) -> None:
    client, app = lab
    registry: TenantRegistry = app.state.tenants
    registry.idle_s = 0.2
    await _touch(client, "busy")
    async with registry.use("busy", create=False):
        await asyncio.sleep(0.5)  # the reaper looks every 0.1 s
        assert await registry.close_idle() == []
        assert registry.opened() == ["busy"]
    await _until_closed(registry, 0)

    await _touch(client, "periodic")
    sub = {
        "type": "Subscription",
        "entities": [{"type": "Thing"}],
        "timeInterval": 3600,
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
    }
    headers = {"NGSILD-Tenant": "periodic"}
    resp = await client.post(f"{API}/subscriptions", json=sub, headers=headers)
    assert resp.status_code == 201
    await _touch(client, "other")
    await _until_closed(registry, 1)  # "other" closes; "periodic" has a ticker to run
    assert registry.opened() == ["periodic"]


async def test_names_of_missing_tenants_leave_nothing_behind(tmp_path: Path) -> None:
    """With access control on, a GET naming a tenant that does not exist is a 404 and
    must not leave a lock (or anything else) per name behind."""
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        from ldt.cloud.access.service import AccessService
        from ldt.cloud.access.tokens import TokenSigner

        service = AccessService(store, TokenSigner.open(tmp_path / "pki"))
        await service.add_user("ada", "admin", "*", "a long test password")
        app = build_app(store, access=AccessControl(service))
        token = service.signer.issue("user:ada", None)
        async with asgi_client(app) as client:
            for n in range(200):
                resp = await client.get(
                    f"{API}/entities?type=Thing",
                    headers={"NGSILD-Tenant": f"nope{n}", "Authorization": f"Bearer {token}"},
                )
                assert resp.status_code == 404
        registry: TenantRegistry = app.state.tenants
        assert registry.opened() == []
        assert registry._locks == {}  # the leak this guards against
        await app.state.tenants.aclose()
