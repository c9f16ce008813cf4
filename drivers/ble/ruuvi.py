"""RuuviTag data format 5 (RAWv2) decoder: manufacturer data of company 0x0499.

Layout (Ruuvi docs, "Data format 5 (RAWv2)"): 24 bytes, all fields big-endian::

    0      format (5)
    1-2    temperature   int16  x 0.005 degC
    3-4    humidity      uint16 x 0.0025 %
    5-6    pressure      uint16 + 50000 Pa
    7-12   acceleration  3 x int16 mg (x, y, z)
    13-14  power info    11 bits battery mV above 1600, 5 bits tx power 2 dBm steps above -40
    15     movement counter uint8
    16-17  measurement sequence uint16
    18-23  MAC address

The spec's "not available" values (0x8000 for signed fields, all ones for
unsigned ones and the MAC) are left out of the result rather than decoded into
plausible-looking garbage (-163.84 degC, 1155.35 hPa).
"""

from __future__ import annotations

import struct

from ldt.drivers.ble.errors import BleDecodeError
from ldt.reading import Value

__all__ = ["RUUVI_COMPANY_ID", "RUUVI_FIELDS", "decode_ruuvi"]

RUUVI_COMPANY_ID = 0x0499
"""Ruuvi Innovations' Bluetooth SIG company id (sent as ``99 04`` on air)."""

RUUVI_FIELDS: tuple[str, ...] = (
    "temperature",
    "humidity",
    "pressure",
    "acceleration_x",
    "acceleration_y",
    "acceleration_z",
    "battery_voltage",
    "tx_power",
    "movement_counter",
    "measurement_sequence",
    "mac",
)
"""Fields ``decode_ruuvi`` can return; units: degC, %, Pa, mg (x3), V, dBm, -, -, -."""

_RAWV2 = struct.Struct(">BhHHhhhHBH6s")
_NA_SIGNED = -0x8000


def decode_ruuvi(data: bytes) -> dict[str, Value]:
    """Decode RAWv2 manufacturer data (without the company id) into named values.

    Raises ``BleDecodeError`` for any other length or format byte. Fields the
    tag reports as not available are absent from the result.
    """
    if not data:
        raise BleDecodeError("empty Ruuvi manufacturer data")
    if data[0] != 5:
        raise BleDecodeError(
            f"unsupported Ruuvi data format {data[0]} (only format 5 / RAWv2 is decoded)"
        )
    if len(data) != _RAWV2.size:
        raise BleDecodeError(f"Ruuvi RAWv2 payload is {len(data)} bytes, expected {_RAWV2.size}")
    (_, temp, hum, pres, ax, ay, az, power, movement, sequence, mac) = _RAWV2.unpack(data)
    out: dict[str, Value] = {}
    if temp != _NA_SIGNED:
        out["temperature"] = round(temp * 0.005, 3)
    if hum != 0xFFFF:
        out["humidity"] = round(hum * 0.0025, 4)
    if pres != 0xFFFF:
        out["pressure"] = pres + 50000
    for name, acc in (("acceleration_x", ax), ("acceleration_y", ay), ("acceleration_z", az)):
        if acc != _NA_SIGNED:
            out[name] = acc
    battery_mv = power >> 5
    if battery_mv != 0x7FF:
        out["battery_voltage"] = round((battery_mv + 1600) / 1000, 3)
    tx = power & 0x1F
    if tx != 0x1F:
        out["tx_power"] = tx * 2 - 40
    if movement != 0xFF:
        out["movement_counter"] = movement
    if sequence != 0xFFFF:
        out["measurement_sequence"] = sequence
    if mac != b"\xff" * 6:
        out["mac"] = ":".join(f"{b:02X}" for b in mac)
    return out
