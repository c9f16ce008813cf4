"""The cloud's HTTP service: Starlette app, uvicorn server, and an in-process handle.

``build_app`` wires routes to a store; ``running_cloud`` runs uvicorn inside
the caller's event loop (tests, the demo); ``serve`` is what
``ldt cloud serve`` runs. uvicorn's own signal handling is switched off: the
caller decides what stops the server (the CLI maps SIGTERM/SIGINT to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from ldt.cloud import fleet, ingest
from ldt.cloud.access import routes as access_routes
from ldt.cloud.access.guard import AccessControl, LoopbackHostOnly, protect
from ldt.cloud.access.legacy import migrate_admin_token
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import TokenSigner
from ldt.cloud.control import routes as control_routes
from ldt.cloud.control.plane import ControlPlane
from ldt.cloud.errors import CloudError, QueryTooSlowError, StoreError
from ldt.cloud.gateways import add_gateway
from ldt.cloud.ngsild import (
    contexts_api,
    routes_entities,
    routes_query,
    routes_query_post,
    routes_registrations,
    routes_subscriptions,
    routes_temporal,
)
from ldt.cloud.ngsild.contexts import CONTEXTS_DIRNAME, ContextStore
from ldt.cloud.ngsild.endpoint_policy import EndpointPolicy
from ldt.cloud.ngsild.jsonld import ContextError
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.problems import NgsiLdError, problem_response
from ldt.cloud.ngsild.quotas import EntityCount, Quotas
from ldt.cloud.ngsild.tenant_routing import TenantMiddleware
from ldt.cloud.pki import artifact_routes
from ldt.cloud.pki import routes as pki_routes
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.pki.broker_files import DIRNAME, BrokerFiles
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.store.base import Store
from ldt.cloud.store.locator import store_for
from ldt.cloud.store.sealing import Sealer
from ldt.cloud.tenancy import TenantRegistry, backend_for
from ldt.cloud.tls import TlsHttpToolsProtocol, server_context

if TYPE_CHECKING:
    from ldt.cloud.access.oidc import OidcSettings

__all__ = ["CloudHandle", "add_gateway", "build_app", "running_cloud", "serve"]

_log = logging.getLogger("ldt.cloud.server")

PKI_DIRNAME = "pki"
"""The CA, the server's TLS certificate and key, under the data folder."""
STARTUP_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 10.0


async def _on_ngsild_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NgsiLdError)
    return problem_response(exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err = NgsiLdError(
            404, "ResourceNotFound", "Not Found", f"no resource at {request.url.path}"
        )
    elif exc.status_code == 405:
        err = NgsiLdError(
            405,
            None,
            "Method Not Allowed",
            f"{request.method} is not supported on {request.url.path}",
            headers=exc.headers,
        )
    else:
        err = NgsiLdError(exc.status_code, None, "HTTP error", str(exc.detail), headers=exc.headers)
    return problem_response(err)


async def _on_context_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ContextError)
    return problem_response(contexts_api.context_problem(exc))


async def _on_slow_query(request: Request, exc: Exception) -> Response:
    _log.warning("query stopped at its deadline", extra={"path": request.url.path})
    return problem_response(NgsiLdError(403, "TooComplexQuery", "Query too complex", str(exc)))


async def _on_store_error(request: Request, exc: Exception) -> Response:
    _log.error("store failed", extra={"path": request.url.path, "error": str(exc)})
    return problem_response(
        NgsiLdError(500, "InternalError", "Internal error", f"the store failed: {exc}; retry later")
    )


def build_app(
    store: Store,
    contexts: ContextStore | None = None,
    *,
    access: AccessControl,
    quotas: Quotas | None = None,
    sealer: Sealer | None = None,
) -> Starlette:
    """The ASGI app serving ingest and NGSI-LD from ``store`` (opened and closed by the caller).

    ``sealer``: seals subscriptions' endpoint secrets in the tenants' stores it opens (the
    caller has ``store.subscriptions.seal_with`` it for ``store`` itself).

    ``contexts`` (opened by the caller) resolves @contexts; without one, only the
    core context and memory-hosted contexts are known and nothing is fetched.
    ``access``: who may call what (``AccessControl.lab()`` switches checks off); every
    route is wrapped with the policy its endpoint declares (``guard.protect``).
    """
    app = Starlette(
        routes=[
            *access_routes.routes,
            *ingest.routes,
            *fleet.routes,
            *pki_routes.routes,
            *artifact_routes.routes,
            *control_routes.routes,
            Mount(
                "/ngsi-ld/v1",
                routes=[
                    *routes_query.routes,
                    *routes_query_post.routes,
                    *routes_entities.routes,
                    *contexts_api.routes,
                    *routes_subscriptions.routes,
                    *routes_temporal.routes,
                    *routes_registrations.routes,
                ],
                middleware=[Middleware(TenantMiddleware)],
            ),
        ],
        exception_handlers={
            NgsiLdError: _on_ngsild_error,
            HTTPException: _on_http_error,
            StoreError: _on_store_error,
            QueryTooSlowError: _on_slow_query,
            ContextError: _on_context_error,
        },
    )
    protect(app.routes)
    app.state.quotas = quotas or Quotas()
    app.state.entity_count = EntityCount()
    app.state.store = store
    app.state.access = access
    app.state.pki = None  # a Provisioner when serving TLS (running_cloud)
    app.state.artifacts = None  # an ArtifactService when serving TLS
    app.state.control = None  # a ControlPlane when serving TLS
    app.state.contexts = contexts or ContextStore(
        preload_dir=None, cache_dir=None, allow_network=False
    )
    owner_scope = access.service.owner_scope if isinstance(access.service, AccessService) else None

    def notifier(of: Store, tenant: str | None = None) -> Notifier:
        made = Notifier(store=of, contexts=app.state.contexts, tenant=tenant)
        made.owner_scope = owner_scope  # notifications carry only what owners may read
        if access.enabled:  # notifications go to public hosts, or private ones allowed

            async def allowed(name: str = tenant or "") -> frozenset[str]:
                return await store.access.notify.hosts(name)

            made.endpoints = EndpointPolicy(allowed)
        return made

    # subscription notifications; its tasks start on first use, the caller closes it
    app.state.notifier = notifier(store)
    # NGSILD-Tenant: other tenants' stores and notifiers, opened on first use; caller closes
    app.state.tenants = TenantRegistry(
        backend_for(store), notifier, store.access, implicit=not access.enabled, sealer=sealer
    )
    return app


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: stopping is the caller's decision."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True, slots=True)
class CloudHandle:
    """A running cloud: its base URL (``http://127.0.0.1:PORT``) and its open store."""

    url: str
    store: Store
    data_dir: Path
    _task: asyncio.Task[None] = field(repr=False)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns TCP_NODELAY on only for sockets that say TCP, and
    # without it every keep-alive request after the first waits ~40 ms for Nagle/delayed ACK
    # (measured: single-entity GET 44 ms -> 2.7 ms p50).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CloudError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _context_store(contexts: ContextStore | None, data_dir: Path) -> ContextStore:
    """The caller's store, or one caching fetched @contexts in ``data_dir``."""
    return contexts or ContextStore(preload_dir=None, cache_dir=data_dir / CONTEXTS_DIRNAME)


@contextlib.asynccontextmanager
async def running_cloud(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    store_url: str | None = None,
    contexts: ContextStore | None = None,
    tls_hosts: Sequence[str] | None = None,
    insecure_no_auth: bool = False,
    oidc: OidcSettings | None = None,
    trusted_proxies: Sequence[str] = (),
    quotas: Quotas | None = None,
    mosquitto_dir: Path | None = None,
) -> AsyncIterator[CloudHandle]:
    """Serve the cloud on ``host:port`` (0: any free port) in this event loop until exit.

    ``store_url``: a ``postgresql://`` URL, or None for SQLite in ``data_dir``.
    ``tls_hosts``: serve HTTPS (TLS 1.3, gateway client certificates, provisioning) with a
    certificate from the cloud's CA (``DATA/pki``) for these names; None: plain HTTP.
    ``insecure_no_auth``: no tokens needed (loopback addresses only; a warning at start and
    every ``LAB_WARNING_S``). ``oidc``: also accept an OIDC provider's access tokens.
    ``trusted_proxies``: addresses whose ``X-Forwarded-For`` is believed (default none).
    ``mosquitto_dir``: where the gateways' MQTT broker reads its CRL and ACL (with TLS;
    default ``DATA/mosquitto``, ``ldt.cloud.pki.broker_files``).
    Raises ``CloudError`` if the port is busy, the store cannot be opened or the server
    does not start.
    """
    if insecure_no_auth and not _loopback(host):
        raise CloudError(
            f"--insecure-no-auth listens on loopback addresses only, not {host}: anyone who"
            " reaches the port could switch a pump"
        )
    sock = _bind(host, port)
    try:
        async with (
            store_for(store_url, data_dir=data_dir, synchronous=synchronous) as store,
            _context_store(contexts, data_dir) as context_store,
        ):
            access, closers = await _access_control(
                store, data_dir, insecure_no_auth=insecure_no_auth, oidc=oidc
            )
            sealer = Sealer.open(data_dir / PKI_DIRNAME)
            await store.subscriptions.seal_with(sealer)
            app = build_app(store, context_store, access=access, quotas=quotas, sealer=sealer)
            ssl_context = None
            broker_files: BrokerFiles | None = None
            if tls_hosts is not None:
                ca = CertificateAuthority.open(data_dir / PKI_DIRNAME)
                broker_files = BrokerFiles(mosquitto_dir or data_dir / DIRNAME, ca, store)
                await broker_files.refresh()  # mosquitto will not start without its CRL
                cert, key = ca.server_certificate(list(tls_hosts) or [host])
                ssl_context = server_context(
                    cert=cert, key=key, ca=data_dir / PKI_DIRNAME / "ca.pem"
                )
                app.state.pki = Provisioner(store, ca)
                app.state.artifacts = ArtifactService(store, ca)
                app.state.control = ControlPlane.build(
                    store, app.state.notifier, app.state.artifacts
                )
            config = uvicorn.Config(
                LoopbackHostOnly(app) if insecure_no_auth else app,
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                # C parser; h11 cost ~10 % of single-update throughput
                http=TlsHttpToolsProtocol if ssl_context else "httptools",
                ws="none",
                server_header=False,
                # X-Forwarded-For changes the client's address (sign-in throttling, logs):
                # trusted only from the proxies named, never by default
                proxy_headers=bool(trusted_proxies),
                forwarded_allow_ips=",".join(trusted_proxies) or None,
                timeout_graceful_shutdown=5,
                ssl_context_factory=(lambda _c, _d: ssl_context) if ssl_context else None,
            )
            server = _Server(config)
            task = asyncio.create_task(server.serve(sockets=[sock]), name="ldt-cloud-http")
            sweeper = (
                asyncio.create_task(app.state.control.sweep_forever(), name="ldt-command-expiry")
                if app.state.control is not None
                else None
            )
            warner = (
                None
                if access.enabled
                else asyncio.create_task(_warn_lab_forever(), name="ldt-no-auth-warning")
            )
            revocations = (
                None
                if broker_files is None
                else asyncio.create_task(broker_files.run(), name="ldt-mosquitto-files")
            )
            try:
                async with asyncio.timeout(STARTUP_TIMEOUT_S):
                    while not server.started:
                        if task.done():
                            break
                        await asyncio.sleep(0.005)
                if not server.started:
                    await task  # re-raise what stopped it
                    raise CloudError("the HTTP server stopped while starting")
                bound = sock.getsockname()
                shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                scheme = "https" if ssl_context else "http"
                yield CloudHandle(
                    url=f"{scheme}://{shown}:{bound[1]}", store=store, data_dir=data_dir, _task=task
                )
            finally:
                if app.state.control is not None:
                    app.state.control.close()  # long polls answer now, not at the deadline
                for background in (sweeper, warner, revocations):
                    if background is not None:
                        background.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await background
                server.should_exit = True
                try:
                    async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                        await task
                except TimeoutError:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                finally:
                    await app.state.notifier.aclose()
                    await app.state.tenants.aclose()
                    for close in closers:
                        await close()
    finally:
        sock.close()


LAB_WARNING_S: Final = 600.0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


async def _warn_lab_forever() -> None:
    while True:
        _log.warning(
            "authentication is OFF (--insecure-no-auth): anyone reaching this port can read,"
            " change and delete the twin and send commands; for a lab or a conformance run only"
        )
        await asyncio.sleep(LAB_WARNING_S)


async def _access_control(
    store: Store, data_dir: Path, *, insecure_no_auth: bool, oidc: OidcSettings | None
) -> tuple[AccessControl, list[Callable[[], Awaitable[None]]]]:
    """Who may call the app, and what to close at the end (the OIDC client)."""
    if insecure_no_auth:
        return AccessControl.lab(), []
    verifier = None
    closers: list[Callable[[], Awaitable[None]]] = []
    if oidc is not None:
        from ldt.cloud.access.oidc import OidcVerifier

        verifier = OidcVerifier(oidc)
        closers.append(verifier.aclose)
    service = AccessService(store, TokenSigner.open(data_dir / PKI_DIRNAME), verifier)
    await migrate_admin_token(service, data_dir / PKI_DIRNAME)
    return AccessControl(service), closers


async def serve(
    host: str,
    port: int,
    data_dir: Path,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[CloudHandle], None] | None = None,
    store_url: str | None = None,
    contexts: ContextStore | None = None,
    tls_hosts: Sequence[str] | None = None,
    insecure_no_auth: bool = False,
    oidc: OidcSettings | None = None,
    trusted_proxies: Sequence[str] = (),
    quotas: Quotas | None = None,
    mosquitto_dir: Path | None = None,
) -> None:
    """Run the cloud until ``stop`` is set (or forever); ``on_ready`` runs once it listens."""
    stop = stop or asyncio.Event()
    async with running_cloud(
        data_dir,
        host,
        port,
        store_url=store_url,
        contexts=contexts,
        tls_hosts=tls_hosts,
        insecure_no_auth=insecure_no_auth,
        oidc=oidc,
        trusted_proxies=trusted_proxies,
        quotas=quotas,
        mosquitto_dir=mosquitto_dir,
    ) as cloud:
        if not insecure_no_auth and not await cloud.store.access.principals("user"):
            _log.warning(
                "no users yet: create the first admin with"
                " ldt cloud users add NAME --role admin --tenant '*'"
            )
        if on_ready is not None:
            on_ready(cloud)
        waiter = asyncio.create_task(stop.wait(), name="ldt-cloud-stop")
        try:
            await asyncio.wait({waiter, cloud._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
        if cloud._task.done() and not stop.is_set():
            cloud._task.result()
            raise CloudError("the HTTP server stopped unexpectedly")
