"""Modbus device simulators serving ldt profiles (``firmware_configs/*.toml``): TCP and RTU.

Uses pymodbus's server side only, never ldt's driver, and has its own register
codec, so driver tests against it check the driver, not a shared bug.
"""

from ldt.simulators.modbus.errors import SimulatorError
from ldt.simulators.modbus.profile import resolve_profile
from ldt.simulators.modbus.rtu import ModbusRtuSimulator, Transaction
from ldt.simulators.modbus.server import ModbusSimulator

__all__ = [
    "ModbusRtuSimulator",
    "ModbusSimulator",
    "SimulatorError",
    "Transaction",
    "resolve_profile",
]
