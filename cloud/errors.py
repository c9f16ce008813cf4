"""The cloud's root exception and the errors every cloud layer shares.

Each layer raises a subclass of ``CloudError``; the HTTP layer turns them into
NGSI-LD ProblemDetails (``ldt.cloud.ngsild.problems``), the CLI into one line.
"""

from __future__ import annotations

__all__ = [
    "CloudError",
    "ConcurrentChangeError",
    "GatewayExistsError",
    "OwnershipError",
    "QueryTooSlowError",
    "StoreError",
]


class CloudError(Exception):
    """Root of every error the cloud raises on purpose."""


class QueryTooSlowError(CloudError):
    """A search checked documents in Python past its deadline and was stopped: the reader
    it held is needed by every other request (the API answers 403 TooComplexQuery)."""


class StoreError(CloudError):
    """The store failed (disk, locking, corruption): the request may be retried."""


class GatewayExistsError(StoreError):
    """A gateway with this id is already registered (rotate its token instead)."""


class OwnershipError(StoreError):
    """A gateway tried to write an entity it does not own; nothing was written."""

    def __init__(self, entity_id: str, owner: str | None) -> None:
        """``owner``: the gateway owning it; None for an entity created through the API (or
        not namespaced by the gateway), which an admin assigns with ``ldt cloud gateway
        assign``."""
        self.entity_id = entity_id
        self.owner = owner
        super().__init__(
            f"entity {entity_id} is owned by another gateway"
            if owner is not None
            else f"entity {entity_id} is not this gateway's: a gateway writes the entities it"
            " creates (ids holding ':<gateway id>:') and those an admin assigned to it"
            " (ldt cloud gateway assign)"
        )


class ConcurrentChangeError(StoreError):
    """Another process changed the rows a unit of work read (PostgreSQL only): the
    database runs the unit again, as it does for a serialization failure."""
