"""The shared store: PostgreSQL, so several broker processes can serve one city.

Same contract and results as ``SqliteStore`` (the same tests run on both);
what differs is how correctness under concurrency is obtained, since other
processes write the same tables at the same time:

- Readings: ``PRIMARY KEY (gateway_id, seq)`` and ``INSERT ... ON CONFLICT DO
  NOTHING``; the row count is what was new. A batch replayed concurrently by
  two processes waits on the other's uncommitted keys and is counted once.
- Entities: read-modify-write under row locks. Existing rows are locked with
  ``SELECT ... FOR UPDATE`` (sorted by id, so two writers never lock in
  opposite orders); missing ones are created with ``INSERT ... ON CONFLICT DO
  NOTHING`` and, if another process created them meanwhile, locked and merged
  like existing ones. Ownership is checked on the locked rows, so two gateways
  racing to create one entity cannot both own it.
- Isolation is READ COMMITTED: every statement sees what committed before it
  and the locks do the rest; SERIALIZABLE would turn every concurrent replay
  into a retry. A deadlock or serialization failure (possible only with
  writers outside this class) is retried a few times with jittered backoff.

Connections come from a fixed-size ``psycopg_pool.AsyncConnectionPool``
(asyncio tasks, no threads): each call borrows one connection for one
transaction, so reads never queue behind a batch, and a broken connection (a
server restart) is replaced by the pool rather than failing every later call.

Durability is the server's: a batch is acknowledged after COMMIT, which with
PostgreSQL's defaults (``fsync=on``, ``synchronous_commit=on``) is on disk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar

import orjson
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
    Entity,
    Store,
)
from ldt.cloud.store.database import PostgresDatabase

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

_T = TypeVar("_T")
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

_MIGRATION_LOCK: Final = 0x6C64_7473_6368  # pg_advisory_xact_lock key: "ldtsch"
_RETRIES: Final = 5
_GROUP_COMMIT_ITEMS: Final = 2000
"""At most this many changes in one shared write transaction (a bigger batch runs alone)."""

_ANY_MULTI_TYPED: Final = (  # answered from the partial index entities_multi_typed (pg_geo)
    "SELECT 1 FROM entities WHERE jsonb_typeof(doc->'type') = 'array' LIMIT 1"
)


def _dumps(doc: object) -> str:
    return orjson.dumps(doc).decode()


def _json_docs(docs: Iterable[Entity]) -> str:
    """Documents as one JSON array, which the statements take apart in order.

    Not a ``jsonb[]`` of texts: psycopg escapes every quote of every document in
    a text array with a regex substitution, a third of the CPU of a 1,000-entity
    upsert. orjson writes the one array in C and PostgreSQL parses it in C.
    """
    return orjson.dumps(list(docs)).decode()


def _load(text: str) -> Entity:
    """An entity document as stored; ``id`` and ``type`` first, as users expect to read them.

    jsonb keeps keys sorted by length, not as written. orjson reads jsonb's
    integral renderings of huge floats (1e20 comes back as
    "100000000000000000000") as floats, where json.loads would make ints.
    """
    loaded: Entity = orjson.loads(text)
    if "id" in loaded and "type" in loaded:
        return {"id": loaded.pop("id"), "type": loaded.pop("type"), **loaded}
    return loaded


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

    async def close(self) -> None:
        """Close every connection (waits for calls in progress to return them)."""
        await self.drain()
        await self.db.close()

    async def _call(self, fn: Callable[[_Conn], Awaitable[_T]], *, transaction: bool) -> _T:
        return await self._pg.call(fn, transaction=transaction)


async def _migrate(conn: _Conn) -> None:
    """Bring the schema up to ``SCHEMA_VERSION`` in one transaction.

    An advisory lock makes concurrent openers (several broker processes
    starting together) migrate one after the other; the second finds the work
    done. Raises ``StoreError`` for a schema newer than this code.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
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


def _describe(exc: psycopg.Error) -> str:
    """One line: libpq's messages span lines and may end with a hint."""
    return " ".join(str(exc).split()) or type(exc).__name__
