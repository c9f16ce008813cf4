"""Schema versions after the store was written once: numbered steps, the same for both engines.

Up to version 11 each engine had its own history (SQLite: idempotent ``CREATE .. IF NOT
EXISTS`` scripts in ``sqlite.connect``; PostgreSQL: ``postgres._MIGRATIONS``); both end at
the same tables. From there on a step is written once, as a unit of work over a ``Tx``, and
``ldt_schema_version`` counts the steps done on both engines.

A step that moves data runs in chunks, each its own transaction, and removes what it has
moved as it goes: a broker stopped in the middle (or two brokers opening one PostgreSQL
database at once) resumes where it stopped, and nothing is moved twice. The version row
is written only when the step is complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.device_model import reading_id, reading_instance
from ldt.cloud.store import access, entity_rows, geo_cells, temporal, value_index
from ldt.cloud.store.database import Database, Tx
from ldt.cloud.store.geo_cells import columns

__all__ = ["LEGACY_VERSION", "MIGRATION_LOCK", "SCHEMA_VERSION", "migrate"]

LEGACY_VERSION: Final = 11
"""Where both engines' own migration histories end."""
_CHUNK: Final = 2000


@dataclass(frozen=True, slots=True)
class _Step:
    version: int
    what: str
    run: Callable[[Database], Awaitable[None]]


MIGRATION_LOCK: Final = 0x6C64_7473_6368  # "ldtsch"
"""PostgreSQL's advisory lock for schema changes (``postgres._migrate`` and the steps here)."""


async def _serialize(tx: Tx) -> None:
    """Brokers opening one PostgreSQL database together run each schema change in turn."""
    if tx.dialect.postgres:
        await tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))


async def _version(tx: Tx) -> int:
    await _serialize(tx)
    await tx.execute("CREATE TABLE IF NOT EXISTS ldt_schema_version (version integer NOT NULL)")
    current = await tx.scalar("SELECT max(version) FROM ldt_schema_version")
    if current is None:
        await tx.execute("INSERT INTO ldt_schema_version (version) VALUES (?)", (LEGACY_VERSION,))
        return LEGACY_VERSION
    return int(current)


async def _columns(tx: Tx, table: str) -> set[str]:
    if tx.dialect.postgres:
        rows = await tx.fetchall(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = ? AND table_schema = current_schema()",
            (table,),
        )
    else:
        rows = await tx.fetchall(f"SELECT name FROM pragma_table_info('{table}')")  # noqa: S608
    return {str(r[0]) for r in rows}


async def _geo_grid(db: Database) -> None:
    """Step 12: the location index becomes plain columns and a B-tree (``geo_cells``)."""

    async def add(tx: Tx) -> None:
        await _serialize(tx)
        have = await _columns(tx, "entities")
        d = tx.dialect
        for name, kind in (
            ("geo_cell", d.int_type),
            *((c, d.real_type) for c in ("x0", "y0", "x1", "y1")),
        ):
            if name not in have:
                await tx.execute(f"ALTER TABLE entities ADD COLUMN {name} {kind}")
        await tx.execute(
            "CREATE INDEX IF NOT EXISTS entities_by_cell ON entities (geo_cell)"
            " WHERE geo_cell IS NOT NULL"
        )
        if d.postgres:
            await tx.execute("ALTER TABLE entities DROP COLUMN IF EXISTS location_box")
        else:
            await tx.execute("DROP TABLE IF EXISTS geo_location")

    await db.write(add)
    last = ""
    while True:

        async def chunk(tx: Tx, last: str = last) -> str | None:
            rows = await tx.fetchall(
                f"SELECT id, {tx.dialect.doc_text()} FROM entities WHERE id > ?"  # noqa: S608
                " ORDER BY id LIMIT ?",
                (last, _CHUNK),
            )
            if not rows:
                return None
            located = [(columns(orjson.loads(text)), eid) for eid, text in rows]
            await tx.executemany(
                geo_cells.UPDATE,
                [(*cols, eid) for cols, eid in located if cols[0] is not None],
            )
            return str(rows[-1][0])

        moved = await db.write(chunk)
        if moved is None:
            return
        last = moved


async def _readings_to_instances(db: Database) -> None:
    """Step 13: every reading of the internal ``readings`` table becomes a temporal instance.

    The unit and provenance were never stored with a reading; the entity's current
    attribute gives them, as it gave them to the twin.
    """

    async def has_table(tx: Tx) -> bool:
        if tx.dialect.postgres:
            found = await tx.scalar("SELECT to_regclass('readings') IS NOT NULL")
            return bool(found)
        return (
            await tx.scalar(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'readings'"
            )
            is not None
        )

    if not await db.read(has_table):
        return
    while True:

        async def chunk(tx: Tx) -> bool:
            await _serialize(tx)
            if not await has_table(tx):
                return False
            d = tx.dialect
            rows = await tx.fetchall(
                "SELECT gateway_id, seq, entity_id, attr, observed_at_ms,"  # noqa: S608
                f" {d.doc_text('value')}, quality, reason FROM readings"
                f" ORDER BY gateway_id, seq LIMIT ?{d.row_lock}",
                (_CHUNK,),
            )
            if not rows:
                return False
            ids = sorted({r[2] for r in rows})
            docs = {eid: doc for eid, (_, doc) in (await entity_rows.load(tx, ids)).items()}
            now = entity_rows.now_iso()
            instances = []
            for gw, seq, eid, attr, ts, value, quality, reason in rows:
                attr_now: Any = docs.get(eid, {}).get(attr)
                unit = attr_now.get("unitCode") if isinstance(attr_now, dict) else None
                prov = attr_now.get("provenance") if isinstance(attr_now, dict) else None
                doc = reading_instance(
                    None if value is None else orjson.loads(value), int(ts), quality, reason,
                    unit=unit if isinstance(unit, str) else None,
                    provenance=prov.get("value") if isinstance(prov, dict) else None,
                )  # fmt: skip
                instances.append((reading_id(gw, int(seq)), eid, attr, int(ts), doc))
            from ldt.cloud.store import readings

            await readings.insert(
                tx,
                [readings.ReadingRow(i, e, a, t, doc) for i, e, a, t, doc in instances],
                int(ts),
            )
            headers = {eid: (docs.get(eid, {}).get("type", "Device"), now) for eid in ids}
            await temporal.record(tx, headers, [])
            await tx.executemany(
                "DELETE FROM readings WHERE gateway_id = ? AND seq = ?",
                [(r[0], r[1]) for r in rows],
            )
            return True

        if not await db.write(chunk):
            break

    async def drop(tx: Tx) -> None:
        await _serialize(tx)
        if await has_table(tx):
            await tx.execute("DROP TABLE IF EXISTS readings")

    await db.write(drop)


async def _value_indexes(db: Database) -> None:
    """Step 14: the tables of declared indexes on attribute values (``value_index``)."""

    async def create(tx: Tx) -> None:
        await _serialize(tx)
        await value_index.create_tables(tx)

    await db.write(create)


async def _access(db: Database) -> None:
    """Step 15: users, service accounts, grants, tokens and tenants (``access``), who sent
    each command, and who owns each subscription."""

    async def create(tx: Tx) -> None:
        await _serialize(tx)
        await access.create_tables(tx)
        if "issued_by" not in await _columns(tx, "commands"):
            await tx.execute("ALTER TABLE commands ADD COLUMN issued_by TEXT")
        if "owner" not in await _columns(tx, "subscriptions"):
            await tx.execute("ALTER TABLE subscriptions ADD COLUMN owner TEXT")

    await db.write(create)


_STEPS: Final = (
    _Step(12, "location index as a grid cell and a box in plain columns", _geo_grid),
    _Step(13, "synced readings become temporal instances", _readings_to_instances),
    _Step(14, "declared indexes on attribute values", _value_indexes),
    _Step(15, "users, service accounts, grants, tokens and tenants", _access),
)
SCHEMA_VERSION: Final = _STEPS[-1].version


async def migrate(db: Database) -> None:
    """Run the steps this database has not done yet. Raises ``StoreError`` if it is newer."""
    current = await db.write(_version)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the database schema is version {current}, newer than this ldt"
            f" ({SCHEMA_VERSION}): upgrade ldt"
        )
    for step in _STEPS:
        if step.version <= current:
            continue
        await step.run(db)

        async def done(tx: Tx, version: int = step.version) -> None:
            await _serialize(tx)
            if int(await tx.scalar("SELECT max(version) FROM ldt_schema_version")) < version:
                await tx.execute("INSERT INTO ldt_schema_version (version) VALUES (?)", (version,))

        await db.write(done)
