"""Gateway registration and bearer tokens.

A token is 32 random bytes (URL-safe base64), shown once when issued; the
cloud keeps only its SHA-256, so a leaked database does not leak tokens.
Registration works on the database file directly, so ``ldt cloud gateway add``
needs no running server (WAL lets it run next to one).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ldt.cloud.errors import CloudError
from ldt.cloud.store.database import SqliteDatabase
from ldt.cloud.store.gateways import GatewayRepository
from ldt.cloud.store.sqlite import DB_FILENAME, connect

__all__ = [
    "GATEWAY_ID_PATTERN",
    "RESERVED_GATEWAY_IDS",
    "InvalidGatewayIdError",
    "add_gateway",
    "new_token",
    "token_sha256",
    "valid_gateway_id",
]

GATEWAY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""The agent's ``[gateway] id`` rule, so every id the agent accepts can be registered."""
RESERVED_GATEWAY_IDS = frozenset({"ldt-cloud", "cloud", "broker", "admin", "root", "mosquitto"})
"""Names of the cloud's own services (the MQTT broker's ACL gives ``ldt-cloud`` every
gateway's topics): no gateway may be registered or claimed under them, in any case."""


def valid_gateway_id(gateway_id: str) -> bool:
    """Whether ``gateway_id`` matches ``GATEWAY_ID_PATTERN`` and is not a reserved name."""
    return (
        GATEWAY_ID_PATTERN.match(gateway_id) is not None
        and gateway_id.lower() not in RESERVED_GATEWAY_IDS
    )


class InvalidGatewayIdError(CloudError):
    """The id does not match ``GATEWAY_ID_PATTERN``."""


def new_token() -> str:
    """A fresh gateway token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> bytes:
    """What the store keeps of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def add_gateway(data_dir: Path, gateway_id: str, *, rotate: bool = False) -> str:
    """Register ``gateway_id`` in the cloud's data folder and return its new token.

    Blocking (a few ms of SQLite): for the CLI, tests and the demo's setup.
    Raises ``InvalidGatewayIdError``, ``GatewayExistsError`` (unless ``rotate``),
    or ``StoreError``.
    """
    if not valid_gateway_id(gateway_id):
        raise InvalidGatewayIdError(
            f"invalid gateway id {gateway_id!r}: use 1-64 letters, digits, '.', '_' or '-',"
            " and not a name the cloud's services use"
        )
    token = new_token()
    path = data_dir / DB_FILENAME
    # the writer connection alone (no readers, no location index): the few ms of work
    # the CLI needs; a thread of its own, so callers inside an event loop may block on it
    db = SqliteDatabase(path=path, connect=lambda: connect(path), readers=0)

    async def register() -> None:
        async with db:
            await GatewayRepository(db).add(gateway_id, token_sha256(token), rotate=rotate)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ldt-gateway-add") as pool:
        pool.submit(asyncio.run, register()).result()
    return token
