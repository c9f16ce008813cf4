"""Signed artifacts: what the cloud pushes (configs, models, rules) and how a gateway checks it.

An artifact travels as its content (bytes) and an envelope::

    {"kind": "model", "name": "air-anomaly", "version": 4, "sha256": "<hex>",
     "size": 12345, "signature": "<base64 Ed25519>"}

The signature covers ``ldt-artifact-v1``, the kind, the name, the version and the content's
SHA-256, so it can be neither moved to another artifact nor replayed under another version.
Ed25519 because only our own code verifies it (TLS keys are P-256, see
``ldt.cloud.pki.ca``), it is deterministic (no nonce to get wrong) and small.

The gateway keeps the highest version it accepted per (kind, name) and refuses anything not
newer: an attacker replaying last month's signed rule set gets nothing. A rollback is
therefore published as a *new* version whose content is the old one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

__all__ = [
    "ARTIFACT_KINDS",
    "Artifact",
    "ArtifactError",
    "envelope_message",
    "sign_artifact",
    "verify_artifact",
]

ARTIFACT_KINDS: Final = ("config", "model", "rules")
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DOMAIN: Final = b"ldt-artifact-v1"
MAX_ARTIFACT_BYTES: Final = 64 << 20


class ArtifactError(ValueError):
    """An artifact refused; the message is the reason reported to the cloud."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """A verified artifact."""

    kind: str
    name: str
    version: int
    sha256: str
    content: bytes


def _check_identity(kind: str, name: str, version: int) -> None:
    if kind not in ARTIFACT_KINDS:
        raise ArtifactError(f"unknown artifact kind {kind!r} (one of {', '.join(ARTIFACT_KINDS)})")
    if not _NAME.match(name):
        raise ArtifactError(f"invalid artifact name {name!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArtifactError(f"invalid artifact version {version!r}: a positive integer")


def envelope_message(kind: str, name: str, version: int, sha256_hex: str) -> bytes:
    """The bytes the signature covers."""
    return b"\n".join(
        [_DOMAIN, kind.encode(), name.encode(), str(version).encode(), sha256_hex.encode()]
    )


def sign_artifact(
    key: ed25519.Ed25519PrivateKey, kind: str, name: str, version: int, content: bytes
) -> dict[str, Any]:
    """The envelope of ``content`` (the cloud's side)."""
    _check_identity(kind, name, version)
    if len(content) > MAX_ARTIFACT_BYTES:
        raise ArtifactError(f"artifact larger than {MAX_ARTIFACT_BYTES} bytes")
    digest = hashlib.sha256(content).hexdigest()
    signature = key.sign(envelope_message(kind, name, version, digest))
    return {
        "kind": kind,
        "name": name,
        "version": version,
        "sha256": digest,
        "size": len(content),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def verify_artifact(envelope: Any, content: bytes, key: ed25519.Ed25519PublicKey) -> Artifact:
    """Check an envelope and its content against the cloud's signing key.

    Raises ``ArtifactError`` naming what failed: the envelope's shape, the size, the
    content hash (tampered in transit or at rest), or the signature (not signed by this
    cloud, or signed for another kind, name or version).
    """
    if not isinstance(envelope, dict):
        raise ArtifactError("the artifact envelope is not an object")
    try:
        kind, name, version = envelope["kind"], envelope["name"], envelope["version"]
        digest, size, signature_b64 = envelope["sha256"], envelope["size"], envelope["signature"]
    except KeyError as exc:
        raise ArtifactError(f"the artifact envelope lacks {exc.args[0]!r}") from None
    if not all(isinstance(v, str) for v in (kind, name, digest, signature_b64)):
        raise ArtifactError("the artifact envelope has fields of the wrong type")
    _check_identity(kind, name, version)
    if size != len(content):
        raise ArtifactError(f"size {len(content)} differs from the signed {size}")
    actual = hashlib.sha256(content).hexdigest()
    if actual != digest:
        raise ArtifactError("content does not match its signed SHA-256 (tampered or corrupt)")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, envelope_message(kind, name, version, digest))
    except (binascii.Error, ValueError, InvalidSignature):
        raise ArtifactError("signature does not verify with the cloud's signing key") from None
    return Artifact(kind=kind, name=name, version=version, sha256=digest, content=content)
