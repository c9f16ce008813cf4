"""A cheap look at whether a TCP device is back: a bare connect, at most every few seconds.

While a device is down, the drivers back off up to a minute between full reconnects (a
Modbus connect, an OPC UA secure channel and session), so that a device that stays down
sees no storm. A PLC that reboots for 30-90 s would then stay unread for up to a minute
after it is back. A bare TCP connect every ``PROBE_S`` costs the device almost nothing and
ends the wait as soon as it accepts connections again.

Use it only after a failure to connect (refused, unreachable): a device that accepts
connections but refuses the session (a certificate it does not trust) or never answers
would pass the probe every time, and turn the backoff into a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final

__all__ = ["PROBE_S", "TcpProbe"]

PROBE_S: Final = 2.0
"""While a TCP device is down, how often a bare connect looks whether it is back."""


class TcpProbe:
    """Looks whether ``host:port`` accepts connections, at most once per ``every_s``."""

    def __init__(self, host: str, port: int, *, every_s: float = PROBE_S) -> None:
        self.host = host
        self.port = port
        self.every_s = every_s
        self._next = 0.0

    async def back(self, timeout_s: float) -> bool:
        """True when a probe is due and the device accepts a connection (closed at once)."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every_s
        try:
            async with asyncio.timeout(min(timeout_s, self.every_s)):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
