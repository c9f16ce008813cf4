"""OPC UA: monitored items and polled reads of a server's variables, writes and method calls.

Names are imported on first use (PEP 562), so that `ldt --help` and the
CLI registration of this package never load its protocol library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ldt.drivers.opcua.config import (
        OpcUaConnection,
        OpcUaPoint,
        OpcUaProfileSettings,
        PointMode,
        SecurityMode,
        SecurityPolicy,
    )
    from ldt.drivers.opcua.connect import quiet_asyncua_logging
    from ldt.drivers.opcua.device import OpcUaDevice, OpcUaDeviceHealth

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

_WHERE = {
    "OpcUaConnection": "ldt.drivers.opcua.config",
    "OpcUaPoint": "ldt.drivers.opcua.config",
    "OpcUaProfileSettings": "ldt.drivers.opcua.config",
    "PointMode": "ldt.drivers.opcua.config",
    "SecurityMode": "ldt.drivers.opcua.config",
    "SecurityPolicy": "ldt.drivers.opcua.config",
    "OpcUaDevice": "ldt.drivers.opcua.device",
    "OpcUaDeviceHealth": "ldt.drivers.opcua.device",
    "quiet_asyncua_logging": "ldt.drivers.opcua.connect",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
