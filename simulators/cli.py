"""``ldt sim ...``: run device simulators from the command line (demos, manual tests)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

from ldt.simulators.serve import run_simulator, stop_on_signals

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``sim`` command group to the top-level parser."""
    sim = sub.add_parser("sim", help="device simulators")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="PROTOCOL")
    modbus = sim_sub.add_parser(
        "modbus",
        help="serve device profiles as Modbus TCP or RTU devices until SIGTERM/SIGINT",
        description=(
            "Serve a device profile as a Modbus TCP device (--port), or several profiles as "
            "RTU devices on one serial line (--serial with repeated --unit ID:PROFILE[:SEED]), "
            "with live, seeded values."
        ),
    )
    modbus.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    modbus.add_argument("--port", type=int, help="TCP port; 0 picks a free one")
    modbus.add_argument("--serial", metavar="PATH", help="serve Modbus RTU on this serial device")
    modbus.add_argument("--baudrate", type=int, default=9600, help="RTU line speed (default 9600)")
    modbus.add_argument(
        "--parity", choices=("N", "E", "O"), default="N", help="RTU parity (default N)"
    )
    modbus.add_argument(
        "--unit",
        action="append",
        default=[],
        metavar="ID:PROFILE[:SEED]",
        help="an RTU device on the line (repeat; default 1:<--profile>:<--seed>)",
    )
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
    if (args.port is None) == (args.serial is None):
        print("ldt sim modbus: give either --port (TCP) or --serial (RTU)", file=sys.stderr)
        return 2
    if args.serial is not None:
        return _run_modbus_rtu(args)

    async def serve() -> None:
        stop = stop_on_signals()
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
        async with sim:
            print(
                f"ldt sim modbus: serving {sim.profile_name} on {args.host}:{sim.port} "
                f"unit {args.unit_id} (seed {args.seed})",
                flush=True,
            )
            await stop.wait()

    return run_simulator("ldt sim modbus", serve, SimulatorError)


def _parse_units(args: argparse.Namespace) -> list[tuple[int, Path, int]]:
    """``--unit ID:PROFILE[:SEED]`` options (``SimulatorError`` for a malformed one)."""
    from ldt.simulators.modbus import SimulatorError, resolve_profile

    specs = args.unit or [f"1:{args.profile}"]
    units: list[tuple[int, Path, int]] = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise SimulatorError(f"--unit {spec!r} is not ID:PROFILE or ID:PROFILE:SEED")
        try:
            unit_id = int(parts[0])
            seed = int(parts[2]) if len(parts) == 3 else args.seed
        except ValueError:
            raise SimulatorError(f"--unit {spec!r}: the id and seed must be integers") from None
        units.append((unit_id, resolve_profile(parts[1]), seed))
    return units


def _run_modbus_rtu(args: argparse.Namespace) -> int:
    from ldt.simulators.modbus import ModbusRtuSimulator, SimulatorError

    async def serve() -> None:
        stop = stop_on_signals()
        units = _parse_units(args)
        sim = ModbusRtuSimulator(
            port=args.serial,
            devices=units,
            baudrate=args.baudrate,
            parity=args.parity,
            update_interval_s=args.update_interval,
        )
        for unit_id in sim.unit_ids:
            unit = sim.unit(unit_id)
            unit.exception_rate = args.exception_rate
            unit.delay_ms = args.delay_ms
            unit.drop_rate = args.drop_rate
        async with sim:
            served = ", ".join(
                f"unit {u} {sim.unit(u).profile_name} (seed {sim.unit(u).seed})"
                for u in sim.unit_ids
            )
            print(
                f"ldt sim modbus: serving RTU on {args.serial} at {args.baudrate} "
                f"8{args.parity}1: {served}",
                flush=True,
            )
            await stop.wait()

    return run_simulator("ldt sim modbus", serve, SimulatorError)
