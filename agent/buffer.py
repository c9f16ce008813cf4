"""The durable store-and-forward buffer: readings by sequence number, in segment files.

This is the gateway's promise to a city: a reading the buffer accepted (its
``append`` returned) is never lost — not by ``kill -9``, not by a power cut —
until the cloud acknowledged it or an explicit, counted limit dropped it.

Two stores, each for what it does best (schema 4; README, "Ten years on an SD card"):

- The readings: ``ldt.agent.buffer_log``. One ``append`` (a writer's flush) is one
  compressed, checksummed record appended to a segment file, and one ``fdatasync``. A
  torn write is cut at the next open. Acknowledged readings are never rewritten: a
  segment is deleted whole once every seq in it is resolved.
- The bookkeeping: a small SQLite file (``path``): the series, the resolved ranges
  (acknowledged or dropped seqs, merged), the counters and the rejected readings.

Acknowledgements are kept in memory and written at most every ``ACK_PERSIST_S`` (and
before any segment is deleted, and at close). A power cut may therefore forget the acks of
the last few seconds: those readings are sent again, and the cloud, which applies a batch
idempotently by (gateway, seq), counts them as duplicates. Nothing accepted is lost; an
ack is not worth an fsync of its own.

Durability. ``synchronous="full"`` (the default) syncs each record before ``append``
returns; ``normal`` leaves it to the kernel (survives a crash of the process, not of the
machine).

Size. ``max_bytes`` bounds the segments plus the bookkeeping file (given ``max_bytes``/8,
at most 1 MiB), and so does the file system's free space: room for two more segments and
the bookkeeping's WAL is kept free, so the drop policy applies before a write could fail
on a full disk. Appends check the bound; past it ``drop_oldest`` drops the oldest
segment's unsent readings (a segment is 1/16 of the budget, at most 4 MiB, less on a
small file system) and ``drop_newest`` refuses the new ones. Drops are counted in the
same commit as their resolution; refusals are written at most every 5 s. A WARNING says
when the buffer fills and when it has room again (below 90 %), with the counts.

Seqs are never reused: the highest assigned is ``max(newest record, resolved ranges)``,
and segments are only deleted after their seqs' resolution is durable.

Threads. Use from the thread that called ``open`` only (``sqlite3`` enforces it);
``AsyncBuffer`` in ``buffer_writer`` runs every call in one dedicated thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from ldt.agent.buffer_log import LogCorruptError, LogRow, SealedElsewhereError, SegmentLog
from ldt.contract import SeriesInfo, WireValue
from ldt.private_files import create_private
from ldt.reading import Quality, json_text

if TYPE_CHECKING:
    from ldt.agent.value_cipher import ValueCipher

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "Buffer",
    "BufferError",
    "BufferInputError",
    "BufferRow",
    "BufferStats",
    "BufferedReading",
    "check_value",
]

APPLICATION_ID = 0x4C445442
"""``PRAGMA application_id`` of a buffer file ("LDTB"): tells ours from other SQLite files."""
SCHEMA_VERSION = 4
"""``PRAGMA user_version``; a file from a newer release is refused, not guessed at."""

BufferRow = tuple[int, int, WireValue, Quality, "str | None"]
"""What ``append`` takes: (series_id, observed_at_ms, value, quality, reason)."""

_log = logging.getLogger("ldt.agent.buffer")

ACK_PERSIST_S = 300.0
"""The bookkeeping file takes the resolved ranges at least this often while no record is
appended (an idle gateway); otherwise they ride in each record (module docstring)."""
_RIDE_MAX = 64
"""Resolved ranges a record carries at most; more (rare) are committed to the file."""
_BUSY_TIMEOUT_S = 2.0
_WAL_BUDGET_MAX = 1 << 20  # the bookkeeping's WAL: a few pages per commit, rare commits
_COUNTS_PERSIST_S = 5.0  # refusals are counted in memory and written at most this often
_SEGMENT_MAX = 4 << 20
_SEGMENT_MIN = 64 << 10
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
_QUALITY_CODE = {Quality.GOOD: 0, Quality.BAD: 1, Quality.STALE: 2}
_CODE_QUALITY = {v: k for k, v in _QUALITY_CODE.items()}
_BOOL_BIT = 4
_JSON_BIT = 8
"""The value column holds JSON text (a DateTime or a structure), not a string reading."""

_REJECTED_TABLE = """CREATE TABLE IF NOT EXISTS rejected (
        seq INTEGER PRIMARY KEY,
        series INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        tag INTEGER NOT NULL,
        value,
        reason TEXT,
        rejected_at INTEGER NOT NULL,
        why TEXT NOT NULL
    )"""
"""Readings the cloud refused as data (not as identity): kept for an operator, never resent."""

_SCHEMA = (
    "CREATE TABLE resolved (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL)",
    """CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        entity_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        attr TEXT NOT NULL,
        unit TEXT,
        provenance TEXT
    )""",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    _REJECTED_TABLE,
)
_COUNTERS = ("dropped_age", "dropped_full_rows", "refused_full", "rejected")


class BufferError(Exception):
    """The buffer failed; the message says what and what to do. Root of this layer."""


class BufferInputError(BufferError, ValueError):
    """A row handed to ``append`` (or a reading to the writer) cannot be stored as given."""


@dataclass(frozen=True, slots=True)
class BufferedReading:
    """A reading as stored: ``seq`` is the buffer's sequence number, unique per gateway."""

    seq: int
    series_id: int
    observed_at_ms: int
    value: WireValue
    quality: Quality
    reason: str | None


@dataclass(frozen=True, slots=True)
class BufferStats:
    """A snapshot for logs and the fleet view.

    ``pending``: readings not yet acknowledged nor dropped. ``oldest_pending_ms``:
    ``observed_at_ms`` of the lowest pending seq. ``db_bytes``: the file and its
    WAL on disk. ``appended_total``: readings ever accepted (the last seq).
    ``dropped_full`` counts both readings deleted by ``drop_oldest`` and
    readings refused by ``drop_newest``.
    """

    pending: int
    oldest_pending_ms: int | None
    last_seq: int
    db_bytes: int
    appended_total: int
    acked_total: int
    dropped_full: int
    dropped_age: int
    rejected: int = 0
    """Readings the cloud refused as data, set aside in the ``rejected`` table."""


def _stored(tag: int, value: bool | int | float | str | None) -> WireValue:
    """A value column as it was appended (the tag says what a 0/1 or a text was)."""
    if tag & _BOOL_BIT:
        return bool(value)
    if tag & _JSON_BIT and isinstance(value, str):
        decoded: dict[str, object] | list[object] = json.loads(value)
        return decoded
    return value


def check_value(value: object) -> None:
    """Raise ``BufferInputError`` unless ``value`` can be stored and read back unchanged.

    NaN and the infinities are refused: JSON (the record's and the wire's) cannot carry
    them, so they would come back as "no value"; a driver sends a ``bad`` reading instead.
    A structured value (a dict or list, ``ldt.contract.wire_value``) must be JSON of
    at most about ``MAX_STRUCTURED_CHARS``.
    """
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, dict | list):
        _json_text(value)
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise BufferInputError(f"integer value {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BufferInputError(
                f"{'NaN' if math.isnan(value) else value} cannot be buffered (JSON has no "
                "word for it); "
                "send a bad reading with a reason"
            )
        return
    raise BufferInputError(f"cannot buffer a value of type {type(value).__name__}")


def _json_text(value: dict[str, object] | list[object]) -> str:
    try:
        return json_text(value)
    except ValueError as exc:
        raise BufferInputError(f"cannot buffer this structured value: {exc}") from None


@dataclass(slots=True)
class _State:
    """What the buffer keeps in memory; replaced only after a transaction commits."""

    last_seq: int = 0
    resolved: list[tuple[int, int]] = field(default_factory=list)
    """Sorted, disjoint, non-adjacent inclusive ranges of acked-or-dropped seqs."""
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))

    def copy(self) -> _State:
        return replace(
            self,
            resolved=list(self.resolved),
            counters=dict(self.counters),
        )

    def resolved_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.resolved)

    def gaps(self) -> Iterator[tuple[int, int]]:
        """Pending seq ranges, ascending. Every seq in a gap has its row (see module doc)."""
        nxt = 1
        for lo, hi in self.resolved:
            if lo > nxt:
                yield nxt, lo - 1
            nxt = hi + 1
        if nxt <= self.last_seq:
            yield nxt, self.last_seq


def _merge(ranges: list[tuple[int, int]], new: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of sorted inclusive ranges, adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted([*ranges, *new]):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted unique seqs as inclusive runs."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _quality_code(quality: Quality) -> int:
    try:
        return _QUALITY_CODE[quality]
    except (KeyError, TypeError) as exc:
        raise BufferInputError(f"unknown quality {quality!r}") from exc


class Buffer:
    """The buffer. Construct (no I/O), ``open()``, use from one thread, ``close()``.

    Raises ``BufferError`` (with a sentence) for every failure; ``sqlite3`` and ``OSError``
    errors never escape. ``cipher``: records are sealed with it (``encryption_key_file``).
    """

    def __init__(
        self,
        *,
        path: Path,
        max_bytes: int,
        max_age_s: float,
        drop_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest",
        synchronous: Literal["full", "normal"] = "full",
        cipher: ValueCipher | None = None,
    ) -> None:
        if max_bytes < 1 << 20:
            raise ValueError("max_bytes must be at least 1 MiB")
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.drop_policy = drop_policy
        self.synchronous = synchronous
        self._wal_budget = min(_WAL_BUDGET_MAX, max_bytes // 8)
        segment_bytes = max(_SEGMENT_MIN, min(_SEGMENT_MAX, self._data_budget // 16))
        self.log = SegmentLog(
            Path(f"{self.path}-segments"),
            segment_bytes=segment_bytes,
            durable=synchronous == "full",
            cipher=cipher,
        )
        self._con: sqlite3.Connection | None = None
        self._page_size = 4096
        self._st = _State()
        self._saved: list[tuple[int, int]] = []  # the resolved ranges as the file has them
        self._saved_at = 0.0
        self._carried: list[tuple[int, int]] = []  # the resolved ranges the newest record has
        self._full_since: tuple[int, int] | None = None  # (dropped, refused) when it filled
        self.persists = 0
        """Commits of the bookkeeping file since open (for benchmarks)."""
        self._series_by_info: dict[SeriesInfo, int] = {}
        self._series_by_id: dict[int, SeriesInfo] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open or create the buffer. A corrupt or foreign file raises ``BufferError``: a
        buffer is never silently recreated, because that would hide the loss of its data."""
        if self._con is not None:
            raise BufferError("the buffer is already open")
        try:
            create_private(Path(self.path))  # readings are the city's data: owner only
            con = sqlite3.connect(
                self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_S, check_same_thread=True
            )
        except (sqlite3.Error, OSError) as exc:
            raise BufferError(f"cannot open the buffer {self.path}: {exc}") from exc
        try:
            legacy = self._setup(con)
            self.log.open()
            if legacy:
                self._migrate(con)
            # acknowledgements that rode in the newest record, after the file's last commit
            try:
                carried = self.log.newest_resolved()
            except SealedElsewhereError:
                carried = []  # sealed with another key: set aside when read
            self._st.resolved = _merge(self._st.resolved, carried)
            self._carried = list(self._st.resolved)
            self._st.last_seq = max(self._st.last_seq, self.log.last_seq)
        except sqlite3.Error as exc:
            self.log.close()
            con.close()
            raise self._translate(exc, "cannot open the buffer") from exc
        except (OSError, LogCorruptError) as exc:
            self.log.close()
            con.close()
            raise self._translate_log(exc, "cannot open the buffer") from exc
        except BaseException:
            self.log.close()
            con.close()
            raise
        self._con = con

    def _setup(self, con: sqlite3.Connection) -> bool:
        """Check or create the bookkeeping file; True when it still holds readings rows
        (schema 3 or older: they move to segments in ``_migrate``)."""
        # EXCLUSIVE before the first WAL access: no -shm file, one process per buffer.
        con.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise BufferError(f"buffer {self.path}: the file system refused WAL mode ({mode})")
        con.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        self._page_size = int(con.execute("PRAGMA page_size").fetchone()[0])
        con.execute(f"PRAGMA wal_autocheckpoint={max(16, self._wal_budget // self._page_size)}")
        con.execute(f"PRAGMA journal_size_limit={self._wal_budget}")
        app_id = int(con.execute("PRAGMA application_id").fetchone()[0])
        version = int(con.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        if app_id == 0 and not tables:
            con.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                con.execute(stmt)
            con.executemany("INSERT INTO counters VALUES (?, 0)", [(c,) for c in _COUNTERS])
            con.execute(f"PRAGMA application_id={APPLICATION_ID}")
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            con.execute("COMMIT")
        elif app_id != APPLICATION_ID:
            raise BufferError(
                f"{self.path} is an SQLite file but not an ldt buffer; "
                "point [buffer] file at another path"
            )
        elif version > SCHEMA_VERSION:
            raise BufferError(
                f"buffer {self.path} was written by a newer ldt (schema {version}); "
                "upgrade ldt or move the file away"
            )
        elif version < SCHEMA_VERSION:
            con.execute("BEGIN IMMEDIATE")
            if version < 2:  # 1 -> 2: the table of rejected readings
                con.execute(_REJECTED_TABLE)
                con.executemany(
                    "INSERT OR IGNORE INTO counters VALUES (?, 0)", [(c,) for c in _COUNTERS]
                )
            # 2 -> 3: which model produced a derived series
            columns = {r[1] for r in con.execute("PRAGMA table_info(series)")}
            if "provenance" not in columns:
                con.execute("ALTER TABLE series ADD COLUMN provenance TEXT")
            con.execute("COMMIT")  # 3 -> 4 (readings to segments) is ``_migrate``'s
        st = _State()
        st.resolved = [
            (int(lo), int(hi)) for lo, hi in con.execute("SELECT lo, hi FROM resolved ORDER BY lo")
        ]
        for name, value in con.execute("SELECT name, value FROM counters"):
            st.counters[str(name)] = int(value)
        legacy = "readings" in tables
        top = con.execute("SELECT max(seq) FROM readings").fetchone()[0] if legacy else None
        st.last_seq = max(int(top or 0), st.resolved[-1][1] if st.resolved else 0)
        self._series_by_info.clear()
        self._series_by_id.clear()
        for sid, entity_id, entity_type, attr, unit, provenance in con.execute(
            "SELECT id, entity_id, entity_type, attr, unit, provenance FROM series"
        ):
            info = SeriesInfo(
                entity_id=entity_id,
                entity_type=entity_type,
                attr=attr,
                unit=unit,
                provenance=provenance,
            )
            self._series_by_info[info] = int(sid)
            self._series_by_id[int(sid)] = info
        self._st = st
        self._saved = list(st.resolved)
        self._saved_at = time.monotonic()
        return legacy

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Schema 3 -> 4: the pending rows of the ``readings`` table become records (in
        contiguous runs, at most 2,000 a record), then the table goes, in that order. A
        crash in between leaves the table: the segments written so far are removed and the
        move starts again, so no reading is lost or doubled."""
        if self.log.first_seq is not None:  # an earlier, interrupted migration
            self.log.close()
            for seg in self.log.folder.glob("*.seg"):
                seg.unlink()
            self.log.open()
        for lo, hi in list(self._st.gaps()):
            run: list[LogRow] = []
            first = lo
            cur = con.execute(
                "SELECT seq, series, ts, tag, value, reason FROM readings "
                "WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (lo, hi),
            )
            for seq, series, ts, tag, value, reason in cur:
                if run and (seq != first + len(run) or len(run) >= 2000):
                    self.log.append(first, run)
                    run = []
                if not run:
                    first = seq
                run.append((series, ts, tag & 3, _stored(tag, value), reason))
            if run:
                self.log.append(first, run)
        con.execute("BEGIN IMMEDIATE")
        con.execute("DROP TABLE readings")
        con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        con.execute("COMMIT")
        con.execute("VACUUM")  # give back the pages the readings held (once)

    def close(self) -> None:
        """Write pending acknowledgements and close. Idempotent."""
        con = self._con
        if con is None:
            return
        # acks not written are sent again after the restart; the cloud drops the duplicates
        with contextlib.suppress(BufferError):
            self._persist(force=True)
        self._con = None
        self.log.close()
        try:
            con.close()
        except sqlite3.Error as exc:
            raise self._translate(exc, "cannot close the buffer") from exc

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- series ------------------------------------------------------------------------------

    def series_id(self, info: SeriesInfo) -> int:
        """The id of ``info``'s series, created (durably) on first use; cached in memory."""
        sid = self._series_by_info.get(info)
        if sid is not None:
            return sid
        con = self._conn()
        try:
            con.execute("BEGIN IMMEDIATE")
            cur = con.execute(
                "INSERT INTO series (entity_id, entity_type, attr, unit, provenance)"
                " VALUES (?, ?, ?, ?, ?)",
                (info.entity_id, info.entity_type, info.attr, info.unit, info.provenance),
            )
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._translate(exc, "cannot store a new series") from exc
        sid = int(cur.lastrowid or 0)
        self._series_by_info[info] = sid
        self._series_by_id[sid] = info
        return sid

    def series(self, ids: Iterable[int]) -> dict[int, SeriesInfo]:
        """What each series id names; an unknown id raises ``BufferInputError``."""
        self._conn()
        out: dict[int, SeriesInfo] = {}
        for sid in ids:
            info = self._series_by_id.get(sid)
            if info is None:
                raise BufferInputError(f"unknown series id {sid}")
            out[sid] = info
        return out

    # -- writing -----------------------------------------------------------------------------

    def append(self, rows: Sequence[BufferRow]) -> range:
        """Store ``rows`` as ONE record and return the seqs assigned to them, in order.

        When the buffer is full, ``drop_oldest`` drops the oldest segment's unsent
        readings first (counted in ``dropped_full``); ``drop_newest`` refuses the whole
        call and returns an empty range (also counted). A bad row raises
        ``BufferInputError`` and nothing is written.
        """
        self._conn()
        st = self._st
        first = st.last_seq + 1
        if not rows:
            return range(first, first)
        encoded = self._encode(rows)
        try:
            if self._over_budget():
                self._prune()
                self.log.drop_spares()  # spare files give way before any reading does
                if self._over_budget():
                    if self.drop_policy == "drop_newest":
                        self._full_starts("refusing new readings (drop_newest)")
                        st.counters["refused_full"] += len(rows)
                        if time.monotonic() - self._saved_at >= _COUNTS_PERSIST_S:
                            self._persist(force=True)  # not per refusal: the disk is full
                        return range(first, first)
                    self._drop_for_size()
            first = self._st.last_seq + 1
            resolved = self._st.resolved
            ride = resolved if len(resolved) <= _RIDE_MAX else ()
            self.log.append(first, encoded, ride)
            self._carried = list(resolved) if ride else []
        except (OSError, LogCorruptError) as exc:
            raise self._translate_log(exc, "cannot store readings") from exc
        self._st.last_seq = first + len(encoded) - 1
        self._persist()
        if self._full_since is not None and (used := self._used_bytes()) < 0.9 * self._budget(used):
            self._full_ends()
        return range(first, self._st.last_seq + 1)

    def _encode(self, rows: Sequence[BufferRow]) -> list[LogRow]:
        out: list[LogRow] = []
        known = self._series_by_id
        for row in rows:
            try:
                series_id, ts, value, quality, reason = row
                code = _QUALITY_CODE[quality]
            except (ValueError, TypeError, KeyError) as exc:
                raise BufferInputError(f"malformed buffer row {row!r}") from exc
            if series_id not in known:
                raise BufferInputError(f"unknown series id {series_id!r}; call series_id() first")
            if type(ts) is not int or not 0 <= ts <= _INT_MAX:
                raise BufferInputError(f"observed_at_ms must be a non-negative int, got {ts!r}")
            if reason is not None and type(reason) is not str:
                raise BufferInputError(f"reason must be a string or None, got {reason!r}")
            if type(value) not in (float, str, bool) or (
                type(value) is float and not math.isfinite(value)
            ):
                check_value(value)
            out.append((series_id, ts, code, value, reason))
        return out

    def ack(self, seqs: Iterable[int]) -> None:
        """Mark ``seqs`` sent; they are never returned again.

        Kept in memory and written at most every ``ACK_PERSIST_S`` (module docstring).
        Acking a seq twice, or one dropped meanwhile, is harmless. A seq that was never
        assigned raises ``BufferInputError``.
        """
        self._conn()
        runs = _runs(seqs)
        if not runs:
            return
        if runs[0][0] < 1 or runs[-1][1] > self._st.last_seq:
            raise BufferInputError(
                f"cannot ack seqs {runs[0][0]}..{runs[-1][1]}: "
                f"the buffer has assigned 1..{self._st.last_seq}"
            )
        self._st.resolved = _merge(self._st.resolved, runs)
        self._persist()

    def quarantine(self, seqs: Iterable[int], why: str, *, now_ms: int | None = None) -> int:
        """Set aside readings the cloud refused as data; returns how many were set aside.

        They move, in one transaction, to the ``rejected`` table (kept for an
        operator, counted in ``BufferStats.rejected``) and are resolved like
        acknowledged ones, so they are never sent again.
        """
        self._conn()
        runs = _runs(seqs)
        if not runs:
            return 0
        if runs[0][0] < 1 or runs[-1][1] > self._st.last_seq:
            raise BufferInputError(
                f"cannot set aside seqs {runs[0][0]}..{runs[-1][1]}: "
                f"the buffer has assigned 1..{self._st.last_seq}"
            )
        at = int(time.time() * 1000) if now_ms is None else now_ms
        pending = [(lo, hi) for lo, hi in runs]
        rows: list[tuple[object, ...]] = []
        for lo, hi in pending:
            for r in self._select(lo, hi, hi - lo + 1):
                if self._is_resolved(r.seq):
                    continue
                text = json.dumps(r.value, ensure_ascii=False, separators=(",", ":"))
                rows.append(
                    (r.seq, r.series_id, r.observed_at_ms, _QUALITY_CODE[r.quality] | _JSON_BIT,
                     text, r.reason, at, why[:1000])
                )  # fmt: skip
        st = self._st.copy()
        st.resolved = _merge(st.resolved, runs)
        st.counters["rejected"] += len(rows)
        self._commit(
            st,
            "cannot set aside rejected readings",
            lambda con: con.executemany(
                "INSERT OR IGNORE INTO rejected VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            ),
        )
        self._st = st
        return len(rows)

    def enforce_limits(self, *, now_ms: int | None = None) -> int:
        """Apply retention; returns how many unsent readings were dropped.

        Writes the acknowledgements, deletes the segments every seq of which is resolved,
        drops unsent readings older than ``max_age_s`` (``dropped_age``), record by
        record from the oldest, and, if still over ``max_bytes``, applies the drop
        policy (``dropped_full``).

        Age is judged in seq order: readings are dropped from the oldest end while their
        ``observed_at_ms`` is past the cutoff (whole records by their newest reading, then
        the old beginning of the first record that is not all old). A reading with a
        clock-skewed old timestamp behind newer ones is kept until those age out; this
        keeps the pending seqs a few contiguous ranges (fast lanes, tiny ack table).
        """
        self._conn()
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        cutoff = now_ms - int(self.max_age_s * 1000)
        dropped = 0
        try:
            self._prune()
            dropped += self._drop_by_age(cutoff)
            if self.drop_policy == "drop_oldest" and self._over_budget():
                dropped += self._drop_for_size()
            if dropped:
                self._persist(force=True)
                self._prune()
        except (OSError, LogCorruptError) as exc:
            raise self._translate_log(exc, "cannot enforce buffer limits") from exc
        return dropped

    def _drop_by_age(self, cutoff: int) -> int:
        st = self._st
        dropped = 0
        for index, _ in enumerate(self.log.segment_ranges()):
            for lo, hi, newest in self.log.records(index):
                if newest >= cutoff:
                    if not self._pending_in(lo, hi):
                        return dropped  # nothing of it is pending: nothing to drop
                    # the first record not all old: its old beginning goes, in seq order
                    try:
                        rows = self.log.read(lo, hi, hi - lo + 1)
                    except SealedElsewhereError as exc:
                        self._set_aside_sealed(exc)
                        return dropped
                    young = next((seq for seq, row in rows if row[1] >= cutoff), hi + 1)
                    if young > lo and (pending := self._pending_in(lo, young - 1)):
                        st.resolved = _merge(st.resolved, [(lo, young - 1)])
                        st.counters["dropped_age"] += pending
                        dropped += pending
                    return dropped
                pending = self._pending_in(lo, hi)
                if pending:
                    st.resolved = _merge(st.resolved, [(lo, hi)])
                    st.counters["dropped_age"] += pending
                    dropped += pending
        return dropped

    # -- reading -----------------------------------------------------------------------------

    def take_live(self, limit: int) -> list[BufferedReading]:
        """The newest ``limit`` unsent readings above the highest acked seq, ascending.

        Rows are not marked: the same readings come back until acked.
        """
        self._conn()
        st = self._st
        top_hi = st.resolved[-1][1] if st.resolved else 0
        if limit <= 0 or st.last_seq <= top_hi:
            return []
        return self._select(max(top_hi + 1, st.last_seq - limit + 1), st.last_seq, limit)

    def take_backfill(self, limit: int, *, below_seq: int | None = None) -> list[BufferedReading]:
        """The oldest ``limit`` unsent readings (only seq < ``below_seq``), ascending."""
        self._conn()
        out: list[BufferedReading] = []
        for lo, gap_hi in self._st.gaps():
            hi = gap_hi if below_seq is None else min(gap_hi, below_seq - 1)
            if len(out) >= limit or lo > hi:
                break
            out.extend(self._select(lo, hi, limit - len(out)))
        return out

    def _select(self, lo: int, hi: int, limit: int) -> list[BufferedReading]:
        if lo > hi or limit <= 0:
            return []
        try:
            found = self.log.read(lo, hi, limit)
        except SealedElsewhereError as exc:
            self._set_aside_sealed(exc)
            before = self._select(lo, exc.first_seq - 1, limit)
            return before + self._select(exc.last_seq + 1, hi, limit - len(before))
        except (OSError, LogCorruptError) as exc:
            raise self._translate_log(exc, "cannot read buffered readings") from exc
        q = _CODE_QUALITY
        return [
            BufferedReading(seq, series, ts, value, q[code], reason)
            for seq, (series, ts, code, value, reason) in found
        ]

    def stats(self) -> BufferStats:
        """Counters and sizes; cheap (at most one record read)."""
        self._conn()
        st = self._st
        resolved = st.resolved_count()
        oldest: int | None = None
        first_gap = next(st.gaps(), None)
        if first_gap is not None:
            found = self._select(first_gap[0], first_gap[1], 1)
            oldest = found[0].observed_at_ms if found else None
        c = st.counters
        dropped_rows = c["dropped_age"] + c["dropped_full_rows"]
        return BufferStats(
            pending=st.last_seq - resolved,
            oldest_pending_ms=oldest,
            last_seq=st.last_seq,
            db_bytes=self._used_bytes() + self._wal_bytes(),
            appended_total=st.last_seq,
            acked_total=resolved - dropped_rows - c["rejected"],
            dropped_full=c["dropped_full_rows"] + c["refused_full"],
            dropped_age=c["dropped_age"],
            rejected=c["rejected"],
        )

    def _set_aside_sealed(self, exc: SealedElsewhereError) -> None:
        """A record no key here can open is never sendable: count its readings as rejected
        and resolve them, so the buffer moves on instead of failing every read."""
        lo, hi = exc.first_seq, exc.last_seq
        pending = self._pending_in(lo, hi)
        self._st.resolved = _merge(self._st.resolved, [(lo, hi)])
        self._st.counters["rejected"] += pending
        self._persist(force=True)
        _log.error(
            "buffered readings set aside",
            extra={"seqs": f"{lo}..{hi}", "readings": pending, "reason": str(exc)},
        )

    # -- internals ---------------------------------------------------------------------------

    @property
    def _data_budget(self) -> int:
        return self.max_bytes - self._wal_budget

    def _over_budget(self) -> bool:
        used = self._used_bytes()
        return used > self._budget(used)

    def _budget(self, used: int | None = None) -> int:
        """What the files may use now: ``max_bytes`` (less the bookkeeping's share), or less
        when the file system has less room. Room for one more segment and the bookkeeping
        file is always kept free, so the drop policy applies before a write fails (issue
        17: a full disk failed the writes and the agent crash-looped)."""
        try:
            fs = os.statvfs(self.log.folder)
        except OSError:
            return self._data_budget
        free = fs.f_bavail * fs.f_frsize
        reserve = 2 * self.log.segment_size(free) + self._wal_budget
        used = self._used_bytes() if used is None else used
        return min(self._data_budget, used + free - reserve)

    def _full_starts(self, what: str) -> None:
        if self._full_since is not None:
            return
        c = self._st.counters
        self._full_since = (c["dropped_full_rows"], c["refused_full"])
        _log.warning(
            "buffer full: " + what,
            extra={"path": str(self.path), "max_bytes": self.max_bytes,
                   "budget_bytes": self._budget(), "pending": self.stats().pending},
        )  # fmt: skip

    def _full_ends(self) -> None:
        assert self._full_since is not None
        c = self._st.counters
        dropped = c["dropped_full_rows"] - self._full_since[0]
        refused = c["refused_full"] - self._full_since[1]
        self._full_since = None
        _log.warning(
            "buffer has room again",
            extra={"path": str(self.path), "dropped_while_full": dropped,
                   "refused_while_full": refused},
        )  # fmt: skip

    def _conn(self) -> sqlite3.Connection:
        if self._con is None:
            raise BufferError("the buffer is not open")
        return self._con

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def _used_bytes(self) -> int:
        try:
            meta = os.stat(self.path).st_size
        except FileNotFoundError:
            meta = 0
        return self.log.total_bytes() + meta

    def _is_resolved(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self._st.resolved)

    def _pending_in(self, lo: int, hi: int) -> int:
        """How many seqs of lo..hi are not resolved."""
        covered = 0
        for rlo, rhi in self._st.resolved:
            if rhi < lo or rlo > hi:
                continue
            covered += min(hi, rhi) - max(lo, rlo) + 1
        return hi - lo + 1 - covered

    def _persist(self, *, force: bool = False) -> None:
        """Write the resolved ranges (and counters) if they changed and it is time."""
        st = self._st
        if not force and (st.resolved in (self._saved, self._carried)):
            return  # written already, in the file or in the newest record
        if not force and time.monotonic() - self._saved_at < ACK_PERSIST_S:
            return
        self._commit(st, "cannot record acknowledged readings")

    def _commit(
        self,
        st: _State,
        what: str,
        also: Callable[[sqlite3.Connection], object] | None = None,
    ) -> None:
        """One transaction of the bookkeeping file: ``also`` (if given), then ``st``'s
        resolved ranges and counters."""
        con = self._conn()
        try:
            con.execute("BEGIN IMMEDIATE")
            if also is not None:
                also(con)
            self._write_resolved(con, st.resolved)
            self._save_counters(con, st)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._translate(exc, what) from exc
        self._saved = list(st.resolved)
        self._saved_at = time.monotonic()
        self.persists += 1

    def _write_resolved(self, con: sqlite3.Connection, resolved: list[tuple[int, int]]) -> None:
        old = set(self._saved)
        new = set(resolved)
        gone = old - new
        if gone:
            con.executemany("DELETE FROM resolved WHERE lo = ?", [(lo,) for lo, _ in gone])
        added = new - old
        if added:
            con.executemany("INSERT OR REPLACE INTO resolved VALUES (?, ?)", sorted(added))

    def _prune(self) -> None:
        """Delete the segments every seq of which is resolved (after writing that down)."""
        resolved = self._st.resolved
        first = self.log.first_seq
        if not resolved or first is None:
            return
        lo, hi = resolved[0]
        ranges = self.log.segment_ranges()
        if lo > first or len(ranges) < 2 or ranges[0][1] > hi:
            return  # no whole segment to delete
        if self._saved != resolved:  # the file, not only a record, must hold them now:
            self._persist(force=True)  # the record may not stay the newest (one commit/segment)
        self.log.delete_through(hi)

    def _drop_for_size(self) -> int:
        """Drop the oldest segments' unsent readings until the files fit the budget."""
        st = self._st
        dropped = 0
        self.log.drop_spares()
        if self._over_budget():
            self._full_starts("dropping the oldest unsent readings (drop_oldest)")
        while self._over_budget():
            ranges = self.log.segment_ranges()
            if len(ranges) == 1:
                if ranges[0][1] < ranges[0][0]:
                    break  # only an empty segment left
                self.log.rotate()
                ranges = self.log.segment_ranges()
            lo, hi = ranges[0]
            pending = self._pending_in(lo, hi)
            st.resolved = _merge(st.resolved, [(lo, hi)])
            st.counters["dropped_full_rows"] += pending
            dropped += pending
            self._persist(force=True)
            self.log.delete_through(hi, keep_spares=False)  # full: the room is for readings
        return dropped

    def _save_counters(self, con: sqlite3.Connection, st: _State) -> None:
        con.executemany(
            "UPDATE counters SET value = ? WHERE name = ?", [(v, k) for k, v in st.counters.items()]
        )

    def _rollback(self) -> None:
        con = self._con
        if con is not None and con.in_transaction:
            # if even this fails the connection is unusable; the original error matters
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")

    def _translate_log(self, exc: Exception, what: str) -> BufferError:
        if isinstance(exc, LogCorruptError):
            return BufferError(
                f"{what}: the buffer's segments in {self.log.folder} are damaged ({exc}); "
                "stop the agent and move the folder aside for recovery"
            )
        text = str(exc).lower()
        if "no space" in text or "disk quota" in text or "read-only" in text:
            return BufferError(
                f"{what}: the storage of {self.log.folder} failed ({exc}); check the disk"
            )
        return BufferError(f"{what} ({self.log.folder}): {exc}")

    def _translate(self, exc: sqlite3.Error, what: str) -> BufferError:
        msg = str(exc)
        low = msg.lower()
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return BufferError(
                f"{what}: the buffer {self.path} is corrupt ({msg}); stop the agent, move the "
                "file aside for recovery (sqlite3 .recover) and start again"
            )
        if "locked" in low or "busy" in low:
            return BufferError(
                f"{what}: the buffer {self.path} is in use by another process "
                "(is another agent running?)"
            )
        if (
            "disk is full" in low
            or "disk i/o" in low
            or "readonly" in low
            or "unable to open" in low
        ):
            return BufferError(f"{what}: the storage of {self.path} failed ({msg}); check the disk")
        return BufferError(f"{what} ({self.path}): {msg}")
