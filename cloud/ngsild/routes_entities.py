"""The NGSI-LD entity write API (GS CIM 009 v1.9 clauses 5.6, 5.9, 6.4-6.8 and 6.14-6.31).

- ``POST /entities`` (201 + Location; 409 AlreadyExists), ``PUT``/``PATCH``/``DELETE
  /entities/{id}`` (replace, merge-patch, delete: 204 / 404);
- ``POST /entities/{id}/attrs`` (append, ``options=noOverwrite``) and ``PATCH
  /entities/{id}/attrs`` (update; ``entity_ops.update_attrs`` says what the suite expects):
  204, or 207 with an UpdateResult (names as expanded IRIs); ``DELETE`` there is 405;
- ``DELETE /entities`` (purge by type/id/idPattern/q/scopeQ, ``keep``/``drop``): ``purge``;
- ``PATCH``/``PUT``/``DELETE /entities/{id}/attrs/{attr}`` (partial update,
  replace, delete with ``datasetId``/``deleteAll``): 204 / 404;
- ``POST /entityOperations/{create,upsert,update,delete,merge}``: 201/204, or
  207 with a BatchOperationResult. Every item is validated before the store
  transaction, and the store refuses an item alone (``Store.write_entities``),
  so a failing item never touches the others.

@context: ``application/json`` bodies take it from the Link header and must not
carry ``@context``; ``application/ld+json`` bodies must carry it, and a Link
header with them is refused (6.3.5). Names are stored as ``entity_ops`` says.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.guard import limited, out_of_scope
from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission, Scope
from ldt.cloud.ngsild import entity_ops as ops
from ldt.cloud.ngsild import purge
from ldt.cloud.ngsild.contexts_api import resolve_context
from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.entity_query import entity_types
from ldt.cloud.ngsild.jsonld import ActiveContext, core_context
from ldt.cloud.ngsild.media import JSON, MERGE_PATCH
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.quotas import QuotaExceededError, Quotas
from ldt.cloud.ngsild.request_body import context_of, json_object, link_context, read_json
from ldt.cloud.ngsild.tenant_routing import notifier_of, store_of
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.base import Entity, Store
from ldt.cloud.store.entities import EntityChange, WriteOutcome

__all__ = ["MAX_BATCH_BYTES", "MAX_ENTITY_BYTES", "MERGE_PATCH", "routes"]

MAX_ENTITY_BYTES = 1 << 20
MAX_BATCH_BYTES = 8 << 20
_API = "/ngsi-ld/v1"


def _store(request: Request) -> Store:
    return store_of(request)  # the NGSILD-Tenant's store (tenant_routing)


def _now() -> str:
    return iso_ms(time.time_ns() // 1_000_000)


async def _write(
    request: Request, changes: Sequence[tuple[str, EntityChange]]
) -> list[WriteOutcome | NgsiLdError]:
    """Every entity write: the store's transaction, then subscription notifications.

    A scoped grant is checked inside the transaction, on the entity before and after the
    change: a write reaching outside it is refused (403; one error item in a batch).
    """
    notifier: Notifier = notifier_of(request)
    allowed = limited(request.scope, Permission.WRITE)
    if allowed is not None:
        changes = [(eid, _within(allowed, change)) for eid, change in changes]
    quotas: Quotas = request.app.state.quotas
    store = _store(request)

    async def count() -> int:
        return (await store.entities.query(types=None, ids=None, limit=0, offset=0))[1]

    if await request.app.state.entity_count.full(id(store), count, quotas.entities):
        changes = [(eid, _no_creation(quotas.entities, change)) for eid, change in changes]
    return await notifier.write_entities(changes)


def _no_creation(limit: int, change: EntityChange) -> EntityChange:
    """``change``, refused (403, one error item in a batch) where it would create."""

    def run(old: Entity | None) -> Entity | None:
        new = change(old)
        if old is None and new is not None:
            raise QuotaExceededError("entities", limit)
        return new

    return run


def _within(allowed: Scope, change: EntityChange) -> EntityChange:
    def check(doc: Entity | None) -> None:
        if doc is not None and not allowed.allows(str(doc.get("id")), entity_types(doc)):
            raise out_of_scope(str(doc.get("id")))

    def run(old: Entity | None) -> Entity | None:
        check(old)
        new = change(old)
        check(new)
        return new

    return run


def _bad(detail: str, title: str = "Invalid request") -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", title, detail)


def _entity_id(request: Request) -> str:
    entity_id: str = request.path_params["entity_id"]
    if not is_uri(entity_id):
        raise _bad(f"{entity_id!r} is not a URI", "Invalid entity id")
    return entity_id


def _options(request: Request, allowed: set[str]) -> set[str]:
    raw = request.query_params.get("options")
    options = set() if raw is None else {o.strip() for o in raw.split(",")}
    unknown = options - allowed
    if unknown:
        raise _bad(f"unknown options {sorted(unknown)}; allowed here: {sorted(allowed)}")
    return options


async def _write_one(request: Request, entity_id: str, change: EntityChange) -> WriteOutcome:
    (result,) = await _write(request, [(entity_id, change)])
    if isinstance(result, NgsiLdError):
        raise result
    return result


def _expanded_name(stored: str) -> str:
    iri = core_context().expand(stored)
    return stored if iri is None else iri


def _update_result(report: ops.UpdateReport) -> Response:
    """204, or 207 with an UpdateResult (5.2.18) naming attributes by their expanded IRI.

    Expanded, not compacted with the request's @context: ETSI's suite compares them with
    IRIs (010_04_01), and an IRI names the attribute whatever context the client holds.
    """
    if not report.not_updated:
        return Response(status_code=204)
    body = {
        "updated": [_expanded_name(n) for n in report.updated],
        "notUpdated": [
            {"attributeName": _expanded_name(n), "reason": why}
            for n, why in report.not_updated.items()
        ],
    }
    return Response(orjson.dumps(body), status_code=207, media_type=JSON)


def _no_id_mismatch(fragment: Entity, entity_id: str) -> None:
    if fragment.get("id", entity_id) != entity_id:
        raise _bad(f"the body's id {fragment['id']} is not the URL's {entity_id}")


# --- /entities ------------------------------------------------------------------------------


@allow(Permission.WRITE)
async def create_entity(request: Request) -> Response:
    """Create entity (5.6.1): 201 with Location, 409 if the id exists."""
    body = await read_json(request, limit=MAX_ENTITY_BYTES)
    ctx = await context_of(request, body, json_object(body))
    fragment = ops.entity_fragment(json_object(body), ctx, need_id=True, need_type=True)
    await _write_one(request, fragment["id"], ops.create(fragment, _now()))
    return Response(status_code=201, headers={"Location": f"{_API}/entities/{fragment['id']}"})


@allow(Permission.WRITE)
async def delete_entity(request: Request) -> Response:
    """Delete entity (5.6.6): 204, 404."""
    entity_id = _entity_id(request)
    await _write_one(request, entity_id, ops.delete_entity(entity_id))
    return Response(status_code=204)


@allow(Permission.WRITE)
async def replace_entity(request: Request) -> Response:
    """Replace entity (5.6.18): every attribute replaced; 204, 404."""
    entity_id = _entity_id(request)
    body = await read_json(request, limit=MAX_ENTITY_BYTES)
    ctx = await context_of(request, body, json_object(body))
    fragment = ops.entity_fragment(json_object(body), ctx, need_id=False, need_type=True)
    _no_id_mismatch(fragment, entity_id)
    fragment["id"] = entity_id
    await _write_one(request, entity_id, ops.replace_entity(fragment, _now()))
    return Response(status_code=204)


@allow(Permission.WRITE)
async def merge_entity(request: Request) -> Response:
    """Merge entity (5.6.17, JSON merge-patch semantics): 204, 404."""
    entity_id = _entity_id(request)
    body = await read_json(request, limit=MAX_ENTITY_BYTES, merge_patch=True)
    ctx = await context_of(request, body, json_object(body))
    fragment = ops.entity_fragment(
        json_object(body), ctx, need_id=False, need_type=False, partial=True
    )
    _no_id_mismatch(fragment, entity_id)
    await _write_one(request, entity_id, ops.merge_entity(entity_id, fragment, _now()))
    return Response(status_code=204)


async def _attrs_fragment(request: Request, entity_id: str) -> Entity:
    body = await read_json(request, limit=MAX_ENTITY_BYTES)
    ctx = await context_of(request, body, json_object(body))
    fragment = ops.entity_fragment(json_object(body), ctx, need_id=False, need_type=False)
    _no_id_mismatch(fragment, entity_id)
    if not any(k != "id" for k in fragment):  # a type or scope alone is a change (011_06)
        raise _bad("the body names no attribute, type or scope")
    return fragment


@allow(Permission.WRITE)
async def append_attrs(request: Request) -> Response:
    """Append entity attributes (5.6.3): 204, or 207 with what ``noOverwrite`` kept."""
    entity_id = _entity_id(request)
    no_overwrite = "noOverwrite" in _options(request, {"noOverwrite"})
    fragment = await _attrs_fragment(request, entity_id)
    report = ops.UpdateReport()
    change = ops.append_attrs(entity_id, fragment, _now(), no_overwrite=no_overwrite, report=report)
    await _write_one(request, entity_id, change)
    return _update_result(report)


@allow(Permission.WRITE)
async def update_attrs(request: Request) -> Response:
    """Update entity attributes (5.6.2): 204, or 207 listing what was not updated."""
    entity_id = _entity_id(request)
    fragment = await _attrs_fragment(request, entity_id)
    report = ops.UpdateReport()
    await _write_one(
        request, entity_id, ops.update_attrs(entity_id, fragment, _now(), report=report)
    )
    return _update_result(report)


async def _one_attr(request: Request, *, partial: bool) -> tuple[str, Entity]:
    entity_id = _entity_id(request)
    # a PATCH may also come as application/merge-patch+json (6.3.4; suite case 044_01_01)
    body = await read_json(request, limit=MAX_ENTITY_BYTES, merge_patch=partial)
    ctx = await context_of(request, body, json_object(body))
    name = request.path_params["attr"]
    return entity_id, ops.attribute_fragment(json_object(body), name, ctx, partial=partial)


@allow(Permission.WRITE)
async def patch_attr(request: Request) -> Response:
    """Partial attribute update (5.6.4): 204, 404 (entity or attribute)."""
    entity_id, fragment = await _one_attr(request, partial=True)
    await _write_one(request, entity_id, ops.patch_attr(entity_id, fragment, _now()))
    return Response(status_code=204)


@allow(Permission.WRITE)
async def replace_attr(request: Request) -> Response:
    """Replace attribute (5.6.19): 204, 404 (entity or attribute)."""
    entity_id, fragment = await _one_attr(request, partial=False)
    await _write_one(request, entity_id, ops.replace_attr(entity_id, fragment, _now()))
    return Response(status_code=204)


@allow(Permission.WRITE)
async def delete_attr(request: Request) -> Response:
    """Delete attribute (5.6.5): ``datasetId=`` one instance, ``deleteAll=true`` every one."""
    entity_id = _entity_id(request)
    ctx = await resolve_context(request, link_context(request))
    name = ops.stored_name(request.path_params["attr"], ctx)
    if name is None:
        raise _bad(f"attribute {request.path_params['attr']!r} maps to null in the @context")
    dataset = request.query_params.get("datasetId")
    if dataset is not None and not is_uri(dataset):
        raise _bad(f"datasetId must be a URI, got {dataset!r}")
    delete_all = request.query_params.get("deleteAll", "false")
    if delete_all not in {"true", "false"}:
        raise _bad(f"deleteAll must be true or false, got {delete_all!r}")
    change = ops.delete_attr(
        entity_id, name, _now(), dataset_id=dataset, delete_all=delete_all == "true"
    )
    await _write_one(request, entity_id, change)
    return Response(status_code=204)


@allow(Permission.WRITE)
async def no_attribute_named(request: Request) -> Response:
    """``DELETE /entities/{id}/attrs`` names no attribute: 405, the path only takes POST/PATCH.

    Without this route the path would reach ``DELETE /entities/{id}`` with ``{id}/attrs`` as
    the id and answer 404; the suite expects 405 (013_02_03).
    """
    raise NgsiLdError(
        405,
        None,
        "Method Not Allowed",
        "DELETE needs an attribute name: /entities/{entityId}/attrs/{attrId}",
        headers={"Allow": "POST, PATCH"},
    )


# --- /entityOperations ------------------------------------------------------------------------


def _item_error(entity_id: Any, exc: NgsiLdError) -> dict[str, Any]:
    return {"entityId": entity_id if isinstance(entity_id, str) else "", "error": exc.body()}


async def _batch(
    request: Request,
    build: Callable[[Any, ActiveContext | None], Awaitable[tuple[str, EntityChange]]],
    *,
    created_status: bool,
    needs_context: bool = True,
    check: Callable[[int], NgsiLdError | None] | None = None,
) -> Response:
    """Validate every item, write the valid ones in one call, and answer per spec (5.6.7-10)."""
    body = await read_json(request, limit=MAX_BATCH_BYTES)
    if not isinstance(body.value, list) or not body.value:
        raise _bad("the body must be a non-empty array")
    errors: list[dict[str, Any]] = []
    changes: list[tuple[str, EntityChange]] = []
    for item in body.value:
        try:
            ctx = await context_of(request, body, item) if needs_context else None
            changes.append(await build(item, ctx))
        except NgsiLdError as exc:
            bad_id = item.get("id") if isinstance(item, dict) else item
            errors.append(
                _item_error(
                    bad_id if needs_context is False or isinstance(item, dict) else None, exc
                )
            )
    results: list[WriteOutcome | NgsiLdError] = await _write(request, changes) if changes else []
    success: list[str] = []
    created: list[str] = []
    for index, ((entity_id, _), result) in enumerate(zip(changes, results, strict=True)):
        problem = result if isinstance(result, NgsiLdError) else check and check(index)
        if problem:
            errors.append(_item_error(entity_id, problem))
            continue
        success.append(entity_id)
        if result == "created":
            created.append(entity_id)
    if errors:
        body_out = {"success": success, "errors": errors}
        return Response(orjson.dumps(body_out), status_code=207, media_type=JSON)
    if created_status and created:
        return Response(orjson.dumps(created), status_code=201, media_type=JSON)
    return Response(status_code=204)


@allow(Permission.WRITE)
async def batch_create(request: Request) -> Response:
    """Batch create (5.6.7): 201 with the ids, 207 if any failed."""
    now = _now()

    async def build(item: Any, ctx: ActiveContext | None) -> tuple[str, EntityChange]:
        assert ctx is not None
        fragment = ops.entity_fragment(item, ctx, need_id=True, need_type=True)
        return fragment["id"], ops.create(fragment, now)

    return await _batch(request, build, created_status=True)


@allow(Permission.WRITE)
async def batch_upsert(request: Request) -> Response:
    """Batch upsert (5.6.8): 201 with new ids, 204 if none was new, 207 if any failed."""
    options = _options(request, {"replace", "update"})
    if len(options) > 1:
        raise _bad("options is replace or update, not both")
    replace = "update" not in options
    now = _now()

    async def build(item: Any, ctx: ActiveContext | None) -> tuple[str, EntityChange]:
        assert ctx is not None
        fragment = ops.entity_fragment(item, ctx, need_id=True, need_type=True)
        return fragment["id"], ops.upsert(fragment, now, replace=replace)

    return await _batch(request, build, created_status=True)


@allow(Permission.WRITE)
async def batch_update(request: Request) -> Response:
    """Batch update (5.6.9): append to existing entities (``noOverwrite``); 204 or 207."""
    no_overwrite = "noOverwrite" in _options(request, {"noOverwrite"})
    now = _now()
    reports: list[ops.UpdateReport] = []

    def kept(index: int) -> NgsiLdError | None:
        names = sorted(reports[index].not_updated)
        if not names:
            return None
        return _bad(f"not overwritten (noOverwrite): {', '.join(names)}", "Attributes not updated")

    async def build(item: Any, ctx: ActiveContext | None) -> tuple[str, EntityChange]:
        assert ctx is not None
        fragment = ops.entity_fragment(item, ctx, need_id=True, need_type=False)
        report = ops.UpdateReport()
        reports.append(report)
        change = ops.append_attrs(
            fragment["id"], fragment, now, no_overwrite=no_overwrite, report=report
        )
        return fragment["id"], change

    return await _batch(request, build, created_status=False, check=kept)


@allow(Permission.WRITE)
async def batch_merge(request: Request) -> Response:
    """Batch merge (5.6.20): merge-patch existing entities; 204 or 207."""
    now = _now()

    async def build(item: Any, ctx: ActiveContext | None) -> tuple[str, EntityChange]:
        assert ctx is not None
        fragment = ops.entity_fragment(item, ctx, need_id=True, need_type=False, partial=True)
        return fragment["id"], ops.merge_entity(fragment["id"], fragment, now)

    return await _batch(request, build, created_status=False)


@allow(Permission.WRITE)
async def batch_delete(request: Request) -> Response:
    """Batch delete (5.6.10): the body is an array of ids; 204 or 207."""

    async def build(item: Any, ctx: ActiveContext | None) -> tuple[str, EntityChange]:
        if not is_uri(item):
            raise _bad(f"{item!r} is not an entity id (URI)", "Invalid entity id")
        return item, ops.delete_entity(item)

    return await _batch(request, build, created_status=False, needs_context=False)


routes = [
    *purge.routes,  # DELETE /entities (before the {entity_id} routes: "/entities/" is a purge)
    Route("/entities", create_entity, methods=["POST"]),
    Route("/entities/", create_entity, methods=["POST"]),  # the ETSI suite posts here
    # ":path" ids: an empty or odd id reaches the handler and gets its 400
    Route("/entities/{entity_id:path}/attrs", append_attrs, methods=["POST"]),
    Route("/entities/{entity_id:path}/attrs/", append_attrs, methods=["POST"]),
    Route("/entities/{entity_id:path}/attrs", update_attrs, methods=["PATCH"]),
    Route("/entities/{entity_id:path}/attrs/", update_attrs, methods=["PATCH"]),
    Route("/entities/{entity_id:path}/attrs", no_attribute_named, methods=["DELETE"]),
    Route("/entities/{entity_id:path}/attrs/", no_attribute_named, methods=["DELETE"]),
    Route("/entities/{entity_id:path}/attrs/{attr}", patch_attr, methods=["PATCH"]),
    Route("/entities/{entity_id:path}/attrs/{attr}", replace_attr, methods=["PUT"]),
    Route("/entities/{entity_id:path}/attrs/{attr}", delete_attr, methods=["DELETE"]),
    Route("/entities/{entity_id:path}", delete_entity, methods=["DELETE"]),
    Route("/entities/{entity_id:path}", replace_entity, methods=["PUT"]),
    Route("/entities/{entity_id:path}", merge_entity, methods=["PATCH"]),
    Route("/entityOperations/create", batch_create, methods=["POST"]),
    Route("/entityOperations/upsert", batch_upsert, methods=["POST"]),
    Route("/entityOperations/update", batch_update, methods=["POST"]),
    Route("/entityOperations/merge", batch_merge, methods=["POST"]),
    Route("/entityOperations/delete", batch_delete, methods=["POST"]),
]
