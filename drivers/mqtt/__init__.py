"""MQTT devices: pure JSON / UltraLight 2.0 codecs, profile schema and an aiomqtt adapter."""

from ldt.drivers.mqtt.config import (
    MqttConnection,
    MqttPoint,
    MqttProfileSettings,
    MqttTls,
    PayloadFormat,
    ValueType,
)
from ldt.drivers.mqtt.device import MqttDevice, MqttDeviceHealth
from ldt.drivers.mqtt.payload import (
    PayloadError,
    format_ul_command,
    parse_json,
    parse_selector,
    parse_ul,
    parse_ul_command,
)

__all__ = [
    "MqttConnection",
    "MqttDevice",
    "MqttDeviceHealth",
    "MqttPoint",
    "MqttProfileSettings",
    "MqttTls",
    "PayloadError",
    "PayloadFormat",
    "ValueType",
    "format_ul_command",
    "parse_json",
    "parse_selector",
    "parse_ul",
    "parse_ul_command",
]
