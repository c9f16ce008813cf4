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

Which tenants exist: with access control on (``registrations``: the default store's
``store.access``), those a global admin created (``ldt cloud tenants add``, ``add``), and
no request of any kind creates one on the side. A tenant whose data was created by a
request before tenants were registered is adopted on its first use (logged), so existing
data folders keep their tenants. With ``--insecure-no-auth`` (no ``registrations``), a
creating request still creates its tenant, as NGSI-LD says (``create=True``), and the
tenant is registered too.

Opening: ``TenantRegistry.get`` opens a tenant's store on first use and caches it; a
missing tenant raises ``NonexistentTenantError`` (404 NonexistentTenant). Existence is
not cached negatively: a tenant another process creates is found on the next request.
An open tenant is checked again every ``RECHECK_S``: one removed by another process
stops answering within that time.

Closing: a tenant costs an SQLite connection and its thread (or a connection pool), a
notifier and its tasks. Requests hold their tenant (``TenantRegistry.use``) while they
run; one that no request has used for ``idle_s`` (default ``IDLE_S``), whose notifier has
nothing queued or in flight and no ``timeInterval`` subscription, is closed, and reopened
on its next request. At most ``max_open`` (``MAX_OPEN``) stay open: past that the least
recently used idle ones close first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Protocol, Self

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.problems import ERROR_BASE, NgsiLdError
from ldt.cloud.store.base import Store
from ldt.cloud.store.sealing import Sealer
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore

if TYPE_CHECKING:
    from psycopg import sql

    from ldt.cloud.store.access import AccessRepository

_log = logging.getLogger("ldt.cloud.tenancy")

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
RECHECK_S: Final = 30.0
IDLE_S: Final = 300.0
"""A tenant no request used for this long (and whose notifier is idle) is closed."""
MAX_OPEN: Final = 64
"""Open tenants kept at most (idle ones beyond it close, least recently used first)."""
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
            f"tenant {name!r} does not exist; a global admin creates tenants"
            " ('ldt cloud tenants add NAME')",
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

    def __init__(
        self,
        backend: TenantBackend | None,
        make_notifier: NotifierFactory,
        registrations: AccessRepository | None = None,
        *,
        implicit: bool = False,
        sealer: Sealer | None = None,
        idle_s: float = IDLE_S,
        max_open: int = MAX_OPEN,
    ) -> None:
        """``registrations``: where created tenants are listed (the default store's
        ``store.access``); ``implicit``: creating requests create their tenant (lab mode);
        ``sealer``: seals the secrets of the tenants' subscriptions at rest; ``idle_s``,
        ``max_open``: when open tenants are closed (see the module docstring)."""
        if idle_s <= 0 or max_open < 1:
            raise ValueError("idle_s must be positive and max_open at least 1")
        self._sealer = sealer
        self.idle_s = idle_s
        """Seconds unused before a tenant is closed (read when the first tenant opens)."""
        self.max_open = max_open
        self._busy: dict[str, int] = {}
        self._used: dict[str, float] = {}
        self._lock_users: dict[str, int] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._crowded = asyncio.Event()
        self._backend = backend
        self._make_notifier = make_notifier
        self._registrations = registrations
        self._implicit = implicit
        self._open: dict[str, Tenant] = {}
        self._checked: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    async def registered(self) -> list[str]:
        """The tenants that exist (created by an admin, or adopted)."""
        return [] if self._registrations is None else await self._registrations.tenants()

    async def add(self, name: str) -> bool:
        """Create tenant ``name`` (its folder or schema, and its registration); False if it
        existed. Raises ``NgsiLdError`` 400 for an invalid name."""
        key = tenant_key(validate_tenant(name))
        backend = self._require_backend()
        await backend.create(key)
        return self._registrations is None or await self._registrations.add_tenant(name)

    async def remove(self, name: str) -> bool:
        """Unregister ``name`` and close it here; its data stays. False if it was unknown."""
        if self._registrations is None or not await self._registrations.remove_tenant(name):
            return False
        await self.remove_open(tenant_key(validate_tenant(name)))
        return True

    def _require_backend(self) -> TenantBackend:
        if self._backend is None:
            raise NgsiLdError(
                501, "OperationNotSupported", "Tenants not supported", "this store has no tenants"
            )
        return self._backend

    async def _admitted(self, name: str, key: str, backend: TenantBackend, create: bool) -> None:
        """Raise ``NonexistentTenantError`` unless ``name`` exists (see the docstring)."""
        registrations = self._registrations
        exists = await backend.exists(key)
        state = None if registrations is None else await registrations.tenant_state(name)
        if state == "exists":
            if not exists:  # registered by an admin; its folder or schema comes now
                await backend.create(key)
            return
        if state == "removed":  # its data stayed; it comes back only by an admin
            raise NonexistentTenantError(name)
        if exists:
            if registrations is not None:
                _log.info("tenant adopted: it held data before tenants were registered",
                          extra={"tenant": name})  # fmt: skip
                await registrations.add_tenant(name)
            return
        if not (create and self._implicit):
            raise NonexistentTenantError(name)
        await backend.create(key)
        if registrations is not None:
            await registrations.add_tenant(name)

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
        if tenant is not None and (
            self._registrations is None or self._checked.get(key, 0.0) > time.monotonic()
        ):
            return tenant
        backend = self._require_backend()
        async with self._lock(key):
            if self._closed:
                raise StoreError("the broker is shutting down")
            if (
                key in self._open
                and self._registrations is not None
                and not await self._registrations.has_tenant(name)
            ):
                await self.remove_open(key)
                raise NonexistentTenantError(name)
            tenant = self._open.get(key)
            if tenant is not None:
                self._checked[key] = time.monotonic() + RECHECK_S
                return tenant
            await self._admitted(name, key, backend, create)
            store = backend.store(key)
            await store.open()
            if self._sealer is not None:
                try:
                    await store.subscriptions.seal_with(self._sealer)
                except BaseException:
                    await store.close()
                    raise
            tenant = Tenant(name=name, store=store, notifier=self._make_notifier(store, name))
            self._open[key] = tenant
            self._checked[key] = time.monotonic() + RECHECK_S
            self._used[key] = time.monotonic()
            self._start_reaper()
            if len(self._open) > self.max_open:
                self._crowded.set()
            return tenant

    @contextlib.asynccontextmanager
    async def use(self, name: str, *, create: bool) -> AsyncIterator[Tenant]:
        """``get``, holding the tenant open until the block ends (a request's lifetime)."""
        tenant = await self.get(name, create=create)
        key = tenant_key(name)
        self._busy[key] = self._busy.get(key, 0) + 1
        try:
            yield tenant
        finally:
            self._used[key] = time.monotonic()
            left = self._busy.get(key, 1) - 1
            if left > 0:
                self._busy[key] = left
            else:
                self._busy.pop(key, None)

    @contextlib.asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        """The tenant's lock, forgotten when nobody holds or waits for it: a caller naming
        tenants that do not exist must not grow a lock per name."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._lock_users[key] = self._lock_users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[key] -= 1
            if not self._lock_users[key]:
                del self._lock_users[key]
                self._locks.pop(key, None)

    def _start_reaper(self) -> None:
        if self._reaper is None and not self._closed:
            self._reaper = asyncio.create_task(self._reap(), name="ldt-tenants-idle")

    async def _reap(self) -> None:
        """Close idle tenants every ``idle_s / 2`` (at most 60 s), or at once when more
        than ``max_open`` are open."""
        period = min(self.idle_s / 2, 60.0)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await self._crowded.wait()
            self._crowded.clear()
            try:
                await self.close_idle()
            except Exception:  # noqa: BLE001 - a failing close must not end the reaper
                _log.exception("closing idle tenants failed")

    def _idle(self, key: str, now: float) -> bool:
        tenant = self._open.get(key)
        return (
            tenant is not None
            and key not in self._busy
            and now - self._used.get(key, 0.0) >= self.idle_s
            and tenant.notifier.idle
        )

    async def close_idle(self) -> list[str]:
        """Close the tenants idle for ``idle_s``, then, while more than ``max_open`` are
        open, the least recently used ones no request holds and whose notifier is idle.
        Returns the names closed."""
        now = time.monotonic()
        idle = [k for k in self._open if self._idle(k, now)]
        surplus = len(self._open) - len(idle) - self.max_open
        if surplus > 0:
            spare = sorted(
                (k for k in self._open if k not in idle and self._idle(k, float("inf"))),
                key=lambda k: self._used.get(k, 0.0),
            )
            idle += spare[:surplus]
        closed = []
        for key in idle:
            async with self._lock(key):
                tenant = self._open.get(key)
                if tenant is None or key in self._busy or not tenant.notifier.idle:
                    continue  # a request came meanwhile
                await self.remove_open(key)
                closed.append(tenant.name)
        if closed:
            _log.info("idle tenants closed", extra={"count": len(closed)})
        return closed

    async def remove_open(self, key: str) -> None:
        """Close an open tenant that no longer exists."""
        tenant = self._open.pop(key, None)
        self._checked.pop(key, None)
        self._used.pop(key, None)
        if tenant is not None:
            with contextlib.suppress(Exception):
                await tenant.notifier.aclose()
            await tenant.store.close()

    def opened(self) -> list[str]:
        """The names of the tenants open in this process (for logs and tests)."""
        return sorted(t.name for t in self._open.values())

    async def aclose(self) -> None:
        """Stop every tenant's notifier and close its store; later ``get`` calls fail."""
        self._closed = True
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        tenants, self._open = list(self._open.values()), {}
        for tenant in tenants:
            with contextlib.suppress(Exception):
                await tenant.notifier.aclose()
            await tenant.store.close()
