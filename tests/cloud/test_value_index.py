"""Declared indexes on attribute values give exactly ``evaluate``'s answer, on both engines.

The index replaces a term's test on the document, so every kind of value the term could
compare must be in it: numbers and strings of Property values and arrays, multi-instance
attributes, Relationship objects (``==`` only), LanguageProperty strings, ListProperty
items, ``observedAt``; and what it does not keep (long arrays, long strings, huge
integers) must still be found. Each check compares a search that the index drives
(``value_index.choose`` picked it) with ``evaluate`` over every stored entity, after
creates, updates, deletes and purges. The plans are checked too: a regression that
stops using the index is caught here, not in a benchmark.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ldt.cloud.ngsild import value_facts
from ldt.cloud.ngsild.entity_ops import delete_entity, upsert
from ldt.cloud.ngsild.entity_query import EntityQuery, parse_types
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import evaluate, parse_q
from ldt.cloud.store import Store, value_index
from ldt.cloud.store.database import Tx
from ldt.cloud.store.purge_sql import Purge

NOW = "2024-05-01T12:00:00.000Z"
QUERIES = (
    "a>5",
    "a>=5",
    "a<3",
    "a<=3",
    "a==5",
    "a==5.5",
    'a=="s3"',
    'a>"s3"',
    'a<="s2"',
    "a==1..4",
    'a=="s1".."s4"',
    "a==1,2,7",
    'a=="s1","s5"',
    "a==urn:ngsi-ld:Thing:3",
    "a>9007199254740990",
    "a.observedAt>=2024-05-01T12:00:30Z",
    "a.observedAt<2024-05-01T12:00:10Z",
    "a.observedAt==2024-05-01T12:00:05Z",
    "a.observedAt==2024-05-01T12:00:05Z..2024-05-01T12:00:20Z",
    "a>5;b<3",
    'b=="s2";a>2',
    "a>2;b",
)


def _value(rng: random.Random) -> Any:
    """A random attribute of any kind a q term may compare (or must skip)."""
    number = rng.choice([rng.randint(0, 9), round(rng.uniform(0, 9), 1), 5.5])
    text = f"s{rng.randint(0, 6)}"
    observed = {"observedAt": f"2024-05-01T12:00:{rng.randint(0, 59):02d}Z"}
    kind = rng.randrange(13)
    if kind == 0:
        return {"type": "Property", "value": number, **observed}
    if kind == 1:
        return {"type": "Property", "value": text}
    if kind == 2:
        return {"type": "Property", "value": [number, text, True, {"x": 1}]}
    if kind == 3:  # multi-instance
        return [
            {"type": "Property", "value": number, "datasetId": "urn:d:1", **observed},
            {"type": "Property", "value": rng.randint(0, 9), "datasetId": "urn:d:2"},
        ]
    if kind == 4:
        return {"type": "Relationship", "object": f"urn:ngsi-ld:Thing:{rng.randint(0, 5)}"}
    if kind == 5:
        return {"type": "LanguageProperty", "languageMap": {"en": text, "fr": "s9"}}
    if kind == 6:
        return {"type": "ListProperty", "valueList": [number, text]}
    if kind == 7:  # longer than the index keeps: must still be found
        return {"type": "Property", "value": [rng.randint(0, 9) for _ in range(70)]}
    if kind == 8:
        return {"type": "Property", "value": text * 50}
    if kind == 9:
        return {"type": "Property", "value": 2**60 + rng.randint(0, 3)}
    if kind == 10:
        return {"type": "Property", "value": rng.choice([True, False])}
    if kind == 11:
        return {"type": "Property", "value": "urn:ngsi-ld:Thing:3"}
    return {"type": "Property", "value": {"nested": number}, **observed}


def _doc(i: int, rng: random.Random) -> dict[str, Any]:
    # every third of another type: the type test rejects some of the index's candidates
    doc: dict[str, Any] = {"id": f"urn:ngsi-ld:T:{i:03d}", "type": "U" if i % 3 == 0 else "T"}
    for name in ("a", "b"):
        if rng.random() < 0.9:
            doc[name] = _value(rng)
    return doc


async def _put(store: Store, docs: list[dict[str, Any]]) -> None:
    outcomes = await store.entities.write(
        refusable=NgsiLdError, changes=[(d["id"], upsert(d, NOW, replace=True)) for d in docs]
    )
    assert all(isinstance(o, str) for o in outcomes), outcomes


async def _check(store: Store, *, indexed: bool = True, common: bool = False) -> None:
    """Every query answers as ``evaluate`` does; ``indexed``: an index serves each;
    ``common``: the exact ones test rows against it (``ENOUGH`` set low)."""
    everything, _ = await store.entities.search(
        EntityQuery(types=parse_types("T")), limit=1000, offset=0
    )
    for text in QUERIES:
        q = parse_q(text)

        async def driver(tx: Tx, q: Any = q) -> value_index.Driver | None:
            return await value_index.choose(tx, q)

        chosen = await store.db.read(driver)
        if indexed and not common:
            assert chosen is not None, text
            assert chosen.ids is not None, text
        if common and chosen is not None:
            assert chosen.ids is None, text
        query = EntityQuery(types=parse_types("T"), q=q)
        page, total = await store.entities.search(query, limit=1000, offset=0)
        want = [e["id"] for e in everything if evaluate(q, e)]
        assert [e["id"] for e in page] == want, text
        assert total == len(want), text
        small, _ = await store.entities.search(query, limit=3, offset=1, count=False)
        assert [e["id"] for e in small] == want[1:4], text


async def test_an_index_answers_exactly_what_evaluate_does(store: Store) -> None:
    rng = random.Random(12)
    docs = [_doc(i, rng) for i in range(160)]
    await _put(store, docs[:100])
    await store.value_indexes.add("a")  # filled from the existing entities
    await _put(store, docs[100:])  # kept by the writes
    await store.value_indexes.add("b")
    assert [(i.name, i.ready) for i in await store.value_indexes.list()] == [
        ("a", True),
        ("b", True),
    ]
    await _check(store)

    # updates, replacements, deletions and purges keep the rows right
    await _put(store, [_doc(i, rng) for i in range(0, 160, 3)])
    await store.entities.write(
        refusable=NgsiLdError,
        changes=[
            (e, delete_entity(e)) for e in (f"urn:ngsi-ld:T:{i:03d}" for i in range(1, 160, 7))
        ],
    )
    await store.entities.purge(
        EntityQuery(types=parse_types("T"), q=parse_q("b")), Purge(drop=frozenset({"a"}))
    )
    await _check(store)
    with pytest.MonkeyPatch.context() as patch:  # every term "common": rows tested one by one
        patch.setattr(value_index, "ENOUGH", 1)
        await _check(store, common=True)


async def test_a_dropped_or_unfinished_index_is_not_used(store: Store) -> None:
    rng = random.Random(5)
    await _put(store, [_doc(i, rng) for i in range(60)])
    await store.value_indexes.add("a")
    assert await store.value_indexes.drop("a")
    assert not await store.value_indexes.drop("a")
    assert await store.value_indexes.list() == []

    async def rows(tx: Tx) -> int:
        return int(await tx.scalar("SELECT count(*) FROM attr_values"))

    assert await store.db.read(rows) == 0
    await _check(store, indexed=False)

    async def declare_unfinished(tx: Tx) -> None:
        await tx.execute("INSERT INTO value_indexes (name, ready) VALUES ('a', 0)")

    await store.db.write(declare_unfinished)
    await _put(store, [_doc(i, rng) for i in range(60, 70)])  # writes keep it meanwhile
    assert await store.db.read(rows) > 0
    await _check(store, indexed=False)


async def test_the_plan_starts_from_the_index_for_a_selective_term(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [
        {
            "id": f"urn:ngsi-ld:W:{i:05d}",
            "type": "W",
            "temperature": {
                "type": "Property",
                "value": i % 1000 / 10,
                "observedAt": f"2024-05-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            },
            "name": {"type": "Property", "value": f"Station {i}"},
        }
        for i in range(3000)
    ]
    for start in range(0, len(docs), 1000):
        await _put(store, docs[start : start + 1000])
    await store.value_indexes.add("temperature")
    await store.value_indexes.add("name")

    async def analyze(tx: Tx) -> None:
        await tx.execute("ANALYZE")

    await store.db.write(analyze)
    for text, index in (
        ("temperature>99.5", "attr_values_by_num"),
        ("temperature==50.0..50.2", "attr_values_by_num"),
        ('name=="Station 42"', "attr_values_by_txt"),
        ("temperature.observedAt>=2024-05-01T00:49:55Z", "attr_values_by_num"),
    ):
        query = EntityQuery(types=parse_types("W"), q=parse_q(text))
        plan = await store.entities.plan(query)
        assert index in plan, (text, plan)
        page, _ = await store.entities.search(query, limit=100, offset=0)
        assert [e["id"] for e in page] == [d["id"] for d in docs if evaluate(query.q, d)]  # type: ignore[arg-type]

    # a term most entities match is faster in id order, each row tested against the index
    monkeypatch.setattr(value_index, "ENOUGH", 1000)
    query = EntityQuery(types=parse_types("W"), q=parse_q("temperature>1"))
    plan = await store.entities.plan(query)
    assert "attr_values_of" in plan, plan  # the row's own index rows, entity by entity
    assert "attr_values_by_num" not in plan, plan
    page, _ = await store.entities.search(query, limit=100, offset=0, count=False)
    assert [e["id"] for e in page] == [d["id"] for d in docs if evaluate(query.q, d)][:100]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("member", "facts"),
    [
        (None, set()),
        ({"type": "Property", "value": 3}, {(value_facts.NUMBER, 3.0, None)}),
        ({"type": "Property", "value": True}, set()),
        (
            {"type": "Property", "value": [1, "x", None], "observedAt": "2024-05-01T00:00:01Z"},
            {
                (value_facts.NUMBER, 1.0, None),
                (value_facts.TEXT, None, "x"),
                (value_facts.OBSERVED, 1714521601.0, None),
            },
        ),
        ({"type": "Relationship", "object": "urn:a"}, {(value_facts.OBJECT, None, "urn:a")}),
        (
            {"type": "LanguageProperty", "languageMap": {"en": "hi", "fr": ["a", "b"]}},
            {(value_facts.TEXT, None, t) for t in ("hi", "a", "b")},
        ),
        ({"type": "Property", "value": list(range(65))}, {(value_facts.UNINDEXED, None, None)}),
        ({"type": "Property", "value": "x" * 201}, {(value_facts.UNINDEXED, None, None)}),
        ({"type": "Property", "value": 2**54}, {(value_facts.UNINDEXED, None, None)}),
        ({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}}, set()),
    ],
)
def test_facts_are_the_values_a_term_compares(member: Any, facts: set[Any]) -> None:
    assert set(value_facts.facts(member)) == facts


async def test_an_attribute_name_is_checked(store: Store) -> None:
    from ldt.cloud.errors import StoreError

    for bad in ("", "a\nb", "x" * 1001):
        with pytest.raises(StoreError):
            await store.value_indexes.add(bad)
