"""The BLE driver's exceptions."""

from __future__ import annotations

from ldt.drivers.errors import DriverError

__all__ = ["BleDecodeError"]


class BleDecodeError(DriverError):
    """An advertisement or characteristic value could not be decoded.

    Raised by the pure decoders for every malformed input (truncated, wrong
    length, unknown format byte, unknown BTHome object id, failed decryption),
    never ``IndexError`` or ``struct.error``: the device counts it and carries on.
    """
