"""Gateways in the store: registration and bearer tokens, claim tokens, certificates, status.

One repository for everything the cloud keeps per gateway identity, because the steps of
provisioning touch them together (a revocation kills the certificates and the bearer
token in one transaction). The rules over it are ``ldt.cloud.pki.registry`` and
``ldt.cloud.fleet``; this module only reads and writes, the same SQL on both engines.

Only the SHA-256 of a bearer token or claim secret is kept, so a leaked database does not
leak them. Times are Unix milliseconds, except ``GatewayRecord.created_at`` (ISO 8601 UTC,
as the fleet view has always shown it).
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from ldt.cloud.errors import GatewayExistsError
from ldt.cloud.store.database import Database, Row, Tx

__all__ = [
    "CertificateRecord",
    "ClaimRecord",
    "GatewayRecord",
    "GatewayRepository",
    "GatewayStatusRecord",
]


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """A registered gateway; ``created_at`` is ISO 8601 UTC."""

    id: str
    created_at: str


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A one-time claim token, as stored (``used_at_ms`` None: not redeemed yet)."""

    site: str
    gateway_id: str | None
    """None: it may certify any *new* gateway id; else only this one."""
    expires_at_ms: int
    used_at_ms: int | None
    used_by: str | None


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """A certificate the CA issued (``serial`` in lower-case hex)."""

    serial: str
    gateway_id: str
    site: str
    issued_at_ms: int
    not_after_ms: int
    revoked_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class GatewayStatusRecord:
    """A gateway's latest reported status; ``last_seen_ms`` is the cloud's clock."""

    gateway_id: str
    last_seen_ms: int
    agent_version: str
    pending: int
    oldest_pending_ms: int | None
    clock_skew_ms: int
    """The gateway's clock minus the cloud's, when the status arrived."""


_CERT_COLUMNS = "serial, gateway_id, site, issued_at_ms, not_after_ms, revoked_at_ms"
_STATUS_COLUMNS = (
    "gateway_id, last_seen_ms, agent_version, pending, oldest_pending_ms, clock_skew_ms"
)


def _utc_now() -> str:
    ms = time.time_ns() // 1_000_000
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _certificate(row: Row) -> CertificateRecord:
    return CertificateRecord(
        serial=str(row[0]),
        gateway_id=str(row[1]),
        site=str(row[2]),
        issued_at_ms=int(row[3]),
        not_after_ms=int(row[4]),
        revoked_at_ms=None if row[5] is None else int(row[5]),
    )


def _status(row: Row) -> GatewayStatusRecord:
    return GatewayStatusRecord(
        gateway_id=str(row[0]),
        last_seen_ms=int(row[1]),
        agent_version=str(row[2]),
        pending=int(row[3]),
        oldest_pending_ms=None if row[4] is None else int(row[4]),
        clock_skew_ms=int(row[5]),
    )


class GatewayRepository:
    """``store.gateways``: each method is one transaction (or one read snapshot)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # registration and bearer tokens ---------------------------------------------
    async def add(self, gateway_id: str, token_sha256: bytes, *, rotate: bool) -> None:
        """Register a gateway, or replace its token hash when ``rotate``.

        Raises ``GatewayExistsError`` if it exists and ``rotate`` is false.
        """

        async def work(tx: Tx) -> None:
            insert = (
                "INSERT INTO gateways (id, token_sha256, created_at)"  # noqa: S608
                f" VALUES (?, ?, {tx.dialect.timestamp_param}) ON CONFLICT (id)"
            )
            params = (gateway_id, token_sha256, _utc_now())
            if rotate:  # created_at stays the first registration's
                await tx.execute(
                    insert + " DO UPDATE SET token_sha256 = excluded.token_sha256", params
                )
            elif await tx.execute(insert + " DO NOTHING", params) == 0:
                raise GatewayExistsError(f"gateway {gateway_id} already exists")

        await self._db.write(work)

    async def all(self) -> list[GatewayRecord]:
        """Every registered gateway, by id."""

        async def work(tx: Tx) -> list[GatewayRecord]:
            rows = await tx.fetchall(
                f"SELECT id, {tx.dialect.iso_utc('created_at')} FROM gateways ORDER BY id"  # noqa: S608
            )
            return [GatewayRecord(id=str(r[0]), created_at=str(r[1])) for r in rows]

        return await self._db.read(work)

    async def for_token(self, token_sha256: bytes) -> str | None:
        """The gateway whose token hashes to ``token_sha256``, or None (constant-time compare)."""

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                "SELECT id, token_sha256 FROM gateways WHERE token_sha256 = ?", (token_sha256,)
            )

        row = await self._db.read(work, snapshot=False)
        if row is None or not hmac.compare_digest(bytes(row[1]), token_sha256):
            return None
        return str(row[0])

    async def revoke(self, gateway_id: str, *, at_ms: int, token_sha256: bytes) -> bool:
        """Revoke every certificate of a gateway and replace its token hash, together; its
        command points and its unused claim tokens go in the same transaction.

        ``token_sha256`` is the hash of a secret nobody holds, so the bearer token dies
        with the certificates. False (nothing written) if the gateway is not registered.
        """

        async def work(tx: Tx) -> bool:
            keyed = await tx.execute(
                "UPDATE gateways SET token_sha256 = ? WHERE id = ?", (token_sha256, gateway_id)
            )
            if keyed == 0:
                return False
            await tx.execute(
                "UPDATE gateway_certificates SET revoked_at_ms = ?"
                " WHERE gateway_id = ? AND revoked_at_ms IS NULL",
                (at_ms, gateway_id),
            )
            # what it could still be handed: commands through its points, a new identity
            await tx.execute("DELETE FROM command_points WHERE gateway_id = ?", (gateway_id,))
            await tx.execute(
                "DELETE FROM claim_tokens WHERE gateway_id = ? AND used_at_ms IS NULL",
                (gateway_id,),
            )
            return True

        return await self._db.write(work)

    async def revoked(self, gateway_id: str) -> bool:
        """Whether the gateway has been revoked: it has certificates and none is valid."""

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                "SELECT count(*), count(*) FILTER (WHERE revoked_at_ms IS NULL)"
                " FROM gateway_certificates WHERE gateway_id = ?",
                (gateway_id,),
            )

        row = await self._db.read(work)
        return row is not None and int(row[0]) > 0 and int(row[1]) == 0

    # claim tokens ---------------------------------------------------------------
    async def add_claim(
        self,
        secret_sha256: bytes,
        *,
        site: str,
        gateway_id: str | None,
        created_at_ms: int,
        expires_at_ms: int,
    ) -> None:
        """Keep a new claim token (its secret's hash)."""

        async def work(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO claim_tokens (token_sha256, site, gateway_id, created_at_ms,"
                " expires_at_ms) VALUES (?, ?, ?, ?, ?)",
                (secret_sha256, site, gateway_id, created_at_ms, expires_at_ms),
            )

        await self._db.write(work)

    async def claim(self, secret_sha256: bytes) -> ClaimRecord | None:
        """A claim token by its secret's hash, or None."""

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                "SELECT site, gateway_id, expires_at_ms, used_at_ms, used_by FROM claim_tokens"
                " WHERE token_sha256 = ?",
                (secret_sha256,),
            )

        row = await self._db.read(work)
        if row is None:
            return None
        return ClaimRecord(
            site=str(row[0]),
            gateway_id=None if row[1] is None else str(row[1]),
            expires_at_ms=int(row[2]),
            used_at_ms=None if row[3] is None else int(row[3]),
            used_by=None if row[4] is None else str(row[4]),
        )

    async def redeem_claim(
        self, secret_sha256: bytes, gateway_id: str, *, now_ms: int
    ) -> str | None:
        """Spend a claim token for ``gateway_id``: its site, or None if it cannot be spent.

        One conditional ``UPDATE .. RETURNING``: unused, unexpired, and bound to no gateway
        or to this one. Two gateways racing with one token cannot both win, in one broker
        or across brokers sharing the database.
        """

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                "UPDATE claim_tokens SET used_at_ms = ?, used_by = ?"
                " WHERE token_sha256 = ? AND used_at_ms IS NULL AND expires_at_ms > ?"
                " AND (gateway_id IS NULL OR gateway_id = ?) RETURNING site",
                (now_ms, gateway_id, secret_sha256, now_ms, gateway_id),
            )

        row = await self._db.write(work)
        return None if row is None else str(row[0])

    # certificates ----------------------------------------------------------------
    async def add_certificate(self, cert: CertificateRecord) -> None:
        """Record an issued certificate (``revoked_at_ms`` is ignored: a new one is valid)."""

        async def work(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO gateway_certificates (serial, gateway_id, site, issued_at_ms,"
                " not_after_ms) VALUES (?, ?, ?, ?, ?)",
                (cert.serial, cert.gateway_id, cert.site, cert.issued_at_ms, cert.not_after_ms),
            )

        await self._db.write(work)

    async def certificate(self, serial: str) -> CertificateRecord | None:
        """One certificate by serial (lower-case hex), or None if this CA never issued it."""

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                f"SELECT {_CERT_COLUMNS} FROM gateway_certificates WHERE serial = ?",  # noqa: S608
                (serial,),
            )

        row = await self._db.read(work)
        return None if row is None else _certificate(row)

    async def exists(self, gateway_id: str) -> bool:
        """Whether ``gateway_id`` is registered (a bearer token) or was ever issued a
        certificate: a claim token not made for it must not take the id over."""

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                "SELECT 1 FROM gateways WHERE id = ? UNION ALL"
                " SELECT 1 FROM gateway_certificates WHERE gateway_id = ? LIMIT 1",
                (gateway_id, gateway_id),
            )

        return await self._db.read(work) is not None

    async def assign_entity(self, entity_id: str, gateway_id: str) -> str | None:
        """Make ``gateway_id`` the owner of an existing entity nobody owns (one created
        through the API), so that it may write it. Returns the owner it then has (another
        gateway's id if it was taken); None if there is no such entity."""

        async def work(tx: Tx) -> str | None:
            await tx.execute(
                "UPDATE entities SET gateway_id = ? WHERE id = ? AND gateway_id IS NULL",
                (gateway_id, entity_id),
            )
            owner = await tx.fetchone("SELECT gateway_id FROM entities WHERE id = ?", (entity_id,))
            return None if owner is None else str(owner[0])

        return await self._db.write(work)

    async def has_certificates(self, gateway_id: str) -> bool:
        """Whether any certificate was ever issued to ``gateway_id`` (revoked ones count)."""

        async def work(tx: Tx) -> Row | None:
            return await tx.fetchone(
                "SELECT 1 FROM gateway_certificates WHERE gateway_id = ? LIMIT 1", (gateway_id,)
            )

        return await self._db.read(work) is not None

    async def certificates(self) -> list[CertificateRecord]:
        """Every issued certificate, by gateway then issue time."""

        async def work(tx: Tx) -> list[Row]:
            return await tx.fetchall(
                f"SELECT {_CERT_COLUMNS} FROM gateway_certificates"  # noqa: S608
                " ORDER BY gateway_id, issued_at_ms"
            )

        return [_certificate(r) for r in await self._db.read(work)]

    async def revocations(self, now_ms: int) -> tuple[list[CertificateRecord], list[str]]:
        """What the MQTT broker must refuse: the revoked certificates not yet expired (its
        CRL), and the gateways revoked, every certificate of theirs revoked (its ACL)."""

        async def work(tx: Tx) -> tuple[list[Row], list[Row]]:
            certificates = await tx.fetchall(
                f"SELECT {_CERT_COLUMNS} FROM gateway_certificates"  # noqa: S608
                " WHERE revoked_at_ms IS NOT NULL AND not_after_ms > ? ORDER BY serial",
                (now_ms,),
            )
            gateways = await tx.fetchall(
                "SELECT gateway_id FROM gateway_certificates GROUP BY gateway_id"
                " HAVING count(*) FILTER (WHERE revoked_at_ms IS NULL) = 0 ORDER BY gateway_id"
            )
            return certificates, gateways

        certificates, gateways = await self._db.read(work)
        return [_certificate(r) for r in certificates], [str(r[0]) for r in gateways]

    # status (the fleet view) -------------------------------------------------------
    async def put_status(self, status: GatewayStatusRecord) -> None:
        """Keep a gateway's latest status (replacing the previous one)."""

        async def work(tx: Tx) -> None:
            await tx.execute(
                f"INSERT INTO gateway_status ({_STATUS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608
                " ON CONFLICT (gateway_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,"
                " agent_version = excluded.agent_version, pending = excluded.pending,"
                " oldest_pending_ms = excluded.oldest_pending_ms,"
                " clock_skew_ms = excluded.clock_skew_ms",
                (
                    status.gateway_id,
                    status.last_seen_ms,
                    status.agent_version,
                    status.pending,
                    status.oldest_pending_ms,
                    status.clock_skew_ms,
                ),
            )

        await self._db.write(work)

    async def clock_skew_ms(self, gateway_id: str) -> int | None:
        """The clock skew of a gateway's last status, or None if it never sent one."""

        async def work(tx: Tx) -> int | None:
            skew = await tx.scalar(
                "SELECT clock_skew_ms FROM gateway_status WHERE gateway_id = ?", (gateway_id,)
            )
            return None if skew is None else int(skew)

        return await self._db.read(work)

    async def statuses(self) -> list[GatewayStatusRecord]:
        """Every gateway's latest status, by gateway id."""

        async def work(tx: Tx) -> list[Row]:
            return await tx.fetchall(
                f"SELECT {_STATUS_COLUMNS} FROM gateway_status ORDER BY gateway_id"  # noqa: S608
            )

        return [_status(r) for r in await self._db.read(work)]
