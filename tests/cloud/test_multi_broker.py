"""Two broker processes on one PostgreSQL: subscriptions fire exactly as with one.

Each broker is its own app (``build_app``) with its own ``PostgresStore`` pool and
``Notifier`` on the same database, as two ``ldt cloud serve`` processes would be; nothing is
shared but the database. A loopback HTTP receiver records every notification and when it
arrived. (SQLite is single-process by design, so these run on PostgreSQL only.)

What is checked: a subscription created or changed through one broker is in force in the
other at once (not after its ``refresh_s``); a change made through either is notified once;
a periodic (``timeInterval``) subscription is notified once per interval between the two,
and keeps being notified when one of them stops; throttling holds across both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from ldt.cloud.ngsild.timestamps import parse_iso_ms
from ldt.cloud.store import PostgresStore
from tests.cloud.helpers import Receiver, asgi_client, notifying_app, serving
from tests.cloud.test_subscriptions import (
    API,
    LD,
    building,
    create,
    patch_attrs,
    subscription,
)

SUB = f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1"


@dataclass
class TimedReceiver(Receiver):
    """A ``Receiver`` that also notes when (monotonic seconds) each notification arrived."""

    times: list[float] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        before = len(self.received)
        await super().handle(reader, writer)
        if len(self.received) > before:
            self.times.append(time.monotonic())


@pytest.fixture
async def rec() -> AsyncIterator[TimedReceiver]:
    async with serving(TimedReceiver()) as receiver:
        yield receiver


@contextlib.asynccontextmanager
async def broker(dsn: str) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """One broker process: its own pool, app and notifier (default ``refresh_s`` of 5 s)."""
    async with (
        PostgresStore(dsn=dsn, pool_size=2) as store,
        notifying_app(store, backoff_base_s=0.05, backoff_cap_s=0.1) as app,
        asgi_client(app) as c,
    ):
        yield app, c


@pytest.fixture
async def two(
    postgres_dsn: str,
) -> AsyncIterator[tuple[tuple[Starlette, httpx.AsyncClient], tuple[Starlette, httpx.AsyncClient]]]:
    async with broker(postgres_dsn) as a, broker(postgres_dsn) as b:
        yield a, b


Two = tuple[tuple[Starlette, httpx.AsyncClient], tuple[Starlette, httpx.AsyncClient]]


async def settle(rec: TimedReceiver, expected: int, quiet_s: float = 0.6) -> None:
    """Wait for ``expected`` notifications, then a quiet spell in which no more may come."""
    await rec.wait(expected)
    await asyncio.sleep(quiet_s)
    assert len(rec.received) == expected, [body for _, body in rec.received]


async def add_building(api: httpx.AsyncClient, n: int, **attrs: Any) -> None:
    resp = await api.post(f"{API}/entities", content=orjson.dumps(building(n, **attrs)), headers=LD)
    assert resp.status_code == 201, resp.text


async def test_subscription_made_on_a_fires_once_for_a_change_on_b(
    two: Two, rec: TimedReceiver
) -> None:
    (_, a), (_, b) = two
    await add_building(b, 1, t=0)  # B has loaded its (empty) subscriptions before
    assert (await create(a, subscription(rec.url, watchedAttributes=["t"]))).status_code == 201
    await patch_attrs(b, "urn:ngsi-ld:Building:b1", t=1)
    await settle(rec, 1)
    assert rec.received[0][1]["data"][0]["t"]["value"] == 1
    await patch_attrs(a, "urn:ngsi-ld:Building:b1", t=2)  # and through A, once too
    await settle(rec, 2)

    paused = {"isActive": False, "@context": subscription(rec.url)["@context"]}
    resp = await a.patch(SUB, content=orjson.dumps(paused), headers=LD)
    assert resp.status_code == 204, resp.text
    await patch_attrs(b, "urn:ngsi-ld:Building:b1", t=3)  # paused on A: B knows at once
    await settle(rec, 2)
    assert (await a.delete(SUB)).status_code == 204
    await patch_attrs(b, "urn:ngsi-ld:Building:b1", t=4)
    await settle(rec, 2)
    counters = (await b.get(f"{API}/subscriptions")).json()
    assert counters == []


async def test_counters_are_shared(two: Two, rec: TimedReceiver) -> None:
    (_, a), (_, b) = two
    assert (await create(a, subscription(rec.url))).status_code == 201
    await add_building(a, 1, t=0)
    await add_building(b, 2, t=0)
    await settle(rec, 2)
    for api in (a, b):
        shown = (await api.get(SUB)).json()["notification"]
        assert shown["timesSent"] == 2
        assert shown["status"] == "ok"


async def test_periodic_subscription_fires_once_per_interval(two: Two, rec: TimedReceiver) -> None:
    (app_a, a), (_, b) = two
    await add_building(a, 1, t=0)
    assert (await create(a, subscription(rec.url, timeInterval=1))).status_code == 201
    await patch_attrs(b, "urn:ngsi-ld:Building:b1", t=1)  # B loads it: both brokers tick
    started = time.monotonic()
    await asyncio.sleep(3.6)
    window = time.monotonic() - started
    assert 3 <= len(rec.times) <= int(window) + 1, rec.times  # one per interval, not two
    sent = [parse_iso_ms(body["notifiedAt"]) or 0 for _, body in rec.received]
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) >= 950, gaps  # never two in one interval (as stamped when sent)
    assert all(body["subscriptionId"].endswith(":s1") for _, body in rec.received)

    await app_a.state.notifier.aclose()  # A stops: B carries on alone
    seen = len(rec.times)
    await asyncio.sleep(2.2)
    assert len(rec.times) >= seen + 1


async def test_throttling_holds_across_brokers(two: Two, rec: TimedReceiver) -> None:
    (_, a), (_, b) = two
    await add_building(a, 1, t=0)
    sub = subscription(rec.url, watchedAttributes=["t"], throttling=2)
    assert (await create(a, sub)).status_code == 201
    for value, api in enumerate((b, a, b, a, b, a), start=1):
        await patch_attrs(api, "urn:ngsi-ld:Building:b1", t=value)
    await settle(rec, 1)  # six changes through two brokers inside 2 s: one notification
    await asyncio.sleep(max(0.0, 2.1 - (time.monotonic() - rec.times[0])))
    await patch_attrs(a, "urn:ngsi-ld:Building:b1", t=10)
    await settle(rec, 2)
    assert rec.received[1][1]["data"][0]["t"]["value"] == 10
