"""HTTP of access: sign-in and sign-out (OAuth 2.0), and the admin API for people.

- ``POST /auth/token`` (RFC 6749, form-encoded): ``grant_type=password`` (``username``,
  ``password``), ``client_credentials`` (the client's id and secret, as HTTP Basic or in
  the form) and ``refresh_token``. Errors follow the RFC (``{"error": "invalid_grant"}``),
  which OAuth clients (FIWARE IoT Agents among them) parse; 429 when throttled.
- ``POST /auth/revoke`` (RFC 7009): ends a session (refresh token or its access token) or
  a service token.
- ``/ldt/v1/admin/...``: users, service accounts, grants and tokens (an admin, who may only
  give roles in tenants it administers) and tenants (the global admin). The same operations
  as ``ldt cloud users|clients|tenants``.

No answer ever holds a stored secret: a generated password, client secret or token is
returned once, when it is made.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.errors import TokenRejectedError
from ldt.cloud.access.guard import AccessControl, authenticate
from ldt.cloud.access.policy import allow_anywhere, allow_global_admin, public_route
from ldt.cloud.access.roles import DEFAULT_TENANT, Permission, Principal, tenant_label
from ldt.cloud.access.service import AccessService, InvalidInputError, ThrottledError
from ldt.cloud.ngsild.media import JSON, read_body
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.store.access import CLIENT, USER
from ldt.cloud.tenancy import NonexistentTenantError

__all__ = ["routes"]

_log = logging.getLogger("ldt.cloud.access")
_MAX_FORM = 16 * 1024


def _oauth_error(status: int, error: str, description: str, **headers: str) -> Response:
    return Response(
        orjson.dumps({"error": error, "error_description": description}),
        status_code=status,
        media_type=JSON,
        headers={"Cache-Control": "no-store", **headers},
    )


def _service(request: Request) -> AccessService:
    access: AccessControl = request.app.state.access
    if not isinstance(access.service, AccessService):
        raise NgsiLdError(
            404, None, "Not Found", "authentication is off (--insecure-no-auth): no tokens"
        )
    return access.service


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, secret) if sep else None


async def _form(request: Request) -> dict[str, str] | None:
    """The form-encoded body (at most 20 fields, 16 KiB); None if it is not one."""
    body = await read_body(request, limit=_MAX_FORM)
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        return None


@public_route
async def token(request: Request) -> Response:
    """``POST /auth/token``: a bearer token for a password, client secret or refresh token."""
    service = _service(request)
    form = await _form(request)
    if form is None:
        return _oauth_error(400, "invalid_request", "the body is not a form")
    grant_type = form.get("grant_type", "")
    basic = _basic(request)
    client = basic or (
        (form["client_id"], form.get("client_secret", "")) if "client_id" in form else None
    )
    address = _address(request)
    try:
        if grant_type == "password":
            grant = await service.password_grant(
                form.get("username", ""), form.get("password", ""), address
            )
        elif grant_type == "client_credentials":
            if client is None:
                return _oauth_error(
                    401, "invalid_client", "client id and secret needed",
                    **{"WWW-Authenticate": 'Basic realm="ldt"'},
                )  # fmt: skip
            grant = await service.client_grant(client[0], client[1], address)
        elif grant_type == "refresh_token":
            grant = await service.refresh_grant(form.get("refresh_token", ""), address, client)
        else:
            return _oauth_error(
                400, "unsupported_grant_type", "use password, client_credentials or refresh_token"
            )
    except ThrottledError as exc:
        return _oauth_error(429, "slow_down", str(exc), **{"Retry-After": str(exc.retry_s)})
    except TokenRejectedError:
        error = "invalid_client" if grant_type == "client_credentials" else "invalid_grant"
        return _oauth_error(400 if error == "invalid_grant" else 401, error, "not accepted")
    return Response(
        orjson.dumps(grant.body()),
        media_type=JSON,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


@public_route
async def revoke(request: Request) -> Response:
    """``POST /auth/revoke`` (RFC 7009): ``token=...``; 200 whether or not it was known."""
    service = _service(request)
    form = await _form(request)
    if form is None:
        return _oauth_error(400, "invalid_request", "the body is not a form")
    presented = form.get("token", "")
    if not presented or len(presented) > 8192:
        return _oauth_error(400, "invalid_request", "token=... is needed")
    await service.revoke(presented)
    return Response(status_code=200)


# admin API --------------------------------------------------------------------------------
def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status, media_type=JSON)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await read_body(request, limit=_MAX_FORM))
    except orjson.JSONDecodeError as exc:
        raise NgsiLdError(400, "BadRequestData", "Invalid JSON", str(exc)) from None
    if not isinstance(body, dict):
        raise NgsiLdError(400, "BadRequestData", "Invalid body", "a JSON object is expected")
    return body


def _text(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise NgsiLdError(400, "BadRequestData", "Invalid body", f"{key!r} must be a string")
    return value


def _names(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise NgsiLdError(400, "BadRequestData", "Invalid body", f"{key!r} is a list of names")
    return value


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise NgsiLdError(400, "BadRequestData", "Invalid body", f"{key!r} is a string or null")
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise NgsiLdError(400, "BadRequestData", "Invalid body", f"{key!r} is true or false")
    return value


def _bad(exc: InvalidInputError) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Bad Request", str(exc))


async def _admin_of(request: Request, tenant: str) -> Principal:
    """The caller, if it administers ``tenant``; 403 otherwise."""
    principal = await authenticate(request.scope)
    reach = principal.scope(tenant, Permission.ADMIN)
    if reach is None or not reach.unrestricted:
        _log.warning(
            "refused: not an admin of the tenant",
            extra={"who": principal.label, "tenant": tenant},
        )
        raise NgsiLdError(
            403,
            None,
            "Forbidden",
            f"{principal.label} is not an admin of tenant {tenant_label(tenant)}",
        )
    return principal


def _tenant(body: dict[str, Any]) -> str:
    return _text(body, "tenant", DEFAULT_TENANT)


def _principal_view(record: Any, grants: list[Any]) -> dict[str, Any]:
    return {
        "name": record.name,
        "disabled": record.disabled,
        "groups": list(record.groups),
        "created_at_ms": record.created_at_ms,
        "grants": [
            {k: v for k, v in dataclasses.asdict(g).items() if k != "subject"} for g in grants
        ],
    }


@allow_anywhere(Permission.ADMIN)
async def list_principals(request: Request) -> Response:
    """``GET /ldt/v1/admin/users`` (or ``clients``): names, state, groups, grants."""
    kind = USER if request.url.path.endswith("/users") else CLIENT
    service = _service(request)
    caller = await authenticate(request.scope)
    shown = await service.users(kind)
    if not caller.global_admin:  # a tenant's admin sees the accounts with roles there
        shown = [(r, g) for r, g in shown if any(caller.may(x.tenant, Permission.ADMIN) for x in g)]
    return _json([_principal_view(r, g) for r, g in shown])


@allow_anywhere(Permission.ADMIN)
async def add_principal(request: Request) -> Response:
    """``POST /ldt/v1/admin/users`` ``{"name", "role", "tenant"?, "password"?, "groups"?}``;
    ``.../clients`` ``{"name", "role", "tenant"?}``: the generated secret, once."""
    kind = USER if request.url.path.endswith("/users") else CLIENT
    service = _service(request)
    body = await _body(request)
    tenant = _tenant(body)
    await _admin_of(request, tenant)
    name, role = _text(body, "name"), _text(body, "role")
    groups, password = _names(body, "groups"), _optional_text(body, "password")
    if groups and not (await authenticate(request.scope)).global_admin:
        # a group may hold grants in any tenant: joining one is a global admin's decision
        raise NgsiLdError(403, None, "Forbidden", "only a global admin puts users in groups")
    try:
        if kind == USER:
            generated = await service.add_user(name, role, tenant, password, groups)
            answer: dict[str, Any] = {"name": name}
            if generated is not None:
                answer["password"] = generated
        else:
            answer = {
                "client_id": name,
                "client_secret": await service.add_client(name, role, tenant),
            }
    except InvalidInputError as exc:
        raise _bad(exc) from None
    return _json(answer, 201)


@allow_global_admin
async def change_principal(request: Request) -> Response:
    """``PATCH /ldt/v1/admin/users/{name}`` ``{"disabled"?: bool, "password"?: str|null,
    "groups"?: [...]}`` (clients: ``disabled``). A global admin's change: users are shared
    by every tenant."""
    kind = USER if "/users/" in request.url.path else CLIENT
    service = _service(request)
    name = str(request.path_params["name"])
    body = await _body(request)
    answer: dict[str, Any] = {"name": name}
    disabled = _flag(body, "disabled") if "disabled" in body else None
    password, groups = _optional_text(body, "password"), _names(body, "groups")
    try:
        if disabled is not None:
            await service.set_disabled(kind, name, disabled)
        if kind == USER and "password" in body:
            generated = await service.set_password(name, password)
            if generated is not None:
                answer["password"] = generated
        if kind == USER and "groups" in body:
            await service.set_groups(name, groups)
    except InvalidInputError as exc:
        raise _bad(exc) from None
    return _json(answer)


@allow_global_admin
async def remove_principal(request: Request) -> Response:
    """``DELETE /ldt/v1/admin/users/{name}`` (or clients): a global admin's."""
    kind = USER if "/users/" in request.url.path else CLIENT
    service = _service(request)
    try:
        await service.remove(kind, str(request.path_params["name"]))
    except InvalidInputError as exc:
        raise NgsiLdError(404, None, "Not Found", str(exc)) from None
    return Response(status_code=204)


@allow_anywhere(Permission.ADMIN)
async def add_grant(request: Request) -> Response:
    """``POST /ldt/v1/admin/grants`` ``{"subject": "user:bob", "role", "tenant"?,
    "types"?: [...], "id_prefix"?}``: the caller must administer that tenant."""
    service = _service(request)
    body = await _body(request)
    tenant = _tenant(body)
    await _admin_of(request, tenant)
    types = _names(body, "types")
    try:
        record = await service.grant(
            _text(body, "subject"),
            _text(body, "role"),
            tenant,
            types=types,
            id_prefix=_text(body, "id_prefix", ""),
        )
    except InvalidInputError as exc:
        raise _bad(exc) from None
    return _json(dataclasses.asdict(record), 201)


@allow_anywhere(Permission.ADMIN)
async def remove_grants(request: Request) -> Response:
    """``DELETE /ldt/v1/admin/grants?subject=user:bob&tenant=T[&role=R]``."""
    service = _service(request)
    subject = request.query_params.get("subject", "")
    tenant = request.query_params.get("tenant", DEFAULT_TENANT)
    await _admin_of(request, tenant)
    try:
        removed = await service.revoke_grant(subject, tenant, request.query_params.get("role"))
    except InvalidInputError as exc:
        raise _bad(exc) from None
    return _json({"removed": removed})


@allow_global_admin
async def client_token(request: Request) -> Response:
    """``POST /ldt/v1/admin/clients/{name}/tokens`` ``{"kind": "service"|"refresh"}``: a
    long-lived service token, or a refresh token (a FIWARE IoT Agent's trust), once."""
    service = _service(request)
    body = await _body(request)
    kind = _text(body, "kind", "service")
    if kind not in ("service", "refresh"):
        raise NgsiLdError(400, "BadRequestData", "Invalid body", "kind is service or refresh")
    try:
        issued, token_id = await service.client_token(
            str(request.path_params["name"]), refresh=kind == "refresh"
        )
    except InvalidInputError as exc:
        raise NgsiLdError(404, None, "Not Found", str(exc)) from None
    return _json({"token": issued, "id": token_id, "kind": kind}, 201)


@allow_global_admin
async def revoke_token(request: Request) -> Response:
    """``DELETE /ldt/v1/admin/tokens/{id}``: revoke a session or service token by id."""
    service = _service(request)
    if not await service.revoke_token_id(str(request.path_params["token_id"])):
        raise NgsiLdError(404, None, "Not Found", "no such token, or already revoked")
    return Response(status_code=204)


@allow_global_admin
async def tenants(request: Request) -> Response:
    """``GET|POST /ldt/v1/admin/tenants``: list, or create ``{"name"}``."""
    registry = request.app.state.tenants
    if request.method == "GET":
        return _json(await registry.registered())
    body = await _body(request)
    try:
        created = await registry.add(_text(body, "name"))
    except InvalidInputError as exc:
        raise _bad(exc) from None
    return _json({"name": body["name"], "created": created}, 201 if created else 200)


@allow_global_admin
async def remove_tenant(request: Request) -> Response:
    """``DELETE /ldt/v1/admin/tenants/{name}``: unknown to requests from now on; its data
    stays (``ldt cloud tenants remove`` says where) until removed by hand."""
    registry = request.app.state.tenants
    if not await registry.remove(str(request.path_params["name"])):
        raise NonexistentTenantError(str(request.path_params["name"]))
    return Response(status_code=204)


routes = [
    Route("/auth/token", token, methods=["POST"]),
    Route("/auth/revoke", revoke, methods=["POST"]),
    Route("/ldt/v1/admin/users", list_principals, methods=["GET"]),
    Route("/ldt/v1/admin/users", add_principal, methods=["POST"]),
    Route("/ldt/v1/admin/users/{name}", change_principal, methods=["PATCH"]),
    Route("/ldt/v1/admin/users/{name}", remove_principal, methods=["DELETE"]),
    Route("/ldt/v1/admin/clients", list_principals, methods=["GET"]),
    Route("/ldt/v1/admin/clients", add_principal, methods=["POST"]),
    Route("/ldt/v1/admin/clients/{name}", change_principal, methods=["PATCH"]),
    Route("/ldt/v1/admin/clients/{name}", remove_principal, methods=["DELETE"]),
    Route("/ldt/v1/admin/clients/{name}/tokens", client_token, methods=["POST"]),
    Route("/ldt/v1/admin/tokens/{token_id}", revoke_token, methods=["DELETE"]),
    Route("/ldt/v1/admin/grants", add_grant, methods=["POST"]),
    Route("/ldt/v1/admin/grants", remove_grants, methods=["DELETE"]),
    Route("/ldt/v1/admin/tenants", tenants, methods=["GET", "POST"]),
    Route("/ldt/v1/admin/tenants/{name}", remove_tenant, methods=["DELETE"]),
]
