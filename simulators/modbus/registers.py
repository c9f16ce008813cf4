"""The simulator's own register codec: engineering value <-> 16-bit registers.

Written independently of the driver's codec on purpose: the driver is tested
against this, so a shared bug would hide. Conventions (the ones ldt profiles
use, see ``drivers/modbus/config.py``):

- numeric: ``value = raw * scale + offset``; integer types with scale 1 and
  offset 0 decode to ``int``, otherwise to ``float``;
- ``byte_order``: byte order inside each register (``big`` = high byte first);
- ``word_order``: register order of multi-register values (``big`` = most
  significant register first); it does not apply to strings;
- ``string``: ``length`` registers of ASCII, first character in the first
  register's first byte (per ``byte_order``), padded with NULs; trailing NULs
  and spaces are not part of the value;
- ``bool`` in a register table: 0 or 1.
"""

from __future__ import annotations

import math
import struct

from ldt.simulators.modbus.profile import SimPoint

__all__ = ["Value", "decode", "encode", "raw_limits", "value_limits"]

Value = bool | int | float | str

_STRUCT = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
    "float64": ">d",
}
_INT_BITS = {"int16": 16, "uint16": 16, "int32": 32, "uint32": 32, "int64": 64, "uint64": 64}


def raw_limits(kind: str) -> tuple[float, float]:
    """The smallest and largest raw value a numeric type holds."""
    if kind in _INT_BITS:
        bits = _INT_BITS[kind]
        if kind.startswith("u"):
            return 0, (1 << bits) - 1
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if kind == "float32":
        return -3.4028234663852886e38, 3.4028234663852886e38
    return -1.7976931348623157e308, 1.7976931348623157e308


def value_limits(point: SimPoint) -> tuple[float, float]:
    """The engineering-value range a numeric point can represent (after scale/offset)."""
    lo, hi = raw_limits(point.type)
    a, b = lo * point.scale + point.offset, hi * point.scale + point.offset
    return (a, b) if a <= b else (b, a)


def _to_registers(data: bytes, point: SimPoint, *, words_ordered: bool) -> list[int]:
    regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if point.byte_order == "little":
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    if words_ordered and point.word_order == "little":
        regs.reverse()
    return regs


def _from_registers(regs: list[int], point: SimPoint, *, words_ordered: bool) -> bytes:
    regs = list(regs)
    if words_ordered and point.word_order == "little":
        regs.reverse()
    if point.byte_order == "little":
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return b"".join(r.to_bytes(2, "big") for r in regs)


def encode(point: SimPoint, value: Value) -> list[int]:
    """The registers (or, in bit tables, one 0/1) that hold ``value``.

    Raises ``ValueError`` when the value does not fit the point's type, or is
    of the wrong kind (a string for a number, ...).
    """
    if point.type == "bool":
        if not isinstance(value, bool | int) or isinstance(value, float):
            raise ValueError(f"{point.name}: {value!r} is not a boolean")
        return [1 if value else 0]
    if point.type == "string":
        if not isinstance(value, str):
            raise ValueError(f"{point.name}: {value!r} is not a string")
        try:
            data = value.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{point.name}: {value!r} is not ASCII") from None
        if len(data) > 2 * point.registers:
            raise ValueError(f"{point.name}: {value!r} is longer than {2 * point.registers}")
        return _to_registers(data.ljust(2 * point.registers, b"\0"), point, words_ordered=False)
    if isinstance(value, str) or not isinstance(value, int | float):
        # one exception type for every value a point cannot take, as documented
        raise ValueError(f"{point.name}: {value!r} is not a number")  # noqa: TRY004
    if not math.isfinite(value):
        raise ValueError(f"{point.name}: {value!r} is not finite")
    raw: float | int = (value - point.offset) / point.scale
    if point.type in _INT_BITS:
        raw = round(raw)
        lo, hi = raw_limits(point.type)
        if not lo <= raw <= hi:
            raise ValueError(f"{point.name}: {value!r} does not fit {point.type}")
    try:
        data = struct.pack(_STRUCT[point.type], raw)
    except (OverflowError, struct.error):
        raise ValueError(f"{point.name}: {value!r} does not fit {point.type}") from None
    return _to_registers(data, point, words_ordered=True)


def decode(point: SimPoint, regs: list[int]) -> Value:
    """The value a correct client reads from ``regs`` (as many as the point spans)."""
    if len(regs) != point.registers:
        raise ValueError(f"{point.name}: needs {point.registers} registers, got {len(regs)}")
    if point.type == "bool":
        return bool(regs[0])
    if point.type == "string":
        data = _from_registers(regs, point, words_ordered=False)
        return data.split(b"\0", 1)[0].decode("ascii", "replace").rstrip(" ")
    raw: int | float = struct.unpack(
        _STRUCT[point.type], _from_registers(regs, point, words_ordered=True)
    )[0]
    if point.type in _INT_BITS and point.scale == 1.0 and point.offset == 0.0:
        return int(raw)
    return float(raw) * point.scale + point.offset
