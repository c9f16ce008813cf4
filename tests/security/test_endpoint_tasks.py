"""A notifier's per-endpoint tasks end when no subscription uses the endpoint (issue 14,
item 2): a client churning through endpoints (each subscription a new receiver URL, or a
new MQTT broker) left ``concurrency`` delivery tasks per URL, and a connection and a
watcher task per broker, for as long as the broker ran.

Real loopback receivers and a real mosquitto; the app is the real one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import asgi_client, notifying_app, receiver
from tests.mosquitto import Mosquitto, mosquitto_module

__all__ = ["mosquitto_module"]

API = "/ngsi-ld/v1"
THING = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "p": {"type": "Property", "value": 0}}


def _tasks(prefix: str) -> int:
    return sum(1 for t in asyncio.all_tasks() if t.get_name().startswith(prefix) and not t.done())


async def _until(check: object, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]  # noqa: ASYNC110 - task counts, no event
            await asyncio.sleep(0.05)


def _sub(n: int, uri: str) -> dict[str, object]:
    return {
        "id": f"urn:ngsi-ld:Subscription:{n}",
        "type": "Subscription",
        "entities": [{"type": "Thing"}],
        "notification": {"endpoint": {"uri": uri}},
    }


async def test_endpoint_tasks_end_with_the_last_subscription(tmp_path: Path) -> None:
    endpoints = 20
    async with (
        SqliteStore(path=tmp_path / DB_FILENAME) as store,
        notifying_app(store, concurrency=4) as app,
        asgi_client(app) as client,
        receiver() as rec,
    ):
        assert (await client.post(f"{API}/entities", json=THING)).status_code == 201
        for n in range(endpoints):
            resp = await client.post(f"{API}/subscriptions", json=_sub(n, f"{rec.url}/{n}"))
            assert resp.status_code == 201
        patch = {"p": {"type": "Property", "value": 1}}
        assert (await client.patch(f"{API}/entities/{THING['id']}/attrs", json=patch)).is_success
        await rec.wait(endpoints)
        assert _tasks("ldt-notify http") == 4 * endpoints
        # one subscription left: its endpoint keeps its workers, the others' end
        for n in range(1, endpoints):
            resp = await client.delete(f"{API}/subscriptions/urn:ngsi-ld:Subscription:{n}")
            assert resp.status_code == 204
        await _until(lambda: _tasks("ldt-notify http") == 4)
        assert app.state.notifier.endpoint_tasks == 4
        # the one left still delivers
        patch = {"p": {"type": "Property", "value": 2}}
        assert (await client.patch(f"{API}/entities/{THING['id']}/attrs", json=patch)).is_success
        await rec.wait(endpoints + 1)
        assert (await client.delete(f"{API}/subscriptions/urn:ngsi-ld:Subscription:0")).is_success
        await _until(lambda: _tasks("ldt-notify http") == 0)


async def test_mqtt_links_end_with_the_last_subscription(
    tmp_path: Path, mosquitto_module: Mosquitto
) -> None:
    """Two subscriptions on one broker share its link: deleting one keeps it for the
    other, deleting both ends it."""
    base = f"mqtt://127.0.0.1:{mosquitto_module.port}"
    async with (
        SqliteStore(path=tmp_path / DB_FILENAME) as store,
        notifying_app(store) as app,
        asgi_client(app) as client,
    ):
        notifier = app.state.notifier
        assert (await client.post(f"{API}/entities", json=THING)).status_code == 201
        for n, topic in ((1, "a"), (2, "b")):
            body = _sub(n, f"{base}/{topic}")
            assert (await client.post(f"{API}/subscriptions", json=body)).status_code == 201
        patch = {"p": {"type": "Property", "value": 1}}
        assert (await client.patch(f"{API}/entities/{THING['id']}/attrs", json=patch)).is_success
        await _until(lambda: notifier.mqtt_links == 1 and _tasks("ldt-mqtt-link") == 1)
        resp = await client.delete(f"{API}/subscriptions/urn:ngsi-ld:Subscription:1")
        assert resp.status_code == 204
        await _until(lambda: _tasks("ldt-notify mqtt") == 4)  # topic a's workers ended
        assert notifier.mqtt_links == 1
        assert _tasks("ldt-mqtt-link") == 1
        resp = await client.delete(f"{API}/subscriptions/urn:ngsi-ld:Subscription:2")
        assert resp.status_code == 204
        await _until(lambda: notifier.mqtt_links == 0 and _tasks("ldt-mqtt-link") == 0)
        assert _tasks("ldt-notify mqtt") == 0
