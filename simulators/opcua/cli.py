"""``ldt sim opcua``: serve the pumping-station simulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ldt.simulators.serve import run_simulator, stop_on_signals

__all__ = ["register"]


def register(sim_sub: Any) -> None:
    """Add the ``opcua`` subcommand to ``ldt sim``."""
    opcua = sim_sub.add_parser(
        "opcua",
        help="serve a simulated OPC UA pumping station until SIGTERM/SIGINT",
        description="Serve a two-pump lift station over OPC UA with live, seeded values.",
    )
    opcua.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    opcua.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    opcua.add_argument("--seed", type=int, default=0, help="seed of the values (default 0)")
    opcua.add_argument(
        "--update-interval", type=float, default=0.5, help="seconds between value updates"
    )
    opcua.add_argument(
        "--secure", action="store_true", help="only Basic256Sha256 Sign/SignAndEncrypt endpoints"
    )
    opcua.add_argument("--cert-dir", type=Path, help="where the server certificate is written")
    opcua.add_argument(
        "--trust", type=Path, action="append", help="a client certificate to accept (repeatable)"
    )
    opcua.add_argument(
        "--user", action="append", metavar="USER:PASSWORD", help="accepted user (repeatable)"
    )
    opcua.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ldt.simulators.opcua.errors import SimulatorError
    from ldt.simulators.opcua.server import OpcUaSimulator, quiet_asyncua_logs

    quiet_asyncua_logs()
    users: dict[str, str] | None = None
    for item in args.user or []:
        name, sep, password = item.partition(":")
        if not sep or not name:
            print(f"ldt sim opcua: --user wants USER:PASSWORD, not {item!r}", file=sys.stderr)
            return 2
        users = {**(users or {}), name: password}

    async def serve() -> None:
        stop = stop_on_signals()
        sim = OpcUaSimulator(
            host=args.host,
            port=args.port,
            seed=args.seed,
            update_interval_s=args.update_interval,
            security=args.secure,
            server_cert_dir=args.cert_dir,
            users=users,
            trusted_client_certs=args.trust,
        )
        async with sim:
            print(
                f"ldt sim opcua: serving pumping-station on {sim.endpoint} (seed {args.seed})",
                flush=True,
            )
            await stop.wait()

    return run_simulator("ldt sim opcua", serve, SimulatorError)
