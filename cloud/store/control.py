"""Edge control in the store: catalogue, assignments, groups, commands, command points, audit.

The rules over these tables are ``ldt.cloud.control``; this module only reads and writes,
the same SQL on both engines. What each table holds is described with its schema
(``control_sql``). Statements that hand something out or settle it (delivering commands,
settling one, expiring them) are one conditional ``UPDATE .. RETURNING`` each, so two
brokers sharing a database never both deliver or settle the same command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ldt.cloud.errors import OwnershipError
from ldt.cloud.store.database import Database, Row, Tx

__all__ = [
    "AssignedVersion",
    "AuditEntry",
    "CatalogueEntry",
    "CommandPoint",
    "CommandRecord",
    "ControlRepository",
]


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One published version of a model bundle or rule set."""

    kind: str
    name: str
    version: int
    label: str
    """The author's version (a model manifest's ``version``, a rule set's digest)."""
    metadata: dict[str, Any]
    rollback_of: int | None
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class AssignedVersion:
    """An artifact assigned to a gateway and its newest version (None: none published)."""

    kind: str
    name: str
    version: int | None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One command and its FIWARE-style status (PENDING, DELIVERED, OK, ERROR, EXPIRED)."""

    id: str
    gateway_id: str
    entity_id: str
    attr: str
    value: Any
    status: str
    info: str | None
    created_at_ms: int
    expires_at_ms: int
    updated_at_ms: int
    issued_by: str | None = None
    """Who sent it (``user:alice``, ``client:scada``); None for commands from before access
    control, or sent with authentication off."""


@dataclass(frozen=True, slots=True)
class CommandPoint:
    """An attribute a gateway declared it can execute as a command."""

    entity_id: str
    attr: str
    gateway_id: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit line. ``origin``: "cloud" or "gateway" (reported by ``gateway_id``)."""

    at_ms: int
    origin: str
    gateway_id: str | None
    action: str
    subject: str
    detail: dict[str, Any]


_CATALOGUE_COLUMNS: Final = "kind, name, version, label, metadata, rollback_of, created_at_ms"
_COMMAND_COLUMNS: Final = (
    "id, gateway_id, entity_id, attr, value, status, info, created_at_ms, expires_at_ms,"
    " updated_at_ms, issued_by"
)


def _entry(row: Row) -> CatalogueEntry:
    return CatalogueEntry(
        kind=str(row[0]),
        name=str(row[1]),
        version=int(row[2]),
        label=str(row[3]),
        metadata=orjson.loads(row[4]),
        rollback_of=None if row[5] is None else int(row[5]),
        created_at_ms=int(row[6]),
    )


def _command(row: Row) -> CommandRecord:
    return CommandRecord(
        id=str(row[0]),
        gateway_id=str(row[1]),
        entity_id=str(row[2]),
        attr=str(row[3]),
        value=orjson.loads(row[4]),
        status=str(row[5]),
        info=None if row[6] is None else str(row[6]),
        created_at_ms=int(row[7]),
        expires_at_ms=int(row[8]),
        updated_at_ms=int(row[9]),
        issued_by=None if row[10] is None else str(row[10]),
    )


class ControlRepository:
    """``store.control``: each method is one transaction (or one read snapshot)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async def work(tx: Tx) -> list[Row]:
            return await tx.fetchall(sql, params)

        return await self._db.read(work)

    async def _change(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """One statement in its own write transaction; the rows it returned."""

        async def work(tx: Tx) -> list[Row]:
            return await tx.fetchall(sql, params)

        return await self._db.write(work)

    # catalogue ---------------------------------------------------------------------
    async def add_catalogue(self, entry: CatalogueEntry) -> None:
        """Record a published version (its content is the artifact of the same key)."""
        await self._change(
            f"INSERT INTO catalogue ({_CATALOGUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                entry.kind,
                entry.name,
                entry.version,
                entry.label,
                orjson.dumps(entry.metadata).decode(),
                entry.rollback_of,
                entry.created_at_ms,
            ),
        )

    async def catalogue(self, kind: str, name: str | None = None) -> list[CatalogueEntry]:
        """Every published version of ``kind`` (of ``name`` only, if given), by name, version."""
        sql = f"SELECT {_CATALOGUE_COLUMNS} FROM catalogue WHERE kind = ?"  # noqa: S608
        params = [kind]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = await self._rows(sql + " ORDER BY name, version", params)
        return [_entry(r) for r in rows]

    # assignments and groups ----------------------------------------------------------
    async def assign(self, kind: str, name: str, target: str, *, at_ms: int) -> None:
        """Assign an artifact to ``target`` (``gateway:ID`` or ``group:NAME``); idempotent."""
        await self._change(
            "INSERT INTO assignments (kind, name, target, created_at_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, name, target) DO NOTHING",
            (kind, name, target, at_ms),
        )

    async def unassign(self, kind: str, name: str, target: str) -> bool:
        """Remove an assignment; False if there was none."""
        rows = await self._change(
            "DELETE FROM assignments WHERE kind = ? AND name = ? AND target = ? RETURNING target",
            (kind, name, target),
        )
        return bool(rows)

    async def assignment_targets(self, kind: str, name: str) -> list[str]:
        """The targets an artifact is assigned to, sorted."""
        rows = await self._rows(
            "SELECT target FROM assignments WHERE kind = ? AND name = ? ORDER BY target",
            (kind, name),
        )
        return [str(r[0]) for r in rows]

    async def assigned_to(self, gateway_id: str) -> list[AssignedVersion]:
        """What one gateway should run, directly or through its groups, by kind and name."""
        rows = await self._rows(
            "SELECT DISTINCT a.kind, a.name, (SELECT max(version) FROM artifacts v"
            " WHERE v.kind = a.kind AND v.name = a.name) FROM assignments a"
            " WHERE a.target = 'gateway:' || ? OR a.target IN (SELECT 'group:' || group_name"
            " FROM gateway_groups WHERE gateway_id = ?) ORDER BY a.kind, a.name",
            (gateway_id, gateway_id),
        )
        return [
            AssignedVersion(str(r[0]), str(r[1]), None if r[2] is None else int(r[2])) for r in rows
        ]

    async def add_to_group(self, group: str, gateway_ids: Sequence[str]) -> None:
        """Put gateways in a group (created by its first member), all in one transaction."""

        async def work(tx: Tx) -> None:
            await tx.executemany(
                "INSERT INTO gateway_groups (group_name, gateway_id) VALUES (?, ?)"
                " ON CONFLICT (group_name, gateway_id) DO NOTHING",
                [(group, g) for g in gateway_ids],
            )

        await self._db.write(work)

    async def remove_from_group(self, group: str, gateway_id: str) -> bool:
        """Take a gateway out of a group; False if it was not in it."""
        rows = await self._change(
            "DELETE FROM gateway_groups WHERE group_name = ? AND gateway_id = ?"
            " RETURNING gateway_id",
            (group, gateway_id),
        )
        return bool(rows)

    async def group_members(self, group: str) -> list[str]:
        """A group's gateways, sorted."""
        rows = await self._rows(
            "SELECT gateway_id FROM gateway_groups WHERE group_name = ? ORDER BY gateway_id",
            (group,),
        )
        return [str(r[0]) for r in rows]

    async def groups(self) -> dict[str, list[str]]:
        """Every group and its members, sorted."""
        out: dict[str, list[str]] = {}
        for group, gateway_id in await self._rows(
            "SELECT group_name, gateway_id FROM gateway_groups ORDER BY group_name, gateway_id"
        ):
            out.setdefault(str(group), []).append(str(gateway_id))
        return out

    # commands ------------------------------------------------------------------------
    async def add_command(
        self,
        command_id: str,
        *,
        gateway_id: str,
        entity_id: str,
        attr: str,
        value: Any,
        created_at_ms: int,
        expires_at_ms: int,
        issued_by: str | None = None,
    ) -> None:
        """Record a new PENDING command (``value``: anything JSON can hold)."""
        await self._change(
            f"INSERT INTO commands ({_COMMAND_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, 'PENDING', NULL, ?, ?, ?, ?)",
            (
                command_id,
                gateway_id,
                entity_id,
                attr,
                orjson.dumps(value).decode(),
                created_at_ms,
                expires_at_ms,
                created_at_ms,
                issued_by,
            ),
        )

    async def deliver_commands(self, gateway_id: str, *, now_ms: int) -> list[CommandRecord]:
        """A gateway's unexpired PENDING commands, marked DELIVERED in the same statement."""
        rows = await self._change(
            "UPDATE commands SET status = 'DELIVERED', updated_at_ms = ?"  # noqa: S608
            " WHERE gateway_id = ? AND status = 'PENDING' AND expires_at_ms > ?"
            f" RETURNING {_COMMAND_COLUMNS}",
            (now_ms, gateway_id, now_ms),
        )
        return [_command(r) for r in rows]

    async def settle_command(
        self, command_id: str, gateway_id: str, *, status: str, info: str | None, at_ms: int
    ) -> CommandRecord | None:
        """Settle an open command; None if it is unknown, another gateway's, or settled.

        Only the gateway a command went to may settle it, and only once.
        """
        rows = await self._change(
            "UPDATE commands SET status = ?, info = ?, updated_at_ms = ?"  # noqa: S608
            " WHERE id = ? AND gateway_id = ? AND status IN ('PENDING', 'DELIVERED')"
            f" RETURNING {_COMMAND_COLUMNS}",
            (status, info, at_ms, command_id, gateway_id),
        )
        return _command(rows[0]) if rows else None

    async def expire_commands(self, *, now_ms: int, answer_grace_ms: int) -> list[CommandRecord]:
        """Settle as EXPIRED what was not delivered by its expiry, or delivered and never
        answered ``answer_grace_ms`` after it; the commands settled."""
        rows = await self._change(
            "UPDATE commands SET status = 'EXPIRED',"  # noqa: S608
            " info = 'expired before the gateway executed it', updated_at_ms = ?"
            " WHERE (status = 'PENDING' AND expires_at_ms <= ?)"
            " OR (status = 'DELIVERED' AND expires_at_ms <= ?)"
            f" RETURNING {_COMMAND_COLUMNS}",
            (now_ms, now_ms, now_ms - answer_grace_ms),
        )
        return [_command(r) for r in rows]

    async def commands(self, limit: int) -> list[CommandRecord]:
        """The newest ``limit`` commands, newest first."""
        rows = await self._rows(
            f"SELECT {_COMMAND_COLUMNS} FROM commands"  # noqa: S608
            " ORDER BY created_at_ms DESC LIMIT ?",
            (limit,),
        )
        return [_command(r) for r in rows]

    # command points --------------------------------------------------------------------
    async def command_points(self) -> list[CommandPoint]:
        """Every declared command attribute, of every gateway."""
        rows = await self._rows("SELECT entity_id, attr, gateway_id FROM command_points")
        return [CommandPoint(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def declare_command_points(
        self, gateway_id: str, points: Mapping[str, Sequence[str]]
    ) -> bool:
        """Replace a gateway's command attributes (entity id -> attributes) in one transaction.

        Raises ``OwnershipError`` (nothing written) if an existing entity is not the
        gateway's (another gateway's, or created through the API and not assigned to it);
        entities that do not exist yet may be declared (``CommandService.declare`` checks
        that they lie in the gateway's id space). Returns whether anything
        changed (False: the gateway declared what it had).
        """
        wanted = {(e, a) for e, attrs in points.items() for a in attrs}

        async def work(tx: Tx) -> bool:
            foreign = await tx.fetchone(
                "SELECT id, gateway_id FROM entities"  # noqa: S608
                f" WHERE id IN ({tx.dialect.text_values})"
                " AND (gateway_id IS NULL OR gateway_id <> ?) ORDER BY id LIMIT 1",
                (orjson.dumps(list(points)).decode(), gateway_id),
            )
            if foreign is not None:  # another gateway's, or the API's and not assigned
                raise OwnershipError(
                    str(foreign[0]), None if foreign[1] is None else str(foreign[1])
                )
            held = await tx.fetchall(
                "SELECT entity_id, attr FROM command_points WHERE gateway_id = ?", (gateway_id,)
            )
            if {(str(e), str(a)) for e, a in held} == wanted:
                return False
            await tx.execute("DELETE FROM command_points WHERE gateway_id = ?", (gateway_id,))
            await tx.executemany(
                "INSERT INTO command_points (entity_id, attr, gateway_id) VALUES (?, ?, ?)"
                " ON CONFLICT (entity_id, attr) DO UPDATE SET gateway_id = excluded.gateway_id",
                [(e, a, gateway_id) for e, a in sorted(wanted)],
            )
            return True

        return await self._db.write(work)

    # audit -----------------------------------------------------------------------------
    async def add_audit(self, entry: AuditEntry) -> None:
        """Append one audit line (``detail`` as JSON; what JSON cannot hold, as text)."""
        await self._change(
            "INSERT INTO audit_log (at_ms, origin, gateway_id, action, subject, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.at_ms,
                entry.origin,
                entry.gateway_id,
                entry.action,
                entry.subject,
                orjson.dumps(entry.detail, default=str).decode(),
            ),
        )

    async def audit(self, limit: int) -> list[AuditEntry]:
        """The newest ``limit`` lines, newest first."""
        rows = await self._rows(
            "SELECT at_ms, origin, gateway_id, action, subject, detail FROM audit_log"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            AuditEntry(
                at_ms=int(r[0]),
                origin=str(r[1]),
                gateway_id=None if r[2] is None else str(r[2]),
                action=str(r[3]),
                subject=str(r[4]),
                detail=orjson.loads(r[5]),
            )
            for r in rows
        ]
