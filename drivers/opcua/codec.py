"""OPC UA values <-> ldt values: pure conversions, no I/O.

Reading follows the rule every driver shares (README, "Values in, values out"):
numbers, booleans and text stay scalars (a ``Float`` as its shortest round-trip
decimal), a ``DateTime`` becomes an instant, and arrays and structures (decoded
ExtensionObjects) become JSON data with camelCase field names. A type with no
JSON form (ByteString, an undecoded structure) gets one reason naming it.
Writing converts to the variable's own VariantType and refuses what would not
fit (300 into a Byte, "on" into a Boolean) instead of letting the server guess.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from ldt.drivers import write_values
from ldt.drivers.numbers import shortest_float32
from ldt.reading import Structured, Value

__all__ = ["INTEGER_RANGES", "from_variant", "status_name", "timestamp_ms", "to_variant"]

_VT = ua.VariantType

INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    _VT.SByte: (-(2**7), 2**7 - 1),
    _VT.Byte: (0, 2**8 - 1),
    _VT.Int16: (-(2**15), 2**15 - 1),
    _VT.UInt16: (0, 2**16 - 1),
    _VT.Int32: (-(2**31), 2**31 - 1),
    _VT.UInt32: (0, 2**32 - 1),
    _VT.Int64: (-(2**63), 2**63 - 1),
    _VT.UInt64: (0, 2**64 - 1),
}
_FLOATS = (_VT.Float, _VT.Double)
_FLOAT32_MAX = 3.4028234663852886e38


def status_name(code: ua.StatusCode | int) -> str:
    """``BadSensorFailure`` for its code; ``0x80AB0000`` for a code asyncua does not know."""
    value = code.value if isinstance(code, ua.StatusCode) else code
    try:
        return str(ua.StatusCode(ua.UInt32(value)).name)
    except (KeyError, AttributeError):
        return f"0x{value:08X}"


def from_variant(value: Any, vtype: ua.VariantType | None = None) -> Value | Structured:
    """A Variant's Python value as a reading value; ``ValueError`` says why not."""
    if value is None:
        raise ValueError("the server sent no value (Null)")
    if isinstance(value, datetime):
        return Structured.instant(value)
    data = _json(value, vtype)
    if isinstance(data, list | dict):
        return Structured.of_json(data)
    if isinstance(data, bool | int | float | str):
        return data
    raise ValueError(f"values of type {type(value).__name__} are not supported")


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _json(value: Any, vtype: ua.VariantType | None) -> Any:
    """One value (or an array's element, or a structure's field) as JSON data."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, int) else value.name
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"value is {value} (not a finite number)")
        return shortest_float32(value) if vtype is _VT.Float else value
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    if isinstance(value, datetime):
        return Structured.instant(value).data
    if isinstance(value, ua.NodeId | ua.QualifiedName):
        return value.to_string()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, ua.Variant):
        return _json(value.Value, value.VariantType)
    if isinstance(value, list | tuple):
        return [_json(v, vtype) for v in value]
    if isinstance(value, ua.ExtensionObject):
        raise ValueError(  # noqa: TRY004 - a value the reading cannot carry, not a caller's bug
            f"structures of DataType {value.TypeId.to_string()} are not supported "
            "(the server does not describe them)"
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            _camel(f.name): _json(getattr(value, f.name), None)
            for f in dataclasses.fields(value)
            if not f.name.startswith("_") and f.name != "data_type"
        }
    if isinstance(value, bytes | bytearray):
        raise ValueError(  # noqa: TRY004 - as above
            "ByteString values are not supported (no text or number form)"
        )
    raise ValueError(f"values of type {type(value).__name__} are not supported")


def to_variant(value: Value, vtype: ua.VariantType, name: str = "value") -> ua.Variant:
    """``value`` as a Variant of the variable's type; ``ValueError`` when it does not fit.

    Numbers and booleans follow the rules every driver shares (``ldt.drivers.write_values``):
    nothing is rounded or coerced without saying so; ``name`` is the point, for the text.
    """
    try:
        if vtype is _VT.Boolean:
            return ua.Variant(write_values.boolean(value, name=name), vtype)
        if vtype in INTEGER_RANGES:
            lo, hi = INTEGER_RANGES[vtype]
            number = write_values.integer(value, name=name, type_name=vtype.name, lo=lo, hi=hi)
            return ua.Variant(number, vtype)
        if vtype in _FLOATS:
            limit = _FLOAT32_MAX if vtype is _VT.Float else None
            real = write_values.real(value, name=name, type_name=vtype.name, limit=limit)
            return ua.Variant(real, vtype)
    except write_values.WriteValueError as exc:
        raise ValueError(str(exc)) from None
    if vtype is _VT.String:
        if not isinstance(value, str):
            raise ValueError(f"expects a String, got {type(value).__name__}")
        return ua.Variant(value, vtype)
    if vtype is _VT.LocalizedText:
        if not isinstance(value, str):
            raise ValueError(f"expects text, got {type(value).__name__}")
        return ua.Variant(ua.LocalizedText(value), vtype)
    raise ValueError(f"writing variables of type {vtype.name} is not supported")


def timestamp_ms(dv: ua.DataValue) -> int | None:
    """The DataValue's SourceTimestamp (else ServerTimestamp) in Unix ms, or None."""
    stamp = dv.SourceTimestamp or dv.ServerTimestamp
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)
