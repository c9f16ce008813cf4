"""The shared store: PostgreSQL, so several broker processes can serve one city.

This module only builds the ``database.PostgresDatabase`` and brings an older database up
to schema version 11 (its own numbered migrations, under an advisory lock so brokers
starting together migrate one after the other); later steps are ``schema``'s, written once
for both engines, and every repository is written once over ``Database``. How correctness
holds with other processes writing the same tables: ``entity_rows`` (row locks, a
concurrent creation runs the unit of work again) and ``service.ingest`` (a reading's key
is its gateway and seq: a concurrent replay is stored once).

Durability is the server's: a batch is acknowledged after COMMIT, which with
PostgreSQL's defaults (``fsync=on``, ``synchronous_commit=on``) is on disk.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from ldt.cloud.store import (
    control_sql,
    pg_geo,
    pg_temporal,
    pki_sql,
    registration_sql,
    schema,
)
from ldt.cloud.store.base import (
    Store,
)
from ldt.cloud.store.database import PostgresDatabase

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

_Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: gateways, reading history, entities
    """
    CREATE TABLE gateways (
        id text PRIMARY KEY,
        token_sha256 bytea NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE readings (
        gateway_id text NOT NULL,
        seq bigint NOT NULL,
        entity_id text NOT NULL,
        attr text NOT NULL,
        observed_at_ms bigint NOT NULL,
        value jsonb,            -- NULL for a reading without value
        quality text NOT NULL,
        reason text,
        PRIMARY KEY (gateway_id, seq)
    );
    CREATE INDEX readings_by_attr ON readings (entity_id, attr, observed_at_ms);
    CREATE TABLE entities (
        id text PRIMARY KEY,
        type text NOT NULL,
        doc jsonb NOT NULL,     -- normalized NGSI-LD, without @context
        gateway_id text,        -- owner; NULL for entities created through the NGSI-LD API
        created_at timestamptz NOT NULL DEFAULT now(),
        modified_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX entities_by_type ON entities (type, id);
    """,
    # 2: NGSI-LD subscriptions (document and delivery counters)
    """
    CREATE TABLE subscriptions (
        id text PRIMARY KEY,
        doc jsonb NOT NULL,
        times_sent bigint NOT NULL DEFAULT 0,
        times_failed bigint NOT NULL DEFAULT 0,
        last_notification text,
        last_success text,
        last_failure text
    );
    """,
    # 3: temporal representation: attribute-instance history
    pg_temporal.SCHEMA,
    # 4: location boxes under GiST, multi-typed entities (pg_geo; boxes backfilled by _migrate)
    pg_geo.MIGRATION,
    # 5: deletion records in the temporal history (deletedAt)
    pg_temporal.DELETED_AT,
    # 6: context source registrations
    registration_sql.PG_SCHEMA,
    # 7: several brokers on one database: subscription generation, notification slots
    """
    CREATE TABLE subscription_generation (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        n bigint NOT NULL
    );
    INSERT INTO subscription_generation (one, n) VALUES (true, 0);
    CREATE TABLE subscription_slots (
        id text PRIMARY KEY,
        due_ms bigint NOT NULL
    );
    """,
    # 8: deletedAt indexed for deletion records only (cheaper history inserts)
    pg_temporal.PARTIAL_DELETED_INDEX,
    # 9: provisioning: claim tokens, gateway certificates
    pki_sql.PG_SCHEMA,
    # 10: signed artifacts and the gateways' reports on them
    pki_sql.PG_ARTIFACTS,
    # 11: edge control: catalogue, rollouts, groups, commands, audit
    control_sql.PG_SCHEMA,
)
SCHEMA_VERSION: Final = schema.SCHEMA_VERSION
"""The schema this code writes; ``open()`` migrates older databases up to it (the steps
after ``len(_MIGRATIONS)`` are ``schema``'s, written once for both engines)."""


class PostgresStore(Store):
    """``Store`` on a PostgreSQL database that other broker processes may share.

    ``dsn``: a libpq URL or ``key=value`` string (``postgresql://user@host/db``;
    a password is best left to ``PGPASSWORD`` or ``~/.pgpass``). ``pool_size``
    connections are kept open; ``timeout_s`` bounds every call, waiting for a
    connection included; ``connect_timeout_s`` bounds ``open()``.
    """

    def __init__(
        self,
        *,
        dsn: str,
        pool_size: int = 4,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._pg = PostgresDatabase(
            dsn=dsn,
            setup=_migrate,
            pool_size=pool_size,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        super().__init__(self._pg)

    @property
    def dsn(self) -> str:
        """The connection URL (tenant stores derive theirs from it; may hold a password)."""
        return self._pg.dsn


async def _migrate(conn: _Conn) -> None:
    """Bring the schema up to ``SCHEMA_VERSION`` in one transaction.

    An advisory lock makes concurrent openers (several broker processes
    starting together) migrate one after the other; the second finds the work
    done. Raises ``StoreError`` for a schema newer than this code.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ldt_schema_version (version integer NOT NULL)"
        )
        cur = await conn.execute("SELECT max(version) FROM ldt_schema_version")
        row = await cur.fetchone()
        current = 0 if row is None or row[0] is None else int(row[0])
        for version in range(current + 1, len(_MIGRATIONS) + 1):
            await conn.execute(_MIGRATIONS[version - 1].encode())
            if _MIGRATIONS[version - 1] is pg_geo.MIGRATION:
                await pg_geo.backfill(conn)
            await conn.execute("INSERT INTO ldt_schema_version (version) VALUES (%s)", (version,))
