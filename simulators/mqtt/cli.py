"""``ldt sim mqtt``: publish a profile's telemetry to an MQTT broker as one simulated device."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ldt.simulators.serve import run_simulator, stop_on_signals

__all__ = ["register"]


def _broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def register(sim_sub: Any) -> None:
    """Add the ``mqtt`` subcommand to ``ldt sim``."""
    p = sim_sub.add_parser(
        "mqtt",
        help="publish a device profile's telemetry to an MQTT broker until SIGTERM/SIGINT",
        description="Publish seeded telemetry per an MQTT profile and answer its commands.",
    )
    p.add_argument("--broker", type=_broker, required=True, metavar="HOST:PORT")
    p.add_argument("--device", required=True, help="device id (fills {device_id} in topics)")
    p.add_argument(
        "--profile",
        default="shelly-plus-1pm",
        help="shipped profile name or a profile file (default shelly-plus-1pm)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the values (default 0)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between messages")
    p.add_argument("--api-key", default="ldt-api-key", help="fills {api_key} in topics")
    p.add_argument("--username", help="broker user name")
    p.add_argument("--password", help="broker password")
    p.add_argument("--ca-file", type=Path, help="CA certificate: connect with TLS")
    p.add_argument("--malformed-rate", type=float, default=0.0, help="fraction sent malformed")
    p.add_argument("--drop-rate", type=float, default=0.0, help="fraction not sent")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ldt.simulators.mqtt import MqttDeviceSimulator, SimulatorError, resolve_profile

    host, port = args.broker

    async def serve() -> None:
        stop = stop_on_signals()
        sim = MqttDeviceSimulator(
            broker_host=host,
            broker_port=port,
            device_id=args.device,
            profile=resolve_profile(args.profile),
            seed=args.seed,
            interval_s=args.interval,
            api_key=args.api_key,
            username=args.username,
            password=args.password,
            ca_file=args.ca_file,
            malformed_rate=args.malformed_rate,
            drop_rate=args.drop_rate,
        )
        async with sim:
            print(
                f"ldt sim mqtt: publishing {sim.profile.name} as {args.device} to {host}:{port} "
                f"on {sim.topic} every {args.interval} s (seed {args.seed})",
                flush=True,
            )
            await stop.wait()

    return run_simulator("ldt sim mqtt", serve, SimulatorError)
