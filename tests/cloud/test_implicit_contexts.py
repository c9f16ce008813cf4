"""ImplicitlyCreated @contexts (5.13): a subscription's inline or array @context is hosted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.ngsild.contexts import ContextError, ContextStore
from ldt.cloud.server import build_app
from ldt.cloud.store import SqliteStore

API = "/ngsi-ld/v1"
BASE = f"{API}/jsonldContexts"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
LD = {"Content-Type": "application/ld+json"}
INLINE = [{"ex": "http://example.org/", "T1": "ex:T1"}, {"speed": "http://example.org/speed"}]


def _subscription(sub_id: str, context: Any) -> dict[str, Any]:
    return {
        "id": sub_id,
        "type": "Subscription",
        "entities": [{"type": "T1"}],
        "notification": {"endpoint": {"uri": "http://a.b.c/123"}},
        "@context": context,
    }


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        SqliteStore(path=tmp_path / "cloud.db") as store,
        ContextStore(preload_dir=None, cache_dir=tmp_path / "ctx", allow_network=False) as ctx,
    ):
        transport = httpx.ASGITransport(app=build_app(store, ctx, access=AccessControl.lab()))
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as c:
            yield c


async def test_an_array_context_becomes_the_subscriptions_implicit_jsonld_context(
    client: httpx.AsyncClient,
) -> None:
    sub = _subscription("urn:ngsi-ld:Subscription:i1", INLINE)
    assert (await client.post(f"{API}/subscriptions", json=sub, headers=LD)).status_code == 201
    got = (await client.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:i1")).json()
    url = got["jsonldContext"]
    assert url.startswith(f"http://cloud.test{BASE}/")
    local_id = url.rsplit("/", 1)[1]
    listed = (await client.get(BASE, params={"kind": "ImplicitlyCreated"})).json()
    assert listed == [url]
    assert url not in (await client.get(BASE, params={"kind": "Hosted"})).json()
    details = (await client.get(f"{BASE}/{local_id}", params={"details": "true"})).json()
    assert (details["kind"], details["localId"]) == ("ImplicitlyCreated", local_id)
    assert (await client.get(f"{BASE}/{local_id}")).json() == {"@context": INLINE}
    reload = await client.delete(f"{BASE}/{local_id}", params={"reload": "true"})
    assert reload.status_code == 400
    assert reload.json()["type"] == ERR + "BadRequestData"
    assert (await client.delete(f"{BASE}/{local_id}")).status_code == 204
    assert (await client.get(BASE, params={"kind": "ImplicitlyCreated"})).json() == []


async def test_a_refused_subscription_leaves_no_implicit_context(
    client: httpx.AsyncClient,
) -> None:
    sub = _subscription("urn:ngsi-ld:Subscription:i2", INLINE)
    assert (await client.post(f"{API}/subscriptions", json=sub, headers=LD)).status_code == 201
    again = await client.post(f"{API}/subscriptions", json=sub, headers=LD)
    assert again.status_code == 409
    assert len((await client.get(BASE, params={"kind": "ImplicitlyCreated"})).json()) == 1


async def test_a_single_url_or_an_explicit_jsonld_context_creates_none(
    client: httpx.AsyncClient,
) -> None:
    core = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
    one = _subscription("urn:ngsi-ld:Subscription:i3", core)
    explicit = {**_subscription("urn:ngsi-ld:Subscription:i4", INLINE), "jsonldContext": core}
    for sub in (one, explicit):
        resp = await client.post(f"{API}/subscriptions", json=sub, headers=LD)
        assert resp.status_code == 201, resp.text
    assert (await client.get(BASE, params={"kind": "ImplicitlyCreated"})).json() == []


async def test_an_unparsable_context_url_is_ld_context_not_available() -> None:
    async with ContextStore(preload_dir=None, cache_dir=None) as store:
        with pytest.raises(ContextError) as err:
            await store.resolve("http://127.0.0.1:1http://127.0.0.1:1/ctx.jsonld")
    assert err.value.problem == "LdContextNotAvailable"
