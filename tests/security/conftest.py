"""The cloud tests' store fixture (SQLite and PostgreSQL) for the security tests too."""

from __future__ import annotations

from tests.cloud.conftest import postgres_dsn, postgres_server, store

__all__ = ["postgres_dsn", "postgres_server", "store"]
