"""Purge entities: ``DELETE /ngsi-ld/v1/entities`` (GS CIM 009 v1.9.1 clauses 5.6.21, 6.4.3.3).

Every entity matching the selectors is deleted, or with ``keep``/``drop`` only loses
attributes. Selectors: ``type``, ``id`` (comma-separated), ``idPattern``, ``q``, ``scopeQ``,
read with the Link header's @context like a query (``GET /entities``); ``local=true`` alone
selects every entity of this broker (suite case 060_03_03). Without any of them the request
is refused (400 BadRequestData): an accidental "delete everything" must be asked for.
``keep`` and ``drop`` together are 400 too. Unknown parameters are 400 InvalidRequest.

The store does the work set-based in one transaction (``Store.purge_entities``); subscribers
are then notified of every change exactly as for ``DELETE /entities/{id}`` (or an attribute
deletion), through ``Notifier.entities_changed``. Answer: 204.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.ngsild import formats
from ldt.cloud.ngsild.contexts import ContextStore
from ldt.cloud.ngsild.contexts_api import context_problem
from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.entity_ops import stored_name
from ldt.cloud.ngsild.entity_query import EntityQuery, map_q_names, map_type_names, parse_types
from ldt.cloud.ngsild.jsonld import ActiveContext, ContextError
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import QSyntaxError, parse_q, parse_scope_q
from ldt.cloud.ngsild.safe_regex import SafeRegex
from ldt.cloud.ngsild.tenant_routing import notifier_of, store_of
from ldt.cloud.store.purge_sql import FIXED_MEMBERS, Purge

__all__ = ["purge_entities", "routes"]

_SELECTORS: Final = frozenset({"type", "id", "idPattern", "q", "scopeQ"})
_PARAMS: Final = _SELECTORS | {"keep", "drop", "local", "via"}


def _bad(detail: str, title: str = "Invalid purge") -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", title, detail)


def _check_params(request: Request) -> None:
    params = request.query_params
    unknown = sorted(k for k in params if k not in _PARAMS)
    if unknown:
        raise NgsiLdError(
            400,
            "InvalidRequest",
            "Unknown query parameter",
            f"{', '.join(unknown)} is not a parameter of DELETE /entities",
        )
    repeated = sorted(k for k in params if len(params.getlist(k)) > 1)
    if repeated:
        raise NgsiLdError(
            400, "InvalidRequest", "Repeated query parameter", f"{repeated[0]} is given twice"
        )


async def _context(request: Request) -> ActiveContext:
    contexts: ContextStore = request.app.state.contexts
    try:
        return await contexts.resolve(
            formats.link_context(request), tenant=request.headers.get("ngsild-tenant")
        )
    except ContextError as exc:
        raise context_problem(exc) from None


def _names(raw: str, what: str, name: Callable[[str], str]) -> frozenset[str]:
    terms = [t.strip() for t in raw.split(",")]
    if not all(terms) or any(t in FIXED_MEMBERS or t.startswith("@") for t in terms):
        raise _bad(f"{what} must be a comma-separated list of attribute names, got {raw!r}")
    return frozenset(name(t) for t in terms)


def _query(request: Request, name: Callable[[str], str]) -> EntityQuery:
    params = request.query_params
    ids: tuple[str, ...] | None = None
    if "id" in params:
        ids = tuple(i.strip() for i in params["id"].split(","))
        bad = [i for i in ids if not is_uri(i)]
        if bad:
            raise _bad(f"id {bad[0]!r} is not a URI")
    pattern: SafeRegex | None = None
    if "idPattern" in params:
        try:
            pattern = SafeRegex(params["idPattern"])
        except ValueError as exc:
            raise _bad(f"idPattern is not a usable regular expression: {exc}") from None
    try:
        types = None if "type" not in params else parse_types(params["type"])
        q = None if "q" not in params else parse_q(params["q"])
        scope = None if "scopeQ" not in params else parse_scope_q(params["scopeQ"])
    except QSyntaxError as exc:
        raise exc.problem() from exc
    return EntityQuery(
        types=None if types is None else map_type_names(types, name),
        ids=ids,
        id_pattern=pattern,
        q=None if q is None else map_q_names(q, name),
        scope=scope,
    )


async def purge_entities(request: Request) -> Response:
    """Purge entities (5.6.21): 204; 400 without a selector or with both keep and drop."""
    _check_params(request)
    params = request.query_params
    local = params.get("local", "false")
    if local not in ("true", "false"):
        raise _bad(f"local must be true or false, got {local!r}")
    if not _SELECTORS & set(params) and local != "true":
        raise _bad(
            "give at least one of type, id, idPattern, q or scopeQ (or local=true to purge"
            " every entity of this broker)"
        )
    if "keep" in params and "drop" in params:
        raise _bad("keep and drop cannot be used together")
    ctx = await _context(request)

    def name(term: str) -> str:
        stored = stored_name(term, ctx)
        return term if stored is None else stored

    query = _query(request, name)
    purge = Purge(
        keep=_names(params["keep"], "keep", name) if "keep" in params else None,
        drop=_names(params["drop"], "drop", name) if "drop" in params else None,
    )
    changes = await store_of(request).purge_entities(query, purge)
    await notifier_of(request).entities_changed(changes)
    return Response(status_code=204)


routes = [
    Route("/entities", purge_entities, methods=["DELETE"]),
    Route("/entities/", purge_entities, methods=["DELETE"]),
]
