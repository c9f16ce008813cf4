"""The NGSI-LD API (ETSI GS CIM 009) subset the cloud serves under ``/ngsi-ld/v1``.

- ``GET /entities/{id}``: one entity (404 ResourceNotFound, 400 for a non-URI id).
- ``GET /entities?type=&id=&limit=&offset=&count=``: query, ordered by id.
- ``POST /entityOperations/upsert?options=replace|update``: batch upsert,
  201 (created ids) / 204 (all existed) / 207 (BatchOperationResult with errors).

``options=keyValues`` (or ``format=simplified``) on the GETs returns the
simplified form. Entities are read from and written to ``app.state.store``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.ngsild.entities import is_uri, validate_entity
from ldt.cloud.ngsild.media import (
    JSON,
    JSON_LD,
    entity_response,
    negotiate,
    read_body,
    request_media_type,
)
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.store.base import Entity, Store

__all__ = ["MAX_LIMIT", "MAX_UPSERT_BYTES", "routes"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
MAX_UPSERT_BYTES = 8 << 20


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _bad_param(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid query parameter", detail)


def _simplified(request: Request) -> bool:
    options = request.query_params.get("options", "")
    fmt = request.query_params.get("format", "")
    return "keyValues" in options.split(",") or fmt in {"simplified", "keyValues"}


def _key_values(entity: Entity) -> Entity:
    out: Entity = {}
    for name, attr in entity.items():
        if name in {"id", "type"} or not isinstance(attr, dict):
            out[name] = attr
            continue
        for member in ("value", "object", "languageMap", "vocab", "json", "valueList"):
            if member in attr:
                out[name] = attr[member]
                break
    return out


def _int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_param(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise _bad_param(f"{name} must be between {low} and {high}, got {value}")
    return value


def _csv_param(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    items = [item.strip() for item in raw.split(",")]
    if not all(items):
        raise _bad_param(f"{name} has an empty item: {raw!r}")
    return items


async def get_entity(request: Request) -> Response:
    """Entity retrieval by id (clause 6.5.3.1)."""
    media = negotiate(request)
    entity_id = request.path_params["entity_id"]
    if not is_uri(entity_id):
        raise NgsiLdError(400, "BadRequestData", "Invalid entity id", f"{entity_id!r} is not a URI")
    entity = await _store(request).get_entity(entity_id)
    if entity is None:
        raise NgsiLdError(
            404, "ResourceNotFound", "Entity not found", f"no entity with id {entity_id}"
        )
    return entity_response(_key_values(entity) if _simplified(request) else entity, media)


async def query_entities(request: Request) -> Response:
    """Query entities (clause 6.4.3.2) by type and/or id, paginated."""
    media = negotiate(request)
    types = _csv_param(request, "type")
    ids = _csv_param(request, "id")
    if types is None and ids is None:
        raise _bad_param("give type or id (a query for every entity is too broad)")
    for entity_id in ids or ():
        if not is_uri(entity_id):
            raise _bad_param(f"id {entity_id!r} is not a URI")
    count_raw = request.query_params.get("count", "false")
    if count_raw not in {"true", "false"}:
        raise _bad_param(f"count must be true or false, got {count_raw!r}")
    count = count_raw == "true"
    limit = _int_param(request, "limit", DEFAULT_LIMIT, low=0, high=MAX_LIMIT)
    if limit == 0 and not count:
        raise _bad_param("limit=0 is only allowed with count=true")
    offset = _int_param(request, "offset", 0, low=0, high=2**31)
    page, total = await _store(request).query_entities(
        types=types, ids=ids, limit=limit, offset=offset
    )
    if _simplified(request):
        page = [_key_values(e) for e in page]
    headers = {"NGSILD-Results-Count": str(total)} if count else None
    return entity_response(page, media, headers=headers)


async def upsert(request: Request) -> Response:
    """Batch entity upsert (clause 6.15.3.1)."""
    content_type = request_media_type(request)
    if content_type not in {JSON, JSON_LD}:
        raise NgsiLdError(
            415,
            None,
            "Unsupported Media Type",
            f"send {JSON} or {JSON_LD}, not {content_type or 'no Content-Type'}",
        )
    options = request.query_params.get("options", "replace")
    if options not in {"replace", "update"}:
        raise _bad_param(f"options must be replace or update, got {options!r}")
    body = await read_body(request, limit=MAX_UPSERT_BYTES)
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NgsiLdError(400, "InvalidRequest", "Invalid JSON", str(exc)) from exc
    if not isinstance(raw, list) or not raw:
        raise NgsiLdError(
            400,
            "BadRequestData",
            "Invalid request",
            "the body must be a non-empty array of entities",
        )
    valid: list[Entity] = []
    errors: list[dict[str, Any]] = []
    for item in raw:
        try:
            valid.append(validate_entity(item, allow_context=content_type == JSON_LD))
        except NgsiLdError as exc:
            entity_id = item.get("id") if isinstance(item, dict) else None
            errors.append(
                {"entityId": entity_id if isinstance(entity_id, str) else "", "error": exc.body()}
            )
    created = (
        await _store(request).upsert_entities(valid, replace=options == "replace") if valid else []
    )
    if errors:
        result = {"success": [e["id"] for e in valid], "errors": errors}
        return Response(orjson.dumps(result), status_code=207, media_type=JSON)
    new_ids = [e["id"] for e, was_new in zip(valid, created, strict=True) if was_new]
    if not new_ids:
        return Response(status_code=204)
    return Response(orjson.dumps(new_ids), status_code=201, media_type=JSON)


routes = [
    Route("/entities", query_entities, methods=["GET"]),
    Route("/entities/{entity_id:path}", get_entity, methods=["GET"]),
    Route("/entityOperations/upsert", upsert, methods=["POST"]),
]
