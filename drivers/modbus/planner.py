"""Which Modbus requests read a set of points: pure, no I/O.

A request costs a round trip (tens of ms on a serial gateway, and many meters
answer one request at a time), so points of the same table that sit close
together are read in one block, spanning at most ``max_gap`` unused
registers (bits, for coils and discrete inputs) between them and never more
than the profile's per-read limit. A point is never split across blocks;
overlapping points (one register read as two types) share a block.

The plan is greedy in address order: a block grows while the next point fits
the gap and size limits. For points that do not overlap this gives the fewest
blocks possible (each block reaches as far as any block starting there could).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ldt.drivers.errors import DriverError
from ldt.drivers.modbus.config import ModbusPoint, ModbusProfileSettings, RegisterTable

__all__ = ["ReadBlock", "plan_reads", "slice_point"]

_TABLE_ORDER = {t: i for i, t in enumerate(RegisterTable)}


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: ``count`` registers (or bits) of ``table`` from ``address``.

    ``points`` are the points it answers, in address order.
    """

    table: RegisterTable
    address: int
    count: int
    points: tuple[ModbusPoint, ...]

    @property
    def end(self) -> int:
        """One past the last address read."""
        return self.address + self.count

    def describe(self) -> str:
        """``holding 0..31``: the table and inclusive address range, for messages."""
        return f"{self.table.value} {self.address}..{self.end - 1}"


def _limit(table: RegisterTable, settings: ModbusProfileSettings) -> int:
    return settings.max_bits_per_read if table.is_bit else settings.max_registers_per_read


def plan_reads(points: Iterable[ModbusPoint], settings: ModbusProfileSettings) -> list[ReadBlock]:
    """The blocks that read every point once, sorted by (table, address).

    Duplicate points are read once. Raises ``DriverError`` if a point alone is
    wider than the profile's per-read limit (a profile error: it can never be read).
    """
    by_table: dict[RegisterTable, list[ModbusPoint]] = {}
    for p in dict.fromkeys(points):
        limit = _limit(p.table, settings)
        if p.register_count > limit:
            raise DriverError(
                f"point {p.name!r} spans {p.register_count} registers but the profile "
                f"reads at most {limit} per request: raise max_registers_per_read"
            )
        by_table.setdefault(p.table, []).append(p)
    blocks: list[ReadBlock] = []
    for table in sorted(by_table, key=_TABLE_ORDER.__getitem__):
        blocks.extend(_plan_table(table, by_table[table], settings))
    return blocks


def _plan_table(
    table: RegisterTable, points: list[ModbusPoint], settings: ModbusProfileSettings
) -> list[ReadBlock]:
    limit = _limit(table, settings)
    ordered = sorted(points, key=lambda p: (p.address, p.register_count))
    blocks: list[ReadBlock] = []
    start = ordered[0].address
    end = start + ordered[0].register_count
    members = [ordered[0]]
    for p in ordered[1:]:
        p_end = p.address + p.register_count
        new_end = max(end, p_end)
        if p.address - end <= settings.max_gap and new_end - start <= limit:
            members.append(p)
            end = new_end
            continue
        blocks.append(ReadBlock(table, start, end - start, tuple(members)))
        start, end, members = p.address, p_end, [p]
    blocks.append(ReadBlock(table, start, end - start, tuple(members)))
    return blocks


def slice_point(block: ReadBlock, point: ModbusPoint, words: Sequence[int]) -> Sequence[int]:
    """The registers (or bits) of ``point`` out of the answer to ``block``.

    ``words`` may be longer than the block (coil answers are padded to whole
    bytes). Raises ``DriverError`` when the point lies outside the block or the
    answer is too short to contain it.
    """
    first = point.address - block.address
    last = first + point.register_count
    if point.table is not block.table or first < 0 or last > block.count:
        raise DriverError(f"point {point.name!r} is not inside block {block.describe()}")
    if len(words) < last:
        raise DriverError(
            f"device answered {len(words)} values for {block.describe()} ({block.count} requested)"
        )
    return words[first:last]
