"""MQTT notification endpoints (GS CIM 009 v1.9 clause 5.8.6 and the MQTT binding annex).

Pure functions, no I/O, so subscription validation (``subscriptions.validate``) and the
publisher (``notify_mqtt``) read an endpoint the same way:

- ``parse_endpoint``: ``mqtt[s]://[user[:password]@]host[:port]/topic`` plus the
  ``notifierInfo`` keys ``MQTT-Version`` (``mqtt3.1.1`` / ``mqtt5.0``) and ``MQTT-QoS``
  (0, 1, 2) become an ``MqttEndpoint``; anything unusable raises ``ValueError`` saying why,
  so a bad subscription is refused at create/update time instead of failing every
  notification later;
- ``envelope``: the message payload, ``{"metadata": {...}, "body": <Notification>}``.

The envelope is sent for both MQTT versions. MQTT 3.1.1 has no per-message headers, so the
binding carries what HTTP would send as headers (``Content-Type``, ``Link``, the
``receiverInfo`` pairs) in ``metadata``; with MQTT 5.0 the same pairs are also sent as User
Properties. Keeping the envelope for 5.0 too is what the ETSI suite expects (058_04 checks
``metadata``/``body`` with the default version) and what other brokers (Stellio) send, so
one receiver reads every notification alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

import orjson

__all__ = [
    "DEFAULT_VERSION",
    "MQTT_SCHEMES",
    "MqttEndpoint",
    "MqttVersion",
    "envelope",
    "parse_endpoint",
]

MqttVersion = Literal["mqtt3.1.1", "mqtt5.0"]
MQTT_SCHEMES: Final = ("mqtt://", "mqtts://")
DEFAULT_VERSION: Final[MqttVersion] = "mqtt5.0"
"""``MQTT-Version`` when ``notifierInfo`` names none: the newer protocol (as Stellio does);
the envelope makes the choice invisible to a receiver, and mosquitto speaks both."""
_VERSIONS: Final[frozenset[str]] = frozenset({"mqtt3.1.1", "mqtt5.0"})
_DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}
_VERSION_KEY: Final = "MQTT-Version"
_QOS_KEY: Final = "MQTT-QoS"


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where and how one subscription's notifications are published."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None
    version: MqttVersion
    topic: str
    qos: int

    @property
    def broker(self) -> tuple[bool, str, int, str | None, str | None, MqttVersion]:
        """What identifies one connection: endpoints sharing it share the connection."""
        return (self.tls, self.host, self.port, self.username, self.password, self.version)

    @property
    def where(self) -> str:
        """The broker and topic for log lines (never the password)."""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}/{self.topic}"


def _info(notifier_info: Iterable[Any]) -> dict[str, str]:
    """``notifierInfo`` as a dict; accepts stored ``{key, value}`` objects or pairs."""
    out: dict[str, str] = {}
    for item in notifier_info:
        if isinstance(item, Mapping):
            key, value = item.get("key"), item.get("value")
        else:
            key, value = item
        if isinstance(key, str):
            out[key] = str(value)
    return out


def parse_endpoint(uri: str, notifier_info: Iterable[Any] = ()) -> MqttEndpoint:
    """The ``MqttEndpoint`` of ``uri`` and ``notifierInfo``; raises ``ValueError`` if unusable."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{uri!r} is not a usable MQTT URI: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"{uri!r} is not an mqtt:// or mqtts:// URI")
    if not parts.hostname:
        raise ValueError(f"MQTT URI {uri!r} names no broker host")
    if "#" in uri:  # a fragment to a URI parser, a wildcard to MQTT: either way, no
        raise ValueError("MQTT topic must not hold wildcards (+, #)")
    if parts.query:
        raise ValueError(f"MQTT URI {uri!r} has a query; put the topic in the path")
    topic = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not topic:
        raise ValueError(f"MQTT URI {uri!r} has no topic (mqtt://host[:port]/topic)")
    if "+" in topic or "#" in topic or "\x00" in topic:
        raise ValueError(f"MQTT topic {topic!r} must not hold wildcards (+, #) or NUL")
    if len(topic.encode()) > 65535:
        raise ValueError("MQTT topic is longer than 65,535 bytes")
    info = _info(notifier_info)
    version = info.get(_VERSION_KEY, DEFAULT_VERSION)
    if version not in _VERSIONS:
        raise ValueError(
            f"notifierInfo {_VERSION_KEY} must be mqtt3.1.1 or mqtt5.0, got {version!r}"
        )
    qos_text = info.get(_QOS_KEY, "0")
    if qos_text not in ("0", "1", "2"):
        raise ValueError(f"notifierInfo {_QOS_KEY} must be 0, 1 or 2, got {qos_text!r}")
    return MqttEndpoint(
        tls=scheme == "mqtts",
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[scheme],
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        version="mqtt3.1.1" if version == "mqtt3.1.1" else "mqtt5.0",
        topic=topic,
        qos=int(qos_text),
    )


def envelope(headers: Mapping[str, str], body: bytes) -> bytes:
    """The MQTT payload: ``{"metadata": headers, "body": <the notification JSON>}``.

    ``body`` is the serialized notification, spliced in as is (not parsed again).
    """
    return b'{"metadata":' + orjson.dumps(dict(headers)) + b',"body":' + body + b"}"
