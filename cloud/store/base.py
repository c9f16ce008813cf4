"""The storage interface the cloud is written against (SQLite today, PostgreSQL later).

A store keeps three things: registered gateways (only the SHA-256 of each
token), the append-only reading history keyed by (gateway, seq), and the
current NGSI-LD entities. Every method is async; implementations keep blocking
work off the event loop. Entity documents are normalized NGSI-LD without
``@context`` (terms are the core context's short names).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from ldt.cloud.store.temporal import TemporalRepository
from ldt.contract import IngestBatch

if TYPE_CHECKING:
    from ldt.cloud.ngsild.entity_query import EntityQuery
    from ldt.cloud.ngsild.problems import NgsiLdError
    from ldt.cloud.store.database import Database
    from ldt.cloud.store.purge_sql import Purge

__all__ = [
    "Entity",
    "EntityChange",
    "GatewayRecord",
    "HistoryRow",
    "IngestResult",
    "NotificationCounts",
    "Store",
    "SubscriptionRecord",
    "TypeAttributeCount",
    "WriteOutcome",
]

Entity = dict[str, Any]
"""A normalized NGSI-LD entity: ``{"id": ..., "type": ..., attr: {"type": "Property", ...}}``."""

EntityChange = Callable[[Entity | None], Entity | None]
"""A pure change of one entity: its current document (None: absent) -> new one (None: delete)."""

WriteOutcome = Literal["created", "updated", "deleted", "unchanged"]
"""What ``Store.write_entities`` did with one change."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one committed batch changed: new readings, replayed ones, highest seq seen."""

    accepted: int
    duplicates: int
    max_seq: int


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """A registered gateway; ``created_at`` is ISO 8601 UTC."""

    id: str
    created_at: str


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One stored reading of one attribute, as the gateway sent it."""

    gateway_id: str
    seq: int
    observed_at_ms: int
    value: bool | int | float | str | None
    quality: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class TypeAttributeCount:
    """How many entities of ``entity_type`` have ``attribute`` of ``attribute_type``.

    ``attribute`` is None on the row counting all entities of the type. Names are as stored.
    """

    entity_type: str
    attribute: str | None
    attribute_type: str | None
    entities: int


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """A stored NGSI-LD subscription (``ldt.cloud.ngsild.subscriptions``) and its counters.

    Counters are kept apart from the document so that a delivery never rewrites (and never
    races with) a client's PATCH; times are ISO 8601 UTC.
    """

    doc: dict[str, Any]
    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationCounts:
    """What one broker process counted for one subscription since its last flush.

    ``Store.record_notifications`` adds the counts to the stored ones and keeps the later
    of each time (ISO 8601 UTC, so later sorts higher), so several processes sharing one
    database add up instead of overwriting each other.
    """

    sub_id: str
    sent: int = 0
    """Attempts made (``timesSent``; ``last_notification`` is the last one's time)."""
    failed: int = 0
    """Attempts that failed or notifications dropped (``timesFailed``)."""
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None


class Store(abc.ABC):
    """Async storage for gateways, reading history and entities.

    Use as ``async with store:`` (opens and closes it). Every method may raise
    ``StoreError``; nothing else escapes. ``db`` runs the SQL (``database``); the
    repositories written once over it hang off the store as attributes.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.temporal = TemporalRepository(db)
        """The temporal representation (attribute-instance history)."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Create or migrate the schema and get ready; idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending work and release files and threads."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # gateways -------------------------------------------------------------
    @abc.abstractmethod
    async def add_gateway(self, gateway_id: str, token_sha256: bytes, *, rotate: bool) -> None:
        """Register a gateway, or replace its token hash when ``rotate``.

        Raises ``GatewayExistsError`` if it exists and ``rotate`` is false.
        """

    @abc.abstractmethod
    async def gateways(self) -> list[GatewayRecord]:
        """All registered gateways, by id."""

    @abc.abstractmethod
    async def gateway_for_token(self, token_sha256: bytes) -> str | None:
        """The gateway whose token hashes to ``token_sha256``, or None (constant-time compare)."""

    @abc.abstractmethod
    async def pki_query(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one of ``pki_sql``'s statements (by name) in its own transaction.

        Returns the rows it produced (``RETURNING`` or ``SELECT``); the provisioning
        logic over it is ``ldt.cloud.pki.registry``, the same for every store.
        """

    # ingest ---------------------------------------------------------------
    @abc.abstractmethod
    async def ingest(self, gateway_id: str, batch: IngestBatch) -> IngestResult:
        """Apply one batch in one transaction; returns only after it is committed.

        Readings already held (same gateway and seq) are counted as duplicates
        and change nothing. Raises ``OwnershipError`` (nothing written) if the
        batch touches an entity another gateway owns.
        """

    @abc.abstractmethod
    async def reading_count(self, gateway_id: str) -> int:
        """How many readings of this gateway are stored."""

    @abc.abstractmethod
    async def seqs(self, gateway_id: str) -> list[int]:
        """The stored seqs of this gateway, ascending (for exactly-once checks)."""

    @abc.abstractmethod
    async def history(self, entity_id: str, attr: str) -> list[HistoryRow]:
        """Every stored reading of one attribute, oldest first (observed time, then seq)."""

    # entities -------------------------------------------------------------
    @abc.abstractmethod
    async def get_entity(self, entity_id: str) -> Entity | None:
        """The entity, or None."""

    @abc.abstractmethod
    async def query_entities(
        self,
        *,
        types: Sequence[str] | None,
        ids: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Entity], int]:
        """Entities matching any of ``types`` and any of ``ids`` (None: no filter), by id.

        Returns one page and the total number of matches.
        """

    @abc.abstractmethod
    async def upsert_entities(self, entities: Sequence[Entity], *, replace: bool) -> list[bool]:
        """Create or update entities in one transaction; True per entity that was created.

        ``replace``: an existing entity's attributes are all replaced; otherwise
        the given attributes are merged into it (each attribute replaced whole).
        Owners are kept: an entity a gateway owns stays owned by it.
        """

    @abc.abstractmethod
    async def write_entities(
        self, changes: Sequence[tuple[str, EntityChange]]
    ) -> list[WriteOutcome | NgsiLdError]:
        """Apply pure changes (``ldt.cloud.ngsild.entity_ops``) to entities, all in one transaction.

        Each change gets the entity's current document (None: absent) and
        returns the new one (None: delete it). The same id may appear more
        than once: changes apply in order, each seeing the previous result. A
        change that raises ``NgsiLdError`` is refused alone (nothing of it is
        written) and its error takes its place in the result; anything else
        rolls the whole call back. Changes may run more than once (a store
        may retry on a write conflict), so they must not have side effects
        beyond overwriting what they report. Owners are kept; created
        entities have none.
        """

    @abc.abstractmethod
    async def search_entities(
        self, query: EntityQuery, *, limit: int, offset: int, count: bool = True
    ) -> tuple[list[Entity], int | None]:
        """Entities matching ``query`` (``EntityQuery.matches``), ordered by id.

        Returns one page (``limit`` 0: none) and, with ``count``, the total number of
        matches (None without: counting may cost a scan the page does not need).
        """

    @abc.abstractmethod
    async def purge_entities(
        self, query: EntityQuery, purge: Purge
    ) -> list[tuple[Entity, Entity | None]]:
        """Purge entities (5.6.21): every entity matching ``query``, in one transaction.

        ``purge`` says whether each is deleted whole or loses attributes (``keep``/``drop``,
        ``purge_sql``); entities it would not change are left alone. Set-based: one
        statement changes every chosen row. Returns (document before, after; None: deleted)
        per changed entity, for notifications; the temporal history records the change as
        for ``write_entities``.
        """

    @abc.abstractmethod
    async def type_attribute_counts(self) -> list[TypeAttributeCount]:
        """Per entity type: its entity count and, per attribute name and type, how many have it."""

    # subscriptions --------------------------------------------------------
    @abc.abstractmethod
    async def create_subscription(self, doc: dict[str, Any]) -> bool:
        """Store a new subscription (``doc["id"]``); False (nothing written) if the id exists."""

    @abc.abstractmethod
    async def replace_subscription(self, doc: dict[str, Any]) -> bool:
        """Replace an existing subscription's document (counters kept); False if absent."""

    @abc.abstractmethod
    async def delete_subscription(self, sub_id: str) -> bool:
        """Delete a subscription; False if absent."""

    @abc.abstractmethod
    async def get_subscription(self, sub_id: str) -> SubscriptionRecord | None:
        """One subscription, or None."""

    @abc.abstractmethod
    async def list_subscriptions(
        self, *, limit: int | None = None, offset: int = 0
    ) -> tuple[list[SubscriptionRecord], int]:
        """One page of subscriptions by id (``limit`` None: all) and their total number."""

    @abc.abstractmethod
    async def record_notifications(self, counts: Sequence[NotificationCounts]) -> None:
        """Add notification counters, several subscriptions in one statement.

        The notifier counts attempts in memory and flushes them every few hundred
        milliseconds: one write per delivery, queued behind the entity writes, was what
        limited notification throughput. Subscriptions that no longer exist are skipped.
        """

    @abc.abstractmethod
    async def subscriptions_generation(self) -> int:
        """A number that changes whenever a subscription is created, replaced or deleted.

        Broker processes sharing one database match subscriptions in memory; each reloads
        them when this number has moved, so a change made through one process is in force
        in the others at their next write (not only after a refresh period).
        """

    @abc.abstractmethod
    async def claim_notification_slot(
        self, sub_id: str, *, now_ms: int, period_ms: int
    ) -> tuple[bool, int]:
        """Take a subscription's notification slot if it is free at ``now_ms`` (epoch ms).

        Returns ``(claimed, due_ms)``: claimed, the caller alone sends this period's
        notification (a ``timeInterval`` one, or a throttled one) and the slot is next free
        at ``due_ms = now_ms + period_ms``; not claimed, someone else holds it until
        ``due_ms``. Atomic across every process sharing the database, so two brokers never
        both notify within one period. Deleting or replacing the subscription frees it.
        """

    # context source registrations (ldt.cloud.ngsild.registrations) ----------
    @abc.abstractmethod
    async def put_registration(self, doc: dict[str, Any], *, create: bool) -> bool:
        """Store a registration (``doc["id"]``): ``create`` a new one (False if the id
        exists) or replace an existing one (False if absent); nothing written on False."""

    @abc.abstractmethod
    async def delete_registration(self, reg_id: str) -> bool:
        """Delete a registration; False if absent."""

    @abc.abstractmethod
    async def get_registration(self, reg_id: str) -> dict[str, Any] | None:
        """One registration's document, or None."""

    @abc.abstractmethod
    async def list_registrations(self) -> list[dict[str, Any]]:
        """Every registration's document, by id (the API filters and pages them)."""
