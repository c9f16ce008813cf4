"""Users, service accounts, groups, grants, tokens and tenants in the store (``store.access``).

The rules over these tables are ``ldt.cloud.access.service``; this module only reads and
writes them, the same SQL on both engines. What is kept:

- ``principals``: a user or a service account (``kind``), its argon2id hash (of the
  password or the client secret; never the secret itself) and whether it is disabled;
- ``memberships``: users in groups;
- ``grants``: a role in a tenant for ``user:NAME``, ``client:NAME`` or ``group:NAME``,
  optionally limited to entity types (a JSON list of IRIs) and an id prefix;
- ``auth_tokens``: refresh tokens and long-lived service tokens, by the SHA-256 of the
  token (a stolen database does not yield usable tokens), with expiry and revocation;
- ``notify_hosts``: per tenant, the hosts with non-public addresses that notifications may
  go to (``ldt.cloud.ngsild.endpoint_policy``);
- ``tenants``: the tenants an admin created. A tenant not listed here does not exist; a
  removed one stays as a tombstone (``removed_at_ms``) so that its data, left in place, is
  not adopted again (``ldt.cloud.tenancy``).

Identity lives in the default tenant's store only; tenants' own stores hold the tables
(every store has one schema) but leave them empty.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from ldt.cloud.errors import StoreError
from ldt.cloud.store.database import Database, Row, Tx

__all__ = [
    "CLIENT",
    "USER",
    "AccessRepository",
    "GrantRecord",
    "NotifyHosts",
    "PrincipalRecord",
    "TokenRecord",
    "create_tables",
]

USER: Final = "user"
CLIENT: Final = "client"


def _ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    """A user or a service account; ``secret_hash`` is an argon2id hash, never shown."""

    kind: str
    name: str
    secret_hash: str
    disabled: bool
    created_at_ms: int
    updated_at_ms: int
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A role given to ``subject`` (``user:``/``client:``/``group:`` + name) in ``tenant``."""

    id: str
    subject: str
    tenant: str
    role: str
    types: tuple[str, ...]
    id_prefix: str
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A refresh token or a long-lived service token, known by its hash."""

    id: str
    kind: str
    subject: str
    created_at_ms: int
    expires_at_ms: int | None
    revoked_at_ms: int | None
    last_used_ms: int | None


async def create_tables(tx: Tx) -> None:
    """Schema step 15 (idempotent)."""
    i = tx.dialect.int_type
    for statement in (
        "CREATE TABLE IF NOT EXISTS principals (kind TEXT NOT NULL, name TEXT NOT NULL,"
        f" secret_hash TEXT NOT NULL, disabled {i} NOT NULL DEFAULT 0,"
        f" created_at_ms {i} NOT NULL, updated_at_ms {i} NOT NULL, PRIMARY KEY (kind, name))",
        "CREATE TABLE IF NOT EXISTS memberships (user_name TEXT NOT NULL,"
        " group_name TEXT NOT NULL, PRIMARY KEY (user_name, group_name))",
        "CREATE TABLE IF NOT EXISTS grants (id TEXT PRIMARY KEY, subject TEXT NOT NULL,"
        " tenant TEXT NOT NULL, role TEXT NOT NULL, types TEXT NOT NULL,"
        f" id_prefix TEXT NOT NULL, created_at_ms {i} NOT NULL)",
        "CREATE UNIQUE INDEX IF NOT EXISTS grants_unique"
        " ON grants (subject, tenant, role, types, id_prefix)",
        "CREATE TABLE IF NOT EXISTS auth_tokens (hash TEXT PRIMARY KEY, id TEXT NOT NULL,"
        f" kind TEXT NOT NULL, subject TEXT NOT NULL, created_at_ms {i} NOT NULL,"
        f" expires_at_ms {i}, revoked_at_ms {i}, last_used_ms {i})",
        "CREATE UNIQUE INDEX IF NOT EXISTS auth_tokens_by_id ON auth_tokens (id)",
        "CREATE INDEX IF NOT EXISTS auth_tokens_by_subject ON auth_tokens (subject)",
        f"CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created_at_ms {i} NOT NULL,"
        f" removed_at_ms {i})",
        "CREATE TABLE IF NOT EXISTS notify_hosts (tenant TEXT NOT NULL, host TEXT NOT NULL,"
        " PRIMARY KEY (tenant, host))",
    ):
        await tx.execute(statement)


def _grant(row: Row) -> GrantRecord:
    types = orjson.loads(str(row[4]))
    return GrantRecord(
        id=str(row[0]),
        subject=str(row[1]),
        tenant=str(row[2]),
        role=str(row[3]),
        types=tuple(str(t) for t in types),
        id_prefix=str(row[5]),
        created_at_ms=int(row[6]),
    )


def _token(row: Row) -> TokenRecord:
    return TokenRecord(
        id=str(row[0]),
        kind=str(row[1]),
        subject=str(row[2]),
        created_at_ms=int(row[3]),
        expires_at_ms=None if row[4] is None else int(row[4]),
        revoked_at_ms=None if row[5] is None else int(row[5]),
        last_used_ms=None if row[6] is None else int(row[6]),
    )


_PRINCIPAL_COLUMNS: Final = "kind, name, secret_hash, disabled, created_at_ms, updated_at_ms"
_GRANT_COLUMNS: Final = "id, subject, tenant, role, types, id_prefix, created_at_ms"
_TOKEN_COLUMNS: Final = (
    "id, kind, subject, created_at_ms, expires_at_ms, revoked_at_ms, last_used_ms"  # noqa: S105
)


class AccessRepository:
    """``store.access``: each method is one transaction (or one read snapshot)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.notify = NotifyHosts(db)

    # principals -----------------------------------------------------------------
    async def add_principal(self, kind: str, name: str, secret_hash: str) -> bool:
        """Create a user or service account; False if one of that kind and name exists."""

        async def work(tx: Tx) -> bool:
            now = _ms()
            return (
                await tx.execute(
                    f"INSERT INTO principals ({_PRINCIPAL_COLUMNS})"  # noqa: S608
                    " VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (kind, name) DO NOTHING",
                    (kind, name, secret_hash, now, now),
                )
                == 1
            )

        return await self._db.write(work)

    async def principal(self, kind: str, name: str) -> PrincipalRecord | None:
        """One user or service account, with the groups of a user."""

        async def work(tx: Tx) -> PrincipalRecord | None:
            row = await tx.fetchone(
                f"SELECT {_PRINCIPAL_COLUMNS} FROM principals"  # noqa: S608
                " WHERE kind = ? AND name = ?",
                (kind, name),
            )
            if row is None:
                return None
            groups = await tx.fetchall(
                "SELECT group_name FROM memberships WHERE user_name = ? ORDER BY group_name",
                (name,),
            )
            return _principal(row, tuple(str(g[0]) for g in groups) if kind == USER else ())

        return await self._db.read(work)

    async def principals(self, kind: str) -> list[PrincipalRecord]:
        """Every user (or every service account), by name."""

        async def work(tx: Tx) -> list[PrincipalRecord]:
            rows = await tx.fetchall(
                f"SELECT {_PRINCIPAL_COLUMNS} FROM principals"  # noqa: S608
                " WHERE kind = ? ORDER BY name",
                (kind,),
            )
            members: dict[str, list[str]] = {}
            if kind == USER:
                for user, group in await tx.fetchall(
                    "SELECT user_name, group_name FROM memberships ORDER BY group_name"
                ):
                    members.setdefault(str(user), []).append(str(group))
            return [_principal(r, tuple(members.get(str(r[1]), ()))) for r in rows]

        return await self._db.read(work)

    async def update_principal(
        self,
        kind: str,
        name: str,
        *,
        secret_hash: str | None = None,
        disabled: bool | None = None,
    ) -> bool:
        """Change a secret or the disabled flag; False if there is no such principal."""
        sets: list[str] = ["updated_at_ms = ?"]
        params: list[object] = [_ms()]
        if secret_hash is not None:
            sets.append("secret_hash = ?")
            params.append(secret_hash)
        if disabled is not None:
            sets.append("disabled = ?")
            params.append(int(disabled))

        async def work(tx: Tx) -> bool:
            return (
                await tx.execute(
                    f"UPDATE principals SET {', '.join(sets)}"  # noqa: S608
                    " WHERE kind = ? AND name = ?",
                    (*params, kind, name),
                )
                == 1
            )

        return await self._db.write(work)

    async def remove_principal(self, kind: str, name: str) -> bool:
        """Delete a principal with its grants, memberships and tokens."""

        async def work(tx: Tx) -> bool:
            subject = f"{kind}:{name}"
            await tx.execute("DELETE FROM grants WHERE subject = ?", (subject,))
            await tx.execute("DELETE FROM auth_tokens WHERE subject = ?", (subject,))
            if kind == USER:
                await tx.execute("DELETE FROM memberships WHERE user_name = ?", (name,))
            return (
                await tx.execute("DELETE FROM principals WHERE kind = ? AND name = ?", (kind, name))
                == 1
            )

        return await self._db.write(work)

    async def set_groups(self, user: str, groups: Sequence[str]) -> None:
        """Replace a user's groups."""

        async def work(tx: Tx) -> None:
            await tx.execute("DELETE FROM memberships WHERE user_name = ?", (user,))
            await tx.executemany(
                "INSERT INTO memberships (user_name, group_name) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                [(user, g) for g in sorted(set(groups))],
            )

        await self._db.write(work)

    # grants -----------------------------------------------------------------------
    async def add_grant(self, grant: GrantRecord) -> bool:
        """Record a grant; False if the same one exists."""

        async def work(tx: Tx) -> bool:
            return (
                await tx.execute(
                    f"INSERT INTO grants ({_GRANT_COLUMNS})"  # noqa: S608
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        grant.id,
                        grant.subject,
                        grant.tenant,
                        grant.role,
                        orjson.dumps(sorted(grant.types)).decode(),
                        grant.id_prefix,
                        grant.created_at_ms,
                    ),
                )
                == 1
            )

        return await self._db.write(work)

    async def remove_grants(self, subject: str, tenant: str, role: str | None = None) -> int:
        """Remove ``subject``'s grants in ``tenant`` (of ``role`` only, when given)."""

        async def work(tx: Tx) -> int:
            if role is None:
                return await tx.execute(
                    "DELETE FROM grants WHERE subject = ? AND tenant = ?", (subject, tenant)
                )
            return await tx.execute(
                "DELETE FROM grants WHERE subject = ? AND tenant = ? AND role = ?",
                (subject, tenant, role),
            )

        return await self._db.write(work)

    async def grants_of(self, subjects: Sequence[str]) -> list[GrantRecord]:
        """The grants of any of ``subjects`` (a principal and its groups)."""
        if not subjects:
            return []

        async def work(tx: Tx) -> list[GrantRecord]:
            rows = await tx.fetchall(
                f"SELECT {_GRANT_COLUMNS} FROM grants"  # noqa: S608
                f" WHERE subject IN ({', '.join('?' * len(subjects))}) ORDER BY created_at_ms",
                tuple(subjects),
            )
            return [_grant(r) for r in rows]

        return await self._db.read(work)

    async def all_grants(self) -> list[GrantRecord]:
        """Every grant (for listings)."""

        async def work(tx: Tx) -> list[GrantRecord]:
            rows = await tx.fetchall(
                f"SELECT {_GRANT_COLUMNS} FROM grants ORDER BY subject, tenant, role"  # noqa: S608
            )
            return [_grant(r) for r in rows]

        return await self._db.read(work)

    # tokens -------------------------------------------------------------------------
    async def add_token(
        self, token_hash: str, token_id: str, kind: str, subject: str, expires_at_ms: int | None
    ) -> None:
        """Keep a new refresh or service token (by its hash)."""

        async def work(tx: Tx) -> None:
            await tx.execute(
                f"INSERT INTO auth_tokens (hash, {_TOKEN_COLUMNS})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                (token_hash, token_id, kind, subject, _ms(), expires_at_ms),
            )

        await self._db.write(work)

    async def use_token(self, token_hash: str, *, extend_to_ms: int | None) -> TokenRecord | None:
        """The token with this hash, its use recorded (and its expiry moved to
        ``extend_to_ms`` when given: refresh tokens expire after a time unused)."""

        async def work(tx: Tx) -> TokenRecord | None:
            row = await tx.fetchone(
                f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE hash = ?",  # noqa: S608
                (token_hash,),
            )
            if row is None:
                return None
            record = _token(row)
            usable = record.revoked_at_ms is None and (
                record.expires_at_ms is None or record.expires_at_ms > _ms()
            )
            if usable:
                if extend_to_ms is not None and record.expires_at_ms is not None:
                    await tx.execute(
                        "UPDATE auth_tokens SET last_used_ms = ?, expires_at_ms = ? WHERE hash = ?",
                        (_ms(), extend_to_ms, token_hash),
                    )
                else:
                    await tx.execute(
                        "UPDATE auth_tokens SET last_used_ms = ? WHERE hash = ?",
                        (_ms(), token_hash),
                    )
            return record

        return await self._db.write(work)

    async def token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, read only (the per-request check of service tokens)."""

        async def work(tx: Tx) -> TokenRecord | None:
            row = await tx.fetchone(
                f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE hash = ?",  # noqa: S608
                (token_hash,),
            )
            return None if row is None else _token(row)

        return await self._db.read(work)

    async def token_by_id(self, token_id: str) -> TokenRecord | None:
        """A token by its public id (an access token's ``sid``)."""

        async def work(tx: Tx) -> TokenRecord | None:
            row = await tx.fetchone(
                f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE id = ?",  # noqa: S608
                (token_id,),
            )
            return None if row is None else _token(row)

        return await self._db.read(work)

    async def revoke_tokens(
        self,
        *,
        token_hash: str | None = None,
        token_id: str | None = None,
        subject: str | None = None,
    ) -> int:
        """Revoke one token (by hash or id) or every token of ``subject``."""
        if token_hash is not None:
            where, param = "hash = ?", token_hash
        elif token_id is not None:
            where, param = "id = ?", token_id
        elif subject is not None:
            where, param = "subject = ?", subject
        else:
            raise StoreError("revoke_tokens needs a token or a subject")

        async def work(tx: Tx) -> int:
            return await tx.execute(
                f"UPDATE auth_tokens SET revoked_at_ms = ?"  # noqa: S608
                f" WHERE {where} AND revoked_at_ms IS NULL",
                (_ms(), param),
            )

        return await self._db.write(work)

    async def tokens_of(self, subject: str) -> list[TokenRecord]:
        """A principal's tokens, newest first (ids only: the tokens are not kept)."""

        async def work(tx: Tx) -> list[TokenRecord]:
            rows = await tx.fetchall(
                f"SELECT {_TOKEN_COLUMNS} FROM auth_tokens WHERE subject = ?"  # noqa: S608
                " ORDER BY created_at_ms DESC",
                (subject,),
            )
            return [_token(r) for r in rows]

        return await self._db.read(work)

    async def prune_tokens(self, older_than_ms: int) -> int:
        """Forget tokens expired or revoked before ``older_than_ms`` (keeps the table bounded)."""

        async def work(tx: Tx) -> int:
            return await tx.execute(
                "DELETE FROM auth_tokens WHERE (revoked_at_ms IS NOT NULL AND revoked_at_ms < ?)"
                " OR (expires_at_ms IS NOT NULL AND expires_at_ms < ?)",
                (older_than_ms, older_than_ms),
            )

        return await self._db.write(work)

    # tenants ------------------------------------------------------------------------
    async def add_tenant(self, name: str) -> bool:
        """Record a tenant (or bring back a removed one); False if it exists."""

        async def work(tx: Tx) -> bool:
            if await tx.execute(
                "UPDATE tenants SET removed_at_ms = NULL, created_at_ms = ?"
                " WHERE name = ? AND removed_at_ms IS NOT NULL",
                (_ms(), name),
            ):
                return True
            return (
                await tx.execute(
                    "INSERT INTO tenants (name, created_at_ms) VALUES (?, ?)"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, _ms()),
                )
                == 1
            )

        return await self._db.write(work)

    async def remove_tenant(self, name: str) -> bool:
        """Forget a tenant and its grants (its data stays where it is; the name is kept as
        removed, so that data is not adopted again)."""

        async def work(tx: Tx) -> bool:
            await tx.execute("DELETE FROM grants WHERE tenant = ?", (name,))
            return (
                await tx.execute(
                    "UPDATE tenants SET removed_at_ms = ? WHERE name = ? AND removed_at_ms IS NULL",
                    (_ms(), name),
                )
                == 1
            )

        return await self._db.write(work)

    async def tenants(self) -> list[str]:
        """The tenants that exist, by name."""

        async def work(tx: Tx) -> list[str]:
            rows = await tx.fetchall(
                "SELECT name FROM tenants WHERE removed_at_ms IS NULL ORDER BY name"
            )
            return [str(r[0]) for r in rows]

        return await self._db.read(work)

    async def tenant_state(self, name: str) -> str | None:
        """``exists``, ``removed`` or None (never registered)."""

        async def work(tx: Tx) -> str | None:
            row = await tx.fetchone("SELECT removed_at_ms FROM tenants WHERE name = ?", (name,))
            if row is None:
                return None
            return "exists" if row[0] is None else "removed"

        return await self._db.read(work)

    async def has_tenant(self, name: str) -> bool:
        """Whether ``name`` exists (created by an admin and not removed)."""
        return await self.tenant_state(name) == "exists"


class NotifyHosts:
    """``store.access.notify``: the per-tenant allowance of private notification hosts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def allow(self, tenant: str, host: str) -> bool:
        """Allow ``host``; False if it was allowed."""

        async def work(tx: Tx) -> bool:
            return (
                await tx.execute(
                    "INSERT INTO notify_hosts (tenant, host) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (tenant, host.lower()),
                )
                == 1
            )

        return await self._db.write(work)

    async def deny(self, tenant: str, host: str) -> bool:
        """Take the allowance back; False if there was none."""

        async def work(tx: Tx) -> bool:
            return (
                await tx.execute(
                    "DELETE FROM notify_hosts WHERE tenant = ? AND host = ?", (tenant, host.lower())
                )
                == 1
            )

        return await self._db.write(work)

    async def hosts(self, tenant: str) -> frozenset[str]:
        """The hosts allowed for ``tenant``."""

        async def work(tx: Tx) -> frozenset[str]:
            rows = await tx.fetchall("SELECT host FROM notify_hosts WHERE tenant = ?", (tenant,))
            return frozenset(str(r[0]) for r in rows)

        return await self._db.read(work)


def _principal(row: Row, groups: tuple[str, ...]) -> PrincipalRecord:
    return PrincipalRecord(
        kind=str(row[0]),
        name=str(row[1]),
        secret_hash=str(row[2]),
        disabled=bool(row[3]),
        created_at_ms=int(row[4]),
        updated_at_ms=int(row[5]),
        groups=groups,
    )
