"""One MQTT device: telemetry pushed through a broker, commands with acknowledgements.

A thin adapter over aiomqtt (paho-mqtt underneath) that owns the failure
policy, so the agent never has to:

* ``stream`` connects, subscribes to the telemetry topic (and the command
  acknowledgement topic) and emits a reading per point per message. When the
  broker is unreachable, refuses us, or the link drops, it emits one ``bad``
  reading per point with the reason, waits out a capped, jittered backoff
  (``ldt.backoff.Backoff``) and connects and subscribes again; forever, until
  cancelled.
* A payload that does not decode never stops the stream: the points it
  concerns get ``bad`` readings with the reason and
  ``health.malformed_payloads`` counts it. Points absent from a message (a
  partial update) simply get no reading.
* ``write`` publishes a command and waits, under ``command_timeout_s``, for the
  acknowledgement that correlates with it; no acknowledgement, or an error
  result, raises ``DriverError``.
* Every connect, subscribe and publish has a deadline (``connection.timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from ldt.backoff import Backoff
from ldt.drivers.base import Emit
from ldt.drivers.errors import DeviceUnreachableError, DriverError
from ldt.drivers.mqtt.config import (
    MqttConnection,
    MqttPoint,
    MqttProfileSettings,
    PayloadFormat,
    fill_topic,
)
from ldt.drivers.mqtt.payload import (
    PayloadError,
    Selector,
    convert,
    decode_json,
    format_ul_command,
    parse_selector,
    parse_timestamp_ms,
    parse_ul_command,
    parse_ul_groups,
    select,
    unconvert,
)
from ldt.reading import Quality, Reading, Structured, Value

__all__ = ["MqttDevice", "MqttDeviceHealth"]

_AUTH_CODES = frozenset({4, 5, 134, 135})  # 3.1.1: bad credentials / not authorised; 5.0 likewise


@dataclass(slots=True)
class MqttDeviceHealth:
    """The link's state, for the agent's health report.

    ``consecutive_failures`` counts failed connection attempts and lost links
    since the last successful subscribe. ``last_error`` is the latest failure of
    any kind (kept after recovery: ``connected`` says whether it is current).
    """

    connected: bool = False
    last_error: str | None = None
    consecutive_failures: int = 0
    messages: int = 0
    """Telemetry messages received."""
    malformed_payloads: int = 0
    """Telemetry messages (and acknowledgements) that did not fully decode."""
    connects: int = 0
    """Successful connect-and-subscribe rounds (1 + reconnects)."""


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when its handshake fails.

    paho-mqtt 2.2 leaves the socket open (to the garbage collector) when the
    TLS handshake raises, which leaks a file descriptor per failed attempt on
    a gateway that retries forever.
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class _LinkDownError(Exception):
    """Internal: the link failed; the message is the reason for the readings."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _client_id_for(device_id: str) -> str:
    return "ldt-" + re.sub(r"[^A-Za-z0-9._:-]", "-", device_id)[:100]


def _fill_command(template: Any, values: dict[str, Value]) -> Any:
    if isinstance(template, dict):
        return {k: _fill_command(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill_command(v, values) for v in template]
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        name = template[1:-1]
        if name in values:
            return values[name]
    return template


class MqttDevice:
    """An MQTT device instance; use as ``async with`` (entering does no I/O).

    Run ``stream(emit)`` as a task for telemetry; ``write`` works with or without
    a running stream (without one it opens a short-lived connection of its own).
    """

    def __init__(
        self,
        *,
        device_id: str,
        connection: MqttConnection,
        settings: MqttProfileSettings,
        points: Sequence[MqttPoint],
        backoff: Backoff | None = None,
    ) -> None:
        self.device_id = device_id
        self.health = MqttDeviceHealth()
        self._conn = connection
        self._settings = settings
        self._points = tuple(points)
        self._by_name = {p.name: p for p in self._points}
        if len(self._by_name) != len(self._points):
            raise DriverError(f"device {device_id!r}: two points share a name")
        is_json = settings.format is PayloadFormat.JSON
        for p in self._points:
            if is_json and p.selector is None:
                raise DriverError(f"point {p.name!r}: a JSON profile's points need 'selector'")
            if not is_json and p.ul_key is None:
                raise DriverError(f"point {p.name!r}: an UltraLight profile's points need 'ul_key'")
        self._selectors: dict[str, Selector] = (
            {p.name: p.parsed_selector for p in self._points} if is_json else {}
        )
        self._by_ul_key: dict[str, list[MqttPoint]] = {}
        for p in self._points:
            if p.ul_key is not None:
                self._by_ul_key.setdefault(p.ul_key, []).append(p)
        self._ts_selector = (
            parse_selector(settings.timestamp) if settings.timestamp.startswith("$") else None
        )
        self._corr_selector = (
            parse_selector(settings.correlation_selector) if settings.correlation_selector else None
        )
        self._error_selector = (
            parse_selector(settings.error_selector) if settings.error_selector else None
        )
        self.client_id = connection.client_id or _client_id_for(device_id)
        fill = {"device_id": device_id, "client_id": self.client_id}
        if connection.api_key is not None:
            fill["api_key"] = connection.api_key
        try:
            self.topic = fill_topic(settings.topic, **fill)
            self.command_topic = (
                fill_topic(settings.command_topic, **fill) if settings.command_topic else None
            )
            self.ack_topic = (
                fill_topic(settings.command_ack_topic, **fill)
                if settings.command_ack_topic
                else None
            )
        except ValueError as exc:
            raise DriverError(f"device {device_id!r}: {exc} (set it in the connection)") from None
        if self.ack_topic is not None and self.ack_topic == self.topic:
            raise DriverError(f"device {device_id!r}: telemetry and ack topics must differ")
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self._client: aiomqtt.Client | None = None  # the stream's live connection
        self._streaming = False
        self._pending: dict[str, asyncio.Future[str | None]] = {}
        self._write_lock = asyncio.Lock()
        self._latest: dict[str, Reading] = {}

    @property
    def points(self) -> tuple[MqttPoint, ...]:
        """The device's points, in profile order."""
        return self._points

    @property
    def streams(self) -> bool:
        """MQTT devices push: the agent runs ``stream``."""
        return True

    def polled_points(self) -> Sequence[MqttPoint]:
        """Nothing to poll: every point arrives by ``stream``."""
        return ()

    async def __aenter__(self) -> MqttDevice:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for fut in self._pending.values():
            fut.cancel()

    async def read(self, points: Sequence[MqttPoint] | None = None) -> list[Reading]:
        """The latest streamed reading of each point (default: all); never raises.

        A point nothing has arrived for yet is ``bad`` with that reason. MQTT has
        no request/response for telemetry, so this never touches the network.
        """
        wanted = self._points if points is None else tuple(points)
        now = _now_ms()
        return [
            self._latest.get(p.name) or self._bad(p, "no message received for this point yet", now)
            for p in wanted
        ]

    # ---------------------------------------------------------------- stream

    async def stream(self, emit: Emit) -> None:
        """Emit readings until cancelled, reconnecting and re-subscribing itself.

        Each failed attempt (and each lost link) emits one ``bad`` reading per
        point saying why and when the next attempt is. Raises ``DriverError``
        only if called while already streaming.
        """
        if self._streaming:
            raise DriverError(f"device {self.device_id!r} is already streaming")
        self._streaming = True
        try:
            while True:
                try:
                    await self._session(emit)
                    reason = "connection closed by the broker"
                except _LinkDownError as exc:
                    reason = str(exc)
                delay = self._backoff.next_delay()
                self.health.connected = False
                self.health.consecutive_failures += 1
                self.health.last_error = reason
                now = _now_ms()
                for p in self._points:  # no countdown in the reason: the same text all outage
                    await emit(self._bad(p, reason, now))
                await asyncio.sleep(delay)
        finally:
            self._streaming = False
            self._client = None
            self.health.connected = False

    async def _session(self, emit: Emit) -> None:
        """One connection: connect, subscribe, handle messages until the link fails."""
        client = self._new_client(self.client_id)
        async with contextlib.AsyncExitStack() as stack:
            await self._connect(stack, client)
            topics = [self.topic, *([self.ack_topic] if self.ack_topic else [])]
            for topic in topics:
                await self._subscribe(client, topic)
            self._client = client
            self._backoff.reset()
            self.health.connected = True
            self.health.consecutive_failures = 0
            self.health.connects += 1
            try:
                async for message in client.messages:
                    await self._on_message(message, emit)
            except aiomqtt.MqttError as exc:
                raise _LinkDownError(f"connection to the broker lost: {exc}") from exc
            finally:
                self._client = None
                self.health.connected = False

    def _where(self) -> str:
        return f"{self._conn.host}:{self._conn.effective_port}"

    def _new_client(self, identifier: str) -> aiomqtt.Client:
        """A configured client (needs the running loop); raises ``_LinkDownError`` for bad files."""
        password: str | None = None
        if self._conn.password is not None:
            password = self._conn.password.get_secret_value()
        elif self._conn.password_file is not None:
            try:
                lines = self._conn.password_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise _LinkDownError(
                    f"cannot read password file {self._conn.password_file}: {exc.strerror}"
                ) from None
            password = lines[0] if lines else ""
        return aiomqtt.Client(
            self._conn.host,
            self._conn.effective_port,
            username=self._conn.username,
            password=password,
            identifier=identifier,
            keepalive=self._conn.keepalive_s,
            timeout=self._conn.timeout_s,
            tls_context=self._tls_context(),
            clean_session=True,
            max_queued_incoming_messages=10_000,
        )

    def _tls_context(self) -> ssl.SSLContext | None:
        tls = self._conn.tls
        if tls is None:
            return None
        try:
            ctx = ssl.create_default_context(
                cafile=str(tls.ca_file) if tls.ca_file is not None else None
            )
            ctx.check_hostname = tls.verify_hostname
            ctx.sslsocket_class = _ClosingSSLSocket
            if tls.cert_file is not None:
                ctx.load_cert_chain(
                    str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise _LinkDownError(f"cannot load TLS files: {exc}") from None
        return ctx

    async def _connect(self, stack: contextlib.AsyncExitStack, client: aiomqtt.Client) -> None:
        timeout = self._conn.timeout_s
        try:
            async with asyncio.timeout(timeout):
                await stack.enter_async_context(client)
        except TimeoutError:
            hint = "" if self._conn.tls else " (a TLS-only port reached without TLS?)"
            raise _LinkDownError(
                f"no CONNACK from broker {self._where()} within {timeout} s{hint}"
            ) from None
        except aiomqtt.MqttCodeError as exc:
            raise _LinkDownError(self._describe_refusal(exc)) from exc
        except aiomqtt.MqttError as exc:
            raise _LinkDownError(self._describe_connect_error(exc)) from exc

    def _describe_refusal(self, exc: aiomqtt.MqttCodeError) -> str:
        rc = exc.rc
        code = rc.value if isinstance(rc, ReasonCode) else rc
        text = str(rc) if isinstance(rc, ReasonCode) else str(exc)
        advice = " (check username and password)" if code in _AUTH_CODES else ""
        return f"broker {self._where()} refused the connection: {text.lower()}{advice}"

    def _describe_connect_error(self, exc: aiomqtt.MqttError) -> str:
        text = str(exc)
        low = text.lower()
        if "refused" in low:
            return f"cannot connect to broker {self._where()}: connection refused"
        if "certificate verify failed" in low or "ssl" in low or "tls" in low:
            return f"TLS handshake with broker {self._where()} failed: {text}"
        if self._conn.tls is not None and ("reset" in low or "eof" in low or "closed" in low):
            return (
                f"TLS handshake with broker {self._where()} failed: {text} "
                "(is this a plain, non-TLS port?)"
            )
        return f"cannot connect to broker {self._where()}: {text}"

    async def _subscribe(self, client: aiomqtt.Client, topic: str) -> None:
        try:
            async with asyncio.timeout(self._conn.timeout_s):
                granted = await client.subscribe(topic, qos=self._settings.qos)
        except TimeoutError:
            raise _LinkDownError(
                f"no SUBACK for {topic!r} within {self._conn.timeout_s} s"
            ) from None
        except aiomqtt.MqttError as exc:
            raise _LinkDownError(f"subscribing to {topic!r} failed: {exc}") from exc
        codes = [g.value if isinstance(g, ReasonCode) else int(g) for g in granted]
        if any(c >= 0x80 for c in codes):
            raise _LinkDownError(f"broker refused the subscription to {topic!r} (not authorised?)")

    # -------------------------------------------------------------- messages

    async def _on_message(self, message: aiomqtt.Message, emit: Emit) -> None:
        topic = message.topic.value
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        if self.ack_topic is not None and topic == self.ack_topic:
            self._on_ack(data)
            return
        if topic != self.topic:
            return
        self.health.messages += 1
        for reading in self.decode(data, _now_ms()):
            if reading.quality is Quality.GOOD:
                self._latest[reading.point] = reading
            await emit(reading)

    def decode(self, payload: bytes, arrival_ms: int) -> list[Reading]:
        """The readings one telemetry payload yields (counts malformed payloads); never raises."""
        if self._settings.format is PayloadFormat.JSON:
            return self._decode_json(payload, arrival_ms)
        return self._decode_ul(payload, arrival_ms)

    def _malformed(self, reason: str, points: Sequence[MqttPoint], at_ms: int) -> list[Reading]:
        self.health.malformed_payloads += 1
        self.health.last_error = reason
        return [self._bad(p, reason, at_ms) for p in points]

    def _decode_json(self, payload: bytes, arrival_ms: int) -> list[Reading]:
        try:
            document = decode_json(payload)
        except PayloadError as exc:
            return self._malformed(
                f"malformed payload on {self.topic}: {exc}", self._points, arrival_ms
            )
        at_ms = arrival_ms
        if self._ts_selector is not None:
            try:
                at_ms = parse_timestamp_ms(select(document, self._ts_selector))
            except PayloadError as exc:
                return self._malformed(
                    f"bad timestamp {self._settings.timestamp} on {self.topic}: {exc}",
                    self._points,
                    arrival_ms,
                )
        out: list[Reading] = []
        problem: str | None = None
        for p in self._points:
            try:
                raw = select(document, self._selectors[p.name])
            except PayloadError:
                continue  # a partial update: this point is not in this message
            try:
                value = convert(raw, p.type.value, p.scale, p.offset)
            except PayloadError as exc:
                problem = f"{p.selector} on {self.topic}: {exc}"
                out.append(self._bad(p, problem, arrival_ms))
                continue
            out.append(self._good(p, value, at_ms))
        if problem is not None:
            self.health.malformed_payloads += 1
            self.health.last_error = problem
        return out

    def _decode_ul(self, payload: bytes, arrival_ms: int) -> list[Reading]:
        try:
            groups = parse_ul_groups(payload)
        except PayloadError as exc:
            return self._malformed(
                f"malformed payload on {self.topic}: {exc}", self._points, arrival_ms
            )
        use_payload_time = self._settings.timestamp == "payload"
        out: list[Reading] = []
        problem: str | None = None
        for group in groups:
            at_ms = arrival_ms
            if use_payload_time and group.timestamp is not None:
                at_ms = parse_timestamp_ms(group.timestamp)  # checked by the parser
            for key, raw in group.measures.items():
                for p in self._by_ul_key.get(key, ()):
                    try:
                        value = convert(raw, p.type.value, p.scale, p.offset)
                    except PayloadError as exc:
                        problem = f"UL attribute {key!r} on {self.topic}: {exc}"
                        out.append(self._bad(p, problem, arrival_ms))
                        continue
                    out.append(self._good(p, value, at_ms))
        if problem is not None:
            self.health.malformed_payloads += 1
            self.health.last_error = problem
        return out

    def _good(self, point: MqttPoint, value: Value | Structured, at_ms: int) -> Reading:
        return Reading(
            device_id=self.device_id, point=point.name, value=value, observed_at_ms=at_ms
        )

    def _bad(self, point: MqttPoint, reason: str, at_ms: int) -> Reading:
        return Reading(
            device_id=self.device_id,
            point=point.name,
            value=None,
            observed_at_ms=at_ms,
            quality=Quality.BAD,
            reason=reason,
        )

    # ----------------------------------------------------------------- write

    def _on_ack(self, payload: bytes) -> None:
        """Resolve the pending command this acknowledgement answers (unknown ones are ignored)."""
        try:
            key, error = self._parse_ack(payload)
        except PayloadError as exc:
            self.health.malformed_payloads += 1
            self.health.last_error = f"malformed acknowledgement on {self.ack_topic}: {exc}"
            return
        fut = self._pending.get(key)
        if fut is not None and not fut.done():
            fut.set_result(error)

    def _parse_ack(self, payload: bytes) -> tuple[str, str | None]:
        """(correlation key, error text or None) of an acknowledgement; raises ``PayloadError``."""
        if self._settings.format is PayloadFormat.UL:
            result = parse_ul_command(payload)
            if result.device_id != self.device_id:
                return f"other device:{result.device_id}", None
            failed = result.value.startswith(self._settings.ul_error_prefix)
            return result.command, (result.value or "error") if failed else None
        document = decode_json(payload)
        assert self._corr_selector is not None  # the settings validator requires it
        key = select(document, self._corr_selector)
        error: str | None = None
        if self._error_selector is not None:
            try:
                found = select(document, self._error_selector)
            except PayloadError:
                found = None
            if found is not None:
                message = found.get("message") if isinstance(found, dict) else None
                error = str(message) if message is not None else json.dumps(found)
        return str(key), error

    async def write(self, point: MqttPoint | str, value: Value) -> None:
        """Send one command and wait for its acknowledgement; raises ``DriverError``.

        Raises when the point is unknown or not writable, the profile has no
        command topic, the value does not fit, publishing fails, no correlated
        acknowledgement arrives within ``command_timeout_s``, or the device
        answers with an error. Writes are sent one at a time.
        """
        p = self._resolve(point)
        if not p.writable:
            raise DriverError(f"point {p.name!r} of {self.device_id!r} is not writable")
        if self.command_topic is None or self.ack_topic is None:
            raise DriverError(f"the profile of {self.device_id!r} has no command_topic")
        try:
            raw = unconvert(value, p.type.value, p.scale, p.offset)
            if self._settings.format is PayloadFormat.UL:
                key = p.command_name
                payload = format_ul_command(self.device_id, key, raw)
            else:
                key = uuid.uuid4().hex
                assert p.command_payload is not None  # checked at construction
                filled = _fill_command(
                    p.command_payload,
                    {
                        "value": raw,
                        "correlation_id": key,
                        "device_id": self.device_id,
                        "client_id": self.client_id,
                    },
                )
                payload = json.dumps(filled, separators=(",", ":")).encode()
        except PayloadError as exc:
            raise DriverError(
                f"cannot write {value!r} to {self.device_id!r} {p.name!r}: {exc}"
            ) from None
        what = f"command {p.command_name if p.ul_key else p.name!r} to {self.device_id!r}"
        timeout = self._settings.command_timeout_s
        async with self._write_lock:
            fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            self._pending[key] = fut
            try:
                async with asyncio.timeout(timeout):
                    client = self._client
                    if client is not None:
                        await client.publish(self.command_topic, payload, qos=self._settings.qos)
                        error = await fut
                    else:
                        error = await self._write_alone(payload, fut)
            except TimeoutError:
                raise DeviceUnreachableError(
                    f"{what}: no acknowledgement on {self.ack_topic!r} within {timeout} s"
                ) from None
            except aiomqtt.MqttError as exc:
                raise DeviceUnreachableError(f"{what}: publishing failed: {exc}") from exc
            except _LinkDownError as exc:
                raise DeviceUnreachableError(f"{what}: {exc}") from None
            finally:
                self._pending.pop(key, None)
        if error is not None:
            self.health.last_error = f"{what} failed: {error}"
            raise DriverError(f"{what} failed: the device answered {error!r}")

    async def _write_alone(self, payload: bytes, fut: asyncio.Future[str | None]) -> str | None:
        """Publish on a short-lived connection of our own and wait there for the ack."""
        assert self.command_topic is not None
        assert self.ack_topic is not None
        client = self._new_client(f"{self.client_id}-cmd"[:128])
        async with contextlib.AsyncExitStack() as stack:
            await self._connect(stack, client)
            await self._subscribe(client, self.ack_topic)
            await client.publish(self.command_topic, payload, qos=self._settings.qos)
            async for message in client.messages:
                if message.topic.value == self.ack_topic:
                    data = message.payload
                    self._on_ack(data if isinstance(data, bytes) else str(data).encode())
                if fut.done():
                    return fut.result()
        raise _LinkDownError("the broker closed the connection before the acknowledgement")

    def _resolve(self, point: MqttPoint | str) -> MqttPoint:
        if isinstance(point, str):
            try:
                return self._by_name[point]
            except KeyError:
                raise DriverError(f"device {self.device_id!r} has no point {point!r}") from None
        if self._by_name.get(point.name) != point:
            raise DriverError(f"point {point.name!r} is not one of {self.device_id!r}'s points")
        return point
