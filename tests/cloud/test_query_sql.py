"""``q`` compiled to SQL gives the same entities as ``evaluate``, in real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ldt.cloud.ngsild.query import (
    AttrPath,
    QAnd,
    QExpr,
    QList,
    QOr,
    QRange,
    QTerm,
    QValue,
    Regex,
    SafeRegex,
    evaluate,
    parse_q,
    render,
)
from ldt.cloud.ngsild.query_sql import SqlFilter, to_sql
from ldt.cloud.store.dialect import POSTGRESQL
from tests.pg import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server"]

# --- generators ------------------------------------------------------------------------------

ATTRS = ["p", "q", "r"]
SUBS = ["s", "observedAt", "unitCode"]
scalars = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([1.5, -0.25, 2.0, 1e15, 3.0000001]),
    st.sampled_from(["a", "b", "ab", "", "urn:a", "é", "2020-01-01T10:00:00Z", "10:00:00"]),
    st.booleans(),
    st.none(),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["x", "y", "*", "en"]), inner, max_size=2),
    ),
    max_leaves=5,
)
typed_dates = st.sampled_from(
    [
        {"@type": "DateTime", "@value": "2020-01-01T12:00:00+02:00"},
        {"@type": "Date", "@value": "2020-02-29"},
    ]
)
urns = st.sampled_from(["urn:a", "urn:b", "a"])


def _with_subs(draw: st.DrawFn, attr: dict[str, Any], depth: int) -> dict[str, Any]:
    for sub in draw(st.lists(st.sampled_from(SUBS), max_size=2, unique=True)):
        if sub == "observedAt":
            attr[sub] = draw(st.sampled_from(["2020-01-01T10:00:00Z", "x", None, 3]))
        elif sub == "unitCode":
            attr[sub] = draw(st.sampled_from(["KMH", "CEL"]))
        elif depth < 2:
            attr[sub] = draw(attributes(depth + 1))
    return attr


@st.composite
def instances(draw: st.DrawFn, depth: int = 0) -> Any:
    kind = draw(
        st.sampled_from(
            [
                "Property",
                "Property",
                "Relationship",
                "ListRelationship",
                "LanguageProperty",
                "ListProperty",
                "VocabProperty",
                "JsonProperty",
                "untyped",
                "junk",
            ]
        )
    )
    attr: dict[str, Any]
    if kind == "Property":
        attr = {"type": kind, "value": draw(st.one_of(json_values, typed_dates))}
    elif kind == "Relationship":
        attr = {"type": kind, "object": draw(st.one_of(urns, st.lists(urns, max_size=2)))}
    elif kind == "ListRelationship":
        items = st.one_of(urns, urns.map(lambda u: {"object": u}))
        attr = {"type": kind, "objectList": draw(st.lists(items, max_size=2))}
    elif kind == "LanguageProperty":
        texts = st.one_of(urns, st.lists(urns, max_size=2))
        lang = draw(st.dictionaries(st.sampled_from(["en", "fr", "*"]), texts, max_size=2))
        attr = {"type": kind, "languageMap": lang}
    elif kind == "untyped":
        attr = {"value": draw(json_values)}
    elif kind == "junk":
        return draw(scalars)
    else:
        key = {"ListProperty": "valueList", "VocabProperty": "vocab", "JsonProperty": "json"}[kind]
        attr = {"type": kind, key: draw(json_values)}
    return _with_subs(draw, attr, depth)


def attributes(depth: int = 0) -> st.SearchStrategy[Any]:
    return st.one_of(instances(depth), st.lists(instances(depth), min_size=0, max_size=3))


def entity_lists() -> st.SearchStrategy[list[dict[str, Any]]]:
    one = st.dictionaries(st.sampled_from(ATTRS), attributes(), max_size=3)
    return st.lists(one, min_size=1, max_size=8).map(
        lambda docs: [{"id": f"urn:e:{i}", "type": "T", **attrs} for i, attrs in enumerate(docs)]
    )


literals = st.one_of(
    st.integers(-3, 3).map(lambda n: QValue("number", n)),
    st.sampled_from([1.5, 2.0, 1e15, -0.25]).map(lambda n: QValue("number", n)),
    st.sampled_from(["a", "b", "ab", "", "é"]).map(lambda s: QValue("string", s)),
    st.sampled_from(["urn:a", "urn:b", "a"]).map(lambda s: QValue("uri", s)),
    st.booleans().map(lambda b: QValue("boolean", b)),
    st.just(QValue("datetime", datetime(2020, 1, 1, 10, tzinfo=UTC))),
)
ordered_literals = literals.filter(lambda v: v.kind in ("number", "string", "datetime"))
paths = st.builds(
    AttrPath,
    st.tuples(st.sampled_from(ATTRS))
    | st.tuples(st.sampled_from(ATTRS), st.sampled_from([*SUBS, "value"]))
    | st.tuples(st.sampled_from(ATTRS), st.just("s"), st.sampled_from(SUBS)),
    st.one_of(
        st.none(),
        st.none(),
        st.sampled_from([("x",), ("y",), ("*",), ("en",), ("x", "y"), ("fr",)]),
    ),
)
value_literals = st.one_of(
    literals,
    st.lists(literals, min_size=2, max_size=3).map(lambda v: QList(tuple(v))),
    st.sampled_from(
        [
            QRange(QValue("number", -1), QValue("number", 2)),
            QRange(QValue("string", "a"), QValue("string", "b")),
        ]
    ),
)
terms = st.one_of(
    paths.map(QTerm),
    st.builds(QTerm, paths, st.sampled_from(["==", "!="]), value_literals),
    st.builds(QTerm, paths, st.sampled_from([">", ">=", "<", "<="]), ordered_literals),
    st.builds(
        QTerm,
        paths,
        st.sampled_from(["~=", "!~="]),
        st.sampled_from(["^a", "b$"]).map(lambda p: Regex(p, SafeRegex(p))),
    ),
)


def _combine(children: st.SearchStrategy[QExpr]) -> st.SearchStrategy[QExpr]:
    def build(cls: type[QAnd] | type[QOr], items: list[QExpr]) -> QExpr:
        flat: list[QExpr] = []
        for item in items:
            flat.extend(item.items if isinstance(item, cls) else (item,))
        return cls(tuple(flat))

    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: build(QAnd, xs)),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: build(QOr, xs)),
    )


expressions = st.recursive(terms, _combine, max_leaves=4)

# --- SQLite ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite() -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(":memory:", check_same_thread=False)
    con.execute("CREATE TABLE entities (id TEXT PRIMARY KEY, type TEXT, doc TEXT NOT NULL)")
    yield con
    con.close()


def _store(con: sqlite3.Connection, docs: list[dict[str, Any]]) -> None:
    con.execute("DELETE FROM entities")
    con.executemany(
        "INSERT INTO entities VALUES (?, ?, ?)",
        [(d["id"], d["type"], json.dumps(d)) for d in docs],
    )


def _check(
    expr: QExpr, docs: list[dict[str, Any]], found: set[str] | None, result: SqlFilter | None
) -> None:
    expected = {d["id"] for d in docs if evaluate(expr, d)}
    by_id = {d["id"]: d for d in docs}
    if result is None:
        return
    assert found is not None
    if result.exact:
        assert found == expected, (render(expr), result.sql)
    else:
        assert expected <= found, (render(expr), result.sql)
        assert {i for i in found if evaluate(expr, by_id[i])} == expected


LONG = os.environ.get("LDT_LONG") == "1"
"""The long form (``LDT_LONG=1``) tries 600 and 300 random queries; CI tries 250 and 120."""


@pytest.mark.slow
@given(entity_lists(), expressions)
@settings(
    max_examples=600 if LONG else 250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_sqlite_selects_what_evaluate_accepts(
    lite: sqlite3.Connection, docs: list[dict[str, Any]], expr: QExpr
) -> None:
    _store(lite, docs)
    result = to_sql(expr, dialect="sqlite")
    found = None
    if result is not None:
        rows = lite.execute(f"SELECT id FROM entities WHERE {result.sql}", result.params)
        found = {r[0] for r in rows}
    _check(expr, docs, found, result)


def test_exactness_by_construct() -> None:
    exact = ["p", "p.s.observedAt", 'p[x]=="a"', "p>1;q!=urn:a|r==1..2", 'p[*]=="a","b"']
    inexact = ["p~=a", "p==2020-01-01", "p<10:00:00", "p{q}==1", "p!=2020-01-01T00:00:00Z"]
    for text in exact:
        result = to_sql(parse_q(text), dialect="sqlite")
        assert result is not None
        assert result.exact, text
    for text in inexact:
        result = to_sql(parse_q(text), dialect="postgresql")
        assert result is not None
        assert not result.exact, text


def test_untranslatable_names_give_no_sql_and_bad_arguments_are_rejected() -> None:
    assert to_sql(parse_q("https://x.org/a\\b==1"), dialect="sqlite") is None
    with pytest.raises(ValueError, match="identifier"):
        to_sql(parse_q("p"), dialect="sqlite", doc_column="doc; DROP TABLE x")
    with pytest.raises(ValueError, match="dialect"):
        to_sql(parse_q("p"), dialect="mysql")  # type: ignore[arg-type]


def test_values_are_bound_not_pasted(lite: sqlite3.Connection) -> None:
    evil = "x'); DROP TABLE entities; --"
    docs = [{"id": "urn:e:1", "type": "T", "p": {"type": "Property", "value": evil}}]
    _store(lite, docs)
    result = to_sql(parse_q(f"p=={json.dumps(evil)}"), dialect="sqlite")
    assert result is not None
    assert evil not in result.sql
    rows = lite.execute(f"SELECT id FROM entities WHERE {result.sql}", result.params).fetchall()
    assert rows == [("urn:e:1",)]


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_dsn, autocommit=True, connect_timeout=10) as con:
        con.execute("CREATE TABLE entities (id text PRIMARY KEY, type text, doc jsonb NOT NULL)")
        yield con


@pytest.mark.slow
@given(entity_lists(), expressions)
@settings(
    max_examples=300 if LONG else 120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_postgresql_selects_what_evaluate_accepts(
    pg: psycopg.Connection[Any], docs: list[dict[str, Any]], expr: QExpr
) -> None:
    pg.execute("DELETE FROM entities")
    with pg.cursor() as cur:
        cur.executemany(
            "INSERT INTO entities VALUES (%s, %s, %s::jsonb)",
            [(d["id"], d["type"], json.dumps(d)) for d in docs],
        )
    result = to_sql(expr, dialect="postgresql")
    found = None
    if result is not None:
        sql = POSTGRESQL.sql(f"SELECT id FROM entities WHERE {result.sql}")  # ? -> %s
        rows = pg.execute(sql.encode(), result.params)
        found = {r[0] for r in rows}
    _check(expr, docs, found, result)
