"""``orderBy`` (GS CIM 009 v1.9.1 clause 4.23): parse it and turn it into an SQL ``ORDER BY``.

``orderBy=name.subProperty;desc,type,createdAt``: a comma-separated list of keys, each an
entity member (``id``, ``type``, ``createdAt``, ``modifiedAt``) or an attribute path (an
attribute, then sub-attributes, optionally ending with a member such as ``createdAt`` or
``observedAt``), each optionally followed by ``;asc`` (the default) or ``;desc``. That is how
ETSI's suite sends it (cases 019_19 and 021_23); an attribute path orders by the attribute's
``value`` (``object`` for a Relationship), a trailing member by that member.

The ordering is done by the store, never by loading every match into Python: the key values are
computed per row as JSON (SQLite JSON1 text, PostgreSQL ``jsonb``) in a subquery, and the outer
``ORDER BY`` compares them with one semantics in both dialects, so both stores page the same:

- entities without the key come last, ascending or descending;
- numbers come before strings, strings before booleans (``false`` < ``true``), and those before
  anything else (objects, arrays, JSON ``null``, which tie); numbers compare numerically,
  strings by code point (SQLite's BINARY, PostgreSQL's ``COLLATE "C"``), not by a locale;
- an attribute with several instances (``datasetId``) is ordered by its first stored instance;
- ties are broken by entity ``id`` (ascending), so ``limit``/``offset`` pages are stable.

For the temporal representation an attribute key takes its value from the attribute's most
recently modified instance, and ``createdAt``/``modifiedAt`` are those of the temporal entity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from ldt.cloud.ngsild.query import QSyntaxError

__all__ = [
    "ENTITY_MEMBERS",
    "MAX_KEYS",
    "OrderKey",
    "OrderSql",
    "entity_order",
    "map_order_names",
    "ordered_select",
    "parse_order_by",
    "temporal_order",
]

Dialect: TypeAlias = Literal["sqlite", "postgresql"]

ENTITY_MEMBERS: Final = frozenset({"id", "type", "createdAt", "modifiedAt"})
"""Keys that are members of the entity itself, not attributes (never expanded)."""
MAX_KEYS: Final = 16
"""Most keys one ``orderBy`` may list (each adds four sort terms to the SQL)."""

# members of an attribute (after the attribute name); everything else is a sub-attribute
_ATTR_MEMBERS: Final = frozenset(
    {"value", "object", "createdAt", "modifiedAt", "observedAt", "unitCode", "datasetId", "lang"}
)
_NAME: Final = re.compile(r"[^\s,;\"\\()\[\]{}]+")
_IRI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One sort key: an entity member (one name) or an attribute path; and its direction."""

    names: tuple[str, ...]
    descending: bool = False

    @property
    def entity_member(self) -> str | None:
        """``id``, ``type``, ``createdAt`` or ``modifiedAt`` when the key is the entity's own."""
        return self.names[0] if len(self.names) == 1 and self.names[0] in ENTITY_MEMBERS else None

    @property
    def member(self) -> str | None:
        """The attribute member the path ends with (``createdAt``...), or None (its value)."""
        last = self.names[-1]
        return last if len(self.names) > 1 and last in _ATTR_MEMBERS else None

    @property
    def sub_attributes(self) -> tuple[str, ...]:
        """The sub-attribute names between the attribute and the member."""
        end = len(self.names) - (1 if self.member is not None else 0)
        return self.names[1:end]


def parse_order_by(text: str) -> tuple[OrderKey, ...]:
    """Parse ``orderBy``; raises ``QSyntaxError`` (parameter ``orderBy``, 400 BadRequestData).

    An absolute or compact IRI (``https://x.org/name``, ``ex:name``) is one attribute name,
    without sub-attributes: its dots belong to the IRI (as in ``q``).
    """

    def error(detail: str, column: int) -> QSyntaxError:
        return QSyntaxError(detail, column=column, text=text, parameter="orderBy")

    if not text.strip():
        raise error("the list of keys is empty", 0)
    keys: list[OrderKey] = []
    column = 0
    for part in text.split(","):
        path, _, direction = part.partition(";")
        path, direction = path.strip(), direction.strip()
        if direction not in ("", "asc", "desc") or (not direction and ";" in part):
            raise error(f"the direction must be asc or desc, not {direction!r}", column)
        names = (path,) if _IRI.match(path) else tuple(path.split("."))
        for name in names:
            if not _NAME.fullmatch(name):
                raise error(f"{path!r} is not an attribute path or an entity member", column)
        keys.append(OrderKey(names, descending=direction == "desc"))
        column += len(part) + 1
    if len(keys) > MAX_KEYS:
        raise error(f"more than {MAX_KEYS} keys", 0)
    return tuple(keys)


def map_order_names(
    keys: Sequence[OrderKey], fn: Callable[[str], str], *, text: str = ""
) -> tuple[OrderKey, ...]:
    """``keys`` with attribute and sub-attribute names mapped by ``fn`` (expanded, as stored).

    Entity members and attribute members are kept. A mapped name holding ``"`` or ``\\``
    raises ``QSyntaxError``: SQLite's JSON paths cannot quote those characters.
    """
    out: list[OrderKey] = []
    for key in keys:
        if key.entity_member is not None:
            out.append(key)
            continue
        end = len(key.names) - (1 if key.member is not None else 0)
        names = tuple(fn(n) if i < end else n for i, n in enumerate(key.names))
        bad = [n for n in names if '"' in n or "\\" in n]
        if bad:
            raise QSyntaxError(
                f"cannot order by {bad[0]!r} (a name holding '\"' or '\\\\')",
                column=0,
                text=text,
                parameter="orderBy",
            )
        out.append(OrderKey(names, key.descending))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class OrderSql:
    """Key columns for the inner ``SELECT`` (with their parameters) and the outer ORDER BY."""

    columns: str
    params: list[Any] = field(default_factory=list)
    terms: str = "id"


def ordered_select(select: str, source: str, order: OrderSql | None) -> str:
    """``SELECT {select} FROM {source}`` in key order, ties (and no keys) by ``id``.

    ``source`` is a table and its ``WHERE``; the key parameters (``order.params``) come before
    the source's in the statement. Without keys the statement is the plain indexed one.
    """
    if order is None or not order.columns:
        return f"SELECT {select} FROM {source} ORDER BY id"  # noqa: S608
    return (
        f"SELECT {select} FROM (SELECT *{order.columns} FROM {source}) AS ordered"  # noqa: S608
        f" ORDER BY {order.terms}"
    )


def entity_order(keys: Sequence[OrderKey], *, dialect: Dialect) -> OrderSql | None:
    """The ordering over table ``entities`` (columns ``id``, ``type``, ``doc``); None: by id."""
    if not keys:
        return None
    return _order([_entity_key(k, dialect) for k in keys], keys, dialect)


def temporal_order(keys: Sequence[OrderKey], *, dialect: Dialect) -> OrderSql | None:
    """The ordering over ``temporal_entities``, attribute values from ``attr_instances``."""
    if not keys:
        return None
    return _order([_temporal_key(k, dialect) for k in keys], keys, dialect)


def _order(
    exprs: list[tuple[str, list[Any]]], keys: Sequence[OrderKey], dialect: Dialect
) -> OrderSql:
    columns = "".join(f", {sql} AS ldt_k{i}" for i, (sql, _) in enumerate(exprs))
    params = [p for _, values in exprs for p in values]
    terms = [t for i, key in enumerate(keys) for t in _terms(f"ldt_k{i}", key.descending, dialect)]
    return OrderSql(columns, params, ", ".join([*terms, "id"]))


def _terms(column: str, descending: bool, dialect: Dialect) -> list[str]:
    """Sort terms for one JSON key column: missing last, then type rank, number, text."""
    d = " DESC" if descending else ""
    if dialect == "sqlite":
        kind = f"json_type({column})"
        return [
            f"({column} IS NULL)",
            f"CASE {kind} WHEN 'integer' THEN 0 WHEN 'real' THEN 0 WHEN 'text' THEN 1"
            f" WHEN 'true' THEN 2 WHEN 'false' THEN 2 ELSE 3 END{d}",
            f"CASE WHEN {kind} IN ('integer', 'real') THEN json_extract({column}, '$') END{d}",
            f"CASE {kind} WHEN 'text' THEN json_extract({column}, '$') WHEN 'true' THEN 'true'"
            f" WHEN 'false' THEN 'false' END{d}",
        ]
    kind = f"jsonb_typeof({column})"
    return [
        f"({column} IS NULL)",
        f"CASE {kind} WHEN 'number' THEN 0 WHEN 'string' THEN 1 WHEN 'boolean' THEN 2"
        f" ELSE 3 END{d}",
        f"CASE WHEN {kind} = 'number' THEN ({column})::numeric END{d}",
        f"(CASE WHEN {kind} IN ('string', 'boolean') THEN {column} #>> '{{}}' END)"
        f' COLLATE "C"{d}',
    ]


def _sqlite_suffix(names: Sequence[str]) -> str:
    return "".join(f'."{n}"' for n in names)


def _entity_key(key: OrderKey, dialect: Dialect) -> tuple[str, list[Any]]:
    """One key of an entity as JSON (None when the entity lacks it)."""
    member = key.entity_member
    if member in ("id", "type"):
        return ("json_quote(" if dialect == "sqlite" else "to_jsonb(") + f"{member})", []
    if member is not None:  # createdAt / modifiedAt, kept in the document
        return ("doc -> ?", [f"$.{member}"]) if dialect == "sqlite" else ("doc -> ?", [member])
    attr, subs = key.names[0], key.sub_attributes
    ends = [key.member] if key.member is not None else ["value", "object"]
    if dialect == "sqlite":
        top = f'$."{attr}"'
        node = "(CASE json_type(doc, ?) WHEN 'array' THEN ? ELSE ? END)"
        node_params: list[Any] = [top, f"{top}[0]", top]
        parts = [f"doc -> ({node} || ?)" for _ in ends]
        params = [p for end in ends for p in [*node_params, f"{_sqlite_suffix(subs)}.{end}"]]
    else:
        node = "(CASE WHEN jsonb_typeof(doc -> ?) = 'array' THEN doc -> ? -> 0 ELSE doc -> ? END)"
        parts = [f"({node} #> ?::text[])" for _ in ends]
        params = [p for end in ends for p in [attr, attr, attr, [*subs, end]]]
    return (parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"), params


def _temporal_key(key: OrderKey, dialect: Dialect) -> tuple[str, list[Any]]:
    """One key of a temporal entity as JSON: header columns, or the latest instance's value.

    Placeholders are ``?`` in both dialects (``ldt.cloud.store.dialect``: the store's
    connection converts them for psycopg).
    """
    member = key.entity_member
    quote = "json_quote(" if dialect == "sqlite" else "to_jsonb("
    if member in ("id", "type"):
        return f"{quote}temporal_entities.{member})", []
    if member is not None:
        column = "created_at_ms" if member == "createdAt" else "modified_at_ms"
        return f"{quote}temporal_entities.{column})", []
    attr, subs = key.names[0], key.sub_attributes
    ends = [key.member] if key.member is not None else ["value", "object"]
    if dialect == "sqlite":
        parts = ["i.doc -> ?" for _ in ends]
        params: list[Any] = [f"${_sqlite_suffix(subs)}.{end}" for end in ends]
    else:
        parts = ["i.doc #> ?::text[]" for _ in ends]
        params = [[*subs, end] for end in ends]
    value = parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"
    sql = (
        f"(SELECT {value} FROM attr_instances AS i WHERE i.entity_id = temporal_entities.id"  # noqa: S608
        " AND i.attr = ? ORDER BY i.modified_at_ms DESC, i.instance_id DESC LIMIT 1)"
    )
    return sql, [*params, attr]
