"""``ldt sim ...``: run device simulators from the command line (demos, manual tests)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import signal
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``sim`` command group to the top-level parser."""
    sim = sub.add_parser("sim", help="device simulators")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="PROTOCOL")
    modbus = sim_sub.add_parser(
        "modbus",
        help="serve a device profile as a Modbus TCP device until SIGTERM/SIGINT",
        description="Serve a device profile as a Modbus TCP device with live, seeded values.",
    )
    modbus.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    modbus.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    modbus.add_argument(
        "--profile",
        default="eastron-sdm120",
        help="shipped profile name or a profile file (default eastron-sdm120)",
    )
    modbus.add_argument("--seed", type=int, default=0, help="seed of the values (default 0)")
    modbus.add_argument("--unit-id", type=int, default=1, help="Modbus unit id (default 1)")
    modbus.add_argument(
        "--update-interval", type=float, default=1.0, help="seconds between value updates"
    )
    modbus.add_argument(
        "--exception-rate", type=float, default=0.0, help="fraction answered with exception 0x04"
    )
    modbus.add_argument("--delay-ms", type=float, default=0.0, help="answer every request late")
    modbus.add_argument(
        "--drop-rate", type=float, default=0.0, help="fraction of requests never answered"
    )
    modbus.set_defaults(func=_run_modbus)
    # each other protocol's simulator registers its own subcommand (``ldt sim opcua`` ...)
    for protocol in ("opcua", "mqtt", "ble"):
        module = f"ldt.simulators.{protocol}.cli"
        if importlib.util.find_spec(f"ldt.simulators.{protocol}") is None:
            continue
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(sim_sub)


def _run_modbus(args: argparse.Namespace) -> int:
    from ldt.simulators.modbus import ModbusSimulator, SimulatorError, resolve_profile

    # pymodbus logs its own account of failures (a busy port, ...) as warnings;
    # the one-line message below is what the user needs.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def serve() -> None:
        sim = ModbusSimulator(
            profile=resolve_profile(args.profile),
            host=args.host,
            port=args.port,
            unit_id=args.unit_id,
            seed=args.seed,
            update_interval_s=args.update_interval,
            exception_rate=args.exception_rate,
            delay_ms=args.delay_ms,
            drop_rate=args.drop_rate,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with sim:
            print(
                f"ldt sim modbus: serving {sim.profile_name} on {args.host}:{sim.port} "
                f"unit {args.unit_id} (seed {args.seed})",
                flush=True,
            )
            await stop.wait()

    try:
        asyncio.run(serve())
    except SimulatorError as exc:
        print(f"ldt sim modbus: {exc}", file=sys.stderr)
        return 1
    return 0
