"""How a sync batch reaches the cloud: the replaceable piece of the uplink.

The uplink hands over encoded bytes and gets a ``BatchAck`` back only when the
cloud has committed the batch. Mutual TLS 1.3 once the gateway is
provisioned (``identity``), a bearer token on a plain-HTTP cloud.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Protocol

import httpx
import orjson
from pydantic import ValidationError

from ldt.agent.identity import Identity, client_context
from ldt.contract import INGEST_PATH, BatchAck
from ldt.contract.compression import gzip_batch

_log = logging.getLogger("ldt.agent.transport")

__all__ = [
    "HttpTransport",
    "MutualTlsTransport",
    "Transport",
    "TransportError",
    "TransportRejectedError",
    "TransportUnreachableError",
]


class TransportError(Exception):
    """The batch may not have arrived (network, timeout, 5xx): send it again later."""


class TransportUnreachableError(TransportError):
    """No answer at all (the connection failed or timed out): the cloud may be away."""


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
    """``{base_url}/ldt/v1/ingest``, one pooled connection.

    Either mutual TLS (``tls``: the identity's client context; the cloud takes the
    gateway id from the certificate) or, on a plain-HTTP cloud (the demo, a lab), a
    bearer ``token``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: str | None,
        timeout_s: float,
        tls: ssl.SSLContext | None = None,
        compress: bool = False,
    ) -> None:
        self._compress = compress
        self.bytes_sent = 0
        """Request body bytes sent (after compression), for the fleet view and benchmarks."""
        headers = {"Content-Type": "application/json"}
        if compress:
            headers["Content-Encoding"] = "gzip"
        if tls is None:
            if token is None:
                raise ValueError("a plain-HTTP transport needs a bearer token")
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s),
            headers=headers,
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            verify=tls if tls is not None else True,
        )

    async def send(self, body: bytes) -> BatchAck:
        """POST one batch.

        4xx -> ``TransportRejectedError``; network or 5xx -> ``TransportError``.
        """
        if self._compress:
            body = gzip_batch(body)
        self.bytes_sent += len(body)
        try:
            resp = await self._client.post(INGEST_PATH, content=body)
        except httpx.HTTPError as exc:
            raise TransportUnreachableError(f"cloud unreachable: {exc!r}") from exc
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


class MutualTlsTransport:
    """HTTPS with the gateway's own certificate, following its identity folder.

    Until the gateway is provisioned, ``send`` raises ``TransportError`` (the uplink backs
    off and retries; readings wait in the buffer), so an agent can be installed and
    collecting before the technician provisions it. A new certificate (the first one,
    or a renewal) is picked up at the next batch: the file's modification time changes.

    A re-provisioned identity waiting in ``identity.pending()`` is tried first, at most
    every ``PENDING_RETRY_S``: once a batch goes through with it (the cloud took the
    gateway's new certificate) it is promoted and used from then on; until then, batches
    go with the current identity, so a wrong host or token never cuts the gateway off.
    """

    PENDING_RETRY_S: float = 30.0

    def __init__(
        self, *, base_url: str, identity: Identity, timeout_s: float, compress: bool = False
    ) -> None:
        self._base_url = base_url
        self._identity = identity
        self._timeout_s = timeout_s
        self._compress = compress
        self._inner: HttpTransport | None = None
        self._loaded_ns: int | None = None
        self._pending_at = 0.0  # monotonic; no try of a pending identity before this
        self.pending_error: str | None = None
        """Why the waiting re-provisioned identity failed its last try (None: none)."""

    @property
    def bytes_sent(self) -> int:
        """Request body bytes sent over the current certificate's connections."""
        return 0 if self._inner is None else self._inner.bytes_sent

    async def _current(self) -> HttpTransport:
        identity = self._identity
        identity.recover()
        if not identity.provisioned:
            raise TransportError(
                f"gateway {identity.gateway_id} is not provisioned yet: run 'ldt gw provision'"
                " (or POST /provision on the local API); readings wait in the buffer"
            )
        try:
            stamp = identity.cert_path.stat().st_mtime_ns
            if self._inner is None or stamp != self._loaded_ns:
                tls = client_context(identity)
                old, self._inner = (
                    self._inner,
                    HttpTransport(
                        base_url=self._base_url,
                        token=None,
                        timeout_s=self._timeout_s,
                        tls=tls,
                        compress=self._compress,
                    ),
                )
                self._loaded_ns = stamp
                if old is not None:
                    await old.aclose()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TransportError(f"cannot use the identity in {identity.folder}: {exc}") from exc
        return self._inner

    async def send(self, body: bytes) -> BatchAck:
        """POST one batch over mutual TLS (see ``HttpTransport.send``)."""
        pending = self._identity.pending()
        if pending.provisioned and time.monotonic() >= self._pending_at:
            ack = await self._try_pending(pending, body)
            if ack is not None:
                return ack
        return await (await self._current()).send(body)

    async def _try_pending(self, pending: Identity, body: bytes) -> BatchAck | None:
        """``body`` sent with the re-provisioned identity; promoted if the cloud took it.
        None when it failed (the current identity sends instead)."""
        self._pending_at = time.monotonic() + self.PENDING_RETRY_S
        try:
            trial = HttpTransport(
                base_url=self._base_url,
                token=None,
                timeout_s=self._timeout_s,
                tls=client_context(pending),
                compress=self._compress,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._pending_failed(f"cannot use it: {exc}")
            return None
        try:
            ack = await trial.send(body)
        except TransportRejectedError as exc:
            if exc.status in (401, 403):
                self._pending_failed(f"the cloud refused it ({exc.status}): {exc.detail}")
                return None
            self._promote()  # it was authenticated; the data is the uplink's business
            raise
        except TransportError as exc:
            self._pending_failed(str(exc))
            return None
        finally:
            await trial.aclose()
        self._promote()
        return ack

    def _pending_failed(self, why: str) -> None:
        if why != self.pending_error:
            _log.warning(
                "re-provisioned identity not used yet: the current one keeps syncing",
                extra={"reason": why, "retry_s": self.PENDING_RETRY_S},
            )
        self.pending_error = why

    def _promote(self) -> None:
        self._identity.promote()
        self._loaded_ns = None  # the next batch loads the new certificate
        self.pending_error = None
        _log.warning("re-provisioned identity synced: it is the gateway's identity now")

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._inner is not None:
            await self._inner.aclose()
            self._inner = None
