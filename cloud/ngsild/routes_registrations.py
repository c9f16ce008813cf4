"""``/csourceRegistrations`` and ``/csourceSubscriptions`` (GS CIM 009 v1.9 5.9-5.11).

- ``POST /csourceRegistrations``: 201 + Location, 409 if the id exists;
- ``GET /csourceRegistrations`` (id, type, idPattern, attrs, limit, offset, count) and
  ``GET /csourceRegistrations/{id}``;
- ``PATCH /csourceRegistrations/{id}`` (each member replaces the stored one) and ``DELETE``.
- ``GET /csourceSubscriptions[/{id}]``: this broker offers no registration
  subscriptions, so the list is empty and every id is unknown.

Registrations are kept and discoverable only: NO distributed operation is ever
performed (see ``ldt.cloud.ngsild.registrations``).
"""

from __future__ import annotations

import time
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission
from ldt.cloud.ngsild import formats, registrations
from ldt.cloud.ngsild.contexts_api import resolve_context
from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.jsonld import ActiveContext
from ldt.cloud.ngsild.media import negotiate
from ldt.cloud.ngsild.params import (
    DEFAULT_LIMIT,
    name_as_stored,
    non_negative,
    page_size,
    refuse_unknown,
)
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.routes_subscriptions import read_document
from ldt.cloud.ngsild.safe_regex import SafeRegex
from ldt.cloud.ngsild.tenant_routing import store_of
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.base import Store

__all__ = ["routes"]

_API: Final = "/ngsi-ld/v1"
_TITLE: Final = "Invalid request"
_QUERY_PARAMS: Final = frozenset(
    {"id", "type", "idPattern", "attrs", "q", "csf", "georel", "geometry", "coordinates",
     "geoproperty", "timeproperty", "timerel", "timeAt", "endTimeAt", "geometryProperty",
     "lang", "scopeQ", "options", "limit", "offset", "count", "local", "via"}
)  # fmt: skip
_UNSUPPORTED: Final = ("q", "csf", "georel", "scopeQ", "timerel")
"""Filters this broker does not evaluate on registrations: refused, never ignored."""


def _store(request: Request) -> Store:
    return store_of(request)  # the NGSILD-Tenant's store: registrations are per tenant


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", _TITLE, detail)


def _now() -> str:
    return iso_ms(time.time_ns() // 1_000_000)


def _reg_id(request: Request) -> str:
    reg_id: str = request.path_params["reg_id"]
    if not is_uri(reg_id):
        raise _bad(f"{reg_id!r} is not a URI")
    return reg_id


def _not_found(reg_id: str) -> NgsiLdError:
    return NgsiLdError(404, "ResourceNotFound", "Not found", f"no registration {reg_id}")


@allow(Permission.WRITE, entities=False)
async def create(request: Request) -> Response:
    """Register context source (5.9.2): 201 + Location, 409 if the id exists."""
    value, ctx, _ = await read_document(request)
    doc = registrations.validate(value, ctx, now=_now())
    if not await _store(request).registrations.put(doc, create=True):
        raise NgsiLdError(
            409, "AlreadyExists", "Already exists", f"registration {doc['id']} already exists"
        )
    return Response(
        status_code=201, headers={"Location": f"{_API}/csourceRegistrations/{doc['id']}"}
    )


@allow(Permission.READ, entities=False)
async def retrieve(request: Request) -> Response:
    """Retrieve context source registration (5.10.1): 200, 404."""
    reg_id = _reg_id(request)
    media = negotiate(request)
    url = formats.link_context(request)
    ctx = await resolve_context(request, url)
    doc = await _store(request).registrations.get(reg_id)
    if doc is None:
        raise _not_found(reg_id)
    return formats.entities_response(registrations.present(doc, ctx), media, context=url)


def _names(raw: str | None, ctx: ActiveContext) -> list[str] | None:
    if raw is None:
        return None
    return [name_as_stored(t.strip(), ctx) for t in raw.split(",") if t.strip()]


@allow(Permission.READ, entities=False)
async def query(request: Request) -> Response:
    """Query context source registrations (5.10.2): one page by id; ``count=true``: total."""
    params = request.query_params
    refuse_unknown(request, _QUERY_PARAMS, detail="not known")
    refused = [k for k in _UNSUPPORTED if k in params]
    if refused:
        raise NgsiLdError(
            501,
            "OperationNotSupported",
            "Not supported",
            f"{', '.join(refused)} on registrations is not supported by this broker",
        )
    media = negotiate(request)
    size = page_size(params, DEFAULT_LIMIT, title=_TITLE)
    offset = non_negative(params, "offset", 0, title=_TITLE)
    url = formats.link_context(request)
    ctx = await resolve_context(request, url)
    pattern = None
    if "idPattern" in params:
        try:
            pattern = SafeRegex(params["idPattern"])
        except ValueError as exc:
            raise _bad(f"idPattern: {exc}") from None
    ids = None if "id" not in params else [i.strip() for i in params["id"].split(",")]
    found = [
        doc
        for doc in await _store(request).registrations.list()
        if registrations.matches(
            doc,
            types=_names(params.get("type"), ctx),
            ids=ids,
            id_pattern=pattern,
            attrs=_names(params.get("attrs"), ctx),
        )
    ]
    page = [registrations.present(d, ctx) for d in found[offset : offset + size]]
    headers = {"NGSILD-Results-Count": str(len(found))} if params.get("count") == "true" else None
    return formats.entities_response(page, media, context=url, headers=headers)


@allow(Permission.WRITE, entities=False)
async def update(request: Request) -> Response:
    """Update context source registration (5.9.3): members replace stored ones; 204, 404."""
    reg_id = _reg_id(request)
    fragment, ctx, _ = await read_document(request)
    store = _store(request)
    stored = await store.registrations.get(reg_id)
    if stored is None:
        raise _not_found(reg_id)
    merged = registrations.merge(stored, fragment, ctx)
    doc = registrations.validate(merged, ctx, now=_now())
    doc["createdAt"] = stored.get("createdAt", doc["createdAt"])
    if not await store.registrations.put(doc, create=False):
        raise _not_found(reg_id)
    return Response(status_code=204)


@allow(Permission.WRITE, entities=False)
async def delete(request: Request) -> Response:
    """Delete context source registration (5.9.4): 204, 404."""
    reg_id = _reg_id(request)
    if not await _store(request).registrations.delete(reg_id):
        raise _not_found(reg_id)
    return Response(status_code=204)


@allow(Permission.READ, entities=False)
async def query_csource_subscriptions(request: Request) -> Response:
    """Query context source registration subscriptions (5.11.5): none exist here."""
    media = negotiate(request)
    page_size(request.query_params, DEFAULT_LIMIT, title=_TITLE)
    non_negative(request.query_params, "offset", 0, title=_TITLE)
    count = request.query_params.get("count") == "true"
    headers = {"NGSILD-Results-Count": "0"} if count else None
    url = formats.link_context(request)
    return formats.entities_response([], media, context=url, headers=headers)


@allow(Permission.READ, entities=False)
async def retrieve_csource_subscription(request: Request) -> Response:
    """Retrieve context source registration subscription (5.11.4): never found here."""
    negotiate(request)
    sub_id: str = request.path_params["sub_id"]
    raise NgsiLdError(
        404,
        "ResourceNotFound",
        "Not found",
        f"no registration subscription {sub_id}: this broker offers none",
    )


routes = [
    Route("/csourceRegistrations", create, methods=["POST"]),
    Route("/csourceRegistrations/", create, methods=["POST"]),
    Route("/csourceRegistrations", query, methods=["GET"]),
    Route("/csourceRegistrations/", query, methods=["GET"]),
    Route("/csourceRegistrations/{reg_id:path}", retrieve, methods=["GET"]),
    Route("/csourceRegistrations/{reg_id:path}", update, methods=["PATCH"]),
    Route("/csourceRegistrations/{reg_id:path}", delete, methods=["DELETE"]),
    Route("/csourceSubscriptions", query_csource_subscriptions, methods=["GET"]),
    Route("/csourceSubscriptions/", query_csource_subscriptions, methods=["GET"]),
    Route("/csourceSubscriptions/{sub_id:path}", retrieve_csource_subscription, methods=["GET"]),
]
