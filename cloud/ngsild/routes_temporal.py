"""The NGSI-LD temporal API (GS CIM 009 v1.9 clauses 5.6.11-5.6.16 and 5.7.3-5.7.4).

- ``POST /temporal/entities`` (create 201 + Location, or add instances 204);
- ``GET /temporal/entities`` (type/id/attrs, timerel/timeAt/endTimeAt, timeproperty,
  lastN, options=temporalValues|sysAttrs, limit/offset/count) and ``GET
  /temporal/entities/{id}``;
- ``DELETE /temporal/entities/{id}``, ``POST /temporal/entities/{id}/attrs``,
  ``DELETE /temporal/entities/{id}/attrs/{attr}`` (datasetId/deleteAll), ``PATCH``/``DELETE
  /temporal/entities/{id}/attrs/{attr}/{instanceId}``.

History also grows by itself: every entity write and gateway ingest records the
instances it changed (the stores' write paths, ``temporal.history_of``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.guard import limited, out_of_scope
from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission
from ldt.cloud.ngsild import entity_ops as ops
from ldt.cloud.ngsild import formats
from ldt.cloud.ngsild.contexts_api import resolve_context
from ldt.cloud.ngsild.datasets import parse_dataset_ids
from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.geo import GeoQuery, GeoQueryError, parse_geoquery
from ldt.cloud.ngsild.jsonld import ActiveContext, core_context
from ldt.cloud.ngsild.media import negotiate
from ldt.cloud.ngsild.order_by import OrderKey, map_order_names, parse_order_by
from ldt.cloud.ngsild.params import DEFAULT_LIMIT, name_as_stored, non_negative, page_size
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import QSyntaxError, parse_projection, project
from ldt.cloud.ngsild.request_body import context_of, json_object, read_json
from ldt.cloud.ngsild.routes_entities import MAX_ENTITY_BYTES, _write
from ldt.cloud.ngsild.routes_entities import _entity_id as _path_entity_id
from ldt.cloud.ngsild.temporal import (
    AttrInstance,
    Window,
    instance_row,
    parse_aggregation,
    parse_window,
    split_latest,
    temporal_entity,
)
from ldt.cloud.ngsild.temporal_geo import matching_ids
from ldt.cloud.ngsild.temporal_page import Render, TemporalPage, attribute_values, present_pairs
from ldt.cloud.ngsild.tenant_routing import store_of
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.base import Store
from ldt.cloud.store.temporal import TemporalHeader

__all__ = ["DEFAULT_INSTANCE_LIMIT", "routes"]

_API = "/ngsi-ld/v1"
_JSON = "application/json"
_JSON_LD = "application/ld+json"
_ATTR_NAME = re.compile(r"^[A-Za-z_][^\s<>\"'=;()\\/]*$")
_TITLE = "Invalid request"
DEFAULT_INSTANCE_LIMIT = int(os.environ.get("LDT_TEMPORAL_INSTANCE_LIMIT", "10000"))
"""Instances per temporal answer unless ``app.state.temporal_instance_limit`` says otherwise."""
_OPTIONS = frozenset(
    {"temporalValues", "sysAttrs", "normalized", "keyValues", "concise", "aggregatedValues"}
)
_FORMATS = frozenset({"temporalValues", "normalized", "simplified", "aggregatedValues"})
_READ_PARAMS = frozenset(
    {"attrs", "options", "format", "lang", "timerel", "timeAt", "endTimeAt", "timeproperty",
     "lastN", "aggrMethods", "aggrPeriodDuration", "pick", "omit", "datasetId", "local", "via",
     "csf", "join", "joinLevel", "expandValues", "containedBy", "entityMap", "geometryProperty",
     "type", "orderBy"}
)  # fmt: skip
"""Parameters of retrieve (5.7.3); query (5.7.4) adds ``_QUERY_ONLY``; others: 400."""
_QUERY_ONLY = frozenset(
    {"id", "idPattern", "q", "scopeQ", "georel", "geometry", "coordinates", "geoproperty",
     "limit", "offset", "count"}
)  # fmt: skip


def _entity_id(request: Request) -> str:
    """The URL's entity id: a URI, and not a mangled attribute path (``.../attrs//x``)."""
    entity_id = _path_entity_id(request)
    if "/attrs/" in entity_id or entity_id.endswith("/attrs"):
        raise _bad(f"{entity_id!r} is not an entity id: an attribute name is missing")
    return entity_id


def _check_read(request: Request, allowed: frozenset[str]) -> None:
    """Refuse what a read cannot answer before any work: unknown parameters, Accept (406)."""
    unknown = sorted(k for k in request.query_params if k not in allowed)
    if unknown:
        raise _invalid(f"{', '.join(unknown)} is not a parameter of {request.url.path}")
    negotiate(request)  # GeoJSON or anything else but JSON(-LD): 406 (6.3.4)


def _store(request: Request) -> Store:
    return store_of(request)  # the NGSILD-Tenant's store (tenant_routing)


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", _TITLE, detail)


def _invalid(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "InvalidRequest", "Invalid request", detail)


def _not_found(detail: str) -> NgsiLdError:
    return NgsiLdError(404, "ResourceNotFound", "Not found", detail)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _instances(
    raw: dict[str, Any], ctx: ActiveContext, now_ms: int
) -> tuple[dict[str, Any], list[AttrInstance]]:
    """A temporal entity body's head (id, stored type, scope) and one row per instance."""
    entity_id = raw.get("id")
    head = ops.entity_fragment(
        {k: v for k, v in raw.items() if k in ("id", "type", "scope")},
        ctx,
        need_id=True,
        need_type=True,
    )
    now = iso_ms(now_ms)
    rows: list[AttrInstance] = []
    for name, value in raw.items():
        if name in ("id", "type", "@context", "scope", "createdAt", "modifiedAt"):
            continue
        for instance in value if isinstance(value, list) else [value]:
            one = ops.entity_fragment(
                {"id": entity_id, "type": raw.get("type"), name: instance},
                ctx,
                need_id=True,
                need_type=True,
            )
            ((attr, normalized),) = [(k, v) for k, v in one.items() if k not in ("id", "type")]
            doc = {**normalized, "createdAt": now, "modifiedAt": now}
            rows.append(instance_row(str(entity_id), attr, doc, now_ms))
    return head, rows


def _type_list(declared: Any) -> list[str]:
    return [declared] if isinstance(declared, str) else [t for t in declared if isinstance(t, str)]


async def _writable(
    request: Request, store: Store, entity_id: str, new_type: Any = None
) -> TemporalHeader | None:
    """The temporal entity's header, after checking that a scoped grant reaches the entity
    as it is and as the write would make it (403 otherwise)."""
    header = await store.temporal.get(entity_id)
    allowed = limited(request.scope, Permission.WRITE)
    if allowed is not None:
        for declared in (None if header is None else header.type, new_type):
            if declared is not None and not allowed.allows(entity_id, _type_list(declared)):
                raise out_of_scope(entity_id)
    return header


@allow(Permission.WRITE)
async def create_or_update(request: Request) -> Response:
    """Create or update temporal representation (5.6.11): 201 + Location, or 204."""
    body = await read_json(request, limit=MAX_ENTITY_BYTES)
    raw = json_object(body)
    ctx = await context_of(request, body, raw)
    now_ms = _now_ms()
    head, rows = _instances(raw, ctx, now_ms)
    entity_id = str(raw["id"])
    store = _store(request)
    new = await _writable(request, store, entity_id, head["type"]) is None
    if new and await store.entities.get(entity_id) is None:
        rows = await _create_current(request, head, rows, iso_ms(now_ms))
    created = await store.temporal.add(entity_id, head["type"], rows, now=iso_ms(now_ms))
    if created or new:
        return Response(
            status_code=201, headers={"Location": f"{_API}/temporal/entities/{entity_id}"}
        )
    return Response(status_code=204)


async def _create_current(
    request: Request, head: dict[str, Any], rows: list[AttrInstance], now: str
) -> list[AttrInstance]:
    """Create the entity a new temporal representation stands for; the rows left to add.

    The temporal and the current representation are views of one entity (4.5.7):
    the entity API can then change or delete it (its deletions are recorded in
    this history, what the ETSI suite's 020_17-020_20 read back). The write
    records the newest instances itself; if it is refused (the entity appeared
    meanwhile), every row is added as given.
    """
    state, rest = split_latest(head, rows)
    (outcome,) = await _write(request, [(str(head["id"]), ops.create(state, now))])
    return rows if isinstance(outcome, NgsiLdError) else rest


@allow(Permission.WRITE)
async def add_attrs(request: Request) -> Response:
    """Add attributes to temporal representation (5.6.12): 204, 404."""
    entity_id = _entity_id(request)
    store = _store(request)
    header = await _writable(request, store, entity_id)
    if header is None:
        raise _not_found(f"no temporal entity {entity_id}")
    body = await read_json(request, limit=MAX_ENTITY_BYTES)
    raw = json_object(body)
    ctx = await context_of(request, body, raw)
    if raw.get("id", entity_id) != entity_id:
        raise _bad(f"the body's id {raw['id']} is not the URL's {entity_id}")
    stored_type = header.type
    client_type = _client_name(
        stored_type[0] if isinstance(stored_type, list) else stored_type, ctx
    )
    now_ms = _now_ms()
    _, rows = _instances({**raw, "id": entity_id, "type": client_type}, ctx, now_ms)
    await store.temporal.add(entity_id, stored_type, rows, now=iso_ms(now_ms))
    return Response(status_code=204)


@allow(Permission.WRITE)
async def delete_entity(request: Request) -> Response:
    """Delete temporal representation of an entity (5.6.16): 204, 404."""
    if not request.path_params["entity_id"]:
        raise NgsiLdError(
            405,
            None,
            "Method Not Allowed",
            "DELETE needs an entity id",
            headers={"Allow": "POST, GET"},
        )
    entity_id = _entity_id(request)
    store = _store(request)
    if await _writable(request, store, entity_id) is None:
        raise _not_found(f"no temporal entity {entity_id}")
    # the entity goes with its history (one entity, two views: see _create_current)
    await _write(request, [(entity_id, ops.delete_entity(entity_id))])
    if not await store.temporal.delete(entity_id):
        raise _not_found(f"no temporal entity {entity_id}")
    return Response(status_code=204)


async def _link_ctx(request: Request) -> tuple[ActiveContext, str | None]:
    url = formats.link_context(request)
    return await resolve_context(request, url), url


def _attr_name(request: Request, ctx: ActiveContext) -> str:
    term: str = request.path_params["attr"]
    if not _ATTR_NAME.match(term):
        raise _bad(f"{term!r} is not a valid attribute name")
    name = ops.stored_name(term, ctx)
    if name is None:
        raise _bad(f"attribute {request.path_params['attr']!r} maps to nothing")
    return name


@allow(Permission.WRITE)
async def delete_attr(request: Request) -> Response:
    """Delete attribute from temporal representation (5.6.13): 204, 404."""
    entity_id = _entity_id(request)
    ctx, _ = await _link_ctx(request)
    attr = _attr_name(request, ctx)
    params = request.query_params
    delete_all = params.get("deleteAll", "false") == "true"
    store = _store(request)
    if await _writable(request, store, entity_id) is None:
        raise _not_found(f"no temporal entity {entity_id}")
    found = await store.temporal.delete(
        entity_id, attr=attr, dataset_id=params.get("datasetId"), all_datasets=delete_all
    )
    if not found:
        raise _not_found(f"temporal entity {entity_id} has no attribute {attr}")
    return Response(status_code=204)


async def _instance(request: Request, ctx: ActiveContext) -> tuple[str, str, AttrInstance]:
    entity_id = _entity_id(request)
    attr = _attr_name(request, ctx)
    instance_id: str = request.path_params["instance_id"]
    if not is_uri(instance_id):
        raise _bad(f"instanceId {instance_id!r} is not a URI")
    await _writable(request, _store(request), entity_id)
    rows = await _store(request).temporal.instances(
        [entity_id], [attr], Window(time_property="modifiedAt")
    )
    for row in rows:
        if row.instance_id == instance_id:
            return entity_id, attr, row
    raise _not_found(f"no instance {instance_id} of {attr} in temporal entity {entity_id}")


@allow(Permission.WRITE)
async def patch_instance(request: Request) -> Response:
    """Modify attribute instance in temporal representation (5.6.14): 204, 404."""
    body = await read_json(request, limit=MAX_ENTITY_BYTES)
    raw = json_object(body)
    ctx = await context_of(request, body, raw)
    entity_id, attr, row = await _instance(request, ctx)
    client_attr = request.path_params["attr"]
    if client_attr in raw:  # { attr: instance } or the bare instance
        raw = raw[client_attr]
        if isinstance(raw, list):
            raw = raw[0] if raw else {}
    raw = {k: v for k, v in raw.items() if k != "@context"}
    if "type" not in raw:
        raw = {**raw, "type": row.doc.get("type", "Property")}
    fragment = ops.attribute_fragment(raw, client_attr, ctx, partial=True)
    patch = next(iter(fragment.values()))
    now_ms = _now_ms()
    doc = {**row.doc, **patch, "modifiedAt": iso_ms(now_ms)}
    new = instance_row(entity_id, attr, {**doc, "instanceId": row.instance_id}, now_ms)
    if not await _store(request).temporal.replace_instance(new):
        raise _not_found(f"no instance {row.instance_id}")
    return Response(status_code=204)


@allow(Permission.WRITE)
async def delete_instance(request: Request) -> Response:
    """Delete attribute instance from temporal representation (5.6.15): 204, 404."""
    ctx, _ = await _link_ctx(request)
    entity_id, attr, row = await _instance(request, ctx)
    if not await _store(request).temporal.delete_instance(entity_id, attr, row.instance_id):
        raise _not_found(f"no instance {row.instance_id}")
    return Response(status_code=204)


# --- consumption --------------------------------------------------------------------------


def _client_name(stored: str, ctx: ActiveContext) -> str:
    iri = core_context().expand(stored)
    return stored if iri is None else ctx.compact(iri)


def _compact(doc: dict[str, Any], ctx: ActiveContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "type":
            types = value if isinstance(value, list) else [value]
            names = [_client_name(t, ctx) for t in types]
            out[key] = names[0] if len(names) == 1 else names
        elif key in ("id", "scope", "createdAt", "modifiedAt"):
            out[key] = value
        else:
            out[_client_name(key, ctx)] = value
    return out


class _Read:
    """What a temporal read asks for: names, window, representation."""

    def __init__(self, params: Mapping[str, str], ctx: ActiveContext) -> None:
        self.window = parse_window(params)
        raw_options = params.get("options")
        options = set() if raw_options is None else {o.strip() for o in raw_options.split(",")}
        unknown = options - _OPTIONS
        if unknown:
            raise _invalid(f"unknown options {sorted(unknown)}")
        fmt = params.get("format")
        if fmt is not None and fmt not in _FORMATS:
            raise _invalid(f"unknown format {fmt!r}")
        if fmt is not None:  # format wins over options (6.3.7)
            self.temporal_values = fmt == "temporalValues"
            aggregated = fmt == "aggregatedValues"
        else:
            self.temporal_values = "temporalValues" in options
            aggregated = "aggregatedValues" in options and not self.temporal_values
        self.aggregation = parse_aggregation(params) if aggregated else None
        self.sys_attrs = "sysAttrs" in options
        pick_raw, omit_raw = params.get("pick"), params.get("omit")
        if pick_raw is not None and omit_raw is not None:
            raise _bad("pick and omit cannot be used together")
        if (pick_raw is not None or omit_raw is not None) and "attrs" in params:
            raise _bad("attrs cannot be used with pick or omit")
        try:
            self.pick = None if pick_raw is None else parse_projection(pick_raw, parameter="pick")
            self.omit = None if omit_raw is None else parse_projection(omit_raw, parameter="omit")
        except QSyntaxError as exc:
            raise exc.problem() from exc
        attrs = params.get("attrs")
        self.attrs: list[str] | None = None
        if attrs is not None:
            self.attrs = []
            for term in attrs.split(","):
                name = ops.stored_name(term.strip(), ctx)
                self.attrs.append(term.strip() if name is None else name)
        datasets = params.get("datasetId")
        self.datasets = None if datasets is None else parse_dataset_ids(datasets)

    @property
    def render_mode(self) -> Render | None:
        """How the store can render the instances itself; None: they are parsed and rendered here.

        Aggregation is computed over parsed instances; pick/omit project parsed documents.
        """
        if self.aggregation is not None or self.pick is not None or self.omit is not None:
            return None
        if self.temporal_values:
            return "values"
        return "full_sys" if self.sys_attrs else "full"

    async def page(self, store: Store, entity_ids: list[str], limit: int) -> TemporalPage:
        """The instances to show, at most ``limit`` (the rest: 206), chosen in SQL."""
        return await store.temporal.page(
            entity_ids,
            self.attrs,
            self.window,
            datasets=self.datasets,
            limit=limit,
            render=self.render_mode,
        )

    async def entity(
        self, store: Store, entity_id: str, limit: int
    ) -> tuple[TemporalHeader, TemporalPage] | None:
        """The entity's header and its ``page``, read together; None if it does not exist."""
        return await store.temporal.entity(
            entity_id,
            self.attrs,
            self.window,
            datasets=self.datasets,
            limit=limit,
            render=self.render_mode,
        )

    def show(
        self,
        headers: Iterable[TemporalHeader],
        page: TemporalPage,
        ctx: ActiveContext,
        *,
        every: bool,
    ) -> list[dict[str, Any]]:
        """The temporal entities of ``headers`` (``every`` False: those with instances)."""
        attrs_of = present_pairs(page)
        mode = self.render_mode
        values = (
            {}
            if page.texts is None or mode is None
            else attribute_values(page.texts, page.present, mode)
        )
        by_entity: dict[str, list[AttrInstance]] = {}
        for row in page.rows:
            by_entity.setdefault(row.entity_id, []).append(row)
        out = []
        for temporal_header in headers:
            header = temporal_header.as_doc()
            entity_id = temporal_header.id
            if not every and entity_id not in attrs_of:  # nothing in the window
                continue
            if page.texts is None:
                mine = by_entity.get(entity_id, [])
                out.append(self.render(header, mine, ctx, attrs_of.get(entity_id, ())))
            else:
                doc = temporal_entity(header, [], sys_attrs=self.sys_attrs)
                doc.update(values.get(entity_id, {}))
                out.append(_compact(doc, ctx))
        return out

    def render(
        self,
        header: dict[str, Any],
        rows: list[AttrInstance],
        ctx: ActiveContext,
        empty_attrs: Iterable[str] = (),
    ) -> dict[str, Any]:
        doc = temporal_entity(
            header,
            rows,
            temporal_values=self.temporal_values,
            sys_attrs=self.sys_attrs,
            time_property=self.window.time_property,
            empty_attrs=empty_attrs,
            aggregation=self.aggregation,
            origin_ms=self.window.start_ms,
        )
        shown = _compact(doc, ctx)
        if self.pick is None and self.omit is None:
            return shown
        return project(shown, pick=self.pick, omit=self.omit)


def _respond(
    request: Request,
    payload: Any,
    url: str | None,
    headers: dict[str, str] | None = None,
    content_range: str | None = None,
) -> Response:
    accept = request.headers.get("accept", "")
    context = url or "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
    out_headers = dict(headers or {})
    if _JSON_LD in accept:
        if isinstance(payload, list):
            payload = [{**p, "@context": context} for p in payload]
        else:
            payload = {**payload, "@context": context}
        media = _JSON_LD
    else:
        media = _JSON
        out_headers["Link"] = (
            f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        )
    if content_range is not None:
        out_headers["Content-Range"] = content_range
    status = 200 if content_range is None else 206
    return Response(orjson.dumps(payload), status, media_type=media, headers=out_headers)


def _instance_limit(request: Request) -> int:
    """Most instances one answer holds (6.3.10); more: 206 and a Content-Range."""
    limit = getattr(request.app.state, "temporal_instance_limit", None)
    return DEFAULT_INSTANCE_LIMIT if limit is None else int(limit)


@allow(Permission.READ)
async def retrieve(request: Request) -> Response:
    """Retrieve temporal evolution of an entity (5.7.3): 200, 404."""
    entity_id = _entity_id(request)
    _check_read(request, _READ_PARAMS)
    ctx, url = await _link_ctx(request)
    read = _Read(request.query_params, ctx)
    store = _store(request)
    found = await read.entity(store, entity_id, _instance_limit(request))
    if found is None:
        raise _not_found(f"no temporal entity {entity_id}")
    header, page = found
    allowed = limited(request.scope, Permission.READ)
    types = [header.type] if isinstance(header.type, str) else header.type
    if allowed is not None and not allowed.allows(entity_id, types):
        raise out_of_scope(entity_id)
    if read.attrs is not None and not page.present:
        raise _not_found(f"temporal entity {entity_id} has none of the attributes asked for")
    content_range = page.content_range(read.window)
    (body,) = read.show([header], page, ctx, every=True)
    if not body:
        raise _not_found(f"nothing of temporal entity {entity_id} is left to show")
    return _respond(request, body, url, None, content_range)


@allow(Permission.READ)
async def query(request: Request) -> Response:
    """Query temporal evolution of entities (5.7.4): 200 with an array."""
    _check_read(request, _READ_PARAMS | _QUERY_ONLY)
    ctx, url = await _link_ctx(request)
    return await _query(request, request.query_params, ctx, url)


def _query_params(body: Any, url_params: Mapping[str, str]) -> dict[str, str]:
    """A Query body (5.2.23) as the GET parameters it stands for (the URL's are kept)."""
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise _bad('the body must be a Query object ({"type": "Query", ...})')
    params = dict(url_params)
    entities = body.get("entities", [])
    if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
        raise _bad("entities must be an array of EntitySelectors")
    types = [str(e["type"]) for e in entities if "type" in e]
    ids = [str(e["id"]) for e in entities if "id" in e]
    if types:
        params["type"] = ",".join(types)
    if ids:
        params["id"] = ",".join(ids)
    attrs = body.get("attrs")
    if attrs is not None:
        if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
            raise _bad("attrs must be an array of names")
        params["attrs"] = ",".join(attrs)
    if isinstance(body.get("q"), str):
        params["q"] = body["q"]
    temporal_q = body.get("temporalQ", {})
    if not isinstance(temporal_q, dict):
        raise _bad("temporalQ must be an object")
    for key in ("timerel", "timeAt", "endTimeAt", "timeproperty", "lastN"):
        if key in temporal_q:
            params[key] = str(temporal_q[key])
    return params


@allow(Permission.READ)
async def query_post(request: Request) -> Response:
    """Query temporal evolution of entities via POST (5.7.5): the body is a Query."""
    body = await read_json(request, limit=MAX_ENTITY_BYTES)
    ctx = await context_of(request, body, body.value)
    params = _query_params(body.value, request.query_params)
    return await _query(request, params, ctx, body.link)


def _geoquery(params: Mapping[str, str]) -> GeoQuery | None:
    """The geo-query of a temporal query (``temporal_geo``), or None; 400 if malformed."""
    try:
        return parse_geoquery(
            georel=params.get("georel"),
            geometry=params.get("geometry"),
            coordinates=params.get("coordinates"),
            geoproperty=params.get("geoproperty"),
        )
    except GeoQueryError as exc:
        raise NgsiLdError(400, "BadRequestData", "Invalid geo-query", str(exc)) from None


def _order(raw: str | None, ctx: ActiveContext) -> tuple[OrderKey, ...]:
    """``orderBy`` (``order_by``) with attribute names as stored; () when absent."""
    if raw is None:
        return ()

    def name(term: str) -> str:
        stored = ops.stored_name(term, ctx)
        return term if stored is None else stored

    try:
        return map_order_names(parse_order_by(raw), name, text=raw)
    except QSyntaxError as exc:
        raise exc.problem() from exc


async def _query(
    request: Request, params: Mapping[str, str], ctx: ActiveContext, url: str | None
) -> Response:
    read = _Read(params, ctx)
    types: list[str] | None = None
    if "type" in params:
        types = []
        for term in params["type"].split(","):
            types.append(name_as_stored(term.strip(), ctx))
    ids = None if "id" not in params else [i.strip() for i in params["id"].split(",")]
    if (
        types is None
        and read.attrs is None
        and "q" not in params
        and "georel" not in params
        and params.get("local") != "true"
    ):
        raise _bad("give at least one of type, attrs, q or georel")
    limit = page_size(params, DEFAULT_LIMIT, title=_TITLE)
    offset = non_negative(params, "offset", 0, title=_TITLE)
    order = _order(params.get("orderBy"), ctx)
    store = _store(request)
    geoquery = _geoquery(params)
    if geoquery is not None:  # the selection narrows to the entities that were there
        geoproperty = name_as_stored(geoquery.geoproperty, ctx)
        ids = await matching_ids(store, geoquery, geoproperty, read.window, types=types, ids=ids)
        if not ids:
            extra = {"NGSILD-Results-Count": "0"} if params.get("count") == "true" else None
            return _respond(request, [], url, extra)
    allowed = limited(request.scope, Permission.READ)
    headers, total = await store.temporal.query(
        types=types,
        ids=ids,
        limit=limit,
        offset=offset,
        order=order,
        within=None if allowed is None else allowed.parts,
    )
    page = await read.page(store, [h.id for h in headers], _instance_limit(request))
    content_range = page.content_range(read.window)
    payload = read.show(headers, page, ctx, every=False)
    extra = {"NGSILD-Results-Count": str(total)} if params.get("count") == "true" else None
    return _respond(request, payload, url, extra, content_range)


routes = [
    Route("/temporal/entityOperations/query", query_post, methods=["POST"]),
    Route("/temporal/entities", create_or_update, methods=["POST"]),
    Route("/temporal/entities/", create_or_update, methods=["POST"]),
    Route("/temporal/entities", query, methods=["GET"]),
    Route("/temporal/entities/", query, methods=["GET"]),
    Route(
        "/temporal/entities/{entity_id:path}/attrs/{attr}/{instance_id}",
        patch_instance,
        methods=["PATCH"],
    ),
    Route(
        "/temporal/entities/{entity_id:path}/attrs/{attr}/{instance_id}",
        delete_instance,
        methods=["DELETE"],
    ),
    Route("/temporal/entities/{entity_id:path}/attrs", add_attrs, methods=["POST"]),
    Route("/temporal/entities/{entity_id:path}/attrs/", add_attrs, methods=["POST"]),
    Route("/temporal/entities/{entity_id:path}/attrs/{attr}", delete_attr, methods=["DELETE"]),
    Route("/temporal/entities/{entity_id:path}", retrieve, methods=["GET"]),
    Route("/temporal/entities/{entity_id:path}", delete_entity, methods=["DELETE"]),
]
