"""The ``ldt`` command: one console script, subcommands per half of the system.

Each part registers its own subcommands (``ldt.agent.cli``, ``ldt.cloud.cli``,
``ldt.simulators.cli``) and imports its heavy modules only when run, so
``ldt agent ...`` on a gateway never loads the cloud's web stack.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from ldt import __version__
    from ldt.agent.cli import register as register_agent
    from ldt.agent.gw_cli import register as register_gw
    from ldt.agent.modbus_scan import register as register_modbus
    from ldt.cloud.cli import register as register_cloud
    from ldt.simulators.cli import register as register_sim

    parser = argparse.ArgumentParser(
        prog="ldt", description="Local Digital Twin edge-to-cloud gateway."
    )
    parser.add_argument("--version", action="version", version=f"ldt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_agent(sub)
    register_gw(sub)
    register_cloud(sub)
    register_sim(sub)
    # protocol tools for writing profiles (``ldt opcua browse URL``) live with their driver
    for protocol in ("opcua",):
        if importlib.util.find_spec(f"ldt.drivers.{protocol}") is None:
            continue
        if importlib.util.find_spec(f"ldt.drivers.{protocol}.cli") is not None:
            importlib.import_module(f"ldt.drivers.{protocol}.cli").register(sub)
    register_modbus(sub)
    demo = sub.add_parser("demo", help="run cloud, simulated devices and an agent on loopback")
    demo.add_argument("--port", type=int, default=8080, help="cloud HTTPS port (default 8080)")
    demo.add_argument("--data", default=None, help="data folder (default: a temporary one)")
    demo.add_argument("--devices", type=int, default=2, help="simulated meters (default 2)")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long")
    demo.set_defaults(func=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from ldt.demo import run_demo

    return run_demo(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
