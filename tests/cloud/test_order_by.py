"""``orderBy`` (clause 4.23): parsing, and the order both stores give GET /entities and
GET /temporal/entities, paged with limit/offset.

Entities are written through the API (so that system attributes and the temporal history are
recorded as in production); every HTTP test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from ldt.cloud.ngsild.order_by import (
    OrderKey,
    entity_order,
    map_order_names,
    ordered_select,
    parse_order_by,
)
from ldt.cloud.ngsild.query import QSyntaxError

BASE = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"


# --- parsing -----------------------------------------------------------------------------------


def test_parse_keys_directions_and_paths() -> None:
    keys = parse_order_by("type;asc, name.subProperty;desc,name.createdAt,id")
    assert keys == (
        OrderKey(("type",)),
        OrderKey(("name", "subProperty"), descending=True),
        OrderKey(("name", "createdAt")),
        OrderKey(("id",)),
    )
    assert keys[0].entity_member == "type"
    assert keys[1].entity_member is None
    assert keys[1].member is None
    assert keys[1].sub_attributes == ("subProperty",)
    assert keys[2].member == "createdAt"
    assert keys[2].sub_attributes == ()


def test_an_iri_is_one_name() -> None:
    (key,) = parse_order_by("https://example.org/v1.2/name;desc")
    assert key.names == ("https://example.org/v1.2/name",)
    assert key.descending


@pytest.mark.parametrize(
    "text",
    ["", " ", "name;up", "name;", "a,,b", "a..b", 'na"me', "name[x]", "a b", ",".join("x" * 17)],
)
def test_bad_order_by_is_a_syntax_error(text: str) -> None:
    with pytest.raises(QSyntaxError) as caught:
        parse_order_by(text)
    assert caught.value.problem().status == 400
    assert caught.value.parameter == "orderBy"


def test_names_are_mapped_but_members_are_not() -> None:
    keys = parse_order_by("createdAt,name.sub.observedAt")
    mapped = map_order_names(keys, lambda n: f"https://x.org/{n}")
    assert mapped == (
        OrderKey(("createdAt",)),
        OrderKey(("https://x.org/name", "https://x.org/sub", "observedAt")),
    )
    with pytest.raises(QSyntaxError):
        map_order_names(keys, lambda n: f'x"{n}')


def test_no_keys_keep_the_plain_indexed_statement() -> None:
    assert entity_order((), dialect="sqlite") is None
    assert ordered_select("doc", "entities WHERE type = ?", None) == (
        "SELECT doc FROM entities WHERE type = ? ORDER BY id"
    )
    order = entity_order(parse_order_by("name;desc"), dialect="postgresql")
    assert order is not None
    assert order.terms.endswith(", id")  # the tie-break


# --- over HTTP, both stores ---------------------------------------------------------------------


def _thing(n: int, **attrs: Any) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Thing:{n:02d}", "type": "Thing", **attrs}


def _prop(value: Any, **sub: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **sub}


async def _create(client: httpx.AsyncClient, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        resp = await client.post(f"{BASE}/entities", json=doc)
        assert resp.status_code == 201, resp.text
        await asyncio.sleep(0.002)  # distinct createdAt (millisecond precision)


async def _order(
    client: httpx.AsyncClient, order: str, path: str = "/entities", **extra: Any
) -> list[int]:
    params = {"type": "Thing", "orderBy": order, "limit": 100, **extra}
    resp = await client.get(BASE + path, params=params)
    assert resp.status_code == 200, resp.text
    return [int(e["id"].rsplit(":", 1)[1]) for e in resp.json()]


@pytest.fixture
async def things(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Entities created in the order 3, 1, 2, 4, 5, 6 with values of every JSON type."""
    await _create(
        client,
        [
            _thing(3, rank=_prop("b", level=_prop(1)), flag=_prop(True)),
            _thing(1, rank=_prop(10, level=_prop(3)), flag=_prop(False)),
            _thing(2, rank=_prop(9.5, level=_prop(2))),
            _thing(4, rank=_prop("a")),
            _thing(5, rank=_prop({"nested": 1})),
            _thing(6, other=_prop(0)),
        ],
    )
    return client


async def test_values_order_numbers_then_strings_then_others_missing_last(
    things: httpx.AsyncClient,
) -> None:
    assert await _order(things, "rank") == [2, 1, 4, 3, 5, 6]
    # descending reverses the values, but an entity without the attribute stays last
    assert await _order(things, "rank;desc") == [5, 3, 4, 1, 2, 6]


async def test_entity_members(things: httpx.AsyncClient) -> None:
    assert await _order(things, "id;desc") == [6, 5, 4, 3, 2, 1]
    assert await _order(things, "createdAt") == [3, 1, 2, 4, 5, 6]
    assert await _order(things, "createdAt;desc") == [6, 5, 4, 2, 1, 3]


async def test_sub_attribute_member_and_tie_break(things: httpx.AsyncClient) -> None:
    assert await _order(things, "rank.level") == [3, 2, 1, 4, 5, 6]
    assert await _order(things, "rank.createdAt") == [3, 1, 2, 4, 5, 6]
    # booleans after numbers and strings; false < true; ties (no flag) by id
    assert await _order(things, "flag;desc") == [3, 1, 2, 4, 5, 6]
    assert await _order(things, "type,flag") == [1, 3, 2, 4, 5, 6]


async def test_pages_follow_the_order(things: httpx.AsyncClient) -> None:
    pages = [
        await _order(things, "rank;desc", limit=2, offset=offset, count="true")
        for offset in (0, 2, 4)
    ]
    assert pages == [[5, 3], [4, 1], [2, 6]]


async def test_order_with_a_python_side_filter(things: httpx.AsyncClient) -> None:
    # idPattern is checked in Python on rows the store streams in key order
    assert await _order(things, "rank;desc", idPattern=".*:0[1-4]$", limit=2) == [3, 4]
    assert await _order(things, "rank;desc", idPattern=".*:0[1-4]$", offset=2) == [1, 2]


async def test_several_instances_order_by_the_first(client: httpx.AsyncClient) -> None:
    await _create(
        client,
        [
            _thing(1, rank=[_prop(5), _prop(1, datasetId="urn:ngsi-ld:Dataset:b")]),
            _thing(2, rank=_prop(3)),
        ],
    )
    assert await _order(client, "rank") == [2, 1]


async def test_bad_order_by_is_400(client: httpx.AsyncClient) -> None:
    for path in ("/entities", "/temporal/entities"):
        resp = await client.get(BASE + path, params={"type": "Thing", "orderBy": "rank;sideways"})
        assert resp.status_code == 400, resp.text
        assert resp.json()["type"] == ERR + "BadRequestData"


async def test_temporal_entities_in_order(things: httpx.AsyncClient) -> None:
    temporal = "/temporal/entities"
    assert await _order(things, "rank", temporal) == [2, 1, 4, 3, 5, 6]
    assert await _order(things, "rank;desc", temporal) == [5, 3, 4, 1, 2, 6]
    assert await _order(things, "createdAt", temporal) == [3, 1, 2, 4, 5, 6]
    assert await _order(things, "rank.level;desc", temporal) == [1, 2, 3, 4, 5, 6]
    assert await _order(things, "rank;desc", temporal, limit=2, offset=2) == [4, 1]
    # the latest instance counts: 4's rank becomes the smallest number
    resp = await things.patch(
        f"{BASE}/entities/urn:ngsi-ld:Thing:04/attrs", json={"rank": _prop(-1)}
    )
    assert resp.status_code == 204, resp.text
    assert await _order(things, "rank", temporal) == [4, 2, 1, 3, 5, 6]
