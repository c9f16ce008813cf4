"""NGSI-LD subscriptions: the API, matching, and HTTP delivery to real loopback receivers.

Every test using ``store`` runs on SQLite and on PostgreSQL. Receivers are small asyncio
HTTP servers on 127.0.0.1 that record what they get and answer with a chosen status and
delay, so delivery, retries and isolation between endpoints are observed, not assumed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from ldt.cloud.ngsild.jsonld import core_context
from ldt.cloud.ngsild.notifier import redacted
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.subscriptions import Matcher, compile_subscription, present, validate
from ldt.cloud.store import DB_FILENAME, PostgresStore, SqliteStore, Store
from tests.cloud import batches
from tests.cloud.conftest import register
from tests.cloud.helpers import notifying_app, receiver

API = "/ngsi-ld/v1"
LD = {"Content-Type": "application/ld+json"}
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"


@pytest.fixture
async def app(store: Store) -> AsyncIterator[Starlette]:
    settings = {"attempts": 3, "backoff_base_s": 0.05, "backoff_cap_s": 0.1, "timeout_s": 5.0}
    async with notifying_app(store, **settings) as built:
        yield built


def subscription(uri: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "urn:ngsi-ld:Subscription:s1",
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": uri, "accept": "application/json"}},
        "@context": CORE,
        **extra,
    }


def building(n: int, **attrs: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": f"urn:ngsi-ld:Building:b{n}", "type": "Building"}
    doc.update({k: {"type": "Property", "value": v} for k, v in attrs.items()})
    return {**doc, "@context": CORE}


async def create(api: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await api.post(f"{API}/subscriptions", content=orjson.dumps(body), headers=LD)


async def patch_attrs(api: httpx.AsyncClient, eid: str, **attrs: Any) -> None:
    body = {k: {"type": "Property", "value": v} for k, v in attrs.items()}
    resp = await api.patch(
        f"{API}/entities/{eid}/attrs", content=orjson.dumps({**body, "@context": CORE}), headers=LD
    )
    assert resp.status_code == 204, resp.text


async def counted(
    api: httpx.AsyncClient, url: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The subscription once ``done(notification)`` (counters are saved after each POST)."""
    for _ in range(250):
        got: dict[str, Any] = (await api.get(url)).json()
        if done(got["notification"]):
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"counters never reached the expected state: {got['notification']}")


# --- the API -------------------------------------------------------------------------------


async def test_crud(api: httpx.AsyncClient) -> None:
    body = subscription("http://127.0.0.1:9/notify", watchedAttributes=["temperature"])
    resp = await create(api, body)
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1"
    assert (await create(api, body)).status_code == 409

    got = (await api.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1")).json()
    assert got["entities"] == [{"type": "Building"}]
    assert got["watchedAttributes"] == ["temperature"]
    assert got["status"] == "active"
    assert "timesSent" not in got["notification"]  # nothing sent yet
    assert got["notification"]["endpoint"]["uri"] == "http://127.0.0.1:9/notify"

    second = subscription("http://127.0.0.1:9/notify", id="urn:ngsi-ld:Subscription:s2")
    assert (await create(api, second)).status_code == 201
    page = await api.get(f"{API}/subscriptions", params={"limit": 1, "count": "true"})
    assert page.headers["ngsild-results-count"] == "2"
    assert [s["id"] for s in page.json()] == ["urn:ngsi-ld:Subscription:s1"]
    page = await api.get(f"{API}/subscriptions", params={"offset": 1})
    assert [s["id"] for s in page.json()] == ["urn:ngsi-ld:Subscription:s2"]

    patch = {"isActive": False, "description": "d", "@context": CORE}
    resp = await api.patch(
        f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1", content=orjson.dumps(patch), headers=LD
    )
    assert resp.status_code == 204, resp.text
    got = (await api.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1")).json()
    assert got["status"] == "paused"
    assert got["description"] == "d"
    assert got["watchedAttributes"] == ["temperature"]  # kept
    invalid = {"notification": {"format": "keyValues"}, "@context": CORE}  # replaced whole
    resp = await api.patch(
        f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1",
        content=orjson.dumps(invalid),
        headers=LD,
    )
    assert resp.status_code == 400

    assert (await api.delete(f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1")).status_code == 204
    assert (await api.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1")).status_code == 404
    assert (await api.delete(f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1")).status_code == 404
    missing = await api.patch(
        f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1", content=orjson.dumps(patch), headers=LD
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"notification": None}, "notification"),
        ({"timeInterval": 5, "watchedAttributes": ["a"]}, "timeInterval"),
        ({"throttling": -1}, "throttling"),
        ({"id": "not a uri"}, "URI"),
        ({"type": "Sub"}, "type"),
        ({"notificationTrigger": ["whenever"]}, "notificationTrigger"),
        ({"q": "temperature>>"}, "q"),
        ({"entities": []}, "entities"),
        ({"watchedAttributes": []}, "watchedAttributes"),
        ({"expiresAt": "tomorrow"}, "expiresAt"),
        ({"expiresAt": "2020-01-01T00:00:00Z"}, "past"),
        ({"geoQ": {"georel": "near", "geometry": "Point", "coordinates": [1, 2]}}, "geoQ"),
    ],
)
async def test_invalid_subscription_is_400(
    api: httpx.AsyncClient, change: dict[str, Any], detail: str
) -> None:
    merged = {**subscription("http://127.0.0.1:9/n"), **change}
    body = {k: v for k, v in merged.items() if v is not None}
    resp = await create(api, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["type"].endswith("BadRequestData")
    assert detail in resp.json()["detail"]
    assert (await api.get(f"{API}/subscriptions")).json() == []


async def test_bad_bodies(api: httpx.AsyncClient) -> None:
    resp = await api.post(f"{API}/subscriptions", content=b"{", headers=LD)
    assert resp.status_code == 400
    resp = await api.post(
        f"{API}/subscriptions", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert resp.status_code == 415
    assert (await api.get(f"{API}/subscriptions/not-a-uri")).status_code == 400
    assert (await api.get(f"{API}/subscriptions", params={"limit": "x"})).status_code == 400


async def test_subscription_survives_a_store_reopen(
    api: httpx.AsyncClient, store: Store, request: pytest.FixtureRequest
) -> None:
    assert (await create(api, subscription("http://127.0.0.1:9/n"))).status_code == 201
    reopened: Store
    if isinstance(store, SqliteStore):
        reopened = SqliteStore(path=store.path.parent / DB_FILENAME)
    else:
        reopened = PostgresStore(dsn=request.getfixturevalue("postgres_dsn"), pool_size=1)
    await store.close()
    try:
        async with reopened:
            record = await reopened.subscriptions.get("urn:ngsi-ld:Subscription:s1")
    finally:
        await store.open()
    assert record is not None
    assert record.doc["notification"]["endpoint"]["uri"] == "http://127.0.0.1:9/n"


# --- notifications ----------------------------------------------------------------------------


async def test_only_matching_changes_are_notified(api: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        body = subscription(
            rec.url,
            watchedAttributes=["temperature"],
            q="temperature>20",
            notification={
                "attributes": ["temperature"],
                "endpoint": {
                    "uri": rec.url,
                    "accept": "application/json",
                    "receiverInfo": [{"key": "X-Token", "value": "t1"}],
                },
            },
        )
        assert (await create(api, body)).status_code == 201
        for doc in (building(1, temperature=10, humidity=50), {**building(2), "type": "Car"}):
            resp = await api.post(f"{API}/entities", content=orjson.dumps(doc), headers=LD)
            assert resp.status_code == 201, resp.text
        await patch_attrs(api, "urn:ngsi-ld:Building:b1", humidity=60)  # not watched
        await patch_attrs(api, "urn:ngsi-ld:Building:b1", temperature=15)  # q fails
        await patch_attrs(api, "urn:ngsi-ld:Building:b1", temperature=25)  # matches
        (note,) = await rec.wait(1)
        await asyncio.sleep(0.2)
        assert len(rec.received) == 1
        headers, _ = rec.received[0]
    assert note["type"] == "Notification"
    assert note["subscriptionId"] == "urn:ngsi-ld:Subscription:s1"
    assert note["id"].startswith("urn:ngsi-ld:Notification:")
    assert note["notifiedAt"].endswith("Z")
    assert note["data"] == [
        {"id": "urn:ngsi-ld:Building:b1", "type": "Building",
         "temperature": {"type": "Property", "value": 25}}
    ]  # fmt: skip
    assert headers["x-token"] == "t1"
    assert headers["content-type"] == "application/json"
    assert CORE in headers["link"]


async def test_keyvalues_ld_json_and_delete_trigger(api: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        body = subscription(
            rec.url,
            notificationTrigger=["entityCreated", "entityDeleted"],
            notification={
                "format": "keyValues",
                "endpoint": {"uri": rec.url, "accept": "application/ld+json"},
            },
        )
        assert (await create(api, body)).status_code == 201
        doc = building(1, temperature=10)
        assert (
            await api.post(f"{API}/entities", content=orjson.dumps(doc), headers=LD)
        ).status_code == 201
        await patch_attrs(api, "urn:ngsi-ld:Building:b1", temperature=11)  # no trigger
        assert (await api.delete(f"{API}/entities/urn:ngsi-ld:Building:b1")).status_code == 204
        created, deleted = await rec.wait(2)
    assert created["@context"] == CORE
    assert created["data"] == [
        {"id": "urn:ngsi-ld:Building:b1", "type": "Building", "temperature": 10, "@context": CORE}
    ]
    (gone,) = deleted["data"]
    assert gone.pop("deletedAt").endswith("Z")
    assert gone == {"id": "urn:ngsi-ld:Building:b1", "type": "Building", "@context": CORE}


async def test_slow_receiver_does_not_delay_another(api: httpx.AsyncClient) -> None:
    async with receiver(delay_s=2.0) as slow, receiver() as fast:
        slow_sub = subscription(slow.url, id="urn:ngsi-ld:Subscription:slow")
        assert (await create(api, slow_sub)).status_code == 201
        assert (await create(api, subscription(fast.url))).status_code == 201
        start = time.monotonic()
        doc = building(1, temperature=10)
        assert (
            await api.post(f"{API}/entities", content=orjson.dumps(doc), headers=LD)
        ).status_code == 201
        await fast.wait(1, timeout_s=1.0)
        assert time.monotonic() - start < 1.0
        assert slow.received == []
        await slow.wait(1, timeout_s=5.0)


async def test_failing_receiver_is_retried_and_counted(api: httpx.AsyncClient) -> None:
    url = f"{API}/subscriptions/urn:ngsi-ld:Subscription:s1"
    async with receiver(statuses=[500, 503]) as rec:
        assert (await create(api, subscription(rec.url))).status_code == 201
        doc = building(1, temperature=10)
        assert (
            await api.post(f"{API}/entities", content=orjson.dumps(doc), headers=LD)
        ).status_code == 201
        bodies = await rec.wait(3)
        assert len({b["id"] for b in bodies}) == 1  # the same notification, retried
        got = await counted(api, url, lambda n: "lastSuccess" in n)
    params = got["notification"]
    assert params["timesSent"] == 3
    assert params["timesFailed"] == 2
    assert params["lastSuccess"] >= params["lastFailure"]
    assert params["status"] == "ok"

    # a receiver that never answers 2xx: every attempt fails, the status says so
    async with receiver(statuses=[500, 500, 500]) as dead:
        patch = {"notification": {"endpoint": {"uri": dead.url}}, "@context": CORE}  # whole
        resp = await api.patch(url, content=orjson.dumps(patch), headers=LD)
        assert resp.status_code == 204, resp.text
        await patch_attrs(api, "urn:ngsi-ld:Building:b1", temperature=12)
        await dead.wait(3)
        got = await counted(api, url, lambda n: n["timesFailed"] >= 5)
    assert got["notification"]["timesFailed"] == 5
    assert got["notification"]["status"] == "failed"


async def test_time_interval_notifies_periodically(api: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        doc = building(1, temperature=10)
        assert (
            await api.post(f"{API}/entities", content=orjson.dumps(doc), headers=LD)
        ).status_code == 201
        assert (await create(api, subscription(rec.url, timeInterval=0.5))).status_code == 201
        start = time.monotonic()
        first, second = await rec.wait(2, timeout_s=4.0)
    assert time.monotonic() - start >= 0.4  # one interval apart
    assert first["data"] == second["data"]
    assert first["data"][0]["temperature"]["value"] == 10


async def test_paused_subscription_is_not_notified(api: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        paused = subscription(rec.url, id="urn:ngsi-ld:Subscription:p", isActive=False)
        assert (await create(api, paused)).status_code == 201
        cars = subscription(rec.url, entities=[{"type": "Car"}])
        assert (await create(api, cars)).status_code == 201
        for doc in (building(1, temperature=1), {**building(2, speed=3), "type": "Car"}):
            resp = await api.post(f"{API}/entities", content=orjson.dumps(doc), headers=LD)
            assert resp.status_code == 201
        (note,) = await rec.wait(1)
        await asyncio.sleep(0.2)
        assert len(rec.received) == 1
    assert note["subscriptionId"] == "urn:ngsi-ld:Subscription:s1"


async def test_gateway_ingest_notifies(api: httpx.AsyncClient, store: Store) -> None:
    token = await register(store, "gw-1")
    async with receiver() as rec:
        body = subscription(
            rec.url, entities=[{"type": "Device"}], watchedAttributes=["activePower"]
        )
        assert (await create(api, body)).status_code == 201
        sync = batches.batch("gw-1", batches.good_rows(1, 3))
        resp = await api.post(
            "/ldt/v1/ingest",
            content=batches.encode(sync),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert resp.status_code == 200, resp.text
        (note,) = await rec.wait(1)
    (entity,) = note["data"]
    assert entity["id"] == "urn:ngsi-ld:Device:gw-1:m0"
    assert entity["activePower"]["value"] == 203.0


# --- pure matching ------------------------------------------------------------------------


def test_matcher_triggers_and_expiry() -> None:
    ctx = core_context()
    doc = validate(
        {
            "type": "Subscription",
            "entities": [{"idPattern": "^urn:a:.*", "type": "T"}],
            "notificationTrigger": ["attributeDeleted"],
            "expiresAt": "2030-01-01T00:00:00Z",
            "notification": {"endpoint": {"uri": "http://h/n"}},
        },
        ctx,
        context=None,
        now="2026-01-01T00:00:00.000Z",
    )
    m = compile_subscription(doc, ctx)
    old = {"id": "urn:a:1", "type": "T", "p": {"type": "Property", "value": 1}}
    new = {"id": "urn:a:1", "type": "T"}
    now = 1_795_780_800_000
    assert m.matches((old, new), now)
    assert not m.matches((new, old), now)  # attribute created: not a trigger here
    assert not m.matches((old, {**new, "id": "urn:b:1"}), now)
    assert not m.matches((old, new), 1_900_000_000_000)  # expired by then
    with pytest.raises(NgsiLdError):
        validate({"type": "Subscription"}, ctx, context=None, now="x")


def test_dataset_id_and_deleted_attributes_in_notifications() -> None:
    ctx = core_context()
    doc = validate(
        {
            "type": "Subscription",
            "entities": [{"type": "T"}],
            "datasetId": ["urn:ds:1"],
            "notificationTrigger": ["attributeUpdated", "attributeDeleted"],
            "notification": {"endpoint": {"uri": "http://h/n"}},
        },
        ctx,
        context=None,
        now="2026-01-01T00:00:00.000Z",
    )
    m = compile_subscription(doc, ctx)
    p = [
        {"type": "Property", "value": 1},
        {"type": "Property", "value": 2, "datasetId": "urn:ds:1"},
    ]
    old = {"id": "urn:a:1", "type": "T", "p": p, "r": {"type": "Relationship", "object": "urn:x"}}
    new = {"id": "urn:a:1", "type": "T", "p": [p[0], {**p[1], "value": 3}]}
    assert m.matches((old, new), 1_795_780_800_000)
    shown = m.render((old, new))
    assert shown["p"] == {"type": "Property", "value": 3, "datasetId": "urn:ds:1"}
    assert "r" not in shown  # the deleted relationship has no instance of urn:ds:1
    with pytest.raises(NgsiLdError):
        validate({**doc, "datasetId": ["not a uri"]}, ctx, context=None, now="x")


def _matcher(**extra: Any) -> Matcher:
    ctx = core_context()
    body = {
        "type": "Subscription",
        "entities": [{"type": "T"}],
        "notification": {"endpoint": {"uri": "http://h/n"}},
        **extra,
    }
    return compile_subscription(validate(body, ctx, context=None, now="2026-01-01T00:00:00Z"), ctx)


NOW_MS = 1_795_780_800_000
NAMES = [
    {"type": "Property", "value": "Eiffel Tower"},
    {"type": "Property", "value": "Tour Eiffel", "datasetId": "urn:ds:fr"},
    {"type": "Property", "value": "Eiffelturm", "datasetId": "urn:ds:de"},
]


def test_deleting_one_instance_is_an_attribute_deletion() -> None:
    m = _matcher(notificationTrigger=["attributeDeleted"], watchedAttributes=["name"])
    old = {"id": "urn:a:1", "type": "T", "name": NAMES}
    new = {"id": "urn:a:1", "type": "T", "name": [NAMES[0], NAMES[2]]}
    assert m.matches((old, new), NOW_MS)  # suite cases 046_22_06/07
    shown = m.render((old, new))
    assert shown["name"] == [
        NAMES[0],
        NAMES[2],
        {"type": "Property", "value": "urn:ngsi-ld:null", "datasetId": "urn:ds:fr"},
    ]
    # every instance gone (deleteAll): one null attribute (046_22_08)
    gone = m.render((old, {"id": "urn:a:1", "type": "T"}))
    assert gone["name"] == {"type": "Property", "value": "urn:ngsi-ld:null"}
    # a new instance is no deletion
    assert not m.matches((new, old), NOW_MS)
    assert _matcher(notificationTrigger=["attributeCreated"]).matches((new, old), NOW_MS)


def test_entity_deletion_fires_attribute_deleted() -> None:
    m = _matcher(notificationTrigger=["attributeDeleted"], watchedAttributes=["name"])
    old = {
        "id": "urn:a:1",
        "type": "T",
        "name": {"type": "Property", "value": "n"},
        "other": {"type": "Property", "value": 1},
    }
    assert m.matches((old, None), NOW_MS)  # 046_22_12
    shown = m.render((old, None))
    assert shown.pop("deletedAt").endswith("Z")
    assert shown == {
        "id": "urn:a:1",
        "type": "T",
        "name": {"type": "Property", "value": "urn:ngsi-ld:null"},
    }
    assert not _matcher(notificationTrigger=["attributeUpdated"]).matches((old, None), NOW_MS)


def test_deleted_entity_previous_values_and_language_map() -> None:
    m = _matcher(
        notificationTrigger=["entityDeleted"],
        notification={"endpoint": {"uri": "http://h/n"}, "showChanges": True},
    )
    street = {"type": "LanguageProperty", "languageMap": {"fr": "Grand Place"}}
    shown = m.render(({"id": "urn:a:1", "type": "T", "street": street}, None))
    assert shown["street"] == {  # 046_37_01: the plain null, the previous map
        "type": "LanguageProperty",
        "languageMap": "urn:ngsi-ld:null",
        "previousLanguageMap": {"fr": "Grand Place"},
    }
    # an attribute deletion keeps the {"@none": null} map (046_22_11)
    a = _matcher(notificationTrigger=["attributeDeleted"])
    old = {"id": "urn:a:1", "type": "T", "street": street, "n": {"type": "Property", "value": 1}}
    shown = a.render((old, {"id": "urn:a:1", "type": "T", "n": old["n"]}))
    assert shown["street"] == {
        "type": "LanguageProperty",
        "languageMap": {"@none": "urn:ngsi-ld:null"},
    }


def test_q_is_percent_decoded_and_default_triggers_are_shown() -> None:
    m = _matcher(q='name=="Eiffel%20Tower"')  # as the suite writes it (046_05_01)
    old = {"id": "urn:a:1", "type": "T", "name": {"type": "Property", "value": "Eiffel Tower"}}
    new = {**old, "h": {"type": "Property", "value": 1}}
    assert m.matches((old, new), NOW_MS)
    assert m.doc["q"] == 'name=="Eiffel%20Tower"'  # stored as given
    shown = present(m.doc, {}, core_context(), now_ms=NOW_MS)
    assert shown["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://127.0.0.1:9/n", "http://127.0.0.1:9/n"),
        ("mqtt://user:secret@broker:1883/t", "mqtt://user:***@broker:1883/t"),
        ("https://u:p%40ss@[::1]/x?y=1", "https://u:***@[::1]/x?y=1"),
        ("mqtts://token@broker/t", "mqtts://***@broker/t"),
    ],
)
def test_endpoint_passwords_never_reach_logs(uri: str, shown: str) -> None:
    assert redacted(uri) == shown
