"""Running a simulator from the command line: until SIGTERM/SIGINT, one line on failure."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["run_simulator", "stop_on_signals"]


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C); call it first in the running loop,
    before the ready line is printed, so a signal sent right after it is handled."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_simulator(
    label: str, serve: Callable[[], Coroutine[Any, Any, None]], errors: type[Exception]
) -> int:
    """Run ``serve``; a simulator error becomes one line on stderr and exit code 1."""
    try:
        asyncio.run(serve())
    except errors as exc:
        print(f"{label}: {exc}", file=sys.stderr)
        return 1
    return 0
