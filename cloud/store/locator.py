"""Which store a ``--store`` option names: SQLite in the data folder, or a PostgreSQL URL."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ldt.cloud.errors import StoreError
from ldt.cloud.store.base import Store
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from ldt.url_secrets import redact

__all__ = ["POSTGRES_SCHEMES", "store_for"]

POSTGRES_SCHEMES = ("postgresql", "postgres")
"""URL schemes libpq accepts; anything else is refused rather than guessed at."""


def store_for(
    url: str | None,
    *,
    data_dir: Path,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
) -> Store:
    """An unopened store: ``SqliteStore`` under ``data_dir`` when ``url`` is None or empty,
    ``PostgresStore`` for a ``postgresql://`` URL.

    Raises ``StoreError`` for any other URL (the message names the accepted forms).
    """
    if not url:
        return SqliteStore(path=data_dir / DB_FILENAME, synchronous=synchronous)
    if urlsplit(url).scheme in POSTGRES_SCHEMES:
        from ldt.cloud.store.postgres import PostgresStore

        return PostgresStore(dsn=url)
    raise StoreError(
        f"unsupported store {redact(url)!r}: give a postgresql://user@host:port/dbname URL,"
        " or leave --store out to use SQLite in the data folder"
    )
