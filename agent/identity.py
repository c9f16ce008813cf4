"""The gateway's identity: its private key, its certificate from the cloud's CA, the CA.

Files in ``DATA/identity/`` (``[gateway] data_dir``):

- ``key.pem``: ECDSA P-256 private key, created at first start, mode 0600, never sent
  anywhere (the cloud gets a CSR signed with it). P-256 rather than Ed25519 because
  mosquitto, OpenSSL-based peers and the secure elements some gateways carry all speak
  P-256 in TLS; see ``ldt.cloud.pki.ca``.
- ``ca.pem``: the cloud's CA certificate, pinned at provisioning after its SHA-256 matched
  the fingerprint inside the claim token (no trust on first use).
- ``cert.pem``: the client certificate, replaced atomically at each renewal.

``provision`` is what ``ldt gw provision HOST --token T`` runs; ``client_context`` is the
TLS 1.3 context every agent-to-cloud connection uses once provisioned.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ldt.contract.claims import ClaimTokenError, parse_claim_token
from ldt.private_files import write_private

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

__all__ = [
    "IDENTITY_DIRNAME",
    "Identity",
    "IdentityError",
    "client_context",
    "provision",
    "renew",
]

IDENTITY_DIRNAME = "identity"
_PKI = "/ldt/v1/pki"


class IdentityError(Exception):
    """The identity cannot be created, read or provisioned; the message says why."""


@dataclass(frozen=True)
class Identity:
    """The identity folder of one gateway."""

    folder: Path
    gateway_id: str

    @classmethod
    def of(cls, data_dir: Path, gateway_id: str) -> Identity:
        """The identity under a gateway's data folder (nothing is created yet)."""
        return cls(data_dir / IDENTITY_DIRNAME, gateway_id)

    @property
    def key_path(self) -> Path:
        """The private key."""
        return self.folder / "key.pem"

    @property
    def cert_path(self) -> Path:
        """The client certificate."""
        return self.folder / "cert.pem"

    @property
    def ca_path(self) -> Path:
        """The pinned CA certificate."""
        return self.folder / "ca.pem"

    @property
    def signing_key_path(self) -> Path:
        """The cloud's artifact signing key (public, Ed25519), pinned at provisioning."""
        return self.folder / "signing.pub"

    def signing_key(self) -> ed25519.Ed25519PublicKey:
        """The pinned artifact signing key; ``IdentityError`` if there is none."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        try:
            key = serialization.load_pem_public_key(self.signing_key_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise IdentityError(f"no artifact signing key in {self.folder}: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise IdentityError(f"{self.signing_key_path} is not an Ed25519 key")
        return key

    @property
    def provisioned(self) -> bool:
        """Whether the gateway holds a certificate (maybe expired)."""
        return self.cert_path.exists() and self.ca_path.exists() and self.key_path.exists()

    # A forced re-provisioning must not cut a working gateway off (a wrong host, a token of
    # another cloud): the new identity waits in ``pending`` (its own key, CA and signing
    # key) and replaces this one only once a batch went through with it (``promote``).

    def pending(self) -> Identity:
        """Where a re-provisioned identity waits for its first successful sync."""
        return Identity(self.folder.with_name(self.folder.name + ".pending"), self.gateway_id)

    def previous(self) -> Identity:
        """The identity a promotion replaced (kept for diagnosis, one generation)."""
        return Identity(self.folder.with_name(self.folder.name + ".previous"), self.gateway_id)

    def promote(self) -> None:
        """Make the pending identity the current one; the current one becomes ``previous``.

        Two renames; a power cut between them leaves no current folder, and ``recover``
        (run before every use) finishes the promotion."""
        pending, previous = self.pending().folder, self.previous().folder
        if not pending.exists():
            raise IdentityError(f"no pending identity in {pending}")
        shutil.rmtree(previous, ignore_errors=True)
        if self.folder.exists():
            self.folder.rename(previous)
        pending.rename(self.folder)

    def recover(self) -> None:
        """Finish a promotion a crash interrupted (see ``promote``)."""
        pending = self.pending().folder
        if not self.folder.exists() and pending.exists() and self.previous().folder.exists():
            pending.rename(self.folder)

    def ensure_key(self) -> ec.EllipticCurvePrivateKey:
        """The private key, created (0600) on first use; refuses one others can read."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.key_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            write_private(
                self.key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            return key
        mode = self.key_path.stat().st_mode & 0o077
        if mode:
            raise IdentityError(f"{self.key_path} is readable by others: chmod 600 it")
        try:
            loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        except (OSError, ValueError, TypeError) as exc:
            raise IdentityError(f"cannot read the gateway key {self.key_path}: {exc}") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise IdentityError(f"{self.key_path} is not an ECDSA key")
        return loaded

    def csr(self) -> bytes:
        """A CSR for this gateway id, signed with its key (PEM)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import NameOID

        key = self.ensure_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.gateway_id)])
        request = x509.CertificateSigningRequestBuilder().subject_name(subject)
        return request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def certificate(self) -> x509.Certificate:
        """The current client certificate; ``IdentityError`` if there is none."""
        from cryptography import x509

        try:
            return x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise IdentityError(f"no usable certificate in {self.cert_path}: {exc}") from exc

    def store_certificate(self, cert_pem: bytes) -> x509.Certificate:
        """Check a certificate from the cloud (our key, our id) and make it the current one."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import NameOID

        cert = x509.load_pem_x509_certificate(cert_pem)
        key = self.ensure_key()
        ours = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        theirs = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if ours != theirs or names != [self.gateway_id]:
            raise IdentityError("the cloud returned a certificate for another key or gateway")
        write_private(self.cert_path, cert_pem)
        validity = {
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
        }
        self.validity_path.write_text(json.dumps(validity), encoding="utf-8")
        return cert

    @property
    def validity_path(self) -> Path:
        """The certificate's validity dates, so checking them needs no X.509 parser."""
        return self.folder / "cert.json"

    def validity(self) -> tuple[dt.datetime, dt.datetime]:
        """(not before, not after) of the current certificate.

        Read from ``cert.json`` when it matches: the agent checks every 10 minutes, and
        parsing X.509 would keep the ``cryptography`` package (~14 MiB) in memory for it.
        """
        try:
            if self.validity_path.stat().st_mtime >= self.cert_path.stat().st_mtime:
                data = json.loads(self.validity_path.read_text(encoding="utf-8"))
                return (
                    dt.datetime.fromisoformat(data["not_before"]),
                    dt.datetime.fromisoformat(data["not_after"]),
                )
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or stale: parse the certificate itself
        cert = self.certificate()
        return cert.not_valid_before_utc, cert.not_valid_after_utc

    def renewal_due(self, now: dt.datetime | None = None) -> bool:
        """Whether less than a third of the certificate's lifetime is left."""
        not_before, not_after = self.validity()
        now = now or dt.datetime.now(dt.UTC)
        return not_after - now < (not_after - not_before) / 3


def client_context(identity: Identity) -> ssl.SSLContext:
    """TLS 1.3, the pinned CA only, our certificate and key: every agent-cloud connection."""
    ctx = ssl.create_default_context(cafile=str(identity.ca_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(identity.cert_path, identity.key_path)
    return ctx


def _https(host: str) -> str:
    base = host if "://" in host else f"https://{host}"
    if not base.startswith("https://"):
        raise IdentityError(f"provisioning runs over https only, not {base}")
    return base.rstrip("/")


def _problem(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"{response.status_code}: {detail or response.text[:300]}"


async def provision_or_stage(
    host: str, token: str, identity: Identity, *, timeout_s: float = 30
) -> tuple[str, bool]:
    """``provision`` a new gateway, ``reprovision`` one that has an identity: (the
    certificate's expiry, whether the new identity waits for its first sync)."""
    if identity.provisioned:
        return await reprovision(host, token, identity, timeout_s=timeout_s), True
    return await provision(host, token, identity, timeout_s=timeout_s), False


async def reprovision(host: str, token: str, identity: Identity, *, timeout_s: float = 30) -> str:
    """``provision`` a gateway that has an identity: the new one (a new key, CA and
    signing key) goes to ``identity.pending()`` and the current one stays in use until a
    batch went through with the new one (``MutualTlsTransport``); its expiry (ISO)."""
    pending = identity.pending()
    shutil.rmtree(pending.folder, ignore_errors=True)  # an older attempt that never synced
    try:
        return await provision(host, token, pending, timeout_s=timeout_s)
    except BaseException:
        shutil.rmtree(pending.folder, ignore_errors=True)
        raise


async def provision(host: str, token: str, identity: Identity, *, timeout_s: float = 30) -> str:
    """Get this gateway's first certificate from the cloud at ``host``; its expiry (ISO).

    1. The CA certificate is fetched without trusting it yet, and its SHA-256 must equal
       the fingerprint in the claim token: a look-alike server is refused here, before
       the token is sent anywhere.
    2. The token and a CSR go to the cloud over TLS verified against that CA.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    base = _https(host)
    try:
        claim = parse_claim_token(token)
    except ClaimTokenError as exc:
        raise IdentityError(str(exc)) from None
    csr = identity.csr()
    try:
        async with httpx.AsyncClient(verify=False, timeout=timeout_s) as raw:  # noqa: S501 - checked below
            response = await raw.get(f"{base}{_PKI}/ca")
        if response.status_code != 200:
            raise IdentityError(f"cannot fetch the cloud's CA: {_problem(response)}")
        ca = x509.load_pem_x509_certificate(response.content)
        fingerprint = ca.fingerprint(hashes.SHA256())
        if not hmac.compare_digest(fingerprint, claim.ca_fingerprint):
            raise IdentityError(
                f"{base} is not the cloud that issued this token (its CA fingerprint"
                f" {fingerprint.hex()[:16]}... differs from the token's)"
            )
        ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        pinned = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
        pinned.minimum_version = ssl.TLSVersion.TLSv1_3
        async with httpx.AsyncClient(verify=pinned, timeout=timeout_s) as client:
            response = await client.post(
                f"{base}{_PKI}/provision", json={"token": token, "csr": csr.decode("ascii")}
            )
    except (httpx.HTTPError, ssl.SSLError, ValueError) as exc:
        raise IdentityError(f"cannot reach {base}: {exc}") from exc
    if response.status_code != 201:
        raise IdentityError(f"the cloud refused the provisioning: {_problem(response)}")
    body = response.json()
    identity.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    identity.ca_path.write_bytes(ca_pem)
    identity.signing_key_path.write_bytes(str(body["signingKey"]).encode("ascii"))
    cert = identity.store_certificate(str(body["certificate"]).encode("ascii"))
    return cert.not_valid_after_utc.isoformat()


async def renew(base_url: str, identity: Identity, *, timeout_s: float = 30) -> str:
    """Replace the certificate with a fresh one (same key), over mutual TLS; its expiry."""
    csr = identity.csr()
    try:
        async with httpx.AsyncClient(verify=client_context(identity), timeout=timeout_s) as c:
            response = await c.post(
                f"{_https(base_url)}{_PKI}/renew", json={"csr": csr.decode("ascii")}
            )
    except (httpx.HTTPError, ssl.SSLError) as exc:
        raise IdentityError(f"renewal failed: {exc}") from exc
    if response.status_code != 201:
        raise IdentityError(f"the cloud refused the renewal: {_problem(response)}")
    cert = identity.store_certificate(str(response.json()["certificate"]).encode("ascii"))
    return cert.not_valid_after_utc.isoformat()
