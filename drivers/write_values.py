"""What a command may write, checked the same way by every driver.

A setpoint is never rounded, truncated or coerced without saying so. Before this module,
Modbus wrote 12.7 to a uint16 register as 13 and reported "wrote 12.7", and took ``1`` for
a coil, while OPC UA refused both: the same command did different things per protocol.
The rules, from the point's declared type (and, for Modbus, its scale and offset):

- a number for a number, a boolean for a boolean, text for text; a boolean is not a
  number, and ``0``/``1`` are booleans only where the profile says so;
- an integer type takes a value whose raw form (after undoing scale and offset) is whole,
  within a millionth (12.7 with ``scale = 0.1`` is raw 127; 12.7 without a scale is
  refused, with the sentence saying to send a whole number or declare a scale);
- the raw value must fit the type's range; floats must be finite and fit.

Each refusal is a ``WriteValueError`` whose text names the point and the value.
"""

from __future__ import annotations

import math

from ldt.drivers.errors import DriverError
from ldt.reading import Value

__all__ = ["WriteValueError", "boolean", "integer", "real"]

_WHOLE_TOLERANCE = 1e-6
"""Relative slack for "whole": 12.7 / 0.1 is 126.99999999999999 in binary floating point."""


class WriteValueError(DriverError):
    """The value cannot be written to the point as it is; nothing was sent."""


def _number(value: Value, name: str, type_name: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WriteValueError(f"point {name!r} is a {type_name}: {value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise WriteValueError(f"point {name!r}: cannot write {value}")
    return value


def _raw(number: float | int, name: str, scale: float, offset: float) -> float | int:
    """The raw value that reads back as ``number`` (``number = raw * scale + offset``)."""
    if scale == 0:
        raise WriteValueError(f"point {name!r} has scale 0: its raw value cannot be derived")
    return (number - offset) / scale if scale != 1.0 or offset != 0.0 else number


def integer(
    value: Value,
    *,
    name: str,
    type_name: str,
    lo: int,
    hi: int,
    scale: float = 1.0,
    offset: float = 0.0,
) -> int:
    """The raw integer that reads back as ``value`` (``value = raw * scale + offset``)."""
    raw = _raw(_number(value, name, type_name), name, scale, offset)
    scaled = scale != 1.0 or offset != 0.0
    if isinstance(raw, int):
        whole = raw
    else:
        whole = round(raw)
        if abs(raw - whole) > _WHOLE_TOLERANCE * max(1.0, abs(raw)):
            how = (
                f"raw {raw:g}, with scale {scale:g} and offset {offset:g}"
                if scaled
                else "no scale is declared"
            )
            raise WriteValueError(
                f"point {name!r} is a {type_name}: {value!r} would have to be rounded to"
                f" {whole} ({how}); send a value it holds exactly"
            )
    if not lo <= whole <= hi:
        shown = f"{value!r}" if not scaled else f"{value!r} (raw {whole})"
        raise WriteValueError(
            f"point {name!r}: {shown} is out of range for {type_name} ({lo}..{hi})"
        )
    return whole


def real(
    value: Value,
    *,
    name: str,
    type_name: str,
    limit: float | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
) -> float:
    """The raw float that reads back as ``value`` (``limit``: the type's largest magnitude,
    checked on the value as given)."""
    number = float(_number(value, name, type_name))
    raw = float(_raw(number, name, scale, offset))
    if limit is not None and abs(number) > limit:
        raise WriteValueError(f"point {name!r}: {value!r} is out of range for {type_name}")
    return raw


def boolean(value: Value, *, name: str, numbers: bool = False) -> bool:
    """``value`` for a boolean point: ``true``/``false``, and ``0``/``1`` only if
    ``numbers`` (the profile allows it)."""
    if isinstance(value, bool):
        return value
    if numbers and isinstance(value, int) and value in (0, 1):
        return bool(value)
    accepted = "true or false (or 0/1, which this profile allows)" if numbers else "true or false"
    raise WriteValueError(f"point {name!r} is a boolean: {value!r} is not {accepted}")
