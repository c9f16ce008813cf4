"""Access tokens from an external OpenID Connect provider (Keycloak, Keyrock, any issuer).

``ldt cloud serve --oidc-issuer URL`` lets people sign in where the city already manages
them; the cloud only has to check the provider's signed access tokens. This module does
that check, and nothing in it trusts the token before its signature is verified:

* The keys come from configuration only: ``{issuer}/.well-known/openid-configuration``
  names the JWKS (which must be on the issuer's own scheme, host and port), or an
  explicit ``jwks_url`` does. The token's ``jku``, ``x5u``, ``x5c`` and ``jwk`` headers
  are never read: following them would let a token bring its own key.
* Asymmetric algorithms only, and only the one the selected key can make: an ``HS256``
  token "signed" with the provider's public key as the HMAC secret, or ``alg: none``,
  is refused before any key is used.
* Fetching is bounded (time, size, no redirects, at most ``MAX_KEYS`` keys) and rate
  limited: a flood of tokens with made-up key ids triggers at most one JWKS fetch per
  ``min_refresh_interval_s``, so the cloud cannot be used to hammer the provider.

Every refusal is a ``TokenRejectedError`` with a short reason for the server's log; the
HTTP layer answers 401 without saying which check failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import jwt
from jwt.algorithms import AllowedPublicKeys

from ldt.cloud.access.errors import TokenRejectedError
from ldt.cloud.access.roles import Grant, parse_role_claim
from ldt.cloud.access.tokens import refusal

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_JWKS_BYTES",
    "MAX_KEYS",
    "MAX_TOKEN_BYTES",
    "ExternalIdentity",
    "OidcSettings",
    "OidcVerifier",
]

_log = logging.getLogger("ldt.cloud.access.oidc")

ALLOWED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Asymmetric signatures only: an HS* secret would have to be shared with every API."""

MAX_TOKEN_BYTES: Final = 8 * 1024
"""Larger tokens are refused before parsing (a header of that size is already abuse)."""
MAX_JWKS_BYTES: Final = 256 * 1024
"""Largest discovery document or JWKS read; the stream is cut beyond it."""
MAX_KEYS: Final = 100
"""Keys kept from one JWKS; providers publish a handful (current, next, previous)."""
FETCH_TIMEOUT_S: Final = 5.0
"""Whole-request deadline for each fetch (connect, headers and body together)."""
MIN_RSA_BITS: Final = 2048

_DISCOVERY_PATH: Final = "/.well-known/openid-configuration"

# Which header algorithms each key type can make; for EC the curve fixes the hash too.
_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVE_ALGORITHM: Final = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES: Final = frozenset({"Ed25519", "Ed448"})

# Keycloak marks its other tokens with a ``typ`` claim; they are signed with the same key
# and must not pass as access tokens (an ID token is meant for the client, not the API).
_NOT_ACCESS_TOKEN_TYPES: Final = frozenset({"id", "refresh", "offline", "logout"})


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """Which provider to trust, and where its tokens keep the roles."""

    issuer: str
    """E.g. ``https://kc.example/realms/city``; must equal the tokens' ``iss`` (a trailing
    slash on either side is tolerated)."""
    audience: str | None = None
    """When set, the token's ``aud`` (a string or a list) must contain it. Set it when the
    provider issues tokens for other services too, or they would be accepted here."""
    roles_claim: str = "realm_access.roles"
    """Dot path to the roles in the claims; Keycloak's realm roles by default."""
    jwks_url: str | None = None
    """Explicit JWKS address (may be on another host); otherwise from discovery."""


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who a verified token speaks for, and what the provider lets them do here."""

    subject: str
    """``sub``: stable per provider, unlike the name."""
    name: str
    """``preferred_username``, else ``sub``: what audit lines show."""
    grants: tuple[Grant, ...]
    """Roles from ``roles_claim`` that name one of ours (``operator@water``); the
    provider's own roles (``offline_access``) are ignored."""
    expires_at: float
    """``exp``, epoch seconds: a session built on the token must not outlive it."""


@dataclass(frozen=True, slots=True)
class _Key:
    """A verification key from the JWKS, with what is needed to match it to a header."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: AllowedPublicKeys

    def accepts(self, alg: str) -> bool:
        """Whether a token header's ``alg`` is one this key can have made."""
        if self.alg is not None and self.alg != alg:
            return False
        if self.kty == "RSA":
            return alg in _RSA_ALGORITHMS
        if self.kty == "EC":
            return self.crv is not None and _EC_CURVE_ALGORITHM.get(self.crv) == alg
        if self.kty == "OKP":
            return alg == "EdDSA"
        return False


class _FetchError(Exception):
    """The provider could not be reached or answered something unusable.

    The message goes to the log; ``reason`` becomes the refused tokens' reason.
    """

    def __init__(self, message: str, reason: str = "issuer unreachable") -> None:
        super().__init__(message)
        self.reason = reason


class OidcVerifier:
    """Verifies a provider's access tokens against its published keys.

    One instance serves the whole process: it caches the JWKS (at most ``MAX_KEYS``
    keys) and refreshes it when a token names an unknown key (rotation) or the keys are
    older than ``max_key_age_s``, never more often than ``min_refresh_interval_s``.
    A failed refresh keeps the cached keys, so a provider outage does not log everyone
    out while their tokens are still valid.
    """

    def __init__(
        self,
        settings: OidcSettings,
        *,
        client: httpx.AsyncClient | None = None,
        min_refresh_interval_s: float = 30.0,
        max_key_age_s: float = 3600.0,
        leeway_s: float = 30.0,
    ) -> None:
        self._settings = settings
        self._issuer = settings.issuer.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        self._min_refresh_interval_s = min_refresh_interval_s
        self._max_key_age_s = max_key_age_s
        self._leeway_s = leeway_s
        self._roles_path = tuple(settings.roles_claim.split("."))
        self._lock = asyncio.Lock()
        self._keys: dict[str | None, _Key] = {}
        self._keys_at: float | None = None  # monotonic time of the last successful fetch
        self._attempt_at: float | None = None  # monotonic time of the last attempt
        self._attempts = 0  # bumped per attempt: waiters on the lock skip a fetch just made
        self._last_error: str | None = None  # refusal reason while the last attempt failed
        self._jwks_url: str | None = settings.jwks_url  # discovered lazily otherwise

    async def aclose(self) -> None:
        """Close the HTTP client, if this verifier created it."""
        if self._owns_client:
            await self._client.aclose()

    # --- verification ---------------------------------------------------------------

    async def verify(self, token: str) -> ExternalIdentity:
        """The identity ``token`` speaks for; ``TokenRejectedError`` on any doubt."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejectedError("token too large")
        if not token.isascii():  # base64url and dots only; also keeps the size in bytes
            raise TokenRejectedError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejectedError("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise TokenRejectedError("algorithm not allowed")
        if "crit" in header:  # no critical extension is understood here (RFC 7515 4.1.11)
            raise TokenRejectedError("unsupported critical header")
        kid = header.get("kid")  # a str when present: PyJWT checked it
        key = await self._key_for(kid)
        if not key.accepts(alg):
            raise TokenRejectedError("algorithm does not match the key")
        claims = self._decode(token, key, alg)
        return self._identity(claims)

    def _decode(self, token: str, key: _Key, alg: str) -> dict[str, Any]:
        """Signature and time claims by PyJWT; issuer, audience and subject checked here."""
        audience = self._settings.audience
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=audience,
                leeway=self._leeway_s,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_iss": False,  # compared below, trailing-slash tolerant
                    "verify_aud": audience is not None,
                    "verify_sub": True,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise refusal(exc) from None
        except (ValueError, TypeError, OverflowError) as exc:  # defensive: odd claim types
            raise TokenRejectedError(f"invalid token: {type(exc).__name__}") from None
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss.rstrip("/") != self._issuer:
            raise TokenRejectedError("wrong issuer")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenRejectedError("missing claim sub")
        typ = claims.get("typ")
        if isinstance(typ, str) and typ.lower() in _NOT_ACCESS_TOKEN_TYPES:
            raise TokenRejectedError("not an access token")
        return claims

    def _identity(self, claims: Mapping[str, Any]) -> ExternalIdentity:
        """The verified claims as an identity, roles mapped to grants."""
        subject: str = claims["sub"]
        username = claims.get("preferred_username")
        name = username if isinstance(username, str) and username else subject
        grants: dict[Grant, None] = {}  # ordered and deduplicated
        for role in _role_names(_claim_at(claims, self._roles_path)):
            grant = parse_role_claim(role)
            if grant is not None:
                grants[grant] = None
        return ExternalIdentity(
            subject=subject,
            name=name,
            grants=tuple(grants),
            expires_at=float(claims["exp"]),
        )

    # --- keys -----------------------------------------------------------------------

    async def _key_for(self, kid: str | None) -> _Key:
        """The cached key for ``kid``, refreshing the JWKS when stale or on a miss."""
        if self._keys_at is None or time.monotonic() - self._keys_at >= self._max_key_age_s:
            await self._refresh()
        key = self._lookup(kid)
        if key is None:
            await self._refresh()
            key = self._lookup(kid)
            if key is None:
                # While the provider is failing, a missing key may be a rotation not seen yet.
                if self._last_error is not None:
                    raise TokenRejectedError(self._last_error)
                raise TokenRejectedError("unknown key")
        return key

    def _lookup(self, kid: str | None) -> _Key | None:
        """By ``kid``; a token without one may use the only key of a one-key JWKS."""
        if kid is not None:
            return self._keys.get(kid)
        if len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return None

    async def _refresh(self) -> None:
        """Fetch the JWKS, at most once per ``min_refresh_interval_s``, one fetch at a time.

        Callers that waited on the lock while another fetched skip their own fetch: the
        attempt counter moved. A failure keeps the cached keys and is logged.
        """
        seen = self._attempts
        async with self._lock:
            if self._attempts != seen:
                return
            now = time.monotonic()
            if (
                self._attempt_at is not None
                and now - self._attempt_at < self._min_refresh_interval_s
            ):
                return
            self._attempt_at = now
            self._attempts += 1
            try:
                keys = await self._fetch_keys()
            except _FetchError as exc:
                self._last_error = exc.reason
                _log.warning(
                    "OIDC issuer %s: cannot refresh its keys (%s); %d cached key(s) kept",
                    self._issuer,
                    exc,
                    len(self._keys),
                )
                return
            self._keys = keys
            self._keys_at = time.monotonic()
            self._last_error = None

    async def _fetch_keys(self) -> dict[str | None, _Key]:
        """Discover the JWKS address if needed, fetch it and keep its usable keys."""
        jwks_url = self._jwks_url or await self._discover()
        try:
            document = await self._get_json(jwks_url)
        except _FetchError:
            if self._settings.jwks_url is None:
                self._jwks_url = None  # rediscover next time: the provider may have moved it
            raise
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            raise _FetchError(f"{jwks_url}: no 'keys' list")
        keys: dict[str | None, _Key] = {}
        for raw in raw_keys:
            if len(keys) >= MAX_KEYS:
                _log.warning("OIDC JWKS %s: more than %d keys, rest ignored", jwks_url, MAX_KEYS)
                break
            key = _parse_jwk(raw)
            if key is not None and key.kid not in keys:
                keys[key.kid] = key
        if not keys:
            raise _FetchError(f"{jwks_url}: no usable signing key")
        return keys

    async def _discover(self) -> str:
        """The ``jwks_uri`` of the issuer's discovery document, on the issuer's origin.

        A JWKS elsewhere would let whoever controls the discovery document's content
        (or a mistaken proxy) point the cloud at keys of their choosing; an operator who
        really hosts the keys elsewhere says so with ``jwks_url``.
        """
        document = await self._get_json(self._issuer + _DISCOVERY_PATH)
        issuer = document.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self._issuer:
            raise _FetchError(
                f"discovery document names another issuer: {issuer!r}", "issuer misconfigured"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _FetchError("discovery document has no jwks_uri", "issuer misconfigured")
        if not _same_origin(jwks_uri, self._issuer):
            _log.error(
                "OIDC issuer %s: refusing jwks_uri %s, which is not on the issuer's scheme, "
                "host and port; configure the JWKS address explicitly if that is intended",
                self._issuer,
                jwks_uri,
            )
            raise _FetchError(
                f"jwks_uri {jwks_uri} is not on the issuer's origin", "issuer misconfigured"
            )
        self._jwks_url = jwks_uri
        return jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        """GET a JSON object: no redirects, a whole-request deadline, a size cap."""
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                body = await self._get_bounded(url)
        except TimeoutError:
            raise _FetchError(f"{url}: timed out") from None
        except httpx.HTTPError as exc:
            raise _FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise _FetchError(f"{url}: not JSON") from None
        if not isinstance(document, dict):
            raise _FetchError(f"{url}: not a JSON object")
        return document

    async def _get_bounded(self, url: str) -> bytes:
        """The body of a 200 answer, read no further than ``MAX_JWKS_BYTES``."""
        async with self._client.stream(
            "GET",
            url,
            headers={"Accept": "application/json"},
            follow_redirects=False,
            timeout=FETCH_TIMEOUT_S,
        ) as response:
            if response.status_code != 200:
                raise _FetchError(f"{url}: HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                raise _FetchError(f"{url}: larger than {MAX_JWKS_BYTES} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_JWKS_BYTES:
                    raise _FetchError(f"{url}: larger than {MAX_JWKS_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)


def _parse_jwk(raw: object) -> _Key | None:
    """A public signing key from one JWKS entry; None for anything else (skipped).

    Encryption keys (Keycloak publishes ``use: enc`` RSA-OAEP keys next to its signing
    keys), symmetric keys, private keys, unknown curves and short RSA keys are skipped.
    """
    if not isinstance(raw, dict):
        return None
    kty = raw.get("kty")
    kid = raw.get("kid")
    crv = raw.get("crv")
    alg = raw.get("alg")
    if kid is not None and not isinstance(kid, str):
        return None
    if raw.get("use", "sig") != "sig" or "d" in raw:
        return None
    key_ops = raw.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    if alg is not None and alg not in ALLOWED_ALGORITHMS:
        return None
    if kty == "RSA":
        default_alg = "RS256"
    elif kty == "EC" and isinstance(crv, str) and crv in _EC_CURVE_ALGORITHM:
        default_alg = _EC_CURVE_ALGORITHM[crv]
    elif kty == "OKP" and isinstance(crv, str) and crv in _OKP_CURVES:
        default_alg = "EdDSA"
    else:
        return None
    try:
        # The algorithm only picks the JWK parser; the header's is matched in _Key.accepts.
        public = jwt.PyJWK(raw, algorithm=default_alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        _log.warning("OIDC JWKS: skipping malformed key %r", kid)
        return None
    key_size = getattr(public, "key_size", None)
    if kty == "RSA" and isinstance(key_size, int) and key_size < MIN_RSA_BITS:
        _log.warning("OIDC JWKS: skipping %d-bit RSA key %r", key_size, kid)
        return None
    return _Key(
        kid=kid,
        kty=kty,
        crv=crv if isinstance(crv, str) else None,
        alg=alg if isinstance(alg, str) else None,
        key=public,
    )


def _same_origin(url: str, issuer: str) -> bool:
    """Same scheme, host and port (default ports made explicit)."""
    try:
        a, b = httpx.URL(url), httpx.URL(issuer)
    except (httpx.InvalidURL, ValueError, TypeError):
        return False
    defaults = {"http": 80, "https": 443}
    if a.scheme not in defaults:
        return False
    return (
        a.scheme == b.scheme
        and a.host.lower() == b.host.lower()
        and (a.port or defaults[a.scheme]) == (b.port or defaults.get(b.scheme))
    )


def _claim_at(claims: Mapping[str, Any], path: tuple[str, ...]) -> object:
    """The value at a dot path, or None.

    Keycloak client ids may contain dots (``resource_access.my.app.roles``), so a key
    made of several path segments is tried too, longest first.
    """
    if not path:
        return claims
    for end in range(len(path), 0, -1):
        name = ".".join(path[:end])
        value = claims.get(name)
        if value is None:
            continue
        if end == len(path):
            return value
        if isinstance(value, Mapping):
            found = _claim_at(value, path[end:])
            if found is not None:
                return found
    return None


def _role_names(value: object) -> list[str]:
    """Role names from a claim: a list of strings or of ``{"name": ...}`` objects (Keyrock),
    or a single string. Anything else contributes nothing."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    names: list[str] = []
    for item in value:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            names.append(item["name"])
    return names
