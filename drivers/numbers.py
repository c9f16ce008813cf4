"""Numbers as devices mean them, for every driver.

A float32 (a Modbus register pair, an OPC UA ``Float``) holds about 7 significant digits;
widened to a Python float it prints digits the device never measured
(``1.350000023841858``), which then travel to the twin and every dashboard. Every driver
gives such a value as its shortest decimal text that is the same float32.
"""

from __future__ import annotations

import struct

__all__ = ["shortest_float32"]


def shortest_float32(number: float) -> float:
    """The shortest decimal that is the same float32: ``229.07414``, not ``229.0741424560547``.

    A float32 register holds about 7 significant digits; widening it to a
    Python float prints digits the device never measured, which then travel
    to the twin and every dashboard. The result still packs to the same bits.
    """
    bits = struct.pack(">f", number)
    for digits in range(6, 10):
        candidate = float(f"{number:.{digits}g}")
        try:
            if struct.pack(">f", candidate) == bits:
                return candidate
        except OverflowError:  # rounded past the largest float32
            continue
    return number
