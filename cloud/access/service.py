"""Users, service accounts, sign-in, tokens and tenants: the rules over ``store.access``.

Who a bearer token is (``authenticate``):
- an opaque token (``ldt_st_...``): a long-lived service token, looked up by its hash
  (cached like a principal; unknown tokens too, so guessing costs no database reads);
- a JWT whose ``kid`` is this cloud's key: an access token from ``POST /auth/token``;
- any other JWT, when an OIDC issuer is configured: that provider's token (``oidc``),
  with its roles from a claim.

Staying current without a database read per request: a principal (its grants, whether
it is disabled, whether its session was revoked) is cached for ``RECHECK_S``. Changes made
through this process apply at once; changes made by another broker process apply within
``RECHECK_S`` (a disabled user's token is refused within 30 s, the issue asks 60).

Failed sign-ins are throttled per account and per client address (``Throttle``) and
logged; a throttled sign-in is refused before its password is hashed.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import jwt

from ldt.cloud.access import passwords
from ldt.cloud.access.errors import TokenRejectedError
from ldt.cloud.access.roles import (
    ALL_TENANTS,
    DEFAULT_TENANT,
    Grant,
    Permission,
    Principal,
    Role,
    Scope,
    parse_owner,
)
from ldt.cloud.access.tokens import ACCESS_TTL_S, MAX_TOKEN_BYTES, TokenSigner, token_hash
from ldt.cloud.errors import CloudError
from ldt.cloud.ngsild.jsonld import compact_iri, core_context, expand_term
from ldt.cloud.store.access import CLIENT, USER, GrantRecord, PrincipalRecord, TokenRecord
from ldt.cloud.store.base import Store

if TYPE_CHECKING:  # without importing httpx at start
    from ldt.cloud.access.oidc import OidcVerifier

__all__ = [
    "RECHECK_S",
    "REFRESH_IDLE_S",
    "AccessService",
    "InvalidInputError",
    "Throttle",
    "ThrottledError",
    "TokenGrant",
    "validate_name",
]

_log = logging.getLogger("ldt.cloud.access")

RECHECK_S: Final = 30.0
REFRESH_IDLE_S: Final = 30 * 86400
"""A refresh token unused this long expires (each use extends it)."""
PRUNE_EVERY_S: Final = 3600.0
PRUNE_AFTER_S: Final = 7 * 86400
"""Tokens expired or revoked this long ago are deleted (at most hourly, at a sign-in)."""
SERVICE_PREFIX: Final = "ldt_st_"
REFRESH_PREFIX: Final = "ldt_rt_"
_CACHE_SIZE: Final = 10_000
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class InvalidInputError(CloudError):
    """A name, role, tenant or scope that cannot be used (400; the CLI prints it)."""


class ThrottledError(CloudError):
    """Too many failed sign-ins for this account or address: try again after ``retry_s``."""

    def __init__(self, retry_s: int) -> None:
        self.retry_s = retry_s
        super().__init__(f"too many failed sign-ins: try again in {retry_s} s")


def validate_name(name: str, what: str = "name") -> str:
    """A user, client or group name: 1-64 of letters, digits and ``._-@``."""
    if not 1 <= len(name) <= 64 or not set(name) <= _NAME_CHARS or name[0] in ".-":
        raise InvalidInputError(
            f"a {what} is 1-64 characters from letters, digits and ._-@, not {name[:80]!r}"
        )
    return name


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise InvalidInputError(
            f"no role {text!r}: use one of {', '.join(r.value for r in Role)}"
        ) from None


def _stored_type(name: str) -> str:
    """A type as entity documents store it (core-context compacted IRI)."""
    ctx = core_context()
    iri = expand_term(name.strip(), ctx)
    if not iri:
        raise InvalidInputError(f"{name!r} is not an entity type")
    return compact_iri(iri, ctx)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What ``POST /auth/token`` answers (RFC 6749 section 5.1)."""

    access_token: str
    expires_in: int
    refresh_token: str | None = None

    def body(self) -> dict[str, object]:
        """The JSON answer."""
        out: dict[str, object] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
        return out


class Throttle:
    """Failed sign-ins per key (an account, an address) in a sliding window; bounded."""

    def __init__(self, limit: int = 5, window_s: float = 300.0, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, ()) if t > now - self.window_s]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def check(self, keys: Iterable[str]) -> None:
        """Raise ``ThrottledError`` if any key has reached the limit."""
        now = time.monotonic()
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.limit:
                raise ThrottledError(max(1, int(times[0] + self.window_s - now) + 1))

    def attempt(self, keys: Sequence[str]) -> None:
        """Check, then count this attempt as a failure before the slow password check, so
        that concurrent guesses are counted too; ``succeeded`` takes it back."""
        self.check(keys)
        self.failed(keys)

    def failed(self, keys: Iterable[str]) -> None:
        """Count a failure against each key."""
        now = time.monotonic()
        for key in keys:
            self._failures.setdefault(key, []).append(now)
            self._failures.move_to_end(key)
            del self._failures[key][: -self.limit]
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, keys: Sequence[str]) -> None:
        """A good sign-in clears the account's count and takes back the address's attempt
        (``attempt`` counted it)."""
        self._failures.pop(keys[0], None)
        for key in keys[1:]:
            times = self._failures.get(key)
            if times:
                times.pop()


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal | None
    reason: str
    until: float


class AccessService:
    """Identity and sign-in over the default tenant's store (``store.access``)."""

    def __init__(
        self,
        store: Store,
        signer: TokenSigner,
        oidc: OidcVerifier | None = None,
        *,
        throttle: Throttle | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.oidc = oidc
        self.throttle = throttle or Throttle()
        self._principals: OrderedDict[tuple[str, str | None], _Cached] = OrderedDict()
        self._tokens: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()
        self._prune_at = 0.0
        """token -> (principal, recheck after (monotonic), expires at (epoch))."""

    # who is calling ----------------------------------------------------------------
    async def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for; ``TokenRejectedError`` if none.

        A token seen in the last ``RECHECK_S`` (and not expired) is answered from memory:
        one dict lookup, so that signing in costs a request under 5 % (bench/broker).
        """
        now = time.monotonic()
        known = self._tokens.get(token)
        if known is not None and known[1] > now and known[2] > time.time():
            return known[0]
        principal, expires_at = await self._authenticate(token)
        self._tokens[token] = (principal, now + RECHECK_S, expires_at)
        if len(self._tokens) > _CACHE_SIZE:
            self._tokens.popitem(last=False)
        return principal

    async def _authenticate(self, token: str) -> tuple[Principal, float]:
        """The principal and when the token expires (epoch seconds; inf: no expiry)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejectedError("oversized token")
        if token.count(".") == 2:
            try:
                kid = jwt.get_unverified_header(token).get("kid")
            except jwt.InvalidTokenError:
                raise TokenRejectedError("malformed token") from None
            if kid == self.signer.kid:
                claims = self.signer.verify(token)
                principal = await self._principal(claims.subject, claims.session)
                return principal, claims.expires_at
            if self.oidc is not None:
                identity = await self.oidc.verify(token)
                principal = Principal(name=identity.name, kind="oidc", grants=identity.grants)
                return principal, identity.expires_at
            raise TokenRejectedError("unknown signing key")
        # opaque: a service token (``ldt_st_...``, or the adopted admin token of old)
        return await self._principal_of_service_token(token), math.inf

    async def _principal_of_service_token(self, token: str) -> Principal:
        key = ("token:" + token_hash(token), None)
        cached = self._principals.get(key)
        if cached is None or cached.until < time.monotonic():
            record = await self.store.access.token(token_hash(token))
            reason = _unusable(record, "service")
            principal = None
            if record is not None and not reason:
                principal, reason = await self._load(record.subject, None)
            cached = self._remember(key, principal, reason)
        if cached.principal is None:
            raise TokenRejectedError(cached.reason)
        return cached.principal

    async def _principal(self, subject: str, session: str | None) -> Principal:
        key = (subject, session)
        cached = self._principals.get(key)
        if cached is None or cached.until < time.monotonic():
            principal, reason = await self._load(subject, session)
            cached = self._remember(key, principal, reason)
        if cached.principal is None:
            raise TokenRejectedError(cached.reason)
        return cached.principal

    def _remember(
        self, key: tuple[str, str | None], principal: Principal | None, reason: str
    ) -> _Cached:
        cached = _Cached(principal, reason, time.monotonic() + RECHECK_S)
        self._principals[key] = cached
        self._principals.move_to_end(key)
        while len(self._principals) > _CACHE_SIZE:
            self._principals.popitem(last=False)
        return cached

    async def _load(self, subject: str, session: str | None) -> tuple[Principal | None, str]:
        kind, _, name = subject.partition(":")
        record = await self.store.access.principal(kind, name)
        if record is None:
            return None, "unknown principal"
        if record.disabled:
            return None, "disabled"
        if session is not None:
            reason = _unusable(await self.store.access.token_by_id(session), "refresh")
            if reason:
                return None, f"session {reason}"
        subjects = [subject, *(f"group:{g}" for g in record.groups)]
        grants = tuple(_grant(g) for g in await self.store.access.grants_of(subjects))
        return Principal(name=name, kind=kind, grants=grants), ""

    async def owner_scope(self, owner: str, tenant: str) -> Scope:
        """What a subscription's owner may read in ``tenant`` now (``roles.owner_text``).

        A user or service account is looked up (cached ``RECHECK_S``): a disabled or
        removed owner's subscriptions notify nothing, and changed grants apply. An OIDC
        provider's user keeps the grants it had when it made the subscription.
        """
        label, grants = parse_owner(owner)
        kind = label.partition(":")[0]
        if kind in (USER, CLIENT):
            try:
                principal = await self._principal(label, None)
            except TokenRejectedError:
                return Scope(unrestricted=False)
        else:
            principal = Principal(name=label, kind=kind, grants=grants)
        found = principal.scope(tenant, Permission.READ)
        return found if found is not None else Scope(unrestricted=False)

    def forget(self, subject: str | None = None) -> None:
        """Drop cached principals (all, or one subject's) after a change made here."""
        self._tokens.clear()
        if subject is None:
            self._principals.clear()
            return
        for key in [k for k in self._principals if k[0] == subject]:
            del self._principals[key]
        for key in [k for k in self._principals if k[0].startswith("token:")]:
            del self._principals[key]

    # sign-in (POST /auth/token) -------------------------------------------------------
    async def password_grant(self, username: str, password: str, address: str) -> TokenGrant:
        """A person signs in: an access token and a refresh token (their session)."""
        keys = [f"user:{username}", f"addr:{address}"]
        self.throttle.attempt(keys)
        record = await self.store.access.principal(USER, username) if _plausible(username) else None
        ok = await passwords.verify_secret(password, record.secret_hash if record else None)
        if not ok or record is None or record.disabled:
            _log.warning(
                "sign-in refused",
                extra={"user": username[:64], "address": address, "disabled": bool(record)},
            )
            raise TokenRejectedError("wrong user name or password")
        self.throttle.succeeded(keys)
        _log.info("signed in", extra={"user": username, "address": address})
        refresh, session = await self._new_token(REFRESH_PREFIX, "refresh", f"user:{username}")
        return TokenGrant(self.signer.issue(f"user:{username}", session), ACCESS_TTL_S, refresh)

    async def client_grant(self, client_id: str, secret: str, address: str) -> TokenGrant:
        """A service account signs in with its secret: an access token (no refresh token,
        RFC 6749 section 4.4.3: it can sign in again)."""
        await self._check_client(client_id, secret, address)
        return TokenGrant(self.signer.issue(f"client:{client_id}", None), ACCESS_TTL_S)

    async def _check_client(self, client_id: str, secret: str, address: str) -> PrincipalRecord:
        keys = [f"client:{client_id}", f"addr:{address}"]
        self.throttle.attempt(keys)
        record = (
            await self.store.access.principal(CLIENT, client_id) if _plausible(client_id) else None
        )
        ok = await passwords.verify_secret(secret, record.secret_hash if record else None)
        if not ok or record is None or record.disabled:
            _log.warning(
                "client sign-in refused", extra={"client": client_id[:64], "address": address}
            )
            raise TokenRejectedError("wrong client id or secret")
        self.throttle.succeeded(keys)
        return record

    async def refresh_grant(
        self, refresh_token: str, address: str, client: tuple[str, str] | None = None
    ) -> TokenGrant:
        """A new access token for a refresh token (which stays the same: FIWARE IoT Agents
        keep one as their configured trust). A client's refresh token also needs the
        client's own id and secret."""
        self.throttle.check([f"addr:{address}"])
        if not refresh_token.startswith(REFRESH_PREFIX) or len(refresh_token) > 256:
            self.throttle.failed([f"addr:{address}"])
            raise TokenRejectedError("not a refresh token")
        record = await self.store.access.use_token(
            token_hash(refresh_token), extend_to_ms=_ms() + REFRESH_IDLE_S * 1000
        )
        reason = _unusable(record, "refresh")
        if record is not None and not reason and record.subject.startswith("client:"):
            if client is None or f"client:{client[0]}" != record.subject:
                reason = "client credentials missing or for another client"
            else:
                await self._check_client(client[0], client[1], address)
        if record is None or reason:
            self.throttle.failed([f"addr:{address}"])
            _log.warning("refresh refused", extra={"reason": reason, "address": address})
            raise TokenRejectedError(reason or "unknown refresh token")
        principal, why = await self._load(record.subject, record.id)
        if principal is None:
            raise TokenRejectedError(why)
        return TokenGrant(self.signer.issue(record.subject, record.id), ACCESS_TTL_S)

    async def revoke(self, token: str) -> None:
        """``POST /auth/revoke`` (RFC 7009): end a session or a service token; an unknown
        token is not an error (the RFC's rule: the client cannot tell)."""
        revoked = 0
        if token.count(".") == 2:
            try:
                claims = self.signer.verify(token)
            except TokenRejectedError:
                return
            if claims.session is not None:
                revoked = await self.store.access.revoke_tokens(token_id=claims.session)
        else:  # refresh, service, or the adopted admin token of old: known by hash
            revoked = await self.store.access.revoke_tokens(token_hash=token_hash(token))
        if revoked:  # an unknown token costs no cache: anyone may call this
            self.forget()

    async def _new_token(self, prefix: str, kind: str, subject: str) -> tuple[str, str]:
        token = prefix + passwords.generate_secret(32)
        token_id = uuid.uuid4().hex
        expires = None if kind == "service" else _ms() + REFRESH_IDLE_S * 1000
        await self.store.access.add_token(token_hash(token), token_id, kind, subject, expires)
        if time.monotonic() >= self._prune_at:  # every sign-in adds a row: keep it bounded
            self._prune_at = time.monotonic() + PRUNE_EVERY_S
            await self.store.access.prune_tokens(_ms() - PRUNE_AFTER_S * 1000)
        return token, token_id

    # management (CLI and admin API) ----------------------------------------------
    async def add_user(
        self,
        name: str,
        role: str,
        tenant: str = DEFAULT_TENANT,
        password: str | None = None,
        groups: Sequence[str] = (),
    ) -> str | None:
        """Create a user with one role; the generated password when none was given."""
        validate_name(name, "user name")
        grant_role = _role(role)
        await self._known_tenant(tenant)
        generated = None
        if password is None:
            password = generated = passwords.generate_secret()
        _check_password(password)
        if not await self.store.access.add_principal(
            USER, name, await passwords.hash_secret(password)
        ):
            raise InvalidInputError(f"user {name!r} exists")
        await self.grant(f"user:{name}", grant_role.value, tenant)
        if groups:
            await self.store.access.set_groups(name, [validate_name(g, "group") for g in groups])
        return generated

    async def add_client(self, name: str, role: str, tenant: str = DEFAULT_TENANT) -> str:
        """Create a service account; its secret, shown once."""
        validate_name(name, "client id")
        grant_role = _role(role)
        await self._known_tenant(tenant)
        secret = passwords.generate_secret(32)
        if not await self.store.access.add_principal(
            CLIENT, name, await passwords.hash_secret(secret)
        ):
            raise InvalidInputError(f"client {name!r} exists")
        await self.grant(f"client:{name}", grant_role.value, tenant)
        return secret

    async def client_token(self, name: str, *, refresh: bool = False) -> tuple[str, str]:
        """A long-lived service token for a client (or a refresh token: a FIWARE IoT
        Agent's trust); (token, its id). Revoke with ``revoke_token_id``."""
        record = await self.store.access.principal(CLIENT, name)
        if record is None:
            raise InvalidInputError(f"no client {name!r}")
        if refresh:
            return await self._new_token(REFRESH_PREFIX, "refresh", f"client:{name}")
        return await self._new_token(SERVICE_PREFIX, "service", f"client:{name}")

    async def revoke_token_id(self, token_id: str) -> bool:
        """Revoke a refresh or service token by its id (as ``tokens`` lists them)."""
        done = await self.store.access.revoke_tokens(token_id=token_id) > 0
        self.forget()
        return done

    async def users(self, kind: str = USER) -> list[tuple[PrincipalRecord, list[GrantRecord]]]:
        """Every user (or client) with its direct grants; no secret hash leaves here."""
        grants = await self.store.access.all_grants()
        return [
            (r, [g for g in grants if g.subject == f"{kind}:{r.name}"])
            for r in await self.store.access.principals(kind)
        ]

    async def set_disabled(self, kind: str, name: str, disabled: bool) -> None:
        """Disable (tokens refused within ``RECHECK_S``) or enable a user or client."""
        if not await self.store.access.update_principal(kind, name, disabled=disabled):
            raise InvalidInputError(f"no {kind} {name!r}")
        if disabled:
            await self.store.access.revoke_tokens(subject=f"{kind}:{name}")
        self.forget(f"{kind}:{name}")
        _log.info(
            "principal %s", "disabled" if disabled else "enabled", extra={"who": f"{kind}:{name}"}
        )

    async def set_password(self, name: str, password: str | None = None) -> str | None:
        """A new password (generated when None, and returned); sessions end."""
        generated = None
        if password is None:
            password = generated = passwords.generate_secret()
        _check_password(password)
        hashed = await passwords.hash_secret(password)
        if not await self.store.access.update_principal(USER, name, secret_hash=hashed):
            raise InvalidInputError(f"no user {name!r}")
        await self.store.access.revoke_tokens(subject=f"user:{name}")
        self.forget(f"user:{name}")
        return generated

    async def remove(self, kind: str, name: str) -> None:
        """Delete a user or client with its grants and tokens."""
        if not await self.store.access.remove_principal(kind, name):
            raise InvalidInputError(f"no {kind} {name!r}")
        self.forget(f"{kind}:{name}")

    async def set_groups(self, user: str, groups: Sequence[str]) -> None:
        """Replace a user's groups."""
        if await self.store.access.principal(USER, user) is None:
            raise InvalidInputError(f"no user {user!r}")
        await self.store.access.set_groups(user, [validate_name(g, "group") for g in groups])
        self.forget(f"user:{user}")

    async def grant(
        self,
        subject: str,
        role: str,
        tenant: str = DEFAULT_TENANT,
        *,
        types: Sequence[str] = (),
        id_prefix: str = "",
    ) -> GrantRecord:
        """Give ``subject`` (``user:``/``client:``/``group:`` + name) a role in a tenant."""
        kind, _, name = subject.partition(":")
        if kind not in ("user", "client", "group"):
            raise InvalidInputError("a grant is for user:NAME, client:NAME or group:NAME")
        validate_name(name)
        if kind != "group" and await self.store.access.principal(kind, name) is None:
            raise InvalidInputError(f"no {kind} {name!r}")
        grant_role = _role(role)
        await self._known_tenant(tenant)
        if len(id_prefix) > 256 or any(ord(c) < 32 for c in id_prefix):
            raise InvalidInputError("an id prefix is at most 256 printable characters")
        record = GrantRecord(
            id=uuid.uuid4().hex,
            subject=subject,
            tenant=tenant,
            role=grant_role.value,
            types=tuple(sorted({_stored_type(t) for t in types})),
            id_prefix=id_prefix,
            created_at_ms=_ms(),
        )
        await self.store.access.add_grant(record)
        self.forget(subject if kind != "group" else None)
        return record

    async def revoke_grant(self, subject: str, tenant: str, role: str | None = None) -> int:
        """Remove ``subject``'s grants in ``tenant`` (of one role, when given)."""
        if role is not None:
            _role(role)
        removed = await self.store.access.remove_grants(subject, tenant, role)
        self.forget(None if subject.startswith("group:") else subject)
        return removed

    # tenants ---------------------------------------------------------------------
    async def _known_tenant(self, tenant: str) -> None:
        if tenant in (DEFAULT_TENANT, ALL_TENANTS):
            return
        if not await self.store.access.has_tenant(tenant):
            raise InvalidInputError(
                f"no tenant {tenant!r}: a global admin creates it with"
                f" 'ldt cloud tenants add {tenant}'"
            )


def _grant(record: GrantRecord) -> Grant:
    return Grant(
        tenant=record.tenant,
        role=Role(record.role),
        types=frozenset(record.types),
        id_prefix=record.id_prefix,
    )


def _unusable(record: TokenRecord | None, kind: str) -> str:
    """Why a stored token cannot be used ('' if it can)."""
    if record is None:
        return "unknown token"
    if record.kind != kind:
        return "wrong kind of token"
    if record.revoked_at_ms is not None:
        return "revoked"
    if record.expires_at_ms is not None and record.expires_at_ms <= _ms():
        return "expired"
    return ""


def _check_password(password: str) -> None:
    if len(password) < 12:
        raise InvalidInputError("a password has at least 12 characters")
    if len(password.encode()) > passwords.MAX_SECRET_BYTES:
        raise InvalidInputError(f"a password is at most {passwords.MAX_SECRET_BYTES} bytes")


def _plausible(name: str) -> bool:
    return 1 <= len(name) <= 64 and set(name) <= _NAME_CHARS


def _ms() -> int:
    return time.time_ns() // 1_000_000
