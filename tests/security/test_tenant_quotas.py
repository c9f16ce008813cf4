"""Tenant sprawl (issue 14, item 4): a tenant holds at most so many hosted @contexts (and
bytes of them), subscriptions, distinct notification endpoints and entities; a breach is a
403 ProblemDetails and writes nothing. (Tenants themselves are created only by a global
admin: tests/cloud/test_access_routes.py.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.ngsild import quotas as quotas_module
from ldt.cloud.ngsild.quotas import Quotas, parse_quotas
from ldt.cloud.server import build_app
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import asgi_client

API = "/ngsi-ld/v1"
SMALL = Quotas(hosted_contexts=2, hosted_context_bytes=300, subscriptions=2, endpoints=1,
               entities=3)  # fmt: skip


def _quota(resp: httpx.Response) -> None:
    assert resp.status_code == 403, resp.text
    assert resp.json()["title"] == "Quota exceeded"


async def test_quotas_hold_and_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quotas_module, "COUNT_S", 0.0)  # count at every write in this test
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        app = build_app(store, access=AccessControl.lab(), quotas=SMALL)
        async with asgi_client(app) as client:
            for n in range(3):
                thing = {"id": f"urn:ngsi-ld:Thing:{n}", "type": "Thing"}
                assert (await client.post(f"{API}/entities", json=thing)).status_code == 201
            _quota(await client.post(f"{API}/entities", json={"id": "urn:ngsi-ld:Thing:9",
                                                              "type": "Thing"}))  # fmt: skip
            batch = [{"id": "urn:ngsi-ld:Thing:0", "type": "Thing"},
                     {"id": "urn:ngsi-ld:Thing:8", "type": "Thing"}]  # fmt: skip
            resp = await client.post(f"{API}/entityOperations/upsert", json=batch)
            assert resp.status_code == 207  # the update passes, the creation is refused
            assert resp.json()["errors"][0]["entityId"] == "urn:ngsi-ld:Thing:8"
            assert await store.entities.get("urn:ngsi-ld:Thing:8") is None

            def sub(n: int, uri: str) -> dict[str, object]:
                return {"id": f"urn:ngsi-ld:Subscription:{n}", "type": "Subscription",
                        "entities": [{"type": "Thing"}],
                        "notification": {"endpoint": {"uri": uri}}}  # fmt: skip

            assert (
                await client.post(f"{API}/subscriptions", json=sub(1, "http://127.0.0.1:9/a"))
            ).status_code == 201
            _quota(await client.post(f"{API}/subscriptions", json=sub(2, "http://127.0.0.1:9/b")))
            assert (
                await client.post(f"{API}/subscriptions", json=sub(3, "http://127.0.0.1:9/a"))
            ).status_code == 201
            _quota(await client.post(f"{API}/subscriptions", json=sub(4, "http://127.0.0.1:9/a")))

            ctx = {"@context": {"speed": "http://example.org/speed"}}
            for _ in range(2):
                assert (await client.post(f"{API}/jsonldContexts", json=ctx)).status_code == 201
            _quota(await client.post(f"{API}/jsonldContexts", json=ctx))
            await app.state.notifier.aclose()


def test_quota_settings_are_checked() -> None:
    assert parse_quotas(["entities=5", "hosted-contexts=7"]) == Quotas(
        entities=5, hosted_contexts=7
    )
    for bad in ("entities", "entities=0", "nothing=5", "entities=x"):
        with pytest.raises(ValueError, match="--quota"):
            parse_quotas([bad])
