"""MQTT notifications (5.8.6, MQTT binding) delivered to a real mosquitto.

Every test runs on SQLite and on PostgreSQL (the ``store`` fixture). A test subscriber
(aiomqtt, MQTT 5 unless said otherwise) listens on the topic and records what arrives, so
payload shape, QoS, user properties, connection reuse and reconnects are observed on the
wire; the broker's own log shows how many connections the notifier opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from ldt.cloud.ngsild.mqtt_endpoint import envelope, parse_endpoint
from ldt.cloud.store import Store
from tests.cloud.helpers import notifying_app
from tests.cloud.test_subscriptions import API, CORE, LD, building, counted, create, patch_attrs
from tests.mosquitto import Mosquitto, mosquitto_broker, mosquitto_module

__all__ = ["mosquitto_broker", "mosquitto_module"]

SUB = f"{API}/subscriptions/urn:ngsi-ld:Subscription:m1"


class Inbox:
    """Messages one test subscriber received, with a way to wait for them."""

    def __init__(self) -> None:
        self.messages: list[aiomqtt.Message] = []
        self._arrived = asyncio.Event()

    def add(self, message: aiomqtt.Message) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait(self, n: int, timeout_s: float = 5.0) -> list[aiomqtt.Message]:
        """The messages once ``n`` have arrived."""
        return await self.wait_for(lambda got: len(got) >= n, timeout_s)

    async def wait_for(
        self, done: Callable[[list[aiomqtt.Message]], bool], timeout_s: float = 5.0
    ) -> list[aiomqtt.Message]:
        """The messages once ``done(messages)`` holds."""
        async with asyncio.timeout(timeout_s):
            while not done(self.messages):
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages


def payload(message: aiomqtt.Message) -> Any:
    assert isinstance(message.payload, bytes)
    return orjson.loads(message.payload)


@contextlib.asynccontextmanager
async def listening(broker: Mosquitto, topic: str, *, v5: bool = True) -> AsyncIterator[Inbox]:
    """A subscriber on ``topic`` (QoS 2, so each message keeps the QoS it was sent with)."""
    version = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    inbox = Inbox()
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=version, identifier=f"test-{uuid.uuid4().hex[:8]}"
    ) as client:
        await client.subscribe(topic, qos=2)

        async def pump() -> None:
            async for message in client.messages:
                inbox.add(message)

        task = asyncio.create_task(pump())
        try:
            yield inbox
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


@pytest.fixture
async def app(store: Store) -> AsyncIterator[Starlette]:
    settings = {"attempts": 4, "backoff_base_s": 0.1, "backoff_cap_s": 0.3, "timeout_s": 3.0}
    async with notifying_app(store, **settings) as built:
        yield built


def mqtt_subscription(
    uri: str, *, sub_id: str = "urn:ngsi-ld:Subscription:m1", **endpoint: Any
) -> dict[str, Any]:
    return {
        "id": sub_id,
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": uri, "accept": "application/json", **endpoint}},
        "@context": CORE,
    }


def info(**pairs: str) -> list[dict[str, str]]:
    return [{"key": k.replace("_", "-"), "value": v} for k, v in pairs.items()]


async def subscribe_and_touch(api: httpx.AsyncClient, body: dict[str, Any]) -> None:
    """Create the subscription and a Building, then update it (one notification each)."""
    resp = await create(api, body)
    assert resp.status_code == 201, resp.text
    created = await api.post(f"{API}/entities", content=orjson.dumps(building(1, t=1)), headers=LD)
    assert created.status_code == 201, created.text


def connections(broker: Mosquitto) -> int:
    """How many clients the notifier connected (mosquitto logs each connect as a notice)."""
    text = broker.log_file.read_text(errors="replace")
    return sum(
        1 for line in text.splitlines() if "New client connected" in line and "ldt-notify-" in line
    )


# --- payload --------------------------------------------------------------------------------


async def test_mqtt311_envelope_carries_headers_in_metadata(
    api: httpx.AsyncClient, mosquitto_module: Mosquitto
) -> None:
    broker = mosquitto_module
    topic = f"ngsild/{uuid.uuid4().hex}"
    uri = f"mqtt://{broker.host}:{broker.port}/{topic}"
    body = mqtt_subscription(
        uri,
        receiverInfo=info(**{"test-receiver-key": "test-receiver-info"}),
        notifierInfo=info(MQTT_Version="mqtt3.1.1", MQTT_QoS="1"),
    )
    async with listening(broker, topic, v5=False) as inbox:
        await subscribe_and_touch(api, body)
        (message,) = await inbox.wait(1)
    sent = payload(message)
    assert set(sent) == {"metadata", "body"}
    assert sent["metadata"]["test-receiver-key"] == "test-receiver-info"
    assert sent["metadata"]["Content-Type"] == "application/json"
    assert sent["metadata"]["Link"].startswith(f"<{CORE}>")
    note = sent["body"]
    assert note["type"] == "Notification"
    assert note["subscriptionId"] == "urn:ngsi-ld:Subscription:m1"
    assert [e["id"] for e in note["data"]] == ["urn:ngsi-ld:Building:b1"]
    assert note["data"][0]["t"] == {"type": "Property", "value": 1}
    assert message.qos == 1
    got = await counted(api, SUB, lambda n: "lastSuccess" in n)
    assert got["notification"]["timesSent"] == 1
    assert got["notification"]["status"] == "ok"
    assert "lastFailure" not in got["notification"]


async def test_mqtt5_user_properties(api: httpx.AsyncClient, mosquitto_module: Mosquitto) -> None:
    broker = mosquitto_module
    topic = f"ngsild/{uuid.uuid4().hex}"
    body = mqtt_subscription(
        f"mqtt://{broker.host}:{broker.port}/{topic}",
        accept="application/ld+json",
        receiverInfo=info(tenant="t1", **{"x-trace": "abc"}),
        notifierInfo=info(MQTT_Version="mqtt5.0"),
    )
    async with listening(broker, topic) as inbox:
        await subscribe_and_touch(api, body)
        (message,) = await inbox.wait(1)
    assert message.properties is not None
    props = dict(vars(message.properties)["UserProperty"])
    assert props == {"tenant": "t1", "x-trace": "abc", "Content-Type": "application/ld+json"}
    sent = payload(message)
    assert sent["metadata"] == props  # the same pairs in the envelope, for any receiver
    assert sent["body"]["@context"] == [CORE] or sent["body"]["@context"] == CORE
    assert message.qos == 0  # the default QoS


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_qos_is_the_subscriptions(
    api: httpx.AsyncClient, mosquitto_module: Mosquitto, qos: int
) -> None:
    broker = mosquitto_module
    topic = f"ngsild/{uuid.uuid4().hex}"
    body = mqtt_subscription(
        f"mqtt://{broker.host}:{broker.port}/{topic}", notifierInfo=info(MQTT_QoS=str(qos))
    )
    async with listening(broker, topic) as inbox:
        await subscribe_and_touch(api, body)
        (message,) = await inbox.wait(1)
    assert message.qos == qos


# --- connections ----------------------------------------------------------------------------


async def test_one_connection_per_broker_is_reused(
    api: httpx.AsyncClient, mosquitto_broker: Mosquitto
) -> None:
    broker = mosquitto_broker
    base = f"mqtt://{broker.host}:{broker.port}"
    async with listening(broker, "ngsild/#") as inbox:
        for n in (1, 2):
            sub = mqtt_subscription(
                f"{base}/ngsild/s{n}",
                sub_id=f"urn:ngsi-ld:Subscription:m{n}",
                notifierInfo=info(MQTT_QoS="1"),
            )
            assert (await create(api, sub)).status_code == 201
        created = await api.post(
            f"{API}/entities", content=orjson.dumps(building(1, t=0)), headers=LD
        )
        assert created.status_code == 201
        for value in (1, 2):
            await patch_attrs(api, "urn:ngsi-ld:Building:b1", t=value)
        messages = await inbox.wait(6)
    assert sorted(str(m.topic) for m in messages) == ["ngsild/s1"] * 3 + ["ngsild/s2"] * 3
    assert connections(broker) == 1  # two subscriptions, two topics, six messages


async def test_broker_restart_then_delivered_after_reconnect(
    api: httpx.AsyncClient, mosquitto_broker: Mosquitto
) -> None:
    broker = mosquitto_broker
    topic = "ngsild/restart"
    body = mqtt_subscription(
        f"mqtt://{broker.host}:{broker.port}/{topic}", notifierInfo=info(MQTT_QoS="1")
    )
    async with listening(broker, topic) as inbox:
        await subscribe_and_touch(api, body)
        await inbox.wait(1)
    await asyncio.to_thread(broker.stop)
    await patch_attrs(api, "urn:ngsi-ld:Building:b1", t=2)  # attempts fail while it is down
    failed = await counted(api, SUB, lambda n: "lastFailure" in n)
    assert failed["notification"]["status"] == "failed"
    await asyncio.to_thread(broker.start)
    async with listening(broker, topic) as inbox:
        await patch_attrs(api, "urn:ngsi-ld:Building:b1", t=3)
        messages = await inbox.wait_for(
            lambda got: any(payload(m)["body"]["data"][0]["t"]["value"] == 3 for m in got),
            timeout_s=10.0,
        )
    # t=2 may arrive too: its retries continue after the reconnect (at least once)
    assert {payload(m)["body"]["data"][0]["t"]["value"] for m in messages} <= {2, 3}
    got = await counted(api, SUB, lambda n: n.get("lastSuccess", "") > n.get("lastFailure", ""))
    assert got["notification"]["status"] == "ok"
    assert connections(broker) >= 2  # the first connection, and the one after the restart


@contextlib.asynccontextmanager
async def silent_broker() -> AsyncIterator[int]:
    """A TCP port that accepts and never answers (a hanging broker); yields the port."""
    writers: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_a_hanging_broker_delays_only_its_own_notifications(
    app: Starlette, api: httpx.AsyncClient, mosquitto_module: Mosquitto
) -> None:
    broker = mosquitto_module
    topic = f"ngsild/{uuid.uuid4().hex}"
    async with silent_broker() as port:
        dead = mqtt_subscription(
            f"mqtt://127.0.0.1:{port}/t", sub_id="urn:ngsi-ld:Subscription:dead", timeout=1500
        )
        assert (await create(api, dead)).status_code == 201
        async with listening(broker, topic) as inbox:
            live = mqtt_subscription(f"mqtt://{broker.host}:{broker.port}/{topic}")
            await subscribe_and_touch(api, live)
            async with asyncio.timeout(1.0):  # well inside the hanging broker's 1.5 s
                await inbox.wait(1)
        hung = await counted(
            api, f"{API}/subscriptions/urn:ngsi-ld:Subscription:dead", lambda n: "lastFailure" in n
        )
        assert "lastSuccess" not in hung["notification"]
        await app.state.notifier.aclose()  # before the port goes: no attempt left in flight


async def test_mqtts_with_credentials_from_the_uri(
    api: httpx.AsyncClient, mosquitto_module: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = mosquitto_module
    monkeypatch.setenv("SSL_CERT_FILE", str(broker.ca_file))  # trust the test CA
    topic = f"ngsild/{uuid.uuid4().hex}"
    uri = f"mqtts://{broker.username}:{broker.password}@127.0.0.1:{broker.tls_port}/{topic}"
    async with listening(broker, topic) as inbox:
        await subscribe_and_touch(api, mqtt_subscription(uri))
        (message,) = await inbox.wait(1)
    assert payload(message)["body"]["type"] == "Notification"


async def test_wrong_password_counts_as_failed(
    api: httpx.AsyncClient, mosquitto_module: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = mosquitto_module
    monkeypatch.setenv("SSL_CERT_FILE", str(broker.ca_file))
    uri = f"mqtts://{broker.username}:wrong@127.0.0.1:{broker.tls_port}/ngsild/x"
    await subscribe_and_touch(api, mqtt_subscription(uri))
    got = await counted(api, SUB, lambda n: "lastFailure" in n)
    assert "lastSuccess" not in got["notification"]
    assert got["notification"]["status"] == "failed"


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "notifier_info", "detail"),
    [
        ("mqtt://127.0.0.1:1883", None, "no topic"),
        ("mqtt://127.0.0.1:1883/", None, "no topic"),
        ("mqtt://127.0.0.1/a/#", None, "wildcards"),
        ("mqtt://127.0.0.1/a/+/b", None, "wildcards"),
        ("mqtt://127.0.0.1:99999/a", None, "not a usable"),
        ("mqtt://127.0.0.1/a?x=1", None, "query"),
        ("mqtt://127.0.0.1/a", info(MQTT_QoS="3"), "MQTT-QoS"),
        ("mqtt://127.0.0.1/a", info(MQTT_QoS="one"), "MQTT-QoS"),
        ("mqtt://127.0.0.1/a", info(MQTT_Version="mqtt4"), "MQTT-Version"),
    ],
)
async def test_invalid_mqtt_endpoint_is_400(
    api: httpx.AsyncClient, uri: str, notifier_info: list[dict[str, str]] | None, detail: str
) -> None:
    body = mqtt_subscription(uri)
    if notifier_info is not None:
        body["notification"]["endpoint"]["notifierInfo"] = notifier_info
    resp = await create(api, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["type"].endswith("BadRequestData")
    assert detail in resp.json()["detail"]
    assert (await api.get(f"{API}/subscriptions")).json() == []


async def test_invalid_mqtt_endpoint_patch_is_400_and_keeps_the_subscription(
    api: httpx.AsyncClient,
) -> None:
    good = mqtt_subscription("mqtt://127.0.0.1/a", notifierInfo=info(MQTT_QoS="1"))
    assert (await create(api, good)).status_code == 201
    bad = {
        "notification": {
            "endpoint": {"uri": "mqtt://127.0.0.1/a", "notifierInfo": info(MQTT_QoS="7")}
        },
        "@context": CORE,
    }
    resp = await api.patch(SUB, content=orjson.dumps(bad), headers=LD)
    assert resp.status_code == 400, resp.text
    kept = (await api.get(SUB)).json()["notification"]["endpoint"]
    assert kept["notifierInfo"] == [{"key": "MQTT-QoS", "value": "1"}]


def test_parse_endpoint_reads_userinfo_port_and_defaults() -> None:
    target = parse_endpoint("mqtts://us%40er:p%3Ass@broker.example/a/b%20c")
    assert (target.tls, target.host, target.port) == (True, "broker.example", 8883)
    assert (target.username, target.password) == ("us@er", "p:ss")
    assert (target.topic, target.qos, target.version) == ("a/b c", 0, "mqtt5.0")
    plain = parse_endpoint("mqtt://h:1884/t", [("MQTT-Version", "mqtt3.1.1")])
    assert (plain.tls, plain.port, plain.version) == (False, 1884, "mqtt3.1.1")
    assert plain.broker != parse_endpoint("mqtt://h:1884/other").broker  # version differs
    assert parse_endpoint("mqtt://h:1884/other", [("MQTT-Version", "mqtt3.1.1")]).broker == (
        plain.broker
    )


def test_envelope_splices_the_body_unchanged() -> None:
    body = orjson.dumps({"type": "Notification", "data": [{"id": "urn:x"}]})
    out = orjson.loads(envelope({"Content-Type": "application/json"}, body))
    assert out == {
        "metadata": {"Content-Type": "application/json"},
        "body": {"type": "Notification", "data": [{"id": "urn:x"}]},
    }
