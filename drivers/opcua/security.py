"""Applying a connection's security settings to an asyncua client.

Certificates, keys and the password file are read here (small local files,
read synchronously once per connect). Problems with them are configuration
errors: ``DriverError`` with the file named, never retried into a loop of
identical failures without saying why.
"""

from __future__ import annotations

from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
    load_pem_private_key,
)

from ldt.drivers.errors import DriverError
from ldt.drivers.opcua.config import OpcUaConnection, SecurityMode, SecurityPolicy
from ldt.drivers.opcua.refusals import ClientIdentity, thumbprint

__all__ = ["DEFAULT_APPLICATION_URI", "application_uri_of", "apply_security", "read_password"]

DEFAULT_APPLICATION_URI = "urn:ldt:gateway"

_POLICIES: dict[SecurityPolicy, type[security_policies.SecurityPolicy]] = {
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256,
}
_MODES = {
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DriverError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


def _load_certificate(path: Path, what: str) -> x509.Certificate:
    raw = _read(path, what)
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise DriverError(f"the {what} {path} is not a PEM or DER X.509 certificate") from exc


def application_uri_of(cert: x509.Certificate) -> str | None:
    """The first URI in the certificate's subjectAltName (OPC UA's application URI)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _check_key_matches(cert: x509.Certificate, key: bytes, conn: OpcUaConnection) -> None:
    """A key that is not the certificate's makes the server drop the channel with only
    ``BadTcpInternalError`` (a bad signature): say so before connecting."""
    try:
        load = load_pem_private_key if b"-----BEGIN" in key else load_der_private_key
        private = load(key, password=None)
    except (ValueError, TypeError) as exc:
        raise DriverError(
            f"the client private key {conn.client_private_key} cannot be used: {exc}"
        ) from exc
    spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise DriverError(
            f"the client private key {conn.client_private_key} does not belong to the client "
            f"certificate {conn.client_certificate} (their public keys differ)"
        )


def read_password(conn: OpcUaConnection) -> str | None:
    """The password from the config or the first line of ``password_file``."""
    if conn.password is not None:
        return conn.password.get_secret_value()
    if conn.password_file is None:
        return None
    text = _read(conn.password_file, "password file").decode("utf-8", "replace")
    lines = text.splitlines()
    return lines[0] if lines else ""


async def apply_security(client: Client, conn: OpcUaConnection) -> ClientIdentity:
    """Set the client's application URI, security policy and user identity.

    With a policy, the server's certificate is fetched from its endpoints
    first (one extra round trip without security) and checked against the
    pinned one. Raises ``DriverError`` for unreadable or unusable files, a key
    that is not the certificate's, and a server certificate that is not the
    pinned one. Returns what the gateway presents, for explaining a refusal.
    """
    client.name = client.description = "ldt gateway"
    client.application_uri = conn.application_uri or DEFAULT_APPLICATION_URI
    if conn.username is not None:
        client.set_user(conn.username)
        password = read_password(conn)
        if password is not None:
            client.set_password(password)
    if conn.security_policy is SecurityPolicy.NONE:
        return ClientIdentity(username=conn.username)
    assert conn.client_certificate is not None
    assert conn.client_private_key is not None
    cert = _load_certificate(conn.client_certificate, "client certificate")
    if conn.application_uri is None:
        client.application_uri = application_uri_of(cert) or DEFAULT_APPLICATION_URI
    key = _read(conn.client_private_key, "client private key")
    _check_key_matches(cert, key, conn)
    pinned_der: bytes | None = None
    if conn.server_certificate is not None:
        pinned_der = _load_certificate(conn.server_certificate, "server certificate").public_bytes(
            Encoding.DER
        )
    try:
        # The server's certificate is always taken from its endpoints and then
        # compared with the pinned one: encrypting to a wrong pinned key would
        # only make the server fall silent, a timeout with no reason.
        await client.set_security(
            _POLICIES[conn.security_policy],
            uacrypto.CertProperties(cert.public_bytes(Encoding.DER), extension="der"),
            uacrypto.CertProperties(key, extension="pem" if b"-----BEGIN" in key else "der"),
            server_certificate=None,
            mode=_MODES[conn.security_mode],
        )
    except ValueError as exc:
        raise DriverError(
            f"the client private key {conn.client_private_key} cannot be used: {exc}"
        ) from exc
    presented = client.security_policy.peer_certificate
    if pinned_der is not None and presented != pinned_der:
        raise DriverError(
            f"the server presents a certificate other than the pinned {conn.server_certificate}"
        )
    return ClientIdentity(
        policy=conn.security_policy.value,
        mode=conn.security_mode.value,
        certificate=str(conn.client_certificate),
        thumbprint=thumbprint(cert.public_bytes(Encoding.DER)),
        application_uri=client.application_uri,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        username=conn.username,
    )
