"""Helpers the cloud tests share: the broker app in an HTTP client, and loopback receivers.

``receiver`` is a real HTTP server on 127.0.0.1 (not a mock transport), so notification
delivery, retries and isolation between endpoints are observed on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.server import build_app
from ldt.cloud.store import Store

__all__ = ["Receiver", "asgi_client", "make_csr", "notifying_app", "receiver", "serving"]


@dataclass
class Receiver:
    """A loopback HTTP server recording POSTs; answers ``statuses`` in turn (then 204)."""

    delay_s: float = 0.0
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            await asyncio.sleep(self.delay_s)
            self.received.append((headers, orjson.loads(body)))
            self.arrived.set()
            status = self.statuses.pop(0) if self.statuses else 204
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def wait(self, n: int, timeout_s: float = 5.0) -> list[Any]:
        """The bodies once ``n`` have arrived."""
        async with asyncio.timeout(timeout_s):
            while len(self.received) < n:
                self.arrived.clear()
                await self.arrived.wait()
        return [body for _, body in self.received]


R = TypeVar("R", bound="Receiver")


@contextlib.asynccontextmanager
async def serving(rec: R) -> AsyncIterator[R]:
    """``rec`` listening on a free loopback port (its ``url`` set) until the block ends."""
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rec.url = f"http://127.0.0.1:{port}/notify"
    try:
        yield rec
    finally:
        server.close()
        await server.wait_closed()


def receiver(**kwargs: Any) -> contextlib.AbstractAsyncContextManager[Receiver]:
    """A ``Receiver(**kwargs)`` listening (see ``serving``)."""
    return serving(Receiver(**kwargs))


@contextlib.asynccontextmanager
async def asgi_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to ``app`` in-process (base URL ``http://cloud.test``)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as c:
        yield c


@contextlib.asynccontextmanager
async def notifying_app(store: Store, **notifier: Any) -> AsyncIterator[Starlette]:
    """The broker on ``store`` with a ``Notifier`` tuned by ``notifier`` (attempts, backoff,
    timeouts: tests shorten them), closed afterwards."""
    built = build_app(store, access=AccessControl.lab())
    built.state.notifier = Notifier(store=store, contexts=built.state.contexts, **notifier)
    try:
        yield built
    finally:
        await built.state.notifier.aclose()


def make_csr(
    cn: str, curve: ec.EllipticCurve | None = None
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A PEM CSR with subject CN ``cn`` and its key (P-256 unless ``curve``)."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), key
