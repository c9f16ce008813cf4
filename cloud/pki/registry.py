"""Provisioning and authentication of gateways: claim tokens -> certificates -> requests.

The rules, in one place for both stores (``store.gateways`` keeps the records):

- a claim token is used at most once, before it expires; one bound to a gateway id
  certifies only that id; one not bound certifies only a *new* gateway id (otherwise
  anyone holding a site token could take over an existing gateway's identity);
- the CSR is checked before the token is spent, so a bad CSR does not burn the token;
- a request's client certificate must have been issued here (serial on record), name
  the same gateway, not be revoked, and not be expired (TLS checked that already;
  checked again here so that a clock-skewed TLS library cannot let it through);
- revoking a gateway revokes all its certificates and kills its bearer token, at once.

Every refusal is logged with its reason (``ldt.cloud.pki``), and raised as
``PkiRefusedError(status, reason)`` for the HTTP layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time

from cryptography import x509
from cryptography.x509.oid import NameOID

from ldt.cloud.errors import CloudError, GatewayExistsError
from ldt.cloud.gateways import valid_gateway_id
from ldt.cloud.pki.ca import (
    CertificateAuthority,
    CsrError,
    IssuedCertificate,
    check_csr,
    csr_gateway_id,
)
from ldt.cloud.store.base import Store
from ldt.cloud.store.gateways import CertificateRecord
from ldt.contract.claims import ClaimTokenError, new_claim_token, parse_claim_token

__all__ = ["CertificateRecord", "PkiRefusedError", "Provisioner"]

_log = logging.getLogger("ldt.cloud.pki")

MAX_CLAIM_TTL_S = 30 * 86400


class PkiRefusedError(CloudError):
    """A refused provisioning, renewal or request; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _ms() -> int:
    return int(time.time() * 1000)


def _unknown_token_sha256() -> bytes:
    """The hash of a bearer token nobody holds (certificate-only or revoked gateways)."""
    return hashlib.sha256(secrets.token_bytes(32)).digest()


class Provisioner:
    """The cloud's provisioning service over a store and the CA."""

    def __init__(self, store: Store, ca: CertificateAuthority) -> None:
        self.store = store
        self.ca = ca

    # --- admin ---------------------------------------------------------------------------

    async def create_claim(self, site: str, ttl_s: float, gateway_id: str | None = None) -> str:
        """A new one-time token for ``site`` (shown once; only its hash is kept)."""
        if not site.strip():
            raise CloudError("a claim token needs a site name")
        if not 0 < ttl_s <= MAX_CLAIM_TTL_S:
            raise CloudError(f"the token's lifetime must be between 1 s and {MAX_CLAIM_TTL_S} s")
        if gateway_id is not None and not valid_gateway_id(gateway_id):
            raise CloudError(f"invalid gateway id {gateway_id!r}")
        text, token = new_claim_token(self.ca.fingerprint)
        now = _ms()
        await self.store.gateways.add_claim(
            token.secret_sha256,
            site=site,
            gateway_id=gateway_id,
            created_at_ms=now,
            expires_at_ms=now + int(ttl_s * 1000),
        )
        _log.info("claim token created", extra={"site": site, "gateway": gateway_id})
        return text

    async def revoke(self, gateway_id: str) -> int:
        """Revoke every certificate of ``gateway_id`` and its bearer token; how many certs.

        ``CloudError`` for a gateway that is not registered (nothing is created).
        """
        # the bearer token dies too: replaced by the hash of a secret nobody has
        if not await self.store.gateways.revoke(
            gateway_id, at_ms=_ms(), token_sha256=_unknown_token_sha256()
        ):
            raise CloudError(f"no gateway {gateway_id} is registered")
        certs = [c for c in await self.certificates() if c.gateway_id == gateway_id]
        _log.warning("gateway revoked", extra={"gateway": gateway_id, "certificates": len(certs)})
        return len(certs)

    async def certificates(self) -> list[CertificateRecord]:
        """Every issued certificate, by gateway then issue time."""
        return await self.store.gateways.certificates()

    # --- the gateway's side --------------------------------------------------------------

    def _refuse(self, status: int, reason: str, **extra: object) -> PkiRefusedError:
        _log.warning("refused: %s", reason, extra={k: str(v) for k, v in extra.items()})
        return PkiRefusedError(status, reason)

    async def provision(self, token_text: str, csr_pem: bytes) -> IssuedCertificate:
        """Spend a claim token on a CSR; the gateway's first certificate."""
        try:
            token = parse_claim_token(token_text)
        except ClaimTokenError as exc:
            raise self._refuse(400, str(exc)) from None
        try:
            gateway_id = csr_gateway_id(csr_pem)
            check_csr(csr_pem, gateway_id)
        except CsrError as exc:
            raise self._refuse(400, str(exc)) from None
        if not valid_gateway_id(gateway_id):
            raise self._refuse(400, f"invalid gateway id {gateway_id!r} in the CSR")
        if token.ca_fingerprint != self.ca.fingerprint:
            raise self._refuse(403, "the claim token was issued by another cloud's CA")
        now = _ms()
        claim = await self.store.gateways.claim(token.secret_sha256)
        if claim is None:
            raise self._refuse(403, "unknown claim token", gateway=gateway_id)
        bound = claim.gateway_id
        if claim.used_at_ms is not None:
            raise self._refuse(
                403, f"claim token already used (by {claim.used_by})", gateway=gateway_id
            )
        if claim.expires_at_ms <= now:
            raise self._refuse(403, "claim token expired", gateway=gateway_id)
        if bound is not None and bound != gateway_id:
            raise self._refuse(
                403, f"this claim token is for gateway {bound}, the CSR names {gateway_id}"
            )
        if bound is None and await self.store.gateways.exists(gateway_id):
            raise self._refuse(
                403,
                f"gateway {gateway_id} already exists: replacing it needs a token created"
                " for it (ldt cloud token create --gateway ID)",
            )
        site = await self.store.gateways.redeem_claim(token.secret_sha256, gateway_id, now_ms=now)
        if site is None:  # lost a race for the same token
            raise self._refuse(403, "claim token already used", gateway=gateway_id)
        issued = await self._issue(csr_pem, gateway_id, site)
        _log.info(
            "gateway provisioned",
            extra={"gateway": gateway_id, "site": site, "serial": issued.serial_hex},
        )
        return issued

    async def renew(self, gateway_id: str, site: str, csr_pem: bytes) -> IssuedCertificate:
        """A new certificate for an authenticated gateway (same id, its current site)."""
        return await self._issue(csr_pem, gateway_id, site)

    async def _issue(self, csr_pem: bytes, gateway_id: str, site: str) -> IssuedCertificate:
        try:
            issued = self.ca.issue_gateway(csr_pem, gateway_id)
        except CsrError as exc:
            raise self._refuse(400, str(exc), gateway=gateway_id) from None
        with contextlib.suppress(GatewayExistsError):  # registered, with a token nobody has
            await self.store.gateways.add(gateway_id, _unknown_token_sha256(), rotate=False)
        await self.store.gateways.add_certificate(
            CertificateRecord(
                serial=issued.serial_hex,
                gateway_id=gateway_id,
                site=site,
                issued_at_ms=_ms(),
                not_after_ms=int(issued.not_after.timestamp() * 1000),
            )
        )
        return issued

    async def authenticate(self, cert_pem: str) -> tuple[str, str]:
        """(gateway id, site) of a request's client certificate, or ``PkiRefusedError`` (401)."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        except ValueError:
            raise self._refuse(401, "unreadable client certificate") from None
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        serial = format(cert.serial_number, "x")
        record = await self.store.gateways.certificate(serial)
        if record is None:
            raise self._refuse(401, "client certificate not issued by this cloud", serial=serial)
        gateway_id = record.gateway_id
        if names != [gateway_id]:
            raise self._refuse(401, "client certificate does not match its record", serial=serial)
        if record.revoked_at_ms is not None:
            raise self._refuse(401, f"gateway {gateway_id}'s certificate is revoked")
        if record.not_after_ms <= _ms():
            raise self._refuse(401, f"gateway {gateway_id}'s certificate has expired")
        return gateway_id, record.site
