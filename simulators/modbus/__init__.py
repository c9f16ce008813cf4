"""A Modbus TCP device simulator serving ldt profiles (``firmware_configs/*.toml``).

Uses pymodbus's server side only, never ldt's driver, and has its own register
codec, so driver tests against it check the driver, not a shared bug.
"""

from ldt.simulators.modbus.errors import SimulatorError
from ldt.simulators.modbus.profile import resolve_profile
from ldt.simulators.modbus.server import ModbusSimulator

__all__ = ["ModbusSimulator", "SimulatorError", "resolve_profile"]
