"""``ldt opcua browse URL``: list a server's variables to help write a profile."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``opcua`` command group to the top-level parser."""
    opcua = sub.add_parser("opcua", help="OPC UA tools (browse a server to write a profile)")
    opcua_sub = opcua.add_subparsers(dest="opcua_command", required=True, metavar="COMMAND")
    browse = opcua_sub.add_parser(
        "browse",
        help="print a server's variables: browse path, NodeId, DataType, access, value",
        description="Print every variable under Objects with what a profile's [[points]] need.",
    )
    browse.add_argument("url", help="endpoint, e.g. opc.tcp://192.0.2.10:4840")
    browse.add_argument("--depth", type=int, default=6, help="levels below Objects (default 6)")
    browse.add_argument(
        "--security",
        choices=["None", "Sign", "SignAndEncrypt"],
        default="None",
        help="message security with Basic256Sha256 (needs --cert and --key)",
    )
    browse.add_argument("--cert", type=Path, help="client certificate (DER or PEM)")
    browse.add_argument("--key", type=Path, help="client private key (PEM)")
    browse.add_argument("--server-cert", type=Path, help="pin this server certificate")
    browse.add_argument("--user", help="username (password from --password-file)")
    browse.add_argument("--password-file", type=Path, help="file whose first line is the password")
    browse.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per request (default 5)"
    )
    browse.set_defaults(func=_run_browse)


def _run_browse(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ldt.drivers.errors import DriverError
    from ldt.drivers.opcua.config import OpcUaConnection, SecurityMode, SecurityPolicy

    try:
        conn = OpcUaConnection(
            endpoint=args.url,
            security_policy=SecurityPolicy.NONE
            if args.security == "None"
            else SecurityPolicy.BASIC256SHA256,
            security_mode=SecurityMode(args.security),
            client_certificate=args.cert,
            client_private_key=args.key,
            server_certificate=args.server_cert,
            username=args.user,
            password_file=args.password_file,
            timeout_s=args.timeout,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"ldt opcua browse: {first['msg']}", file=sys.stderr)
        return 2
    try:
        rows = asyncio.run(_browse(conn, args.depth))
    except DriverError as exc:
        print(f"ldt opcua browse: {exc}", file=sys.stderr)
        return 1
    print("browse path\tNodeId\tDataType\taccess\tvalue")
    for r in rows:
        print(f"{r.browse_path}\t{r.node_id}\t{r.data_type}\t{r.access}\t{r.value}")
    return 0


async def _browse(conn: Any, depth: int) -> list[Any]:
    from asyncua.client.client import Client

    from ldt.drivers.errors import DriverError
    from ldt.drivers.opcua.browse import browse_variables
    from ldt.drivers.opcua.connect import connect

    client = Client(conn.endpoint, timeout=conn.timeout_s)
    try:
        async with asyncio.timeout(conn.timeout_s * 2):
            await connect(client, conn)
    except TimeoutError:
        client.disconnect_socket()
        raise DriverError(f"no answer from {conn.endpoint} within {conn.timeout_s * 2} s") from None
    except DriverError as exc:
        client.disconnect_socket()
        raise DriverError(f"cannot connect to {conn.endpoint}: {exc}") from None
    try:
        async with asyncio.timeout(max(30.0, conn.timeout_s * 6)):
            return await browse_variables(client, depth=depth)
    except TimeoutError:
        raise DriverError(
            f"browsing {conn.endpoint} took too long; try a smaller --depth"
        ) from None
    finally:
        try:
            async with asyncio.timeout(1.0):
                await client.disconnect()
        except Exception:  # noqa: BLE001, S110 - the listing is printed either way
            pass
        client.disconnect_socket()
