"""Modbus TCP (and later RTU): a pure register codec, a read planner and an async adapter."""

from ldt.drivers.modbus.codec import CodecError, decode, encode
from ldt.drivers.modbus.device import EXCEPTION_NAMES, ModbusDeviceHealth, ModbusTcpDevice
from ldt.drivers.modbus.planner import ReadBlock, plan_reads, slice_point

__all__ = [
    "EXCEPTION_NAMES",
    "CodecError",
    "ModbusDeviceHealth",
    "ModbusTcpDevice",
    "ReadBlock",
    "decode",
    "encode",
    "plan_reads",
    "slice_point",
]
