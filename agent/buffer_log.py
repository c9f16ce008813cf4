"""The buffer's readings on disk: append-only segment files of compressed, checksummed records.

Why not SQLite rows (the buffer's store until schema 3): an SD card wears by the blocks it
is asked to write, and a synced SQLite commit of 100 readings wrote 3.8 WAL frames of
4 KiB + 24 bytes, misaligned, plus pruning, acks and checkpoints: 8x the payload
(README, "Ten years on an SD card"). A flush here is one record appended to one file and
one ``fdatasync``: the card sees the tail block rewritten, and little else.

Layout: ``DIR/<first seq, 20 digits>.seg``. A segment is a run of records::

    header (36 bytes, little-endian): magic b"LDR1", flags u8, 3 zero bytes,
        body length u32, first seq u64, count u32, newest observed_at i64, crc32 u32
    body: the rows (``encode_rows``), zlib level 1; sealed with AES-256-GCM after
        compression when the buffer has a key (flag 2; body = nonce | ciphertext)

The CRC covers the header before it and the body. A record's seqs are ``first seq ..
first seq + count - 1``; records follow in seq order, and a record may start after a gap
only in a migrated buffer (those seqs were resolved already).

Segments are files of a fixed size, written in place (``pwrite`` at the end of the valid
records, then ``fdatasync``). A file that grows changes its size with every sync, and the
file system journals that: on ext4 more 4 KiB blocks per flush, written by the journal
thread, which a process's ``write_bytes`` never shows. So a new segment is filled with
zeros once, and a segment whose seqs are all resolved is kept as a spare (at most
``SPARES``) and reused under its new name instead of being deleted.

Torn writes and reused files. ``open`` reads the newest segment record by record: a record
ends the valid data when its header is not one, its CRC fails, or its seqs do not continue
the segment's (the first record starts at the seq in the file's name, each next one after
the previous): zeros, a torn record, or a record of the file's previous life. Nothing after
that point was accepted (its ``append`` never returned), so its seqs are assigned again and
the next append writes over it. Older segments were synced before a newer one was
started, so a bad record before their known last seq is corruption: reported when read,
never skipped silently.

Memory: the record index (offsets) is kept for the segment being written and, on demand,
for the two segments read most recently; the rest is on disk. A full 1 GiB buffer is
about 250 segments, each known by its file name.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import sys
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from ldt.agent.value_cipher import ValueCipher

__all__ = [
    "LogCorruptError",
    "LogRow",
    "SealedElsewhereError",
    "SegmentLog",
    "encode_rows",
]

MAGIC: Final = b"LDR1"
HEADER: Final = struct.Struct("<4sB3xIQIqI")
_CRC_AT: Final = HEADER.size - 4
_ZLIB: Final = 1
_SEALED: Final = 2
_SUFFIX: Final = ".seg"
_READ_CACHE: Final = 2
SPARES: Final = 2
"""Resolved segments kept to be written again, so that steady state creates no file."""
_SPARE_SUFFIX: Final = ".spare"
_SEGMENT_FLOOR: Final = 16 << 10
_ZEROS: Final = bytes(4096)  # page-sized writes: 1 MiB ones make 1 MiB page-cache folios,
# and every later small write would then dirty (and write back) a whole MiB
_MAX_BODY: Final = 64 << 20  # a record larger than this is corruption, not data

LogRow = tuple[int, int, int, Any, "str | None"]
"""(series id, observed_at ms, quality code, value, reason), as a record holds them."""


class LogCorruptError(Exception):
    """A record that should be whole is not (a damaged card, a file changed by hand)."""


class SealedElsewhereError(LogCorruptError):
    """A whole record sealed with another key (the key was replaced while it waited):
    ``first_seq`` .. ``last_seq`` can never be sent."""

    def __init__(self, text: str, first_seq: int, last_seq: int) -> None:
        super().__init__(text)
        self.first_seq = first_seq
        self.last_seq = last_seq


def _ints(kind: str, values: Sequence[int]) -> bytes:
    arr = array(kind, values)
    if sys.byteorder == "big":
        arr.byteswap()
    return arr.tobytes()


def _from(kind: str, raw: bytes) -> list[int]:
    arr = array(kind)
    arr.frombytes(raw)
    if sys.byteorder == "big":
        arr.byteswap()
    return arr.tolist()


def encode_rows(rows: Sequence[LogRow], resolved: Sequence[tuple[int, int]] = ()) -> bytes:
    """Rows as a record body before compression: columns, so zlib finds the repeats.

    ``resolved``: the buffer's resolved seq ranges when the record was written, so that
    acknowledgements ride in the next record instead of a commit of their own.

    ``<III`` (length of the values' JSON, of the reasons' JSON, 0 when none has one, of
    the resolved ranges' JSON), the
    series ids (u32 each), observed_at as deltas from the previous (i64; a device's points
    share one time, so mostly zeros), the quality codes (one byte each), then the values
    and the reasons as JSON arrays (orjson: exact floats, and a structured value as is).
    """
    series = [r[0] for r in rows]
    stamps = [r[1] for r in rows]
    deltas = [stamps[0], *(b - a for a, b in itertools.pairwise(stamps))]
    values = orjson.dumps([r[3] for r in rows])
    reasons = [r[4] for r in rows]
    texts = orjson.dumps(reasons) if any(reason is not None for reason in reasons) else b""
    acks = orjson.dumps(list(resolved)) if resolved else b""
    return b"".join(
        (
            struct.pack("<III", len(values), len(texts), len(acks)),
            _ints("I", series),
            _ints("q", deltas),
            bytes(r[2] for r in rows),
            values,
            texts,
            acks,
        )
    )


def _decode(body: bytes, count: int) -> tuple[list[LogRow], list[tuple[int, int]]]:
    """The inverse of ``encode_rows``; ``LogCorruptError`` if the body does not fit."""
    try:
        n_values, n_texts, n_acks = struct.unpack_from("<III", body)
        at = 12
        series = _from("I", body[at : at + 4 * count])
        at += 4 * count
        deltas = _from("q", body[at : at + 8 * count])
        at += 8 * count
        tags = body[at : at + count]
        at += count
        values = orjson.loads(body[at : at + n_values])
        at += n_values
        reasons = orjson.loads(body[at : at + n_texts]) if n_texts else [None] * count
        at += n_texts
        acks = orjson.loads(body[at : at + n_acks]) if n_acks else []
        if at + n_acks != len(body) or not len(series) == len(deltas) == len(tags) == count:
            raise LogCorruptError("a record's columns do not add up")
        if len(values) != count or len(reasons) != count:
            raise LogCorruptError("a record's columns do not add up")
    except (struct.error, orjson.JSONDecodeError, ValueError) as exc:
        raise LogCorruptError(f"a record cannot be decoded: {exc}") from exc
    stamps: list[int] = []
    ts = 0
    for i, d in enumerate(deltas):
        ts = d if i == 0 else ts + d
        stamps.append(ts)
    resolved = [(int(lo), int(hi)) for lo, hi in acks]
    return list(zip(series, stamps, tags, values, reasons, strict=True)), resolved


@dataclass(slots=True)
class _Record:
    first_seq: int
    count: int
    offset: int
    length: int  # header + body
    max_ts: int

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1


@dataclass(slots=True)
class _Segment:
    first_seq: int
    path: Path
    size: int  # where the valid records end (the next append's offset)
    capacity: int = 0  # the file's size on disk
    records: list[_Record] | None = None  # the index, when loaded
    last_seq: int = 0  # known for the active segment, else from the next one's name


class SegmentLog:
    """The segment files of one buffer. Use from one thread, like the rest of the buffer."""

    def __init__(
        self,
        folder: Path,
        *,
        segment_bytes: int,
        durable: bool = True,
        cipher: ValueCipher | None = None,
    ) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.durable = durable
        self._cipher = cipher
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the active (last) segment, open for appending
        self._cache: OrderedDict[Path, list[_Record]] = OrderedDict()
        self._spares: list[Path] = []
        self.appended_bytes = 0
        """Bytes written by ``append`` since open (for benchmarks)."""
        self.appends = 0
        """Records appended since open (each one ``fdatasync`` when durable)."""

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Find the segments and the spares, find where the newest one's valid records end,
        and open it for writing."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        segments: list[_Segment] = []
        self._spares = []
        for path in self.folder.iterdir():
            if path.suffix == _SPARE_SUFFIX:
                self._spares.append(path)
                continue
            if path.suffix != _SUFFIX:
                continue
            try:
                first = int(path.stem)
            except ValueError:
                continue
            size = path.stat().st_size
            segments.append(_Segment(first_seq=first, path=path, size=size, capacity=size))
        segments.sort(key=lambda s: s.first_seq)
        self._segments = segments
        for older, newer in itertools.pairwise(segments):
            older.last_seq = newer.first_seq - 1
        if segments:
            active = segments[-1]
            records, end = self._scan(active, torn_ok=True)
            active.size = end
            active.records = records
            active.last_seq = records[-1].last_seq if records else active.first_seq - 1
            self._fd = os.open(active.path, os.O_RDWR)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._cache.clear()

    # -- what is there --------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest seq stored (0 when empty)."""
        if not self._segments:
            return 0
        return max(self._segments[-1].last_seq, 0)

    @property
    def first_seq(self) -> int | None:
        return self._segments[0].first_seq if self._segments else None

    def segment_size(self, free: int | None = None) -> int:
        """The size of the next new segment: ``segment_bytes``, or an eighth of the file
        system's free space (``free``, else asked) when that is less (a small or nearly
        full card)."""
        if free is None:
            try:
                fs = os.statvfs(self.folder)
            except OSError:
                return self.segment_bytes
            free = fs.f_bavail * fs.f_frsize
        return max(_SEGMENT_FLOOR, min(self.segment_bytes, free // 8 // 4096 * 4096))

    def total_bytes(self) -> int:
        """The files' size on disk: segments (written or not) and spares."""
        spares = 0
        for path in self._spares:
            with contextlib.suppress(FileNotFoundError):
                spares += path.stat().st_size
        return sum(s.capacity for s in self._segments) + spares

    def segment_ranges(self) -> list[tuple[int, int]]:
        """(first seq, last seq) of each segment, oldest first (last may be < first: empty)."""
        return [(s.first_seq, s.last_seq) for s in self._segments]

    def records(self, index: int) -> list[tuple[int, int, int]]:
        """(first seq, last seq, newest observed_at) of each record of segment ``index``."""
        return [(r.first_seq, r.last_seq, r.max_ts) for r in self._index(self._segments[index])]

    # -- writing --------------------------------------------------------------------------

    def append(
        self, first_seq: int, rows: Sequence[LogRow], resolved: Sequence[tuple[int, int]] = ()
    ) -> None:
        """Write ``rows`` as one record with seqs from ``first_seq`` (and the ``resolved``
        ranges); durable on return (when ``durable``). ``OSError`` when the disk fails:
        nothing is half-appended then, since the next append or ``open`` writes over it."""
        body = zlib.compress(encode_rows(rows, resolved), 1)
        flags = _ZLIB
        if self._cipher is not None:
            body = self._cipher.seal_bytes(body)
            flags |= _SEALED
        max_ts = max(r[1] for r in rows)
        head = HEADER.pack(MAGIC, flags, len(body), first_seq, len(rows), max_ts, 0)
        crc = zlib.crc32(body, zlib.crc32(head[:_CRC_AT]))
        record = head[:_CRC_AT] + struct.pack("<I", crc) + body
        active = self._segments[-1] if self._segments else None
        if active is None or active.size + len(record) > active.capacity:
            active = self._new_segment(first_seq, len(record))
        assert self._fd is not None
        offset = active.size
        self._write(record, offset)  # a failed write is cut by the next one, or by ``open``
        active.size += len(record)
        self.appended_bytes += len(record)
        self.appends += 1
        if active.records is not None:
            active.records.append(_Record(first_seq, len(rows), offset, len(record), max_ts))
        active.last_seq = first_seq + len(rows) - 1

    def _write(self, record: bytes, offset: int) -> None:
        assert self._fd is not None
        written = os.pwrite(self._fd, record, offset)
        if written != len(record):
            raise OSError(f"short write ({written} of {len(record)} bytes)")
        if self.durable:
            os.fdatasync(self._fd)

    def _new_segment(self, first_seq: int, record_bytes: int) -> _Segment:
        """The next segment: a spare renamed, or a new file of zeros (once per file). It is
        ready before the current one is let go, so a failure (a full disk) changes nothing.
        An empty current segment (after ``rotate``, or a record too large for it) is
        replaced: its file is removed first, since the new one takes the same name."""
        if self._segments and self._segments[-1].size == 0:
            empty = self._segments.pop()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            empty.path.unlink(missing_ok=True)
            if self._segments:  # write on in the previous one until the new one is ready
                prev = self._segments[-1]
                prev.last_seq = max(prev.last_seq, empty.first_seq - 1)
                self._fd = os.open(prev.path, os.O_RDWR)
        path = self.folder / f"{first_seq:020d}{_SUFFIX}"
        capacity = max(self.segment_size(), record_bytes)
        spare = self._spares.pop() if self._spares and record_bytes <= self.segment_bytes else None
        if spare is not None:
            os.rename(spare, path)
            try:
                capacity = path.stat().st_size
                fd = os.open(path, os.O_RDWR)
            except OSError:
                path.unlink(missing_ok=True)
                raise
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                left = capacity
                while left > 0:
                    left -= os.write(fd, _ZEROS[: min(left, len(_ZEROS))])
                os.fsync(fd)
            except OSError:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
        self._sync_folder()
        if self._fd is not None:
            os.close(self._fd)
        if self._segments:
            prev = self._segments[-1]
            if prev.records is not None:
                self._remember(prev.path, prev.records)
            prev.records = None
        segment = _Segment(first_seq=first_seq, path=path, size=0, capacity=capacity, records=[])
        segment.last_seq = first_seq - 1
        self._segments.append(segment)
        self._fd = fd
        return segment

    def _sync_folder(self) -> None:
        if not self.durable:
            return
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def drop_spares(self) -> None:
        """Delete the spare files (the buffer is full: room goes to readings first)."""
        spares, self._spares = self._spares, []
        for path in spares:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if spares:
            self._sync_folder()

    def delete_through(self, seq: int, *, keep_spares: bool = True) -> int:
        """Delete the segments whose seqs are all <= ``seq`` (never the one being written);
        returns how many. The caller made their seqs' resolution durable first. With
        ``keep_spares`` (not when the buffer is full) up to ``SPARES`` become spares."""
        gone = 0
        while len(self._segments) > 1 and self._segments[0].last_seq <= seq:
            segment = self._segments.pop(0)
            self._cache.pop(segment.path, None)
            if (
                keep_spares
                and len(self._spares) < SPARES
                and segment.capacity == self.segment_bytes
            ):
                spare = segment.path.with_suffix(_SPARE_SUFFIX)
                os.rename(segment.path, spare)
                self._spares.append(spare)
            else:
                with contextlib.suppress(FileNotFoundError):
                    segment.path.unlink()
            gone += 1
        if gone:
            self._sync_folder()
        return gone

    def rotate(self) -> None:
        """Start a new segment at the next append (so that the current one can be dropped)."""
        if self._segments and self._segments[-1].size > 0:
            self._new_segment(self._segments[-1].last_seq + 1, 0)

    # -- reading --------------------------------------------------------------------------

    def read(self, lo: int, hi: int, limit: int) -> list[tuple[int, LogRow]]:
        """Up to ``limit`` (seq, row) pairs with lo <= seq <= hi, ascending."""
        out: list[tuple[int, LogRow]] = []
        for segment in self._segments:
            if len(out) >= limit:
                break
            if segment.last_seq < lo or segment.first_seq > hi:
                continue
            records = self._index(segment)
            wanted = [r for r in records if r.last_seq >= lo and r.first_seq <= hi]
            if not wanted:
                continue
            with open(segment.path, "rb") as fh:
                for rec in wanted:
                    fh.seek(rec.offset)
                    rows = self._rows(fh.read(rec.length), rec, segment.path)
                    start = max(lo, rec.first_seq)
                    end = min(hi, rec.last_seq)
                    for seq in range(start, end + 1):
                        out.append((seq, rows[seq - rec.first_seq]))
                        if len(out) >= limit:
                            return out
        return out

    def newest_resolved(self) -> list[tuple[int, int]]:
        """The resolved ranges the newest record carries ([] when none)."""
        for segment in reversed(self._segments):
            records = self._index(segment) if segment.size else []
            if records:
                rec = records[-1]
                with open(segment.path, "rb") as fh:
                    fh.seek(rec.offset)
                    return self._open_record(fh.read(rec.length), rec, segment.path)[1]
        return []

    def _rows(self, raw: bytes, rec: _Record, path: Path) -> list[LogRow]:
        return self._open_record(raw, rec, path)[0]

    def _open_record(
        self, raw: bytes, rec: _Record, path: Path
    ) -> tuple[list[LogRow], list[tuple[int, int]]]:
        head = raw[: HEADER.size]
        body = raw[HEADER.size :]
        _, flags, _, _, _, _, crc = HEADER.unpack(head)
        if zlib.crc32(body, zlib.crc32(head[:_CRC_AT])) != crc:
            raise LogCorruptError(f"{path.name}: the record at byte {rec.offset} is damaged")
        if flags & _SEALED:
            from ldt.agent.value_cipher import CipherError

            if self._cipher is None:
                why = "sealed readings, and no encryption_key_file is set"
                raise SealedElsewhereError(why, rec.first_seq, rec.last_seq)
            try:
                body = self._cipher.open_bytes(body)
            except CipherError as exc:
                raise SealedElsewhereError(str(exc), rec.first_seq, rec.last_seq) from exc
        try:
            plain = zlib.decompress(body) if flags & _ZLIB else body
        except zlib.error as exc:
            raise LogCorruptError(f"{path.name}: a record does not decompress: {exc}") from exc
        return _decode(plain, rec.count)

    def _index(self, segment: _Segment) -> list[_Record]:
        if segment.records is not None:
            return segment.records
        cached = self._cache.get(segment.path)
        if cached is not None:
            self._cache.move_to_end(segment.path)
            return cached
        records, _end = self._scan(segment, torn_ok=False)
        self._remember(segment.path, records)
        return records

    def _remember(self, path: Path, records: list[_Record]) -> None:
        self._cache[path] = records
        while len(self._cache) > _READ_CACHE:
            self._cache.popitem(last=False)

    def _scan(self, segment: _Segment, *, torn_ok: bool) -> tuple[list[_Record], int]:
        """The records of a segment and where the valid ones end (module docstring). For an
        older segment (not ``torn_ok``), ending before its known last seq is corruption."""
        records: list[_Record] = []
        offset = 0
        path = segment.path
        with open(path, "rb") as fh:
            while True:
                if not torn_ok and records and records[-1].last_seq >= segment.last_seq:
                    break
                head = fh.read(HEADER.size)
                problem = None
                if len(head) < HEADER.size or head == bytes(HEADER.size):
                    break  # the end of the file, or zeros never written: the end
                magic, _flags, length, first, count, max_ts, crc = HEADER.unpack(head)
                expected = records[-1].last_seq + 1 if records else segment.first_seq
                if magic == MAGIC and first < expected:
                    break  # a record of the file's previous life: the end
                if magic != MAGIC or length > _MAX_BODY or count == 0:
                    problem = "a record header that is not one"
                elif not records and first != expected:
                    problem = "a first record that does not start the segment"
                else:
                    body = fh.read(length)
                    if len(body) < length:
                        problem = "a short record"
                    elif zlib.crc32(body, zlib.crc32(head[:_CRC_AT])) != crc:
                        problem = "a record whose checksum fails"
                if problem is not None:
                    if torn_ok:
                        break
                    raise LogCorruptError(f"{path.name}: {problem} at byte {offset}")
                records.append(_Record(first, count, offset, HEADER.size + length, max_ts))
                offset += HEADER.size + length
        return records, offset
