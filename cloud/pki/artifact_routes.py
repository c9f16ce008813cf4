"""The gateways' HTTP routes for signed artifacts (``artifacts.ArtifactService``).

Client certificate required (``routes.gateway_of``):

- ``GET /ldt/v1/artifacts/{kind}/{name}`` -> ``{"envelope": {...}, "content": base64}``
- ``POST /ldt/v1/artifacts/reports`` ``{"kind", "name", "version", "status", "reason"}``
"""

from __future__ import annotations

import base64

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.policy import gateway_route
from ldt.cloud.errors import CloudError
from ldt.cloud.ngsild.media import JSON, read_body
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.pki.routes import gateway_of

__all__ = ["routes"]


def _service(request: Request) -> ArtifactService:
    service: ArtifactService | None = request.app.state.artifacts
    if service is None:
        raise NgsiLdError(404, None, "Not Found", "artifacts are served on the TLS listener only")
    return service


async def _gateway(request: Request) -> str:
    who = await gateway_of(request)
    if who is None:
        raise NgsiLdError(401, None, "Unauthorized", "artifacts need the gateway's certificate")
    return who[0]


@gateway_route
async def get_artifact(request: Request) -> Response:
    """The latest version of one artifact, for an authenticated gateway."""
    service = _service(request)
    await _gateway(request)
    found = await service.latest(request.path_params["kind"], request.path_params["name"])
    if found is None:
        raise NgsiLdError(404, None, "Not Found", "no such artifact")
    envelope, content = found
    body = {"envelope": envelope, "content": base64.b64encode(content).decode("ascii")}
    return Response(orjson.dumps(body), media_type=JSON)


@gateway_route
async def post_report(request: Request) -> Response:
    """A gateway's report on an artifact version."""
    service = _service(request)
    gateway_id = await _gateway(request)
    raw = await read_body(request, limit=16 << 10)
    try:
        await service.report(gateway_id, orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise NgsiLdError(400, "BadRequestData", "Invalid JSON", str(exc)) from None
    except CloudError as exc:
        raise NgsiLdError(400, "BadRequestData", "Bad Request", str(exc)) from None
    return Response(status_code=204)


routes = [
    Route("/ldt/v1/artifacts/reports", post_report, methods=["POST"]),
    Route("/ldt/v1/artifacts/{kind}/{name}", get_artifact, methods=["GET"]),
]
