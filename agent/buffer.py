"""The durable store-and-forward buffer: readings by sequence number in one SQLite file.

This is the gateway's promise to a city: a reading the buffer accepted (its
``append`` returned) is never lost — not by ``kill -9``, not by a power cut —
until the cloud acknowledged it or an explicit, counted limit dropped it.

Durability. WAL journal, ``synchronous=FULL`` by default: every commit fsyncs
the WAL, so a committed append survives power loss. ``normal`` skips that fsync
(survives a crash of the process, not of the machine) and is an opt-in.

Flash wear (SD cards). Everything is designed so a steady stream writes few
pages:

- ``readings`` is keyed by ``seq`` (``INTEGER PRIMARY KEY`` = the rowid): no
  extra index, appends only touch the right edge of one b-tree. Series are ints,
  quality and the bool flag share one small int (``tag``; 0 for a good
  non-bool reading, which SQLite stores in zero payload bytes), values are
  stored natively.
- Readings are never updated to mark them sent. Acknowledged seqs are kept as a
  handful of *resolved ranges* (acknowledged or dropped seqs, merged on write)
  in a tiny table, so an ack writes one small page. Acked rows are deleted in
  bulk by ``enforce_limits`` (the periodic housekeeping), which frees whole
  leaf pages at once instead of rewriting boundary pages on every ack.
- No counter row is written per append: the highest seq ever assigned is
  ``max(max(readings.seq), max(resolved.hi))`` because a row is only ever deleted
  after its seq joined a resolved range. Seqs are therefore never reused, even
  after deletes and restarts, without an extra write per commit.
- ``locking_mode=EXCLUSIVE`` before WAL: no ``-shm`` file (the wal-index lives
  in process memory), so no mmapped page is flushed behind our back; and a
  second agent on the same file gets a clear error instead of sharing it.
- No ``auto_vacuum``: freed pages are reused by the next appends; vacuuming
  would move pages around (more writes) to give back space the buffer will
  need again at the next outage.

Size. ``max_bytes`` bounds the file plus its WAL: the WAL is given a budget
(``journal_size_limit`` and the auto-checkpoint point, at most 4 MiB or an
eighth of ``max_bytes``) and the database's *used* pages (page count minus free
pages) the rest. Appends check the bound; past it ``drop_oldest`` deletes the
oldest unsent readings and ``drop_newest`` refuses the new ones. Both are
counted in persisted counters.

Threads. One connection, used from the thread that called ``open`` only
(``sqlite3`` enforces it); ``AsyncBuffer`` in ``buffer_writer`` runs every call
in one dedicated thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from ldt.contract import SeriesInfo, WireValue
from ldt.private_files import create_private
from ldt.reading import MAX_STRUCTURED_CHARS, Quality

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
SCHEMA_VERSION = 3
"""``PRAGMA user_version``; a file from a newer release is refused, not guessed at."""

BufferRow = tuple[int, int, WireValue, Quality, "str | None"]
"""What ``append`` takes: (series_id, observed_at_ms, value, quality, reason)."""

_BUSY_TIMEOUT_S = 2.0
_WAL_BUDGET_MAX = 4 << 20
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
    # value has no declared type: SQLite keeps int, float and str exactly as given.
    """CREATE TABLE readings (
        seq INTEGER PRIMARY KEY,
        series INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        tag INTEGER NOT NULL,
        value,
        reason TEXT
    )""",
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

    NaN is refused: SQLite stores it as NULL (and JSON cannot carry it), so it
    would come back as "no value"; a driver should send a ``bad`` reading instead.
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
        if math.isnan(value):
            raise BufferInputError("NaN cannot be buffered; send a bad reading with a reason")
        return
    raise BufferInputError(f"cannot buffer a value of type {type(value).__name__}")


def _json_text(value: dict[str, object] | list[object]) -> str:
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise BufferInputError(f"cannot buffer this structured value: {exc}") from None
    if len(text) > MAX_STRUCTURED_CHARS + 64:
        raise BufferInputError(f"a structured value of {len(text)} characters is too large")
    return text


@dataclass(slots=True)
class _State:
    """What the buffer keeps in memory; replaced only after a transaction commits."""

    last_seq: int = 0
    resolved: list[tuple[int, int]] = field(default_factory=list)
    """Sorted, disjoint, non-adjacent inclusive ranges of acked-or-dropped seqs."""
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    pruned: list[tuple[int, int]] = field(default_factory=list)
    """Resolved ranges whose rows are known to be deleted already (saves no-op deletes)."""

    def copy(self) -> _State:
        return replace(
            self,
            resolved=list(self.resolved),
            counters=dict(self.counters),
            pruned=list(self.pruned),
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


class Buffer:
    """The SQLite buffer. Construct (no I/O), ``open()``, use from one thread, ``close()``.

    Raises ``BufferError`` (with a sentence) for every failure; ``sqlite3`` errors
    never escape.
    """

    def __init__(
        self,
        *,
        path: Path,
        max_bytes: int,
        max_age_s: float,
        drop_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest",
        synchronous: Literal["full", "normal"] = "full",
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
        self._con: sqlite3.Connection | None = None
        self._page_size = 4096
        self._st = _State()
        self._series_by_info: dict[SeriesInfo, int] = {}
        self._series_by_id: dict[int, SeriesInfo] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open or create the file. A corrupt or foreign file raises ``BufferError``: a
        buffer is never silently recreated, because that would hide the loss of its data."""
        if self._con is not None:
            raise BufferError("the buffer is already open")
        try:
            if str(self.path) != ":memory:":
                create_private(Path(self.path))  # readings are the city's data: owner only
            con = sqlite3.connect(
                self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_S, check_same_thread=True
            )
        except (sqlite3.Error, OSError) as exc:
            raise BufferError(f"cannot open the buffer {self.path}: {exc}") from exc
        try:
            self._setup(con)
        except sqlite3.Error as exc:
            con.close()
            raise self._translate(exc, "cannot open the buffer") from exc
        except BaseException:
            con.close()
            raise
        self._con = con

    def _setup(self, con: sqlite3.Connection) -> None:
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
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            con.execute("COMMIT")
        st = _State()
        st.resolved = [
            (int(lo), int(hi)) for lo, hi in con.execute("SELECT lo, hi FROM resolved ORDER BY lo")
        ]
        for name, value in con.execute("SELECT name, value FROM counters"):
            st.counters[str(name)] = int(value)
        top = con.execute("SELECT max(seq) FROM readings").fetchone()[0]
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

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL into the file). Idempotent."""
        con, self._con = self._con, None
        if con is not None:
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
        """Store ``rows`` in ONE transaction and return the seqs assigned to them, in order.

        When the buffer is full, ``drop_oldest`` deletes the oldest unsent readings
        first (counted in ``dropped_full``); ``drop_newest`` refuses the whole
        call and returns an empty range (also counted). A bad row raises
        ``BufferInputError`` and nothing is written.
        """
        con = self._conn()
        st = self._st.copy()
        first = st.last_seq + 1
        if not rows:
            return range(first, first)
        encoded = self._encode(rows, first)
        try:
            con.execute("BEGIN IMMEDIATE")
            if self._used_bytes(con) > self._db_budget:
                self._prune(con, st)
                if self._used_bytes(con) > self._db_budget:
                    if self.drop_policy == "drop_newest":
                        st.counters["refused_full"] += len(rows)
                        self._save_counters(con, st)
                        con.execute("COMMIT")
                        self._st = st
                        return range(first, first)
                    self._drop_for_size(con, st)
            con.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)", encoded)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._translate(exc, "cannot store readings") from exc
        st.last_seq = first + len(encoded) - 1
        self._st = st
        return range(first, st.last_seq + 1)

    def _encode(
        self, rows: Sequence[BufferRow], first: int
    ) -> list[tuple[int, int, int, int, bool | int | float | str | None, str | None]]:
        out: list[tuple[int, int, int, int, bool | int | float | str | None, str | None]] = []
        known = self._series_by_id
        seq = first
        for row in rows:
            try:
                series_id, ts, value, quality, reason = row
                tag = _QUALITY_CODE[quality]
            except (ValueError, TypeError, KeyError) as exc:
                raise BufferInputError(f"malformed buffer row {row!r}") from exc
            if series_id not in known:
                raise BufferInputError(f"unknown series id {series_id!r}; call series_id() first")
            if type(ts) is not int or not 0 <= ts <= _INT_MAX:
                raise BufferInputError(f"observed_at_ms must be a non-negative int, got {ts!r}")
            if reason is not None and type(reason) is not str:
                raise BufferInputError(f"reason must be a string or None, got {reason!r}")
            if type(value) is bool:
                tag |= _BOOL_BIT
            elif isinstance(value, dict | list):
                tag |= _JSON_BIT
                value = _json_text(value)
            elif type(value) is not str and (type(value) is not float or math.isnan(value)):
                check_value(value)
            out.append((seq, series_id, ts, tag, value, reason))
            seq += 1
        return out

    def ack(self, seqs: Iterable[int]) -> None:
        """Mark ``seqs`` sent (durably); they are never returned again.

        Only the small ``resolved`` table is written; the rows are deleted by the
        next ``enforce_limits``. Acking a seq twice, or one dropped meanwhile, is
        harmless. A seq that was never assigned raises ``BufferInputError``.
        """
        con = self._conn()
        runs = _runs(seqs)
        if not runs:
            return
        if runs[0][0] < 1 or runs[-1][1] > self._st.last_seq:
            raise BufferInputError(
                f"cannot ack seqs {runs[0][0]}..{runs[-1][1]}: "
                f"the buffer has assigned 1..{self._st.last_seq}"
            )
        st = self._st.copy()
        try:
            con.execute("BEGIN IMMEDIATE")
            self._resolve(con, st, runs)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._translate(exc, "cannot record acknowledged readings") from exc
        self._st = st

    def quarantine(self, seqs: Iterable[int], why: str, *, now_ms: int | None = None) -> int:
        """Set aside readings the cloud refused as data; returns how many were set aside.

        They move, in one transaction, to the ``rejected`` table (kept for an
        operator, counted in ``BufferStats.rejected``) and are resolved like
        acknowledged ones, so one malformed reading cannot block the lanes forever.
        Nothing is deleted here that is not copied first.
        """
        con = self._conn()
        runs = _runs(seqs)
        if not runs:
            return 0
        if runs[0][0] < 1 or runs[-1][1] > self._st.last_seq:
            raise BufferInputError(
                f"cannot set aside seqs {runs[0][0]}..{runs[-1][1]}: "
                f"the buffer has assigned 1..{self._st.last_seq}"
            )
        at = int(time.time() * 1000) if now_ms is None else now_ms
        st = self._st.copy()
        moved = 0
        try:
            con.execute("BEGIN IMMEDIATE")
            for lo, hi in runs:
                cur = con.execute(
                    "INSERT OR IGNORE INTO rejected "
                    "SELECT seq, series, ts, tag, value, reason, ?, ? FROM readings "
                    "WHERE seq BETWEEN ? AND ?",
                    (at, why[:1000], lo, hi),
                )
                moved += cur.rowcount
            self._resolve(con, st, runs)
            st.counters["rejected"] += moved
            self._save_counters(con, st)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._translate(exc, "cannot set aside rejected readings") from exc
        self._st = st
        return moved

    def enforce_limits(self, *, now_ms: int | None = None) -> int:
        """Apply retention; returns how many unsent readings were dropped.

        In one transaction: delete the rows of acknowledged seqs; drop unsent
        readings older than ``max_age_s`` (``dropped_age``); if still over
        ``max_bytes``, apply the drop policy (``dropped_full``).

        Age is judged in seq order: readings are dropped from the oldest end while
        their ``observed_at_ms`` is past the cutoff. A reading with a clock-skewed
        old timestamp behind newer ones is kept until those age out; this keeps the
        pending seqs a few contiguous ranges (fast lanes, tiny ack table).
        """
        con = self._conn()
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        cutoff = now_ms - int(self.max_age_s * 1000)
        st = self._st.copy()
        dropped = 0
        try:
            con.execute("BEGIN IMMEDIATE")
            self._prune(con, st)
            for lo, hi in list(st.gaps()):
                row = con.execute(
                    "SELECT seq FROM readings WHERE seq BETWEEN ? AND ? AND ts >= ? LIMIT 1",
                    (lo, hi, cutoff),
                ).fetchone()
                end = hi if row is None else int(row[0]) - 1
                if end >= lo:
                    self._drop(con, st, lo, end)
                    st.counters["dropped_age"] += end - lo + 1
                    dropped += end - lo + 1
                if row is not None:
                    break
            if self.drop_policy == "drop_oldest" and self._used_bytes(con) > self._db_budget:
                dropped += self._drop_for_size(con, st)
            if dropped:
                self._save_counters(con, st)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._translate(exc, "cannot enforce buffer limits") from exc
        self._st = st
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
        try:
            cur = self._conn().execute(
                "SELECT seq, series, ts, tag, value, reason FROM readings "
                "WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?",
                (lo, hi, limit),
            )
            rows = cur.fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc, "cannot read buffered readings") from exc
        q = _CODE_QUALITY
        return [
            BufferedReading(seq, series, ts, _stored(tag, value), q[tag & 3], reason)
            for seq, series, ts, tag, value, reason in rows
        ]

    def stats(self) -> BufferStats:
        """Counters and sizes; cheap (one indexed read and two pragmas)."""
        con = self._conn()
        st = self._st
        resolved = st.resolved_count()
        oldest: int | None = None
        try:
            first_gap = next(st.gaps(), None)
            if first_gap is not None:
                row = con.execute(
                    "SELECT ts FROM readings WHERE seq = ?", (first_gap[0],)
                ).fetchone()
                oldest = None if row is None else int(row[0])
            pages = int(con.execute("PRAGMA page_count").fetchone()[0])
        except sqlite3.Error as exc:
            raise self._translate(exc, "cannot read buffer statistics") from exc
        c = st.counters
        dropped_rows = c["dropped_age"] + c["dropped_full_rows"]
        return BufferStats(
            pending=st.last_seq - resolved,
            oldest_pending_ms=oldest,
            last_seq=st.last_seq,
            db_bytes=pages * self._page_size + self._wal_bytes(),
            appended_total=st.last_seq,
            acked_total=resolved - dropped_rows - c["rejected"],
            dropped_full=c["dropped_full_rows"] + c["refused_full"],
            dropped_age=c["dropped_age"],
            rejected=c["rejected"],
        )

    # -- internals ---------------------------------------------------------------------------

    @property
    def _db_budget(self) -> int:
        return self.max_bytes - self._wal_budget

    def _conn(self) -> sqlite3.Connection:
        if self._con is None:
            raise BufferError("the buffer is not open")
        return self._con

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def _used_bytes(self, con: sqlite3.Connection) -> int:
        pages = int(con.execute("PRAGMA page_count").fetchone()[0])
        free = int(con.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _resolve(self, con: sqlite3.Connection, st: _State, runs: list[tuple[int, int]]) -> None:
        """Merge ``runs`` into the resolved ranges and write only the changed rows."""
        old = set(st.resolved)
        st.resolved = _merge(st.resolved, runs)
        new = set(st.resolved)
        gone = old - new
        if gone:
            con.executemany("DELETE FROM resolved WHERE lo = ?", [(lo,) for lo, _ in gone])
        added = new - old
        if added:
            con.executemany("INSERT INTO resolved VALUES (?, ?)", sorted(added))

    def _drop(self, con: sqlite3.Connection, st: _State, lo: int, hi: int) -> None:
        """Delete unsent rows lo..hi and resolve their seqs (caller counts them)."""
        con.execute("DELETE FROM readings WHERE seq BETWEEN ? AND ?", (lo, hi))
        self._resolve(con, st, [(lo, hi)])
        st.pruned = _merge(st.pruned, [(lo, hi)])

    def _prune(self, con: sqlite3.Connection, st: _State) -> None:
        """Delete the rows of acknowledged seqs (the ranges not pruned yet)."""
        todo = [r for r in st.resolved if r not in st.pruned]
        for lo, hi in todo:
            con.execute("DELETE FROM readings WHERE seq BETWEEN ? AND ?", (lo, hi))
        st.pruned = list(st.resolved)

    def _drop_for_size(self, con: sqlite3.Connection, st: _State) -> int:
        """Drop the oldest unsent readings until the used pages fit the budget."""
        dropped = 0
        while (used := self._used_bytes(con)) > self._db_budget:
            pending = st.last_seq - st.resolved_count()
            if pending <= 0:
                break
            per_row = max(1, used // pending)
            want = min(pending, max(256, math.ceil((used - self._db_budget) / per_row * 1.1)))
            for lo, hi in list(st.gaps()):
                n = min(want, hi - lo + 1)
                self._drop(con, st, lo, lo + n - 1)
                dropped += n
                want -= n
                if want <= 0:
                    break
        st.counters["dropped_full_rows"] += dropped
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
