"""Group commit (``Coalescer``): merged calls, per-caller results, failures kept apart."""

from __future__ import annotations

import asyncio

import pytest

from ldt.cloud.store.coalesce import Coalescer


class _Recorder:
    """A ``run`` that records each merged call, answers item * 10, fails on item < 0."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()

    async def run(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        await self.gate.wait()
        if any(i < 0 for i in items):
            raise ValueError(f"bad item in {items}")
        return [i * 10 for i in items]


async def test_callers_waiting_behind_a_write_share_the_next_one() -> None:
    rec = _Recorder()
    merger: Coalescer[int, int] = Coalescer(rec.run, max_items=100)
    first = asyncio.create_task(merger.submit([1]))
    await asyncio.sleep(0)  # the first call is running (held at the gate)
    others = [asyncio.create_task(merger.submit([n, n + 1])) for n in (2, 4, 6)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await first == [10]
    assert [await t for t in others] == [[20, 30], [40, 50], [60, 70]]
    assert rec.calls == [[1], [2, 3, 4, 5, 6, 7]]


async def test_max_items_bounds_a_merged_call_but_never_splits_one() -> None:
    rec = _Recorder()
    merger: Coalescer[int, int] = Coalescer(rec.run, max_items=3)
    first = asyncio.create_task(merger.submit([0]))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(merger.submit(items)) for items in ([1, 2], [3], [4, 5, 6, 7])]
    await asyncio.sleep(0)
    rec.gate.set()
    await first
    assert [await t for t in queued] == [[10, 20], [30], [40, 50, 60, 70]]
    assert rec.calls == [[0], [1, 2, 3], [4, 5, 6, 7]]


async def test_a_failing_caller_does_not_fail_the_others_merged_with_it() -> None:
    rec = _Recorder()
    merger: Coalescer[int, int] = Coalescer(rec.run, max_items=100)
    first = asyncio.create_task(merger.submit([1]))
    await asyncio.sleep(0)
    good = asyncio.create_task(merger.submit([2]))
    bad = asyncio.create_task(merger.submit([-1]))
    also_good = asyncio.create_task(merger.submit([3]))
    await asyncio.sleep(0)
    rec.gate.set()
    await first
    assert await good == [20]
    assert await also_good == [30]
    with pytest.raises(ValueError, match="bad item"):
        await bad
    # the merged attempt, then each caller alone
    assert rec.calls == [[1], [2, -1, 3], [2], [-1], [3]]


async def test_drain_waits_for_queued_calls() -> None:
    rec = _Recorder()
    merger: Coalescer[int, int] = Coalescer(rec.run, max_items=100)
    task = asyncio.create_task(merger.submit([5]))
    await asyncio.sleep(0)
    drained = asyncio.create_task(merger.drain())
    await asyncio.sleep(0)
    assert not drained.done()
    rec.gate.set()
    await drained
    assert task.done()
    assert task.result() == [50]
