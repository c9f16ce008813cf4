"""The cloud's own certificate authority: gateway client certificates and the server's.

Why our own CA and not a public one: a gateway's identity is "this cloud vouches for
it", which only this cloud can say, and a city's cloud often runs with no route to a
public CA. The CA is created at first start in ``DATA/pki/``:

- ``ca.key``: its private key, mode 0600, encrypted (PKCS#8, best available) when
  ``LDT_CA_PASSPHRASE`` is set, which production should do; the passphrase then never
  touches the disk.
- ``ca.pem``: its certificate (10 years, ``pathlen=0``: it signs leaves, never other CAs).
- ``server.key``/``server.pem``: the cloud's TLS certificate, re-issued when the host
  names asked for change or it nears expiry.

Keys are ECDSA P-256 (not Ed25519) for everything spoken in TLS: mosquitto, OpenSSL
1.1-era clients and the secure elements some gateways have (ATECC608, TPM 2.0) all
handle P-256, not all handle Ed25519 certificates. Artifact signatures, which only our
code verifies, use Ed25519 (``signing``).

A gateway certificate is short-lived (default 7 days, renewed by the agent when a third
is left): revocation is then checked on every request against the store, and an
unnoticed stolen certificate dies by itself. Its subject CN is the gateway id and a
``urn:ldt:gateway:<id>`` URI SAN repeats it; the cloud takes the identity from there,
never from a payload.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ldt.cloud.errors import CloudError
from ldt.cloud.gateways import valid_gateway_id
from ldt.private_files import check_private, write_private

_log = logging.getLogger("ldt.cloud.pki")

__all__ = [
    "CA_PASSPHRASE_ENV",
    "GATEWAY_CERT_DAYS",
    "CertificateAuthority",
    "CsrError",
    "IssuedCertificate",
    "check_csr",
    "csr_gateway_id",
    "gateway_uri",
]

CA_PASSPHRASE_ENV: Final = "LDT_CA_PASSPHRASE"  # noqa: S105 - the variable's name
GATEWAY_CERT_DAYS: Final = 7
_CA_DAYS: Final = 3650
_SERVER_DAYS: Final = 365
_SERVER_RENEW_DAYS: Final = 30
_CLOCK_SLACK: Final = dt.timedelta(minutes=5)
"""Certificates start a little in the past: a gateway whose clock is slightly behind
must not see a certificate that is 'not yet valid'."""
_URI_PREFIX: Final = "urn:ldt:gateway:"


class CsrError(CloudError):
    """A certificate signing request that this CA refuses; the message says why."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate just issued: its PEM, serial (hex), expiry and subject CN."""

    pem: bytes
    serial_hex: str
    not_after: dt.datetime
    common_name: str
    """The gateway id for a gateway certificate, the first host name for the server's."""


def gateway_uri(gateway_id: str) -> str:
    """The URI SAN that names a gateway in its certificate."""
    return _URI_PREFIX + gateway_id


def csr_gateway_id(csr_pem: bytes) -> str:
    """The gateway id a CSR asks for (its one subject CN); ``CsrError`` if it has none."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CsrError(f"the CSR is not a PEM certificate request: {exc}") from None
    names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(names) != 1 or not isinstance(names[0], str):
        raise CsrError("the CSR's subject must have exactly one CN: the gateway id")
    return names[0]


def check_csr(
    csr_pem: bytes, gateway_id: str
) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    """The public key of a CSR this CA accepts for ``gateway_id``.

    Raises ``CsrError`` if the CSR is not PEM, its signature does not verify (the
    requester does not hold the key), its key is not P-256/Ed25519, or its subject
    names another gateway.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CsrError(f"the CSR is not a PEM certificate request: {exc}") from None
    try:
        valid = csr.is_signature_valid
    except (InvalidSignature, ValueError):
        valid = False
    if not valid:
        raise CsrError("the CSR's signature does not verify")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise CsrError(f"the CSR's key is on {key.curve.name}; use P-256")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise CsrError("the CSR's key must be ECDSA P-256 or Ed25519")
    if not valid_gateway_id(gateway_id):  # ldt-cloud's certificate reads every gateway's topics
        raise CsrError(f"invalid gateway id {gateway_id!r}: reserved for the cloud's services")
    names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [gateway_id]:
        raise CsrError(
            f"the CSR names {', '.join(map(str, names)) or 'no gateway'}; this claim is"
            f" for gateway {gateway_id}"
        )
    return key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _encryption(passphrase: bytes | None) -> serialization.KeySerializationEncryption:
    if passphrase:
        return serialization.BestAvailableEncryption(passphrase)
    return serialization.NoEncryption()


class CertificateAuthority:
    """The CA in one folder; ``open`` creates it on first use."""

    def __init__(
        self,
        folder: Path,
        key: ec.EllipticCurvePrivateKey,
        cert: x509.Certificate,
        signing_key: ed25519.Ed25519PrivateKey | None = None,
    ):
        self.folder = folder
        self._key = key
        self.certificate = cert
        self.signing_key = signing_key or ed25519.Ed25519PrivateKey.generate()
        """Ed25519 key that signs artifacts (``ldt.contract.artifacts``); ``signing.key``."""

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: Path, *, passphrase: bytes | None = None) -> CertificateAuthority:
        """Load the CA in ``folder``, creating it (key and certificate) if there is none.

        ``passphrase`` defaults to ``$LDT_CA_PASSPHRASE`` (``b""``: none). Raises
        ``CloudError`` for a key that cannot be read (wrong passphrase, corrupt file,
        group/world-readable).
        """
        if passphrase is None:
            env = os.environ.get(CA_PASSPHRASE_ENV)
            passphrase = env.encode() if env else None
        passphrase = passphrase or None  # b"": explicitly none, whatever the environment says
        key_path, cert_path = folder / "ca.key", folder / "ca.pem"
        if not key_path.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            ca = cls._create(folder, passphrase)
            ca._save_signing_key(passphrase)
            return ca
        mode = key_path.stat().st_mode & 0o077
        if mode:
            raise CloudError(
                f"{key_path} is readable by others (mode {oct(mode)}): chmod 600 it and"
                " consider the CA compromised if anyone else could read it"
            )
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), passphrase)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            hint = f" (set {CA_PASSPHRASE_ENV}?)" if isinstance(exc, TypeError) else ""
            raise CloudError(f"cannot load the CA in {folder}: {exc}{hint}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CloudError(f"{key_path}: not an ECDSA key")
        if passphrase is None:
            _log.warning(
                "the CA key and the artifact signing key are not encrypted: set"
                f" {CA_PASSPHRASE_ENV} (whoever copies {folder} can sign certificates and"
                " artifacts for every gateway)"
            )
        signing_path = folder / "signing.key"
        check_private(signing_path)
        if not signing_path.exists():  # a CA made before artifacts were signed
            ca = cls(folder, key, cert)
            ca._save_signing_key(passphrase)
            return ca
        try:
            signing = serialization.load_pem_private_key(signing_path.read_bytes(), passphrase)
        except (OSError, ValueError, TypeError) as exc:
            raise CloudError(f"cannot load the signing key {signing_path}: {exc}") from exc
        if not isinstance(signing, ed25519.Ed25519PrivateKey):
            raise CloudError(f"{signing_path}: not an Ed25519 key")
        return cls(folder, key, cert, signing)

    def _save_signing_key(self, passphrase: bytes | None) -> None:
        pem = self.signing_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _encryption(passphrase)
        )
        write_private(self.folder / "signing.key", pem)

    @property
    def signing_public_pem(self) -> bytes:
        """The artifact signing key's public half (PEM): gateways pin it at provisioning."""
        return self.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def _create(cls, folder: Path, passphrase: bytes | None) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ldt"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"ldt cloud CA {secrets.token_hex(4)}"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SLACK)
            .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _encryption(passphrase)
        )
        write_private(folder / "ca.key", pem_key)
        (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(folder, key, cert)

    # --- what the CA publishes -----------------------------------------------------------

    @property
    def pem(self) -> bytes:
        """The CA certificate, PEM: what gateways pin."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the CA certificate (DER): carried in claim tokens."""
        return self.certificate.fingerprint(hashes.SHA256())

    def revocation_list(
        self, revoked: list[tuple[int, dt.datetime]], *, valid_for: dt.timedelta
    ) -> bytes:
        """A CRL (PEM) of ``revoked`` (serial, revocation time), signed by the CA and
        valid for ``valid_for``: what a TLS server that cannot ask the store (mosquitto)
        checks client certificates against."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - dt.timedelta(minutes=5))  # a little slack for clock skew
            .next_update(now + valid_for)
        )
        for serial, at in revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    # --- issuing -------------------------------------------------------------------------

    def _leaf(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
        days: float,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> IssuedCertificate:
        now = _now()
        not_after = now + dt.timedelta(days=days)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - _CLOCK_SLACK)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCertificate(
            pem=cert.public_bytes(serialization.Encoding.PEM),
            serial_hex=format(serial, "x"),
            not_after=not_after,
            common_name=str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value),
        )

    def issue_gateway(
        self, csr_pem: bytes, gateway_id: str, *, days: float = GATEWAY_CERT_DAYS
    ) -> IssuedCertificate:
        """A client certificate for ``gateway_id`` from its CSR (``check_csr``'s rules)."""
        key = check_csr(csr_pem, gateway_id)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)])
        return self._leaf(
            subject,
            key,
            days,
            [x509.UniformResourceIdentifier(gateway_uri(gateway_id))],
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )

    def service_client_certificate(self, name: str, *, days: float = 365) -> tuple[Path, Path]:
        """(cert path, key path) of a client certificate for one of the cloud's own
        services (``ldt-cloud``, mosquitto's superuser in its ACL), issued afresh.

        Unlike a gateway's, it carries no gateway URI and is not recorded as a gateway's:
        the HTTPS API never takes it for a gateway, and no gateway can ever get one
        (``check_csr`` refuses the reserved names)."""
        if valid_gateway_id(name):
            raise CloudError(f"{name!r} is not one of the cloud's service names")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        issued = self._leaf(
            subject,
            key.public_key(),
            days,
            [x509.UniformResourceIdentifier(f"urn:ldt:service:{name}")],
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        return self._write_pair(
            self.folder / f"{name}.pem", self.folder / f"{name}.key", key, issued
        )

    def server_certificate(self, hosts: list[str]) -> tuple[Path, Path]:
        """(cert path, key path) of the cloud's TLS certificate for ``hosts``.

        Re-issued when the host names change or fewer than 30 days are left; the key is
        new each time (0600, not encrypted: the server reads it at every start).
        """
        cert_path, key_path = self.folder / "server.pem", self.folder / "server.key"
        wanted = sorted(set(hosts))
        if cert_path.exists() and key_path.exists():
            try:
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                have = sorted(
                    [*san.get_values_for_type(x509.DNSName)]
                    + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
                )
                left = cert.not_valid_after_utc - _now()
                if have == wanted and left > dt.timedelta(days=_SERVER_RENEW_DAYS):
                    return cert_path, key_path
            except (ValueError, x509.ExtensionNotFound):
                pass  # unreadable or foreign: issue a fresh one
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in wanted:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])])
        issued = self._leaf(
            subject, key.public_key(), _SERVER_DAYS, sans, ExtendedKeyUsageOID.SERVER_AUTH
        )
        return self._write_pair(cert_path, key_path, key, issued)

    @staticmethod
    def _write_pair(
        cert_path: Path, key_path: Path, key: ec.EllipticCurvePrivateKey, issued: IssuedCertificate
    ) -> tuple[Path, Path]:
        """Write a certificate and its key (unencrypted, 0600: a service reads it at start)."""
        write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(issued.pem)
        return cert_path, key_path
