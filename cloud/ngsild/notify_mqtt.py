"""MQTT delivery of NGSI-LD notifications (GS CIM 009 v1.9 clause 5.8.6, MQTT binding).

``Notifier`` hands every notification whose endpoint is ``mqtt://``/``mqtts://`` to
``MqttPublisher.publish``; retries, counters (``timesSent``, ``lastSuccess``,
``lastFailure``) and the per-endpoint queues stay in the notifier, so MQTT and HTTP
endpoints behave the same, and a dead broker only delays the notifications queued for it.
The notifier has a few publishes to one endpoint in flight at once; they share the
broker's connection (paho numbers and matches their acknowledgements), and the first to
find the link broken closes it for all of them, so they fail together and are retried.

Connections: one per broker (scheme, host, port, credentials from the URI's userinfo, MQTT
version), opened on first use and reused by every subscription and topic on that broker.
A watcher notices a lost link at once (so a publish waiting for its PUBACK fails then, not
at its timeout); the next publish reconnects. Failed connects back off (capped, jittered):
a publish arriving inside the backoff waits for it when its timeout allows, and fails
otherwise, so a broker that is down is not hammered by every queued notification.

TLS (``mqtts``) verifies the broker against the system's trust store
(``ssl.create_default_context``; ``SSL_CERT_FILE`` points it elsewhere) unless a context is
given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ldt.backoff import Backoff
from ldt.cloud.ngsild.mqtt_endpoint import MqttEndpoint, envelope, parse_endpoint

__all__ = ["MqttPublisher"]

_log = logging.getLogger("ldt.cloud.notifier.mqtt")
_CLOSE_TIMEOUT_S: Final = 2.0
_KEEPALIVE_S: Final = 30


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when its handshake fails.

    paho-mqtt 2.2 leaves the socket to the garbage collector when the TLS handshake
    raises; a broker that keeps refusing would leak one descriptor per reconnect.
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


async def _connect(client: aiomqtt.Client) -> tuple[aiomqtt.Client, contextlib.AsyncExitStack]:
    """Connect ``client``; raises ``aiomqtt.MqttError`` (refused, unreachable, no CONNACK).

    Bounded by the client's own ``timeout`` (and paho's TCP connect timeout), never
    cancelled from outside: aiomqtt leaves paho's socket open, and its connect future
    cancelled, when its connect is interrupted, so callers wait on it through a shield.
    """
    stack = contextlib.AsyncExitStack()
    try:
        await stack.enter_async_context(client)
    except aiomqtt.MqttCodeError:
        raise  # CONNACK refused: the broker closes the connection itself
    except aiomqtt.MqttError:
        # no CONNACK in time: leaving the context sends DISCONNECT, then paho closes the
        # socket (a broker that accepts and never answers would leak one per attempt)
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await client.__aexit__(None, None, None)
        raise
    return client, stack


def _user_properties(headers: Mapping[str, str]) -> Properties:
    """MQTT 5 PUBLISH properties carrying ``headers`` as User Properties."""
    props: Properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = list(headers.items())
    return props


class _Link:
    """One broker connection: the live client (if any), its watcher and reconnect backoff."""

    def __init__(self, backoff: Backoff) -> None:
        self.lock = asyncio.Lock()
        self.publishing = 0
        """Publishes under way through this link (``MqttPublisher.retire`` leaves it be)."""
        self.backoff = backoff
        self.retry_at = 0.0  # monotonic; no connect attempt before this
        self.client: aiomqtt.Client | None = None
        self.lost = asyncio.Event()
        self._stack: contextlib.AsyncExitStack | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[tuple[aiomqtt.Client, contextlib.AsyncExitStack]] | None = (
            None
        )

    @property
    def up(self) -> bool:
        return self.client is not None and not self.lost.is_set()

    async def open(self, make: Callable[[], aiomqtt.Client], wait_s: float) -> bool:
        """Connect (or join the attempt under way) and watch the link.

        True once connected; False if the attempt is still under way after ``wait_s`` (it
        goes on, and a later call joins it). Raises ``aiomqtt.MqttError`` if it failed.
        """
        if self._connecting is None:
            self._connecting = asyncio.create_task(_connect(make()), name="ldt-mqtt-connect")
        connecting = self._connecting
        done, _ = await asyncio.wait((connecting,), timeout=max(0.0, wait_s))
        if not done:
            return False
        self._connecting = None
        client, stack = connecting.result()
        self.client, self._stack = client, stack
        self.lost = asyncio.Event()
        self._watcher = asyncio.create_task(self._watch(client, self.lost), name="ldt-mqtt-link")
        return True

    @staticmethod
    async def _watch(client: aiomqtt.Client, lost: asyncio.Event) -> None:
        """Sets ``lost`` when the broker goes away (nothing is subscribed: no messages)."""
        try:
            async for _ in client.messages:
                pass
        except aiomqtt.MqttError:
            pass
        finally:
            lost.set()

    async def close(self) -> None:
        """Drop the client (disconnecting if it still can); the next publish reconnects."""
        watcher, self._watcher = self._watcher, None
        stack, self._stack = self._stack, None
        self.client = None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError, OSError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await stack.aclose()

    async def shutdown(self) -> None:
        """``close()``, after letting a connect under way finish (or giving up on it)."""
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            done, _ = await asyncio.wait((connecting,), timeout=_CLOSE_TIMEOUT_S)
            if not done:
                connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError, OSError):
                _, stack = await connecting
                self._stack = self._stack or stack
        await self.close()


class MqttPublisher:
    """Publishes notifications to MQTT brokers over shared, reconnecting connections.

    No I/O in the constructor; ``aclose()`` disconnects everything. ``backoff_base_s`` and
    ``backoff_cap_s`` bound the delay between failed connects to one broker.
    """

    def __init__(
        self,
        *,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._tls_context = tls_context
        self._links: dict[tuple[Any, ...], _Link] = {}
        self._closed = False

    async def aclose(self) -> None:
        """Disconnect from every broker; later publishes fail."""
        self._closed = True
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.shutdown()

    @property
    def links(self) -> int:
        """Brokers this publisher holds a link to (connected or not)."""
        return len(self._links)

    async def retire(self, in_use: Iterable[tuple[str, Iterable[Any]]]) -> int:
        """Disconnect from brokers no subscription names any more (``in_use``: each
        subscription's endpoint URI and ``notifierInfo``) and that nothing is publishing
        to; returns how many. Without it a tenant's churn of endpoints kept a connection
        and a watcher task per broker ever named, until the broker stopped."""
        brokers = set()
        for uri, info in in_use:
            with contextlib.suppress(ValueError):
                brokers.add(parse_endpoint(uri, info).broker)
        idle = [b for b, link in self._links.items() if b not in brokers and not link.publishing]
        for broker in idle:
            await self._links.pop(broker).shutdown()
        return len(idle)

    async def publish(
        self,
        uri: str,
        notifier_info: Iterable[Any],
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float,
    ) -> bool:
        """Publish one notification (``body``: its JSON) to ``uri``; True once the broker has it.

        "Has it" follows the QoS: QoS 0 when written to the connection, 1 on PUBACK, 2 on
        PUBCOMP. Never raises for network or broker trouble: that is a False.
        """
        if self._closed:
            return False
        try:
            target = parse_endpoint(uri, notifier_info)
        except ValueError as exc:  # validated at subscription time; stored before that?
            _log.warning("MQTT notification not sent", extra={"error": str(exc)})
            return False
        deadline = time.monotonic() + timeout_s
        link = self._links.get(target.broker)
        if link is None:
            backoff = Backoff(base_s=self._backoff[0], cap_s=self._backoff[1])
            link = self._links[target.broker] = _Link(backoff)
        link.publishing += 1
        try:
            return await self._publish(link, target, headers, body, deadline)
        finally:
            link.publishing -= 1

    async def _publish(
        self,
        link: _Link,
        target: MqttEndpoint,
        headers: Mapping[str, str],
        body: bytes,
        deadline: float,
    ) -> bool:
        client = await self._connected(link, target, deadline)
        if client is None:
            return False
        properties = _user_properties(headers) if target.version == "mqtt5.0" else None
        sending = asyncio.ensure_future(
            client.publish(
                target.topic,
                envelope(headers, body),
                qos=target.qos,
                properties=properties,
                timeout=math.inf,  # bounded below, together with a lost link
            )
        )
        lost = asyncio.ensure_future(link.lost.wait())
        try:
            await asyncio.wait(
                (sending, lost),
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            lost.cancel()
            if not sending.done():
                sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sending  # its outcome is read below; nothing may escape the notifier
        if sending.cancelled() or sending.exception() is not None:
            reason = "timed out" if sending.cancelled() else str(sending.exception())
            if link.lost.is_set():
                reason = "connection lost"
            _log.info("MQTT notification failed", extra={"endpoint": target.where, "error": reason})
            async with link.lock:
                if link.client is client:
                    await link.close()  # a publish that failed leaves the link suspect
            return False
        return True

    async def _connected(
        self, link: _Link, target: MqttEndpoint, deadline: float
    ) -> aiomqtt.Client | None:
        """The link's live client, connecting (after its backoff) if needed; None if down."""
        async with link.lock:
            if link.up:
                return link.client
            if link.client is not None:
                await link.close()
            wait = link.retry_at - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait >= deadline:
                    return None  # still backing off from the last failure
                await asyncio.sleep(wait)
            try:
                if not await link.open(
                    lambda: self._client(target, deadline - time.monotonic()),
                    deadline - time.monotonic(),
                ):
                    return None  # a slow connect: it goes on, this notification fails
            except Exception as exc:  # noqa: BLE001 - it fails this notification only
                link.retry_at = time.monotonic() + link.backoff.next_delay()
                _log.info(
                    "MQTT broker unreachable",
                    extra={"endpoint": target.where, "error": str(exc) or "timed out"},
                )
                return None
            link.backoff.reset()
            link.retry_at = 0.0
            return link.client

    def _client(self, target: MqttEndpoint, timeout_s: float) -> aiomqtt.Client:
        tls: ssl.SSLContext | None = None
        if target.tls:
            tls = self._tls_context
            if tls is None:
                tls = ssl.create_default_context()
                tls.sslsocket_class = _ClosingSSLSocket
        v5 = target.version == "mqtt5.0"
        return aiomqtt.Client(
            target.host,
            target.port,
            username=target.username,
            password=target.password,
            identifier=f"ldt-notify-{uuid.uuid4().hex[:16]}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,  # paho refuses clean_session with MQTT 5
            keepalive=_KEEPALIVE_S,
            timeout=max(0.5, timeout_s),  # CONNACK (and DISCONNECT) wait
            tls_context=tls,
        )
