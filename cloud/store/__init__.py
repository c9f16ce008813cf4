"""Storage behind one interface: ``Store``; ``SqliteStore`` is the embedded default."""

from ldt.cloud.store.base import Entity, GatewayRecord, HistoryRow, IngestResult, Store
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore

__all__ = [
    "DB_FILENAME",
    "Entity",
    "GatewayRecord",
    "HistoryRow",
    "IngestResult",
    "SqliteStore",
    "Store",
]
