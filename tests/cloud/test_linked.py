"""Linked entity retrieval (``join``/``joinLevel``, 4.5.23) and ``POST /entityOperations/query``.

The first part drives ``linked.expand`` with in-memory documents and a counting ``fetch``, so
batching (one fetch per level), cycles and the caps are observed exactly. The HTTP part runs on
both stores: GET retrieve and query, the POST query (selectors ORed, paging, errors) and
notifications of subscriptions with ``notification.join``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.ngsild import formats, linked
from ldt.cloud.ngsild.formats import Representation
from ldt.cloud.ngsild.linked import Join, Projection, expand, parse_join
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import parse_projection, project
from ldt.cloud.server import build_app
from ldt.cloud.store import Store
from ldt.cloud.store.base import Entity
from tests.cloud.helpers import receiver

API = "/ngsi-ld/v1"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def rel(target: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


# --- parse_join ----------------------------------------------------------------------------


def test_parse_join_values() -> None:
    assert parse_join(None, None) is None
    assert parse_join("@none", "3") is None
    assert parse_join(None, "2") is None  # joinLevel alone asks for nothing
    assert parse_join("inline", None) == Join("inline", 1)
    assert parse_join("flat", "3") == Join("flat", 3)
    assert parse_join("flat", 2) == Join("flat", 2)


@pytest.mark.parametrize(
    ("join", "level", "fragment"),
    [
        ("sideways", None, "join must be"),
        ("inline", "0", "positive integer"),
        ("inline", "x", "positive integer"),
        ("flat", True, "positive integer"),
        ("flat", str(linked.MAX_JOIN_LEVEL + 1), "at most"),
        (None, "-1", "positive integer"),
    ],
)
def test_parse_join_rejects(join: Any, level: Any, fragment: str) -> None:
    with pytest.raises(NgsiLdError) as info:
        parse_join(join, level)
    assert info.value.status == 400
    assert info.value.kind == "BadRequestData"
    assert fragment in str(info.value.detail)


def test_projection_of_linked_entities() -> None:
    pick = Projection(pick=parse_projection("id,locatedAt{id,name},owner"))
    assert pick.linked("locatedAt").pick is not None
    assert [t.name for t in pick.linked("locatedAt").pick or ()] == ["id", "name"]
    assert pick.linked("owner") == Projection()  # no braces: the linked entity whole
    omit = Projection(omit=parse_projection("type,locatedAt{name}"))
    assert [t.name for t in omit.linked("locatedAt").omit or ()] == ["name"]
    assert omit.linked("other") == Projection()


# --- expand over in-memory documents -------------------------------------------------------


class World:
    """Stored documents, a fetch that records each call, and show/render like the routes."""

    def __init__(self, docs: Sequence[Entity], form: formats.Form = "normalized") -> None:
        self.docs = {d["id"]: d for d in docs}
        self.calls: list[list[str]] = []
        self.rep = Representation(form=form)

    async def fetch(self, ids: Sequence[str]) -> Sequence[Entity]:
        self.calls.append(list(ids))
        return [self.docs[i] for i in ids if i in self.docs]

    def show(self, doc: Entity, projection: Projection) -> dict[str, Any] | None:
        shown = project(doc, pick=projection.pick, omit=projection.omit)
        return shown if any(k != "@context" for k in shown) else None

    def render(self, shown: dict[str, Any]) -> dict[str, Any]:
        return formats.render(shown, self.rep)

    async def expand(
        self, root_ids: Sequence[str], join: Join, projection: Projection | None = None
    ) -> list[dict[str, Any]]:
        projection = projection or Projection()
        roots = [r for r in (self.show(self.docs[i], projection) for i in root_ids) if r]
        pairs = await expand(
            roots,
            join,
            projection=projection,
            form=self.rep.form,
            fetch=self.fetch,
            show=self.show,
            render=self.render,
        )
        return [rendered for _, rendered in pairs]


CHAIN = [
    {"id": "urn:B:1", "type": "Building", "locatedAt": rel("urn:C:1")},
    {"id": "urn:B:2", "type": "Building", "locatedAt": rel("urn:C:1")},
    {"id": "urn:C:1", "type": "City", "name": prop("Paris"), "isIn": rel("urn:K:1")},
    {"id": "urn:K:1", "type": "Country", "name": prop("France"), "capital": rel("urn:C:1")},
]


async def test_inline_nests_one_level_per_hop_with_one_fetch_per_level() -> None:
    world = World(CHAIN)
    (answer,) = await world.expand(["urn:B:1"], Join("inline", 2))
    city = answer["locatedAt"]["entity"]
    assert answer["locatedAt"]["object"] == "urn:C:1"
    assert city["id"] == "urn:C:1"
    assert city["isIn"]["entity"] == {
        "id": "urn:K:1",
        "type": "Country",
        "name": prop("France"),
        "capital": rel("urn:C:1"),  # level 3 was not asked for
    }
    assert world.calls == [["urn:C:1"], ["urn:K:1"]]


async def test_cycles_cost_no_extra_fetch_and_stop_at_the_level() -> None:
    world = World(CHAIN)
    (answer,) = await world.expand(["urn:B:1"], Join("inline", 6))
    depth, node = 0, answer["locatedAt"]
    while "entity" in node:
        depth += 1
        entity = node["entity"]
        node = entity.get("isIn") or entity.get("capital")
    assert depth == 6
    assert world.calls == [["urn:C:1"], ["urn:K:1"]]  # C and K are looked up once each


async def test_flat_appends_each_linked_entity_once() -> None:
    world = World(CHAIN)
    answer = await world.expand(["urn:B:1", "urn:B:2", "urn:C:1"], Join("flat", 3))
    assert [e["id"] for e in answer] == ["urn:B:1", "urn:B:2", "urn:C:1", "urn:K:1"]
    assert "entity" not in answer[0]["locatedAt"]
    assert world.calls == [["urn:K:1"]]  # C:1 is in the answer already: not looked up


async def test_simplified_inline_puts_the_entity_in_place_of_the_id() -> None:
    docs = [
        {"id": "urn:B:1", "type": "B", "at": rel("urn:C:1"), "gone": rel("urn:C:404")},
        {"id": "urn:C:1", "type": "City", "name": prop("Paris")},
    ]
    world = World(docs, form="simplified")
    (answer,) = await world.expand(["urn:B:1"], Join("inline"))
    assert answer == {
        "id": "urn:B:1",
        "type": "B",
        "at": {"id": "urn:C:1", "type": "City", "name": "Paris"},
        "gone": "urn:C:404",  # not found: the id stays
    }
    assert world.calls == [["urn:C:1", "urn:C:404"]]


async def test_list_relationships_and_multi_instance_attributes() -> None:
    docs: list[Entity] = [
        {
            "id": "urn:B:1",
            "type": "B",
            "members": {
                "type": "ListRelationship",
                "objectList": [{"object": "urn:P:2"}, "urn:P:1"],
            },
            "at": [rel("urn:P:1"), {**rel("urn:P:2"), "datasetId": "urn:ds:2"}],
        },
        {"id": "urn:P:1", "type": "P"},
        {"id": "urn:P:2", "type": "P"},
    ]
    (inline,) = await World(docs).expand(["urn:B:1"], Join("inline"))
    assert [e["id"] for e in inline["members"]["entityList"]] == ["urn:P:2", "urn:P:1"]
    assert [i["entity"]["id"] for i in inline["at"]] == ["urn:P:1", "urn:P:2"]
    assert inline["at"][1]["datasetId"] == "urn:ds:2"
    (simple,) = await World(docs, form="simplified").expand(["urn:B:1"], Join("inline"))
    assert [e["id"] for e in simple["members"]] == ["urn:P:2", "urn:P:1"]


async def test_projection_decides_what_is_followed() -> None:
    docs = [*CHAIN[:1], {**CHAIN[2], "description": prop("capital")}, CHAIN[3]]
    world = World(docs)
    pick = Projection(pick=parse_projection("id,locatedAt{id,name}"))
    answer = await world.expand(["urn:B:1"], Join("flat", 2), pick)
    assert answer == [
        {"id": "urn:B:1", "locatedAt": rel("urn:C:1")},
        {"id": "urn:C:1", "name": prop("Paris")},  # isIn not picked: not followed
    ]
    assert world.calls == [["urn:C:1"]]
    omit = Projection(omit=parse_projection("type,locatedAt{name,isIn{name}}"))
    (inline,) = await World(docs).expand(["urn:B:1"], Join("inline", 2), omit)
    city = inline["locatedAt"]["entity"]
    assert "type" not in inline
    assert city["type"] == "City"
    assert "name" not in city
    assert city["isIn"]["entity"] == {"id": "urn:K:1", "type": "Country", "capital": rel("urn:C:1")}


async def test_a_linked_entity_projected_to_nothing_is_left_out() -> None:
    world = World(CHAIN)
    projection = Projection(pick=parse_projection("locatedAt{nothing}"))
    (answer,) = await world.expand(["urn:B:1"], Join("inline"), projection)
    assert answer == {"locatedAt": rel("urn:C:1")}


async def test_too_many_linked_entities_is_403(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linked, "MAX_LINKED", 2)
    docs: list[Entity] = [
        {"id": "urn:B:1", "type": "B", **{f"r{i}": rel(f"urn:P:{i}") for i in range(3)}},
        *({"id": f"urn:P:{i}", "type": "P"} for i in range(3)),
    ]
    with pytest.raises(NgsiLdError) as info:
        await World(docs).expand(["urn:B:1"], Join("flat"))
    assert (info.value.status, info.value.kind) == (403, "TooManyResults")


# --- HTTP: GET ----------------------------------------------------------------------------


@pytest.fixture
async def linked_world(client: httpx.AsyncClient) -> httpx.AsyncClient:
    for doc in [
        {"id": "urn:ngsi-ld:Building:1", "type": "Building", "name": prop("Eiffel"),
         "locatedAt": rel("urn:ngsi-ld:City:Paris")},
        {"id": "urn:ngsi-ld:Building:2", "type": "Building",
         "locatedAt": rel("urn:ngsi-ld:City:Paris")},
        {"id": "urn:ngsi-ld:Building:3", "type": "Building",
         "locatedAt": rel("urn:ngsi-ld:City:Nowhere")},
        {"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": prop("Paris"),
         "isIn": rel("urn:ngsi-ld:Country:France")},
        {"id": "urn:ngsi-ld:Country:France", "type": "Country", "name": prop("France")},
    ]:  # fmt: skip
        resp = await client.post(f"{API}/entities", json=doc)
        assert resp.status_code == 201, resp.text
    return client


async def test_retrieve_inline_flat_and_forms(linked_world: httpx.AsyncClient) -> None:
    url = f"{API}/entities/urn:ngsi-ld:Building:1"
    inline = (await linked_world.get(url, params={"join": "inline", "joinLevel": "2"})).json()
    city = inline["locatedAt"]["entity"]
    assert city["name"] == prop("Paris")
    assert city["isIn"]["entity"]["id"] == "urn:ngsi-ld:Country:France"
    flat = (await linked_world.get(url, params={"join": "flat", "joinLevel": "2"})).json()
    assert [e["id"] for e in flat] == [
        "urn:ngsi-ld:Building:1", "urn:ngsi-ld:City:Paris", "urn:ngsi-ld:Country:France"
    ]  # fmt: skip
    simple = (await linked_world.get(url, params={"join": "inline", "options": "keyValues"})).json()
    assert simple["locatedAt"] == {
        "id": "urn:ngsi-ld:City:Paris",
        "type": "City",
        "name": "Paris",
        "isIn": "urn:ngsi-ld:Country:France",
    }
    concise = (await linked_world.get(url, params={"join": "inline", "format": "concise"})).json()
    assert concise["locatedAt"]["object"] == "urn:ngsi-ld:City:Paris"
    assert concise["locatedAt"]["entity"]["name"] == "Paris"
    with_sys = await linked_world.get(url, params={"join": "inline", "options": "sysAttrs"})
    assert "createdAt" in with_sys.json()["locatedAt"]["entity"]
    none = (await linked_world.get(url, params={"join": "@none", "joinLevel": "2"})).json()
    assert none["locatedAt"] == rel("urn:ngsi-ld:City:Paris")


async def test_retrieve_flat_without_found_links_is_one_entity(
    linked_world: httpx.AsyncClient,
) -> None:
    resp = await linked_world.get(f"{API}/entities/urn:ngsi-ld:Building:3", params={"join": "flat"})
    assert resp.json() == {
        "id": "urn:ngsi-ld:Building:3",
        "type": "Building",
        "locatedAt": rel("urn:ngsi-ld:City:Nowhere"),
    }


async def test_query_with_join_pick_and_errors(linked_world: httpx.AsyncClient) -> None:
    resp = await linked_world.get(
        f"{API}/entities",
        params={"type": "Building", "join": "flat", "pick": "id,locatedAt{id,name}",
                "count": "true"},
    )  # fmt: skip
    assert resp.status_code == 200
    assert resp.headers["NGSILD-Results-Count"] == "3"  # the entities asked for, not the links
    assert resp.json() == [
        {"id": "urn:ngsi-ld:Building:1", "locatedAt": rel("urn:ngsi-ld:City:Paris")},
        {"id": "urn:ngsi-ld:Building:2", "locatedAt": rel("urn:ngsi-ld:City:Paris")},
        {"id": "urn:ngsi-ld:Building:3", "locatedAt": rel("urn:ngsi-ld:City:Nowhere")},
        {"id": "urn:ngsi-ld:City:Paris", "name": prop("Paris")},
    ]
    for params in ({"join": "sideways"}, {"join": "inline", "joinLevel": "0"}):
        bad = await linked_world.get(f"{API}/entities", params={"type": "Building", **params})
        assert bad.status_code == 400
        assert bad.json()["type"] == ERR + "BadRequestData"


# --- HTTP: POST /entityOperations/query ----------------------------------------------------


async def post_query(
    client: httpx.AsyncClient, body: dict[str, Any], **params: str
) -> httpx.Response:
    return await client.post(
        f"{API}/entityOperations/query", json={"type": "Query", **body}, params=params
    )


def ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [e["id"] for e in resp.json()]


async def test_post_query_selectors_are_ored(linked_world: httpx.AsyncClient) -> None:
    both = await post_query(
        linked_world,
        {"entities": [{"type": "Building", "id": "urn:ngsi-ld:Building:2"},
                      {"type": "City", "id": "urn:ngsi-ld:City:Paris"},
                      {"type": "Country", "id": "urn:ngsi-ld:Building:1"}]},  # wrong type
        count="true",
    )  # fmt: skip
    assert ids(both) == ["urn:ngsi-ld:Building:2", "urn:ngsi-ld:City:Paris"]
    assert both.headers["NGSILD-Results-Count"] == "2"
    page = await post_query(
        linked_world,
        {"entities": [{"type": "Building", "idPattern": ".*:[12]$"}, {"type": "Country"}]},
        limit="2",
        offset="1",
        count="true",
    )
    assert ids(page) == ["urn:ngsi-ld:Building:2", "urn:ngsi-ld:Country:France"]
    assert page.headers["NGSILD-Results-Count"] == "3"
    same_type = await post_query(
        linked_world,
        {"entities": [{"type": "Building", "id": "urn:ngsi-ld:Building:1"},
                      {"type": "Building", "id": "urn:ngsi-ld:Building:3"}]},
    )  # fmt: skip
    assert ids(same_type) == ["urn:ngsi-ld:Building:1", "urn:ngsi-ld:Building:3"]


async def test_post_query_filters_and_forms(linked_world: httpx.AsyncClient) -> None:
    by_attrs = await post_query(linked_world, {"attrs": ["name"]}, options="keyValues")
    assert by_attrs.json() == [
        {"id": "urn:ngsi-ld:Building:1", "type": "Building", "name": "Eiffel"},
        {"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": "Paris"},
        {"id": "urn:ngsi-ld:Country:France", "type": "Country", "name": "France"},
    ]
    by_q = await post_query(linked_world, {"entities": [{"type": "City"}], "q": 'name=="Paris"'})
    assert ids(by_q) == ["urn:ngsi-ld:City:Paris"]
    joined = await post_query(
        linked_world, {"entities": [{"type": "Building"}], "join": "inline"}, format="simplified"
    )
    assert joined.json()[1]["locatedAt"]["name"] == "Paris"
    near = {"geometry": "Point", "coordinates": [2.35, 48.85], "georel": "near;maxDistance==10"}
    geo = await post_query(linked_world, {"entities": [{"type": "City"}], "geoQ": near})
    assert ids(geo) == []  # nothing has a location


@pytest.mark.parametrize(
    ("body", "params", "kind"),
    [
        ({"type": "NotAQuery"}, {}, "BadRequestData"),
        ({"entities": [{"id": "urn:x:1"}]}, {}, "BadRequestData"),
        ({"entities": [{"type": "A", "id": "not a uri"}]}, {}, "BadRequestData"),
        ({"entities": [{"type": "A", "id": "urn:a", "idPattern": "a"}]}, {}, "BadRequestData"),
        ({"entities": []}, {}, "BadRequestData"),
        ({"entities": [{"type": "A"}], "surprise": 1}, {}, "BadRequestData"),
        ({"entities": [{"type": "A"}], "join": "flat", "joinLevel": 0}, {}, "BadRequestData"),
        ({"entities": [{"type": "A"}], "q": "((("}, {}, "BadRequestData"),
        ({"entities": [{"type": "A"}], "geoQ": {"georel": "near"}}, {}, "BadRequestData"),
        ({"entities": [{"type": "A"}], "temporalQ": "now"}, {}, "BadRequestData"),
        ({}, {}, "BadRequestData"),
        ({"entities": [{"type": "A"}]}, {"type": "A"}, "InvalidRequest"),
        ({"entities": [{"type": "A"}]}, {"options": "fancy"}, "InvalidRequest"),
    ],
)
async def test_post_query_rejects(
    client: httpx.AsyncClient, body: dict[str, Any], params: dict[str, str], kind: str
) -> None:
    raw = {"type": "Query", **body} if "type" not in body else body
    resp = await client.post(f"{API}/entityOperations/query", json=raw, params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["type"] == ERR + kind


async def test_post_query_needs_json(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        f"{API}/entityOperations/query",
        content=b"type=Query",
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status_code == 415


# --- notifications with linked entities ----------------------------------------------------


@pytest.fixture
async def notifying(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = build_app(store, access=AccessControl.lab())
    app.state.notifier = Notifier(store=store, contexts=app.state.contexts, timeout_s=5.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as c:
        yield c
    await app.state.notifier.aclose()


@pytest.mark.parametrize(
    ("notification", "expected"),
    [
        (
            {"join": "inline", "format": "keyValues"},
            {"id": "urn:ngsi-ld:Building:1", "type": "Building", "name": "Tour",
             "locatedAt": {"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": "Paris"}},
        ),
        (
            {"join": "flat", "attributes": ["locatedAt"]},
            [{"id": "urn:ngsi-ld:Building:1", "type": "Building",
              "locatedAt": rel("urn:ngsi-ld:City:Paris")},
             {"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": prop("Paris")}],
        ),
    ],
)  # fmt: skip
async def test_notification_with_linked_entities(
    notifying: httpx.AsyncClient, notification: dict[str, Any], expected: Any
) -> None:
    for doc in [
        {"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": prop("Paris")},
        {"id": "urn:ngsi-ld:Building:1", "type": "Building",
         "locatedAt": rel("urn:ngsi-ld:City:Paris")},
    ]:  # fmt: skip
        assert (await notifying.post(f"{API}/entities", json=doc)).status_code == 201
    async with receiver() as rec:
        sub = {
            "id": "urn:ngsi-ld:Subscription:join",
            "type": "Subscription",
            "entities": [{"type": "Building"}],
            "watchedAttributes": ["name"],
            "notification": {"endpoint": {"uri": rec.url}, **notification},
        }
        resp = await notifying.post(f"{API}/subscriptions", content=orjson.dumps(sub),
                                    headers={"Content-Type": "application/json"})  # fmt: skip
        assert resp.status_code == 201, resp.text
        patched = await notifying.patch(
            f"{API}/entities/urn:ngsi-ld:Building:1/attrs", json={"name": prop("Tour")}
        )
        assert patched.status_code == 204, patched.text
        (note,) = await rec.wait(1)
    data = note["data"]
    assert (data[0] if isinstance(expected, dict) else data) == expected


async def test_subscription_with_a_bad_join_is_400(notifying: httpx.AsyncClient) -> None:
    sub = {
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}, "join": "sideways"},
    }
    resp = await notifying.post(f"{API}/subscriptions", json=sub)
    assert resp.status_code == 400
    assert resp.json()["type"] == ERR + "BadRequestData"
