"""The technician's API on the gateway: status, live readings, device health, provisioning.

Bound to 127.0.0.1 by default (the technician is on the box, or tunnels to it); on any
other address it needs a credential (``[local_api] credential_file``), sent as
``Authorization: Bearer <secret>``, compared in constant time.

What a web page in the technician's browser must not do (it can reach loopback): a POST
always needs a credential, on loopback too. Without a ``credential_file``, the agent makes
one at start (``DATA/local-api.token``, 0600): whoever can read the gateway's data folder
may change it. POSTs take ``application/json`` only (a form or ``text/plain`` is what a
page can send without asking), a ``Host`` other than the address it listens on is refused
(DNS rebinding), and so is an ``Origin`` other than its own (CSRF). Re-provisioning a
gateway that already has its identity needs ``"force": true``. Every endpoint answers JSON:

- ``GET /status``: gateway id, version, provisioning state and certificate expiry, buffer
  (pending, oldest pending, size) and sync (sent, last error) figures.
- ``GET /readings``: the newest reading of every point of every device.
- ``GET /devices/{id}``: one device's health (connected, counts, last error, last good).
- ``POST /devices/{id}/test``: can the gateway reach the device's address now
  (``reachability``), with its health.
- ``POST /provision`` ``{"host": ..., "token": ...}``: what ``ldt gw provision`` does; the
  agent uses the new certificate at its next start.

Why h11 and not Starlette/uvicorn: the agent must stay small (the 60 MiB budget in the
README), and h11 is already loaded for httpx; the server is one connection, one request,
``Connection: close``, bodies capped at 64 KiB, 10 s to send a request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11
import orjson

from ldt import __version__
from ldt.agent.identity import Identity, IdentityError, provision_or_stage
from ldt.agent.reachability import probe_connection
from ldt.contract import wire_value

if TYPE_CHECKING:
    from ldt.agent.runtime import AgentRuntime

__all__ = ["LocalApi"]

_log = logging.getLogger("ldt.agent.local_api")
_MAX_BODY = 64 << 10
_REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any


class _ClientGoneError(Exception):
    """The client closed the connection before its request was complete."""


def _problem(status: int, detail: str) -> _Answer:
    return _Answer(status, {"status": status, "detail": detail})


class LocalApi:
    """Serves one runtime's view; ``start()`` binds, ``close()`` stops."""

    def __init__(
        self,
        runtime: AgentRuntime,
        *,
        host: str,
        port: int,
        credential: str | None,
        post_credential: str | None = None,
    ) -> None:
        """``credential``: needed by every request (None: reads are open on loopback);
        ``post_credential``: needed by POSTs when ``credential`` is None."""
        self.runtime = runtime
        self.host = host
        self.port = port
        self._credential = credential
        self._post_credential = credential or post_credential
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (``port = 0`` picks a free one)."""
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        _log.info("local API listening", extra={"host": self.host, "port": self.port})
        return self.port

    async def close(self) -> None:
        """Stop listening and wait for the server to close."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # --- HTTP ---------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 << 10)
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                request, body = await self._read_request(conn, reader)
            answer = await self._answer(request, body)
        except TimeoutError:
            answer = _problem(408, "the request did not arrive in time")
        except (h11.RemoteProtocolError, ValueError) as exc:
            answer = _problem(400, f"not a valid HTTP request: {exc}")
        except (ConnectionError, _ClientGoneError):
            writer.close()
            return
        try:
            payload = orjson.dumps(answer.body)
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("Connection", "close"),
            ]
            if answer.status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="ldt-gateway"'))
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                writer.write(conn.send(h11.Response(status_code=answer.status, headers=headers)))
                writer.write(conn.send(h11.Data(data=payload)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
        except (ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read_request(
        conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(16 << 10)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.DONE:
                    raise _ClientGoneError
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    raise ValueError(f"body over {_MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise _ClientGoneError

    @staticmethod
    def _header(request: h11.Request, wanted: bytes) -> str | None:
        for name, value in request.headers:
            if name == wanted:
                return bytes(value).decode("latin-1")
        return None

    def _authorized(self, request: h11.Request, credential: str | None) -> bool:
        if credential is None:
            return True
        scheme, _, secret = (self._header(request, b"authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            secret.strip().encode(), credential.encode()
        )

    def _foreign(self, request: h11.Request) -> str | None:
        """Why a request comes from somewhere it must not (DNS rebinding, CSRF); None: fine."""
        own = {self.host, "127.0.0.1", "localhost", "[::1]", "::1"}
        host = self._header(request, b"host") or ""
        name = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
        if name not in own:
            return f"Host {host[:80]!r} is not this gateway's local API"
        origin = self._header(request, b"origin")
        if origin is not None:
            origin_host = origin.partition("://")[2].partition(":")[0].strip("[]")
            if origin_host not in own:
                return f"Origin {origin[:80]!r} may not call the local API"
        return None

    async def _answer(self, request: h11.Request, body: bytes) -> _Answer:
        method = request.method.decode("ascii", "replace")
        foreign = self._foreign(request)
        if foreign is not None:
            _log.warning("local API request refused", extra={"reason": foreign})
            return _problem(403, foreign)
        credential = self._post_credential if method == "POST" else self._credential
        if not self._authorized(request, credential):
            _log.warning("local API request refused: no or wrong credential")
            where = "" if self._credential else " (on this gateway: DATA/local-api.token)"
            return _problem(
                401, f"send the local API credential as 'Authorization: Bearer ...'{where}"
            )
        if method == "POST":
            kind = (self._header(request, b"content-type") or "").partition(";")[0].strip()
            if kind.lower() != "application/json":
                return _problem(415, "POST bodies are application/json")
        path = request.target.decode("ascii", "replace").split("?", 1)[0]
        if method == "GET" and path == "/status":
            return await self._status()
        if method == "GET" and path == "/readings":
            return _Answer(200, self._readings())
        if method == "GET" and path.startswith("/devices/"):
            return self._device(path.removeprefix("/devices/"))
        if method == "POST" and path == "/provision":
            return await self._provision(body)
        if method == "POST" and path.startswith("/devices/") and path.endswith("/test"):
            return await self._test(path.removeprefix("/devices/").removesuffix("/test"))
        if path in {"/status", "/readings", "/provision"} or path.startswith("/devices/"):
            return _problem(405, f"{method} is not allowed on {path}")
        return _problem(404, f"no such endpoint: {path}")

    # --- endpoints ----------------------------------------------------------------------

    def _identity(self) -> Identity:
        gw = self.runtime.config.gateway
        return Identity.of(gw.data_dir, gw.id)

    async def _status(self) -> _Answer:
        rt = self.runtime
        identity = self._identity()
        cert_expires = None
        if identity.provisioned:
            try:
                cert_expires = identity.certificate().not_valid_after_utc.isoformat()
            except IdentityError:
                cert_expires = None
        buffer = None
        if rt.buffer is not None:
            stats = await rt.buffer.stats()
            buffer = {
                "pending": stats.pending,
                "oldest_pending_ms": stats.oldest_pending_ms,
                "db_bytes": stats.db_bytes,
                "dropped": stats.dropped_full + stats.dropped_age,
            }
        up = rt.uplink.stats if rt.uplink is not None else None
        return _Answer(
            200,
            {
                "gateway_id": rt.config.gateway.id,
                "version": __version__,
                "cloud": rt.config.cloud.url,
                "provisioned": identity.provisioned,
                "certificate_expires": cert_expires,
                "buffer": buffer,
                "sync": None
                if up is None
                else {
                    "readings_sent": up.readings_sent,
                    "last_error": up.last_error,
                    "last_success_ms": up.last_success_ms,
                },
                "devices": {d.device_id: d.health.connected for d in rt.devices},
                "control": rt.edge.status() if rt.edge is not None else None,
            },
        )

    def _readings(self) -> dict[str, Any]:
        return {
            d.device_id: {
                point: {
                    "value": wire_value(r.value),
                    "quality": str(r.quality),
                    "observed_at_ms": r.observed_at_ms,
                    "reason": r.reason,
                }
                for point, r in sorted(d.health.latest.items())
            }
            for d in self.runtime.devices
        }

    def _device(self, device_id: str) -> _Answer:
        for d in self.runtime.devices:
            if d.device_id == device_id:
                h = d.health
                return _Answer(
                    200,
                    {
                        "device_id": device_id,
                        "connected": h.connected,
                        "polls": h.polls,
                        "good": h.good,
                        "bad": h.bad,
                        "stale": h.stale,
                        "last_good_ms": h.last_good_ms,
                        "last_error": h.last_error,
                        "task_restarts": h.task_restarts,
                    },
                )
        return _problem(404, f"no device {device_id!r} on this gateway")

    async def _test(self, device_id: str) -> _Answer:
        for dev in self.runtime.config.devices:
            if dev.id == device_id:
                found = await probe_connection(dev.connection)
                health = self._device(device_id).body
                return _Answer(200, {"device_id": device_id, "path": found, "health": health})
        return _problem(404, f"no device {device_id!r} on this gateway")

    async def _provision(self, body: bytes) -> _Answer:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _problem(400, f"the body is not JSON: {exc}")
        if not isinstance(request, dict):
            return _problem(400, "the body must be an object with host and token")
        host, token = request.get("host"), request.get("token")
        if not isinstance(host, str) or not isinstance(token, str):
            return _problem(400, "host and token must be strings")
        identity = self._identity()
        if identity.provisioned and request.get("force") is not True:
            return _problem(
                409,
                "this gateway is provisioned already: re-provisioning replaces its identity,"
                ' pinned CA and signing key; send "force": true to do it',
            )
        try:  # a provisioned gateway syncs with its identity until the new one synced once
            expires, again = await provision_or_stage(host, token, identity)
        except IdentityError as exc:
            return _problem(502 if "cannot reach" in str(exc) else 400, str(exc))
        _log.info(
            "provisioned through the local API",
            extra={"valid_until": expires, "pending": again},
        )
        answer: dict[str, object] = {"provisioned": True, "certificate_expires": expires}
        if again:
            answer["pending"] = (
                "the new identity replaces the current one after its first successful sync;"
                " until then the gateway keeps syncing with the current one"
            )
        return _Answer(200, answer)
