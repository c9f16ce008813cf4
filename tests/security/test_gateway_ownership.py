"""Gateway ownership (issue 14, item 7): a gateway writes the entities it creates in its own
id space and those an admin assigned to it; an entity created through the API is nobody's
until assigned, so no gateway takes it over by ingesting into it or by declaring command
points on it. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ldt.cli import main
from ldt.cloud.control.audit import AuditLog
from ldt.cloud.control.commands import CommandService
from ldt.cloud.errors import CloudError, OwnershipError
from ldt.cloud.ngsild.contexts import ContextStore
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.service.ingest import ingest
from ldt.cloud.store.base import Store
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from ldt.contract import IngestBatch
from tests.cloud.batches import T0, batch

PUMP = "urn:ngsi-ld:PumpingStation:city:station-1"  # made by an admin through the API


def _to(entity_id: str, gateway: str) -> IngestBatch:
    target: dict[str, Any] = {"0": {"entity_id": entity_id, "entity_type": "Device", "attr": "x"}}
    return IngestBatch.model_validate(
        batch(gateway, [[1, 0, T0, 1.0, "good", None]], series_map=target)
    )


async def test_an_api_entity_is_not_taken_over_by_ingest(store: Store) -> None:
    await store.entities.upsert([{"id": PUMP, "type": "PumpingStation"}], replace=False)
    with pytest.raises(OwnershipError, match="ldt cloud gateway assign"):
        await ingest(store.db, "gw-1", _to(PUMP, "gw-1"))
    assert await store.readings.count("gw-1") == 0
    assert await store.gateways.assign_entity(PUMP, "gw-1") == "gw-1"
    assert (await ingest(store.db, "gw-1", _to(PUMP, "gw-1"))).accepted == 1


async def test_a_gateway_creates_only_ids_in_its_own_space(store: Store) -> None:
    with pytest.raises(OwnershipError):
        await ingest(store.db, "gw-1", _to("urn:ngsi-ld:Device:gw-2:m0", "gw-1"))
    assert await store.entities.get("urn:ngsi-ld:Device:gw-2:m0") is None
    assert (await ingest(store.db, "gw-1", _to("urn:ngsi-ld:Device:gw-1:m0", "gw-1"))).accepted


async def test_no_command_points_on_entities_it_does_not_own(store: Store) -> None:
    await store.entities.upsert([{"id": PUMP, "type": "PumpingStation"}], replace=False)
    contexts = ContextStore(preload_dir=None, cache_dir=None, allow_network=False)
    notifier = Notifier(store=store, contexts=contexts)
    try:
        commands = CommandService(store, notifier, AuditLog(store))
        with pytest.raises(CloudError, match="not this gateway's"):
            await commands.declare("gw-1", {PUMP: ["speed"]})  # the API's, not assigned
        with pytest.raises(CloudError, match="id space"):
            await commands.declare("gw-1", {"urn:ngsi-ld:Device:gw-2:relay": ["on"]})
        await commands.declare("gw-1", {"urn:ngsi-ld:Device:gw-1:relay": ["on"]})
        assert [p.entity_id for p in await store.control.command_points()] == [
            "urn:ngsi-ld:Device:gw-1:relay"
        ]
    finally:
        await notifier.aclose()


def test_an_admin_assigns_an_entity_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def made() -> None:
        async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
            await store.entities.upsert([{"id": PUMP, "type": "PumpingStation"}], replace=False)

    asyncio.run(made())
    data = ["--data", str(tmp_path)]
    assert main(["cloud", "gateway", "assign", "gw-1", PUMP, *data]) == 0
    assert "written by gateway gw-1" in capsys.readouterr().out
    assert main(["cloud", "gateway", "assign", "gw-2", PUMP, *data]) == 1
    assert "gw-1's already" in capsys.readouterr().err
    assert main(["cloud", "gateway", "assign", "gw-1", "urn:ngsi-ld:X:none", *data]) == 1
    assert "no entity" in capsys.readouterr().err
