"""A lean HTTP/1.1 load generator for the write rows of bench/broker.py (what wrk does).

Why not httpx for the write rows: the load generator shares this 2-core
machine with the broker. Measured in the same run (server and client CPU from
/proc and ``time.process_time``), httpx spent about as much CPU per PATCH as
the broker itself (~600 us), so the row measured the client as much as the
server; a production broker's clients run elsewhere. This client writes
pre-encoded requests on keep-alive connections and reads the status line,
the headers and a ``Content-Length`` body (the broker never chunks these
answers): ~20 us per request.

Each connection carries one request at a time (no pipelining), like a client
waiting for its answer. The answers are still checked: the status, and the
body for callers that need it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["HttpAnswer", "LeanConnection", "LeanProtocolError", "encode_request"]


class LeanProtocolError(Exception):
    """An answer this client does not handle (no Content-Length, a closed connection)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """Status and body of one answer."""

    status: int
    body: bytes


def encode_request(
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """One request's bytes, encoded once before the clock starts."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # a loopback name (lab mode)
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    if body or method in {"POST", "PUT", "PATCH"}:
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("ascii") + body


class LeanConnection:
    """One keep-alive connection to ``base_url`` (http only)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"need http://host:port, got {base_url!r}")
        self._host, self._port = parts.hostname, parts.port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanConnection:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def send(self, request: bytes) -> HttpAnswer:
        """Send one pre-encoded request and read its whole answer."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise LeanProtocolError("the connection is not open")
        writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise LeanProtocolError("the server closed the connection") from exc
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "transfer-encoding":
                raise LeanProtocolError(f"transfer-encoding {value.strip()} is not handled")
        if length is None:
            if status in (204, 304) or 100 <= status < 200:
                return HttpAnswer(status, b"")
            raise LeanProtocolError(f"status {status} without Content-Length")
        body = await reader.readexactly(length) if length else b""
        return HttpAnswer(status, body)
