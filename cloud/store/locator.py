"""Which store a ``--store`` option names: SQLite in the data folder, or a PostgreSQL URL."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from ldt.cloud.errors import StoreError
from ldt.cloud.store.base import Store
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore

__all__ = ["POSTGRES_SCHEMES", "redact", "store_for"]

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


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and the ready line)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***@"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=userinfo + host))
