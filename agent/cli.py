"""``ldt agent ...``: run the edge agent, or check a gateway config file."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ldt.agent.config import GatewayConfig

__all__ = ["load_config", "register"]


def register(sub: Any) -> None:
    """Add the ``agent`` command group to the top-level parser."""
    agent = sub.add_parser("agent", help="the edge agent")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True, metavar="COMMAND")

    run = agent_sub.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, type=Path, help="gateway config (TOML)")
    run.add_argument("--log-format", choices=["json", "text"], default="json")
    run.add_argument("--log-level", default="INFO")
    run.set_defaults(func=_run)

    drain = agent_sub.add_parser(
        "drain", help="send every buffered reading to the cloud, without polling, then exit"
    )
    drain.add_argument("--config", required=True, type=Path, help="gateway config (TOML)")
    drain.add_argument("--timeout", type=float, default=300.0, help="give up after (s)")
    drain.set_defaults(func=_drain)

    key = agent_sub.add_parser(
        "buffer-key", help="make a key for [buffer] encryption_key_file (32 random bytes, 0600)"
    )
    key.add_argument("file", type=Path)
    key.set_defaults(func=_buffer_key)

    check = agent_sub.add_parser("check-config", help="validate a gateway config and its profiles")
    check.add_argument("config", type=Path)
    check.set_defaults(func=_check)


def load_config(path: Path) -> GatewayConfig | None:
    """The config, or None after printing one line per problem (never a traceback)."""
    from ldt.agent.config import ConfigError, load_gateway_config

    try:
        return load_gateway_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if cfg is None:
        return 1
    points = sum(len(cfg.profiles[d.profile].points) for d in cfg.devices)
    print(
        f"{args.config}: ok: gateway {cfg.gateway.id}, {len(cfg.devices)} devices, "
        f"{points} points, profiles: {', '.join(sorted(cfg.profiles)) or 'none'}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from ldt.agent.buffer import BufferError
    from ldt.agent.runtime import AgentError, AgentRuntime
    from ldt.agent.stop_watchdog import StopWatchdog
    from ldt.logs import configure_logging

    configure_logging(level=args.log_level.upper(), fmt=args.log_format)
    cfg = load_config(args.config)
    if cfg is None:
        return 1

    async def main() -> None:
        runtime = AgentRuntime(config=cfg)
        watchdog = StopWatchdog(runtime.stop)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, watchdog.signalled)
        await runtime.run()

    try:
        asyncio.run(main())
    except (AgentError, BufferError) as exc:
        print(f"ldt agent: {exc}", file=sys.stderr)
        return 1
    return 0


def _drain(args: argparse.Namespace) -> int:
    from ldt.agent.buffer import BufferError
    from ldt.agent.runtime import AgentError, drain
    from ldt.logs import configure_logging

    configure_logging(level="WARNING", fmt="text")
    cfg = load_config(args.config)
    if cfg is None:
        return 1
    try:
        sent = asyncio.run(drain(cfg, timeout_s=args.timeout))
    except (AgentError, BufferError) as exc:
        print(f"ldt agent drain: {exc}", file=sys.stderr)
        return 1
    print(f"ldt agent drain: sent {sent} readings; buffer empty")
    return 0


def _buffer_key(args: argparse.Namespace) -> int:
    from ldt.agent.value_cipher import CipherError, write_new_key

    try:
        write_new_key(args.file)
    except (CipherError, OSError) as exc:
        print(f"ldt agent: {exc}", file=sys.stderr)
        return 1
    print(f"buffer key written to {args.file} (mode 0600): keep it off the buffer's disk")
    return 0
