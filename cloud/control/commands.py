"""Commands from the NGSI-LD API to a gateway's devices, the way FIWARE IoT Agents do it.

A gateway declares which attributes of its entities are commands (its writable points,
``ControlSync.command_points``). An NGSI-LD update of such an attribute, through any entity
write of the API, creates a command for that gateway and sets ``<attr>_status`` to PENDING on
the entity; the gateway gets it on its next control exchange (a long poll, so within a round
trip), writes the point through its driver and answers OK or ERROR with ``<attr>_info``
(the result or the reason). A command not executed by its expiry (``expiresAt``
sub-property, default ``DEFAULT_TTL_S``) ends EXPIRED, on the gateway (it checks before
writing) or here (a gateway that never fetched it, or never answered). Subscriptions see
every status change: they are entity writes like any other.

Only the gateway that owns an entity may declare commands on it (entities it has not
created yet included); an update of any other attribute stays data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from ldt.cloud.access.current import actor
from ldt.cloud.control.audit import AuditLog
from ldt.cloud.errors import CloudError, OwnershipError
from ldt.cloud.ngsild import entity_ops as ops
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.subscriptions import Change
from ldt.cloud.ngsild.timestamps import iso_ms, parse_iso_ms
from ldt.cloud.service.ingest import namespaced
from ldt.cloud.store.base import Store
from ldt.contract.control import CommandOrder, CommandResult

__all__ = ["DEFAULT_TTL_S", "CommandService", "list_commands"]

_log = logging.getLogger("ldt.cloud.commands")

DEFAULT_TTL_S: Final = 60.0
MAX_TTL_S: Final = 3600.0
"""The latest ``expiresAt`` a command may carry (``CommandService(max_ttl_s=...)``): a
command that waits days for an offline gateway would move a pump when nobody expects it."""
ANSWER_GRACE_S: Final = 30.0
"""A delivered command is declared EXPIRED this long after its expiry without an answer."""
POINTS_REFRESH_S: Final = 5.0
"""How stale the in-memory map of command attributes may get (another broker's changes)."""


def _ms() -> int:
    return int(time.time() * 1000)


def _command_value(attr: Any) -> tuple[Any, int | None]:
    """The value an attribute instance commands, and its ``expiresAt`` (ms) if it has one."""
    instance = attr[0] if isinstance(attr, list) and attr else attr
    if not isinstance(instance, Mapping):
        return None, None
    value = instance.get("value")
    expires = instance.get("expiresAt")
    expires_ms = None
    if isinstance(expires, Mapping):
        raw = expires.get("value")
        if isinstance(raw, Mapping):
            raw = raw.get("@value")
        expires_ms = parse_iso_ms(raw) if isinstance(raw, str) else None
    return value, expires_ms


class CommandService:
    """Creates, hands out and settles commands; ``observe`` is the NGSI-LD write hook."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        audit: AuditLog,
        *,
        default_ttl_s: float = DEFAULT_TTL_S,
        max_ttl_s: float = MAX_TTL_S,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.audit = audit
        self.default_ttl_s = min(default_ttl_s, max_ttl_s)
        self.max_ttl_s = max_ttl_s
        self._points: dict[str, dict[str, str]] = {}
        self._points_at = 0.0
        self._wake: dict[str, asyncio.Event] = {}
        self.closing = asyncio.Event()

    # --- what gateways declare ------------------------------------------------------------
    async def _load_points(self, *, force: bool = False) -> dict[str, dict[str, str]]:
        now = time.monotonic()
        if force or now - self._points_at > POINTS_REFRESH_S:
            points: dict[str, dict[str, str]] = {}
            for point in await self.store.control.command_points():
                points.setdefault(point.entity_id, {})[point.attr] = point.gateway_id
            self._points, self._points_at = points, now
        return self._points

    async def declare(self, gateway_id: str, points: Mapping[str, Sequence[str]]) -> None:
        """Replace ``gateway_id``'s command attributes; ``CloudError`` for an entity that is
        not the gateway's (``OwnershipError``), or a new one outside its id space."""
        outside = sorted(e for e in points if not namespaced(e, gateway_id))
        if outside:
            existing = {e for e in outside if await self.store.entities.get(e) is not None}
            missing = [e for e in outside if e not in existing]
            if missing:
                _log.warning(
                    "command points refused: outside the gateway's id space",
                    extra={"gateway": gateway_id, "entity": missing[0]},
                )
                raise CloudError(
                    f"entity {missing[0]} is not in gateway {gateway_id}'s id space"
                    f" (':{gateway_id}:'): an admin creates and assigns it first"
                )
        try:
            changed = await self.store.control.declare_command_points(gateway_id, points)
        except OwnershipError as exc:
            _log.warning(
                "command points refused: entity of another gateway",
                extra={"gateway": gateway_id, "entity": exc.entity_id},
            )
            raise CloudError(str(exc)) from None
        await self._load_points(force=True)
        if not changed:
            return
        await self.audit.record(
            "commands.declare",
            gateway_id,
            {"points": sorted({f"{e}/{a}" for e, attrs in points.items() for a in attrs})},
            gateway_id=gateway_id,
            origin="gateway",
        )

    # --- the NGSI-LD write hook -------------------------------------------------------------
    async def observe(self, changes: Sequence[Change]) -> None:
        """Committed entity writes: an updated command attribute becomes a command."""
        points = await self._load_points()
        if not points:
            return
        for old, new in changes:
            if new is None:
                continue
            entity_id = str(new.get("id"))
            commands = points.get(entity_id)
            if not commands:
                continue
            before = old or {}
            for attr, gateway_id in commands.items():
                if attr in new and new[attr] != before.get(attr):
                    await self._create(gateway_id, entity_id, attr, new[attr])

    async def _create(self, gateway_id: str, entity_id: str, attr: str, instance: Any) -> None:
        value, expires_ms = _command_value(instance)
        by = actor()
        now = _ms()
        latest = now + int(self.max_ttl_s * 1000)
        if expires_ms is not None and expires_ms > latest:
            _log.warning(
                "command expiresAt cut to the maximum",
                extra={"entity": entity_id, "attr": attr, "max_ttl_s": self.max_ttl_s},
            )
        expires_ms = min(expires_ms or now + int(self.default_ttl_s * 1000), latest)
        command_id = f"urn:ngsi-ld:Command:{uuid.uuid4()}"
        await self.store.control.add_command(
            command_id,
            gateway_id=gateway_id,
            entity_id=entity_id,
            attr=attr,
            value=value,
            created_at_ms=now,
            expires_at_ms=expires_ms,
            issued_by=by,
        )
        detail = {"entity": entity_id, "attr": attr, "value": value, "expires_at_ms": expires_ms}
        await self.audit.record(
            "command.create",
            command_id,
            detail if by is None else {**detail, "by": by},
            gateway_id=gateway_id,
        )
        if isinstance(value, bool | int | float | str) and expires_ms > now:
            await self._show(entity_id, attr, "PENDING", "")
            self._wake.setdefault(gateway_id, asyncio.Event()).set()
            return
        reason = (
            "the command expired before it was sent"
            if expires_ms <= now
            else "a command value must be a number, a boolean or a text"
        )
        status = "EXPIRED" if expires_ms <= now else "ERROR"
        await self.store.control.settle_command(
            command_id, gateway_id, status=status, info=reason, at_ms=now
        )
        await self._show(entity_id, attr, status, reason)

    async def _show(self, entity_id: str, attr: str, status: str, info: str) -> None:
        """``<attr>_status`` and ``<attr>_info`` on the entity (subscriptions see them)."""
        now = iso_ms(_ms())
        fragment = {
            f"{attr}_status": {"type": "Property", "value": status, "observedAt": now},
            f"{attr}_info": {"type": "Property", "value": info or status, "observedAt": now},
        }
        results = await self.notifier.write_entities(
            [(entity_id, ops.merge_entity(entity_id, fragment, now))]
        )
        for outcome in results:
            if not isinstance(outcome, str):
                _log.warning(
                    "command status not shown on the entity",
                    extra={"entity": entity_id, "attr": attr, "reason": str(outcome)},
                )

    # --- the gateway's side ------------------------------------------------------------------
    async def expire(self) -> int:
        """Settle commands past their expiry as EXPIRED; how many."""
        now = _ms()
        expired = await self.store.control.expire_commands(
            now_ms=now, answer_grace_ms=int(ANSWER_GRACE_S * 1000)
        )
        for command in expired:
            await self._show(command.entity_id, command.attr, "EXPIRED", "expired before execution")
            await self.audit.record(
                "command.expired", command.id, {}, gateway_id=command.gateway_id
            )
        return len(expired)

    async def take(
        self,
        gateway_id: str,
        wait_s: float = 0,
        gone: Callable[[], Awaitable[bool]] | None = None,
        news: Callable[[], Awaitable[bool]] | None = None,
        version: int = 1,
    ) -> list[CommandOrder]:
        """The gateway's pending commands (marked DELIVERED), waiting up to ``wait_s`` for one.

        ``gone`` tells whether the gateway has hung up (a stopped agent's long poll): its
        commands then stay PENDING for its next connection instead of being handed to a
        closed socket. ``news`` ends the wait early with no command (the gateway's
        assignments changed: it should fetch now, not at the end of its long poll).
        """
        deadline = time.monotonic() + wait_s
        event = self._wake.setdefault(gateway_id, asyncio.Event())
        while True:
            event.clear()
            await self.expire()
            if gone is not None and await gone():
                return []
            now = _ms()
            delivered = await self.store.control.deliver_commands(gateway_id, now_ms=now)
            if delivered:
                orders = [
                    CommandOrder(
                        id=c.id,
                        entity_id=c.entity_id,
                        attr=c.attr,
                        value=c.value,
                        expires_at_ms=c.expires_at_ms,
                        by=c.issued_by if version >= 2 else None,
                    )
                    for c in delivered
                ]
                for order in orders:
                    await self.audit.record(
                        "command.delivered", order.id, {}, gateway_id=gateway_id
                    )
                    await self._show(order.entity_id, order.attr, "DELIVERED", "")
                return orders
            left = deadline - time.monotonic()
            if left <= 0 or self.closing.is_set() or (news is not None and await news()):
                return []
            # woken by a command created here; polled for one created by another broker
            closing = asyncio.ensure_future(self.closing.wait())
            woken = asyncio.ensure_future(event.wait())
            try:
                await asyncio.wait(
                    {closing, woken}, timeout=min(left, 1.0), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                closing.cancel()
                woken.cancel()

    async def settle(self, gateway_id: str, result: CommandResult) -> bool:
        """Record a gateway's result; False if the command is unknown, foreign or settled."""
        settled = await self.store.control.settle_command(
            result.id, gateway_id, status=result.status, info=result.info, at_ms=_ms()
        )
        if settled is None:
            return False
        entity_id, attr = settled.entity_id, settled.attr
        await self._show(entity_id, attr, result.status, result.info or "")
        await self.audit.record(
            f"command.{result.status.lower()}",
            result.id,
            {"entity": entity_id, "attr": attr, "info": result.info, "at_ms": result.at_ms},
            gateway_id=gateway_id,
            origin="gateway",
        )
        return True

    async def commands(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest commands (``list_commands``)."""
        return await list_commands(self.store, limit)


async def list_commands(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """The newest commands with their status, for the CLI and the admin API."""
    return [dataclasses.asdict(c) for c in await store.control.commands(limit)]
