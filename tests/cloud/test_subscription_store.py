"""The subscription repository on both stores: paging, the generation, notification slots.

The HTTP tests (test_subscriptions.py, test_multi_broker.py) see these through brokers;
here the repository is called directly, so what each method promises is checked where it
is kept: the generation moves with every change and only then, a slot is held for its
period and freed by a change, and of many claims at once (two stores on one PostgreSQL
database included) exactly one wins.
"""

from __future__ import annotations

import asyncio

from ldt.cloud.store import PostgresStore, Store
from tests.cloud.test_notifier_load import subscription_doc

URL = "http://127.0.0.1:9/n"
S1 = "urn:ngsi-ld:Subscription:s1"


async def test_pages_are_by_id_and_counted(store: Store) -> None:
    subs = store.subscriptions
    for name in ("c", "a", "b"):
        assert await subs.create(subscription_doc(URL, name))
    records, total = await subs.list()
    assert total == 3
    assert [r.doc["id"].rsplit(":", 1)[1] for r in records] == ["a", "b", "c"]
    page, total = await subs.list(limit=1, offset=1)
    assert (total, [r.doc["id"] for r in page]) == (3, ["urn:ngsi-ld:Subscription:b"])
    assert (await subs.list(limit=0))[0] == []
    assert (await subs.list(offset=2))[0][0].doc == subscription_doc(URL, "c")
    assert await subs.list(offset=5) == ([], 3)


async def test_generation_moves_with_every_change_and_only_then(store: Store) -> None:
    subs = store.subscriptions
    start = await subs.generation()
    doc = subscription_doc(URL)
    assert await subs.create(doc)
    assert not await subs.create(doc)  # exists: nothing written
    after_create = await subs.generation()
    assert after_create != start
    assert await subs.replace({**doc, "description": "changed"})
    after_replace = await subs.generation()
    assert after_replace != after_create
    assert not await subs.replace(subscription_doc(URL, "absent"))
    assert not await subs.delete("urn:ngsi-ld:Subscription:absent")
    assert await subs.generation() == after_replace
    assert await subs.delete(S1)
    assert await subs.generation() != after_replace
    assert await subs.get(S1) is None


async def test_a_slot_is_held_for_its_period_and_freed_by_a_change(store: Store) -> None:
    subs = store.subscriptions
    doc = subscription_doc(URL)
    await subs.create(doc)
    assert await subs.claim_notification_slot(S1, now_ms=1000, period_ms=500) == (True, 1500)
    assert await subs.claim_notification_slot(S1, now_ms=1499, period_ms=500) == (False, 1500)
    assert await subs.claim_notification_slot(S1, now_ms=1500, period_ms=100) == (True, 1600)
    await subs.replace({**doc, "description": "changed"})  # frees it
    assert await subs.claim_notification_slot(S1, now_ms=1550, period_ms=100) == (True, 1650)
    await subs.delete(S1)
    assert await subs.claim_notification_slot(S1, now_ms=1560, period_ms=100) == (True, 1660)


async def test_of_claims_at_once_exactly_one_wins(store: Store) -> None:
    subs = [store.subscriptions]
    other: PostgresStore | None = None
    if isinstance(store, PostgresStore):  # a second broker process on the same database
        other = PostgresStore(dsn=store.dsn, pool_size=2)
        await other.open()
        subs.append(other.subscriptions)
    try:
        for now_ms in (10_000, 20_000, 30_000):
            results = await asyncio.gather(
                *(
                    subs[n % len(subs)].claim_notification_slot(S1, now_ms=now_ms, period_ms=5000)
                    for n in range(12)
                )
            )
            assert sorted(results) == [(False, now_ms + 5000)] * 11 + [(True, now_ms + 5000)]
    finally:
        if other is not None:
            await other.close()
