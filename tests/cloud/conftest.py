"""Fixtures: an open store (SQLite, then PostgreSQL) and an in-process ASGI client on it.

``store`` is parametrized, so every test that uses it (directly or through
``client``/``add_gateway``/``gw1_token``) runs once per backend: both must
pass the same tests. The PostgreSQL run gets a fresh database of its own on
the session's server (tests/pg.py); it skips only where PostgreSQL is not
installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.gateways import new_token, token_sha256
from ldt.cloud.server import build_app
from ldt.cloud.store import DB_FILENAME, PostgresStore, SqliteStore, Store
from tests.cloud.helpers import asgi_client
from tests.pg import postgres_dsn, postgres_server

__all__ = ["AddGateway", "postgres_dsn", "postgres_server", "register"]

STORE_KINDS = ("sqlite", "postgresql")


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        async with SqliteStore(path=tmp_path / DB_FILENAME) as opened:
            yield opened
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        async with PostgresStore(dsn=dsn, pool_size=2) as pg:
            yield pg


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(build_app(store, access=AccessControl.lab())) as c:
        yield c


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the test module's own ``app`` fixture (a broker set up for that module)."""
    async with asgi_client(app) as c:
        yield c


async def register(store: Store, gateway_id: str) -> str:
    """Register a gateway in ``store``; returns its token."""
    token = new_token()
    await store.gateways.add(gateway_id, token_sha256(token), rotate=False)
    return token


AddGateway = Callable[[str], Awaitable[str]]


@pytest.fixture
def add_gateway(store: Store) -> AddGateway:
    """``await add_gateway("gw-2")`` registers a gateway and returns its token."""

    async def add(gateway_id: str) -> str:
        return await register(store, gateway_id)

    return add


@pytest.fixture
async def gw1_token(store: Store) -> str:
    return await register(store, "gw-1")
