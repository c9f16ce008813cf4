"""``POST /entityOperations/query`` (ETSI GS CIM 009 v1.9 clauses 5.7.2, 6.23): a query in a body.

The body is a Query (5.2.23): ``type`` "Query", ``entities`` (EntitySelectors: ``type``,
optional ``id`` or ``idPattern``), ``attrs``, ``q``, ``geoQ``, ``scopeQ``, ``lang``, ``csf``,
``temporalQ``, and (v1.8 linked entity retrieval, as ETSI's 019_24 sends them) ``join``,
``joinLevel``, plus ``datasetId``, ``geometryProperty``, ``pick`` and ``omit``. The URL keeps
paging and representation: ``limit``, ``offset``, ``count``, ``options``, ``format`` (and
``local``/``via``, no effect here). The answer is exactly the one ``GET /entities`` gives for
the same query: the body is turned into the GET parameters ``routes_query`` reads for its
output (``Output``: forms, projection, languages, joins), and into an ``EntityQuery``.

Why not GET's ``type``/``id``/``idPattern`` for the selectors: a Query may hold several
EntitySelectors, each its own (type AND id/idPattern), ORed together, which one set of GET
parameters cannot say. Several selectors become :class:`AnyOf`, an ``EntityQuery`` that lets
the store's SQL select a superset (any of the types, any of the ids) and re-checks each row
against the selectors in Python (``EntityQuery.matches``, the stores' residual filter), so
paging and ``count`` stay exact on both stores.

``temporalQ`` is accepted (it must be an object) and ignored: this operation reads current
state, and clause 6.23 leaves the temporal query to ``/temporal/entityOperations/query``.
Malformed bodies are 400 ``BadRequestData``; unknown URL parameters, like on GET, 400
``InvalidRequest``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission
from ldt.cloud.ngsild import formats
from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.entity_query import (
    LOCATION_NAMES,
    EntityQuery,
    TypeExpr,
    TypeOr,
    map_q_names,
    map_type_names,
    parse_types,
)
from ldt.cloud.ngsild.geo import GeoQueryError, parse_geoquery
from ldt.cloud.ngsild.jsonld import ActiveContext
from ldt.cloud.ngsild.params import attrs as parse_attrs_param
from ldt.cloud.ngsild.params import check_params, flag, name_as_stored, page
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import QSyntaxError, parse_q, parse_scope_q
from ldt.cloud.ngsild.request_body import context_of, read_json
from ldt.cloud.ngsild.routes_query import Output
from ldt.cloud.ngsild.safe_regex import SafeRegex
from ldt.cloud.ngsild.tenant_routing import store_of

__all__ = ["AnyOf", "query_post", "routes"]

MAX_QUERY_BYTES: Final = 1024 * 1024
_URL_PARAMS: Final = frozenset(
    {"options", "format", "limit", "offset", "count", "local", "via", "csf"}
)
_MEMBERS: Final = frozenset(
    {"type", "entities", "attrs", "q", "geoQ", "csf", "temporalQ", "scopeQ", "lang", "join",
     "joinLevel", "datasetId", "geometryProperty", "pick", "omit", "containedBy", "@context"}
)  # fmt: skip
_SELECTOR: Final = frozenset({"id", "idPattern", "type"})
_GEO_MEMBERS: Final = frozenset({"geometry", "coordinates", "georel", "geoproperty"})


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid Query", detail)


@dataclass(frozen=True, slots=True)
class AnyOf(EntityQuery):
    """An ``EntityQuery`` also holding when one of ``selectors`` holds (several EntitySelectors).

    Its own ``types``/``ids`` are a superset the store's SQL can use; ``residual`` is always
    True, so every candidate row is re-checked with ``matches``.
    """

    selectors: tuple[EntityQuery, ...] = ()

    def matches(self, entity: Mapping[str, Any], *, q: bool = True) -> bool:
        """Every filter of the query, and one of the selectors."""
        return EntityQuery.matches(self, entity, q=q) and any(
            s.matches(entity) for s in self.selectors
        )

    def residual(self, *, q_exact: bool) -> bool:
        """Always: the selectors are checked in Python."""
        return True


def _text_list(value: Any, what: str) -> str:
    """A member given as a string or an array of strings, as GET's comma-separated text."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return ",".join(value)
    raise _bad(f"{what} must be a non-empty string or array of strings")


def _as_params(body: Mapping[str, Any], url: Mapping[str, str]) -> dict[str, str]:
    """The GET parameters ``Output`` reads (forms, projection, lang, join), from URL and body."""
    params = dict(url)
    for key in ("attrs", "pick", "omit", "datasetId"):
        if key in body:
            params[key] = _text_list(body[key], key)
    for key in ("lang", "join", "geometryProperty"):
        if key in body:
            if not isinstance(body[key], str):
                raise _bad(f"{key} must be a string")
            params[key] = body[key]
    if "joinLevel" in body:
        level = body["joinLevel"]
        if isinstance(level, bool) or not isinstance(level, int | str):
            raise _bad(f"joinLevel must be a positive integer, got {level!r}")
        params["joinLevel"] = str(level)
    return params


def _selector(raw: Any, ctx: ActiveContext) -> EntityQuery:
    if not isinstance(raw, dict):
        raise _bad("each member of entities must be an EntitySelector object")
    unknown = sorted(set(raw) - _SELECTOR)
    if unknown:
        raise _bad(f"an EntitySelector has unknown members: {', '.join(unknown)}")
    if not isinstance(raw.get("type"), str):
        raise _bad("each EntitySelector needs a type (an entity type selection)")
    if "id" in raw and "idPattern" in raw:
        raise _bad("an EntitySelector gives id or idPattern, not both")
    try:
        types = map_type_names(parse_types(raw["type"]), lambda t: name_as_stored(t, ctx))
    except QSyntaxError as exc:
        raise exc.problem() from exc
    ids: tuple[str, ...] | None = None
    if "id" in raw:
        if not isinstance(raw["id"], str) or not is_uri(raw["id"]):
            raise _bad(f"EntitySelector id {raw['id']!r} is not a URI")
        ids = (raw["id"],)
    pattern: SafeRegex | None = None
    if "idPattern" in raw:
        if not isinstance(raw["idPattern"], str):
            raise _bad("EntitySelector idPattern must be a string")
        try:
            pattern = SafeRegex(raw["idPattern"])
        except ValueError as exc:
            raise _bad(f"idPattern is not a usable regular expression: {exc}") from None
    return EntityQuery(types=types, ids=ids, id_pattern=pattern)


def _selection(raw: Any, ctx: ActiveContext) -> tuple[EntityQuery, tuple[EntityQuery, ...]]:
    """The selectors' filter (``types``/``ids``/``id_pattern`` only) and, when several, them all."""
    if raw is None:
        return EntityQuery(), ()
    if not isinstance(raw, list) or not raw:
        raise _bad("entities must be a non-empty array of EntitySelectors")
    selectors = tuple(_selector(s, ctx) for s in raw)
    if len(selectors) == 1:
        return selectors[0], ()
    types: list[TypeExpr] = []
    for s in selectors:
        if s.types is not None and s.types not in types:
            types.append(s.types)
    ids = None
    if all(s.ids is not None for s in selectors):
        ids = tuple(dict.fromkeys(i for s in selectors for i in s.ids or ()))
    union = EntityQuery(types=types[0] if len(types) == 1 else TypeOr(tuple(types)), ids=ids)
    exact = all(s.ids is None and s.id_pattern is None for s in selectors) or (
        len(types) == 1 and ids is not None
    )
    return union, (() if exact else selectors)


def _geo_params(raw: Any) -> dict[str, str | None]:
    if not isinstance(raw, dict):
        raise _bad("geoQ must be an object (geometry, coordinates, georel, geoproperty)")
    unknown = sorted(set(raw) - _GEO_MEMBERS)
    if unknown:
        raise _bad(f"geoQ has unknown members: {', '.join(unknown)}")
    coordinates = raw.get("coordinates")
    if isinstance(coordinates, list):
        coordinates = orjson.dumps(coordinates).decode()
    out: dict[str, str | None] = {"coordinates": coordinates}
    for key in ("geometry", "georel", "geoproperty"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise _bad(f"geoQ.{key} must be a string")
        out[key] = value
    if coordinates is not None and not isinstance(coordinates, str):
        raise _bad("geoQ.coordinates must be an array or a string")
    return out


def _check_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise _bad('the body must be a Query object ({"type": "Query", ...})')
    unknown = sorted(set(body) - _MEMBERS)
    if unknown:
        raise _bad(f"the Query has unknown members: {', '.join(unknown)}")
    if "temporalQ" in body and not isinstance(body["temporalQ"], dict):
        raise _bad("temporalQ must be an object")
    for key in ("q", "scopeQ", "csf"):
        if key in body and not isinstance(body[key], str):
            raise _bad(f"{key} must be a string")
    return body


@allow(Permission.READ)
async def query_post(request: Request) -> Response:
    """Query entities with a Query in the body (6.23.3.1): as ``GET /entities`` answers."""
    check_params(request, _URL_PARAMS)
    formats.parse_representation(request)  # 400 InvalidRequest before anything else
    read = await read_json(request, limit=MAX_QUERY_BYTES)
    body = _check_body(read.value)
    ctx = await context_of(request, read, body)
    context = body.get("@context")
    url = context if isinstance(context, str) else read.link
    params = _as_params(body, request.query_params)
    view = Request({**request.scope, "query_string": urlencode(params).encode()})
    out = Output(view, ctx, url)
    attrs = parse_attrs_param(view.query_params, ctx)
    selection, selectors = _selection(body.get("entities"), ctx)
    try:
        q = None if "q" not in body else parse_q(body["q"])
        scope = None if "scopeQ" not in body else parse_scope_q(body["scopeQ"])
        geoquery = None if "geoQ" not in body else parse_geoquery(**_geo_params(body["geoQ"]))
    except QSyntaxError as exc:
        raise exc.problem() from exc
    except GeoQueryError as exc:
        raise _bad(f"geoQ: {exc}") from None
    if (
        "entities" not in body
        and attrs is None
        and q is None
        and geoquery is None
        and not flag(view.query_params, "local")
    ):
        raise _bad(
            "give at least one of entities, attrs, q or geoQ (a query for every entity is too"
            " broad), or local=true for every entity of this broker"
        )
    wanted = page(view.query_params)
    geo_names: tuple[str, ...] = LOCATION_NAMES
    if geoquery is not None and geoquery.geoproperty != "location":
        geo_names = (name_as_stored(geoquery.geoproperty, ctx),)
    filters: dict[str, Any] = {
        "types": selection.types,
        "ids": selection.ids,
        "id_pattern": selection.id_pattern,
        "attrs": attrs,
        "q": None if q is None else map_q_names(q, lambda t: name_as_stored(t, ctx)),
        "scope": scope,
        "geo": geoquery,
        "geo_names": geo_names,
    }
    query = AnyOf(**filters, selectors=selectors) if selectors else EntityQuery(**filters)
    return await out.matches(store_of(request), query, attrs, wanted)


routes = [Route("/entityOperations/query", query_post, methods=["POST"])]
