"""HTTP side of provisioning: the CA certificate, first certificates, renewals.

- ``GET /ldt/v1/pki/ca``: the CA certificate (public; the gateway checks its fingerprint
  against the claim token before trusting it).
- ``POST /ldt/v1/pki/provision`` ``{"token": ..., "csr": PEM}`` -> 201
  ``{"gatewayId", "certificate", "ca", "signingKey", "notAfter"}`` (``signingKey``: the
  Ed25519 public key that signs artifacts, pinned by the gateway). TLS only: over plain HTTP the
  exchange could be watched and the one-time token raced.
- ``POST /ldt/v1/pki/renew`` ``{"csr": PEM}`` with the gateway's current client
  certificate -> 201, the same body: the identity comes from that certificate.
- ``POST /ldt/v1/pki/claims`` ``{"site", "gateway"?, "ttl_s"?}``: a technician's (or an
  admin's) one-time claim token, over TLS only.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.current import current_principal
from ldt.cloud.access.guard import request_scope
from ldt.cloud.access.policy import allow, gateway_route, public_route
from ldt.cloud.access.roles import Permission
from ldt.cloud.errors import CloudError
from ldt.cloud.ngsild.media import JSON, read_body
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.pki.ca import IssuedCertificate
from ldt.cloud.pki.registry import PkiRefusedError, Provisioner
from ldt.cloud.tls import client_cert_pem

__all__ = ["PKI_PREFIX", "gateway_of", "routes"]

_log = logging.getLogger("ldt.cloud.pki")

PKI_PREFIX = "/ldt/v1/pki"
_MAX_BODY = 64 << 10


def _problem(exc: PkiRefusedError) -> NgsiLdError:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
    return NgsiLdError(exc.status, None, titles.get(exc.status, "Refused"), exc.reason)


def _provisioner(request: Request) -> Provisioner:
    pki: Provisioner | None = request.app.state.pki
    if pki is None or request.url.scheme != "https":
        raise NgsiLdError(
            403,
            None,
            "Forbidden",
            "provisioning runs over TLS only: start the cloud with --tls and use https://",
        )
    return pki


async def _json_body(request: Request) -> dict[str, Any]:
    body = await read_body(request, limit=_MAX_BODY)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NgsiLdError(400, "BadRequestData", "Invalid JSON", str(exc)) from None
    if not isinstance(value, dict):
        raise NgsiLdError(400, "BadRequestData", "Bad Request", "the body must be an object")
    return value


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise NgsiLdError(400, "BadRequestData", "Bad Request", f"{key!r} must be a string")
    return value


def _issued(pki: Provisioner, gateway_id: str, issued: IssuedCertificate) -> Response:
    body = {
        "gatewayId": gateway_id,
        "certificate": issued.pem.decode("ascii"),
        "ca": pki.ca.pem.decode("ascii"),
        "signingKey": pki.ca.signing_public_pem.decode("ascii"),
        "notAfter": issued.not_after.isoformat(),
    }
    return Response(orjson.dumps(body), status_code=201, media_type=JSON)


async def gateway_of(request: Request) -> tuple[str, str] | None:
    """(gateway id, site) from the request's client certificate; None if it has none.

    Raises ``NgsiLdError`` 401 for a certificate that is revoked, expired or unknown.
    """
    pem = client_cert_pem(request.scope)
    pki: Provisioner | None = request.app.state.pki
    if pem is None or pki is None:
        return None
    try:
        return await pki.authenticate(pem)
    except PkiRefusedError as exc:
        raise _problem(exc) from None


@public_route
async def ca_certificate(request: Request) -> Response:
    """The CA certificate, PEM."""
    pki: Provisioner | None = request.app.state.pki
    if pki is None:
        raise NgsiLdError(404, None, "Not Found", "this cloud runs without its CA (no --tls)")
    return Response(pki.ca.pem, media_type="application/x-pem-file")


@gateway_route
async def provision(request: Request) -> Response:
    """A first certificate for a gateway holding a claim token."""
    pki = _provisioner(request)
    body = await _json_body(request)
    token, csr = _text(body, "token"), _text(body, "csr")
    try:
        issued = await pki.provision(token, csr.encode("utf-8"))
    except PkiRefusedError as exc:
        raise _problem(exc) from None
    return _issued(pki, issued.common_name, issued)


@gateway_route
async def renew(request: Request) -> Response:
    """A new certificate for the gateway presenting its current one."""
    pki = _provisioner(request)
    who = await gateway_of(request)
    if who is None:
        raise NgsiLdError(401, None, "Unauthorized", "renewal needs the gateway's certificate")
    body = await _json_body(request)
    try:
        issued = await pki.renew(who[0], who[1], _text(body, "csr").encode("utf-8"))
    except PkiRefusedError as exc:
        raise _problem(exc) from None
    return _issued(pki, who[0], issued)


@allow(Permission.CLAIM)
async def create_claim(request: Request) -> Response:
    """A technician's one-time claim token for a site (``ldt cloud token create`` over HTTP).

    ``{"site": S, "gateway"?: ID, "ttl_s"?: seconds}`` -> 201 ``{"token", "site",
    "expiresInS"}``. A technician whose grant has an id prefix may only name sites that
    start with it (``--id-prefix depot-``): the grant's prefix scopes the sites it claims.
    """
    if request.app.state.pki is None or request.url.scheme != "https":
        raise NgsiLdError(404, None, "Not Found", "claim tokens are served on the TLS listener")
    pki = _provisioner(request)
    body = await _json_body(request)
    site = _text(body, "site")
    reach = request_scope(request.scope, Permission.CLAIM)
    if not reach.unrestricted and not any(site.startswith(p) for _, p in reach.parts):
        raise NgsiLdError(403, None, "Forbidden", f"site {site!r} is outside your grant")
    gateway = body.get("gateway")
    if gateway is not None and not reach.unrestricted:
        # a token naming a gateway replaces it wherever it is: not for a site-scoped grant
        raise NgsiLdError(
            403, None, "Forbidden", "a site-scoped grant claims new gateways only (no gateway)"
        )
    ttl = body.get("ttl_s", 86400)
    if (gateway is not None and not isinstance(gateway, str)) or not isinstance(ttl, int | float):
        raise NgsiLdError(
            400, "BadRequestData", "Bad Request", "gateway is a string, ttl_s a number"
        )
    try:
        token = await pki.create_claim(site, float(ttl), gateway)
    except CloudError as exc:
        raise NgsiLdError(400, "BadRequestData", "Bad Request", str(exc)) from None
    by = current_principal.get()
    _log.info("claim token created", extra={"site": site, "by": by.label if by else None})
    return Response(
        orjson.dumps({"token": token, "site": site, "expiresInS": float(ttl)}),
        status_code=201,
        media_type=JSON,
        headers={"Cache-Control": "no-store"},
    )


routes = [
    Route(f"{PKI_PREFIX}/ca", ca_certificate, methods=["GET"]),
    Route(f"{PKI_PREFIX}/claims", create_claim, methods=["POST"]),
    Route(f"{PKI_PREFIX}/provision", provision, methods=["POST"]),
    Route(f"{PKI_PREFIX}/renew", renew, methods=["POST"]),
]
