"""The durable buffer through its public surface, on real SQLite files."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from ldt.agent.buffer import Buffer, BufferError, BufferInputError, BufferRow
from ldt.contract import SeriesInfo
from ldt.reading import Quality

GIB = 1 << 30
DAY_S = 86400.0


def _info(n: int = 0) -> SeriesInfo:
    return SeriesInfo(
        entity_id=f"urn:ngsi-ld:Device:m{n}", entity_type="Device", attr="activePower", unit="WTT"
    )


def _rows(sid: int, n: int, t0: int = 1_000, value: float = 1.5) -> list[BufferRow]:
    return [(sid, t0 + i, value + i, Quality.GOOD, None) for i in range(n)]


def _make(path: Path, **kw: object) -> Buffer:
    """A closed buffer with test defaults; use it as a context manager."""
    args: dict[str, object] = {"max_bytes": GIB, "max_age_s": DAY_S} | kw
    return Buffer(path=path, **args)  # type: ignore[arg-type]


def test_values_round_trip_with_their_types(tmp_path: Path) -> None:
    with Buffer(path=tmp_path / "b.db", max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        rows: list[BufferRow] = [
            (sid, 1, True, Quality.GOOD, None),
            (sid, 2, False, Quality.STALE, None),
            (sid, 3, 1, Quality.GOOD, None),
            (sid, 4, 0, Quality.GOOD, None),
            (sid, 5, 2.0, Quality.GOOD, None),
            (sid, 6, -(1 << 63), Quality.GOOD, None),
            (sid, 7, "on", Quality.GOOD, None),
            (sid, 8, None, Quality.BAD, "timeout after 2 s"),
        ]
        seqs = buf.append(rows)
        got = buf.take_backfill(100)
    assert [r.seq for r in got] == list(seqs)
    for row, r in zip(rows, got, strict=True):
        assert (r.series_id, r.observed_at_ms, r.quality, r.reason) == (
            row[0],
            row[1],
            row[3],
            row[4],
        )
        assert r.value == row[2]
        assert type(r.value) is type(row[2])


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        1 << 64,
        b"raw",
        [float("nan")],
        {"a": object()},
        ["x" * 20_000],
        object(),
    ],
    ids=["nan", "inf", "big", "bytes", "nan-in-list", "obj-in-dict", "huge-list", "obj"],
)
def test_bad_value_writes_nothing(tmp_path: Path, value: object) -> None:
    with Buffer(path=tmp_path / "b.db", max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        good = _rows(sid, 3)
        with pytest.raises(BufferInputError):
            buf.append([*good, (sid, 10, value, Quality.GOOD, None)])  # type: ignore[list-item]
        assert buf.stats().pending == 0
        assert list(buf.append(good)) == [1, 2, 3]


def test_structured_values_come_back_as_they_went_in(tmp_path: Path) -> None:
    """A DateTime and JSON data (``ldt.contract.wire_value``) are stored as JSON text
    and read back as the same dict or list, across a reopen; a text that looks like JSON
    stays text."""
    instant = {"@type": "DateTime", "@value": "2026-01-02T03:04:05.678Z"}
    values: list[object] = [instant, [1.5, 2.25, 3.0], {"low": 0.0, "high": 10.5}, "[1]", True]
    path = tmp_path / "b.db"
    with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        buf.append([(sid, 10 + i, v, Quality.GOOD, None) for i, v in enumerate(values)])  # type: ignore[misc]
    with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
        got = [r.value for r in buf.take_live(10)]
    assert got == values
    assert isinstance(got[3], str)
    assert got[4] is True


def test_unknown_series_and_bad_rows_are_refused(tmp_path: Path) -> None:
    with Buffer(path=tmp_path / "b.db", max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        with pytest.raises(BufferInputError, match="unknown series"):
            buf.append([(sid + 1, 1, 1.0, Quality.GOOD, None)])
        with pytest.raises(BufferInputError, match="observed_at_ms"):
            buf.append([(sid, -1, 1.0, Quality.GOOD, None)])
        with pytest.raises(BufferInputError, match="malformed"):
            buf.append([(sid, 1, 1.0, "excellent", None)])  # type: ignore[list-item]
        with pytest.raises(BufferInputError, match="unknown series"):
            buf.series([sid + 5])
        assert buf.stats().last_seq == 0


def test_series_ids_are_durable(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
        ids = [buf.series_id(_info(n)) for n in range(5)]
        assert buf.series_id(_info(3)) == ids[3]
        assert len(set(ids)) == 5
    with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
        assert buf.series_id(_info(2)) == ids[2]
        assert buf.series(ids) == {i: _info(n) for n, i in enumerate(ids)}
        assert buf.series_id(_info(9)) not in ids


def test_seqs_monotonic_across_restart_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    seen: list[int] = []
    for cycle in range(4):
        with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
            sid = buf.series_id(_info())
            seqs = buf.append(_rows(sid, 50))
            seen.extend(seqs)
            # ack everything (including the top seq) and prune the rows away
            buf.ack(range(1, seqs[-1] + 1))
            buf.enforce_limits(now_ms=2_000)
            assert buf.stats().pending == 0
            assert buf.take_live(10) == []
            assert buf.stats().last_seq == seqs[-1], cycle
    assert seen == list(range(1, 201))


def test_outage_lanes(tmp_path: Path) -> None:
    """After an outage: live lane = newest N, backfill = oldest ascending, no overlap."""
    with Buffer(path=tmp_path / "b.db", max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        for _ in range(10):
            buf.append(_rows(sid, 1_000))
        live = buf.take_live(500)
        assert [r.seq for r in live] == list(range(9_501, 10_001))
        back = buf.take_backfill(2_000, below_seq=live[0].seq)
        assert [r.seq for r in back] == list(range(1, 2_001))
        buf.ack(r.seq for r in live)
        buf.ack(r.seq for r in back)
        # new readings arrive; the live lane only sees those above the highest ack
        fresh = buf.append(_rows(sid, 30))
        live2 = buf.take_live(500)
        assert [r.seq for r in live2] == list(fresh)
        buf.ack(fresh)
        assert buf.take_live(500) == []
        # backfill continues where it stopped and never returns acked seqs
        sent = {r.seq for r in live} | {r.seq for r in back} | set(fresh)
        remaining: list[int] = []
        while batch := buf.take_backfill(3_000):
            assert [r.seq for r in batch] == sorted(r.seq for r in batch)
            assert not sent & {r.seq for r in batch}
            remaining.extend(r.seq for r in batch)
            buf.ack(r.seq for r in batch)
        assert remaining == list(range(2_001, 9_501))
        stats = buf.stats()
        assert stats.pending == 0
        assert stats.acked_total == 10_030 == stats.appended_total


def test_backfill_skips_acked_ranges_in_the_middle(tmp_path: Path) -> None:
    with Buffer(path=tmp_path / "b.db", max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        buf.append(_rows(sid, 100))
        buf.ack([*range(10, 20), *range(30, 40), 50, 51, 52])
        got = [r.seq for r in buf.take_backfill(1_000)]
        expected = [s for s in range(1, 101) if not (10 <= s < 20 or 30 <= s < 40 or 50 <= s <= 52)]
        assert got == expected
        assert [r.seq for r in buf.take_backfill(5, below_seq=12)] == [1, 2, 3, 4, 5]
        assert [r.seq for r in buf.take_backfill(50, below_seq=32)] == [
            *range(1, 10),
            *range(20, 30),
        ]
        assert buf.stats().pending == len(expected)


def test_ack_ranges_merge_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        buf.append(_rows(sid, 1_000))
        for lo in range(0, 1_000, 100):  # ten disjoint runs, then their gaps
            buf.ack(range(lo + 1, lo + 51))
        for lo in range(0, 1_000, 100):
            buf.ack(range(lo + 51, lo + 101))
        assert buf.stats().pending == 0
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT lo, hi FROM resolved").fetchall() == [(1, 1_000)]
    finally:
        con.close()
    with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
        assert buf.take_backfill(10) == []
        assert buf.stats().acked_total == 1_000


def test_ack_of_unassigned_seq_is_refused(tmp_path: Path) -> None:
    with Buffer(path=tmp_path / "b.db", max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        buf.append(_rows(sid, 5))
        with pytest.raises(BufferInputError, match="cannot ack"):
            buf.ack([4, 6])
        with pytest.raises(BufferInputError):
            buf.ack([0])
        assert buf.stats().pending == 5
        buf.ack([])


def test_age_limit_drops_oldest_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with _make(path, max_age_s=10.0) as buf:
        sid = buf.series_id(_info())
        buf.append(_rows(sid, 100, t0=0))  # ts 0..99 ms
        buf.append(_rows(sid, 100, t0=20_000))  # ts 20 s..
        buf.ack([150])
        dropped = buf.enforce_limits(now_ms=10_050)  # cutoff 50 ms: ts 0..49 go
        assert dropped == 50
        assert buf.take_backfill(1)[0].observed_at_ms == 50
        assert buf.stats().oldest_pending_ms == 50
        assert buf.enforce_limits(now_ms=10_050) == 0
    with _make(path, max_age_s=10.0) as buf:
        stats = buf.stats()
        assert (stats.dropped_age, stats.acked_total, stats.pending) == (50, 1, 149)
        assert 150 not in {r.seq for r in buf.take_backfill(1_000)}


def _fill(buf: Buffer, sid: int, n_batches: int) -> None:
    """~6 MB of text that does not compress much (the buffer's records are zlib'ed)."""
    rng = random.Random(n_batches)
    for b in range(n_batches):
        buf.append(
            [(sid, b * 1_000 + i, rng.randbytes(150).hex(), Quality.GOOD, None)
             for i in range(1_000)]
        )  # fmt: skip


def test_size_limit_drop_oldest(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    max_bytes = 2 << 20
    with _make(path, max_bytes=max_bytes) as buf:
        sid = buf.series_id(_info())
        _fill(buf, sid, 20)  # ~4.5 MB of payload into 2 MiB
        dropped = buf.enforce_limits(now_ms=0)
        stats = buf.stats()
        assert stats.dropped_full > 0
        assert stats.pending + stats.dropped_full == 20_000
        assert dropped <= stats.dropped_full
        # the newest readings survive; the oldest went
        assert buf.take_live(1)[0].seq == 20_000
        assert buf.take_backfill(1)[0].seq == stats.dropped_full + 1
        assert path.stat().st_size <= max_bytes
    with _make(path, max_bytes=max_bytes) as buf:
        assert buf.stats().dropped_full == stats.dropped_full


def test_size_limit_drop_newest(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    max_bytes = 2 << 20
    with _make(path, max_bytes=max_bytes, drop_policy="drop_newest") as buf:
        sid = buf.series_id(_info())
        _fill(buf, sid, 20)
        assert buf.enforce_limits(now_ms=0) == 0
        stats = buf.stats()
        assert stats.dropped_full > 0
        assert stats.last_seq + stats.dropped_full == 20_000
        # history is intact from seq 1 up
        assert buf.take_backfill(1)[0].seq == 1
        assert stats.pending == stats.last_seq
        assert buf.append(_rows(sid, 10)) == range(stats.last_seq + 1, stats.last_seq + 1)
        # once the uplink acks, room comes back and appends are accepted again
        buf.ack(range(1, stats.last_seq + 1))
        assert len(buf.append(_rows(sid, 10))) == 10
    with _make(path, max_bytes=max_bytes, drop_policy="drop_newest") as buf:
        assert buf.stats().dropped_full == stats.dropped_full + 10


def test_corrupt_file_is_refused_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    path.write_bytes(b"this is not a database, just 100 bytes of junk " * 100)
    buf = Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S)
    with pytest.raises(BufferError, match="corrupt"):
        buf.open()
    assert path.read_bytes().startswith(b"this is not a database")


def test_corrupt_pages_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
        sid = buf.series_id(_info())
        for _ in range(5):
            buf.append(_rows(sid, 2_000))
    data = bytearray(path.read_bytes())
    page = 4096
    for off in range(2 * page, len(data), page):  # smash every page after the schema
        data[off : off + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    buf = Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S)

    def read_all() -> None:
        with buf:
            buf.take_backfill(10_000)

    with pytest.raises(BufferError, match="corrupt"):
        read_all()


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(BufferError, match="not an ldt buffer"):
        Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S).open()


def test_second_process_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S) as buf:
        buf.series_id(_info())
        other = Buffer(path=path, max_bytes=GIB, max_age_s=DAY_S)
        with pytest.raises(BufferError, match="in use by another process"):
            other.open()


def test_calls_need_an_open_buffer(tmp_path: Path) -> None:
    buf = Buffer(path=tmp_path / "b.db", max_bytes=GIB, max_age_s=DAY_S)
    with pytest.raises(BufferError, match="not open"):
        buf.stats()
    assert not (tmp_path / "b.db").exists()  # the constructor did no I/O


def test_a_schema_2_buffer_gains_provenance_and_keeps_its_series(tmp_path: Path) -> None:
    """Buffers from before models (no ``series.provenance``) open; derived series store it."""
    import sqlite3

    from ldt.contract import SeriesInfo

    path = tmp_path / "v2.db"
    plain = SeriesInfo(entity_id="urn:x:y", entity_type="Device", attr="a", unit="WTT")
    with Buffer(path=path, max_bytes=1 << 30, max_age_s=1e9) as buf:
        sid = buf.series_id(plain)
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE series DROP COLUMN provenance")
    con.execute("PRAGMA user_version=2")
    con.commit()
    con.close()
    derived = plain.model_copy(update={"attr": "aForecast", "provenance": "model m 1.0.0"})
    with Buffer(path=path, max_bytes=1 << 30, max_age_s=1e9) as buf:
        assert buf.series_id(plain) == sid
        did = buf.series_id(derived)
    with Buffer(path=path, max_bytes=1 << 30, max_age_s=1e9) as buf:
        assert buf.series([sid, did]) == {sid: plain, did: derived}


def test_a_schema_1_buffer_is_migrated_and_keeps_its_readings(tmp_path: Path) -> None:
    """Buffers written by the first release (no ``rejected`` table) open and keep every row."""
    import sqlite3

    from ldt.contract import SeriesInfo
    from ldt.reading import Quality

    path = tmp_path / "old.db"
    with Buffer(path=path, max_bytes=1 << 30, max_age_s=1e9) as buf:
        sid = buf.series_id(SeriesInfo(entity_id="urn:x:y", entity_type="Device", attr="a"))
        buf.append([(sid, 1, 1.5, Quality.GOOD, None), (sid, 2, 2.5, Quality.GOOD, None)])
    con = sqlite3.connect(path)
    con.execute("DROP TABLE rejected")
    con.execute("DELETE FROM counters WHERE name = 'rejected'")
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    with Buffer(path=path, max_bytes=1 << 30, max_age_s=1e9) as buf:
        assert [r.value for r in buf.take_backfill(10)] == [1.5, 2.5]
        assert buf.quarantine([1], "test") == 1
        assert buf.stats().rejected == 1
        assert buf.stats().pending == 1
