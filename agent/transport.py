"""How a sync batch reaches the cloud: the replaceable piece of the uplink.

The uplink hands over encoded bytes and gets a ``BatchAck`` back only when the
cloud has committed the batch. HTTP with a bearer token today; mutual TLS
replaces the token in the secure-sync work without touching the uplink.
"""

from __future__ import annotations

from typing import Protocol

import httpx
import orjson
from pydantic import ValidationError

from ldt.contract import INGEST_PATH, BatchAck

__all__ = ["HttpTransport", "Transport", "TransportError", "TransportRejectedError"]


class TransportError(Exception):
    """The batch may not have arrived (network, timeout, 5xx): send it again later."""


class TransportRejectedError(TransportError):
    """The cloud refused the batch (4xx): resending the same bytes will fail the same way.

    ``status`` is the HTTP status; ``detail`` the cloud's ProblemDetails text.
    """

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"cloud refused the batch ({status}): {detail}")


class Transport(Protocol):
    """Delivers one encoded batch; returns the cloud's ack or raises ``TransportError``."""

    async def send(self, body: bytes) -> BatchAck:
        """POST the batch; the ack means it is durable in the cloud."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class HttpTransport:
    """HTTP(S) to ``{base_url}/ldt/v1/ingest`` with a bearer token, one pooled connection."""

    def __init__(self, *, base_url: str, token: str, timeout_s: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        )

    async def send(self, body: bytes) -> BatchAck:
        """POST one batch.

        4xx -> ``TransportRejectedError``; network or 5xx -> ``TransportError``.
        """
        try:
            resp = await self._client.post(INGEST_PATH, content=body)
        except httpx.HTTPError as exc:
            raise TransportError(f"cloud unreachable: {exc!r}") from exc
        if resp.status_code == 200:
            try:
                return BatchAck.model_validate_json(resp.content)
            except ValidationError as exc:
                raise TransportError(f"cloud answered an unreadable ack: {exc}") from exc
        detail = _problem_detail(resp)
        if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
            raise TransportRejectedError(resp.status_code, detail)
        raise TransportError(f"cloud answered {resp.status_code}: {detail}")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _problem_detail(resp: httpx.Response) -> str:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return resp.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:500]
    return str(body)[:200]
