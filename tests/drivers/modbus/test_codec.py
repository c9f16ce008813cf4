"""The register codec: round trips for every type and order, real-device vectors, bad input."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from ldt.drivers.errors import DriverError
from ldt.drivers.modbus.codec import CodecError, decode, encode
from ldt.drivers.modbus.config import (
    ByteOrder,
    DataType,
    ModbusPoint,
    ModbusProfileSettings,
    RegisterTable,
    WordOrder,
)
from ldt.drivers.numbers import shortest_float32

DEFAULTS = ModbusProfileSettings()
INT_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}
ORDERS = st.tuples(st.sampled_from(ByteOrder), st.sampled_from(WordOrder))


def point(dtype: DataType, **kw: Any) -> ModbusPoint:
    table = kw.pop("table", RegisterTable.HOLDING)
    return ModbusPoint(name="p", table=table, address=0, type=dtype, **kw)


# ---------------------------------------------------------------- round trips


@given(st.sampled_from(list(INT_RANGES)), ORDERS, st.data())
def test_integers_round_trip_exactly(dtype: DataType, orders: Any, data: Any) -> None:
    lo, hi = INT_RANGES[dtype]
    value = data.draw(st.integers(lo, hi))
    p = point(dtype, byte_order=orders[0], word_order=orders[1])
    words = encode(p, DEFAULTS, value)
    assert len(words) == p.register_count
    assert all(0 <= w <= 0xFFFF for w in words)
    back = decode(p, DEFAULTS, words)
    assert back == value
    assert type(back) is int


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), ORDERS)
def test_float32_round_trips_exactly(value: float, orders: Any) -> None:
    p = point(DataType.FLOAT32, byte_order=orders[0], word_order=orders[1])
    back = decode(p, DEFAULTS, encode(p, DEFAULTS, value))
    # the same float32 bits, printed with the fewest digits (see shortest_float32)
    assert struct.pack(">f", back) == struct.pack(">f", value)


@given(st.floats(allow_nan=False, allow_infinity=False), ORDERS)
def test_float64_round_trips_exactly(value: float, orders: Any) -> None:
    p = point(DataType.FLOAT64, byte_order=orders[0], word_order=orders[1])
    assert decode(p, DEFAULTS, encode(p, DEFAULTS, value)) == value


@given(
    st.text(st.characters(min_codepoint=0x01, max_codepoint=0x7F), max_size=20).map(
        lambda s: s.rstrip(" ")
    ),
    st.sampled_from(ByteOrder),
    st.integers(10, 12),
)
def test_ascii_strings_round_trip(text: str, byte_order: ByteOrder, length: int) -> None:
    p = point(DataType.STRING, length=length, byte_order=byte_order)
    words = encode(p, DEFAULTS, text)
    assert len(words) == length
    assert decode(p, DEFAULTS, words) == text


@given(st.booleans(), st.sampled_from(RegisterTable))
def test_bools_round_trip(value: bool, table: RegisterTable) -> None:
    p = point(DataType.BOOL, table=table)
    assert decode(p, DEFAULTS, encode(p, DEFAULTS, value)) is value


@given(
    st.sampled_from([DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32]),
    st.data(),
)
def test_scaled_values_round_trip_to_the_nearest_step(dtype: DataType, data: Any) -> None:
    lo, hi = INT_RANGES[dtype]
    raw = data.draw(st.integers(lo, hi))
    p = point(dtype, scale=0.1, offset=-40.0)
    value = raw * 0.1 - 40.0
    assert encode(p, DEFAULTS, value) == encode(point(dtype), DEFAULTS, raw)
    back = decode(p, DEFAULTS, encode(p, DEFAULTS, value))
    assert isinstance(back, float)
    assert math.isclose(back, value, rel_tol=1e-12, abs_tol=1e-9)


@given(st.sampled_from(list(INT_RANGES)), ORDERS, st.data())
def test_integer_layout_matches_pymodbus(dtype: DataType, orders: Any, data: Any) -> None:
    """pymodbus's own converter (big byte order only) is an independent oracle."""
    lo, hi = INT_RANGES[dtype]
    value = data.draw(st.integers(lo, hi))
    p = point(dtype, word_order=orders[1])
    theirs = AsyncModbusTcpClient.convert_to_registers(
        value,
        getattr(AsyncModbusTcpClient.DATATYPE, dtype.name),
        word_order=orders[1].value,
    )
    assert encode(p, DEFAULTS, value) == theirs


# ---------------------------------------------------------- real-device vectors


@pytest.mark.parametrize(
    ("dtype", "byte_order", "word_order", "words", "expected"),
    [
        # float32 230.0, the Modbus-standard ABCD layout (Eastron SDM voltage)
        (DataType.FLOAT32, "big", "big", [0x4366, 0x0000], 230.0),
        # the same value word-swapped, "CDAB" (many Schneider/Carlo Gavazzi meters)
        (DataType.FLOAT32, "big", "little", [0x0000, 0x4366], 230.0),
        # byte-swapped "BADC"
        (DataType.FLOAT32, "little", "big", [0x6643, 0x0000], 230.0),
        # fully little-endian "DCBA"
        (DataType.FLOAT32, "little", "little", [0x0000, 0x6643], 230.0),
        (DataType.FLOAT32, "big", "big", [0x4248, 0x0000], 50.0),
        (DataType.INT32, "big", "big", [0xFFFF, 0xFFFF], -1),
        (DataType.INT32, "big", "little", [0xFFFE, 0xFFFF], -2),
        (DataType.UINT32, "big", "big", [0x0001, 0x0000], 65536),
        (DataType.UINT32, "big", "little", [0x0000, 0x0001], 65536),
        (DataType.INT16, "big", "big", [0xFFFF], -1),
        (DataType.INT16, "little", "big", [0x00FF], -256),
        (DataType.UINT16, "big", "big", [0xFFFF], 65535),
        (DataType.INT64, "big", "big", [0xFFFF] * 4, -1),
        (DataType.UINT64, "big", "little", [4, 3, 2, 1], 0x0001_0002_0003_0004),
        (DataType.FLOAT64, "big", "big", [0x3FF0, 0, 0, 0], 1.0),
        (DataType.BOOL, "big", "big", [0x0100], True),
        (DataType.BOOL, "big", "big", [0], False),
    ],
)
def test_known_vectors(
    dtype: DataType, byte_order: str, word_order: str, words: list[int], expected: object
) -> None:
    p = point(dtype, byte_order=byte_order, word_order=word_order)
    got = decode(p, DEFAULTS, words)
    assert got == expected
    assert type(got) is type(expected)
    assert encode(p, DEFAULTS, expected) == words or dtype is DataType.BOOL


def test_profile_defaults_apply_unless_the_point_overrides() -> None:
    cdab = ModbusProfileSettings(word_order=WordOrder.LITTLE)
    assert decode(point(DataType.FLOAT32), cdab, [0x0000, 0x4366]) == 230.0
    override = point(DataType.FLOAT32, word_order=WordOrder.BIG)
    assert decode(override, cdab, [0x4366, 0x0000]) == 230.0


def test_scale_and_offset() -> None:
    # SDM-style current in mA as uint16, and a temperature stored as (C + 40) * 10
    assert decode(point(DataType.UINT16, scale=0.001), DEFAULTS, [4250]) == pytest.approx(4.25)
    temp = point(DataType.INT16, scale=0.1, offset=-40.0)
    assert decode(temp, DEFAULTS, [615]) == pytest.approx(21.5)
    assert encode(temp, DEFAULTS, 21.5) == [615]
    assert isinstance(decode(point(DataType.INT16, scale=1.0, offset=1.0), DEFAULTS, [5]), float)


def test_strings_strip_nul_padding_and_trailing_spaces() -> None:
    p = point(DataType.STRING, length=4)
    assert decode(p, DEFAULTS, [0x5344, 0x4D31, 0x3230, 0x0000]) == "SDM120"  # "SDM120\0\0"
    assert decode(p, DEFAULTS, [0x5344, 0x4D31, 0x3230, 0x2020]) == "SDM120"  # "SDM120  "
    assert decode(p, DEFAULTS, [0x2041, 0x0042, 0x4300, 0]) == " A"  # ends at the first NUL
    swapped = point(DataType.STRING, length=1, byte_order=ByteOrder.LITTLE)
    assert decode(swapped, DEFAULTS, [0x4241]) == "AB"
    assert decode(p, DEFAULTS, [0x41FF, 0, 0, 0]) == "A\ufffd"  # non-ASCII -> replacement


# -------------------------------------------------------------- bad device data


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([0x7FC0, 0x0000], "device returned NaN"),
        ([0xFFC0, 0x0001], "device returned NaN"),
        ([0x7F80, 0x0000], "device returned infinity"),
        ([0xFF80, 0x0000], "device returned infinity"),
    ],
)
def test_nan_and_infinity_from_the_device_are_errors(words: list[int], message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(point(DataType.FLOAT32), DEFAULTS, words)


def test_nan_float64_is_an_error() -> None:
    words = list(struct.unpack(">4H", struct.pack(">d", math.nan)))
    with pytest.raises(CodecError, match="NaN"):
        decode(point(DataType.FLOAT64), DEFAULTS, words)


@pytest.mark.parametrize(
    ("dtype", "words"),
    [
        (DataType.FLOAT32, [0x4366]),
        (DataType.FLOAT32, [0x4366, 0, 0]),
        (DataType.INT16, []),
        (DataType.UINT64, [1, 2, 3]),
        (DataType.FLOAT64, [1, 2]),
        (DataType.UINT16, [0x10000]),
        (DataType.INT16, [-1]),
        (DataType.UINT16, [True]),
    ],
)
def test_malformed_registers_are_rejected(dtype: DataType, words: list[int]) -> None:
    with pytest.raises(CodecError) as info:
        decode(point(dtype), DEFAULTS, words)
    assert isinstance(info.value, DriverError)


def test_malformed_bits_are_rejected() -> None:
    coil = point(DataType.BOOL, table=RegisterTable.COIL)
    for bad in ([], [True, False], [2]):
        with pytest.raises(CodecError):
            decode(coil, DEFAULTS, bad)
    with pytest.raises(CodecError, match="needs 3 register"):
        decode(point(DataType.STRING, length=3), DEFAULTS, [0x4142])


@given(st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4), ORDERS)
def test_any_register_contents_decode_or_raise_codec_error(words: list[int], orders: Any) -> None:
    for dtype in (DataType.FLOAT32, DataType.FLOAT64, DataType.INT64, DataType.STRING):
        kw: dict[str, Any] = {"length": 4} if dtype is DataType.STRING else {}
        p = point(dtype, byte_order=orders[0], word_order=orders[1], **kw)
        try:
            value = decode(p, DEFAULTS, words[: p.register_count])
        except CodecError:
            assert dtype in (DataType.FLOAT32, DataType.FLOAT64)
            continue
        assert value is not None


# ------------------------------------------------------------------ bad writes


@pytest.mark.parametrize(
    ("p", "value", "message"),
    [
        (point(DataType.UINT16), 70000, r"out of range for uint16 \(0\.\.65535\)"),
        (point(DataType.UINT16), -1, "out of range"),
        (point(DataType.INT16), 32768, "out of range"),
        (point(DataType.INT64), 2**63, "out of range"),
        (point(DataType.UINT16, scale=0.1), 6553.6, r"raw 65536"),
        (point(DataType.FLOAT32), 1e39, "out of range for float32"),
        (point(DataType.FLOAT32), math.nan, "cannot write nan"),
        (point(DataType.FLOAT64), math.inf, "cannot write inf"),
        (point(DataType.INT16), "12", "not a number"),
        (point(DataType.INT16), True, "not a number"),
        (point(DataType.INT16, scale=0.0), 1, "scale 0"),
        (point(DataType.FLOAT32, scale=0.0), 1.5, "scale 0"),
        (point(DataType.BOOL), 2, "is not true or false"),
        (point(DataType.BOOL, table=RegisterTable.COIL), "on", "is not true or false"),
        (point(DataType.STRING, length=2), "ABCDE", "do not fit"),
        (point(DataType.STRING, length=2), "é", "not ASCII"),
        (point(DataType.STRING, length=2), "a\x00b", "NUL"),
        (point(DataType.STRING, length=2), 12, "not text"),
    ],
)
def test_unencodable_values_are_rejected(p: ModbusPoint, value: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        encode(p, DEFAULTS, value)


def test_a_value_an_integer_register_cannot_hold_is_refused_not_rounded() -> None:
    """Issue 15: 12.7 went to a uint16 register as 13 while the command said "wrote 12.7"."""
    with pytest.raises(CodecError, match=r"12\.6 would have to be rounded to 13"):
        encode(point(DataType.INT16), DEFAULTS, 12.6)
    with pytest.raises(CodecError, match=r"raw 234\.6, with scale 0\.01"):
        encode(point(DataType.UINT16, scale=0.01), DEFAULTS, 2.346)
    # what the scale makes whole is written exactly, binary fractions notwithstanding
    assert encode(point(DataType.UINT16, scale=0.1), DEFAULTS, 12.7) == [127]
    assert encode(point(DataType.UINT16, scale=0.01), DEFAULTS, 2.35) == [235]
    assert encode(point(DataType.INT16), DEFAULTS, 13.0) == [13]


def test_booleans_take_numbers_only_where_the_profile_says() -> None:
    with pytest.raises(CodecError, match="is not true or false"):
        encode(point(DataType.BOOL, table=RegisterTable.COIL), DEFAULTS, 1)
    lenient = ModbusProfileSettings(bool_numbers=True)
    assert encode(point(DataType.BOOL, table=RegisterTable.COIL), lenient, 1) == [1]
    assert encode(point(DataType.BOOL, table=RegisterTable.COIL), DEFAULTS, True) == [1]


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_is_shortened_to_the_same_bits(value: float) -> None:
    short = shortest_float32(value)
    assert struct.pack(">f", short) == struct.pack(">f", value)
    # at most 9 significant digits (what a float32 can need), whatever the exponent
    assert float(f"{short:.9g}") == short


def test_float32_known_register_prints_as_the_device_means_it() -> None:
    # 0x4365 0x12F7 is what an SDM120 sends for about 229.07 V
    (widened,) = struct.unpack(">f", bytes.fromhex("436512F7"))
    assert repr(widened) != repr(shortest_float32(widened))
    assert repr(shortest_float32(widened)) == "229.07408"
