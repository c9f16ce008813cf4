"""The cloud's own access tokens: short-lived JWTs signed with a key under ``DATA/pki``.

Why JWTs for access and opaque tokens for refresh: an access token is checked on every
request, and a signature check (cached per token) needs no database read; it lives at
most ``ACCESS_TTL_S`` (15 minutes). Refresh and service tokens are random strings known
to the store only by their SHA-256, so they can be revoked; a revoked session's access
token is refused too, through its ``sid`` claim (``service`` re-reads sessions at least
every ``service.RECHECK_S``).

Signing: ES256 (ECDSA P-256), a key made on first use (``SIGNING_KEY_FILE``, 0600) next
to the CA. Brokers sharing a database share the ``pki`` folder, as they share the CA.
Verification accepts ES256 with this key only: ``alg: none``, HS256 signed with the
public key and tokens of another issuer or audience all fail.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ldt.cloud.access.errors import TokenRejectedError
from ldt.private_files import check_private, write_private

__all__ = [
    "ACCESS_TTL_S",
    "AUDIENCE",
    "ISSUER",
    "MAX_TOKEN_BYTES",
    "SIGNING_KEY_FILE",
    "AccessClaims",
    "TokenSigner",
    "refusal",
    "token_hash",
]

SIGNING_KEY_FILE: Final = "access-token-key.pem"
ISSUER: Final = "ldt"
AUDIENCE: Final = "ldt"
ACCESS_TTL_S: Final = 900
MAX_TOKEN_BYTES: Final = 8192
"""Longer bearer credentials are refused before any parsing (oversized credentials)."""
CACHE_SIZE: Final = 10_000
LEEWAY_S: Final = 30


def refusal(exc: jwt.PyJWTError) -> TokenRejectedError:
    """The log's reason for a JWT that PyJWT refused (ours or an OIDC provider's)."""
    reasons: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
        (jwt.ExpiredSignatureError, "expired"),
        (jwt.ImmatureSignatureError, "not yet valid"),
        (jwt.InvalidAudienceError, "wrong audience"),
        (jwt.InvalidIssuerError, "wrong issuer"),
        (jwt.InvalidSignatureError, "bad signature"),
    )
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return TokenRejectedError(reason)
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return TokenRejectedError(f"missing claim {exc.claim}")
    return TokenRejectedError(f"invalid token: {type(exc).__name__}")


def token_hash(token: str) -> str:
    """How the store knows a refresh or service token: hex SHA-256 (the token is random)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says: ``subject`` is ``user:NAME`` or ``client:NAME``."""

    subject: str
    session: str | None
    expires_at: float


def _load_or_create(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        return key
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{path} is not an EC private key")
    return key


class TokenSigner:
    """Issues and verifies the cloud's access tokens; verified tokens are cached."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._public = key.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode()
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()

    @classmethod
    def open(cls, pki_dir: Path) -> TokenSigner:
        """The signer whose key is ``pki_dir/SIGNING_KEY_FILE`` (made on first use)."""
        pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        check_private(pki_dir / SIGNING_KEY_FILE)
        return cls(_load_or_create(pki_dir / SIGNING_KEY_FILE))

    def issue(self, subject: str, session: str | None, ttl_s: int = ACCESS_TTL_S) -> str:
        """A signed access token for ``subject`` valid ``ttl_s`` seconds."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + min(ttl_s, ACCESS_TTL_S),
            "jti": uuid.uuid4().hex,
        }
        if session is not None:
            claims["sid"] = session
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token; raises ``TokenRejectedError`` (reason for the log)."""
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + LEEWAY_S > now:
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
            raise TokenRejectedError("expired")
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejectedError("oversized token")
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise refusal(exc) from None
        sub, sid = claims.get("sub"), claims.get("sid")
        if not isinstance(sub, str) or not isinstance(sid, str | None):
            raise TokenRejectedError("malformed claims")
        verified = AccessClaims(subject=sub, session=sid, expires_at=float(claims["exp"]))
        self._cache[token] = verified
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return verified
