"""An MQTT device simulator publishing ldt profiles' telemetry to a real broker.

Uses aiomqtt as the device would (a client of mosquitto), never ldt's driver,
and has its own payload encoding and profile parsing, so driver tests against
it check the driver, not a shared bug.
"""

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
