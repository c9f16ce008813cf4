"""The MQTT part of a device profile and of a device instance's connection.

A profile says what a device model publishes: the telemetry topic (a
template), the payload format (JSON or FIWARE UltraLight 2.0), where each
point's value sits in it, and how commands and their acknowledgements travel.
The connection says how this gateway reaches the broker (TLS, credentials,
client id) and carries the per-instance values topics are filled with
(``api_key``).

Topic templates may use ``{device_id}``, ``{api_key}`` and ``{client_id}``
only; MQTT wildcards (``+``, ``#``) are rejected: one device, one topic.
"""

from __future__ import annotations

import string
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from ldt.drivers.mqtt.payload import PayloadError, Selector, parse_selector

__all__ = [
    "TOPIC_PLACEHOLDERS",
    "MqttConnection",
    "MqttPoint",
    "MqttProfileSettings",
    "MqttTls",
    "PayloadFormat",
    "ValueType",
    "command_placeholders",
    "fill_topic",
]

TOPIC_PLACEHOLDERS = frozenset({"device_id", "api_key", "client_id"})
"""Names a topic template may use."""

COMMAND_PLACEHOLDERS = frozenset({"value", "correlation_id", "device_id", "client_id"})
"""Whole-string placeholders a JSON ``command_payload`` may use."""

_Unit = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,3}$")]
_Attr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
_UlName = Annotated[str, StringConstraints(pattern=r"^[^|#@\s]{1,64}$")]


class PayloadFormat(StrEnum):
    """How telemetry and commands are encoded."""

    JSON = "json"
    UL = "ul"  # FIWARE UltraLight 2.0


class ValueType(StrEnum):
    """The type a point's raw value is converted to."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"
    DATETIME = "datetime"  # ISO 8601 or epoch seconds/ms; the twin shows an NGSI-LD DateTime
    JSON = "json"  # an object or array, kept as the attribute's JSON value


def _check_topic(template: str) -> str:
    if not template or len(template) > 512:
        raise ValueError("a topic template must have 1..512 characters")
    if "+" in template or "#" in template:
        raise ValueError(f"topic {template!r} must not contain MQTT wildcards (+ or #)")
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"topic {template!r} is not a valid template: {exc}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in TOPIC_PLACEHOLDERS or spec or conversion:
            allowed = ", ".join(f"{{{n}}}" for n in sorted(TOPIC_PLACEHOLDERS))
            raise ValueError(f"topic {template!r}: unknown placeholder {{{name}}}; use {allowed}")
    return template


def fill_topic(template: str, **values: str) -> str:
    """A topic template with its placeholders filled; raises ``ValueError`` for a missing one."""
    try:
        return template.format(**values)
    except KeyError as exc:
        raise ValueError(f"topic {template!r} needs {{{exc.args[0]}}}") from None


def command_placeholders(template: Any) -> set[str]:
    """The placeholders (``"{value}"`` strings) used anywhere in a JSON command template."""
    found: set[str] = set()
    if isinstance(template, dict):
        for v in template.values():
            found |= command_placeholders(v)
    elif isinstance(template, list):
        for v in template:
            found |= command_placeholders(v)
    elif isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        found.add(template[1:-1])
    return found


def _selector(text: str) -> str:
    try:
        parse_selector(text)
    except PayloadError as exc:
        raise ValueError(str(exc)) from None
    return text


class MqttPoint(BaseModel):
    """One value the device publishes: where it sits in the payload and how it converts.

    Exactly one of ``selector`` (JSON profiles: ``$.aenergy.total``) and
    ``ul_key`` (UltraLight profiles: ``t``) is given. ``value = raw * scale +
    offset`` for numbers. A writable point names its command: UltraLight uses
    ``command`` (default: the point's ``ul_key``) and sends
    ``device@command|value``; JSON uses ``command_payload``, a JSON object in
    which the whole-string placeholders ``"{value}"``, ``"{correlation_id}"``,
    ``"{device_id}"`` and ``"{client_id}"`` are replaced by typed values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Attr
    attribute: _Attr | None = None
    """NGSI-LD attribute name; defaults to ``name``."""
    selector: str | None = None
    ul_key: _UlName | None = None
    type: ValueType = ValueType.FLOAT
    scale: float = 1.0
    offset: float = 0.0
    unit: _Unit | None = None
    poll_interval_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    """Unused by the driver (MQTT devices push); kept for the agent's common point model."""
    writable: bool = False
    command: _UlName | None = None
    command_payload: dict[str, Any] | None = None
    description: str | None = None

    @field_validator("selector")
    @classmethod
    def _valid_selector(cls, v: str | None) -> str | None:
        return None if v is None else _selector(v)

    @model_validator(mode="after")
    def _consistent(self) -> MqttPoint:
        if (self.selector is None) == (self.ul_key is None):
            raise ValueError("a point needs exactly one of 'selector' (JSON) or 'ul_key' (UL)")
        if self.scale == 0:
            raise ValueError("'scale' must not be 0")
        if self.type in (ValueType.BOOL, ValueType.STRING) and (
            self.scale != 1.0 or self.offset != 0.0
        ):
            raise ValueError(f"'scale'/'offset' apply to numbers, not to {self.type.value} points")
        if self.command_payload is not None:
            if self.selector is None:
                raise ValueError("'command_payload' is for JSON points; UL points use 'command'")
            used = command_placeholders(self.command_payload)
            unknown = used - COMMAND_PLACEHOLDERS
            if unknown:
                raise ValueError(f"'command_payload' has unknown placeholders {sorted(unknown)}")
            if "value" not in used:
                raise ValueError("'command_payload' must contain \"{value}\"")
            if not self.writable:
                raise ValueError("'command_payload' is only for writable points")
        if self.command is not None:
            if self.ul_key is None:
                raise ValueError("'command' is for UL points; JSON points use 'command_payload'")
            if not self.writable:
                raise ValueError("'command' is only for writable points")
        if self.writable and self.type in (ValueType.DATETIME, ValueType.JSON):
            raise ValueError(f"points of type {self.type.value} cannot be writable")
        if self.writable and self.selector is not None and self.command_payload is None:
            raise ValueError("a writable JSON point needs 'command_payload'")
        return self

    @property
    def attribute_name(self) -> str:
        """The NGSI-LD attribute this point becomes."""
        return self.attribute or self.name

    @property
    def parsed_selector(self) -> Selector:
        """The parsed ``selector`` (JSON points only)."""
        if self.selector is None:
            raise ValueError(f"point {self.name!r} has no JSON selector")
        return parse_selector(self.selector)

    @property
    def command_name(self) -> str:
        """The UltraLight command a write sends (UL points)."""
        return self.command or self.ul_key or self.name


class MqttProfileSettings(BaseModel):
    """The ``[mqtt]`` table of a profile.

    ``timestamp``: ``"arrival"`` (the gateway's clock when the message arrives),
    ``"payload"`` (UltraLight: the measure group's leading timestamp, arrival
    time for groups without one) or a JSON selector of an ISO-8601 string or an
    epoch number (seconds, or milliseconds above 10**11).

    Commands: ``command_topic`` and ``command_ack_topic`` come together. JSON
    acknowledgements are matched by ``correlation_selector`` (the request's
    ``{correlation_id}`` echoed back, e.g. ``$.id`` for JSON-RPC) and fail when
    ``error_selector`` finds a non-null value; UltraLight results
    (``device@command|result``) fail when the result starts with
    ``ul_error_prefix``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = "ldt/{device_id}/telemetry"
    format: PayloadFormat = PayloadFormat.JSON
    timestamp: str = "arrival"
    qos: Literal[0, 1, 2] = 1
    command_topic: str | None = None
    command_ack_topic: str | None = None
    correlation_selector: str | None = None
    error_selector: str | None = None
    ul_error_prefix: Annotated[str, StringConstraints(min_length=1)] = "ERROR"
    command_timeout_s: Annotated[float, Field(gt=0, le=300)] = 5.0

    @field_validator("topic", "command_topic", "command_ack_topic")
    @classmethod
    def _valid_topic(cls, v: str | None) -> str | None:
        return None if v is None else _check_topic(v)

    @field_validator("correlation_selector", "error_selector")
    @classmethod
    def _valid_selector(cls, v: str | None) -> str | None:
        return None if v is None else _selector(v)

    @field_validator("timestamp")
    @classmethod
    def _valid_timestamp(cls, v: str) -> str:
        if v in ("arrival", "payload"):
            return v
        if not v.startswith("$"):
            raise ValueError(
                f"timestamp {v!r} must be 'arrival', 'payload' (UL) or a JSON selector like '$.ts'"
            )
        return _selector(v)

    @model_validator(mode="after")
    def _consistent(self) -> MqttProfileSettings:
        if (self.command_topic is None) != (self.command_ack_topic is None):
            raise ValueError("'command_topic' and 'command_ack_topic' come together")
        if self.format is PayloadFormat.UL:
            if self.timestamp.startswith("$"):
                raise ValueError("UL payloads have no JSON: use timestamp 'arrival' or 'payload'")
            if self.correlation_selector or self.error_selector:
                raise ValueError("'correlation_selector'/'error_selector' are for JSON commands")
        else:
            if self.timestamp == "payload":
                raise ValueError("for JSON, 'timestamp' is 'arrival' or a selector like '$.ts'")
            if self.command_topic is not None and self.correlation_selector is None:
                raise ValueError("JSON commands need 'correlation_selector' (e.g. '$.id')")
        return self


class MqttTls(BaseModel):
    """TLS towards the broker. Without ``ca_file`` the system's trust store is used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("'key_file' needs 'cert_file'")
        return self


class MqttConnection(BaseModel):
    """How to reach the broker a device instance publishes to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["mqtt"] = "mqtt"
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """Default 1883, or 8883 with ``tls``."""
    tls: MqttTls | None = None
    username: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    """A file whose first line is the password (kept out of the config file)."""
    client_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")] | None = None
    """Default ``ldt-<device_id>``; must be unique on the broker."""
    api_key: Annotated[str, StringConstraints(pattern=r"^[^/+#\s]{1,128}$")] | None = None
    """Fills ``{api_key}`` in topics (FIWARE service API key)."""
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Deadline of connect, subscribe and publish."""

    @model_validator(mode="after")
    def _credentials(self) -> MqttConnection:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give 'password' or 'password_file', not both")
        if (self.password is not None or self.password_file is not None) and not self.username:
            raise ValueError("a password needs 'username'")
        return self

    @property
    def effective_port(self) -> int:
        """The port to connect to."""
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883
