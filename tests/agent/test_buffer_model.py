"""Property test: random appends, acks, takes, prunes and reopens against a set-based model."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ldt.agent.buffer import Buffer
from ldt.contract import SeriesInfo
from ldt.reading import Quality

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 40)),
        st.tuples(st.just("ack"), st.lists(st.integers(0, 10_000), max_size=30)),
        st.tuples(st.just("ack_live"), st.integers(1, 30)),
        st.tuples(st.just("ack_backfill"), st.integers(1, 30)),
        st.tuples(st.just("prune"), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(ops=_ops)
def test_buffer_matches_model(ops: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "b.db"
        buf = Buffer(path=path, max_bytes=1 << 30, max_age_s=1e9)
        buf.open()
        try:
            sid = buf.series_id(SeriesInfo(entity_id="urn:x:m", entity_type="Device", attr="v"))
            pending: set[int] = set()
            acked_top = 0
            last = 0
            for op, arg in ops:
                if op == "append":
                    assert isinstance(arg, int)
                    seqs = buf.append([(sid, i, i, Quality.GOOD, None) for i in range(arg)])
                    assert seqs.start == last + 1
                    last = seqs[-1]
                    pending |= set(seqs)
                elif op == "ack":
                    assert isinstance(arg, list)
                    chosen = [s for s in arg if 1 <= s <= last]
                    buf.ack(chosen)
                    pending -= set(chosen)
                    acked_top = max([acked_top, *chosen])
                elif op in ("ack_live", "ack_backfill"):
                    assert isinstance(arg, int)
                    live = buf.take_live(arg)
                    expect_live = sorted(s for s in pending if s > acked_top)[-arg:]
                    assert [r.seq for r in live] == expect_live
                    below = live[0].seq if live else None
                    back = buf.take_backfill(arg, below_seq=below)
                    expect_back = sorted(s for s in pending if below is None or s < below)[:arg]
                    assert [r.seq for r in back] == expect_back
                    batch = live if op == "ack_live" else back
                    buf.ack(r.seq for r in batch)
                    pending -= {r.seq for r in batch}
                    acked_top = max([acked_top, *(r.seq for r in batch)])
                elif op == "prune":
                    assert buf.enforce_limits(now_ms=0) == 0
                else:
                    buf.close()
                    buf.open()
                stats = buf.stats()
                assert stats.pending == len(pending)
                assert stats.last_seq == last
                assert stats.acked_total == last - len(pending)
            assert [r.seq for r in buf.take_backfill(100_000)] == sorted(pending)
        finally:
            buf.close()
