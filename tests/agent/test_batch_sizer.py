"""The backfill batch size follows the link: shrinks on a slow or failing one, grows back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from ldt.agent.batch_sizer import BatchSizer
from ldt.agent.transport import TransportError
from ldt.agent.uplink import Uplink
from ldt.contract import BatchAck
from tests.agent.test_uplink import _buffer_with


def test_sizes_halve_on_slow_or_failed_batches_and_double_on_fast_full_ones() -> None:
    sizer = BatchSizer(maximum=5000, minimum=100, target_s=5.0)
    assert sizer.size == 5000
    sizer.sent(5000, 12.0)
    assert sizer.size == 2500
    sizer.failed()
    assert sizer.size == 1250
    for _ in range(10):
        sizer.failed()
    assert sizer.size == 100
    sizer.sent(40, 0.1)  # a small tail says nothing about the link
    assert sizer.size == 100
    sizer.sent(100, 0.1)
    assert sizer.size == 200
    for _ in range(10):
        sizer.sent(sizer.size, 0.1)
    assert sizer.size == 5000
    sizer.sent(5000, 3.0)  # within the target: unchanged
    assert sizer.size == 5000


class SlowLink:
    """A transport that moves 2,000 readings/s and drops every third batch (a weak cell)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.seqs: list[int] = []
        self.calls = 0

    async def send(self, body: bytes) -> BatchAck:
        batch = orjson.loads(body)
        rows = batch["readings"]
        self.calls += 1
        await asyncio.sleep(len(rows) / 2000)
        if self.calls % 3 == 0:
            raise TransportError("connection reset mid-batch")
        self.sizes.append(len(rows))
        self.seqs += [r[0] for r in rows]
        return BatchAck(
            gateway_id=batch["gateway_id"],
            accepted=len(rows),
            duplicates=0,
            max_seq=max(r[0] for r in rows),
        )

    async def aclose(self) -> None:
        return None


async def test_the_uplink_shrinks_batches_on_a_slow_link_and_loses_nothing(
    tmp_path: Path,
) -> None:
    abuf = await _buffer_with(tmp_path / "b.db", [float(i) for i in range(3000)])
    link = SlowLink()
    uplink = Uplink(gateway_id="gw-up", buffer=abuf, transport=link, batch_max=2000, live_max=1)
    uplink.sizer = BatchSizer(maximum=2000, minimum=50, target_s=0.1)
    try:
        while (await abuf.stats()).pending:
            try:
                await uplink.cycle()
            except TransportError:
                continue
    finally:
        await abuf.close()
    assert sorted(link.seqs) == list(range(1, 3001))  # each exactly once
    backfill = [n for n in link.sizes if n > 1]  # the live lane sends 1 per cycle here
    assert backfill[0] == 2000
    assert max(backfill[-3:]) <= 200
    assert uplink.sizer.size <= 200
