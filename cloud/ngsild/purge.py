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

from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission
from ldt.cloud.ngsild import formats
from ldt.cloud.ngsild.contexts_api import resolve_context
from ldt.cloud.ngsild.params import check_params, entity_filter, flag, name_as_stored
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.tenant_routing import notifier_of, store_of
from ldt.cloud.store.purge_sql import FIXED_MEMBERS, Purge

__all__ = ["purge_entities", "routes"]

_SELECTORS: Final = frozenset({"type", "id", "idPattern", "q", "scopeQ"})
_PARAMS: Final = _SELECTORS | {"keep", "drop", "local", "via"}
_TITLE: Final = "Invalid purge"


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", _TITLE, detail)


def _names(raw: str, what: str, name: Callable[[str], str]) -> frozenset[str]:
    terms = [t.strip() for t in raw.split(",")]
    if not all(terms) or any(t in FIXED_MEMBERS or t.startswith("@") for t in terms):
        raise _bad(f"{what} must be a comma-separated list of attribute names, got {raw!r}")
    return frozenset(name(t) for t in terms)


@allow(Permission.ADMIN, entities=False)
async def purge_entities(request: Request) -> Response:
    """Purge entities (5.6.21): 204; 400 without a selector or with both keep and drop."""
    check_params(request, _PARAMS)
    params = request.query_params
    local = flag(params, "local", title=_TITLE)
    if not _SELECTORS & set(params) and not local:
        raise _bad(
            "give at least one of type, id, idPattern, q or scopeQ (or local=true to purge"
            " every entity of this broker)"
        )
    if "keep" in params and "drop" in params:
        raise _bad("keep and drop cannot be used together")
    ctx = await resolve_context(request, formats.link_context(request))

    def name(term: str) -> str:
        return name_as_stored(term, ctx)

    query = entity_filter(params, name, title=_TITLE)
    purge = Purge(
        keep=_names(params["keep"], "keep", name) if "keep" in params else None,
        drop=_names(params["drop"], "drop", name) if "drop" in params else None,
    )
    changes = await store_of(request).entities.purge(query, purge)
    await notifier_of(request).entities_changed(changes)
    return Response(status_code=204)


routes = [
    Route("/entities", purge_entities, methods=["DELETE"]),
    Route("/entities/", purge_entities, methods=["DELETE"]),
]
