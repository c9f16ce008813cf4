"""Simulated BLE sensors (Ruuvi RAWv2, BTHome v2, iBeacon, Eddystone) without a radio.

Names are imported on first use (PEP 562), so that `ldt --help` and the
CLI registration of this package never load its protocol library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ldt.simulators.ble.advertiser import (
        FORMATS,
        BleAdvertiser,
        BleSimulatorError,
        SimAdvertisement,
    )

__all__ = [
    "FORMATS",
    "BleAdvertiser",
    "BleSimulatorError",
    "SimAdvertisement",
]

_WHERE = {
    "FORMATS": "ldt.simulators.ble.advertiser",
    "BleAdvertiser": "ldt.simulators.ble.advertiser",
    "BleSimulatorError": "ldt.simulators.ble.advertiser",
    "SimAdvertisement": "ldt.simulators.ble.advertiser",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
