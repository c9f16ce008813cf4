"""Power cuts in the middle of a record (issue 16): the buffer's segment files are written in
place, one record per flush, and a cut can leave any prefix of the newest record on disk
(the rest of its bytes: zeros never written, or a reused file's old data), a file that
ends early, or a record whose bytes are damaged. At every byte offset of the last record,
each of these must open without error, keep every reading of the earlier records (their
``append`` returned: they were accepted), take new readings after them, and keep them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ldt.agent.buffer import Buffer, BufferRow
from ldt.contract import SeriesInfo
from ldt.reading import Quality

GIB = 1 << 30


def _buffer(path: Path) -> Buffer:
    return Buffer(path=path, max_bytes=GIB, max_age_s=1e9)


def _rows(sid: int, n: int, base: int) -> list[BufferRow]:
    return [(sid, base + i, base + i + 0.25, Quality.GOOD, None) for i in range(n)]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int, int]:
    """A buffer of three records (100 readings each): (folder, start and end of the last
    record in its segment file, last seq of the second record)."""
    folder = tmp_path_factory.mktemp("torn")
    with _buffer(folder / "b.db") as buf:
        sid = buf.series_id(SeriesInfo(entity_id="urn:a:b", entity_type="T", attr="x"))
        for k in range(3):
            buf.append(_rows(sid, 100, 1000 * k))
        records = buf.log._segments[-1].records
        assert records is not None
        assert len(records) == 3
        last = records[-1]
        return folder, last.offset, last.offset + last.length, records[1].last_seq


def _segment(folder: Path) -> Path:
    (seg,) = (folder / "b.db-segments").glob("*.seg")
    return seg


def _damage(folder: Path, start: int, cut: int, end: int, how: str) -> None:
    seg = _segment(folder)
    data = bytearray(seg.read_bytes())
    if how == "zeros":  # the write stopped at cut: the rest was never written
        data[cut:end] = bytes(end - cut)
    elif how == "stale":  # a reused file: the rest is an older life's bytes
        data[cut:end] = bytes((i * 37 + 11) % 256 for i in range(end - cut))
    elif how == "short":  # the file itself ends at cut
        del data[cut:]
    elif how == "flip":  # one damaged byte in the record
        data[cut] ^= 0x55
    seg.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["zeros", "stale", "short", "flip"])
def test_a_torn_last_record_at_every_offset_loses_nothing_accepted(
    tmp_path: Path, written: tuple[Path, int, int, int], how: str
) -> None:
    source, start, end, kept = written
    for cut in range(start, end):
        folder = tmp_path / f"{how}-{cut}"
        shutil.copytree(source, folder)
        _damage(folder, start, cut, end, how)
        with _buffer(folder / "b.db") as buf:
            got = buf.take_backfill(1000)
            seqs = [r.seq for r in got]
            # every reading of the two earlier records, exactly once, with its value
            assert seqs[:kept] == list(range(1, kept + 1)), (how, cut)
            assert [r.value for r in got[:kept]] == [
                k * 1000 + i + 0.25 for k in range(2) for i in range(100)
            ]
            # the torn record is gone whole (a flip anywhere in it fails its CRC)
            assert seqs == list(range(1, kept + 1)), (how, cut)
            new = buf.append(_rows(1, 10, 5000))
            assert new == range(kept + 1, kept + 11)
        with _buffer(folder / "b.db") as buf:
            again = [r.seq for r in buf.take_backfill(1000)]
            assert again == list(range(1, kept + 11)), (how, cut)
        shutil.rmtree(folder)


def test_reused_segments_never_show_their_old_readings(tmp_path: Path) -> None:
    """Resolved segments become spares and are written again under a new name: after a
    reopen, only the new life's readings are there, and seqs continue."""
    path = tmp_path / "b.db"
    buf = Buffer(path=path, max_bytes=1 << 20, max_age_s=1e9)  # 64 KiB segments
    with buf:
        sid = buf.series_id(SeriesInfo(entity_id="urn:a:b", entity_type="T", attr="x"))
        for k in range(1500):  # ~6 segments of records, acked as they go
            seqs = buf.append(_rows(sid, 100, 100 * k))
            buf.ack(seqs)
            buf.enforce_limits(now_ms=0)
        files = [p.name for p in (tmp_path / "b.db-segments").iterdir()]
        written = buf.log.appended_bytes
        last = seqs[-1]
        pending = buf.append(_rows(sid, 5, 99_000))
    assert written > 5 * buf.log.segment_bytes
    assert len(files) <= 1 + 2  # the segment being written and at most two spares
    with Buffer(path=path, max_bytes=1 << 20, max_age_s=1e9) as buf:
        got = buf.take_backfill(10_000)
        assert [r.seq for r in got] == list(pending)
        assert [r.value for r in got] == [99_000 + i + 0.25 for i in range(5)]
        assert buf.stats().last_seq == last + 5


_SCHEMA_3 = (
    "CREATE TABLE readings (seq INTEGER PRIMARY KEY, series INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, tag INTEGER NOT NULL, value, reason TEXT)",
    "CREATE TABLE resolved (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL)",
    "CREATE TABLE series (id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL,"
    " entity_type TEXT NOT NULL, attr TEXT NOT NULL, unit TEXT, provenance TEXT)",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE rejected (seq INTEGER PRIMARY KEY, series INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, tag INTEGER NOT NULL, value, reason TEXT,"
    " rejected_at INTEGER NOT NULL, why TEXT NOT NULL)",
)


def test_a_schema_3_buffer_moves_its_pending_rows_into_segments(tmp_path: Path) -> None:
    """The previous release kept readings as rows. At the first start of this one, the
    pending rows become records (types kept: a bool's tag bit, a structure's JSON), the
    acked ones are not copied, the table goes, and seqs continue. A segment left by a move
    that was cut short (a power cut during the first start) is thrown away and redone."""
    import sqlite3

    from ldt.agent.buffer import APPLICATION_ID

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    for stmt in _SCHEMA_3:
        con.execute(stmt)
    con.execute("INSERT INTO series VALUES (1, 'urn:a:b', 'T', 'x', NULL, NULL)")
    con.executemany(
        "INSERT INTO counters VALUES (?, ?)",
        [("dropped_age", 0), ("dropped_full_rows", 0), ("refused_full", 0), ("rejected", 0)],
    )
    rows = [
        (1, 1, 10, 0, 1.5, None),  # acked below: not copied
        (2, 1, 11, 0, 2.5, None),  # acked
        (3, 1, 12, 0 | 4, 1, None),  # a bool true (tag bit 4)
        (4, 1, 13, 1, None, "timeout after 2 s"),  # bad
        (5, 1, 14, 2, "on", None),  # stale text
        (6, 1, 15, 0 | 8, '{"@type":"DateTime","@value":"2026-01-02T03:04:05.678Z"}', None),
        (8, 1, 17, 0, 7, None),  # seq 7 was acked and its row pruned: a gap
    ]
    con.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.executemany("INSERT INTO resolved VALUES (?, ?)", [(1, 2), (7, 7)])
    con.execute(f"PRAGMA application_id={APPLICATION_ID}")
    con.execute("PRAGMA user_version=3")
    con.commit()
    con.close()
    leftover = tmp_path / "old.db-segments"
    leftover.mkdir()
    (leftover / f"{3:020d}.seg").write_bytes(b"half of an interrupted move" * 10)

    with _buffer(path) as buf:
        got = buf.take_backfill(100)
        assert [r.seq for r in got] == [3, 4, 5, 6, 8]
        assert [r.value for r in got] == [
            True,
            None,
            "on",
            {"@type": "DateTime", "@value": "2026-01-02T03:04:05.678Z"},
            7,
        ]
        assert got[0].value is True
        assert [r.quality for r in got] == [
            Quality.GOOD, Quality.BAD, Quality.STALE, Quality.GOOD, Quality.GOOD,
        ]  # fmt: skip
        assert got[1].reason == "timeout after 2 s"
        assert buf.append(_rows(1, 2, 100)) == range(9, 11)
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    version = con.execute("PRAGMA user_version").fetchone()[0]
    con.close()
    assert "readings" not in tables
    assert version == 4
    with _buffer(path) as buf:
        assert [r.seq for r in buf.take_backfill(100)] == [3, 4, 5, 6, 8, 9, 10]


# -- found by the review of the segment buffer ---------------------------------------------


def test_a_changed_key_never_stops_housekeeping(tmp_path: Path) -> None:
    """Records sealed with a key that is gone are set aside; ``enforce_limits`` does not
    fail on them (it did, every 30 s: the agent restarted in a loop)."""
    import os as _os

    from ldt.agent.value_cipher import ValueCipher

    path = tmp_path / "b.db"
    with Buffer(
        path=path, max_bytes=GIB, max_age_s=1e9, cipher=ValueCipher(_os.urandom(32))
    ) as buf:
        sid = buf.series_id(SeriesInfo(entity_id="urn:a:b", entity_type="T", attr="x"))
        buf.ack(buf.append(_rows(sid, 10, 0)))
        buf.append(_rows(sid, 10, 100))
    with Buffer(
        path=path, max_bytes=GIB, max_age_s=1e9, cipher=ValueCipher(_os.urandom(32))
    ) as buf:
        assert buf.enforce_limits(now_ms=50) == 0
        assert buf.take_backfill(100) == []
        assert buf.stats().rejected == 10
        assert buf.stats().pending == 0


def test_acks_survive_a_crash_after_segments_were_reused(tmp_path: Path) -> None:
    """Segments are reused only once the file (not only the newest record) holds their
    resolution: a crash after more scattered acks than a record carries must not bring back
    seqs whose segment is gone as 'pending'."""
    path = tmp_path / "b.db"
    buf = Buffer(path=path, max_bytes=1 << 20, max_age_s=1e9)  # 64 KiB segments
    buf.open()
    sid = buf.series_id(SeriesInfo(entity_id="urn:a:b", entity_type="T", attr="x"))
    for k in range(800):
        buf.ack(buf.append(_rows(sid, 100, 100 * k)))
        if k % 50 == 0:
            buf.enforce_limits(now_ms=0)
    tail = buf.append(_rows(sid, 200, 900_000))
    buf.ack(list(tail)[::2])  # 100 scattered acks: more ranges than a record carries
    buf.append(_rows(sid, 1, 999_000))
    crashed = tmp_path / "crashed"  # what the disk holds now: a kill -9 here
    crashed.mkdir()
    for name in ("b.db", "b.db-wal"):  # the bookkeeping file and its WAL, as they are
        if (tmp_path / name).exists():
            shutil.copy(tmp_path / name, crashed / name)
    shutil.copytree(tmp_path / "b.db-segments", crashed / "b.db-segments")
    buf.close()
    with _buffer(crashed / "b.db") as again:
        pending = again.stats().pending
        got = again.take_backfill(10_000)
    assert pending == len(got)  # every pending seq has its reading: none is a phantom
    # acks since the file's last commit may be forgotten (they are sent again, and the
    # cloud counts duplicates); never those of a segment already reused
    assert all(r.seq > 70_000 for r in got)


def test_spares_give_way_before_readings_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer(path=path, max_bytes=1 << 20, max_age_s=1e9) as buf:
        sid = buf.series_id(SeriesInfo(entity_id="urn:a:b", entity_type="T", attr="x"))
        for k in range(300):  # leave spares behind
            buf.ack(buf.append(_rows(sid, 100, 100 * k)))
            buf.enforce_limits(now_ms=0)
        assert list((tmp_path / "b.db-segments").glob("*.spare"))
        per_segment = 0
        while buf.stats().dropped_full == 0:
            buf.append(_rows(sid, 100, 0))
            per_segment += 100
        # the first drop takes one segment's readings, not three (spares went first)
        first = buf.stats().dropped_full
        assert first <= buf.log.segment_bytes // 200 * 100
        assert not list((tmp_path / "b.db-segments").glob("*.spare"))


def test_a_record_larger_than_a_segment_after_a_rotation(tmp_path: Path) -> None:
    with Buffer(path=tmp_path / "b.db", max_bytes=1 << 20, max_age_s=1e9) as buf:
        sid = buf.series_id(SeriesInfo(entity_id="urn:a:b", entity_type="T", attr="x"))
        buf.append(_rows(sid, 10, 0))
        buf.log.rotate()  # an empty segment is now the one being written
        big = [(sid, i, "x" * 1000 + str(i), Quality.GOOD, None) for i in range(200)]
        seqs = buf.append(big)  # about 200 KB: larger than a 64 KiB segment
        assert len(seqs) == 200
        assert [r.seq for r in buf.take_backfill(1000)] == list(range(1, 211))
