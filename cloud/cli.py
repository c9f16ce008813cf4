"""``ldt cloud ...``: serve the cloud, register gateways.

Heavy imports (Starlette, uvicorn) happen inside the handlers, so ``ldt agent``
on a gateway never loads them. Users see one line per failure, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

_DEFAULT_DATA = Path("./ldt-cloud-data")


def register(sub: Any) -> None:
    """Add the ``cloud`` command group to the top-level parser."""
    cloud = sub.add_parser("cloud", help="the cloud: NGSI-LD broker and sync endpoint")
    cloud_sub = cloud.add_subparsers(dest="cloud_command", required=True, metavar="COMMAND")

    serve = cloud_sub.add_parser("serve", help="serve HTTP until SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (8080)")
    serve.add_argument("--data", type=Path, default=_DEFAULT_DATA, help="data folder")
    serve.add_argument("--log-format", choices=["json", "text"], default="json")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(func=_serve)

    gateway = cloud_sub.add_parser("gateway", help="register gateways and issue their tokens")
    gw_sub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    add = gw_sub.add_parser("add", help="register a gateway and print its token (shown once)")
    add.add_argument("gateway_id", metavar="ID")
    add.add_argument("--data", type=Path, default=_DEFAULT_DATA, help="data folder")
    add.add_argument("--rotate", action="store_true", help="issue a new token for an existing id")
    add.set_defaults(func=_gateway_add)
    lst = gw_sub.add_parser("list", help="list registered gateways")
    lst.add_argument("--data", type=Path, default=_DEFAULT_DATA, help="data folder")
    lst.set_defaults(func=_gateway_list)


def _gateway_add(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.gateways import add_gateway

    try:
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
    from ldt.cloud.errors import CloudError
    from ldt.cloud.gateways import list_gateways

    try:
        gateways = list_gateways(args.data)
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    for gw in gateways:
        print(f"{gw.id}\tcreated {gw.created_at}")
    if not gateways:
        print(f"no gateways registered in {args.data}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.server import CloudHandle, serve
    from ldt.logs import configure_logging

    configure_logging(level=args.log_level.upper(), fmt=args.log_format)

    def ready(cloud: CloudHandle) -> None:
        print(f"ldt cloud: serving on {cloud.url} (data {args.data})", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.host, args.port, args.data, stop=stop, on_ready=ready)

    try:
        asyncio.run(main())
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1
    return 0
