"""The read planner: coalescing rules as properties, and a real meter's map as an example."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldt.drivers.errors import DriverError
from ldt.drivers.modbus.config import DataType, ModbusPoint, ModbusProfileSettings, RegisterTable
from ldt.drivers.modbus.planner import ReadBlock, plan_reads, slice_point


def reg(address: int, dtype: DataType = DataType.FLOAT32, **kw: Any) -> ModbusPoint:
    table = kw.pop("table", RegisterTable.INPUT)
    return ModbusPoint(
        name=f"p{address}_{dtype.value}", table=table, address=address, type=dtype, **kw
    )


def bit(address: int, table: RegisterTable = RegisterTable.COIL) -> ModbusPoint:
    return ModbusPoint(name=f"b{address}", table=table, address=address, type=DataType.BOOL)


def spans(blocks: list[ReadBlock]) -> list[tuple[str, int, int]]:
    return [(b.table.value, b.address, b.end - 1) for b in blocks]


def test_sdm120_map_coalesces_into_three_reads() -> None:
    points = [reg(a) for a in (0, 6, 12, 18, 24, 30, 70, 72, 74, 342)]
    blocks = plan_reads(points, ModbusProfileSettings(max_gap=8))
    assert spans(blocks) == [("input", 0, 31), ("input", 70, 75), ("input", 342, 343)]
    assert [len(b.points) for b in blocks] == [6, 3, 1]


def test_max_gap_zero_joins_only_adjacent_points() -> None:
    points = [reg(0), reg(2), reg(6)]
    assert spans(plan_reads(points, ModbusProfileSettings(max_gap=0))) == [
        ("input", 0, 3),
        ("input", 6, 7),
    ]


def test_the_per_read_limit_splits_blocks_without_splitting_points() -> None:
    points = [reg(a) for a in range(0, 20, 2)]  # 0..19 contiguous float32s
    blocks = plan_reads(points, ModbusProfileSettings(max_registers_per_read=7))
    assert spans(blocks) == [
        ("input", 0, 5),
        ("input", 6, 11),
        ("input", 12, 17),
        ("input", 18, 19),
    ]


def test_tables_are_planned_separately_and_sorted() -> None:
    points = [
        reg(10, table=RegisterTable.HOLDING),
        bit(3),
        reg(0),
        bit(1, RegisterTable.DISCRETE),
        reg(0, table=RegisterTable.HOLDING),
        bit(0),
    ]
    assert spans(plan_reads(points, ModbusProfileSettings())) == [
        ("holding", 0, 11),
        ("input", 0, 1),
        ("coil", 0, 3),
        ("discrete", 1, 1),
    ]


def test_overlapping_points_share_a_block_and_duplicates_are_read_once() -> None:
    as_float = reg(0)
    as_words = reg(1, DataType.UINT16)
    as_long = reg(0, DataType.UINT64)
    blocks = plan_reads([as_float, as_words, as_long, as_float], ModbusProfileSettings())
    assert spans(blocks) == [("input", 0, 3)]
    assert set(blocks[0].points) == {as_float, as_words, as_long}
    assert len(blocks[0].points) == 3


def test_no_points_no_blocks() -> None:
    assert plan_reads([], ModbusProfileSettings()) == []


def test_a_point_wider_than_the_read_limit_is_a_profile_error() -> None:
    name = reg(0, DataType.STRING, length=20)
    with pytest.raises(DriverError, match="max_registers_per_read"):
        plan_reads([name], ModbusProfileSettings(max_registers_per_read=10))


def test_slice_point_picks_the_point_out_of_the_answer() -> None:
    a, b = reg(70), reg(74)
    (block,) = plan_reads([a, b], ModbusProfileSettings())
    words = [1, 2, 3, 4, 5, 6]
    assert list(slice_point(block, a, words)) == [1, 2]
    assert list(slice_point(block, b, words)) == [5, 6]
    with pytest.raises(DriverError, match="answered 5 values"):
        slice_point(block, b, words[:5])
    with pytest.raises(DriverError, match="not inside"):
        slice_point(block, reg(80), words)
    with pytest.raises(DriverError, match="not inside"):
        slice_point(block, reg(70, table=RegisterTable.HOLDING), words)


def test_coil_answers_padded_to_whole_bytes_still_slice() -> None:
    (block,) = plan_reads([bit(0), bit(2)], ModbusProfileSettings())
    assert block.count == 3
    padded = [True, False, True, False, False, False, False, False]
    assert list(slice_point(block, bit(2), padded)) == [True]


# ------------------------------------------------------------------ properties

TYPES = st.sampled_from(
    [DataType.UINT16, DataType.INT32, DataType.FLOAT32, DataType.UINT64, DataType.FLOAT64]
)
SETTINGS = st.builds(
    ModbusProfileSettings,
    max_registers_per_read=st.integers(4, 125),
    max_bits_per_read=st.integers(1, 64),
    max_gap=st.integers(0, 20),
)


@st.composite
def point_sets(draw: st.DrawFn) -> list[ModbusPoint]:
    n = draw(st.integers(0, 40))
    out: list[ModbusPoint] = []
    for i in range(n):
        table = draw(st.sampled_from(RegisterTable))
        address = draw(st.integers(0, 400))
        dtype = DataType.BOOL if table.is_bit else draw(TYPES)
        out.append(ModbusPoint(name=f"p{i}", table=table, address=address, type=dtype))
    return out


@given(point_sets(), SETTINGS)
def test_every_point_is_in_exactly_one_block_within_the_limits(
    points: list[ModbusPoint], settings: ModbusProfileSettings
) -> None:
    blocks = plan_reads(points, settings)
    for p in points:
        owners = [b for b in blocks if p in b.points]
        assert len(owners) == 1
        (b,) = owners
        assert b.table is p.table
        assert b.address <= p.address
        assert p.address + p.register_count <= b.end
    for b in blocks:
        limit = settings.max_bits_per_read if b.table.is_bit else settings.max_registers_per_read
        assert 1 <= b.count <= limit
        # the block starts at its first point and ends at its last register
        assert b.address == min(p.address for p in b.points)
        assert b.end == max(p.address + p.register_count for p in b.points)
        # no run of unused registers inside the block is longer than max_gap
        used: set[int] = set()
        for p in b.points:
            used.update(range(p.address, p.address + p.register_count))
        run = 0
        for a in range(b.address, b.end):
            run = 0 if a in used else run + 1
            assert run <= settings.max_gap
    keys = [(list(RegisterTable).index(b.table), b.address) for b in blocks]
    assert keys == sorted(keys)


@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=30),
    st.integers(0, 10),
    st.integers(2, 40),
)
def test_block_count_is_minimal_for_unit_points(gaps: list[int], max_gap: int, limit: int) -> None:
    """One-register points: the fewest blocks is computable by dynamic programming; match it."""
    addresses: list[int] = []
    a = 0
    for g in gaps:
        addresses.append(a)
        a += 1 + g
    settings = ModbusProfileSettings(max_gap=max_gap, max_registers_per_read=limit)
    points = [reg(x, DataType.UINT16) for x in addresses]
    n = len(addresses)
    best = [0] + [n + 1] * n  # best[i]: fewest blocks covering the first i points
    for i in range(1, n + 1):
        for j in range(i):  # points j..i-1 in one block
            span = addresses[i - 1] - addresses[j] + 1
            ok = span <= limit and all(
                addresses[k + 1] - addresses[k] - 1 <= max_gap for k in range(j, i - 1)
            )
            if ok:
                best[i] = min(best[i], best[j] + 1)
    assert len(plan_reads(points, settings)) == best[n]
