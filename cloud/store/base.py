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

from ldt.cloud.store.artifacts import ArtifactRepository
from ldt.cloud.store.control import ControlRepository
from ldt.cloud.store.database import Database, Tx
from ldt.cloud.store.gateways import GatewayRepository
from ldt.cloud.store.registrations import RegistrationRepository
from ldt.cloud.store.subscriptions import SubscriptionRepository

if TYPE_CHECKING:
    from ldt.cloud.ngsild.entity_query import EntityQuery
    from ldt.cloud.ngsild.order_by import OrderKey
    from ldt.cloud.ngsild.problems import NgsiLdError
    from ldt.cloud.ngsild.temporal import AttrInstance, Window
    from ldt.cloud.ngsild.temporal_page import Render, TemporalPage
    from ldt.cloud.store.database import Database
    from ldt.cloud.store.purge_sql import Purge

_GROUP_COMMIT_ITEMS = 2000
"""At most this many changes in one shared write transaction (a bigger batch runs alone)."""

__all__ = [
    "Entity",
    "EntityChange",
    "HistoryRow",
    "Store",
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


class Store(abc.ABC):
    """Async storage for gateways, reading history and entities.

    Use as ``async with store:`` (opens and closes it). Every method may raise
    ``StoreError``; nothing else escapes. ``db`` runs the SQL (``database``); the
    repositories written once over it hang off the store as attributes.
    """

    def __init__(self, db: Database) -> None:
        from ldt.cloud.store.coalesce import Coalescer
        from ldt.cloud.store.readings import ReadingRepository

        self.db = db
        self.readings = ReadingRepository(db)
        self.subscriptions = SubscriptionRepository(db)
        self.registrations = RegistrationRepository(db)
        self.gateways = GatewayRepository(db)
        self.artifacts = ArtifactRepository(db)
        self.control = ControlRepository(db)
        self._writes: Coalescer[tuple[str, EntityChange], WriteOutcome | NgsiLdError] = Coalescer(
            self._write_now, max_items=_GROUP_COMMIT_ITEMS
        )

    async def upsert_entities(self, entities: Sequence[Entity], *, replace: bool) -> list[bool]:
        """Create or update entities in one transaction; True per entity that was created.

        ``replace``: an existing entity's attributes are all replaced; otherwise the given
        attributes are merged into it (each attribute replaced whole). Owners are kept. The
        same id twice behaves as two calls in order.
        """
        from ldt.cloud.store import entity_rows

        ids = sorted({e["id"] for e in entities})

        async def apply(tx: Tx) -> list[bool]:
            now = entity_rows.now_iso()
            current = {eid: doc for eid, (_, doc) in (await entity_rows.load(tx, ids)).items()}
            before = dict(current)
            created: list[bool] = []
            for entity in entities:
                old = current.get(entity["id"])
                created.append(old is None)
                current[entity["id"]] = (
                    dict(entity) if old is None or replace else {**old, **entity}
                )
            await entity_rows.save(
                tx,
                created=[current[i] for i in ids if before.get(i) is None],
                updated=[current[i] for i in ids if before.get(i) is not None],
                now=now,
            )
            return created

        return await self.db.write(apply)

    async def write_entities(
        self, changes: Sequence[tuple[str, EntityChange]]
    ) -> list[WriteOutcome | NgsiLdError]:
        """Apply pure changes (``ldt.cloud.ngsild.entity_ops``) to entities, in one transaction.

        Each change gets the entity's current document (None: absent) and returns the new
        one (None: delete it). The same id may appear more than once: changes apply in
        order, each seeing the previous result. A change that raises ``NgsiLdError`` is
        refused alone and its error takes its place in the result; anything else rolls the
        whole call back. Changes may run more than once (a retried transaction), so they
        must not have side effects. Owners are kept; created entities have none. Calls that
        arrive while a write runs share the next transaction (``Coalescer``: group commit).
        """
        return await self._writes.submit(changes)

    async def _write_now(
        self, changes: list[tuple[str, EntityChange]]
    ) -> list[WriteOutcome | NgsiLdError]:
        from ldt.cloud.ngsild.problems import NgsiLdError
        from ldt.cloud.store import entity_rows

        ids = sorted({eid for eid, _ in changes})

        async def apply(tx: Tx) -> list[WriteOutcome | NgsiLdError]:
            now = entity_rows.now_iso()
            loaded = await entity_rows.load(tx, ids)
            before: dict[str, Entity | None] = dict.fromkeys(ids)
            before.update((eid, doc) for eid, (_, doc) in loaded.items())
            current = dict(before)
            results: list[WriteOutcome | NgsiLdError] = []
            for eid, change in changes:
                old = current[eid]
                try:
                    new = change(old)
                except NgsiLdError as exc:
                    results.append(exc)
                    continue
                current[eid] = new
                results.append(_outcome(old, new))
            moved = [i for i in ids if current[i] is not before[i]]
            await entity_rows.save(
                tx,
                created=[d for i in moved if before[i] is None and (d := current[i]) is not None],
                updated=[
                    d for i in moved if before[i] is not None and (d := current[i]) is not None
                ],
                deleted=[i for i in moved if current[i] is None and before[i] is not None],
                now=now,
            )
            if moved:  # deletions leave records in the history too
                await entity_rows.record_history(
                    tx, [(i, before[i], current[i]) for i in moved], now
                )
            return results

        return await self.db.write(apply)

    async def drain(self) -> None:
        """Finish the writes that are queued for a shared transaction."""
        await self._writes.drain()

    async def open(self) -> None:
        """Connect, then create or migrate the schema (``schema``); idempotent."""
        from ldt.cloud.store.schema import migrate

        await self.db.open()
        await migrate(self.db)

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

    # ingest ---------------------------------------------------------------

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

    # temporal representation (ldt.cloud.ngsild.temporal) ---------------------
    @abc.abstractmethod
    async def add_temporal(
        self, entity_id: str, etype: Any, instances: Sequence[AttrInstance], *, now: str
    ) -> bool:
        """Create or update a temporal entity and add ``instances``; True if it was created.

        Entity writes record their history themselves (same transaction);
        this is for the temporal API's own provision (5.6.11, 5.6.12).
        """

    @abc.abstractmethod
    async def get_temporal(self, entity_id: str) -> Entity | None:
        """A temporal entity's header (id, type, createdAt, modifiedAt), or None."""

    @abc.abstractmethod
    async def query_temporal(
        self,
        *,
        types: Sequence[str] | None,
        ids: Sequence[str] | None,
        limit: int,
        offset: int,
        order: Sequence[OrderKey] = (),
    ) -> tuple[list[Entity], int]:
        """Headers of temporal entities of any of ``types``/``ids`` (None: all); total.

        In ``order`` (``order_by.temporal_order``; empty: by id), ties by id.
        """

    @abc.abstractmethod
    async def temporal_instances(
        self, entity_ids: Sequence[str], attrs: Sequence[str] | None, window: Window
    ) -> list[AttrInstance]:
        """The instances of these entities (and attributes) in ``window`` (lastN per attribute)."""

    @abc.abstractmethod
    async def temporal_page(
        self,
        entity_ids: Sequence[str],
        attrs: Sequence[str] | None,
        window: Window,
        *,
        datasets: frozenset[str | None] | None,
        limit: int,
        render: Render | None = None,
    ) -> TemporalPage:
        """What a temporal answer shows: at most ``limit`` instances, cut in SQL.

        As ``temporal_instances`` of the ``datasets`` (None: all) then
        ``temporal.paginate``, without reading the instances past the cut
        (``temporal_read``); ``render``: the instances as JSON the store wrote
        (``temporal_page``), not parsed.
        """

    @abc.abstractmethod
    async def delete_temporal(
        self,
        entity_id: str,
        *,
        attr: str | None = None,
        dataset_id: str | None = None,
        all_datasets: bool = False,
    ) -> bool:
        """Delete a temporal entity, or one attribute's instances (of one datasetId or all).

        False if there was nothing to delete.
        """

    @abc.abstractmethod
    async def delete_temporal_instance(self, entity_id: str, attr: str, instance_id: str) -> bool:
        """Delete one attribute instance; False if absent."""

    @abc.abstractmethod
    async def replace_temporal_instance(self, row: AttrInstance) -> bool:
        """Replace instance ``row.instance_id`` of ``row``'s entity and attribute; False: absent."""


def _outcome(old: Entity | None, new: Entity | None) -> WriteOutcome:
    if old is None:
        return "unchanged" if new is None else "created"
    if new is None:
        return "deleted"
    return "unchanged" if new is old or new == old else "updated"
