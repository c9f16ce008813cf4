"""``ldt demo``: cloud, simulated Modbus meters and an agent on loopback, in one process.

Everything runs on embedded defaults (SQLite files in a data folder, no
external server), so a fresh machine can show the whole data path: simulator
registers -> Modbus TCP -> agent -> durable buffer -> sync -> NGSI-LD entities.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

__all__ = ["run_demo"]

PROFILE = "eastron-sdm120"
GATEWAY_ID = "gw-demo"


def run_demo(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or ``--seconds``); returns the exit code."""
    from ldt.logs import configure_logging

    configure_logging(level="WARNING", fmt="text")
    with _data_dir(args.data) as data:
        try:
            asyncio.run(_demo(data=data, port=args.port, devices=args.devices, seconds=args.seconds))
        except OSError as exc:
            print(f"ldt demo: {exc}", file=sys.stderr)
            return 1
    return 0


@contextlib.contextmanager
def _data_dir(given: str | None) -> object:
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="ldt-demo-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
