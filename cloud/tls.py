"""The cloud's TLS listener: TLS 1.3 only, client certificates from our CA, seen by the app.

- The server context accepts TLS 1.3 only (no downgrade to 1.2 ciphers to audit) and asks
  every client for a certificate, verified by OpenSSL against our CA: a self-signed, foreign
  or expired one fails the handshake. It is *optional* at the TLS level because two things
  must work without one: a gateway being provisioned (it has no certificate yet) and the
  admin API. The routes that need a gateway (ingest, renewal) refuse requests without one
  (``ldt.cloud.pki.registry``), and check revocation, which TLS cannot know about.
- uvicorn does not pass the peer certificate to the app, so ``TlsHttpToolsProtocol`` puts it
  in the ASGI scope the way the ASGI TLS extension names it
  (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM, leaf first).
- A handshake that fails never reaches the app, and asyncio does not log it; the context's
  message callback logs each TLS alert the server sends (``unknown_ca``,
  ``certificate_expired``...) so refused connections are on record.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["TlsHttpToolsProtocol", "client_cert_pem", "server_context"]

_log = logging.getLogger("ldt.cloud.tls")


def _log_alerts(*message: Any) -> None:
    """``SSLContext._msg_callback``: log alerts this server sends (a refused handshake).

    Called as (connection, direction, version, content type, message type, data).
    """
    _conn, direction, _version, content_type, _msg_type, data = message
    if direction != "write" or content_type != ssl._TLSContentType.ALERT or len(data) < 2:  # type: ignore[attr-defined]
        return
    try:
        description = ssl._TLSAlertType(data[1]).name.lower()  # type: ignore[attr-defined]
    except ValueError:
        description = f"alert {data[1]}"
    if description == "close_notify":
        return
    _log.warning("TLS connection refused: %s", description, extra={"tls_alert": description})


def server_context(*, cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """The listener's context: TLS 1.3, our certificate, client certificates from ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if hasattr(ctx, "_msg_callback"):  # CPython's hook for TLS messages; absent elsewhere
        ctx._msg_callback = _log_alerts
    return ctx


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, adding the client certificate to each request's scope."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            self._tls = None
            return
        der = ssl_object.getpeercert(binary_form=True)
        self._tls = {
            "client_cert_chain": [] if der is None else [ssl.DER_cert_to_PEM_cert(der)],
            "tls_version": ssl_object.version(),
        }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]


def client_cert_pem(scope: Any) -> str | None:
    """The request's verified client certificate (PEM), or None (plain HTTP or none sent)."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return str(chain[0]) if chain else None
