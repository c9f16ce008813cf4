"""``/ngsi-ld/v1/jsonldContexts``: the broker as a @context server (GS CIM 009 v1.9 clause 5.13).

- ``POST /jsonldContexts``: body ``{"@context": ...}`` -> 201, ``Location`` of the Hosted copy.
- ``GET /jsonldContexts?details=&kind=``: URLs, or detail objects with ``details=true``.
- ``GET /jsonldContexts/{id}?details=``: the document, or its details; ``id`` is a
  local id or a (percent-encoded) URL.
- ``DELETE /jsonldContexts/{id}?reload=``: 204; ``reload=true`` re-fetches a Cached one.

Hosted contexts belong to the ``NGSILD-Tenant`` that posted them. The
``ContextStore`` is ``request.app.state.contexts``. ``context_problem`` maps a
``ContextError`` to the ProblemDetails every other route should answer with.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.ngsild.contexts import ContextEntry, ContextKind, ContextStore
from ldt.cloud.ngsild.jsonld import ContextError
from ldt.cloud.ngsild.media import JSON, JSON_LD, read_body, request_media_type
from ldt.cloud.ngsild.problems import ERROR_BASE, NgsiLdError
from ldt.cloud.ngsild.timestamps import iso_ms

__all__ = ["MAX_CONTEXT_BODY", "ContextProblemError", "context_problem", "routes"]

MAX_CONTEXT_BODY = 1 << 20
_KINDS: frozenset[str] = frozenset({"Hosted", "Cached", "ImplicitlyCreated"})
_STATUS = {
    "LdContextNotAvailable": 504,  # v1.9 table 5.5.1 (503 in versions before 1.6)
    "InvalidRequest": 400,
    "BadRequestData": 400,
    "ResourceNotFound": 404,
    "InternalError": 500,
}
_TITLES = {
    "LdContextNotAvailable": "@context not available",
    "InvalidRequest": "Invalid request",
    "BadRequestData": "Bad request data",
    "ResourceNotFound": "Not found",
    "InternalError": "Internal error",
}


class ContextProblemError(NgsiLdError):
    """An ``NgsiLdError`` whose type may be ``LdContextNotAvailable`` (not in ``ErrorType``)."""

    def __init__(self, type_name: str, status: int, title: str, detail: str) -> None:
        super().__init__(status, None, title, detail)
        self.type_name = type_name

    def body(self) -> dict[str, object]:
        return {**super().body(), "type": ERROR_BASE + self.type_name}


def context_problem(err: ContextError) -> NgsiLdError:
    """The ProblemDetails for a failed @context: 504 LdContextNotAvailable, 400, 404 or 500."""
    return ContextProblemError(err.problem, _STATUS[err.problem], _TITLES[err.problem], err.detail)


def _contexts(request: Request) -> ContextStore:
    contexts: ContextStore = request.app.state.contexts
    return contexts


def _tenant(request: Request) -> str | None:
    return request.headers.get("ngsild-tenant") or None


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid query parameter", detail)


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise _bad(f"{name} must be true or false, got {raw!r}")


def _kind(request: Request) -> ContextKind | None:
    raw = request.query_params.get("kind")
    if raw is None:
        return None
    if raw not in _KINDS:
        raise _bad(f"kind must be one of Hosted, Cached, ImplicitlyCreated; got {raw!r}")
    return raw  # type: ignore[return-value]


def _url(request: Request, entry: ContextEntry) -> str:
    if entry.origin == "hosted":
        return f"{request.url.scheme}://{request.url.netloc}{entry.url}"
    return entry.url


def _details(request: Request, entry: ContextEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "URL": _url(request, entry),
        "localId": entry.local_id,
        "kind": entry.kind,
        "createdAt": iso_ms(entry.created_at_ms),
        "numberOfHits": entry.hits,
    }
    if entry.last_usage_ms is not None:
        out["lastUsage"] = iso_ms(entry.last_usage_ms)
    return out


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


async def _list(request: Request) -> Response:
    details, kind = _flag(request, "details"), _kind(request)
    entries = _contexts(request).entries(tenant=_tenant(request), kind=kind)
    if details:
        return _json([_details(request, e) for e in entries])
    return _json([_url(request, e) for e in entries])


async def _add(request: Request) -> Response:
    if request_media_type(request) not in {JSON, JSON_LD}:
        raise NgsiLdError(415, None, "Unsupported Media Type", f"send {JSON} or {JSON_LD}")
    raw = await read_body(request, limit=MAX_CONTEXT_BODY)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NgsiLdError(
            400, "InvalidRequest", "Invalid JSON", f"the body is not JSON: {exc}"
        ) from None
    if not isinstance(body, dict) or "@context" not in body:
        raise NgsiLdError(
            400, "InvalidRequest", "Invalid request", 'the body must be {"@context": ...}'
        )
    try:
        entry = _contexts(request).add(body["@context"], tenant=_tenant(request))
    except ContextError as exc:
        raise context_problem(exc) from None
    return Response(status_code=201, headers={"Location": entry.url})


async def _serve(request: Request) -> Response:
    details = _flag(request, "details")
    context_id = request.path_params["context_id"]
    try:
        entry = _contexts(request).get(context_id, tenant=_tenant(request), count=not details)
    except ContextError as exc:
        raise context_problem(exc) from None
    return _json(_details(request, entry) if details else entry.body)


async def _delete(request: Request) -> Response:
    reload = _flag(request, "reload")
    context_id = request.path_params["context_id"]
    try:
        await _contexts(request).delete(context_id, tenant=_tenant(request), reload=reload)
    except ContextError as exc:
        raise context_problem(exc) from None
    return Response(status_code=204)


routes = [
    Route("/jsonldContexts", _list, methods=["GET"]),
    Route("/jsonldContexts", _add, methods=["POST"]),
    Route("/jsonldContexts/{context_id:path}", _serve, methods=["GET"]),
    Route("/jsonldContexts/{context_id:path}", _delete, methods=["DELETE"]),
]
