"""``ldt gw ...``: what a field technician runs on site, next to the gateway.

``ldt gw provision HOST --token T --config FILE`` gives the gateway its certificate: the
key is created (or reused) in the gateway's data folder, the cloud at HOST is checked
against the token's CA fingerprint, and the certificate lands beside the key. The agent
then syncs over mutual TLS when its ``[cloud] url`` is ``https://HOST``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``gw`` command group to the top-level parser."""
    gw = sub.add_parser("gw", help="on-site gateway commands for technicians")
    gw_sub = gw.add_subparsers(dest="gw_command", required=True, metavar="COMMAND")
    prov = gw_sub.add_parser("provision", help="get this gateway's certificate with a claim token")
    prov.add_argument("host", metavar="HOST", help="the cloud, host:port or https://host:port")
    prov.add_argument("--token", required=True, help="the one-time claim token from the admin")
    prov.add_argument("--config", required=True, type=Path, help="gateway config (TOML)")
    prov.set_defaults(func=_provision)
    disc = gw_sub.add_parser("discover", help="list ldt gateways on the LAN (mDNS)")
    disc.add_argument("--timeout", type=float, default=3.0, help="listen this long (s)")
    disc.set_defaults(func=_discover)


def _discover(args: argparse.Namespace) -> int:
    from ldt.agent.discovery import discover

    found = asyncio.run(discover(args.timeout))
    if not found:
        print("no ldt gateways answered on the LAN", file=sys.stderr)
        return 1
    print("ID\tSTATE\tVERSION\tADDRESSES")
    for gw in found:
        print(f"{gw.gateway_id}\t{gw.state}\t{gw.version}\t{','.join(gw.addresses)}")
    return 0


def _provision(args: argparse.Namespace) -> int:
    from ldt.agent.cli import load_config
    from ldt.agent.identity import Identity, IdentityError, provision_or_stage

    cfg = load_config(args.config)
    if cfg is None:
        return 1
    identity = Identity.of(cfg.gateway.data_dir, cfg.gateway.id)
    try:
        expires, again = asyncio.run(provision_or_stage(args.host, args.token, identity))
    except IdentityError as exc:
        print(f"ldt gw: {exc}", file=sys.stderr)
        return 1
    if again:
        print(
            f"gateway {cfg.gateway.id} re-provisioned; certificate valid until {expires}."
            " The new identity takes over after its first successful sync; until then the"
            " current one keeps syncing"
        )
        return 0
    print(f"gateway {cfg.gateway.id} provisioned; certificate valid until {expires}")
    print(f"identity in {identity.folder}; sync uses it when [cloud] url is https://...")
    return 0
