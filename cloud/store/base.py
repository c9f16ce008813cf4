"""The store the cloud is written against: one ``Database`` and the repositories over it.

There is no storage interface to implement twice any more. ``Store`` is one concrete class
for both engines: it holds a ``Database`` (``database``: SQLite or PostgreSQL) and one
repository per concern, each written once over the database's units of work
(``store.entities``, ``store.temporal``, ``store.readings``, ``store.subscriptions``,
``store.registrations``, ``store.gateways``, ``store.artifacts``, ``store.control``,
``store.access``). A later concern (gateway configs, releases) adds one repository here.
``SqliteStore`` and ``PostgresStore`` only build the database. Entity documents are
normalized NGSI-LD without ``@context`` (terms are the core context's short names).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ldt.cloud.store.access import AccessRepository
from ldt.cloud.store.artifacts import ArtifactRepository
from ldt.cloud.store.control import ControlRepository
from ldt.cloud.store.database import Database
from ldt.cloud.store.gateways import GatewayRepository
from ldt.cloud.store.registrations import RegistrationRepository
from ldt.cloud.store.subscriptions import SubscriptionRepository
from ldt.cloud.store.temporal import TemporalRepository

if TYPE_CHECKING:
    from ldt.cloud.store.entities import EntityRepository
    from ldt.cloud.store.readings import ReadingRepository

__all__ = ["Entity", "HistoryRow", "Store", "TypeAttributeCount"]

Entity = dict[str, Any]
"""A normalized NGSI-LD entity: ``{"id": ..., "type": ..., attr: {"type": "Property", ...}}``."""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One synced reading of one attribute, as the gateway sent it."""

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


class Store:
    """The repositories over one database. Use as ``async with store:`` (opens and closes
    it). Every repository method may raise ``StoreError``; nothing else escapes."""

    def __init__(self, db: Database) -> None:
        # these import this module's records: imported here to keep the cycle out
        from ldt.cloud.store.entities import EntityRepository
        from ldt.cloud.store.readings import ReadingRepository
        from ldt.cloud.store.value_index import ValueIndexRepository

        self.db = db
        self.entities: EntityRepository = EntityRepository(db)
        self.temporal = TemporalRepository(db)
        self.readings: ReadingRepository = ReadingRepository(db)
        self.subscriptions = SubscriptionRepository(db)
        self.registrations = RegistrationRepository(db)
        self.gateways = GatewayRepository(db)
        self.artifacts = ArtifactRepository(db)
        self.control = ControlRepository(db)
        self.value_indexes: ValueIndexRepository = ValueIndexRepository(db)
        self.access = AccessRepository(db)

    async def open(self) -> None:
        """Connect, then create or migrate the schema (``schema``); idempotent."""
        from ldt.cloud.store.schema import migrate

        await self.db.open()
        await migrate(self.db)

    async def drain(self) -> None:
        """Finish the writes that are queued for a shared transaction."""
        await self.entities.drain()

    async def close(self) -> None:
        """Finish queued writes, then release connections and threads."""
        await self.drain()
        await self.db.close()

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
