"""Which tenant an ``/ngsi-ld/v1`` request addresses, and the store and notifier it uses.

``TenantMiddleware`` wraps the ``/ngsi-ld/v1`` mount (so its errors go through the app's
exception handlers like any route's). A request without ``NGSILD-Tenant`` (or with an
empty one) is the default tenant and passes through untouched; the route helpers then
read ``request.app.state.store``/``.notifier`` as before. With a tenant, the middleware
opens it through ``app.state.tenants`` (a ``TenantRegistry``), puts it in the request
scope for ``store_of``/``notifier_of``, and echoes ``NGSILD-Tenant`` on the response.

Which requests create a tenant: with access control on, none (a global admin creates
tenants: ``ldt.cloud.tenancy``), and an anonymous request is refused (401) before the
tenant is looked up, so it cannot learn which tenants exist. With ``--insecure-no-auth``,
POSTs that can create something (entities, attributes, batches, subscriptions, temporal
instances) create it, as the spec does; a PUT/PATCH/DELETE can only change what already
exists, so on a missing tenant it answers 404 NonexistentTenant (saying why) instead of
creating an empty tenant, and so do the read-only POSTs (``entityOperations/query``,
batch delete).

``/jsonldContexts`` only has the name validated: hosted @contexts already belong to
their tenant inside the ``ContextStore`` (contexts_api), which needs no tenant store.
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ldt.cloud.access.guard import authenticate
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.store.base import Store
from ldt.cloud.tenancy import Tenant, TenantRegistry, validate_tenant

__all__ = ["HEADER", "SCOPE_KEY", "TenantMiddleware", "notifier_of", "store_of"]

HEADER: Final = "ngsild-tenant"
SCOPE_KEY: Final = "ldt.tenant"
_NOT_CREATING: Final = ("/entityOperations/query", "/entityOperations/delete")
_CONTEXTS: Final = "/jsonldContexts"


def _tenant(request: Request) -> Tenant | None:
    """The tenant ``TenantMiddleware`` opened for the request; None for the default tenant."""
    tenant: Tenant | None = request.scope.get(SCOPE_KEY)
    return tenant


def store_of(request: Request) -> Store:
    """The store of the request's tenant (the broker's own for the default tenant)."""
    tenant = _tenant(request)
    store: Store = request.app.state.store if tenant is None else tenant.store
    return store


def notifier_of(request: Request) -> Notifier:
    """The notifier of the request's tenant: it sees only that tenant's subscriptions."""
    tenant = _tenant(request)
    notifier: Notifier = request.app.state.notifier if tenant is None else tenant.notifier
    return notifier


def _route_path(scope: Scope) -> str:
    """The path below the mount (``/entities/...``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def creates(method: str, route_path: str) -> bool:
    """Whether a request may create its tenant (see the module docstring)."""
    return method == "POST" and not route_path.rstrip("/").endswith(_NOT_CREATING)


class TenantMiddleware:
    """Resolves ``NGSILD-Tenant`` for the NGSI-LD API (pure ASGI, no body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = Headers(scope=scope).get(HEADER)
        if not name:
            await self.app(scope, receive, send)
            return
        validate_tenant(name)
        if scope["app"].state.access.enabled:
            await authenticate(scope)  # who may not learn which tenants exist
        echoed = (HEADER.encode(), name.encode())

        async def send_with_tenant(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), echoed]}
            await send(message)

        route_path = _route_path(scope)
        if route_path.startswith(_CONTEXTS):
            await self.app(scope, receive, send_with_tenant)
            return
        registry: TenantRegistry = scope["app"].state.tenants
        # held until the response is sent: an idle tenant is never closed under a request
        async with registry.use(name, create=creates(scope["method"], route_path)) as tenant:
            await self.app({**scope, SCOPE_KEY: tenant}, receive, send_with_tenant)
