"""Translate a parsed NGSI-LD ``q`` expression into a SQL ``WHERE`` fragment over JSON documents.

Why: :func:`ldt.cloud.ngsild.query.evaluate` is the one semantics of ``q``, but running it over
every stored entity is O(n) Python. A store keeps each normalized entity as one JSON document
(SQLite JSON1 text, or PostgreSQL ``jsonb``); :func:`to_sql` compiles the AST into SQL that gives
the same answer inside the database, or a cheaper *prefilter* when it cannot.

The result is a :class:`SqlFilter`:

- ``exact=True``: the rows the fragment selects are exactly those ``evaluate`` accepts;
- ``exact=False``: the fragment selects a SUPERSET (it never drops a matching entity); the caller
  must run ``evaluate`` on each selected document;
- ``to_sql`` returns ``None`` when no useful SQL exists (the prefilter would be ``TRUE``): the
  caller evaluates every candidate in Python.

Exact: existence (``attr``, ``attr.sub``, ``attr[member]``), ``== != > >= < <=`` with numbers,
strings, URIs and booleans, ranges and value lists of those, over Property values (scalars and
arrays, any element), ``ListProperty``/``VocabProperty``/``JsonProperty``, ``LanguageProperty``
(``[lang]``, ``[*]``, lists flattened), Relationship ``object``/``ListRelationship``
``objectList`` (``==``/``!=`` only, like ``evaluate``), sub-attributes and plain members such as
``observedAt`` at any depth, multi-instance attributes (one instance suffices), ``;`` and ``|``.

Prefilter only (``exact=False``): ``~=``/``!~=`` (the engine is :class:`SafeRegex`, not the
database's), date/time/datetime literals (``evaluate`` compares parsed ISO 8601 instants, which
neither JSON1 nor jsonb do), linked-entity paths ``rel{...}`` (they need other documents), and
in SQLite integers outside the 64-bit range.

Assumptions (true for documents the broker stores, which are validated): a Relationship's
``object`` is a string or a list of strings, ``objectList`` items are strings or
``{"object": string}``; numbers fit a double exactly enough (|n| < 2**53) for Python's and the
database's comparisons to agree; strings are valid Unicode. PostgreSQL string ordering uses
``COLLATE "C"`` (code point order, like Python).

Parameters are bound, never interpolated; only ``doc_column`` (checked to be an identifier) is
pasted into the text. Placeholders are ``?`` on both engines (``ldt.cloud.store.database``
converts them for psycopg).
"""

# ruff: noqa: S608 - this module builds SQL text; every value is a bound parameter, and the only
# pasted name (doc_column) is checked against an identifier pattern.

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

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
)

__all__ = ["Dialect", "SqlFilter", "to_sql"]

Dialect: TypeAlias = Literal["sqlite", "postgresql"]

_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
_INT64 = (-(2**63), 2**63 - 1)
_RELATIONSHIPS = ("Relationship", "ListRelationship")
_SPECIAL_KINDS = ("LanguageProperty", "Relationship", "ListRelationship")
_VALUE_KEYS = {"ListProperty": "valueList", "VocabProperty": "vocab", "JsonProperty": "json"}
_TEMPORAL = frozenset({"datetime", "date", "time"})
_MARK = "\x00"


@dataclass(frozen=True, slots=True)
class SqlFilter:
    """A ``WHERE`` fragment over the document column, with its bound parameters in order.

    ``exact``: True when the fragment alone selects exactly the entities ``evaluate`` accepts;
    False when it is a superset and every selected document must be re-checked with
    ``evaluate``. Use it as ``... WHERE type = ? AND (<sql>)``.
    """

    sql: str
    params: list[Any]
    exact: bool


class _UnsupportedError(Exception):
    """A part of the query that this module cannot translate at all (internal)."""


# An element of a JSON value, as the dialect sees it. SQLite: (json_type, SQL atom) expressions;
# PostgreSQL: (jsonb expression, unused).
_Elem: TypeAlias = tuple[str, str]
_Pred: TypeAlias = Callable[[_Elem], str]


class _Sql:
    """Builds SQL text with out-of-order parameters: markers are numbered, renumbered at the end."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.values: list[Any] = []
        self.exact = True
        self._aliases = 0
        self._paths: dict[str, tuple[str, str]] = {}
        """SQLite: expression -> (base JSON, SQL path text) for ``base -> path`` expressions."""

    def param(self, value: Any) -> str:
        self.values.append(value)
        return f"{_MARK}{len(self.values) - 1}{_MARK}"

    def alias(self) -> str:
        self._aliases += 1
        return f"_q{self._aliases}"

    def finish(self, text: str) -> tuple[str, list[Any]]:
        placeholder = "?"  # both engines: database.Tx turns it into psycopg's %s
        params: list[Any] = []
        parts = text.split(_MARK)
        out: list[str] = []
        for i, part in enumerate(parts):
            if i % 2:
                params.append(self.values[int(part)])
                out.append(placeholder)
            else:
                out.append(part)
        return "".join(out), params

    # -- JSON navigation (all return JSON expressions: SQLite JSON text, PostgreSQL jsonb) --

    def key(self, x: str, name: str) -> str:
        """Member ``name`` of object ``x`` (SQL NULL if absent or ``x`` is not an object)."""
        if self.dialect == "sqlite":
            if '"' in name or "\\" in name:
                raise _UnsupportedError(name)
            label = f'."{name}"'
            if x in self._paths:  # extend the path: SQLite parses the base document once
                base, path = self._paths[x]
                path = f"({path} || {self.param(label)})"
            else:
                base, path = x, self.param("$" + label)
            out = f"({base} -> {path})"
            self._paths[out] = (base, path)
            return out
        return f"({x} -> {self.param(name)}::text)"

    def key_path(self, x: str, names_by_kind: dict[str, str], default: str, kind: str) -> str:
        """``x``'s member named by ``kind`` (a CASE over SQL text), as one path in SQLite."""
        if self.dialect != "sqlite" or x not in self._paths:
            cases = " ".join(
                f"WHEN '{k}' THEN {self.key(x, name)}" for k, name in names_by_kind.items()
            )
            return f"(CASE {kind} {cases} ELSE {self.key(x, default)} END)"
        base, path = self._paths[x]
        cases = " ".join(
            f"WHEN '{k}' THEN {self.param(f'.{chr(34)}{name}{chr(34)}')}"
            for k, name in names_by_kind.items()
        )
        label = self.param(f'."{default}"')
        full = f"({path} || (CASE {kind} {cases} ELSE {label} END))"
        out = f"({base} -> {full})"
        self._paths[out] = (base, full)
        return out

    def key_text(self, x: str, name: str) -> str:
        """Member ``name`` of ``x`` as an SQL scalar (text in PostgreSQL)."""
        if self.dialect == "sqlite":
            if x in self._paths:
                base, path = self._paths[x]
                return f"({base} ->> ({path} || {self.param(f'.{chr(34)}{name}{chr(34)}')}))"
            return f"({x} ->> {self.param(f'$.{chr(34)}{name}{chr(34)}')})"
        return f"({x} ->> {self.param(name)}::text)"

    def typeof(self, x: str) -> str:
        if self.dialect == "sqlite":
            if x in self._paths:
                base, path = self._paths[x]
                return f"json_type({base}, {path})"
            return f"json_type({x})"
        return f"jsonb_typeof({x})"

    def is_obj(self, x: str) -> str:
        return f"({self.typeof(x)} = 'object')"

    def is_arr(self, x: str) -> str:
        return f"({self.typeof(x)} = 'array')"

    def not_arr(self, x: str) -> str:
        return f"({x} IS NOT NULL AND {self.typeof(x)} <> 'array')"

    def elem(self, x: str) -> _Elem:
        """``x`` itself as an element."""
        if self.dialect == "sqlite":
            if x in self._paths:
                base, path = self._paths[x]
                return (f"json_type({base}, {path})", f"({base} ->> {path})")
            return (f"json_type({x})", f"({x} ->> '$')")
        return (x, "")

    def each(
        self, x: str, kind: Literal["array", "object"], pred: Callable[[str, str], str]
    ) -> str:
        """EXISTS a member (array element / object value) of ``x`` with ``pred(alias, json)``."""
        a = self.alias()
        src = self.from_each(x, kind, a)
        return f"EXISTS (SELECT 1 FROM {src} WHERE {pred(a, f'{a}.value')})"

    def from_each(self, x: str, kind: Literal["array", "object"], a: str) -> str:
        """A FROM item iterating the members of ``x`` (none when ``x`` is not a ``kind``)."""
        if self.dialect == "sqlite":
            if x in self._paths:
                base, path = self._paths[x]
                test = f"json_type({base}, {path}) = '{kind}'"
                return (
                    f"json_each(CASE WHEN {test} THEN {base} ELSE '[]' END,"
                    f" CASE WHEN {test} THEN {path} ELSE '$' END) {a}"
                )
            return f"json_each(CASE WHEN json_type({x}) = '{kind}' THEN {x} ELSE '[]' END) {a}"
        fn, empty = ("jsonb_array_elements", "'[]'") if kind == "array" else ("jsonb_each", "'{}'")
        guarded = f"CASE WHEN jsonb_typeof({x}) = '{kind}' THEN {x} ELSE {empty}::jsonb END"
        return f"{fn}({guarded}) AS {a}" + ("(value)" if kind == "array" else "")

    def member_elem(self, a: str, value: str) -> _Elem:
        """A json_each/jsonb_* row as an element."""
        if self.dialect == "sqlite":
            return (f"{a}.type", f"{a}.atom")
        return (value, "")

    def member_type(self, a: str, value: str) -> str:
        return f"{a}.type" if self.dialect == "sqlite" else f"jsonb_typeof({value})"

    def member_json(self, a: str, value: str) -> str:
        """The JSON of a row known to be an object or an array."""
        return f"{a}.value" if self.dialect == "sqlite" else value

    # -- element predicates --

    def etype(self, e: _Elem) -> str:
        return e[0] if self.dialect == "sqlite" else f"jsonb_typeof({e[0]})"

    def is_type(self, e: _Elem, kinds: tuple[str, ...]) -> str:
        names = {
            "number": ("integer", "real") if self.dialect == "sqlite" else ("number",),
            "string": ("text",) if self.dialect == "sqlite" else ("string",),
            "object": ("object",),
            "array": ("array",),
        }
        flat = tuple(n for k in kinds for n in names[k])
        return f"({self.etype(e)} IN ({', '.join(repr(n) for n in flat)}))"

    def compare(self, e: _Elem, op: str, q: QValue) -> str:
        """``e op q`` for a number, string/uri or boolean literal; FALSE on a type mismatch."""
        sql_op = {"==": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[op]
        if q.kind == "boolean":
            want = "true" if q.value else "false"
            if self.dialect == "sqlite":
                return f"({e[0]} = '{want}')"
            return f"(jsonb_typeof({e[0]}) = 'boolean' AND {e[0]} = '{want}'::jsonb)"
        if q.kind == "number":
            if self.dialect == "sqlite":
                if isinstance(q.value, int) and not _INT64[0] <= q.value <= _INT64[1]:
                    self.exact = False
                    return self.is_type(e, ("number",))
                return f"({self.is_type(e, ('number',))} AND {e[1]} {sql_op} {self.param(q.value)})"
            v = self.param(repr(q.value))
            return (
                f"(CASE WHEN jsonb_typeof({e[0]}) = 'number'"
                f" THEN ({e[0]})::numeric {sql_op} {v}::numeric ELSE FALSE END)"
            )
        text = str(q.value)
        if self.dialect == "sqlite":
            return f"({e[0]} = 'text' AND {e[1]} {sql_op} {self.param(text)})"
        return (
            f"(CASE WHEN jsonb_typeof({e[0]}) = 'string'"
            f" THEN ({e[0]} #>> '{{}}') COLLATE \"C\" {sql_op} {self.param(text)}::text"
            " ELSE FALSE END)"
        )


def to_sql(expr: QExpr, *, dialect: Dialect, doc_column: str = "doc") -> SqlFilter | None:
    """Compile ``expr`` for ``dialect`` over the JSON document in ``doc_column``.

    Returns None when the best prefilter is TRUE (nothing to gain from SQL: evaluate every
    candidate). Raises ``ValueError`` for an unknown dialect or a ``doc_column`` that is not an
    identifier (it is the one piece of text pasted into the SQL).
    """
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown SQL dialect {dialect!r}; use 'sqlite' or 'postgresql'")
    if not isinstance(doc_column, str) or not _COLUMN.fullmatch(doc_column):
        raise ValueError(f"doc_column {doc_column!r} is not a (table.)column identifier")
    sql = _Sql(dialect)
    text = _expr(sql, expr, doc_column)
    if text is None:
        return None
    final, params = sql.finish(text)
    return SqlFilter(final, params, sql.exact)


def _expr(sql: _Sql, expr: QExpr, doc: str) -> str | None:
    """SQL for ``expr``; None means TRUE (and makes the result inexact)."""
    if isinstance(expr, QAnd | QOr):
        parts = [_expr(sql, item, doc) for item in expr.items]
        if isinstance(expr, QAnd):
            kept = [p for p in parts if p is not None]
            return f"({' AND '.join(kept)})" if kept else None
        if any(p is None for p in parts):
            return None
        return f"({' OR '.join(p for p in parts if p is not None)})"
    mark = len(sql.values)
    try:
        return _term(sql, expr, doc)
    except _UnsupportedError:
        del sql.values[mark:]
        sql.exact = False
        return None


def _term(sql: _Sql, term: QTerm, doc: str) -> str:
    path = term.path
    if path.link is not None:
        sql.exact = False  # other documents decide; the Relationship must at least exist
        link_path = AttrPath(path.names)
        return _targets(sql, doc, link_path.names, lambda is_attr, v: "TRUE")
    if term.op is None or term.value is None:
        return _targets(sql, doc, path.names, lambda is_attr, v: _exists(sql, is_attr, v, path))
    op, value = term.op, term.value
    return _targets(
        sql,
        doc,
        path.names,
        lambda is_attr, v: _holds(sql, is_attr=is_attr, v=v, op=op, value=value, path=path),
    )


def _targets(sql: _Sql, doc: str, names: tuple[str, ...], cond: Callable[[bool, str], str]) -> str:
    """EXISTS a target of the dotted ``names`` (like ``query._targets``) satisfying ``cond``.

    Each level of the path is one common table expression of (is_attr, json) rows, so the SQL
    grows linearly with the path, not exponentially, and stays shallow for the SQL parsers.
    """
    top = sql.key(doc, names[0])
    if len(names) == 1:  # the common case, without a CTE: the object, or an array's objects
        obj = f"({sql.is_obj(top)} AND {cond(True, top)})"
        arr = sql.each(
            top,
            "array",
            lambda a, val: (
                f"{sql.member_type(a, val)} = 'object' AND {cond(True, sql.member_json(a, val))}"
            ),
        )
        return f"({obj} OR {arr})"
    ctes: list[str] = []
    name = sql.alias()
    a = sql.alias()
    ctes.append(
        f"{name}(a, v) AS (SELECT 1, {top} WHERE {sql.is_obj(top)}"
        f" UNION ALL SELECT 1, {sql.member_json(a, f'{a}.value')}"
        f" FROM {sql.from_each(top, 'array', a)}"
        f" WHERE {sql.member_type(a, f'{a}.value')} = 'object')"
    )
    for i, step in enumerate(names[1:], start=1):
        prev, name = name, sql.alias()
        t, j, k = sql.alias(), sql.alias(), sql.alias()
        m = sql.key(f"{t}.v", step)
        typed = (
            f"{sql.from_each(m, 'array', k)} WHERE {sql.member_type(k, f'{k}.value')} = 'object'"
        )
        untyped = (
            f"{sql.from_each(m, 'array', k)} WHERE {sql.member_type(k, f'{k}.value')} = 'object'"
            f" AND {sql.key(sql.member_json(k, f'{k}.value'), 'type')} IS NULL"
        )
        # sub-attributes: an object with a type, or an array whose objects (>= 1) all have one
        all_typed = f"(EXISTS (SELECT 1 FROM {typed}) AND NOT EXISTS (SELECT 1 FROM {untyped}))"
        obj_typed = f"({sql.is_obj(m)} AND {sql.key(m, 'type')} IS NOT NULL)"
        parts = [
            f"SELECT 1, {m} FROM {prev} {t} WHERE {t}.a = 1 AND {obj_typed}",
            f"SELECT 1, {sql.member_json(j, f'{j}.value')}"
            f" FROM {prev} {t}, {sql.from_each(m, 'array', j)}"
            f" WHERE {t}.a = 1 AND {sql.member_type(j, f'{j}.value')} = 'object'"
            f" AND {all_typed}",
        ]
        if i == len(names) - 1:  # a plain member (observedAt...) cannot be followed further
            parts.append(
                f"SELECT 0, {m} FROM {prev} {t} WHERE {t}.a = 1 AND {m} IS NOT NULL"
                f" AND {sql.typeof(m)} <> 'null' AND NOT {obj_typed}"
                f" AND NOT ({sql.is_arr(m)} AND {all_typed})"
            )
        ctes.append(f"{name}(a, v) AS ({' UNION ALL '.join(parts)})")
    t = sql.alias()
    attr_cond = cond(True, f"{t}.v")
    where = f"{t}.a = 1 AND {attr_cond}"
    if len(names) > 1:
        where = f"({where}) OR ({t}.a = 0 AND {cond(False, f'{t}.v')})"
    return f"EXISTS (WITH {', '.join(ctes)} SELECT 1 FROM {name} {t} WHERE {where})"


def _exists(sql: _Sql, is_attr: bool, v: str, path: AttrPath) -> str:
    member = path.member
    if member is None:
        return "TRUE"
    if not is_attr:
        return f"({_chain(sql, v, member)} IS NOT NULL)"
    kind = sql.key_text(v, "type")
    lang = sql.key(v, "languageMap")
    if member == ("*",):
        lang_present = sql.is_obj(lang)
    elif len(member) == 1:
        lang_present = f"({sql.is_obj(lang)} AND {sql.key(lang, member[0])} IS NOT NULL)"
    else:
        lang_present = "FALSE"
    default = f"({_chain(sql, _value_member(sql, v, kind), member)} IS NOT NULL)"
    return _by_kind(kind, lang_present, "FALSE", default)


def _value_member(sql: _Sql, v: str, kind: str) -> str:
    """The JSON holding the value of a (non-language, non-relationship) attribute instance."""
    return sql.key_path(v, _VALUE_KEYS, "value", kind)


def _chain(sql: _Sql, x: str, names: tuple[str, ...]) -> str:
    for name in names:
        x = sql.key(x, name)
    return x


def _by_kind(kind: str, lang: str, rel: str, default: str) -> str:
    specials = ", ".join(f"'{k}'" for k in _SPECIAL_KINDS)
    return (
        f"(({kind} = 'LanguageProperty' AND {lang})"
        f" OR ({kind} IN ('Relationship', 'ListRelationship') AND {rel})"
        f" OR (COALESCE({kind} NOT IN ({specials}), TRUE) AND {default}))"
    )


def _any_value(sql: _Sql, x: str, pred: _Pred) -> str:
    """EXISTS an element of JSON value ``x`` (its items if an array, else itself) with ``pred``."""
    inline = f"COALESCE({sql.not_arr(x)} AND {pred(sql.elem(x))}, FALSE)"
    each = sql.each(x, "array", lambda a, val: f"COALESCE({pred(sql.member_elem(a, val))}, FALSE)")
    return f"({inline} OR {each})"


def _any_lang(sql: _Sql, lang: str, member: tuple[str, ...] | None, pred: _Pred) -> str:
    if member is not None and member != ("*",):
        if len(member) != 1:
            return "FALSE"
        return _any_value(sql, sql.key(lang, member[0]), pred)

    def per_value(a: str, val: str) -> str:
        hit = pred(sql.member_elem(a, val))
        scalar = f"({sql.member_type(a, val)} <> 'array' AND COALESCE({hit}, FALSE))"
        nested = sql.each(
            sql.member_json(a, val),
            "array",
            lambda b, v2: f"COALESCE({pred(sql.member_elem(b, v2))}, FALSE)",
        )
        return f"({scalar} OR ({sql.member_type(a, val)} = 'array' AND {nested}))"

    return f"({sql.is_obj(lang)} AND {sql.each(lang, 'object', per_value)})"


def _any_rel(sql: _Sql, v: str, kind: str, pred: _Pred) -> str:
    obj = sql.key(v, "object")
    single = _any_value(sql, obj, pred)
    lst = sql.key(v, "objectList")

    def item(a: str, val: str) -> str:
        t = sql.member_type(a, val)
        inner = sql.key(sql.member_json(a, val), "object")
        return (
            f"(({t} = 'object' AND COALESCE({pred(sql.elem(inner))}, FALSE))"
            f" OR ({t} NOT IN ('object', 'null')"
            f" AND COALESCE({pred(sql.member_elem(a, val))}, FALSE)))"
        )

    listed = sql.each(lst, "array", item)
    return f"(({kind} = 'Relationship' AND {single}) OR ({kind} = 'ListRelationship' AND {listed}))"


def _rel_present(sql: _Sql, v: str, kind: str) -> str:
    obj = sql.key(v, "object")
    lst = sql.key(v, "objectList")
    single = (
        f"({obj} IS NOT NULL AND {sql.typeof(obj)} <> 'null'"
        f" AND NOT ({sql.is_arr(obj)} AND NOT"
        f" {sql.each(obj, 'array', lambda a, val: 'TRUE')}))"
    )
    listed = sql.each(lst, "array", lambda a, val: f"{sql.member_type(a, val)} <> 'null'")
    return f"(({kind} = 'Relationship' AND {single}) OR ({kind} = 'ListRelationship' AND {listed}))"


def _holds(
    sql: _Sql,
    *,
    is_attr: bool,
    v: str,
    op: str,
    value: QValue | QRange | QList | Regex,
    path: AttrPath,
) -> str:
    member = path.member
    pred, negate = _predicate(sql, op, value)
    if not is_attr:
        x = _chain(sql, v, member or ())
        hit = _any_value(sql, x, pred)
        return f"({x} IS NOT NULL AND NOT {hit})" if negate else hit
    kind = sql.key_text(v, "type")
    lang = sql.key(v, "languageMap")
    x = _chain(sql, _value_member(sql, v, kind), member or ())
    lang_hit = _any_lang(sql, lang, member, pred)
    default_hit = _any_value(sql, x, pred)
    if op not in ("==", "!="):
        return _by_kind(kind, lang_hit, "FALSE", default_hit)
    rel_hit = "FALSE" if member is not None else _any_rel(sql, v, kind, pred)
    if not negate:
        return _by_kind(kind, lang_hit, rel_hit, default_hit)
    if member is None or member == ("*",):
        lang_present = sql.is_obj(lang)
    elif len(member) == 1:
        lang_present = f"({sql.is_obj(lang)} AND {sql.key(lang, member[0])} IS NOT NULL)"
    else:
        lang_present = "FALSE"
    rel_present = "FALSE" if member is not None else _rel_present(sql, v, kind)
    return _by_kind(
        kind,
        f"({lang_present} AND NOT {lang_hit})",
        f"({rel_present} AND NOT {rel_hit})",
        f"({x} IS NOT NULL AND NOT {default_hit})",
    )


def _predicate(sql: _Sql, op: str, value: QValue | QRange | QList | Regex) -> tuple[_Pred, bool]:
    """(element predicate, negate): ``!=`` is "present and no element equal"."""
    if isinstance(value, Regex):
        sql.exact = False  # any string element might match (or not): evaluate decides
        return (lambda e: sql.is_type(e, ("string",))), False
    if op == "!=":
        if _has_temporal(value):
            sql.exact = False
            return (lambda e: "FALSE"), True  # superset: "present"
        return (lambda e: _equal(sql, e, value)), True
    if op == "==":
        return (lambda e: _equal(sql, e, value)), False
    assert isinstance(value, QValue)  # the parser allows only a literal after an ordering op
    if value.kind in _TEMPORAL:
        sql.exact = False
        return (lambda e: sql.is_type(e, ("string", "object"))), False
    return (lambda e: sql.compare(e, op, value)), False


def _has_temporal(value: QValue | QRange | QList) -> bool:
    if isinstance(value, QList):
        return any(i.kind in _TEMPORAL for i in value.items)
    if isinstance(value, QRange):
        return value.low.kind in _TEMPORAL
    return value.kind in _TEMPORAL


def _equal(sql: _Sql, e: _Elem, value: QValue | QRange | QList | Regex) -> str:
    if isinstance(value, QList):
        return "(" + " OR ".join(_equal(sql, e, item) for item in value.items) + ")"
    if isinstance(value, QRange):
        if value.low.kind in _TEMPORAL:
            sql.exact = False
            return sql.is_type(e, ("string", "object"))
        return f"({sql.compare(e, '>=', value.low)} AND {sql.compare(e, '<=', value.high)})"
    if isinstance(value, Regex):  # pragma: no cover - handled by _predicate
        raise _UnsupportedError("regex")
    if value.kind in _TEMPORAL:
        sql.exact = False
        return sql.is_type(e, ("string", "object"))
    return sql.compare(e, "==", value)
