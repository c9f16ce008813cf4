"""OPC UA: monitored items and polled reads of a server's variables, writes and method calls."""

from ldt.drivers.opcua.config import (
    OpcUaConnection,
    OpcUaPoint,
    OpcUaProfileSettings,
    PointMode,
    SecurityMode,
    SecurityPolicy,
)
from ldt.drivers.opcua.device import OpcUaDevice, OpcUaDeviceHealth, quiet_asyncua_logging

__all__ = [
    "OpcUaConnection",
    "OpcUaDevice",
    "OpcUaDeviceHealth",
    "OpcUaPoint",
    "OpcUaProfileSettings",
    "PointMode",
    "SecurityMode",
    "SecurityPolicy",
    "quiet_asyncua_logging",
]
