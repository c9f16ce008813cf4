"""The gateway's end of the control exchange (``ldt.contract.control``), over mutual TLS.

One pooled connection, rebuilt when the certificate is renewed (its file changes). The
request may wait at the cloud up to ``wait_s`` (a long poll), so the HTTP timeout is that
plus ``timeout_s``.
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from ldt.agent.identity import Identity, client_context
from ldt.contract.control import CONTROL_SYNC_PATH, ControlAnswer, ControlSync

__all__ = ["ControlLink", "ControlLinkError", "ControlRefusedError"]


class ControlLinkError(Exception):
    """The exchange did not happen (network, timeout, 5xx): try again later."""


class ControlRefusedError(ControlLinkError):
    """The cloud refused the message (4xx): the message says why."""


class ControlLink:
    """Exchanges ``ControlSync`` for ``ControlAnswer`` with ``base_url``."""

    def __init__(self, base_url: str, identity: Identity, *, timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None
        self._cert_mtime: int | None = None
        self._retired: httpx.AsyncClient | None = None
        """The connection of the previous certificate, closed at the next exchange."""

    def _connection(self) -> httpx.AsyncClient:
        try:
            mtime = self.identity.cert_path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if self._client is None or mtime != self._cert_mtime:
            old, self._client = (
                self._client,
                httpx.AsyncClient(verify=client_context(self.identity), timeout=self.timeout_s),
            )
            self._cert_mtime = mtime
            if old is not None:
                self._retired = old
        return self._client

    async def exchange(self, message: ControlSync) -> ControlAnswer:
        """One exchange; ``ControlLinkError`` if it failed, ``ControlRefusedError`` if refused."""
        retired = self._retired
        if retired is not None:
            self._retired = None
            await retired.aclose()
        client = self._connection()
        try:
            response = await client.post(
                f"{self.base_url}{CONTROL_SYNC_PATH}",
                content=message.model_dump_json(exclude_defaults=False).encode(),
                headers={"Content-Type": "application/json"},
                timeout=message.wait_s + self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise ControlLinkError(f"cannot reach {self.base_url}: {exc!r}") from exc
        if 400 <= response.status_code < 500:
            raise ControlRefusedError(
                f"the cloud refused the control message ({response.status_code}):"
                f" {response.text[:300]}"
            )
        if response.status_code != 200:
            raise ControlLinkError(f"the cloud answered {response.status_code}")
        try:
            return ControlAnswer.model_validate_json(response.content)
        except ValidationError as exc:
            raise ControlLinkError(f"the cloud's answer is malformed: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection."""
        for client in (self._client, self._retired):
            if client is not None:
                await client.aclose()
        self._client = None
        self._retired = None
