"""Signed artifacts in the store, and what gateways report about them.

An artifact is one version of a model bundle or rule set: its signed envelope (JSON,
``ldt.contract.artifacts``) and its content, keyed by (kind, name, version). Versions only
grow; signing and the rules over them are ``ldt.cloud.pki.artifacts``. Reports are only
appended: the newest one per gateway and version is its rollout status
(``ldt.cloud.control.catalogue``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ldt.cloud.store.database import Database, Row, Tx

__all__ = ["ArtifactReport", "ArtifactRepository", "StoredArtifact"]


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """One version's signed envelope and content."""

    envelope: dict[str, Any]
    content: bytes


@dataclass(frozen=True, slots=True)
class ArtifactReport:
    """What a gateway said about one artifact version."""

    gateway_id: str
    kind: str
    name: str
    version: int
    status: str
    reason: str | None
    at_ms: int


_REPORT_COLUMNS = "gateway_id, kind, name, version, status, reason, at_ms"


def _report(row: Row) -> ArtifactReport:
    return ArtifactReport(
        gateway_id=str(row[0]),
        kind=str(row[1]),
        name=str(row[2]),
        version=int(row[3]),
        status=str(row[4]),
        reason=None if row[5] is None else str(row[5]),
        at_ms=int(row[6]),
    )


class ArtifactRepository:
    """``store.artifacts``: each method is one transaction (or one read snapshot)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        kind: str,
        name: str,
        version: int,
        *,
        envelope: dict[str, Any],
        content: bytes,
        created_at_ms: int,
    ) -> None:
        """Keep one signed version (``StoreError`` if that version exists)."""

        async def work(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO artifacts (kind, name, version, envelope, content, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, name, version, orjson.dumps(envelope).decode(), content, created_at_ms),
            )

        await self._db.write(work)

    async def latest_version(self, kind: str, name: str) -> int | None:
        """The newest version of an artifact, or None if it has none."""

        async def work(tx: Tx) -> int | None:
            newest = await tx.scalar(
                "SELECT max(version) FROM artifacts WHERE kind = ? AND name = ?", (kind, name)
            )
            return None if newest is None else int(newest)

        return await self._db.read(work)

    async def latest(self, kind: str, name: str) -> StoredArtifact | None:
        """The newest version's envelope and content, or None."""

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                "SELECT envelope, content FROM artifacts WHERE kind = ? AND name = ?"
                " ORDER BY version DESC LIMIT 1",
                (kind, name),
            )

        row = await self._db.read(work)
        if row is None:
            return None
        return StoredArtifact(envelope=orjson.loads(row[0]), content=bytes(row[1]))

    async def content(self, kind: str, name: str, version: int) -> bytes | None:
        """One version's content, or None if that version is not kept."""

        async def work(tx: Tx) -> bytes | None:
            found = await tx.scalar(
                "SELECT content FROM artifacts WHERE kind = ? AND name = ? AND version = ?",
                (kind, name, version),
            )
            return None if found is None else bytes(found)

        return await self._db.read(work)

    # gateways' reports -------------------------------------------------------------
    async def add_report(self, report: ArtifactReport) -> None:
        """Append a gateway's report."""

        async def work(tx: Tx) -> None:
            await tx.execute(
                f"INSERT INTO artifact_reports ({_REPORT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    report.gateway_id,
                    report.kind,
                    report.name,
                    report.version,
                    report.status,
                    report.reason,
                    report.at_ms,
                ),
            )

        await self._db.write(work)

    async def reports(self) -> list[ArtifactReport]:
        """Every report, oldest first (ties by gateway)."""

        async def work(tx: Tx) -> list[Row]:
            return await tx.fetchall(
                f"SELECT {_REPORT_COLUMNS} FROM artifact_reports ORDER BY at_ms, gateway_id"  # noqa: S608
            )

        return [_report(r) for r in await self._db.read(work)]

    async def last_report(
        self, gateway_id: str, kind: str, name: str, version: int
    ) -> ArtifactReport | None:
        """A gateway's newest report on one version, or None if it has sent none."""

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                f"SELECT {_REPORT_COLUMNS} FROM artifact_reports"  # noqa: S608
                " WHERE gateway_id = ? AND kind = ? AND name = ? AND version = ?"
                " ORDER BY at_ms DESC LIMIT 1",
                (gateway_id, kind, name, version),
            )

        row = await self._db.read(work)
        return None if row is None else _report(row)
