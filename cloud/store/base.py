"""The storage interface the cloud is written against (SQLite today, PostgreSQL later).

A store keeps three things: registered gateways (only the SHA-256 of each
token), the append-only reading history keyed by (gateway, seq), and the
current NGSI-LD entities. Every method is async; implementations keep blocking
work off the event loop. Entity documents are normalized NGSI-LD without
``@context`` (terms are the core context's short names).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ldt.cloud.store.artifacts import ArtifactRepository
from ldt.cloud.store.control import ControlRepository
from ldt.cloud.store.database import Database
from ldt.cloud.store.gateways import GatewayRepository
from ldt.cloud.store.registrations import RegistrationRepository
from ldt.cloud.store.subscriptions import SubscriptionRepository

if TYPE_CHECKING:
    from ldt.cloud.ngsild.order_by import OrderKey
    from ldt.cloud.ngsild.temporal import AttrInstance, Window
    from ldt.cloud.ngsild.temporal_page import Render, TemporalPage
    from ldt.cloud.store.database import Database


__all__ = [
    "Entity",
    "HistoryRow",
    "Store",
    "TypeAttributeCount",
]

Entity = dict[str, Any]
"""A normalized NGSI-LD entity: ``{"id": ..., "type": ..., attr: {"type": "Property", ...}}``."""


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
        from ldt.cloud.store.entities import EntityRepository
        from ldt.cloud.store.readings import ReadingRepository

        self.db = db
        self.entities = EntityRepository(db)
        self.readings = ReadingRepository(db)
        self.subscriptions = SubscriptionRepository(db)
        self.registrations = RegistrationRepository(db)
        self.gateways = GatewayRepository(db)
        self.artifacts = ArtifactRepository(db)
        self.control = ControlRepository(db)

    async def drain(self) -> None:
        """Finish the writes that are queued for a shared transaction."""
        await self.entities.drain()

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
