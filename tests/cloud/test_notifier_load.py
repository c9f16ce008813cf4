"""Notification delivery under load: bursts, coalescing, order, isolation and counters.

Changes go to ``Notifier.entities_changed`` as the entity routes hand them over after their
commit (the store is not written: what is measured is delivery). Receivers are loopback
HTTP/1.1 servers that keep connections alive, as a real receiver would, and record every
notification with the value each entity had, so loss, duplicates and reordering show.
Delivery tests run on SQLite; the counters' store method runs on both stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from ldt.cloud.ngsild.contexts import ContextStore
from ldt.cloud.ngsild.jsonld import core_context
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.notify_queue import EndpointQueue, Pending, keys_of
from ldt.cloud.ngsild.subscriptions import Change, Matcher, compile_subscription, validate
from ldt.cloud.store import DB_FILENAME, SqliteStore, Store
from ldt.cloud.store.subscriptions import NotificationCounts
from tests.cloud.helpers import asgi_client, notifying_app

NOW = "2026-01-01T00:00:00.000Z"


@dataclass
class Receiver:
    """A keep-alive loopback receiver: every entity's values in arrival order."""

    delay_s: float = 0.0
    jitter_s: float = 0.0
    requests: int = 0
    peak: int = 0
    """Most requests it was answering at once."""
    values: dict[str, list[int]] = field(default_factory=dict)
    notification_ids: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _active: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rng = random.Random()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = orjson.loads(await reader.readexactly(length))
                self._active += 1
                self.peak = max(self.peak, self._active)
                await asyncio.sleep(self.delay_s + rng.random() * self.jitter_s)
                self._active -= 1
                self.requests += 1
                self.notification_ids.append(body["id"])
                for entity in body["data"]:
                    self.values.setdefault(entity["id"], []).append(entity["t"]["value"])
                self.arrived.set()
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def latest(self) -> dict[str, int]:
        return {eid: seen[-1] for eid, seen in self.values.items()}

    async def until(self, expected: dict[str, int], timeout_s: float = 20.0) -> None:
        """Wait until every entity's latest notified value is the expected one."""
        async with asyncio.timeout(timeout_s):
            while self.latest() != expected:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def receiver(**kwargs: Any) -> AsyncIterator[Receiver]:
    rec = Receiver(**kwargs)
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/notify"
    try:
        yield rec
    finally:
        server.close()
        await server.wait_closed()


def subscription_doc(url: str, sub: str = "s1") -> dict[str, Any]:
    body = {
        "id": f"urn:ngsi-ld:Subscription:{sub}",
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": url, "accept": "application/json"}},
    }
    return validate(body, core_context(), context=None, now=NOW)


def building(n: int, value: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Building:b{n}",
        "type": "Building",
        "t": {"type": "Property", "value": value},
    }


def change(n: int, value: int) -> Change:
    """Entity ``n``'s ``t`` going from ``value - 1`` to ``value``."""
    return building(n, value - 1), building(n, value)


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Store]:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as opened:
        yield opened


def notifier_on(store: Store, **kwargs: Any) -> Notifier:
    contexts = ContextStore(preload_dir=None, cache_dir=None, allow_network=False)
    options: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_cap_s": 0.1, **kwargs}
    return Notifier(store=store, contexts=contexts, **options)


async def burst(notifier: Notifier, changes: Iterable[Change]) -> None:
    """Each change committed on its own (one per PATCH), all at once."""
    await asyncio.gather(*(notifier.entities_changed([c]) for c in changes))


async def test_a_burst_is_delivered_whole_with_several_requests_in_flight(sqlite: Store) -> None:
    async with receiver(delay_s=0.002) as rec:
        await sqlite.subscriptions.create(subscription_doc(rec.url))
        notifier = notifier_on(sqlite, concurrency=4)
        expected = {f"urn:ngsi-ld:Building:b{n}": 1 for n in range(1000)}
        await burst(notifier, (change(n, 1) for n in range(1000)))
        await rec.until(expected)
        await notifier.aclose()
    assert rec.requests == 1000  # the queue had room: one notification per change
    assert len(set(rec.notification_ids)) == 1000
    assert 1 < rec.peak <= 4  # a few in flight, never more than asked
    stored = await sqlite.subscriptions.get("urn:ngsi-ld:Subscription:s1")
    assert stored is not None
    assert (stored.times_sent, stored.times_failed) == (1000, 0)
    assert stored.last_success is not None
    assert stored.last_failure is None


async def test_each_entity_is_notified_in_order(sqlite: Store) -> None:
    async with receiver(jitter_s=0.003) as rec:
        await sqlite.subscriptions.create(subscription_doc(rec.url))
        notifier = notifier_on(sqlite, concurrency=8)
        changes = [change(n, v) for v in range(1, 26) for n in range(20)]
        await burst(notifier, changes)
        await rec.until({f"urn:ngsi-ld:Building:b{n}": 25 for n in range(20)})
        await notifier.aclose()
    assert rec.peak > 1
    for seen in rec.values.values():
        assert seen == list(range(1, 26))  # every change, none overtaken by a later one


async def test_a_full_queue_coalesces_instead_of_dropping(
    sqlite: Store, caplog: pytest.LogCaptureFixture
) -> None:
    async with receiver(delay_s=0.02) as rec:
        await sqlite.subscriptions.create(subscription_doc(rec.url))
        notifier = notifier_on(sqlite, queue_size=20, concurrency=2)
        changes = [change(n, v) for v in range(1, 11) for n in range(30)]  # 300 changes
        with caplog.at_level(logging.WARNING, logger="ldt.cloud.notifier"):
            await burst(notifier, changes)
            await rec.until({f"urn:ngsi-ld:Building:b{n}": 10 for n in range(30)})
            await notifier.aclose()
    assert rec.requests < 300  # merged: fewer notifications than changes
    for seen in rec.values.values():
        assert seen == sorted(seen)  # intermediate values may be skipped, never reordered
    stored = await sqlite.subscriptions.get("urn:ngsi-ld:Subscription:s1")
    assert stored is not None
    assert (stored.times_sent, stored.times_failed) == (rec.requests, 0)
    messages = [r.getMessage() for r in caplog.records]
    assert "notification queue full: notifications coalesced" in messages
    assert "notification dropped: queue full" not in messages


async def test_a_slow_endpoint_does_not_delay_a_fast_one(sqlite: Store) -> None:
    async with receiver(delay_s=1.0) as slow, receiver() as fast:
        await sqlite.subscriptions.create(subscription_doc(slow.url, "slow"))
        await sqlite.subscriptions.create(subscription_doc(fast.url, "fast"))
        notifier = notifier_on(sqlite, concurrency=4, timeout_s=30.0)
        await burst(notifier, (change(n, 1) for n in range(200)))
        async with asyncio.timeout(3.0):  # the slow one needs 50 s for its 200
            await fast.until({f"urn:ngsi-ld:Building:b{n}": 1 for n in range(200)})
        assert slow.requests <= 8
        await notifier.aclose()
    fast_counts = await sqlite.subscriptions.get("urn:ngsi-ld:Subscription:fast")
    slow_counts = await sqlite.subscriptions.get("urn:ngsi-ld:Subscription:slow")
    assert fast_counts is not None
    assert slow_counts is not None
    assert (fast_counts.times_sent, fast_counts.times_failed) == (200, 0)
    # the slow endpoint's unsent notifications and interrupted requests count as failed
    assert slow_counts.times_sent == 200
    assert 200 - slow.requests <= slow_counts.times_failed <= 200


async def test_counters_are_written_at_close(sqlite: Store) -> None:
    async with receiver() as rec:
        await sqlite.subscriptions.create(subscription_doc(rec.url))
        notifier = notifier_on(sqlite, counters_s=60.0)  # no periodic flush in this test
        await burst(notifier, (change(n, 1) for n in range(5)))
        await rec.until({f"urn:ngsi-ld:Building:b{n}": 1 for n in range(5)})
        await asyncio.sleep(0.1)
        before = await sqlite.subscriptions.get("urn:ngsi-ld:Subscription:s1")
        assert before is not None
        assert before.last_success is None
        await notifier.aclose()
    after = await sqlite.subscriptions.get("urn:ngsi-ld:Subscription:s1")
    assert after is not None
    assert (after.times_sent, after.times_failed) == (5, 0)
    assert after.last_success is not None
    assert after.last_notification is not None
    assert after.last_notification <= after.last_success


# --- the store's counters ---------------------------------------------------------------


async def test_record_notifications_adds_and_keeps_the_later_time(store: Store) -> None:
    for sub in ("a", "b"):
        await store.subscriptions.create(subscription_doc("http://127.0.0.1:9/n", sub))
    a, b = "urn:ngsi-ld:Subscription:a", "urn:ngsi-ld:Subscription:b"
    t1, t2, t3 = "2026-01-01T00:00:01.000Z", "2026-01-01T00:00:02.000Z", "2026-01-01T00:00:03.000Z"
    await store.subscriptions.record_notifications(
        [
            NotificationCounts(a, sent=3, failed=1, last_notification=t2, last_failure=t1),
            NotificationCounts(b, sent=1, last_notification=t1, last_success=t1),
            NotificationCounts("urn:ngsi-ld:Subscription:gone", sent=5),  # skipped
        ]
    )
    await asyncio.gather(  # two brokers flushing at once add up
        store.subscriptions.record_notifications(
            [NotificationCounts(a, sent=2, last_notification=t1, last_success=t3)]
        ),
        store.subscriptions.record_notifications(
            [
                NotificationCounts(a, sent=1, failed=1, last_notification=t3, last_failure=t2),
                NotificationCounts(a, sent=1),  # one id twice in a call: summed
            ]
        ),
    )
    await store.subscriptions.record_notifications([])
    got_a, got_b = await store.subscriptions.get(a), await store.subscriptions.get(b)
    assert got_a is not None
    assert got_b is not None
    assert (got_a.times_sent, got_a.times_failed) == (7, 2)
    assert (got_a.last_notification, got_a.last_success, got_a.last_failure) == (t3, t3, t2)
    assert (got_b.times_sent, got_b.times_failed) == (1, 0)
    assert (got_b.last_notification, got_b.last_success, got_b.last_failure) == (t1, t1, None)
    assert await store.subscriptions.get("urn:ngsi-ld:Subscription:gone") is None


# --- the queue alone --------------------------------------------------------------------


def pending(matcher: Matcher, *entities: tuple[int, int]) -> Pending:
    return Pending(
        matcher=matcher,
        uri=matcher.delivery.uri,
        headers={"Content-Type": "application/json"},
        timeout_s=1.0,
        context=None,
        data=[building(n, v) for n, v in entities],
        keys=keys_of(matcher.id, (f"urn:ngsi-ld:Building:b{n}" for n, _ in entities)),
    )


def test_queue_holds_back_an_entity_in_flight_and_whatever_follows_it() -> None:
    m = compile_subscription(subscription_doc("http://h/n"), core_context())
    queue = EndpointQueue(10)
    for item in (
        pending(m, (1, 1)),
        pending(m, (1, 2), (2, 1)),
        pending(m, (2, 2)),
        pending(m, (3, 1)),
    ):
        assert queue.put(item) is None
    first = queue.take()
    assert first is not None
    assert first.data == [building(1, 1)]
    third = queue.take()  # b1 is in flight: (b1, b2) waits, so b2's next change waits too
    assert third is not None
    assert third.data == [building(3, 1)]
    assert queue.take() is None
    queue.done(first)
    second = queue.take()
    assert second is not None
    assert [e["id"] for e in second.data] == [
        "urn:ngsi-ld:Building:b1",
        "urn:ngsi-ld:Building:b2",
    ]


def test_queue_coalesces_per_subscription_and_drops_what_cannot_merge() -> None:
    one = compile_subscription(subscription_doc("http://h/n", "one"), core_context())
    two = compile_subscription(subscription_doc("http://h/n", "two"), core_context())
    queue = EndpointQueue(3)
    for item in (pending(one, (1, 1)), pending(two, (1, 1)), pending(one, (1, 2), (2, 1))):
        assert queue.put(item) is None
    assert queue.put(pending(one, (3, 1))) is None  # full: "one"'s two merge, room again
    assert len(queue) == 3
    assert queue.coalesced == 1
    merged = queue.take()
    assert merged is not None
    assert merged.merged == 2
    assert merged.data == [building(1, 2), building(2, 1)]  # b1 once, in its latest state

    full = EndpointQueue(2)
    assert full.put(pending(one, (1, 1))) is None
    assert full.put(pending(two, (1, 1))) is None
    assert full.put(pending(two, (2, 1))) is None  # nothing to coalesce: joins "two"'s last
    assert [len(item.data) for item in full.pending] == [1, 2]
    three = compile_subscription(subscription_doc("http://h/n", "three"), core_context())
    lost = pending(three, (1, 1))
    assert full.put(lost) is lost  # full of other subscriptions: nothing to merge with


async def test_reading_a_subscription_shows_the_counts_made_so_far(store: Store) -> None:
    """GET /subscriptions[/{id}] writes pending counters first: a client that has just been
    notified sees lastSuccess at once (ETSI 046_12), whatever ``counters_s`` is."""
    sub = {
        "id": "urn:ngsi-ld:Subscription:s1",
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": "", "accept": "application/json"}},
    }
    headers = {"Content-Type": "application/json"}
    async with (
        receiver() as rec,
        notifying_app(store, counters_s=60.0) as app,
        asgi_client(app) as api,
    ):
        sub["notification"]["endpoint"]["uri"] = rec.url  # type: ignore[index]
        made = await api.post(
            "/ngsi-ld/v1/subscriptions", content=orjson.dumps(sub), headers=headers
        )
        assert made.status_code == 201, made.text
        entity = orjson.dumps(building(1, 5))
        created = await api.post("/ngsi-ld/v1/entities", content=entity, headers=headers)
        assert created.status_code == 201, created.text
        await rec.until({"urn:ngsi-ld:Building:b1": 5})
        await asyncio.sleep(0.05)  # the attempt's outcome is counted after the response
        one = (await api.get(f"/ngsi-ld/v1/subscriptions/{sub['id']}")).json()
        assert one["notification"]["timesSent"] == 1
        assert "lastSuccess" in one["notification"]
        listed = (await api.get("/ngsi-ld/v1/subscriptions")).json()
        assert listed[0]["notification"]["timesSent"] == 1
