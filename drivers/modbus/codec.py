"""Registers to values and back: pure functions, no I/O.

A Modbus device only hands out 16-bit registers (or bits); what they mean
comes from the profile. The rules, decided here once for every driver:

* ``byte_order`` swaps the two bytes *inside* each register; ``word_order``
  reverses the order of the registers of a multi-register value (``big``:
  most significant register first, the Modbus convention; ``little`` is the
  "CDAB" layout of many meters). Both come from the point, else the profile.
* Numeric types then apply ``value = raw * scale + offset``. With the default
  ``scale=1, offset=0`` an integer type stays ``int`` (so a 64-bit energy
  counter keeps every digit); any other scale or offset gives a ``float``.
* ``bool`` (in a register) is ``register != 0``; coils and discrete inputs are
  one bit each. Neither is scaled.
* ``string``: ASCII, two characters per register, first character in the high
  byte (``byte_order=little`` swaps that); ``word_order`` does not apply,
  characters run in register order. The text ends at the first NUL and trailing
  spaces are stripped (devices pad with either). A byte above 0x7F becomes
  U+FFFD rather than failing the reading: a nameplate string with one odd
  byte is still worth showing, and the replacement character makes the fault
  visible.
* A float register pair holding NaN or infinity is a device fault, not a value:
  it raises ``CodecError`` so the reading becomes bad.

A scaled integer register reads with as many decimals as its scale and offset have
(raw 127 with scale 0.1 is 12.7, not 12.700000000000001).

``encode`` is the inverse for writes: it undoes scale and offset, and refuses values the
type cannot hold exactly (``ldt.drivers.write_values``: nothing is rounded silently).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

from ldt.drivers import write_values
from ldt.drivers.errors import DriverError
from ldt.drivers.modbus.config import (
    ByteOrder,
    DataType,
    ModbusPoint,
    ModbusProfileSettings,
    WordOrder,
)
from ldt.drivers.numbers import shortest_float32
from ldt.reading import Value

__all__ = ["CodecError", "decode", "encode"]


class CodecError(DriverError):
    """Registers do not decode to a value of the point's type, or a value does not encode."""


# struct format (big-endian) of each fixed-width numeric type
_STRUCT: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}
_FLOATS = frozenset({DataType.FLOAT32, DataType.FLOAT64})
_INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


def _orders(point: ModbusPoint, settings: ModbusProfileSettings) -> tuple[ByteOrder, WordOrder]:
    return (point.byte_order or settings.byte_order, point.word_order or settings.word_order)


def _is_scaled(point: ModbusPoint) -> bool:
    return point.scale != 1.0 or point.offset != 0.0


def _words_to_bytes(words: Sequence[int], byte_order: ByteOrder, word_order: WordOrder) -> bytes:
    ordered = list(reversed(words)) if word_order is WordOrder.LITTLE else list(words)
    endian: Literal["little", "big"] = "little" if byte_order is ByteOrder.LITTLE else "big"
    return b"".join(w.to_bytes(2, endian) for w in ordered)


def _bytes_to_words(data: bytes, byte_order: ByteOrder, word_order: WordOrder) -> list[int]:
    endian: Literal["little", "big"] = "little" if byte_order is ByteOrder.LITTLE else "big"
    words = [int.from_bytes(data[i : i + 2], endian) for i in range(0, len(data), 2)]
    return list(reversed(words)) if word_order is WordOrder.LITTLE else words


def _check_words(point: ModbusPoint, words: Sequence[int]) -> None:
    if len(words) != point.register_count:
        raise CodecError(
            f"point {point.name!r} ({point.type.value}) needs {point.register_count} "
            f"register(s) but got {len(words)}"
        )
    for w in words:
        if isinstance(w, bool) and not point.table.is_bit:
            raise CodecError(f"point {point.name!r}: got a bit where a register was expected")
        if not isinstance(w, int) or not 0 <= w <= 0xFFFF:
            raise CodecError(f"point {point.name!r}: {w!r} is not a 16-bit register value")


def decode(point: ModbusPoint, settings: ModbusProfileSettings, words: Sequence[int]) -> Value:
    """The value of ``point`` from exactly its registers (or its one bit).

    Raises ``CodecError`` for the wrong number of registers, a register outside
    0..65535, or a float that is NaN or infinite.
    """
    if point.table.is_bit:
        if len(words) != 1:
            raise CodecError(f"point {point.name!r} is one bit but got {len(words)} values")
        if words[0] not in (0, 1):  # True/False compare equal to 1/0
            raise CodecError(f"point {point.name!r}: {words[0]!r} is not a bit")
        return bool(words[0])
    _check_words(point, words)
    byte_order, word_order = _orders(point, settings)
    if point.type is DataType.BOOL:
        return words[0] != 0
    if point.type is DataType.STRING:
        raw = _words_to_bytes(words, byte_order, WordOrder.BIG)
        return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").rstrip(" ")
    (number,) = struct.unpack(_STRUCT[point.type], _words_to_bytes(words, byte_order, word_order))
    if point.type in _FLOATS and not math.isfinite(number):
        what = "NaN" if math.isnan(number) else "infinity"
        raise CodecError(f"device returned {what}")
    if point.type is DataType.FLOAT32:
        number = shortest_float32(number)
    if not _is_scaled(point):
        return number  # type: ignore[no-any-return]  # struct gives int or float by format
    scaled = number * point.scale + point.offset
    if not math.isfinite(scaled):
        raise CodecError(f"point {point.name!r}: {number} * scale overflows a float")
    if point.type not in _FLOATS:  # an integer register: as many decimals as its scale has
        # 127 * 0.1 is 12.700000000000001 in binary; the meter meant 12.7 (issue 15)
        return round(float(scaled), max(_decimals(point.scale), _decimals(point.offset)))
    return float(scaled)


def _decimals(x: float) -> int:
    """Digits after the point in ``x``'s shortest text (0.1 -> 1, 2.5e-05 -> 6, 10 -> 0)."""
    mantissa, _, exponent = repr(float(x)).partition("e")
    fraction = mantissa.partition(".")[2].rstrip("0")
    return max(0, len(fraction) - int(exponent or 0))


def encode(point: ModbusPoint, settings: ModbusProfileSettings, value: Value) -> list[int]:
    """The registers (or the one bit, as 0/1) that make ``point`` read back as ``value``.

    Raises ``CodecError`` when the value has the wrong kind (text for a number,
    a number for a bit) or does not fit the type after undoing scale/offset.
    """
    if point.table.is_bit or point.type is DataType.BOOL:
        try:
            return [
                int(write_values.boolean(value, name=point.name, numbers=settings.bool_numbers))
            ]
        except write_values.WriteValueError as exc:
            raise CodecError(str(exc)) from None
    byte_order, word_order = _orders(point, settings)
    if point.type is DataType.STRING:
        return _encode_string(point, value, byte_order)
    try:
        if point.type in _FLOATS:
            raw = write_values.real(
                value,
                name=point.name,
                type_name=point.type.value,
                scale=point.scale,
                offset=point.offset,
            )
            try:
                data = struct.pack(_STRUCT[point.type], raw)
            except OverflowError as exc:
                raise CodecError(
                    f"point {point.name!r}: {value} is out of range for {point.type.value}"
                ) from exc
            if not math.isfinite(struct.unpack(_STRUCT[point.type], data)[0]):  # float32 overflow
                raise CodecError(
                    f"point {point.name!r}: {value} is out of range for {point.type.value}"
                )
        else:
            lo, hi = _INT_RANGE[point.type]
            raw_int = write_values.integer(
                value,
                name=point.name,
                type_name=point.type.value,
                lo=lo,
                hi=hi,
                scale=point.scale,
                offset=point.offset,
            )
            data = struct.pack(_STRUCT[point.type], raw_int)
    except write_values.WriteValueError as exc:
        raise CodecError(str(exc)) from None
    return _bytes_to_words(data, byte_order, word_order)


def _encode_string(point: ModbusPoint, value: Value, byte_order: ByteOrder) -> list[int]:
    if not isinstance(value, str):
        raise CodecError(f"point {point.name!r} is a string; {value!r} is not text")
    capacity = 2 * point.register_count
    try:
        data = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise CodecError(f"point {point.name!r}: {value!r} is not ASCII") from exc
    if b"\x00" in data:
        raise CodecError(f"point {point.name!r}: text may not contain NUL")
    if len(data) > capacity:
        raise CodecError(
            f"point {point.name!r}: {len(data)} characters do not fit in "
            f"{point.register_count} registers ({capacity} characters)"
        )
    return _bytes_to_words(data.ljust(capacity, b"\x00"), byte_order, WordOrder.BIG)
