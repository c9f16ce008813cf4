"""Fixtures: an open SQLite store in a temp folder and an in-process ASGI client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from ldt.cloud.gateways import new_token, token_sha256
from ldt.cloud.server import build_app
from ldt.cloud.store import DB_FILENAME, SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as opened:
        yield opened


@pytest.fixture
async def client(store: SqliteStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as c:
        yield c


async def register(store: SqliteStore, gateway_id: str) -> str:
    """Register a gateway in ``store``; returns its token."""
    token = new_token()
    await store.add_gateway(gateway_id, token_sha256(token), rotate=False)
    return token


AddGateway = Callable[[str], Awaitable[str]]


@pytest.fixture
def add_gateway(store: SqliteStore) -> AddGateway:
    """``await add_gateway("gw-2")`` registers a gateway and returns its token."""

    async def add(gateway_id: str) -> str:
        return await register(store, gateway_id)

    return add


@pytest.fixture
async def gw1_token(store: SqliteStore) -> str:
    return await register(store, "gw-1")
