"""Simulated BLE sensors (Ruuvi RAWv2, BTHome v2, iBeacon, Eddystone) without a radio."""

from ldt.simulators.ble.advertiser import (
    FORMATS,
    BleAdvertiser,
    BleSimulatorError,
    SimAdvertisement,
)

__all__ = ["FORMATS", "BleAdvertiser", "BleSimulatorError", "SimAdvertisement"]
