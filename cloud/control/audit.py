"""The cloud's audit log: who asked for what to happen on which gateway, and what did.

Every command (sent, delivered, settled), every catalogue change (published, assigned,
rolled back) and every rule firing or command a gateway reports lands here, so "why did the
pump start at 03:12" has one place to look on each side (the gateway keeps its own,
``ldt.agent.control.audit``). Rows are only appended.
"""

from __future__ import annotations

import time
from typing import Any

from ldt.cloud.store.base import Store
from ldt.cloud.store.control import AuditEntry

__all__ = ["AuditEntry", "AuditLog"]


class AuditLog:
    """Append and read audit lines in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(
        self,
        action: str,
        subject: str,
        detail: dict[str, Any] | None = None,
        *,
        gateway_id: str | None = None,
        origin: str = "cloud",
        at_ms: int | None = None,
    ) -> None:
        """Append one line (``at_ms`` defaults to now)."""
        at = int(time.time() * 1000) if at_ms is None else at_ms
        await self.store.control.add_audit(
            AuditEntry(at, origin, gateway_id, action, subject, detail or {})
        )

    async def entries(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` lines, newest first."""
        return await self.store.control.audit(limit)
