"""Who may call each route: enforced around every endpoint, deny by default.

Each endpoint declares its policy (``policy``: ``@allow(Permission.X)``,
``@allow_anywhere``, ``@allow_global_admin``, ``@gateway_route``, ``@public_route``).
``protect(routes)`` wraps every route of the app with it. A route without one is
refused to everyone (and logged): a forgotten declaration fails closed, and the route-table
test (``tests/cloud/test_access_routes.py``) fails on it.

Credentials: ``Authorization: Bearer T``, or ``X-Auth-Token: T`` as FIWARE's PEP proxies
and IoT Agents send it. The caller learns only 401 (who are you?) or 403 (not allowed);
the reason is logged. ``--insecure-no-auth`` (``AccessControl.lab``) lets everyone do
everything, for a lab on loopback or the conformance run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Protocol

from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ldt.cloud.access.current import current_principal
from ldt.cloud.access.errors import TokenRejectedError
from ldt.cloud.access.policy import Policy, policy_of
from ldt.cloud.access.roles import (
    ALL_TENANTS,
    DEFAULT_TENANT,
    FULL_SCOPE,
    Grant,
    Permission,
    Principal,
    Role,
    tenant_label,
)
from ldt.cloud.access.roles import (
    Scope as EntityScope,
)
from ldt.cloud.ngsild.problems import NgsiLdError, problem_response

__all__ = [
    "LAB",
    "PRINCIPAL_KEY",
    "AccessControl",
    "Authenticator",
    "LoopbackHostOnly",
    "authenticate",
    "caller",
    "current_principal",
    "limited",
    "out_of_scope",
    "protect",
    "request_scope",
]

_log = logging.getLogger("ldt.cloud.access")

PRINCIPAL_KEY: Final = "ldt.principal"
_ACCESS_KEY: Final = "ldt.access"
_TENANT_HEADER: Final = b"ngsild-tenant"
MAX_CREDENTIAL_BYTES: Final = 8192

LAB: Final = Principal(
    name="insecure-no-auth", kind="lab", grants=(Grant(ALL_TENANTS, Role.ADMIN),)
)
"""Everyone, when authentication is switched off."""


class Authenticator(Protocol):
    """Who a bearer token stands for (``service.AccessService``; the guard may not import
    it: the service reads the store, and the layer contracts keep the API's helpers off it)."""

    async def authenticate(self, token: str) -> Principal:
        """The principal, or ``TokenRejectedError``."""
        ...


@dataclass(frozen=True, slots=True)
class AccessControl:
    """Whether and how the app checks callers (``app.state.access``)."""

    service: Authenticator | None
    """None: ``--insecure-no-auth``, every caller is ``LAB``."""

    @classmethod
    def lab(cls) -> AccessControl:
        """Authentication off (a lab on loopback, the conformance run, most unit tests)."""
        return cls(service=None)

    @property
    def enabled(self) -> bool:
        """Whether tokens are required."""
        return self.service is not None


@dataclass(frozen=True, slots=True)
class _Checked:
    principal: Principal
    tenant: str


def _unauthorized(detail: str) -> NgsiLdError:
    return NgsiLdError(
        401, None, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="ldt"'}
    )


def _credential(scope: Scope) -> tuple[str | None, int]:
    """The bearer token (``Authorization: Bearer`` or ``X-Auth-Token``) and how many bytes
    of credentials were sent; read from the raw headers (this runs on every request)."""
    token, size = None, 0
    for name, value in scope["headers"]:
        if name == b"authorization":
            size += len(value)
            scheme, _, rest = value.partition(b" ")
            if scheme.lower() == b"bearer" and rest.strip():
                token = rest.strip().decode("latin-1")
        elif name == b"x-auth-token":  # bare, or "Bearer T" as iotagent-node-lib sends it
            size += len(value)
            scheme, _, rest = value.strip().partition(b" ")
            bare = rest.strip() if scheme.lower() == b"bearer" else value.strip()
            if token is None and bare:
                token = bare.decode("latin-1")
    return token, size


async def authenticate(scope: Scope) -> Principal:
    """The caller of this request (cached in the scope); ``NgsiLdError`` 401 if none."""
    known: Principal | None = scope.get(PRINCIPAL_KEY)
    if known is not None:
        return known
    access: AccessControl = scope["app"].state.access
    if access.service is None:
        scope[PRINCIPAL_KEY] = LAB
        return LAB
    token, size = _credential(scope)
    if size > MAX_CREDENTIAL_BYTES:
        _log.warning("refused: oversized credentials", extra={"path": scope.get("path")})
        raise _unauthorized("the credentials are too large")
    if token is None:
        raise _unauthorized(
            "sign in: send 'Authorization: Bearer <token>' (POST /auth/token gives one)"
        )
    try:
        principal = await access.service.authenticate(token)
    except TokenRejectedError as exc:
        client = scope.get("client")
        _log.warning(
            "refused: token not accepted",
            extra={"reason": exc.reason, "path": scope.get("path"), "client": client},
        )
        raise _unauthorized("the token is not valid (expired, revoked or not ours)") from None
    scope[PRINCIPAL_KEY] = principal
    return principal


def _tenant_of(scope: Scope) -> str:
    if str(scope.get("path", "")).startswith("/ngsi-ld/"):
        for name, value in scope["headers"]:
            if name == _TENANT_HEADER:
                return value.decode("latin-1") or DEFAULT_TENANT
    return DEFAULT_TENANT


def _allowed(policy: Policy, principal: Principal, tenant: str) -> bool:
    if policy.kind == "global":
        return principal.global_admin
    assert policy.permission is not None
    if policy.kind == "anywhere":
        return principal.may_anywhere(policy.permission)
    return principal.may(tenant, policy.permission, unscoped=not policy.entities)


class _Guard:
    """Checks a route's policy before its endpoint runs."""

    def __init__(self, app: ASGIApp, policy: Policy | None, where: str) -> None:
        self.app = app
        self.policy = policy
        self.where = where

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self.policy
        if policy is None:
            _log.error("route without an access policy refused", extra={"route": self.where})
            await problem_response(
                NgsiLdError(403, None, "Forbidden", "this route declares no access policy")
            )(scope, receive, send)
            return
        if policy.kind in ("gateway", "public"):
            await self.app(scope, receive, send)
            return
        try:
            principal = await authenticate(scope)
        except NgsiLdError as err:
            await problem_response(err)(scope, receive, send)
            return
        tenant = _tenant_of(scope)
        if not _allowed(policy, principal, tenant):
            _log.warning(
                "refused: not allowed",
                extra={
                    "who": principal.label,
                    "tenant": tenant,
                    "needs": policy.describe(),
                    "route": self.where,
                    "method": scope.get("method"),
                },
            )
            refusal = NgsiLdError(
                403,
                None,
                "Forbidden",
                f"{principal.label} may not do this: it needs the {policy.describe()}"
                f" permission in tenant {tenant_label(tenant)}",
            )
            await problem_response(refusal)(scope, receive, send)
            return
        scope[_ACCESS_KEY] = _Checked(principal, tenant)
        token = current_principal.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            current_principal.reset(token)


def request_scope(scope: Scope, permission: Permission) -> EntityScope:
    """The entities ``permission`` reaches for this request's caller in its tenant.

    Routes call it after the guard passed; a missing check means the lab (everything).
    """
    checked: _Checked | None = scope.get(_ACCESS_KEY)
    if checked is None:
        return FULL_SCOPE
    found = checked.principal.scope(checked.tenant, permission)
    return found if found is not None else EntityScope(unrestricted=False)


def caller(scope: Scope) -> tuple[Principal, str] | None:
    """The checked caller of this request and its tenant (None: no check ran)."""
    checked: _Checked | None = scope.get(_ACCESS_KEY)
    return None if checked is None else (checked.principal, checked.tenant)


def limited(scope: Scope, permission: Permission) -> EntityScope | None:
    """``request_scope``, or None when it reaches every entity (nothing to filter)."""
    found = request_scope(scope, permission)
    return None if found.unrestricted else found


def out_of_scope(entity_id: str) -> NgsiLdError:
    """403 for an entity outside the caller's scoped grant (logged)."""
    _log.warning("refused: entity outside the grant's scope", extra={"entity": entity_id})
    return NgsiLdError(
        403, None, "Forbidden", f"{entity_id} is outside the entities your grant reaches"
    )


_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


class LoopbackHostOnly:
    """With ``--insecure-no-auth``: requests must name a loopback host (``Host``), or a web
    page the operator's browser opens could reach the lab broker by DNS rebinding."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = b""
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value
                    break
            text = host.decode("latin-1")
            name = text[1:].partition("]")[0] if text.startswith("[") else text.partition(":")[0]
            if name.lower() not in _LOOPBACK_HOSTS and not name.startswith("127."):
                _log.warning("refused: not a loopback Host", extra={"host": text[:100]})
                refusal = NgsiLdError(
                    403, None, "Forbidden", "without authentication, only loopback Host names"
                )
                await problem_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _wrap(routes: list[BaseRoute], prefix: str) -> None:
    for route in routes:
        if isinstance(route, Mount):
            _wrap(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            if isinstance(route.app, _Guard):
                continue
            route.app = _Guard(route.app, policy_of(route.endpoint), prefix + route.path)


def protect(routes: list[BaseRoute]) -> None:
    """Wrap every route (inside mounts too) with its declared policy (idempotent)."""
    _wrap(routes, "")
