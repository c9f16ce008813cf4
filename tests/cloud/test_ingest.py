"""POST /ldt/v1/ingest through the ASGI app: acks, idempotence, and every rejection."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ldt.cloud.ingest import MAX_INGEST_BYTES
from ldt.cloud.store import SqliteStore
from ldt.contract import INGEST_PATH, BatchAck
from ldt.contract.batch import MAX_BATCH_READINGS
from tests.cloud.batches import T0, batch, encode, good_rows, series
from tests.cloud.conftest import AddGateway

BAD_DATA = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


def _headers(token: str, content_type: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": content_type}


async def _post(client: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else encode(body)
    return await client.post(INGEST_PATH, content=content, headers=_headers(token))


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


async def test_batch_is_stored_and_acked(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    resp = await _post(client, gw1_token, batch("gw-1", good_rows(1, 100)))
    assert resp.status_code == 200, resp.text
    ack = BatchAck.model_validate_json(resp.content)
    assert ack == BatchAck(gateway_id="gw-1", accepted=100, duplicates=0, max_seq=100)
    assert await store.readings.seqs("gw-1") == list(range(1, 101))
    history = await store.readings.history("urn:ngsi-ld:Device:gw-1:m0", "activePower")
    assert [h.seq for h in history] == list(range(1, 101))
    assert history[0].value == 201.0
    assert history[0].observed_at_ms == T0 + 1


async def test_replayed_batch_counts_duplicates_and_stores_nothing_twice(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    first = batch("gw-1", good_rows(1, 50))
    assert (await _post(client, gw1_token, first)).status_code == 200
    entity_before = await store.entities.get("urn:ngsi-ld:Device:gw-1:m0")
    # the same batch again, then one overlapping it by half
    again = BatchAck.model_validate_json((await _post(client, gw1_token, first)).content)
    assert (again.accepted, again.duplicates, again.max_seq) == (0, 50, 50)
    overlap = BatchAck.model_validate_json(
        (await _post(client, gw1_token, batch("gw-1", good_rows(26, 50)))).content
    )
    assert (overlap.accepted, overlap.duplicates, overlap.max_seq) == (25, 25, 75)
    assert await store.readings.seqs("gw-1") == list(range(1, 76))
    assert await store.readings.count("gw-1") == 75
    assert entity_before is not None
    assert entity_before["activePower"]["value"] == 200.0 + 50 % 50


async def test_empty_batch_is_acked(client: httpx.AsyncClient, gw1_token: str) -> None:
    resp = await _post(client, gw1_token, batch("gw-1", []))
    assert BatchAck.model_validate_json(resp.content).max_seq == 0


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-known-token"],
)
async def test_missing_or_unknown_token_is_401(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    resp = await client.post(
        INGEST_PATH, content=encode(batch("gw-1", good_rows(1, 5))), headers=headers
    )
    _problem(resp, 401)
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert await store.readings.count("gw-1") == 0


async def test_rotated_token_replaces_the_old_one(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    from ldt.cloud.gateways import new_token, token_sha256

    fresh = new_token()
    await store.gateways.add("gw-1", token_sha256(fresh), rotate=True)
    _problem(await _post(client, gw1_token, batch("gw-1", good_rows(1, 5))), 401)
    assert (await _post(client, fresh, batch("gw-1", good_rows(1, 5)))).status_code == 200


async def test_batch_for_another_gateway_is_403(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str, add_gateway: AddGateway
) -> None:
    await add_gateway("gw-2")
    body = _problem(await _post(client, gw1_token, batch("gw-2", good_rows(1, 5))), 403)
    assert "gw-2" in body["detail"]
    assert await store.readings.count("gw-1") == 0
    assert await store.readings.count("gw-2") == 0


async def test_entity_owned_by_another_gateway_is_403_for_the_whole_batch(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str, add_gateway: AddGateway
) -> None:
    gw2_token = await add_gateway("gw-2")
    assert (await _post(client, gw1_token, batch("gw-1", good_rows(1, 5)))).status_code == 200
    owned_by_gw1 = series("gw-1")["0"]
    own = {
        "entity_id": "urn:ngsi-ld:Device:gw-2:m0",
        "entity_type": "Device",
        "attr": "activePower",
        "unit": "WTT",
    }
    mixed = batch(
        "gw-2",
        [[1, 0, T0, 1.0, "good", None], [2, 1, T0, 2.0, "good", None]],
        series_map={"0": own, "1": owned_by_gw1},
    )
    body = _problem(await _post(client, gw2_token, mixed), 403)
    assert owned_by_gw1["entity_id"] in body["detail"]
    assert await store.readings.count("gw-2") == 0
    assert await store.entities.get("urn:ngsi-ld:Device:gw-2:m0") is None
    gw1_entity = await store.entities.get(owned_by_gw1["entity_id"])
    assert gw1_entity is not None
    assert gw1_entity["activePower"]["value"] == 205.0
    # its own entity alone is fine
    alone = batch("gw-2", [[1, 0, T0, 1.0, "good", None]], series_map={"0": own})
    assert (await _post(client, gw2_token, alone)).status_code == 200


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("gateway_id"), "gateway_id"),
        (lambda b: b.update(v=2), "v"),
        (lambda b: b.update(lane="fast"), "lane"),
        (lambda b: b.update(extra=1), "extra"),
        (lambda b: b["readings"].append([0, 0, T0, 1.0, "good", None]), "readings.5.0"),
        (lambda b: b["readings"].append([99, 0, T0, 1.0, "meh", None]), "readings.5.4"),
        (lambda b: b["readings"].append([99, 7, T0, 1.0, "good", None]), "unknown series 7"),
        (lambda b: b["readings"].append([3, 0, T0, 1.0, "good", None]), "seq 3 appears twice"),
        (lambda b: b["readings"].append([99, 0, T0]), "readings.5"),
        (lambda b: b["series"]["0"].update(entity_id="no-colon"), "series.0.entity_id"),
        (lambda b: b["series"]["0"].update(unit="watts"), "series.0.unit"),
        (lambda b: b.update(readings="x"), "readings"),
    ],
)
async def test_invalid_batch_is_400_naming_the_field(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str, mutate: Any, field: str
) -> None:
    body = batch("gw-1", good_rows(1, 5))
    mutate(body)
    problem = _problem(await _post(client, gw1_token, body), 400)
    assert problem["type"] == BAD_DATA
    assert field in problem["detail"]
    assert await store.readings.count("gw-1") == 0


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"v": 1,}'])
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str, raw: bytes
) -> None:
    assert _problem(await _post(client, gw1_token, raw), 400)["type"] == BAD_DATA
    assert await store.readings.count("gw-1") == 0


async def test_too_many_readings_is_413(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    body = batch("gw-1", good_rows(1, MAX_BATCH_READINGS + 1))
    problem = _problem(await _post(client, gw1_token, body), 413)
    assert str(MAX_BATCH_READINGS) in problem["detail"]
    assert await store.readings.count("gw-1") == 0


async def test_oversized_body_is_413_before_parsing(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    # not even JSON: the size check must come first
    resp = await _post(client, gw1_token, b"x" * (MAX_INGEST_BYTES + 1))
    _problem(resp, 413)

    async def chunks() -> Any:
        for _ in range(17):
            yield b" " * (1 << 20)

    chunked = await client.post(INGEST_PATH, content=chunks(), headers=_headers(gw1_token))
    assert "content-length" not in chunked.request.headers
    _problem(chunked, 413)
    assert await store.readings.count("gw-1") == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str, content_type: str
) -> None:
    resp = await client.post(
        INGEST_PATH,
        content=encode(batch("gw-1", good_rows(1, 5))),
        headers=_headers(gw1_token, content_type),
    )
    _problem(resp, 415)
    assert await store.readings.count("gw-1") == 0


async def test_json_with_charset_is_accepted(client: httpx.AsyncClient, gw1_token: str) -> None:
    resp = await client.post(
        INGEST_PATH,
        content=encode(batch("gw-1", good_rows(1, 5))),
        headers=_headers(gw1_token, "application/json; charset=utf-8"),
    )
    assert resp.status_code == 200, resp.text


async def test_get_on_ingest_is_405(client: httpx.AsyncClient) -> None:
    resp = await client.get(INGEST_PATH)
    _problem(resp, 405)
    assert "POST" in resp.headers["allow"]


async def test_ack_body_matches_the_contract(client: httpx.AsyncClient, gw1_token: str) -> None:
    resp = await _post(client, gw1_token, batch("gw-1", good_rows(1, 3)))
    assert orjson.loads(resp.content) == {
        "gateway_id": "gw-1",
        "accepted": 3,
        "duplicates": 0,
        "max_seq": 3,
    }
    assert resp.headers["content-type"] == "application/json"


async def test_an_api_created_entity_is_written_only_by_the_gateway_an_admin_assigns(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str, add_gateway: AddGateway
) -> None:
    gw2_token = await add_gateway("gw-2")
    eid = "urn:ngsi-ld:Device:gw-1:m0"
    provisioned = {"id": eid, "type": "Device", "name": {"type": "Property", "value": "meter"}}
    resp = await client.post(
        "/ngsi-ld/v1/entityOperations/upsert",
        content=orjson.dumps([provisioned]),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 201
    # created through the API: nobody's, so no gateway takes it over by ingesting
    refused = await _post(client, gw1_token, batch("gw-1", good_rows(1, 3)))
    _problem(refused, 403)
    assert "ldt cloud gateway assign" in refused.json()["detail"]
    assert await store.gateways.assign_entity(eid, "gw-1") == "gw-1"
    assert (await _post(client, gw1_token, batch("gw-1", good_rows(1, 3)))).status_code == 200
    entity = await store.entities.get(eid)
    assert entity is not None
    assert entity["name"]["value"] == "meter"
    assert entity["activePower"]["value"] == 203.0
    assert await store.gateways.assign_entity(eid, "gw-2") == "gw-1"  # taken: stays gw-1's
    # an API update keeps the owner: gw-2 still may not write it
    resp = await client.post(
        "/ngsi-ld/v1/entityOperations/upsert",
        params={"options": "update"},
        content=orjson.dumps([{**provisioned, "name": {"type": "Property", "value": "m"}}]),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 204
    intruder = batch("gw-2", [[1, 0, T0, 1.0, "good", None]], series_map=series("gw-1"))
    _problem(await _post(client, gw2_token, intruder), 403)
    assert await store.readings.count("gw-2") == 0


async def test_a_gateway_creates_entities_in_its_own_id_space_only(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str
) -> None:
    foreign = batch("gw-1", good_rows(1, 2), series_map=series("gw-9"))  # ids of gw-9's space
    _problem(await _post(client, gw1_token, foreign), 403)
    assert await store.readings.count("gw-1") == 0


@pytest.mark.parametrize(
    "row",
    [
        [1, 0, T0, "a\x00b", "good", None],
        [1, 0, T0, None, "bad", "timeout\x00"],
    ],
)
async def test_text_with_nul_is_refused_on_every_store(
    client: httpx.AsyncClient, store: SqliteStore, gw1_token: str, row: list[Any]
) -> None:
    resp = await _post(client, gw1_token, batch("gw-1", [row]))
    body = _problem(resp, 400)
    assert "NUL" in body["detail"]
    assert await store.readings.seqs("gw-1") == []


async def test_gateway_entities_carry_system_attributes(
    client: httpx.AsyncClient, gw1_token: str
) -> None:
    """Entities made by ingest go through the same paths as API ones: createdAt/modifiedAt."""
    assert (await _post(client, gw1_token, batch("gw-1", good_rows(1, 2)))).status_code == 200
    first = await client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Device:gw-1:m0", params={"options": "sysAttrs"}
    )
    assert first.status_code == 200, first.text
    doc = first.json()
    assert {"createdAt", "modifiedAt"} <= doc.keys()
    attr = next(v for k, v in doc.items() if isinstance(v, dict) and v.get("type") == "Property")
    assert {"createdAt", "modifiedAt"} <= attr.keys()
    assert (await _post(client, gw1_token, batch("gw-1", good_rows(3, 4)))).status_code == 200
    again = (
        await client.get(
            "/ngsi-ld/v1/entities/urn:ngsi-ld:Device:gw-1:m0", params={"options": "sysAttrs"}
        )
    ).json()
    assert again["createdAt"] == doc["createdAt"]
    assert again["modifiedAt"] >= doc["modifiedAt"]
