"""The MQTT profile and connection schema, and the shipped MQTT profiles."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ldt.drivers.errors import DriverError
from ldt.drivers.mqtt import MqttConnection, MqttDevice, MqttPoint, MqttProfileSettings, MqttTls
from tests.drivers.mqtt.conftest import PROFILES, load_profile

SHIPPED = [PROFILES / "shelly-plus-1pm.toml", PROFILES / "fiware-ul-air-quality.toml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_profiles_validate_and_build_a_device(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    assert data["profile"]["protocol"] == "mqtt"
    assert data["profile"]["name"] == path.stem
    assert data["profile"]["source"].startswith(("Shelly", "FIWARE"))
    settings, points = load_profile(path)
    assert len({p.attribute_name for p in points}) == len(points)
    assert any(p.writable for p in points)
    dev = MqttDevice(
        device_id="d1",
        connection=MqttConnection(host="localhost", api_key="k"),
        settings=settings,
        points=points,
    )
    assert "{" not in dev.topic
    assert dev.command_topic
    assert dev.ack_topic


def test_shipped_topics_follow_the_vendor_docs() -> None:
    shelly, _ = load_profile(SHIPPED[0])
    ul, ul_points = load_profile(SHIPPED[1])
    assert (shelly.topic, shelly.command_topic, shelly.command_ack_topic) == (
        "{device_id}/status/switch:0",
        "{device_id}/rpc",
        "{client_id}/rpc",
    )
    assert (ul.topic, ul.command_topic, ul.command_ack_topic) == (
        "/ul/{api_key}/{device_id}/attrs",
        "/ul/{api_key}/{device_id}/cmd",
        "/ul/{api_key}/{device_id}/cmdexe",
    )
    assert {p.ul_key for p in ul_points} >= {"t", "h"}


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"topic": "tele/+/SENSOR"}, "wildcards"),
        ({"topic": "tele/{serial}/SENSOR"}, "unknown placeholder {serial}"),
        ({"topic": "tele/{device_id!r}"}, "unknown placeholder"),
        ({"timestamp": "now"}, "must be 'arrival', 'payload'"),
        ({"timestamp": "$..ts"}, "recursive descent"),
        ({"timestamp": "payload"}, "for JSON, 'timestamp' is"),
        ({"command_topic": "a/b"}, "come together"),
        ({"command_topic": "a/b", "command_ack_topic": "a/c"}, "correlation_selector"),
        ({"format": "ul", "timestamp": "$.ts"}, "UL payloads have no JSON"),
        ({"format": "ul", "error_selector": "$.e"}, "for JSON commands"),
        ({"qos": 3}, "qos"),
        ({"mystery": 1}, "Extra inputs"),
    ],
)
def test_bad_settings_are_rejected(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        MqttProfileSettings(**fields)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({}, "exactly one of 'selector'"),
        ({"selector": "$.a", "ul_key": "a"}, "exactly one of"),
        ({"selector": "$.a[*]"}, "only \\[N\\]"),
        ({"selector": "a.b"}, "must start with"),
        ({"ul_key": "a|b"}, "ul_key"),
        ({"ul_key": "t", "scale": 0}, "must not be 0"),
        ({"ul_key": "t", "type": "bool", "scale": 2}, "apply to numbers"),
        ({"selector": "$.a", "writable": True}, "needs 'command_payload'"),
        ({"selector": "$.a", "writable": True, "command_payload": {"x": 1}}, '"{value}"'),
        (
            {"selector": "$.a", "writable": True, "command_payload": {"x": "{value}", "y": "{z}"}},
            "unknown placeholders",
        ),
        ({"ul_key": "t", "command": "set"}, "only for writable"),
        ({"ul_key": "t", "unit": "celsius"}, "unit"),
    ],
)
def test_bad_points_are_rejected(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        MqttPoint(name="p", **fields)


def test_connection_rules() -> None:
    assert MqttConnection(host="h").effective_port == 1883
    assert MqttConnection(host="h", tls=MqttTls()).effective_port == 8883
    with pytest.raises(ValidationError, match="needs 'username'"):
        MqttConnection(host="h", password="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not both"):
        MqttConnection(host="h", username="u", password="x", password_file=Path("/p"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="'key_file' needs 'cert_file'"):
        MqttTls(key_file=Path("k"))
    with pytest.raises(ValidationError, match="protocol"):
        MqttConnection(host="h", protocol="modbus-tcp")  # type: ignore[arg-type]
    secret = MqttConnection(host="h", username="u", password="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in repr(secret)


def test_device_rejects_profiles_it_cannot_serve() -> None:
    ul = MqttProfileSettings(format="ul", topic="/ul/{api_key}/{device_id}/attrs")  # type: ignore[arg-type]
    json_point = MqttPoint(name="p", selector="$.p")
    with pytest.raises(DriverError, match="need 'ul_key'"):
        MqttDevice(
            device_id="d", connection=MqttConnection(host="h"), settings=ul, points=[json_point]
        )
    with pytest.raises(DriverError, match=r"needs \{api_key\} \(set it in the connection\)"):
        MqttDevice(
            device_id="d",
            connection=MqttConnection(host="h"),
            settings=ul,
            points=[MqttPoint(name="t", ul_key="t")],
        )
    with pytest.raises(DriverError, match="share a name"):
        MqttDevice(
            device_id="d",
            connection=MqttConnection(host="h"),
            settings=MqttProfileSettings(),
            points=[json_point, json_point],
        )
