"""Batch entity operations (v1.9 5.6.7-5.6.10, 5.6.20) and ``Store.write_entities`` atomicity."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ldt.cloud.ngsild import entity_ops as ops
from ldt.cloud.ngsild.entity_ops import present
from ldt.cloud.ngsild.jsonld import core_context
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.routes_entities import MAX_BATCH_BYTES
from ldt.cloud.store import Store

API = "/ngsi-ld/v1/entityOperations"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
JSON = {"Content-Type": "application/json"}
NOW = "2026-11-27T12:00:00.000Z"


def _e(n: int, **attrs: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Room:{n}",
        "type": "Room",
        "t": {"type": "Property", "value": n},
        **attrs,
    }


async def _op(
    client: httpx.AsyncClient, op: str, body: Any, *, options: str | None = None
) -> httpx.Response:
    return await client.post(
        f"{API}/{op}",
        content=body if isinstance(body, bytes) else orjson.dumps(body),
        headers=JSON,
        params={"options": options} if options else None,
    )


async def _doc(store: Store, n: int) -> dict[str, Any] | None:
    doc = await store.entities.get(f"urn:ngsi-ld:Room:{n}")
    return None if doc is None else present(doc, core_context())


def _error_ids(resp: httpx.Response) -> list[str]:
    return [e["entityId"] for e in resp.json()["errors"]]


async def test_create_all_is_201_with_ids(client: httpx.AsyncClient, store: Store) -> None:
    resp = await _op(client, "create", [_e(1), _e(2)])
    assert resp.status_code == 201
    assert resp.json() == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]
    assert await _doc(store, 2) == _e(2)


async def test_create_with_bad_items_is_207_and_stores_the_good(
    client: httpx.AsyncClient, store: Store
) -> None:
    assert (await _op(client, "create", [_e(3)])).status_code == 201
    body = [_e(1), _e(3, extra=5), {"id": "urn:ngsi-ld:Room:4"}, _e(2), _e(2, again=1), "x"]
    resp = await _op(client, "create", body)
    assert resp.status_code == 207
    result = resp.json()
    assert result["success"] == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]
    assert sorted(_error_ids(resp)) == sorted(
        ["", "urn:ngsi-ld:Room:4", "urn:ngsi-ld:Room:3", "urn:ngsi-ld:Room:2"]
    )
    kinds = {e["entityId"]: e["error"]["type"] for e in result["errors"]}
    assert kinds["urn:ngsi-ld:Room:3"] == ERR + "AlreadyExists"
    assert kinds["urn:ngsi-ld:Room:4"] == ERR + "BadRequestData"
    assert await _doc(store, 1) == _e(1)
    assert await _doc(store, 2) == _e(2)  # the repeated id did not overwrite the first
    assert await _doc(store, 3) == _e(3)  # the refused item changed nothing
    assert await _doc(store, 4) is None


async def test_upsert_replace_update_and_207(client: httpx.AsyncClient, store: Store) -> None:
    assert (
        await _op(client, "upsert", [_e(1, h={"type": "Property", "value": 1})])
    ).status_code == 201
    resp = await _op(client, "upsert", [_e(1), _e(2)])
    assert resp.status_code == 201
    assert resp.json() == ["urn:ngsi-ld:Room:2"]
    assert await _doc(store, 1) == _e(1)  # replaced: h is gone
    change = {"id": "urn:ngsi-ld:Room:1", "type": "Room", "h": {"type": "Property", "value": 9}}
    assert (await _op(client, "upsert", [change], options="update")).status_code == 204
    assert await _doc(store, 1) == _e(1, h={"type": "Property", "value": 9})
    resp = await _op(client, "upsert", [_e(5), {"id": "bad", "type": "Room"}])
    assert resp.status_code == 207
    assert resp.json()["success"] == ["urn:ngsi-ld:Room:5"]
    assert await _doc(store, 5) == _e(5)
    bad = await _op(client, "upsert", [_e(1)], options="replace,update")
    assert bad.status_code == 400


async def test_update_appends_to_existing_only(client: httpx.AsyncClient, store: Store) -> None:
    await _op(client, "create", [_e(1)])
    new_t = {"type": "Property", "value": 50}
    body = [{"id": "urn:ngsi-ld:Room:1", "t": new_t, "u": 1}, {"id": "urn:ngsi-ld:Room:9", "t": 1}]
    resp = await _op(client, "update", body)
    assert resp.status_code == 207
    assert resp.json()["success"] == ["urn:ngsi-ld:Room:1"]
    assert resp.json()["errors"][0]["error"]["type"] == ERR + "ResourceNotFound"
    assert await _doc(store, 9) is None
    doc = await _doc(store, 1)
    assert doc is not None
    assert doc["t"] == new_t
    assert doc["u"] == {"type": "Property", "value": 1}
    keep = [{"id": "urn:ngsi-ld:Room:1", "t": 0, "v": 1}]
    resp = await _op(client, "update", keep, options="noOverwrite")
    assert resp.status_code == 207  # t was kept: reported, v was still added
    assert _error_ids(resp) == ["urn:ngsi-ld:Room:1"]
    assert (await _doc(store, 1) or {})["v"] == {"type": "Property", "value": 1}
    assert (await _doc(store, 1) or {})["t"] == new_t


async def test_merge_and_delete(client: httpx.AsyncClient, store: Store) -> None:
    await _op(client, "create", [_e(1), _e(2)])
    patch = [{"id": "urn:ngsi-ld:Room:1", "t": {"value": 7}}, {"id": "urn:ngsi-ld:Room:8", "t": 1}]
    resp = await _op(client, "merge", patch)
    assert resp.status_code == 207
    assert _error_ids(resp) == ["urn:ngsi-ld:Room:8"]
    assert (await _doc(store, 1) or {})["t"] == {"type": "Property", "value": 7}
    assert (await _op(client, "merge", patch[:1])).status_code == 204
    resp = await _op(client, "delete", ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:7", "no uri"])
    assert resp.status_code == 207
    assert resp.json()["success"] == ["urn:ngsi-ld:Room:1"]
    assert sorted(_error_ids(resp)) == ["no uri", "urn:ngsi-ld:Room:7"]
    assert await _doc(store, 1) is None
    assert (await _op(client, "delete", ["urn:ngsi-ld:Room:2"])).status_code == 204
    assert await _doc(store, 2) is None


@pytest.mark.parametrize("op", ["create", "upsert", "update", "merge", "delete"])
@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"[{", 400, "InvalidRequest"),
        (b"[]", 400, "BadRequestData"),
        (b'{"id": "urn:x:1"}', 400, "BadRequestData"),
    ],
)
async def test_invalid_batch_body_is_400(
    client: httpx.AsyncClient, op: str, body: bytes, status: int, kind: str
) -> None:
    resp = await _op(client, op, body)
    assert resp.status_code == status, resp.text
    assert resp.json()["type"] == ERR + kind


async def test_batch_media_type_and_size_limits(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{API}/create", content=b"[]", headers={"Content-Type": "text/csv"})
    assert resp.status_code == 415
    big = orjson.dumps([_e(1, blob={"type": "Property", "value": "x" * MAX_BATCH_BYTES})])
    resp = await _op(client, "create", big)
    assert resp.status_code == 413


async def test_batch_ld_json_items_need_their_context(
    client: httpx.AsyncClient, store: Store
) -> None:
    ctx = {"t": "https://x.example/t"}
    body = [{**_e(1), "@context": [ctx]}, _e(2)]
    resp = await client.post(
        f"{API}/create", content=orjson.dumps(body), headers={"Content-Type": "application/ld+json"}
    )
    assert resp.status_code == 207
    assert _error_ids(resp) == ["urn:ngsi-ld:Room:2"]
    stored = await store.entities.get("urn:ngsi-ld:Room:1")
    assert stored is not None
    assert "https://x.example/t" in stored


# --- the store contract (both backends) ------------------------------------------------------


async def test_write_entities_applies_repeated_ids_in_order(store: Store) -> None:
    frag = {"id": "urn:x:1", "type": "T", "a": {"type": "Property", "value": 1}}
    report = ops.UpdateReport()
    more = {"b": {"type": "Property", "value": 2}}
    results = await store.entities.write(
        refusable=NgsiLdError,
        changes=[
            ("urn:x:1", ops.create(frag, NOW)),
            ("urn:x:1", ops.append_attrs("urn:x:1", more, NOW, no_overwrite=False, report=report)),
            ("urn:x:1", ops.create(frag, NOW)),
            ("urn:x:2", ops.delete_entity("urn:x:2")),
        ],
    )
    assert results[:2] == ["created", "updated"]
    assert isinstance(results[2], NgsiLdError)
    assert results[2].status == 409
    assert isinstance(results[3], NgsiLdError)
    assert results[3].status == 404
    doc = await store.entities.get("urn:x:1")
    assert doc is not None
    assert doc["b"]["value"] == 2
    results = await store.entities.write(
        refusable=NgsiLdError, changes=[("urn:x:1", ops.delete_entity("urn:x:1"))]
    )
    assert results == ["deleted"]
    assert await store.entities.get("urn:x:1") is None


async def test_write_entities_rolls_back_on_an_unexpected_error(store: Store) -> None:
    frag = {"id": "urn:x:1", "type": "T"}
    await store.entities.write(refusable=NgsiLdError, changes=[("urn:x:1", ops.create(frag, NOW))])

    def explode(current: dict[str, Any] | None) -> dict[str, Any] | None:
        raise RuntimeError("a bug in a change")

    with pytest.raises(RuntimeError):
        await store.entities.write(
            refusable=NgsiLdError,
            changes=[
                ("urn:x:2", ops.create({"id": "urn:x:2", "type": "T"}, NOW)),
                ("urn:x:1", ops.delete_entity("urn:x:1")),
                ("urn:x:3", explode),
            ],
        )
    assert await store.entities.get("urn:x:2") is None
    assert await store.entities.get("urn:x:1") is not None


async def test_unchanged_entity_is_not_rewritten(store: Store) -> None:
    frag = {"id": "urn:x:1", "type": "T", "a": {"type": "Property", "value": 1}}
    await store.entities.write(refusable=NgsiLdError, changes=[("urn:x:1", ops.create(frag, NOW))])
    later = "2026-11-27T13:00:00.000Z"
    report = ops.UpdateReport()
    same = {"a": {"type": "Property", "value": 1}}
    change = ops.update_attrs("urn:x:1", same, later, report=report)
    assert await store.entities.write(refusable=NgsiLdError, changes=[("urn:x:1", change)]) == [
        "unchanged"
    ]
    doc = await store.entities.get("urn:x:1")
    assert doc is not None
    assert doc["modifiedAt"] == NOW
