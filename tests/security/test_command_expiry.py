"""A command's ``expiresAt`` is bounded (issue 14, item 8): at most an hour by default,
whatever the client asks, so a command cannot wait days for an offline gateway."""

from __future__ import annotations

from pathlib import Path

from ldt.cloud.control.audit import AuditLog
from ldt.cloud.control.commands import MAX_TTL_S, CommandService
from ldt.cloud.ngsild.contexts import ContextStore
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore

ENTITY = "urn:ngsi-ld:Device:gw-1:relay-1"


async def test_expires_at_is_cut_to_the_maximum(tmp_path: Path) -> None:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        contexts = ContextStore(preload_dir=None, cache_dir=None, allow_network=False)
        notifier = Notifier(store=store, contexts=contexts)
        try:
            commands = CommandService(store, notifier, AuditLog(store))
            await commands.declare("gw-1", {ENTITY: ["relay2"]})
            week = iso_ms((1_900_000_000 + 7 * 86400) * 1000)
            far = {"type": "Property", "value": True,
                   "expiresAt": {"type": "Property", "value": week}}  # fmt: skip
            soon = {"type": "Property", "value": False}
            old = {"id": ENTITY, "type": "Device"}
            await commands.observe([(old, {**old, "relay2": far})])
            await commands.observe([(old, {**old, "relay2": soon})])
            made = sorted(await store.control.commands(10), key=lambda c: c.value)
            lives = [(c.expires_at_ms - c.created_at_ms) / 1000 for c in made]
            assert lives[1] <= MAX_TTL_S  # asked for a week past 2030: an hour at most
            assert 59 <= lives[0] <= 61  # the default
        finally:
            await notifier.aclose()
