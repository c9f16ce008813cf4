"""iBeacon and Eddystone (UID, URL, TLM) decoders.

iBeacon: Apple manufacturer data (company 0x004C) of type 0x02, length 0x15:
a 16-byte proximity UUID, major and minor (big-endian uint16) and the
calibrated tx power at 1 m (int8).

Eddystone (github.com/google/eddystone): service data of UUID 0xFEAA, the
first byte the frame type. UID 0x00: tx power at 0 m, 10-byte namespace,
6-byte instance (2 reserved bytes some beacons omit). URL 0x10: tx power, a
scheme code and the URL with expansion codes. TLM 0x20 version 0x00: battery
mV, 8.8 fixed-point degC (0x8000 = not supported), advertising count,
0.1 s uptime count, all big-endian. Encrypted TLM and EID frames need keys
the beacon's owner registers elsewhere; they are rejected with a reason.
"""

from __future__ import annotations

import struct
import uuid

from ldt.drivers.ble.advertisement import uuid16
from ldt.drivers.ble.errors import BleDecodeError
from ldt.reading import Value

__all__ = [
    "APPLE_COMPANY_ID",
    "EDDYSTONE_UUID",
    "URL_EXPANSIONS",
    "URL_SCHEMES",
    "decode_eddystone",
    "decode_ibeacon",
]

APPLE_COMPANY_ID = 0x004C
EDDYSTONE_UUID = uuid16(0xFEAA)

URL_SCHEMES: tuple[str, ...] = ("http://www.", "https://www.", "http://", "https://")
"""Eddystone-URL scheme prefix codes 0x00..0x03."""

URL_EXPANSIONS: tuple[str, ...] = (
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
)  # fmt: skip
"""Eddystone-URL expansion codes 0x00..0x0D."""

_IBEACON = struct.Struct(">BB16sHHb")
_TLM = struct.Struct(">BBHhII")


def decode_ibeacon(data: bytes) -> dict[str, Value]:
    """Decode Apple manufacturer data (without the company id) as an iBeacon.

    Returns ``uuid`` (canonical lower-case string), ``major``, ``minor`` and
    ``tx_power`` (dBm at 1 m). Other Apple frames raise ``BleDecodeError``.
    """
    if len(data) < 2 or data[0] != 0x02:
        kind = f"{data[0]:#04x}" if data else "empty"
        raise BleDecodeError(f"Apple manufacturer data of type {kind} is not an iBeacon (0x02)")
    if data[1] != 0x15 or len(data) != _IBEACON.size:
        raise BleDecodeError(
            f"iBeacon frame is {len(data)} bytes with length byte {data[1]:#04x}; "
            f"expected {_IBEACON.size} bytes and 0x15"
        )
    _, _, proximity, major, minor, tx = _IBEACON.unpack(data)
    return {"uuid": str(uuid.UUID(bytes=proximity)), "major": major, "minor": minor, "tx_power": tx}


def _decode_url(data: bytes) -> str:
    if len(data) < 3:
        raise BleDecodeError("Eddystone-URL frame has no URL")
    if data[2] >= len(URL_SCHEMES):
        raise BleDecodeError(f"Eddystone-URL scheme code {data[2]:#04x} is not in the spec")
    if len(data) > 20:
        raise BleDecodeError(f"Eddystone-URL frame is {len(data)} bytes, at most 20")
    parts = [URL_SCHEMES[data[2]]]
    for b in data[3:]:
        if b < len(URL_EXPANSIONS):
            parts.append(URL_EXPANSIONS[b])
        elif 0x21 <= b <= 0x7E:
            parts.append(chr(b))
        else:
            raise BleDecodeError(f"Eddystone-URL byte {b:#04x} is reserved")
    return "".join(parts)


def decode_eddystone(data: bytes) -> dict[str, Value]:
    """Decode Eddystone service data (UUID 0xFEAA) into named values.

    Every result has ``frame`` (``uid``, ``url`` or ``tlm``). UID: ``tx_power``
    (dBm at 0 m), ``namespace``, ``instance`` (hex). URL: ``tx_power``, ``url``.
    TLM: ``battery_voltage`` (V; absent when the beacon reports 0),
    ``temperature`` (degC; absent for 0x8000), ``advertising_count``,
    ``uptime`` (s).
    """
    if not data:
        raise BleDecodeError("empty Eddystone service data")
    frame = data[0]
    if frame == 0x00:
        if len(data) not in (18, 20):
            raise BleDecodeError(f"Eddystone-UID frame is {len(data)} bytes, expected 18 or 20")
        return {
            "frame": "uid",
            "tx_power": struct.unpack_from(">b", data, 1)[0],
            "namespace": data[2:12].hex(),
            "instance": data[12:18].hex(),
        }
    if frame == 0x10:
        tx = struct.unpack_from(">b", data, 1)[0] if len(data) > 1 else 0
        return {"frame": "url", "tx_power": tx, "url": _decode_url(data)}
    if frame == 0x20:
        if len(data) < 2:
            raise BleDecodeError("Eddystone-TLM frame has no version byte")
        if data[1] == 0x01:
            raise BleDecodeError("encrypted Eddystone-TLM (version 0x01) cannot be decoded")
        if data[1] != 0x00:
            raise BleDecodeError(f"Eddystone-TLM version {data[1]:#04x} is not in the spec")
        if len(data) != _TLM.size:
            raise BleDecodeError(f"Eddystone-TLM frame is {len(data)} bytes, expected {_TLM.size}")
        _, _, vbatt, temp, adv_count, sec_count = _TLM.unpack(data)
        out: dict[str, Value] = {"frame": "tlm"}
        if vbatt != 0:
            out["battery_voltage"] = vbatt / 1000
        if temp != -0x8000:
            out["temperature"] = temp / 256
        out["advertising_count"] = adv_count
        out["uptime"] = round(sec_count / 10, 1)
        return out
    if frame == 0x30:
        raise BleDecodeError("Eddystone-EID frames are rotating encrypted ids: not decodable")
    raise BleDecodeError(f"unknown Eddystone frame type {frame:#04x}")
