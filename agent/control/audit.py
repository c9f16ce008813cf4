"""The gateway's audit log: every rule firing, command and artifact change, kept locally.

Local first, like readings: a pump switched at 03:12 while the cloud was unreachable is
recorded here when it happens and sent to the cloud's audit log with the next control
exchange (``sent`` marks what the cloud acknowledged). The file is a small SQLite database
beside the buffer (``DATA/control/audit.sqlite``); it keeps the newest ``MAX_ROWS`` lines,
sent or not, so a gateway offline for months cannot fill its card with audit lines.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

import orjson

from ldt.contract.control import AuditEvent

__all__ = ["MAX_ROWS", "AuditLog"]

_log = logging.getLogger("ldt.agent.audit")

MAX_ROWS: Final = 20_000
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS audit_unsent ON audit (sent, id);
"""


class AuditLog:
    """Append-only audit lines in one SQLite file; calls run in a worker thread."""

    def __init__(self, path: Path, *, max_rows: int = MAX_ROWS) -> None:
        self.path = path
        self.max_rows = max_rows
        self._con: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _open(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.executescript(_SCHEMA)
            self._con = con
        return self._con

    async def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            return [tuple(r) for r in self._open().execute(sql, params).fetchall()]

        async with self._lock:
            return await asyncio.to_thread(run)

    async def record(
        self, action: str, subject: str, detail: dict[str, Any], *, at_ms: int | None = None
    ) -> None:
        """Append one line; a failure to write is logged (the action already happened)."""
        at = int(time.time() * 1000) if at_ms is None else at_ms
        _log.info("audit: %s %s", action, subject, extra={"detail": detail})
        try:
            await self._run(
                "INSERT INTO audit (at_ms, action, subject, detail) VALUES (?, ?, ?, ?)",
                (at, action, subject, orjson.dumps(detail, default=str).decode()),
            )
            await self._run(
                "DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?",
                (self.max_rows,),
            )
        except (sqlite3.Error, OSError) as exc:
            _log.error("audit line not stored", extra={"action": action, "reason": str(exc)})

    async def unsent(self, limit: int = 500) -> list[tuple[int, AuditEvent]]:
        """Lines the cloud has not acknowledged yet, oldest first."""
        rows = await self._run(
            "SELECT id, at_ms, action, subject, detail FROM audit WHERE sent = 0"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            (
                int(r[0]),
                AuditEvent(
                    at_ms=int(r[1]),
                    action=str(r[2]),
                    subject=str(r[3])[:256],
                    detail=orjson.loads(r[4]),
                ),
            )
            for r in rows
        ]

    async def mark_sent(self, ids: list[int]) -> None:
        """The cloud has these lines."""
        if ids:
            marks = ",".join("?" * len(ids))
            await self._run(f"UPDATE audit SET sent = 1 WHERE id IN ({marks})", tuple(ids))  # noqa: S608

    async def lines(self, limit: int = 100) -> list[AuditEvent]:
        """The newest lines, newest first (the technician's view)."""
        rows = await self._run(
            "SELECT at_ms, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            AuditEvent(
                at_ms=int(r[0]),
                action=str(r[1]),
                subject=str(r[2])[:256],
                detail=orjson.loads(r[3]),
            )
            for r in rows
        ]

    def close(self) -> None:
        """Close the file."""
        if self._con is not None:
            self._con.close()
            self._con = None
