"""GATT characteristic values <-> point values: one struct format, scale and offset.

Standard characteristics (Bluetooth GATT Specification Supplement) are
little-endian: Temperature 0x2A6E ``<h`` x 0.01 degC (0x8000 = not known),
Humidity 0x2A6F ``<H`` x 0.01 %, Battery Level 0x2A19 ``<B`` %.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal

from ldt.drivers.ble.config import BlePoint
from ldt.drivers.ble.errors import BleDecodeError
from ldt.drivers.errors import DriverError
from ldt.reading import Value

__all__ = ["decode_characteristic", "encode_characteristic"]


def _decimals(x: float) -> int:
    exponent = Decimal(str(x)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def decode_characteristic(point: BlePoint, data: bytes) -> Value:
    """The point's value from the characteristic's bytes; ``BleDecodeError`` if they do not fit."""
    fmt = point.struct_format
    if fmt is None:
        raise BleDecodeError(f"point {point.name!r} is not a GATT point")
    if fmt == "utf8":
        try:
            return bytes(data).decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError:
            raise BleDecodeError(f"{point.name}: value is not UTF-8 text") from None
    size = struct.calcsize(fmt)
    if len(data) != size:
        raise BleDecodeError(
            f"{point.name}: characteristic value is {len(data)} bytes, {fmt!r} needs {size}"
        )
    raw: bool | int | float = struct.unpack(fmt, data)[0]
    if isinstance(raw, bool):
        return raw
    if point.invalid is not None and raw == point.invalid:
        raise BleDecodeError(f"{point.name}: device reports the value as not known ({raw})")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise BleDecodeError(f"{point.name}: value is {raw}")
    if point.scale == 1.0 and point.offset == 0.0:
        return raw if isinstance(raw, int) else float(raw)
    value = raw * point.scale + point.offset
    if isinstance(raw, int):
        return round(value, max(_decimals(point.scale), _decimals(point.offset)))
    return value


def encode_characteristic(point: BlePoint, value: Value) -> bytes:
    """The bytes to write for ``value``; ``DriverError`` if it does not fit the format."""
    fmt = point.struct_format
    if fmt is None:
        raise DriverError(f"point {point.name!r} is not a GATT point")
    if fmt == "utf8":
        if not isinstance(value, str):
            raise DriverError(f"{point.name}: expects text, got {value!r}")
        return value.encode("utf-8")
    if fmt.endswith("?"):
        if not isinstance(value, bool):
            raise DriverError(f"{point.name}: expects true/false, got {value!r}")
        return struct.pack(fmt, value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DriverError(f"{point.name}: expects a number, got {value!r}")
    raw = (value - point.offset) / point.scale
    try:
        if fmt[-1] in "efd":
            return struct.pack(fmt, raw)
        return struct.pack(fmt, round(raw))
    except (struct.error, OverflowError) as exc:
        raise DriverError(f"{point.name}: {value!r} does not fit {fmt!r}: {exc}") from exc
