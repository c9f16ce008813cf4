"""Readings -> Device entities: the newest good reading wins; backfill and bad ones don't."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ldt.cloud.ngsild.device_model import apply_update, summarize
from ldt.cloud.ngsild.timestamps import iso_ms, parse_iso_ms
from ldt.cloud.store import SqliteStore
from ldt.contract import INGEST_PATH, IngestBatch
from tests.cloud.batches import T0, batch, encode, series

ENTITY = "urn:ngsi-ld:Device:gw-1:m0"


async def _send(client: httpx.AsyncClient, token: str, rows: list[list[Any]], **kw: Any) -> None:
    resp = await client.post(
        INGEST_PATH,
        content=encode(batch("gw-1", rows, **kw)),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 200, resp.text


async def _entity(store: SqliteStore) -> dict[str, Any]:
    """The stored entity without createdAt/modifiedAt (test_ingest checks those)."""
    entity = await store.entities.get(ENTITY)
    assert entity is not None
    return {
        k: ({a: b for a, b in v.items() if a not in _SYS} if isinstance(v, dict) else v)
        for k, v in entity.items()
        if k not in _SYS
    }


_SYS = ("createdAt", "modifiedAt")


async def test_entity_is_created_in_normalized_form(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    await _send(client, gw1_token, [[1, 0, T0 + 123, 230.5, "good", None]])
    assert await _entity(store) == {
        "id": ENTITY,
        "type": "Device",
        "activePower": {
            "type": "Property",
            "value": 230.5,
            "observedAt": "2026-11-27T12:00:00.123Z",
            "unitCode": "WTT",
            "quality": {
                "type": "Property",
                "value": "good",
                "observedAt": "2026-11-27T12:00:00.123Z",
            },
        },
        "dateLastValueReported": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:00.123Z"},
        },
        "deviceState": {
            "type": "Property",
            "value": "ok",
            "observedAt": "2026-11-27T12:00:00.123Z",
        },
    }


async def test_newest_reading_of_a_batch_wins_whatever_the_row_order(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    await _send(
        client,
        gw1_token,
        [
            [1, 0, T0 + 50, 3.0, "good", None],
            [2, 0, T0 + 90, 9.0, "good", None],
            [3, 0, T0 + 10, 1.0, "good", None],
        ],
    )
    attr = (await _entity(store))["activePower"]
    assert attr["value"] == 9.0
    assert attr["observedAt"] == iso_ms(T0 + 90)


async def test_older_backfill_does_not_overwrite_a_fresher_live_value(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    await _send(client, gw1_token, [[100, 0, T0 + 10_000, 50.0, "good", None]], lane="live")
    await _send(
        client,
        gw1_token,
        [[seq, 0, T0 + seq, float(seq), "good", None] for seq in range(1, 60)],
        lane="backfill",
    )
    entity = await _entity(store)
    assert entity["activePower"]["value"] == 50.0
    assert entity["dateLastValueReported"]["value"]["@value"] == iso_ms(T0 + 10_000)
    assert len(await store.readings.history(ENTITY, "activePower")) == 60


async def test_bad_reading_is_kept_in_history_but_does_not_overwrite_the_value(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    await _send(client, gw1_token, [[1, 0, T0, 7.0, "good", None]])
    await _send(client, gw1_token, [[2, 0, T0 + 1000, None, "bad", "timeout after 1.0 s"]])
    attr = (await _entity(store))["activePower"]
    assert attr["value"] == 7.0
    assert attr["observedAt"] == iso_ms(T0)
    assert attr["quality"] == {"type": "Property", "value": "bad", "observedAt": iso_ms(T0 + 1000)}
    assert attr["reason"]["value"] == "timeout after 1.0 s"
    assert (await _entity(store))["deviceState"]["value"] == "error"
    history = await store.readings.history(ENTITY, "activePower")
    assert [(h.value, h.quality, h.reason) for h in history] == [
        (7.0, "good", None),
        (None, "bad", "timeout after 1.0 s"),
    ]
    # the device recovers: value and quality move on, the reason goes
    await _send(client, gw1_token, [[3, 0, T0 + 2000, 8.0, "good", None]])
    attr = (await _entity(store))["activePower"]
    assert (attr["value"], attr["quality"]["value"]) == (8.0, "good")
    assert "reason" not in attr


async def test_backfilled_good_reading_older_than_a_known_failure_keeps_the_bad_mark(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    await _send(client, gw1_token, [[1, 0, T0, 1.0, "good", None]])
    await _send(client, gw1_token, [[3, 0, T0 + 3000, None, "bad", "crc error"]])
    await _send(client, gw1_token, [[2, 0, T0 + 2000, 2.0, "good", None]], lane="backfill")
    attr = (await _entity(store))["activePower"]
    assert attr["value"] == 2.0
    assert attr["quality"]["value"] == "bad"
    assert attr["reason"]["value"] == "crc error"


async def test_stale_reading_updates_the_value_and_says_it_is_stale(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    await _send(
        client, gw1_token, [[1, 0, T0, 1.0, "good", None], [2, 0, T0 + 5, 1.0, "stale", None]]
    )
    entity = await _entity(store)
    assert entity["activePower"]["quality"]["value"] == "stale"
    assert entity["activePower"]["observedAt"] == iso_ms(T0 + 5)
    assert entity["deviceState"]["value"] == "stale"


async def test_first_reading_bad_creates_no_attribute(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    await _send(client, gw1_token, [[1, 0, T0, None, "bad", "no route to host"]])
    entity = await _entity(store)
    assert "activePower" not in entity
    assert "dateLastValueReported" not in entity
    assert entity["deviceState"]["value"] == "error"


async def test_values_keep_their_json_type(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    smap = series("gw-1", attrs=("a", "b", "c", "d"))
    await _send(
        client,
        gw1_token,
        [
            [1, 0, T0, True, "good", None],
            [2, 1, T0, 7, "good", None],
            [3, 2, T0, 0.1, "good", None],
            [4, 3, T0, "on", "good", None],
        ],
        series_map=smap,
    )
    entity = await _entity(store)
    assert [entity[k]["value"] for k in "abcd"] == [True, 7, 0.1, "on"]
    assert [type(entity[k]["value"]) for k in "abcd"] == [bool, int, float, str]
    assert [h.value for h in await store.readings.history(ENTITY, "a")] == [True]


def test_apply_update_leaves_the_stored_document_untouched() -> None:
    b = IngestBatch.model_validate(batch("gw-1", [[1, 0, T0, 5.0, "good", None]]))
    doc = {"id": ENTITY, "type": "Device"}
    new = apply_update(doc, ENTITY, summarize(b)[ENTITY])
    assert doc == {"id": ENTITY, "type": "Device"}
    assert new["activePower"]["value"] == 5.0


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (T0 + 999, "2026-11-27T12:00:00.999Z"),
        (253402300799999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_timestamps_round_trip_exactly(ms: int, text: str) -> None:
    assert iso_ms(ms) == text
    assert parse_iso_ms(text) == ms


@pytest.mark.parametrize("text", [None, 5, "", "yesterday", "2026-13-01T00:00:00Z"])
def test_unparsable_timestamps_are_none(text: object) -> None:
    assert parse_iso_ms(text) is None
