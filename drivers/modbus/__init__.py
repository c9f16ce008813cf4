"""Modbus TCP and RTU: a pure register codec, a read planner and async device adapters."""

from ldt.drivers.modbus.codec import CodecError, decode, encode
from ldt.drivers.modbus.device import (
    EXCEPTION_NAMES,
    ModbusDevice,
    ModbusDeviceHealth,
    ModbusTcpDevice,
)
from ldt.drivers.modbus.planner import ReadBlock, plan_reads, slice_point
from ldt.drivers.modbus.rtu import ModbusRtuDevice

__all__ = [
    "EXCEPTION_NAMES",
    "CodecError",
    "ModbusDevice",
    "ModbusDeviceHealth",
    "ModbusRtuDevice",
    "ModbusTcpDevice",
    "ReadBlock",
    "decode",
    "encode",
    "plan_reads",
    "slice_point",
]
