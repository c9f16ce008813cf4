"""HTTP of the control plane: the gateways' exchange and the admin API.

- ``POST /ldt/v1/control/sync``: a gateway (client certificate) -> ``ControlAnswer``.
- People (``ldt.cloud.access``: operators list, assign and roll back; admins upload and
  read the audit):
  ``GET|POST /ldt/v1/catalogue/{kind}`` (list, upload: the body is the bundle or rule
  set), ``POST /ldt/v1/catalogue/{kind}/{name}/assign`` ``{"gateway": ID}`` or
  ``{"group": NAME}``, ``POST .../rollback``, ``GET .../rollout``, ``GET /ldt/v1/commands``,
  ``GET /ldt/v1/audit``.

Both exist only on the TLS listener (404 on a plain-HTTP cloud: no CA, nothing signed).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.policy import allow, gateway_route
from ldt.cloud.access.roles import Permission
from ldt.cloud.control.catalogue import CATALOGUE_KINDS, target_of
from ldt.cloud.control.plane import ControlPlane
from ldt.cloud.errors import CloudError
from ldt.cloud.ngsild.media import JSON, read_body
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.pki.routes import gateway_of
from ldt.contract.artifacts import MAX_ARTIFACT_BYTES
from ldt.contract.control import CONTROL_SYNC_PATH, ControlSync

__all__ = ["routes"]

_log = logging.getLogger("ldt.cloud.control")
_MAX_SYNC_BYTES = 2 << 20


def _plane(request: Request) -> ControlPlane:
    plane: ControlPlane | None = getattr(request.app.state, "control", None)
    if plane is None:
        raise NgsiLdError(404, None, "Not Found", "edge control is served on the TLS listener only")
    return plane


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status, media_type=JSON)


@gateway_route
async def control_sync(request: Request) -> Response:
    """One exchange with an authenticated gateway."""
    plane = _plane(request)
    who = await gateway_of(request)
    if who is None:
        raise NgsiLdError(401, None, "Unauthorized", "control needs the gateway's certificate")
    gateway_id = who[0]
    raw = await read_body(request, limit=_MAX_SYNC_BYTES)
    try:
        message = ControlSync.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise NgsiLdError(
            400, "BadRequestData", "Invalid control message", f"{where}: {first['msg']}"
        ) from None
    store = plane.catalogue.store

    async def gone() -> bool:
        # checked about once a second during the long poll: a revocation (by this broker or
        # another) ends it at once, and nothing more is handed to the gateway
        return await request.is_disconnected() or await store.gateways.revoked(gateway_id)

    try:
        answer = await plane.sync(gateway_id, message, gone)
    except CloudError as exc:
        raise NgsiLdError(403, None, "Forbidden", str(exc)) from None
    return Response(answer.model_dump_json().encode(), media_type=JSON)


def _kind(request: Request) -> str:
    kind = str(request.path_params["kind"])
    if kind not in CATALOGUE_KINDS:
        raise NgsiLdError(404, None, "Not Found", f"no catalogue of {kind!r} (model or rules)")
    return kind


def _bad(exc: CloudError) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Bad Request", str(exc))


@allow(Permission.CONTROL, entities=False)
async def catalogue_list(request: Request) -> Response:
    """Every published version of models or rule sets."""
    plane = _plane(request)
    entries = await plane.catalogue.entries(_kind(request))
    return _json([dataclasses.asdict(e) for e in entries])


@allow(Permission.ADMIN, entities=False)
async def catalogue_upload(request: Request) -> Response:
    """Validate, sign and publish an upload (the body)."""
    plane = _plane(request)
    kind = _kind(request)
    content = await read_body(request, limit=MAX_ARTIFACT_BYTES)
    try:
        entry = await plane.catalogue.upload(kind, content)
    except CloudError as exc:
        raise _bad(exc) from None
    return _json(dataclasses.asdict(entry), 201)


@allow(Permission.CONTROL, entities=False)
async def catalogue_assign(request: Request) -> Response:
    """Assign an artifact to a gateway or a group."""
    plane = _plane(request)
    kind = _kind(request)
    try:
        body = orjson.loads(await read_body(request, limit=4096))
        body = body if isinstance(body, dict) else {}
        target = target_of(body.get("gateway"), body.get("group"))
        await plane.catalogue.assign(kind, str(request.path_params["name"]), target)
    except orjson.JSONDecodeError as exc:
        raise NgsiLdError(400, "BadRequestData", "Invalid JSON", str(exc)) from None
    except CloudError as exc:
        raise _bad(exc) from None
    return Response(status_code=204)


@allow(Permission.CONTROL, entities=False)
async def catalogue_rollback(request: Request) -> Response:
    """Publish the previous version again."""
    plane = _plane(request)
    try:
        entry = await plane.catalogue.rollback(_kind(request), str(request.path_params["name"]))
    except CloudError as exc:
        raise _bad(exc) from None
    return _json(dataclasses.asdict(entry), 201)


@allow(Permission.CONTROL, entities=False)
async def catalogue_rollout(request: Request) -> Response:
    """Per assigned gateway, its status on the newest version."""
    plane = _plane(request)
    try:
        statuses = await plane.catalogue.rollout(_kind(request), str(request.path_params["name"]))
    except CloudError as exc:
        raise NgsiLdError(404, None, "Not Found", str(exc)) from None
    return _json([dataclasses.asdict(s) for s in statuses])


@allow(Permission.CONTROL, entities=False)
async def commands_list(request: Request) -> Response:
    """The newest commands and their status."""
    plane = _plane(request)
    return _json(await plane.commands.commands())


@allow(Permission.ADMIN, entities=False)
async def audit_list(request: Request) -> Response:
    """The newest audit lines, both sides."""
    plane = _plane(request)
    return _json([dataclasses.asdict(e) for e in await plane.audit.entries(200)])


routes = [
    Route(CONTROL_SYNC_PATH, control_sync, methods=["POST"]),
    Route("/ldt/v1/catalogue/{kind}", catalogue_list, methods=["GET"]),
    Route("/ldt/v1/catalogue/{kind}", catalogue_upload, methods=["POST"]),
    Route("/ldt/v1/catalogue/{kind}/{name}/assign", catalogue_assign, methods=["POST"]),
    Route("/ldt/v1/catalogue/{kind}/{name}/rollback", catalogue_rollback, methods=["POST"]),
    Route("/ldt/v1/catalogue/{kind}/{name}/rollout", catalogue_rollout, methods=["GET"]),
    Route("/ldt/v1/commands", commands_list, methods=["GET"]),
    Route("/ldt/v1/audit", audit_list, methods=["GET"]),
]
