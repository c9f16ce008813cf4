"""One notification endpoint's pending notifications: order, concurrency and coalescing.

``Notifier`` keeps one ``EndpointQueue`` per endpoint URI and a few worker tasks taking
from it, so a few requests are in flight per endpoint (keep-alive connections of one
shared HTTP client) while a slow endpoint still only ever delays its own notifications.

Order: notifications of one subscription about one entity leave in the order of the
changes. A worker takes the oldest pending notification none of whose (subscription,
entity) keys is in flight or held by an older pending one it skipped; with several in
flight a receiver could otherwise see an entity's older state after its newer one.

A full queue (``limit`` notifications) is coalesced rather than dropped: every pending
notification of one subscription becomes one, at the place of the oldest, carrying the
latest rendered state of each entity (v1.9 5.3.1 lets a notification carry the entities'
current state; a receiver of the latest state of every changed entity has missed no
change, only intermediate values). Backpressure was the alternative and was rejected:
holding the write path until the endpoint catches up would let one slow receiver delay
every client's writes and every other endpoint. Only when the queue is still full after
coalescing (more subscriptions sharing the endpoint than ``limit``) is the notification
dropped; ``put`` returns it so the notifier counts it as failed and logs it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ldt.cloud.ngsild.subscriptions import Matcher

__all__ = ["EndpointQueue", "Pending"]

_SCAN: Final = 64
"""Pending notifications a free worker looks through for one it may send now."""

Key = tuple[str, str]
"""(subscription id, entity id): changes with one key are notified in order."""


@dataclass(slots=True, eq=False)
class Pending:
    """One notification waiting for (or in) delivery, its entities already rendered.

    The envelope (id, ``notifiedAt``) is made at its first attempt and kept for retries,
    so a receiver sees a retried notification as the same one.
    """

    matcher: Matcher
    uri: str
    headers: dict[str, str]
    timeout_s: float
    context: Any
    """The ``@context`` a JSON-LD notification and its entities carry; None for JSON."""
    data: list[dict[str, Any]]
    keys: frozenset[Key]
    options: tuple[tuple[str, str], ...] = ()
    """``notifierInfo`` pairs (MQTT-Version, MQTT-QoS)."""
    merged: int = 1
    """How many notifications this one stands for (more than 1 once coalesced)."""
    body: bytes | None = field(default=None, repr=False)

    @property
    def subscription_id(self) -> str:
        return self.matcher.id

    def joins(self, other: Pending) -> bool:
        """Whether ``other`` can be merged into this one: the same subscription, unchanged
        (the notifier compiles subscriptions again after every reload), the same shape."""
        return (
            self.body is None
            and other.body is None
            and (self.matcher is other.matcher or self.matcher.doc == other.matcher.doc)
            and self.headers == other.headers
            and self.context == other.context
            and self.timeout_s == other.timeout_s
            and self.options == other.options
        )

    def absorb(self, later: Pending) -> None:
        """Take ``later``'s entities in: each entity once, in its latest state."""
        shown: dict[Hashable, dict[str, Any]] = {_entity_key(e): e for e in self.data}
        for entity in later.data:
            shown[_entity_key(entity)] = entity
        self.data = list(shown.values())
        self.keys = self.keys | later.keys
        self.merged += later.merged


def _entity_key(entity: dict[str, Any]) -> Hashable:
    eid = entity.get("id")
    return eid if isinstance(eid, str) else id(entity)


def keys_of(subscription_id: str, entity_ids: Iterable[str]) -> frozenset[Key]:
    """The ordering keys of a notification about ``entity_ids``."""
    return frozenset((subscription_id, eid) for eid in entity_ids)


class EndpointQueue:
    """Pending notifications of one endpoint and the keys of those in flight."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.pending: deque[Pending] = deque()
        self.in_flight: set[Key] = set()
        self.coalesced = 0
        """Notifications merged into others since the queue was made (for logs, tests)."""
        self.coalescings = 0
        """Times the full queue was coalesced (the notifier logs each)."""

    def __len__(self) -> int:
        return len(self.pending)

    def put(self, item: Pending) -> Pending | None:
        """Queue ``item``; returns it if it could be neither queued nor coalesced."""
        if len(self.pending) >= self.limit:
            self._coalesce()
        if len(self.pending) < self.limit:
            self.pending.append(item)
            return None
        for older in reversed(self.pending):  # the newest of its subscription
            if older.subscription_id == item.subscription_id:
                if older.joins(item):
                    older.absorb(item)
                    self.coalesced += item.merged
                    return None
                break
        return item

    def take(self) -> Pending | None:
        """The oldest notification that may be sent now (its keys then count as in flight)."""
        skipped: set[Key] = set()
        for index, item in enumerate(self.pending):
            if index >= _SCAN:
                break
            if item.keys.isdisjoint(self.in_flight) and item.keys.isdisjoint(skipped):
                del self.pending[index]
                self.in_flight |= item.keys
                return item
            skipped |= item.keys
        return None

    def done(self, item: Pending) -> None:
        """``item`` is delivered or given up: later changes of its entities may go."""
        self.in_flight -= item.keys

    def _coalesce(self) -> None:
        """Merge every pending notification into the newest earlier one it joins.

        Only notifications of one subscription merge, and only into the latest of that
        subscription before them, so no notification of that subscription sits between
        the two and no entity's changes are reordered.
        """
        self.coalescings += 1
        heads: dict[str, Pending] = {}
        kept: deque[Pending] = deque()
        for item in self.pending:
            head = heads.get(item.subscription_id)
            if head is not None and head.joins(item):
                head.absorb(item)
                self.coalesced += item.merged
                continue
            heads[item.subscription_id] = item
            kept.append(item)
        self.pending = kept
