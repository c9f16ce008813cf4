"""One entity query (clause 5.7.2) in storage terms: what a store filters and re-checks.

The API layer parses the request (``type``, ``id``, ``idPattern``, ``attrs``, ``q``, ``scopeQ``,
geo-query), expands every name with the request's ``@context`` into the names entities are
stored with, and hands the store an :class:`EntityQuery`. A store translates what it can into
SQL (see :func:`type_sql`, ``query_sql.to_sql``) and calls :meth:`EntityQuery.matches` on each
candidate for the rest, so both stores and the Python fallback share one semantics.

Entity type selection (clause 4.17): ``A,B`` or ``A|B`` (either), ``A;B`` (both, for entities
with several types), parentheses nest. :func:`parse_types` turns the text into a small tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from ldt.cloud.access.roles import Scope
from ldt.cloud.ngsild import geo
from ldt.cloud.ngsild.order_by import OrderKey
from ldt.cloud.ngsild.query import (
    AttrPath,
    LinkedPath,
    QAnd,
    QExpr,
    QOr,
    QSyntaxError,
    ScopeExpr,
    evaluate,
    evaluate_scope,
)
from ldt.cloud.ngsild.safe_regex import SafeRegex

__all__ = [
    "LOCATION_NAMES",
    "EntityQuery",
    "TypeAnd",
    "TypeExpr",
    "TypeOr",
    "entity_types",
    "geometries",
    "map_q_names",
    "map_type_names",
    "parse_types",
    "type_names",
    "type_sql",
]

LOCATION_NAMES = ("location", "https://uri.etsi.org/ngsi-ld/location")
"""The keys under which an entity's ``location`` may be stored (short or expanded)."""

# members of an attribute that are not sub-attributes: never expanded (jsonld keeps them)
_MEMBERS = frozenset(
    {
        "type", "value", "object", "objectList", "objectType", "languageMap", "vocab", "json",
        "valueList", "observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt",
        "deletedAt", "instanceId", "lang",
    }
)  # fmt: skip
_TYPE_NAME = re.compile(r"[^\s,;|()]+")
MAX_TYPE_EXPRESSION = 4096


@dataclass(frozen=True, slots=True)
class TypeOr:
    """One of the items holds."""

    items: tuple[TypeExpr, ...]


@dataclass(frozen=True, slots=True)
class TypeAnd:
    """Every item holds (an entity with several types)."""

    items: tuple[TypeExpr, ...]


TypeExpr: TypeAlias = str | TypeOr | TypeAnd


def parse_types(text: str) -> TypeExpr:
    """Parse an entity type selection (4.17). Raises ``QSyntaxError`` (parameter ``type``)."""
    if len(text) > MAX_TYPE_EXPRESSION:
        raise QSyntaxError(
            f"longer than {MAX_TYPE_EXPRESSION} characters", column=0, text=text, parameter="type"
        )
    pos = 0

    def error(detail: str) -> QSyntaxError:
        return QSyntaxError(detail, column=pos, text=text, parameter="type")

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos].isspace():
            pos += 1

    def alternatives(depth: int) -> TypeExpr:
        nonlocal pos
        items = [conjunction(depth)]
        skip()
        while pos < len(text) and text[pos] in ",|":
            pos += 1
            items.append(conjunction(depth))
            skip()
        return items[0] if len(items) == 1 else TypeOr(tuple(items))

    def conjunction(depth: int) -> TypeExpr:
        nonlocal pos
        items = [primary(depth)]
        skip()
        while pos < len(text) and text[pos] == ";":
            pos += 1
            items.append(primary(depth))
            skip()
        return items[0] if len(items) == 1 else TypeAnd(tuple(items))

    def primary(depth: int) -> TypeExpr:
        nonlocal pos
        skip()
        if pos < len(text) and text[pos] == "(":
            if depth >= 32:
                raise error("parentheses nest deeper than 32 levels")
            pos += 1
            inner = alternatives(depth + 1)
            skip()
            if pos >= len(text) or text[pos] != ")":
                raise error("expected ')'")
            pos += 1
            return inner
        found = _TYPE_NAME.match(text, pos)
        if found is None:
            what = "expected an entity type name" if pos < len(text) else "the text ends early"
            raise error(what)
        pos = found.end()
        return found.group()

    expr = alternatives(0)
    skip()
    if pos < len(text):
        raise error(f"unexpected {text[pos]!r}")
    return expr


def type_names(expr: TypeExpr) -> list[str]:
    """Every type name the expression mentions, first occurrence first."""
    if isinstance(expr, str):
        return [expr]
    out: list[str] = []
    for item in expr.items:
        out.extend(n for n in type_names(item) if n not in out)
    return out


def map_type_names(expr: TypeExpr, fn: Callable[[str], str]) -> TypeExpr:
    """The same expression with every name replaced by ``fn(name)`` (e.g. expanded to an IRI)."""
    if isinstance(expr, str):
        return fn(expr)
    return type(expr)(tuple(map_type_names(i, fn) for i in expr.items))


def entity_types(entity: Mapping[str, Any]) -> set[str]:
    """The types an entity declares (``type`` is a name or a list of names)."""
    declared = entity.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    return set()


def _types_hold(expr: TypeExpr, types: set[str]) -> bool:
    if isinstance(expr, str):
        return expr in types
    if isinstance(expr, TypeAnd):
        return all(_types_hold(i, types) for i in expr.items)
    return any(_types_hold(i, types) for i in expr.items)


def type_sql(
    expr: TypeExpr, *, dialect: Literal["sqlite", "postgresql"], column: str = "type"
) -> tuple[str, list[Any]]:
    """An exact ``WHERE`` fragment over table ``entities`` for a type selection.

    The ``type`` column holds the type of a single-typed entity (the first of several); an
    entity with a list of types is matched through its document.
    """
    if isinstance(expr, str):
        # two indexable terms (SQLite's MULTI-INDEX OR): the type column (entities_by_type)
        # and the few entities with several types (partial index entities_multi_typed)
        if dialect == "sqlite":
            return (
                f"({column} = ? OR rowid IN (SELECT rowid FROM entities"  # noqa: S608 (a column name of ours)
                " WHERE json_type(doc, '$.type') = 'array' AND EXISTS"
                " (SELECT 1 FROM json_each(doc, '$.type') WHERE value = ?)))",
                [expr, expr],
            )
        return (
            f"({column} = ? OR id IN (SELECT id FROM entities"  # noqa: S608
            " WHERE jsonb_typeof(doc->'type') = 'array' AND jsonb_exists(doc->'type', ?)))",
            [expr, expr],
        )
    parts = [type_sql(i, dialect=dialect, column=column) for i in expr.items]
    joiner = " AND " if isinstance(expr, TypeAnd) else " OR "
    return (
        "(" + joiner.join(p[0] for p in parts) + ")",
        [param for p in parts for param in p[1]],
    )


def map_q_names(expr: QExpr, fn: Callable[[str], str]) -> QExpr:
    """``expr`` with attribute and sub-attribute names (and linked types) mapped by ``fn``.

    Members such as ``observedAt`` and the path into a value (``attr[a.b]``) are kept: they
    are not JSON-LD terms.
    """
    if isinstance(expr, QAnd | QOr):
        return type(expr)(tuple(map_q_names(i, fn) for i in expr.items))
    return replace(expr, path=_map_path(expr.path, fn))


def _map_path(path: AttrPath, fn: Callable[[str], str]) -> AttrPath:
    names = tuple(n if i and n in _MEMBERS else fn(n) for i, n in enumerate(path.names))
    link = path.link
    if link is not None:
        link = LinkedPath(tuple(fn(t) for t in link.types), _map_path(link.path, fn))
    return AttrPath(names, path.member, link)


def geometries(entity: Mapping[str, Any], names: Sequence[str]) -> list[Any]:
    """The GeoJSON values of the first of ``names`` the entity has (one per instance)."""
    for name in names:
        member = entity.get(name)
        if member is None:
            continue
        instances = member if isinstance(member, list) else [member]
        out = []
        for inst in instances:
            if isinstance(inst, Mapping):
                out.append(inst.get("value"))
            else:  # concise form stored as a bare geometry
                out.append(inst)
        return out
    return []


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """A query in storage terms: every name is as stored (the API expanded them).

    ``None`` means "no filter". ``attrs``: the entity has at least one of them. ``geo_names``:
    the stored names of the geo-query's ``geoproperty`` (the first present is used). ``order``:
    the ``orderBy`` keys (``order_by``; empty: by id), applied by the store's SQL.
    """

    types: TypeExpr | None = None
    ids: tuple[str, ...] | None = None
    id_pattern: SafeRegex | None = None
    attrs: tuple[str, ...] | None = None
    q: QExpr | None = None
    scope: ScopeExpr | None = None
    geo: geo.GeoQuery | None = None
    geo_names: tuple[str, ...] = field(default=LOCATION_NAMES)
    order: tuple[OrderKey, ...] = ()
    allowed: Scope | None = None
    """The entities the caller's grant reaches (``ldt.cloud.access``); None: all of them."""

    def matches(self, entity: Mapping[str, Any], *, q: bool = True) -> bool:
        """Whether ``entity`` (a stored document) satisfies every filter.

        ``q=False`` skips ``q`` (the caller knows its SQL was exact).
        """
        if self.ids is not None and entity.get("id") not in self.ids:
            return False
        if self.types is not None and not _types_hold(self.types, entity_types(entity)):
            return False
        if self.id_pattern is not None and not self.id_pattern.search(str(entity.get("id"))):
            return False
        if self.attrs is not None and not any(a in entity for a in self.attrs):
            return False
        if q and self.q is not None and not evaluate(self.q, entity):
            return False
        if self.scope is not None and not evaluate_scope(self.scope, entity):
            return False
        if self.allowed is not None and not self.allowed.allows(
            str(entity.get("id")), entity_types(entity)
        ):
            return False
        if self.geo is not None:
            found = geometries(entity, self.geo_names)
            if not any(geo.matches(self.geo, g) for g in found):
                return False
        return True

    def residual(self, *, q_exact: bool) -> bool:
        """Whether some filter must run in Python after the SQL (ids/types/attrs are exact)."""
        return (
            self.id_pattern is not None
            or self.scope is not None
            or self.allowed is not None
            or self.geo is not None
            or (self.q is not None and not q_exact)
        )
