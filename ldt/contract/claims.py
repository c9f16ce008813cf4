"""One-time claim tokens: what a technician gives a gateway so the cloud will certify it.

Shared by both sides (the cloud issues and checks them, the agent reads the fingerprint).

A token is ``ldt1.<secret>.<fingerprint>``: 18 random bytes and the SHA-256 of the CA
certificate, both URL-safe base64. The secret proves the technician was sent by an admin;
the fingerprint lets the gateway check that it talks to *this* cloud before it sends
anything (it fetches the CA certificate, compares, then pins it): one string to paste,
no certificate file to carry, no trust on first use. The cloud stores only the secret's
SHA-256, the site, an optional gateway id the token is bound to, and its expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

__all__ = ["ClaimToken", "ClaimTokenError", "new_claim_token", "parse_claim_token"]

_PREFIX: Final = "ldt1"
_SHAPE: Final = re.compile(r"^ldt1\.([A-Za-z0-9_-]{24})\.([A-Za-z0-9_-]{43})$")


class ClaimTokenError(ValueError):
    """Not a claim token (malformed), or one the cloud refuses; the message says which."""


@dataclass(frozen=True, slots=True)
class ClaimToken:
    """A parsed token: the secret's SHA-256 and the CA fingerprint it names."""

    secret_sha256: bytes
    ca_fingerprint: bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def new_claim_token(ca_fingerprint: bytes) -> tuple[str, ClaimToken]:
    """A fresh token string (shown once) and what the cloud keeps of it."""
    secret = secrets.token_bytes(18)
    text = f"{_PREFIX}.{_b64(secret)}.{_b64(ca_fingerprint)}"
    return text, ClaimToken(hashlib.sha256(secret).digest(), ca_fingerprint)


def parse_claim_token(text: str) -> ClaimToken:
    """Parse a token string; ``ClaimTokenError`` if it is not one."""
    match = _SHAPE.match(text.strip())
    if match is None:
        raise ClaimTokenError("not an ldt claim token (expected ldt1.<secret>.<fingerprint>)")
    try:
        secret = base64.urlsafe_b64decode(match.group(1))
        fingerprint = base64.urlsafe_b64decode(match.group(2) + "=")
    except (binascii.Error, ValueError) as exc:
        raise ClaimTokenError(f"malformed claim token: {exc}") from None
    return ClaimToken(hashlib.sha256(secret).digest(), fingerprint)
