"""An on-site connection test for one device: can the gateway reach it right now?

It never talks to the device through its driver (the poller owns that conversation and a
second client could confuse a device that allows one connection); it checks the path:

- TCP devices (Modbus TCP, OPC UA, an MQTT device's broker): a fresh TCP connection to
  the host and port, with its latency;
- serial lines (Modbus RTU): the device node exists and the agent may open it;
- BLE: nothing to dial; the device's health (last advertisement) says it.

The driver's own view (connected, last error, counts) comes with it in the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any
from urllib.parse import urlsplit

__all__ = ["probe_connection"]

_TIMEOUT_S = 3.0
_MQTT_DEFAULT_PORT = 1883


def _target(connection: Any) -> tuple[str, int] | str | None:
    """(host, port) to dial, a serial device path, or None."""
    endpoint = getattr(connection, "endpoint", None)
    if isinstance(endpoint, str) and endpoint.startswith("opc.tcp://"):
        parts = urlsplit(endpoint)
        return (parts.hostname or "", parts.port or 4840)
    host = getattr(connection, "host", None)
    port = getattr(connection, "port", None)
    if isinstance(host, str):
        return (host, port if isinstance(port, int) else _MQTT_DEFAULT_PORT)
    if isinstance(port, str):  # a serial line's device node
        return port
    return None


def _serial(path: str) -> dict[str, Any]:
    """A serial device node: present, and may the agent open it (a stat; no I/O on it)."""
    exists = os.path.exists(path)
    usable = exists and os.access(path, os.R_OK | os.W_OK)
    detail = "ok" if usable else ("no such device" if not exists else "permission denied")
    return {"kind": "serial", "target": path, "reachable": usable, "detail": detail}


async def probe_connection(connection: Any) -> dict[str, Any]:
    """What reaching the device's address gives now (never raises)."""
    target = _target(connection)
    if target is None:
        return {"kind": "none", "reachable": None, "detail": "nothing to dial: see the health"}
    if isinstance(target, str):
        return _serial(target)
    host, port = target
    started = time.monotonic()
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        detail = f"timeout after {_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else str(exc)
        return {"kind": "tcp", "target": f"{host}:{port}", "reachable": False, "detail": detail}
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return {
        "kind": "tcp",
        "target": f"{host}:{port}",
        "reachable": True,
        "latency_ms": latency_ms,
        "detail": "ok",
    }
