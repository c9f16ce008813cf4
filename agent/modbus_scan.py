"""``ldt modbus scan HOST``: which registers of a Modbus TCP device answer.

A technician on site has a meter whose map (the manual's) may not be the firmware's. Two
ways to ask the device itself:

* ``--profile NAME`` (a shipped profile, or a profile file): every point of the profile is
  read alone, and each line says its value or why not (``exception 2 (illegal data
  address)``: not in the device's map; a timeout: check ``--unit``).
* ``--table holding --start 0 --count 100``: each register of the range is read alone, and
  the answer is a list of the ranges that answer and those that do not.

It lives with the agent (not the driver) because it loads profiles the way the agent does;
the reads go through the same driver as the agent's polls. Bounded: at most
``MAX_COUNT`` registers per run, one request at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["MAX_COUNT", "register"]

MAX_COUNT: Final = 2000
"""Registers one ``--table`` scan reads at most (one request each)."""


def register(sub: Any) -> None:
    """Add the ``modbus`` command group to the top-level parser."""
    modbus = sub.add_parser("modbus", help="Modbus tools (which registers a device answers)")
    modbus_sub = modbus.add_subparsers(dest="modbus_command", required=True, metavar="COMMAND")
    scan = modbus_sub.add_parser(
        "scan",
        help="read a profile's points, or a range of registers, one at a time",
        description=(
            "Ask a Modbus TCP device which registers answer: every point of a profile "
            "(--profile), or every register of a range (--table, --start, --count)."
        ),
    )
    scan.add_argument("host", help="the device's address, e.g. 192.0.2.20")
    scan.add_argument("--port", type=int, default=502, help="TCP port (default 502)")
    scan.add_argument("--unit", type=int, default=1, help="unit id (default 1)")
    scan.add_argument("--profile", help="a shipped profile's name, or a profile file")
    scan.add_argument(
        "--table", choices=["holding", "input", "coil", "discrete"], help="table to scan"
    )
    scan.add_argument("--start", type=int, default=0, help="first address (default 0)")
    scan.add_argument("--count", type=int, default=100, help="registers to read (default 100)")
    scan.add_argument("--timeout", type=float, default=1.0, help="seconds per request (default 1)")
    scan.set_defaults(func=_run_scan)


def _fail(text: str, code: int = 2) -> int:
    print(f"ldt modbus scan: {text}", file=sys.stderr)
    return code


def _run_scan(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ldt.drivers.modbus.config import ModbusTcpConnection

    if (args.profile is None) == (args.table is None):
        return _fail("give --profile NAME, or --table with --start and --count")
    if args.table is not None and not (1 <= args.count <= MAX_COUNT):
        return _fail(f"--count must be 1..{MAX_COUNT}")
    if not 0 <= args.start <= 65535 or args.start + max(args.count, 1) - 1 > 65535:
        return _fail("--start and --count must stay within addresses 0..65535")
    try:
        conn = ModbusTcpConnection(
            host=args.host, port=args.port, unit_id=args.unit, timeout_s=args.timeout
        )
    except ValidationError as exc:
        return _fail(str(exc.errors()[0]["msg"]))
    if args.profile is not None:
        return _scan_profile(conn, args.profile)
    return asyncio.run(_scan_range(conn, args.table, args.start, args.count))


def _scan_profile(conn: Any, name: str) -> int:
    from ldt.agent.config import DEFAULT_PROFILE_DIR, ConfigError, load_profile

    path = Path(name)
    if not path.is_file():
        path = DEFAULT_PROFILE_DIR / f"{name}.toml"
        if not path.is_file():
            return _fail(f"no profile file {name} and no shipped profile named {name}")
    try:
        profile = load_profile(path)
    except ConfigError as exc:
        return _fail(str(exc))
    if profile.profile.protocol != "modbus":
        return _fail(f"profile {profile.name} is for {profile.profile.protocol}, not Modbus")
    return asyncio.run(_read_points(conn, profile.settings, profile.points))


async def _read_points(conn: Any, settings: Any, points: Sequence[Any]) -> int:
    from ldt.backoff import Backoff
    from ldt.drivers.modbus.device import ModbusTcpDevice
    from ldt.reading import Quality

    bad = 0
    print("point\ttable\taddress\ttype\tanswer")
    async with ModbusTcpDevice(
        device_id="scan", connection=conn, settings=settings, points=points,
        backoff=Backoff(base_s=1e-6, cap_s=1e-6),
    ) as device:  # fmt: skip
        for p in points:
            (reading,) = await device.read([p])
            if reading.quality is Quality.BAD:
                bad += 1
                answer = f"no: {reading.reason}"
            else:
                answer = repr(reading.value)
            print(f"{p.name}\t{p.table.value}\t{p.address}\t{p.type.value}\t{answer}")
    print(f"{len(points) - bad} of {len(points)} points answer", file=sys.stderr)
    return 0 if bad == 0 else 1


async def _scan_range(conn: Any, table: str, start: int, count: int) -> int:
    from ldt.backoff import Backoff
    from ldt.drivers.modbus.config import (
        DataType,
        ModbusPoint,
        ModbusProfileSettings,
        RegisterTable,
    )
    from ldt.drivers.modbus.device import ModbusTcpDevice
    from ldt.reading import Quality

    kind = RegisterTable(table)
    dtype = DataType.BOOL if kind.is_bit else DataType.UINT16
    points = [
        ModbusPoint(name=f"r{a}", table=kind, address=a, type=dtype)
        for a in range(start, start + count)
    ]
    runs: list[tuple[int, int, str]] = []  # (first, last, answer kind)
    answered = 0
    # no backoff between requests: each register is asked, even after one timed out
    async with ModbusTcpDevice(
        device_id="scan", connection=conn, settings=ModbusProfileSettings(), points=points,
        backoff=Backoff(base_s=1e-6, cap_s=1e-6),
    ) as device:  # fmt: skip
        for p in points:
            (reading,) = await device.read([p])
            if reading.quality is Quality.BAD:
                what = f"no: {_short(reading.reason)}"
            else:
                answered += 1
                what = "answers"
            if runs and runs[-1][2] == what and runs[-1][1] == p.address - 1:
                runs[-1] = (runs[-1][0], p.address, what)
            else:
                runs.append((p.address, p.address, what))
            if what.startswith("no: ") and "timeout" in what and answered == 0:
                break  # nothing answers at all: one reason, not a minute of timeouts
    for first, last, what in runs:
        span = f"{first}" if first == last else f"{first}..{last}"
        print(f"{table} {span}\t{what}")
    print(f"{answered} of {count} {table} addresses answer", file=sys.stderr)
    return 0 if answered else 1


def _short(reason: str | None) -> str:
    """The reason without the address it names (each line of the output names its range)."""
    text = reason or "no answer"
    for cut in (" reading ", " (point "):
        text = text.split(cut, 1)[0] if cut in text and "unit_id" not in text else text
    return text
