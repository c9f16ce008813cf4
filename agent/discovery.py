"""mDNS/DNS-SD: the agent advertises itself, ``ldt gw discover`` lists gateways on the LAN.

A technician on site opens a laptop on the cabinet's network and finds the gateways there
without knowing their addresses. Each agent registers ``<id>._ldt-gw._tcp.local.`` with
TXT records ``id``, ``version`` and ``state`` (``provisioned`` or ``unprovisioned``).
Nothing secret is advertised: the id is printed on the box anyway, and provisioning
still needs a claim token. The port is the local API's (0 when it is off).

zeroconf is imported only here and only when discovery runs (it costs a few MiB of
RSS that a gateway with discovery off should not pay).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

__all__ = ["SERVICE_TYPE", "Advertiser", "FoundGateway", "discover"]

SERVICE_TYPE = "_ldt-gw._tcp.local."
_log = logging.getLogger("ldt.agent.discovery")


@dataclass(frozen=True, slots=True)
class FoundGateway:
    """One gateway that answered on the LAN."""

    gateway_id: str
    version: str
    state: str
    addresses: tuple[str, ...]
    port: int


def _addresses() -> list[bytes]:
    """This host's IPv4 addresses to announce (loopback only if there is nothing else)."""
    import ifaddr

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith(("127.", "169.254.")):
                found.append(ip.ip)
    return [socket.inet_aton(a) for a in (found or ["127.0.0.1"])]


class Advertiser:
    """Registers this gateway while the ``async with`` block runs."""

    def __init__(self, gateway_id: str, version: str, state: str, *, port: int = 0) -> None:
        self.gateway_id = gateway_id
        self._props = {"id": gateway_id, "version": version, "state": state}
        self._port = port
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def __aenter__(self) -> Self:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.gateway_id}.{SERVICE_TYPE}",
            addresses=_addresses(),
            port=self._port,
            properties=self._props,
            server=f"ldt-{self.gateway_id}.local.",
        )
        try:
            # another gateway with the same id gets renamed ("gw-1 (2)") rather than
            # silenced: the technician then sees the duplicate, a finding in itself
            await self._zc.async_register_service(self._info, allow_name_change=True)
        except BaseException:  # cancelled while probing (a short run), or refused
            zc, self._zc, self._info = self._zc, None, None
            await asyncio.shield(zc.async_close())  # its sockets, even when cancelled
            raise
        _log.info("advertised on the LAN", extra={"service": self._info.name})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        zc, info = self._zc, self._info
        self._zc = self._info = None
        if zc is None:
            return
        try:
            if info is not None:
                await zc.async_unregister_service(info)
        finally:
            await asyncio.shield(zc.async_close())


async def discover(timeout_s: float = 3.0) -> list[FoundGateway]:
    """Gateways that answer within ``timeout_s``, by id."""
    from zeroconf import IPVersion, ServiceListener, Zeroconf
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    names: set[str] = set()

    class _Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            names.add(name)

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            names.add(name)

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            names.discard(name)

    azc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    browser = AsyncServiceBrowser(azc.zeroconf, SERVICE_TYPE, listener=_Listener())
    try:
        await asyncio.sleep(timeout_s)
        found: list[FoundGateway] = []
        for name in sorted(names):
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(azc.zeroconf, 1500):
                continue
            props = {
                k.decode(): (v or b"").decode(errors="replace") for k, v in info.properties.items()
            }
            found.append(
                FoundGateway(
                    gateway_id=props.get("id", name.removesuffix("." + SERVICE_TYPE)),
                    version=props.get("version", "?"),
                    state=props.get("state", "?"),
                    addresses=tuple(info.parsed_addresses()),
                    port=int(info.port or 0),
                )
            )
        return sorted(found, key=lambda g: g.gateway_id)
    finally:
        await browser.async_cancel()
        await azc.async_close()
