"""The NGSI-LD read side (ETSI GS CIM 009 v1.9 clauses 5.7.1-5.7.10, 6.4-6.27): query and discovery.

- ``GET /entities``: query by ``id``, ``idPattern``, ``type`` (selection language, 4.17),
  ``attrs``, ``q``, ``scopeQ``, geo-query, with ``pick``/``omit``, ``limit``/``offset``/
  ``count`` and every representation (``formats``);
- ``GET /entities/{id}``: one entity;
- ``GET /types`` (``details=true``), ``GET /types/{type}``, ``GET /attributes``
  (``details=true``), ``GET /attributes/{attr}``.

Order of checks: unknown parameters (400 InvalidRequest), ``options``/``format`` (400
InvalidRequest), then the values (400 BadRequestData), all before the store is asked. Names
from the request are expanded with its ``Link`` @context and spelled as stored
(``entity_ops.stored_name``); answers are compacted back with the same context
(``entity_ops.present``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Final
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.guard import limited, out_of_scope
from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission
from ldt.cloud.ngsild import formats, linked
from ldt.cloud.ngsild.contexts_api import resolve_context
from ldt.cloud.ngsild.datasets import keep_datasets, parse_dataset_ids
from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.entity_ops import present
from ldt.cloud.ngsild.entity_query import (
    LOCATION_NAMES,
    EntityQuery,
    entity_types,
    map_type_names,
    parse_types,
)
from ldt.cloud.ngsild.geo import GeoQueryError, parse_geoquery
from ldt.cloud.ngsild.jsonld import ActiveContext, core_context
from ldt.cloud.ngsild.languages import parse_lang, select_languages
from ldt.cloud.ngsild.linked import Join, Projection
from ldt.cloud.ngsild.media import JSON
from ldt.cloud.ngsild.order_by import OrderKey, map_order_names, parse_order_by
from ldt.cloud.ngsild.params import (
    Page,
    bad,
    check_params,
    entity_filter,
    flag,
    name_as_stored,
    page,
)
from ldt.cloud.ngsild.params import attrs as parse_attrs_param
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import (
    ProjectionTerm,
    QSyntaxError,
    QueryError,
    parse_projection,
    project,
)
from ldt.cloud.ngsild.tenant_routing import store_of
from ldt.cloud.store.base import Entity, Store, TypeAttributeCount

__all__ = ["Output", "routes"]

# parameters of the spec this broker accepts; the distributed ones (local, via, csf...) are
# accepted and have no effect (there are no registrations); join/joinLevel: ``linked``
_COMMON: Final = frozenset(
    {"options", "format", "lang", "local", "via", "csf", "join", "joinLevel", "containedBy",
     "entityMap", "datasetId", "geometryProperty", "attrs", "pick", "omit"}
)  # fmt: skip
_QUERY_PARAMS: Final = _COMMON | {
    "id", "idPattern", "type", "q", "scopeQ", "georel", "geometry", "coordinates",
    "geoproperty", "limit", "offset", "count", "orderBy",
}  # fmt: skip
_RETRIEVE_PARAMS: Final = _COMMON | {"type"}
_DISCOVERY_PARAMS: Final = frozenset({"details", "local", "via"})


def _store(request: Request) -> Store:
    return store_of(request)  # the NGSILD-Tenant's store (tenant_routing)


async def _context(request: Request) -> tuple[ActiveContext, str | None]:
    url = formats.link_context(request)
    return await resolve_context(request, url), url


def _projection(request: Request) -> tuple[tuple[ProjectionTerm, ...] | None, ...]:
    pick_raw, omit_raw = request.query_params.get("pick"), request.query_params.get("omit")
    if pick_raw is not None and omit_raw is not None:
        raise bad("pick and omit cannot be used together")
    if (pick_raw is not None or omit_raw is not None) and "attrs" in request.query_params:
        raise bad("attrs cannot be used with pick or omit (pick replaces it)")
    try:
        pick = None if pick_raw is None else parse_projection(pick_raw, parameter="pick")
        omit = None if omit_raw is None else parse_projection(omit_raw, parameter="omit")
    except QSyntaxError as exc:
        raise exc.problem() from exc
    return pick, omit


def _order(raw: str | None, name: Callable[[str], str]) -> tuple[OrderKey, ...]:
    """``orderBy`` (``order_by``), attribute names expanded as stored; () when absent."""
    if raw is None:
        return ()
    try:
        return map_order_names(parse_order_by(raw), name, text=raw)
    except QSyntaxError as exc:
        raise exc.problem() from exc


class Output:
    """Turns stored documents into the response: names, projection, form, media.

    Shared with ``POST /entityOperations/query`` (``routes_query_post``), which answers
    exactly as ``GET /entities`` does.
    """

    def __init__(self, request: Request, ctx: ActiveContext, context_url: str | None) -> None:
        self.allowed = limited(request.scope, Permission.READ)
        self.rep = formats.parse_representation(request)
        self.media = formats.negotiate_read(request)
        self.ctx = ctx
        self.context_url = context_url
        self.pick, self.omit = _projection(request)
        self.geometry_property = request.query_params.get("geometryProperty", "location")
        lang = request.query_params.get("lang")
        self.lang = None if lang is None else parse_lang(lang)
        datasets = request.query_params.get("datasetId")
        self.datasets = None if datasets is None else parse_dataset_ids(datasets)
        self.join: Join | None = linked.parse_join(
            request.query_params.get("join"), request.query_params.get("joinLevel")
        )
        # the stored form is already the answer's: stored names are the core context's, and
        # render drops the system members that present would (a page of 100 entities spent
        # a third of its ~10 ms of CPU presenting them first)
        self._as_stored = (
            ctx is core_context()
            and not self.rep.sys_attrs
            and self.media != formats.GEO_JSON
            and self.pick is None
            and self.omit is None
            and self.lang is None
            and self.datasets is None
        )

    def entity(self, doc: Entity, attrs: tuple[str, ...] | None) -> dict[str, Any] | None:
        """The entity as answered; None when pick/omit leave nothing of it (4.21: then a
        query leaves it out and a retrieval answers 404, as ETSI's 018_19 and 019_17 want)."""
        if self._as_stored and attrs is None:
            return formats.render(doc, self.rep)
        views = self.view(doc, attrs, Projection(self.pick, self.omit))
        return None if views is None else self.wrap(views[0], formats.render(views[1], self.rep))

    def view(
        self, doc: Entity, attrs: tuple[str, ...] | None, projection: Projection
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The entity presented, then also projected (normalized); None: nothing is left."""
        if attrs is not None:
            keep = set(attrs)
            doc = {k: v for k, v in doc.items() if k in ("id", "type", "scope") or k in keep}
        if self.datasets is not None:
            doc = keep_datasets(doc, self.datasets)
        shown = present(doc, self.ctx, sys_attrs=self.rep.sys_attrs)
        if self.lang is not None:
            shown = select_languages(shown, self.lang)
        geometry_source = shown
        if projection.pick is not None or projection.omit is not None:
            try:
                shown = project(shown, pick=projection.pick, omit=projection.omit)
            except QueryError as exc:
                raise bad(str(exc)) from exc
            if not any(k != "@context" for k in shown):
                return None
        return geometry_source, shown

    def wrap(self, geometry_source: dict[str, Any], rendered: dict[str, Any]) -> dict[str, Any]:
        """A rendered entity as the media type wants it (a GeoJSON Feature or as is)."""
        if self.media == formats.GEO_JSON:
            return formats.feature(
                geometry_source, rendered, geometry_property=self.geometry_property
            )
        return rendered

    async def joined(
        self, docs: Sequence[Entity], attrs: tuple[str, ...] | None, join: Join, store: Store
    ) -> list[dict[str, Any]]:
        """The entities with their linked entities (``linked``: inline or flat, 4.5.23).

        Flat: the entities, then the linked ones; inline: one per entity asked for.
        """
        projection = Projection(self.pick, self.omit)
        views = [v for v in (self.view(d, attrs, projection) for d in docs) if v is not None]

        def show(doc: Entity, projection: Projection) -> dict[str, Any] | None:
            views = self.view(doc, None, projection)
            return None if views is None else views[1]

        pairs = await linked.expand(
            [v[1] for v in views],
            join,
            projection=projection,
            form=self.rep.form,
            fetch=linked.fetch_from(store, self.allowed),
            show=show,
            render=lambda shown: formats.render(shown, self.rep),
        )
        return [self.wrap(shown, rendered) for shown, rendered in pairs]

    async def matches(
        self, store: Store, query: EntityQuery, attrs: tuple[str, ...] | None, wanted: Page
    ) -> Response:
        """One page of the entities ``query`` selects, as the answer (with
        ``NGSILD-Results-Count`` when ``count=true``; only what the caller may read)."""
        if self.allowed is not None:
            query = replace(query, allowed=self.allowed)
        found, total = await store.entities.search(
            query, limit=wanted.limit, offset=wanted.offset, count=wanted.count
        )
        headers = {"NGSILD-Results-Count": str(total)} if total is not None else None
        if self.join is not None:
            return self.response(await self.joined(found, attrs, self.join, store), headers)
        shown = [self.entity(doc, attrs) for doc in found]
        return self.response([e for e in shown if e is not None], headers)

    def response(self, payload: Any, headers: dict[str, str] | None = None) -> Response:
        if self.media == formats.GEO_JSON and isinstance(payload, list):
            payload = formats.feature_collection(payload)
        return formats.entities_response(
            payload, self.media, context=self.context_url, headers=headers
        )


@allow(Permission.READ)
async def query_entities(request: Request) -> Response:
    """Query entities (5.7.2, 6.4.3.2)."""
    check_params(request, _QUERY_PARAMS)
    formats.parse_representation(request)  # 400 InvalidRequest before anything else
    params = request.query_params
    ctx, url = await _context(request)
    out = Output(request, ctx, url)
    name: Callable[[str], str] = lambda term: name_as_stored(term, ctx)  # noqa: E731
    selection = entity_filter(params, name)
    attrs = parse_attrs_param(params, ctx)
    try:
        geoquery = parse_geoquery(
            georel=params.get("georel"),
            geometry=params.get("geometry"),
            coordinates=params.get("coordinates"),
            geoproperty=params.get("geoproperty"),
        )
    except GeoQueryError as exc:
        raise bad(str(exc), "Invalid geo-query") from None
    local = flag(params, "local")
    no_filter = selection.types is None and attrs is None and selection.q is None
    if no_filter and geoquery is None and not local:
        raise bad(
            "give at least one of type, attrs, q or a geo-query (a query for every entity is"
            " too broad), or local=true for every entity of this broker (6.4.3.2)"
        )
    wanted = page(params)
    geo_names: tuple[str, ...] = LOCATION_NAMES
    if geoquery is not None and geoquery.geoproperty != "location":
        geo_names = (name(geoquery.geoproperty),)
    query = replace(
        selection,
        attrs=attrs,
        geo=geoquery,
        geo_names=geo_names,
        order=_order(params.get("orderBy"), name),
    )
    return await out.matches(_store(request), query, attrs, wanted)


@allow(Permission.READ)
async def retrieve_entity(request: Request) -> Response:
    """Retrieve one entity (5.7.1, 6.5.3.1)."""
    check_params(request, _RETRIEVE_PARAMS)
    formats.parse_representation(request)
    entity_id = request.path_params["entity_id"]
    if not is_uri(entity_id):
        raise bad(f"{entity_id!r} is not a URI", "Invalid entity id")
    ctx, url = await _context(request)
    out = Output(request, ctx, url)
    attrs = parse_attrs_param(request.query_params, ctx)
    doc = await _store(request).entities.get(entity_id)
    if doc is None:
        raise NgsiLdError(
            404, "ResourceNotFound", "Entity not found", f"no entity with id {entity_id}"
        )
    if out.allowed is not None and not out.allowed.allows(entity_id, entity_types(doc)):
        raise out_of_scope(entity_id)
    if "type" in request.query_params:
        try:
            types = map_type_names(
                parse_types(request.query_params["type"]), lambda t: name_as_stored(t, ctx)
            )
        except QSyntaxError as exc:
            raise exc.problem() from exc
        if not EntityQuery(types=types).matches(doc):
            raise NgsiLdError(
                404, "ResourceNotFound", "Entity not found", f"{entity_id} is not of that type"
            )
    if attrs is not None and not any(a in doc for a in attrs):
        raise NgsiLdError(
            404, "ResourceNotFound", "Attribute not found", f"{entity_id} has none of attrs"
        )
    if out.join is not None:
        answer = await out.joined([doc], attrs, out.join, _store(request))
        if answer:  # else pick/omit left nothing: 404 below; flat with no link: one entity
            return out.response(answer if len(answer) > 1 else answer[0])
    shown = out.entity(doc, attrs)
    if shown is None:
        raise NgsiLdError(
            404, "ResourceNotFound", "Entity not found", f"pick/omit leave nothing of {entity_id}"
        )
    return out.response(shown)


# --- discovery (5.7.5 - 5.7.10) --------------------------------------------------------------


def _iri(stored: str) -> str:
    iri = core_context().expand(stored)
    return stored if iri is None else iri


def _sorted_unique(items: Iterable[str]) -> list[str]:
    return sorted(set(items))


async def _discovery(
    request: Request,
) -> tuple[list[TypeAttributeCount], ActiveContext, str | None, bool]:
    check_params(request, _DISCOVERY_PARAMS)
    details = flag(request.query_params, "details")
    formats.negotiate_read(request)
    ctx, url = await _context(request)
    allowed = limited(request.scope, Permission.READ)  # a scoped grant lists what it reaches
    rows = await _store(request).entities.type_attribute_counts(
        None if allowed is None else allowed.parts
    )
    return rows, ctx, url, details


def _json_out(request: Request, payload: Any, url: str | None) -> Response:
    media = formats.negotiate_read(request)
    if media == formats.GEO_JSON:
        media = JSON
    return formats.entities_response(payload, media, context=url)


@allow(Permission.READ)
async def list_types(request: Request) -> Response:
    """Available entity types (5.7.5) or their details (5.7.6, ``details=true``)."""
    rows, ctx, url, details = await _discovery(request)
    types = _sorted_unique(r.entity_type for r in rows if r.attribute is None)
    if not details:
        payload: Any = {
            "id": f"urn:ngsi-ld:EntityTypeList:{uuid.uuid4()}",
            "type": "EntityTypeList",
            "typeList": [ctx.compact(_iri(t)) for t in types],
        }
        return _json_out(request, payload, url)
    payload = [
        {
            "id": _iri(t),
            "type": "EntityType",
            "typeName": ctx.compact(_iri(t)),
            "attributeNames": [
                ctx.compact(_iri(a))
                for a in _sorted_unique(
                    r.attribute for r in rows if r.entity_type == t and r.attribute is not None
                )
            ],
        }
        for t in types
    ]
    return _json_out(request, payload, url)


@allow(Permission.READ)
async def type_info(request: Request) -> Response:
    """Details of one entity type (5.7.7); the type may be a term or an IRI."""
    rows, ctx, url, _ = await _discovery(request)
    wanted = name_as_stored(unquote(request.path_params["type_name"]), ctx)
    mine = [r for r in rows if r.entity_type == wanted]
    total = sum(r.entities for r in mine if r.attribute is None)
    if not total:
        raise NgsiLdError(404, "ResourceNotFound", "Type not found", f"no entity of type {wanted}")
    names = _sorted_unique(r.attribute for r in mine if r.attribute is not None)
    payload = {
        "id": _iri(wanted),
        "type": "EntityTypeInfo",
        "typeName": ctx.compact(_iri(wanted)),
        "entityCount": total,
        "attributeDetails": [
            {
                "id": _iri(a),
                "type": "Attribute",
                "attributeName": ctx.compact(_iri(a)),
                "attributeTypes": _sorted_unique(
                    r.attribute_type or "Property" for r in mine if r.attribute == a
                ),
            }
            for a in names
        ],
    }
    return _json_out(request, payload, url)


@allow(Permission.READ)
async def list_attributes(request: Request) -> Response:
    """Available attributes (5.7.8) or their details (5.7.9, ``details=true``)."""
    rows, ctx, url, details = await _discovery(request)
    names = _sorted_unique(r.attribute for r in rows if r.attribute is not None)
    if not details:
        payload: Any = {
            "id": f"urn:ngsi-ld:AttributeList:{uuid.uuid4()}",
            "type": "AttributeList",
            "attributeList": [ctx.compact(_iri(a)) for a in names],
        }
        return _json_out(request, payload, url)
    payload = [
        {
            "id": _iri(a),
            "type": "Attribute",
            "attributeName": ctx.compact(_iri(a)),
            "typeNames": [
                ctx.compact(_iri(t))
                for t in _sorted_unique(r.entity_type for r in rows if r.attribute == a)
            ],
        }
        for a in names
    ]
    return _json_out(request, payload, url)


@allow(Permission.READ)
async def attribute_info(request: Request) -> Response:
    """Details of one attribute (5.7.10); the name may be a term or an IRI."""
    rows, ctx, url, _ = await _discovery(request)
    wanted = name_as_stored(unquote(request.path_params["attr_name"]), ctx)
    mine = [r for r in rows if r.attribute == wanted]
    if not mine:
        raise NgsiLdError(
            404, "ResourceNotFound", "Attribute not found", f"no entity has attribute {wanted}"
        )
    payload = {
        "id": _iri(wanted),
        "type": "Attribute",
        "attributeName": ctx.compact(_iri(wanted)),
        "attributeCount": sum(r.entities for r in mine),
        "attributeTypes": _sorted_unique(r.attribute_type or "Property" for r in mine),
        "typeNames": [ctx.compact(_iri(t)) for t in _sorted_unique(r.entity_type for r in mine)],
    }
    return _json_out(request, payload, url)


routes = [
    Route("/entities", query_entities, methods=["GET"]),
    Route("/entities/", query_entities, methods=["GET"]),  # the ETSI suite queries here
    Route("/entities/{entity_id:path}", retrieve_entity, methods=["GET"]),
    Route("/types", list_types, methods=["GET"]),
    Route("/types/", list_types, methods=["GET"]),  # the ETSI suite lists types here
    Route("/types/{type_name:path}", type_info, methods=["GET"]),
    Route("/attributes", list_attributes, methods=["GET"]),
    Route("/attributes/", list_attributes, methods=["GET"]),
    Route("/attributes/{attr_name:path}", attribute_info, methods=["GET"]),
]
