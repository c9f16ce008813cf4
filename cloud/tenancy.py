"""NGSI-LD tenants (``NGSILD-Tenant``, GS CIM 009 v1.9 clause 4.14): one store per tenant.

Isolation by construction rather than by a ``tenant`` column: every tenant gets a
``Store`` (and a ``Notifier``) of its own, so no query, subscription match or temporal
read can forget a ``WHERE tenant = ...`` and see another tenant's data; the store code
stays tenant-unaware. The default tenant (no header) is the broker's own store.

- SQLite: a tenant is the database ``DATA/tenants/<key>/cloud.db`` beside the default
  one; it exists when that file does.
- PostgreSQL: a tenant is a schema in the default store's database, named
  ``<default schema>__<key>`` (so deployments sharing a database in different schemas,
  like the tests, keep separate tenants); it exists when the schema does, so every
  broker process on the database sees the tenants the others created.

Both survive a restart with nothing else to remember. The cost: each open tenant holds
its own SQLite thread or a small PostgreSQL pool (``TENANT_POOL_SIZE`` connections),
which suits a handful of tenants (a city's departments), not thousands.

Names: a tenant is a string; this broker accepts 1-128 characters from letters, digits
and ``._:~-``, starting with a letter or digit (``urn:ngsi-ld:tenant:a`` is fine; ``/``,
``..`` at the start, spaces, quotes and control characters are refused with 400
BadRequestData). ``tenant_key`` maps a name to a lowercase ``[a-z0-9_]`` identifier:
a readable slug plus 12 hex digits of its SHA-256, so names differing only in case or
punctuation stay distinct tenants and the key is safe as a folder and schema name.

Opening: ``TenantRegistry.get`` opens a tenant's store on first use and caches it;
``create=True`` (a creating request) makes the tenant if it is missing, otherwise a
missing tenant raises ``NonexistentTenantError`` (404 NonexistentTenant). Existence is
not cached negatively: a tenant another process creates is found on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Protocol, Self

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.problems import ERROR_BASE, NgsiLdError
from ldt.cloud.store.base import Store
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore

if TYPE_CHECKING:
    from psycopg import sql

__all__ = [
    "TENANTS_DIRNAME",
    "TENANT_POOL_SIZE",
    "NonexistentTenantError",
    "PostgresTenants",
    "SqliteTenants",
    "Tenant",
    "TenantBackend",
    "TenantRegistry",
    "backend_for",
    "tenant_key",
    "validate_tenant",
]

TENANTS_DIRNAME: Final = "tenants"
TENANT_POOL_SIZE: Final = 2
"""PostgreSQL connections per open tenant (the default store keeps its own size)."""

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]{0,127}")
_SLUG_MAX: Final = 20
_SCHEMA_PREFIX_MAX: Final = 24  # prefix + "__" + key (<= 35) within PostgreSQL's 63 bytes


class NonexistentTenantError(NgsiLdError):
    """404 ``NonexistentTenant``: the request names a tenant nobody has written to yet."""

    def __init__(self, name: str) -> None:
        super().__init__(
            404,
            None,
            "Nonexistent tenant",
            f"tenant {name!r} does not exist; it is created by the first request that"
            " creates something in it (e.g. POST /entities)",
        )

    def body(self) -> dict[str, object]:
        return {**super().body(), "type": ERROR_BASE + "NonexistentTenant"}


def validate_tenant(name: str) -> str:
    """``name`` if this broker accepts it as a tenant; else 400 ``BadRequestData``."""
    if _NAME.fullmatch(name) is None:
        raise NgsiLdError(
            400,
            "BadRequestData",
            "Invalid tenant",
            f"NGSILD-Tenant {name[:140]!r} is not accepted: use 1-128 characters from"
            " letters, digits and ._:~- starting with a letter or digit",
        )
    return name


def tenant_key(name: str) -> str:
    """The safe, deterministic identifier of a valid tenant name: ``t_<slug>_<sha256[:12]>``."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:_SLUG_MAX]
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"t_{slug}_{digest}" if slug else f"t_{digest}"


@dataclass(frozen=True, slots=True)
class Tenant:
    """An open tenant: its name as the client sent it, its store and its notifier."""

    name: str
    store: Store
    notifier: Notifier


class TenantBackend(Protocol):
    """Where tenants' stores live; ``key`` is always a ``tenant_key``."""

    async def exists(self, key: str) -> bool:
        """Whether the tenant was created (by this or any other broker process)."""
        ...

    async def create(self, key: str) -> None:
        """Make room for the tenant (idempotent); its store's ``open()`` does the rest."""
        ...

    def store(self, key: str) -> Store:
        """The tenant's store, not opened."""
        ...


class SqliteTenants:
    """Tenant databases in ``DATA/tenants/<key>/cloud.db``, beside the default one."""

    def __init__(self, data_dir: Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        self.root = data_dir / TENANTS_DIRNAME
        self._synchronous: Literal["FULL", "NORMAL"] = synchronous

    def _path(self, key: str) -> Path:
        return self.root / key / DB_FILENAME

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def create(self, key: str) -> None:
        try:
            self._path(key).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the tenant folder {self.root / key}: {exc}") from exc

    def store(self, key: str) -> Store:
        return SqliteStore(path=self._path(key), synchronous=self._synchronous)


class PostgresTenants:
    """Tenant schemas in the default store's database, named after its schema.

    Existence checks and ``CREATE SCHEMA`` use a short-lived connection: they happen
    once per tenant per process (and on requests for tenants that do not exist).
    """

    def __init__(self, dsn: str, *, pool_size: int = TENANT_POOL_SIZE) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._prefix: str | None = None

    async def _query(self, query: bytes | sql.Composed, *args: str) -> list[tuple[object, ...]]:
        import psycopg

        try:
            async with await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=10
            ) as conn:
                cur = await conn.execute(query, args)
                return await cur.fetchall() if cur.description else []
        except psycopg.errors.DuplicateSchema:
            return []  # another process created it first
        except psycopg.errors.UniqueViolation:
            return []  # the same race, caught by pg_namespace's unique index
        except psycopg.Error as exc:
            raise StoreError(f"tenant lookup failed: {exc}") from exc

    async def schema(self, key: str) -> str:
        """``<default schema>__<key>``; the default schema is asked once."""
        if self._prefix is None:
            rows = await self._query(b"SELECT current_schema()")
            current = rows[0][0] if rows else None
            if not isinstance(current, str):
                raise StoreError("the default store's search_path names no existing schema")
            if len(current) > _SCHEMA_PREFIX_MAX or re.fullmatch(r"[a-z0-9_]+", current) is None:
                digest = hashlib.sha256(current.encode()).hexdigest()[:8]
                safe = re.sub(r"[^a-z0-9_]+", "_", current.lower())[:15]
                current = f"{safe}_{digest}"
            self._prefix = current
        return f"{self._prefix}__{key}"

    async def exists(self, key: str) -> bool:
        rows = await self._query(
            b"SELECT 1 FROM pg_namespace WHERE nspname = %s", await self.schema(key)
        )
        return bool(rows)

    async def create(self, key: str) -> None:
        from psycopg import sql

        schema = sql.Identifier(await self.schema(key))
        await self._query(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))

    def dsn(self, schema: str) -> str:
        """The default DSN with ``search_path`` set to ``schema`` (a later -c wins)."""
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        options = str(conninfo_to_dict(self._dsn).get("options") or "")
        return make_conninfo(self._dsn, options=f"{options} -c search_path={schema}".strip())

    def store(self, key: str) -> Store:
        from ldt.cloud.store.postgres import PostgresStore

        if self._prefix is None:
            raise StoreError("PostgresTenants.schema() runs before store()")
        return PostgresStore(dsn=self.dsn(f"{self._prefix}__{key}"), pool_size=self._pool_size)


def backend_for(store: Store) -> TenantBackend | None:
    """The tenant backend beside ``store``; None for a store kind without one."""
    if isinstance(store, SqliteStore):
        return SqliteTenants(store.path.parent, synchronous=store.synchronous)
    # a PostgresStore exists only once its module is loaded: SQLite never loads libpq
    postgres = sys.modules.get("ldt.cloud.store.postgres")
    if postgres is not None and isinstance(store, postgres.PostgresStore):
        return PostgresTenants(store.dsn)
    return None


NotifierFactory = Callable[[Store, str], Notifier]
"""Makes a tenant's notifier from its store and the tenant's name (for NGSILD-Tenant)."""


class TenantRegistry:
    """Opens tenants' stores and notifiers on first use, caches them, closes them all.

    An async context manager (or call ``aclose()``); the default tenant's store and
    notifier are not its business.
    """

    def __init__(self, backend: TenantBackend | None, make_notifier: NotifierFactory) -> None:
        self._backend = backend
        self._make_notifier = make_notifier
        self._open: dict[str, Tenant] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def get(self, name: str, *, create: bool) -> Tenant:
        """The open tenant ``name`` (validated); created first when ``create``.

        Raises ``NgsiLdError`` (400 invalid name, 404 NonexistentTenant, 501 when the
        store has no tenant backend) or ``StoreError``.
        """
        key = tenant_key(validate_tenant(name))
        tenant = self._open.get(key)
        if tenant is not None:
            return tenant
        backend = self._backend
        if backend is None:
            raise NgsiLdError(
                501, "OperationNotSupported", "Tenants not supported", "this store has no tenants"
            )
        async with self._locks.setdefault(key, asyncio.Lock()):
            tenant = self._open.get(key)
            if tenant is not None:
                return tenant
            if self._closed:
                raise StoreError("the broker is shutting down")
            if not await backend.exists(key):
                if not create:
                    raise NonexistentTenantError(name)
                await backend.create(key)
            store = backend.store(key)
            await store.open()
            tenant = Tenant(name=name, store=store, notifier=self._make_notifier(store, name))
            self._open[key] = tenant
            return tenant

    def opened(self) -> list[str]:
        """The names of the tenants open in this process (for logs and tests)."""
        return sorted(t.name for t in self._open.values())

    async def aclose(self) -> None:
        """Stop every tenant's notifier and close its store; later ``get`` calls fail."""
        self._closed = True
        tenants, self._open = list(self._open.values()), {}
        for tenant in tenants:
            with contextlib.suppress(Exception):
                await tenant.notifier.aclose()
            await tenant.store.close()
