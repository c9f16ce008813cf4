"""The cloud's control plane: catalogue, commands, alerts and audit behind one exchange.

Built by ``running_cloud`` when it serves TLS (gateways authenticate with their
certificates, and artifacts are signed by the CA folder's key). ``sync`` answers a gateway's
``ControlSync``: it records what the gateway reports (command points, results, audit lines,
alerts), then answers with its assignments and any pending command, waiting for one up to
the gateway's ``wait_s`` (``ldt.contract.control``).

The people's side (``ldt cloud models|rules|commands|audit`` and ``/ldt/v1/catalogue``)
follows the roles of ``ldt.cloud.access``: a gateway's certificate never authorises an
upload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ldt.cloud.control.alerts import AlertService
from ldt.cloud.control.audit import AuditLog
from ldt.cloud.control.catalogue import Catalogue
from ldt.cloud.control.commands import CommandService
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.store.base import Store
from ldt.contract.control import Assignment, ControlAnswer, ControlSync

__all__ = ["ControlPlane"]

_log = logging.getLogger("ldt.cloud.control")


@dataclass
class ControlPlane:
    """Everything ``/ldt/v1/control`` and the admin API need."""

    audit: AuditLog
    catalogue: Catalogue
    commands: CommandService
    alerts: AlertService

    @classmethod
    def build(cls, store: Store, notifier: Notifier, artifacts: ArtifactService) -> ControlPlane:
        """Wire the services and hook commands into the NGSI-LD write path."""
        audit = AuditLog(store)
        plane = cls(
            audit=audit,
            catalogue=Catalogue(store, artifacts, audit),
            commands=CommandService(store, notifier, audit),
            alerts=AlertService(notifier),
        )
        notifier.observers.append(plane.commands.observe)
        return plane

    def close(self) -> None:
        """Release waiting long polls (the server is stopping)."""
        self.commands.closing.set()

    async def sweep_forever(self, every_s: float = 5.0) -> None:
        """Expire overdue commands even when no gateway is talking (until cancelled)."""
        while not self.commands.closing.is_set():
            try:
                await self.commands.expire()
            except Exception:  # noqa: BLE001 - a store hiccup: try again next round
                _log.exception("command expiry sweep failed")
            await asyncio.sleep(every_s)

    async def sync(
        self,
        gateway_id: str,
        message: ControlSync,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> ControlAnswer:
        """One exchange with ``gateway_id`` (authenticated by the caller).

        ``gone``: whether the gateway hung up meanwhile (see ``CommandService.take``).
        """
        if message.command_points is not None:
            await self.commands.declare(gateway_id, message.command_points)
        for result in message.results:
            if not await self.commands.settle(gateway_id, result):
                _log.info(
                    "command result ignored (unknown, another gateway's, or settled)",
                    extra={"gateway": gateway_id, "command": result.id},
                )
        for event in message.audit:
            await self.audit.record(
                event.action,
                event.subject,
                event.detail,
                gateway_id=gateway_id,
                origin="gateway",
                at_ms=event.at_ms,
            )
        for alert in message.alerts:
            await self.alerts.apply(gateway_id, alert)
        assignments = await self._assignments(gateway_id)

        async def news() -> bool:
            # checked about once a second while the gateway waits: a publish by the CLI or
            # another broker reaches it within a second, not at the end of its long poll
            return await self._assignments(gateway_id) != assignments

        orders = await self.commands.take(gateway_id, message.wait_s, gone, news, version=message.v)
        if not orders:
            assignments = await self._assignments(gateway_id)
        return ControlAnswer(assignments=assignments, commands=orders)

    async def _assignments(self, gateway_id: str) -> list[Assignment]:
        assigned = await self.catalogue.store.control.assigned_to(gateway_id)
        return [
            Assignment.model_validate({"kind": a.kind, "name": a.name, "version": a.version})
            for a in assigned
            if a.version is not None
        ]
