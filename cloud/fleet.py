"""The fleet view: every gateway with last seen, version, backlog, clock and certificate.

Gateways report their status with a batch every few seconds (``GatewayStatus``); the
cloud keeps the latest per gateway, stamped with its own clock. A gateway whose clock
differs from the cloud's by more than ``CLOCK_SKEW_LIMIT_MS`` is logged and shown as
skewed, and its readings are stored with a reason saying so (``flag_skewed``): their
``observedAt`` come from that clock and cannot be trusted for correlation with other
sources until it is fixed (NTP in a street cabinet fails
more often than one would think: no RTC battery, a firewall blocking UDP 123).

``GET /ldt/v1/fleet`` answers the view as JSON to technicians and admins
(``ldt.cloud.access``); ``ldt cloud gateway list`` prints it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission
from ldt.cloud.store.base import Store
from ldt.cloud.store.gateways import GatewayStatusRecord
from ldt.contract import GatewayStatus, IngestBatch

__all__ = [
    "CLOCK_SKEW_LIMIT_MS",
    "GatewayView",
    "clock_skew_ms",
    "flag_skewed",
    "fleet_view",
    "record_status",
    "routes",
]

_log = logging.getLogger("ldt.cloud.fleet")

CLOCK_SKEW_LIMIT_MS = 60_000


@dataclass(frozen=True, slots=True)
class GatewayView:
    """One line of the fleet view (times in Unix ms, None when unknown)."""

    gateway_id: str
    created_at: str
    last_seen_ms: int | None
    agent_version: str | None
    pending: int | None
    backlog_age_s: float | None
    clock_skew_s: float | None
    clock_skewed: bool
    certificate_serial: str | None
    certificate_not_after_ms: int | None
    revoked: bool


async def clock_skew_ms(store: Store, gateway_id: str, status: GatewayStatus | None) -> int:
    """The gateway's clock minus ours: from this batch's status, else the last one known."""
    if status is not None:
        return status.sent_at_ms - int(time.time() * 1000)
    return await store.gateways.clock_skew_ms(gateway_id) or 0


def flag_skewed(batch: IngestBatch, skew_ms: int) -> IngestBatch:
    """The batch with each reading's reason saying its timestamp is suspect, if it is.

    Readings keep their quality (the value was read correctly); the reason, stored with
    every reading, tells whoever correlates them that ``observedAt`` came from a clock that
    was ``skew_ms`` off. A reading that already has a reason keeps it.
    """
    if abs(skew_ms) <= CLOCK_SKEW_LIMIT_MS:
        return batch
    note = f"observedAt from a gateway clock {skew_ms / 1000:+.0f} s off"
    flagged = [(*r[:5], r[5] or note) for r in batch.readings]
    return batch.model_copy(update={"readings": flagged})


async def record_status(store: Store, gateway_id: str, status: GatewayStatus) -> None:
    """Keep a gateway's latest status; log a clock that is off."""
    now = int(time.time() * 1000)
    skew = status.sent_at_ms - now
    if abs(skew) > CLOCK_SKEW_LIMIT_MS:
        _log.warning(
            "gateway clock is off by %.0f s: its timestamps are suspect",
            skew / 1000,
            extra={"gateway": gateway_id, "clock_skew_ms": skew},
        )
    await store.gateways.put_status(
        GatewayStatusRecord(
            gateway_id=gateway_id,
            last_seen_ms=now,
            agent_version=status.agent_version,
            pending=status.pending,
            oldest_pending_ms=status.oldest_pending_ms,
            clock_skew_ms=skew,
        )
    )


async def fleet_view(store: Store) -> list[GatewayView]:
    """Every registered gateway, by id."""
    now = int(time.time() * 1000)
    statuses = {s.gateway_id: s for s in await store.gateways.statuses()}
    # by gateway then issue time: each gateway's newest certificate is the last one
    certs = {c.gateway_id: c for c in await store.gateways.certificates()}
    views = []
    for gw in await store.gateways.all():
        st = statuses.get(gw.id)
        cert = certs.get(gw.id)
        skew = None if st is None else st.clock_skew_ms
        oldest = None if st is None else st.oldest_pending_ms
        views.append(
            GatewayView(
                gateway_id=gw.id,
                created_at=gw.created_at,
                last_seen_ms=None if st is None else st.last_seen_ms,
                agent_version=None if st is None else st.agent_version,
                pending=None if st is None else st.pending,
                backlog_age_s=None if oldest is None else round((now - oldest) / 1000, 1),
                clock_skew_s=None if skew is None else round(skew / 1000, 1),
                clock_skewed=skew is not None and abs(skew) > CLOCK_SKEW_LIMIT_MS,
                certificate_serial=None if cert is None else cert.serial,
                certificate_not_after_ms=None if cert is None else cert.not_after_ms,
                revoked=cert is not None and cert.revoked_at_ms is not None,
            )
        )
    return views


@allow(Permission.FLEET, entities=False)
async def get_fleet(request: Request) -> Response:
    """The fleet view as a JSON array."""
    views = await fleet_view(request.app.state.store)
    return Response(orjson.dumps([asdict(v) for v in views]), media_type="application/json")


routes = [Route("/ldt/v1/fleet", get_fleet, methods=["GET"])]
