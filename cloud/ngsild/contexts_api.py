"""``/ngsi-ld/v1/jsonldContexts``: the broker as a @context server (GS CIM 009 v1.9 clause 5.13).

- ``POST /jsonldContexts``: body ``{"@context": ...}`` -> 201, ``Location`` of the Hosted copy.
- ``GET /jsonldContexts?details=&kind=``: URLs, or detail objects with ``details=true``.
- ``GET /jsonldContexts/{id}?details=``: the document, or its details; ``id`` is a
  local id or a (percent-encoded) URL.
- ``DELETE /jsonldContexts/{id}?reload=``: 204; ``reload=true`` re-fetches a Cached one.

Hosted contexts belong to the ``NGSILD-Tenant`` that posted them. The
``ContextStore`` is ``request.app.state.contexts``. ``context_problem`` maps a
``ContextError`` to the ProblemDetails every other route should answer with, and
``resolve_context`` is how every route turns a request's @context into an active context.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission
from ldt.cloud.ngsild.contexts import ContextEntry, ContextKind, ContextStore
from ldt.cloud.ngsild.jsonld import ActiveContext, ContextError
from ldt.cloud.ngsild.media import JSON, JSON_LD, read_body, request_media_type
from ldt.cloud.ngsild.params import flag
from ldt.cloud.ngsild.problems import ERROR_BASE, NgsiLdError
from ldt.cloud.ngsild.quotas import QuotaExceededError, Quotas, over
from ldt.cloud.ngsild.timestamps import iso_ms

__all__ = [
    "MAX_CONTEXT_BODY",
    "ContextProblemError",
    "context_problem",
    "drop_context",
    "implicit_context",
    "resolve_context",
    "routes",
]

MAX_CONTEXT_BODY = 1 << 20
_KINDS: frozenset[str] = frozenset({"Hosted", "Cached", "ImplicitlyCreated"})
_STATUS = {
    # 503 as the ETSI conformance suite (v1.9 cases 043_01, 028_07_02, 053_05_01) expects:
    # the @context server is unavailable, a condition of a dependency, not a gateway timeout
    "LdContextNotAvailable": 503,
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
    """The ProblemDetails for a failed @context: 503 LdContextNotAvailable, 400, 404 or 500."""
    return ContextProblemError(err.problem, _STATUS[err.problem], _TITLES[err.problem], err.detail)


async def resolve_context(request: Request, context: Any) -> ActiveContext:
    """The active context of a request's @context (a Link URL, a body's value, or None for
    the core context), seen from the request's ``NGSILD-Tenant`` (its Hosted contexts)."""
    contexts: ContextStore = request.app.state.contexts
    try:
        return await contexts.resolve(context, tenant=request.headers.get("ngsild-tenant"))
    except ContextError as exc:
        raise context_problem(exc) from None


def implicit_context(request: Request, context: Any) -> str | None:
    """Keep a request's inline or array ``@context`` as an ImplicitlyCreated one; its URL.

    A subscription must compact its notifications with the @context it was
    created in long after the request, and a Link header carries one URL, not an
    array or an object: the broker hosts that value (5.13, kind
    ``ImplicitlyCreated``) and the subscription names it as its
    ``jsonldContext``. None for a single URL (nothing to keep: it is Cached) or
    no @context. Entity writes do not call this: their @context serves only the
    request, and a copy per write would grow without bound.
    """
    if context is None or isinstance(context, str):
        return None
    try:
        entry = _contexts(request).add(context, tenant=_tenant(request), kind="ImplicitlyCreated")
    except ContextError as exc:
        raise context_problem(exc) from None
    return _url(request, entry)


def drop_context(request: Request, url: str) -> None:
    """Delete a @context ``implicit_context`` made for a request that then failed."""
    with contextlib.suppress(ContextError):
        _contexts(request).forget(url, tenant=_tenant(request))


def _contexts(request: Request) -> ContextStore:
    contexts: ContextStore = request.app.state.contexts
    return contexts


def _tenant(request: Request) -> str | None:
    return request.headers.get("ngsild-tenant") or None


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid query parameter", detail)


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


@allow(Permission.READ, entities=False)
async def _list(request: Request) -> Response:
    details, kind = flag(request.query_params, "details"), _kind(request)
    entries = _contexts(request).entries(tenant=_tenant(request), kind=kind)
    if details:
        return _json([_details(request, e) for e in entries])
    return _json([_url(request, e) for e in entries])


@allow(Permission.WRITE, entities=False)
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
    contexts, tenant = _contexts(request), _tenant(request)
    members = body["@context"] if isinstance(body["@context"], list) else [body["@context"]]
    quotas: Quotas = request.app.state.quotas
    hosted = [e for e in contexts.entries(tenant=tenant) if e.origin == "hosted"]
    over(quotas.hosted_contexts, len(hosted), "hosted @contexts")
    held = sum(len(orjson.dumps(e.body)) for e in hosted)
    if held + len(raw) > quotas.hosted_context_bytes:
        raise QuotaExceededError("bytes of hosted @contexts", quotas.hosted_context_bytes)
    try:
        entry = contexts.add(body["@context"], tenant=tenant)  # validates the body first
    except ContextError as exc:
        raise context_problem(exc) from None
    try:
        # The remote contexts a hosted one names become Cached now (5.13.2, as ETSI's suite
        # checks): a hosted context whose references cannot be had is refused up front
        # (503 LdContextNotAvailable) instead of failing on every later use.
        for member in members:
            if isinstance(member, str):
                await contexts.resolve(member, tenant=tenant)
    except ContextError as exc:
        await contexts.delete(entry.local_id, tenant=tenant)
        raise context_problem(exc) from None
    return Response(status_code=201, headers={"Location": entry.url})


@allow(Permission.READ, entities=False)
async def _serve(request: Request) -> Response:
    details = flag(request.query_params, "details")
    context_id = request.path_params["context_id"]
    try:
        entry = _contexts(request).get(context_id, tenant=_tenant(request), count=not details)
    except ContextError as exc:
        raise context_problem(exc) from None
    return _json(_details(request, entry) if details else entry.body)


@allow(Permission.WRITE, entities=False)
async def _delete(request: Request) -> Response:
    reload = flag(request.query_params, "reload")
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
