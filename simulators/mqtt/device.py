"""A simulated MQTT device publishing a profile's telemetry to a real broker (mosquitto).

It is an MQTT *client*, like the device it imitates: it publishes telemetry
on the profile's topic every ``interval_s``, subscribes to the command topic
and answers each command on the acknowledgement topic (UltraLight
``device@command|result``, or a JSON-RPC style object echoing the request's
correlation id). It never imports ldt's driver: payloads are built here.

Misbehaviour knobs: ``malformed_rate`` (fraction of telemetry messages sent
broken: truncated JSON, invalid UTF-8, an UltraLight group with a missing
value, a number that is not one), ``drop_rate`` (fraction not sent at all),
``pause()``/``resume()``, ``ack_commands=False`` (never answer),
``command_error`` (answer every command with this error) and
``payload_time_offset_s`` (the device's clock is off by this much). Faults
draw from their own random stream, so they never change the values a seed
produces. A lost broker is retried every 0.2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt

from ldt.cancellation import cancel_and_wait
from ldt.simulators.mqtt.errors import SimulatorError
from ldt.simulators.mqtt.model import Raw, ValueModel, engineering
from ldt.simulators.mqtt.profile import Path_, SimPoint, SimProfile, json_path, load_sim_profile

__all__ = ["MqttDeviceSimulator", "Published", "ReceivedCommand"]

_RETRY_S = 0.2


@dataclass(frozen=True, slots=True)
class Published:
    """One telemetry message the simulator sent."""

    topic: str
    payload: bytes
    values: dict[str, Raw]
    """What a correct client decodes per point (empty for a malformed message)."""
    timestamp_ms: int | None
    """The time written into the payload (None when the profile uses arrival time)."""
    malformed: bool = False


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """One command the simulator received (and how it answered)."""

    topic: str
    payload: bytes
    point: str | None
    value: Raw | None
    """The engineering value the command set (None if not understood)."""
    answer: bytes | None = None


HISTORY = 10_000
"""Messages and commands a simulator remembers (a demo runs for days: keep it bounded)."""


@dataclass
class _State:
    published: deque[Published] = field(default_factory=lambda: deque(maxlen=HISTORY))
    commands: deque[ReceivedCommand] = field(default_factory=lambda: deque(maxlen=HISTORY))
    published_total: int = 0


def _put(doc: Any, path: Path_, value: Any) -> Any:
    """``doc`` with ``value`` set at ``path``, creating objects and arrays on the way."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        arr = doc if isinstance(doc, list) else []
        while len(arr) <= head:
            arr.append(None)
        arr[head] = _put(arr[head], rest, value)
        return arr
    obj = doc if isinstance(doc, dict) else {}
    obj[head] = _put(obj.get(head), rest, value)
    return obj


def _match(template: Any, data: Any, captured: dict[str, Any]) -> bool:
    """True when ``data`` has ``template``'s shape; ``"{name}"`` strings capture what is there."""
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        captured[template[1:-1]] = data
        return True
    if isinstance(template, dict):
        return (
            isinstance(data, dict)
            and set(template) == set(data)
            and all(_match(v, data[k], captured) for k, v in template.items())
        )
    if isinstance(template, list):
        return (
            isinstance(data, list)
            and len(template) == len(data)
            and all(_match(t, d, captured) for t, d in zip(template, data, strict=True))
        )
    return bool(template == data and type(template) is type(data))


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ul_text(raw: Raw) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


class MqttDeviceSimulator:
    """One simulated MQTT device; use as an async context manager (or ``start``/``stop``)."""

    def __init__(
        self,
        *,
        broker_host: str,
        broker_port: int,
        device_id: str,
        profile: Path,
        seed: int = 0,
        interval_s: float = 1.0,
        api_key: str = "ldt-api-key",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: Path | None = None,
        malformed_rate: float = 0.0,
        drop_rate: float = 0.0,
        payload_time_offset_s: float = 0.0,
        ack_commands: bool = True,
        command_error: str | None = None,
        start_timeout_s: float = 5.0,
    ) -> None:
        if not interval_s > 0:
            raise SimulatorError("interval must be positive")
        for label, rate in (("malformed rate", malformed_rate), ("drop rate", drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise SimulatorError(f"{label} must be between 0 and 1, not {rate}")
        if not 1 <= broker_port <= 65535:
            raise SimulatorError(f"broker port {broker_port} is outside 1..65535")
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.device_id = device_id
        self.profile_path = profile
        self.seed = seed
        self.interval_s = interval_s
        self.api_key = api_key
        self.client_id = client_id or f"ldt-{device_id}"
        """Fills ``{client_id}`` in topics when a command does not say whom to answer."""
        self.username = username
        self.password = password
        self.tls = tls or ca_file is not None
        self.ca_file = ca_file
        self.malformed_rate = malformed_rate
        self.drop_rate = drop_rate
        self.payload_time_offset_s = payload_time_offset_s
        self.ack_commands = ack_commands
        self.command_error = command_error
        self.start_timeout_s = start_timeout_s
        self._faults = random.Random(f"faults:{seed}")  # noqa: S311 - simulation, not crypto
        self._state = _State()
        self._profile: SimProfile | None = None
        self._model: ValueModel | None = None
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._children: tuple[asyncio.Task[None], ...] = ()
        self._published_event = asyncio.Event()
        self.connects = 0
        """Successful connections to the broker (1 + reconnects)."""

    # -- profile ------------------------------------------------------------

    @property
    def profile(self) -> SimProfile:
        """The parsed profile (read on first use); raises ``SimulatorError``."""
        if self._profile is None:
            self._profile = load_sim_profile(self.profile_path)
            self._model = ValueModel(self._profile.points, self.seed)
        return self._profile

    @property
    def _values(self) -> ValueModel:
        _ = self.profile
        assert self._model is not None
        return self._model

    def _topic(self, template: str, client_id: str | None = None) -> str:
        return template.format(
            device_id=self.device_id, api_key=self.api_key, client_id=client_id or self.client_id
        )

    @property
    def topic(self) -> str:
        """The telemetry topic."""
        return self._topic(self.profile.topic)

    @property
    def published(self) -> list[Published]:
        """The telemetry messages sent, oldest first (the last ``HISTORY``)."""
        return list(self._state.published)

    @property
    def published_total(self) -> int:
        """How many telemetry messages were sent in all."""
        return self._state.published_total

    @property
    def commands(self) -> list[ReceivedCommand]:
        """The commands received, oldest first (the last ``HISTORY``)."""
        return list(self._state.commands)

    def values(self) -> dict[str, Raw]:
        """What a correct client decodes for each point from the next message."""
        return {p.name: engineering(p, self._values.raw(p.name)) for p in self.profile.points}

    # -- knobs --------------------------------------------------------------

    def pause(self) -> None:
        """Stop publishing telemetry (commands are still answered)."""
        self._paused = True

    def resume(self) -> None:
        """Publish telemetry again."""
        self._paused = False

    # -- payloads -----------------------------------------------------------

    def _payload_time_ms(self) -> int | None:
        if self.profile.timestamp == "arrival":
            return None
        ms = int((time.time() + self.payload_time_offset_s) * 1000)
        return ms - ms % 1000  # whole seconds, like most device clocks report

    def build_telemetry(self) -> Published:
        """The next well-formed telemetry message (advances simulated time one interval)."""
        profile = self.profile
        self._values.step(self.interval_s)
        raws = {p.name: self._values.raw(p.name) for p in profile.points}
        values = {p.name: engineering(p, raws[p.name]) for p in profile.points}
        ts = self._payload_time_ms()
        if profile.format == "json":
            doc: Any = {}
            if ts is not None:
                doc = _put(doc, json_path(profile.timestamp), ts // 1000)
            for p in profile.points:
                assert p.path is not None
                doc = _put(doc, p.path, raws[p.name])
            payload = json.dumps(doc, separators=(",", ":")).encode()
        else:
            fields = [f"{p.ul_key}|{_ul_text(raws[p.name])}" for p in profile.points]
            text = "|".join(fields)
            if ts is not None:
                text = f"{_iso(ts)}|{text}"
            payload = text.encode()
        return Published(topic=self.topic, payload=payload, values=values, timestamp_ms=ts)

    def _malformed(self) -> Published:
        kind = self._faults.randrange(4)
        good = self.build_telemetry().payload
        if kind == 0:
            payload = good[: max(1, len(good) // 2)]  # truncated
        elif kind == 1:
            payload = b"\xff\xfe" + good  # not UTF-8
        elif kind == 2:
            payload = b"{not json" if self.profile.format == "json" else b"t|1|h"
        else:
            payload = b"[1, 2," if self.profile.format == "json" else b"|||"
        return Published(
            topic=self.topic, payload=payload, values={}, timestamp_ms=None, malformed=True
        )

    # -- broker ---------------------------------------------------------------

    def _new_client(self) -> aiomqtt.Client:
        ctx: ssl.SSLContext | None = None
        if self.tls:
            try:
                ctx = ssl.create_default_context(
                    cafile=str(self.ca_file) if self.ca_file is not None else None
                )
            except (OSError, ssl.SSLError) as exc:
                raise SimulatorError(f"cannot load CA file {self.ca_file}: {exc}") from None
        return aiomqtt.Client(
            self.broker_host,
            self.broker_port,
            username=self.username,
            password=self.password,
            identifier=f"ldt-sim-{self.device_id}",
            keepalive=30,
            timeout=5.0,
            tls_context=ctx,
        )

    async def start(self) -> None:
        """Read the profile, connect (within ``start_timeout_s``) and start publishing.

        Raises ``SimulatorError`` for a bad profile or an unreachable broker.
        """
        if self._task is not None:
            raise SimulatorError("simulator already started")
        _ = self.profile
        self._task = asyncio.create_task(self._run(), name=f"mqtt-sim:{self.device_id}")
        try:
            async with asyncio.timeout(self.start_timeout_s):
                await self._connected.wait()
        except TimeoutError:
            await self.stop()
            raise SimulatorError(
                f"cannot reach the MQTT broker at {self.broker_host}:{self.broker_port}"
            ) from None

    async def stop(self) -> None:
        """Disconnect and stop publishing (idempotent)."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            # aiomqtt can turn a cancellation into MqttError, which the reconnect loop
            # takes for a lost broker, and Python 3.11's TaskGroup passes its parent's
            # cancellation on to the children only once (aiomqtt's wait_for can swallow
            # it): ask the task and its children until they are gone (ldt.cancellation)
            await cancel_and_wait([task, *self._children])
            self._children = ()
        self._client = None
        self._connected.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                async with self._new_client() as client:
                    profile = self.profile
                    if profile.command_topic:
                        await client.subscribe(self._topic(profile.command_topic), qos=profile.qos)
                    self._client = client
                    self.connects += 1
                    self._connected.set()
                    async with asyncio.TaskGroup() as tg:
                        self._children = (
                            tg.create_task(self._publish_loop(client), name="mqtt-sim:publish"),
                            tg.create_task(self._command_loop(client), name="mqtt-sim:commands"),
                        )
            except* aiomqtt.MqttError:
                pass
            self._client = None
            self._connected.clear()
            await asyncio.sleep(_RETRY_S)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while not self._stopping:
            await asyncio.sleep(self.interval_s)
            if not self._paused:
                await self._publish_one(client)

    async def _publish_one(self, client: aiomqtt.Client) -> Published | None:
        if self.drop_rate and self._faults.random() < self.drop_rate:
            self.build_telemetry()  # time passes; nothing is sent
            return None
        if self.malformed_rate and self._faults.random() < self.malformed_rate:
            message = self._malformed()
        else:
            message = self.build_telemetry()
        await client.publish(message.topic, message.payload, qos=self.profile.qos)
        self._state.published.append(message)
        self._state.published_total += 1
        self._published_event.set()
        return message

    async def publish_now(self) -> Published:
        """Publish one telemetry message now (knobs apply); waits up to 5 s for the broker."""
        client = await self._live_client()
        message = await self._publish_one(client)
        if message is None:
            raise SimulatorError("the message was dropped (drop_rate)")
        return message

    async def publish_raw(self, payload: bytes, topic: str | None = None) -> None:
        """Publish exactly ``payload`` (default: on the telemetry topic): malformed-input tests."""
        client = await self._live_client()
        await client.publish(topic or self.topic, payload, qos=self.profile.qos)

    async def _live_client(self) -> aiomqtt.Client:
        try:
            async with asyncio.timeout(5.0):
                await self._connected.wait()
        except TimeoutError:
            raise SimulatorError("not connected to the broker") from None
        assert self._client is not None
        return self._client

    async def wait_published(self, count: int, timeout_s: float = 5.0) -> list[Published]:
        """Wait until at least ``count`` messages were published; returns them all."""
        async with asyncio.timeout(timeout_s):
            while self._state.published_total < count:
                self._published_event.clear()
                await self._published_event.wait()
        return self.published

    # -- commands -------------------------------------------------------------

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            data = message.payload if isinstance(message.payload, bytes) else b""
            answer_topic, answer, point, value = self._answer(data)
            self._state.commands.append(
                ReceivedCommand(
                    topic=message.topic.value,
                    payload=data,
                    point=point,
                    value=value,
                    answer=answer if self.ack_commands else None,
                )
            )
            if point is not None and value is not None and self.command_error is None:
                with contextlib.suppress(Exception):
                    if not self._paused:
                        await self._publish_one(client)  # devices report a state change at once
            if answer is not None and answer_topic is not None and self.ack_commands:
                await client.publish(answer_topic, answer, qos=self.profile.qos)

    def _answer(self, data: bytes) -> tuple[str | None, bytes | None, str | None, Raw | None]:
        """(ack topic, ack payload, point set, value set) for one command payload."""
        profile = self.profile
        if profile.ack_topic is None:
            return None, None, None, None
        if profile.format == "ul":
            return self._answer_ul(profile, data)
        return self._answer_json(profile, data)

    def _answer_ul(
        self, profile: SimProfile, data: bytes
    ) -> tuple[str | None, bytes | None, str | None, Raw | None]:
        assert profile.ack_topic is not None
        topic = self._topic(profile.ack_topic)
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None, None, None, None
        head, sep, value = text.partition("|")
        device, at, command = head.partition("@")
        if not sep or not at or device != self.device_id:
            return None, None, None, None
        point = next((p for p in profile.points if p.writable and p.command == command), None)
        prefix = profile.ul_error_prefix
        if self.command_error is not None:
            return topic, f"{device}@{command}|{prefix} {self.command_error}".encode(), None, None
        if point is None:
            return topic, f"{device}@{command}|{prefix} unknown command".encode(), None, None
        raw = self._parse_ul_value(point, value)
        if raw is None:
            return topic, f"{device}@{command}|{prefix} bad value {value!r}".encode(), None, None
        self._values.set_raw(point.name, raw)
        return topic, f"{device}@{command}|OK".encode(), point.name, engineering(point, raw)

    @staticmethod
    def _parse_ul_value(point: SimPoint, text: str) -> Raw | None:
        if point.kind == "string":
            return text
        if point.kind == "bool":
            low = text.strip().lower()
            return (
                True
                if low in ("true", "1", "on")
                else False
                if low in ("false", "0", "off")
                else None
            )
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if point.kind == "int" and number.is_integer() else number

    def _answer_json(
        self, profile: SimProfile, data: bytes
    ) -> tuple[str | None, bytes | None, str | None, Raw | None]:
        assert profile.ack_topic is not None
        try:
            request = json.loads(data)
        except ValueError:
            return None, None, None, None
        for point in profile.points:
            if not point.writable or point.command_payload is None:
                continue
            captured: dict[str, Any] = {}
            if not _match(point.command_payload, request, captured):
                continue
            topic = self._topic(profile.ack_topic, captured.get("client_id"))
            reply: Any = {"src": self.device_id}
            if "client_id" in captured:
                reply["dst"] = captured["client_id"]
            if profile.correlation_path is not None:
                reply = _put(reply, profile.correlation_path, captured.get("correlation_id"))
            raw = captured.get("value")
            if self.command_error is not None or not self._json_value_fits(point, raw):
                message = self.command_error or f"invalid value {raw!r}"
                if profile.error_path is not None:
                    reply = _put(reply, profile.error_path, {"code": -103, "message": message})
                return topic, json.dumps(reply).encode(), None, None
            previous = self._values.raw(point.name)
            assert raw is not None
            self._values.set_raw(point.name, raw)
            reply["result"] = {"was_on": previous} if point.kind == "bool" else {"was": previous}
            return topic, json.dumps(reply).encode(), point.name, engineering(point, raw)
        return None, None, None, None

    @staticmethod
    def _json_value_fits(point: SimPoint, raw: Any) -> bool:
        if point.kind == "bool":
            return isinstance(raw, bool)
        if point.kind == "string":
            return isinstance(raw, str)
        return isinstance(raw, (int, float)) and not isinstance(raw, bool)
