"""Storage behind one interface: ``Store``; ``SqliteStore`` is the embedded default.

``PostgresStore`` (several broker processes on one database) is imported
lazily, so using SQLite never loads libpq.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldt.cloud.store.base import Entity, HistoryRow, Store
from ldt.cloud.store.gateways import GatewayRecord
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore

if TYPE_CHECKING:
    from ldt.cloud.store.postgres import PostgresStore

__all__ = [
    "DB_FILENAME",
    "Entity",
    "GatewayRecord",
    "HistoryRow",
    "PostgresStore",
    "SqliteStore",
    "Store",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from ldt.cloud.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
