"""``ldt cloud ...``: serve the cloud, register gateways.

Heavy imports (Starlette, uvicorn) happen inside the handlers, so ``ldt agent``
on a gateway never loads them. Users see one line per failure, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ldt.cloud.pki.ca import CertificateAuthority
    from ldt.cloud.store.base import Store

__all__ = ["register"]

_DEFAULT_DATA = Path("./ldt-cloud-data")
_T = TypeVar("_T")
_STORE_HELP = (
    "postgresql://user@host:port/dbname to share one PostgreSQL database between brokers"
    " (default: $LDT_CLOUD_STORE, else SQLite in --data; keep passwords in PGPASSWORD"
    " or ~/.pgpass, not on the command line)"
)


def _add_data_options(parser: Any) -> None:
    """``--data`` and ``--store``: where a command finds the cloud's data."""
    parser.add_argument("--data", type=Path, default=_DEFAULT_DATA, help="data folder")
    _add_store_option(parser)


def _add_store_option(parser: Any) -> None:
    parser.add_argument(
        "--store", default=os.environ.get("LDT_CLOUD_STORE") or None, help=_STORE_HELP
    )


def register(sub: Any) -> None:
    """Add the ``cloud`` command group to the top-level parser."""
    cloud = sub.add_parser("cloud", help="the cloud: NGSI-LD broker and sync endpoint")
    cloud_sub = cloud.add_subparsers(dest="cloud_command", required=True, metavar="COMMAND")

    serve = cloud_sub.add_parser("serve", help="serve HTTP until SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (8080)")
    _add_data_options(serve)
    serve.add_argument(
        "--contexts",
        type=Path,
        default=None,
        metavar="DIR",
        help="preloaded @contexts: DIR/index.json maps context URL -> file name in DIR",
    )
    serve.add_argument(
        "--contexts-allow",
        default="",
        metavar="HOST[,HOST...]",
        help="hosts remote @contexts may be fetched from (default: none; preload them with"
        " --contexts). '*' allows any host whose addresses are public; loopback and private"
        " addresses need their name listed",
    )
    serve.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS (TLS 1.3): gateways sync with client certificates from the cloud's"
        " CA (DATA/pki, created at first start; encrypt its key with $LDT_CA_PASSPHRASE)",
    )
    serve.add_argument(
        "--tls-host",
        action="append",
        default=None,
        metavar="NAME",
        help="a host name or address gateways use to reach the cloud, for the server"
        " certificate (repeatable; default: --host, localhost and this machine's name)",
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="no sign-in at all: anyone reaching the port may do anything (loopback addresses"
        " only; for a lab or the conformance run; warns every 10 minutes)",
    )
    serve.add_argument(
        "--oidc-issuer",
        default=None,
        metavar="URL",
        help="also accept access tokens of this OpenID Connect provider (Keycloak, Keyrock)",
    )
    serve.add_argument("--oidc-audience", default=None, help="the aud the provider's tokens carry")
    serve.add_argument(
        "--oidc-roles-claim",
        default="realm_access.roles",
        metavar="PATH",
        help="where the roles are in the provider's tokens (realm_access.roles); a role is"
        " 'operator' (default tenant), 'operator@TENANT' or 'admin@*'",
    )
    serve.add_argument(
        "--oidc-jwks-url",
        default=None,
        metavar="URL",
        help="the provider's keys, when they are not on the issuer's host (default: discovered)",
    )
    serve.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="NAME=N",
        help="a per-tenant limit (repeatable): entities (10,000,000), subscriptions (1,000),"
        " endpoints (200 distinct), hosted_contexts (1,000), hosted_context_bytes (16 MiB)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a reverse proxy whose X-Forwarded-For is believed (repeatable; default: none)",
    )
    serve.add_argument(
        "--mosquitto-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the gateways' mosquitto reads the CRL and ACL the cloud keeps in step"
        " with revocations (with --tls; default DATA/mosquitto)",
    )
    serve.add_argument("--log-format", choices=["json", "text"], default="json")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(func=_serve)

    token = cloud_sub.add_parser("token", help="one-time claim tokens for provisioning gateways")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = token_sub.add_parser("create", help="create a claim token (printed once)")
    create.add_argument("--site", required=True, help="where the gateway is installed")
    create.add_argument(
        "--gateway", default=None, metavar="ID", help="only this gateway id (to replace one)"
    )
    create.add_argument(
        "--ttl", type=float, default=86400.0, metavar="SECONDS", help="lifetime (1 day)"
    )
    _add_data_options(create)
    create.set_defaults(func=_token_create)

    artifact = cloud_sub.add_parser("artifact", help="signed artifacts pushed to gateways")
    art_sub = artifact.add_subparsers(dest="artifact_command", required=True, metavar="COMMAND")
    publish = art_sub.add_parser("publish", help="sign and publish a file as the next version")
    publish.add_argument("kind", choices=["config", "model", "rules"])
    publish.add_argument("name")
    publish.add_argument("file", type=Path)
    publish.add_argument("--version", type=int, default=None, help="default: latest + 1")
    _add_data_options(publish)
    publish.set_defaults(func=_artifact_publish)
    reports = art_sub.add_parser("reports", help="what gateways reported about artifacts")
    _add_data_options(reports)
    reports.set_defaults(func=_artifact_reports)

    gateway = cloud_sub.add_parser("gateway", help="register gateways and issue their tokens")
    gw_sub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    add = gw_sub.add_parser("add", help="register a gateway and print its token (shown once)")
    add.add_argument("gateway_id", metavar="ID")
    add.add_argument("--rotate", action="store_true", help="issue a new token for an existing id")
    _add_data_options(add)
    add.set_defaults(func=_gateway_add)
    lst = gw_sub.add_parser(
        "list", help="the fleet: last seen, version, backlog, clock, certificate per gateway"
    )
    _add_data_options(lst)
    lst.set_defaults(func=_gateway_list)
    assign = gw_sub.add_parser(
        "assign", help="let a gateway write an entity created through the API (it owns it)"
    )
    assign.add_argument("gateway_id", metavar="ID")
    assign.add_argument("entity_id", metavar="ENTITY")
    _add_data_options(assign)
    assign.set_defaults(func=_gateway_assign)
    revoke = gw_sub.add_parser("revoke", help="revoke a gateway's certificates and token now")
    revoke.add_argument("gateway_id", metavar="ID")
    _add_data_options(revoke)
    revoke.set_defaults(func=_gateway_revoke)

    mqtt = cloud_sub.add_parser("mqtt", help="what the gateways' mosquitto needs from the CA")
    mqtt_sub = mqtt.add_subparsers(dest="mqtt_command", required=True, metavar="COMMAND")
    files = mqtt_sub.add_parser(
        "files", help="write mosquitto's CRL and ACL now (ldt cloud serve --tls keeps them)"
    )
    files.add_argument("--dir", type=Path, default=None, help="default DATA/mosquitto")
    _add_data_options(files)
    files.set_defaults(func=_mqtt_files)
    cert = mqtt_sub.add_parser(
        "cloud-cert", help="issue the ldt-cloud client certificate (every gateway's topics)"
    )
    _add_data_options(cert)
    cert.set_defaults(func=_mqtt_cloud_cert)

    from ldt.cloud.control import cli as control_cli  # its own imports are lazy too

    control_cli.register(cloud_sub, _add_data_options, _with_ca)

    from ldt.cloud import index_cli
    from ldt.cloud.access import cli as access_cli

    index_cli.register(cloud_sub, _add_data_options)
    access_cli.register(cloud_sub, _add_data_options)


def _gateway_assign(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError

    try:
        owner = _with_store(
            args, lambda store: store.gateways.assign_entity(args.entity_id, args.gateway_id)
        )
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    if owner is None:
        print(f"ldt cloud: no entity {args.entity_id}", file=sys.stderr)
        return 1
    if owner != args.gateway_id:
        print(f"ldt cloud: {args.entity_id} is gateway {owner}'s already", file=sys.stderr)
        return 1
    print(f"{args.entity_id}: written by gateway {args.gateway_id} from now on")
    return 0


def _gateway_add(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.gateways import add_gateway

    try:
        if args.store:
            token = _with_store(args, lambda store: _add_to_store(store, args))
        else:
            token = add_gateway(args.data, args.gateway_id, rotate=args.rotate)
    except CloudError as exc:
        hint = "; use --rotate to issue a new token" if "already exists" in str(exc) else ""
        print(f"ldt cloud: {exc}{hint}", file=sys.stderr)
        return 1
    verb = "new token for" if args.rotate else "registered"
    print(f"{verb} gateway {args.gateway_id}; its token is shown only now, keep it secret.")
    print(f"token: {token}")
    return 0


def _gateway_list(args: argparse.Namespace) -> int:
    """The fleet view: one line per gateway."""
    import datetime as dt

    from ldt.cloud.errors import CloudError
    from ldt.cloud.fleet import fleet_view

    try:
        views = _with_store(args, fleet_view)
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    if not views:
        print(f"no gateways registered in {_where(args)}", file=sys.stderr)
        return 0

    def when(ms: int | None) -> str:
        if ms is None:
            return "-"
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")

    print("ID\tLAST SEEN\tVERSION\tPENDING\tBACKLOG S\tCLOCK SKEW S\tCERT EXPIRES\tSTATE")
    for v in views:
        state = "revoked" if v.revoked else ("clock skewed" if v.clock_skewed else "ok")
        fields = (
            v.gateway_id,
            when(v.last_seen_ms),
            v.agent_version or "-",
            "-" if v.pending is None else str(v.pending),
            "-" if v.backlog_age_s is None else f"{v.backlog_age_s:g}",
            "-" if v.clock_skew_s is None else f"{v.clock_skew_s:+g}",
            when(v.certificate_not_after_ms),
            state,
        )
        print("\t".join(fields))
    return 0


def _with_ca(
    args: argparse.Namespace, work: Callable[[Store, CertificateAuthority], Awaitable[_T]]
) -> _T:
    """Run ``work`` on the ``--store`` store and the CA in ``--data`` (created if absent)."""
    from ldt.cloud.pki.ca import CertificateAuthority
    from ldt.cloud.server import PKI_DIRNAME

    ca = CertificateAuthority.open(args.data / PKI_DIRNAME)
    return _with_store(args, lambda store: work(store, ca))


def _token_create(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.pki.registry import Provisioner

    try:
        text = _with_ca(
            args,
            lambda store, ca: Provisioner(store, ca).create_claim(
                args.site, args.ttl, args.gateway
            ),
        )
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    bound = f" for gateway {args.gateway}" if args.gateway else ""
    print(f"claim token for site {args.site}{bound}, valid {args.ttl:g} s, usable once:")
    print(text)
    return 0


def _gateway_revoke(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.pki.registry import Provisioner

    try:
        count = _with_ca(args, lambda store, ca: Provisioner(store, ca).revoke(args.gateway_id))
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    print(f"gateway {args.gateway_id} revoked: {count} certificate(s) and its token refused")
    return 0


def _mqtt_files(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.pki.broker_files import DIRNAME, BrokerFiles

    folder = args.dir or args.data / DIRNAME
    try:
        _with_ca(args, lambda store, ca: BrokerFiles(folder, ca, store).refresh())
    except (CloudError, OSError) as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    print(f"mosquitto CRL and ACL written to {folder}")
    return 0


def _mqtt_cloud_cert(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.pki.ca import CertificateAuthority
    from ldt.cloud.server import PKI_DIRNAME

    try:
        ca = CertificateAuthority.open(args.data / PKI_DIRNAME)
        cert, key = ca.service_client_certificate("ldt-cloud")
    except (CloudError, OSError) as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    print(f"ldt-cloud client certificate: {cert} (key {key}, 0600; valid 365 days)")
    return 0


def _artifact_publish(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.pki.artifacts import ArtifactService

    try:
        content = args.file.read_bytes()
        envelope = _with_ca(
            args,
            lambda store, ca: ArtifactService(store, ca).publish(
                args.kind, args.name, content, args.version
            ),
        )
    except (CloudError, OSError) as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    print(
        f"published {args.kind} {args.name} version {envelope['version']}"
        f" ({envelope['size']} bytes, sha256 {envelope['sha256'][:16]}...)"
    )
    return 0


def _artifact_reports(args: argparse.Namespace) -> int:
    import datetime as dt

    from ldt.cloud.errors import CloudError
    from ldt.cloud.pki.artifacts import ArtifactService

    try:
        rows = _with_ca(args, lambda store, ca: ArtifactService(store, ca).reports())
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    for r in rows:
        when = dt.datetime.fromtimestamp(r.at_ms / 1000, dt.UTC).isoformat(timespec="seconds")
        print(
            f"{when}\t{r.gateway_id}\t{r.kind}/{r.name} v{r.version}\t{r.status}\t{r.reason or ''}"
        )
    return 0


def _where(args: argparse.Namespace) -> str:
    """Where the cloud keeps its data, for messages (a URL's password is hidden)."""
    from ldt.url_secrets import redact

    return redact(args.store) if args.store else str(args.data)


def _with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[_T]]) -> _T:
    """Open the ``--store`` store, run ``work`` on it, close it."""
    from ldt.cloud.store.locator import store_for

    async def main() -> _T:
        async with store_for(args.store, data_dir=args.data) as store:
            return await work(store)

    return asyncio.run(main())


async def _add_to_store(store: Store, args: argparse.Namespace) -> str:
    """``gateway add`` on an open store (PostgreSQL); the same rules as ``add_gateway``."""
    from ldt.cloud.gateways import (
        InvalidGatewayIdError,
        new_token,
        token_sha256,
        valid_gateway_id,
    )

    if not valid_gateway_id(args.gateway_id):
        raise InvalidGatewayIdError(
            f"invalid gateway id {args.gateway_id!r}: use 1-64 letters, digits, '.', '_' or '-'"
        )
    token = new_token()
    await store.gateways.add(args.gateway_id, token_sha256(token), rotate=args.rotate)
    return token


def _tls_hosts(args: argparse.Namespace) -> list[str] | None:
    """The server certificate's names, or None for plain HTTP."""
    import socket

    if not args.tls:
        return None
    if args.tls_host:
        return list(args.tls_host)
    names = {args.host, "localhost", socket.gethostname()}
    names.discard("0.0.0.0")  # noqa: S104 - a listen address, not a name to certify
    names.discard("::")
    return sorted(names | {"127.0.0.1"})


def _serve(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.gc_tuning import tune_collector
    from ldt.cloud.ngsild.contexts import CONTEXTS_DIRNAME, ContextStore
    from ldt.cloud.ngsild.quotas import parse_quotas
    from ldt.cloud.server import CloudHandle, serve
    from ldt.logs import configure_logging

    configure_logging(level=args.log_level.upper(), fmt=args.log_format)
    try:
        quotas = parse_quotas(args.quota)
    except ValueError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 2

    def ready(cloud: CloudHandle) -> None:
        where = f"store {_where(args)}" if args.store else f"data {args.data}"
        print(f"ldt cloud: serving on {cloud.url} ({where})", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tune_collector()
        contexts = ContextStore(
            preload_dir=args.contexts,
            cache_dir=args.data / CONTEXTS_DIRNAME,
            allow_hosts=[h for h in args.contexts_allow.split(",") if h.strip()],
        )
        oidc = None
        if args.oidc_issuer:
            from ldt.cloud.access.oidc import OidcSettings

            oidc = OidcSettings(
                issuer=args.oidc_issuer,
                audience=args.oidc_audience,
                roles_claim=args.oidc_roles_claim,
                jwks_url=args.oidc_jwks_url,
            )
        await serve(
            args.host,
            args.port,
            args.data,
            stop=stop,
            on_ready=ready,
            store_url=args.store,
            contexts=contexts,
            tls_hosts=_tls_hosts(args),
            insecure_no_auth=args.insecure_no_auth,
            oidc=oidc,
            trusted_proxies=args.trusted_proxy,
            quotas=quotas,
            mosquitto_dir=args.mosquitto_dir,
        )

    try:
        asyncio.run(main())
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    return 0
