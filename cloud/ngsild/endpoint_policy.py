"""Where notifications may go: public hosts, and the private ones an admin allowed.

A subscription names its endpoint, and the broker then connects there with the
subscription's headers (SSRF): to a database on loopback, a cloud metadata address, a
service on the private network. With access control on, an endpoint whose host resolves to
a loopback, link-local, private, reserved or multicast address is refused unless an admin
allowed that host for the tenant (``ldt cloud notify allow HOST [--tenant T]``). The check
runs when a subscription is created or changed (400, saying how to allow it) and again
before every delivery (DNS may have changed since): a refused delivery is counted as
failed and logged.

Resolved addresses are cached ``CACHE_S`` per host, and the allowed hosts per tenant as
long, so a delivery costs no DNS lookup and no store read in the common case.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

__all__ = ["CACHE_S", "EndpointPolicy", "non_public"]

CACHE_S: Final = 30.0
_MAX_CACHED: Final = 4096

AllowedHosts = Callable[[], Awaitable[frozenset[str]]]


class EndpointPolicy:
    """One tenant's rule for notification endpoints (see the module docstring)."""

    def __init__(self, allowed_hosts: AllowedHosts) -> None:
        self._allowed_hosts = allowed_hosts
        self._allowed: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._resolved: OrderedDict[tuple[str, int], tuple[float, str | None]] = OrderedDict()

    async def refusal(self, uri: str) -> str | None:
        """Why notifications may not go to ``uri`` now; None when they may."""
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        if not host:
            return f"{uri!r} names no host"
        now = time.monotonic()
        if self._allowed[0] < now:
            self._allowed = (now + CACHE_S, await self._allowed_hosts())
        if host in self._allowed[1]:
            return None
        default_port = {"https": 443, "mqtts": 8883, "mqtt": 1883}.get(parts.scheme, 80)
        key = (host, parts.port or default_port)
        cached = self._resolved.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        why = await non_public(host, key[1])
        self._resolved[key] = (now + CACHE_S, why)
        self._resolved.move_to_end(key)
        while len(self._resolved) > _MAX_CACHED:
            self._resolved.popitem(last=False)
        return why

    def forget(self) -> None:
        """Re-read the allowed hosts on the next check (an admin changed them here)."""
        self._allowed = (0.0, frozenset())
        self._resolved.clear()


async def non_public(host: str, port: int) -> str | None:
    """Why ``host`` may not be connected to without being named: it does not resolve, or
    one of its addresses is loopback, link-local, private, reserved or multicast; None
    when every address is public. Shared by notifications and ``@context`` fetches."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host}: {exc.strerror or exc}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            return f"{host} resolves to the non-public address {address}"
    return None
