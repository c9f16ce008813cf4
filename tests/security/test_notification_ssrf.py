"""SSRF through subscriptions (issue 14, item 2): with access control on, notifications go
to public hosts, or to private ones an admin allowed for the tenant; the check runs at
creation and again before every delivery; a client's timeout is bounded.

A real loopback receiver counts what reaches it; the app is the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import TokenSigner
from ldt.cloud.server import build_app
from ldt.cloud.store.base import Store
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import asgi_client, receiver

API = "/ngsi-ld/v1"


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store, Any]]:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        service = AccessService(store, TokenSigner.open(tmp_path / "pki"))
        await service.add_user("ada", "admin", "", "a long test password")
        app = build_app(store, access=AccessControl(service))
        token = service.signer.issue("user:ada", None)
        try:
            async with asgi_client(app) as client:
                client.headers["Authorization"] = f"Bearer {token}"
                yield client, store, app.state.notifier
        finally:
            await app.state.notifier.aclose()
            await app.state.tenants.aclose()


def _subscription(uri: str, **endpoint: Any) -> dict[str, Any]:
    return {
        "id": "urn:ngsi-ld:Subscription:s1",
        "type": "Subscription",
        "entities": [{"type": "Thing"}],
        "notification": {"endpoint": {"uri": uri, **endpoint}},
    }


async def test_private_endpoints_need_an_admins_allowance(
    cloud: tuple[httpx.AsyncClient, Store, Any],
) -> None:
    client, store, notifier = cloud
    async with receiver() as rec:
        for uri in (rec.url, "http://169.254.169.254/latest", "http://10.1.2.3/x",
                    "mqtt://127.0.0.1:1883/topic"):  # fmt: skip
            resp = await client.post(f"{API}/subscriptions", json=_subscription(uri))
            assert resp.status_code == 400, (uri, resp.text)
            assert "non-public address" in resp.json()["detail"]
        await store.access.notify.allow("", "127.0.0.1")
        notifier.endpoints.forget()  # what the CLI's change does here within 30 s
        resp = await client.post(f"{API}/subscriptions", json=_subscription(rec.url))
        assert resp.status_code == 201, resp.text
        thing = {
            "id": "urn:ngsi-ld:Thing:1",
            "type": "Thing",
            "p": {"type": "Property", "value": 1},
        }
        assert (await client.post(f"{API}/entities", json=thing)).status_code == 201
        await rec.wait(1)
        # the allowance taken back: the next delivery is refused before connecting
        await store.access.notify.deny("", "127.0.0.1")
        notifier.endpoints.forget()
        resp = await client.patch(
            f"{API}/entities/{thing['id']}/attrs", json={"p": {"type": "Property", "value": 2}}
        )
        assert resp.status_code == 204
        await asyncio.sleep(0.5)
        assert len(rec.received) == 1


async def test_a_client_timeout_is_bounded(cloud: tuple[httpx.AsyncClient, Store, Any]) -> None:
    client, store, _notifier = cloud
    await store.access.notify.allow("", "127.0.0.1")
    body = _subscription("http://127.0.0.1:9/x", timeout=3_600_000)
    resp = await client.post(f"{API}/subscriptions", json=body)
    assert resp.status_code == 400
    assert "at most 60000 ms" in resp.json()["detail"]
