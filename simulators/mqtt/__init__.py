"""An MQTT device simulator publishing ldt profiles' telemetry to a real broker.

Uses aiomqtt as the device would (a client of mosquitto), never ldt's driver,
and has its own payload encoding and profile parsing, so driver tests against
it check the driver, not a shared bug.

Names are imported on first use (PEP 562), so that `ldt --help` and the
CLI registration of this package never load its protocol library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ldt.simulators.mqtt.device import MqttDeviceSimulator, Published, ReceivedCommand
    from ldt.simulators.mqtt.errors import SimulatorError
    from ldt.simulators.mqtt.profile import resolve_profile

__all__ = [
    "MqttDeviceSimulator",
    "Published",
    "ReceivedCommand",
    "SimulatorError",
    "resolve_profile",
]

_WHERE = {
    "MqttDeviceSimulator": "ldt.simulators.mqtt.device",
    "Published": "ldt.simulators.mqtt.device",
    "ReceivedCommand": "ldt.simulators.mqtt.device",
    "SimulatorError": "ldt.simulators.mqtt.errors",
    "resolve_profile": "ldt.simulators.mqtt.profile",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
