"""What differs between the cloud's two SQL engines, in one object.

Repositories (``ldt.cloud.store.*``) write each statement once, in the SQL that
SQLite (3.40+) and PostgreSQL (13+) share: ``?`` placeholders, ``INSERT .. ON CONFLICT
(..) DO UPDATE SET x = excluded.x``, ``RETURNING``, ``->``/``->>`` on JSON members.
Where the engines differ the statement asks this object for the fragment:
a JSON-array parameter taken apart into rows, a JSON column's type, a cast. The
connection (``ldt.cloud.store.database``) turns ``?`` into psycopg's ``%s`` for
PostgreSQL; so a statement must not contain ``?`` or ``%`` other than as
placeholders (write ``LIKE ? ESCAPE`` with the pattern as a parameter), and never
PostgreSQL's ``jsonb ?`` operator.

Before this module there were five ways of saying "which engine": two store
classes, ``dialect=`` strings, a dataclass in the temporal reader, ``{p}`` templates
and paired methods. This is the one that remains.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

__all__ = ["POSTGRESQL", "SQLITE", "BulkKind", "Dialect", "DialectName"]

DialectName = Literal["sqlite", "postgresql"]
BulkKind = Literal["text", "int", "real", "time", "json"]
"""What one column of a bulk insert (``Dialect.bulk_rows``) holds."""


@functools.lru_cache(maxsize=4096)
def _pyformat(text: str) -> str:
    """``?`` -> ``%s`` and a literal ``%`` -> ``%%`` (psycopg's paramstyle)."""
    return text.replace("%", "%%").replace("?", "%s")


@dataclass(frozen=True, slots=True)
class Dialect:
    """One engine's spelling of what the shared SQL cannot say the same way."""

    name: DialectName

    @property
    def postgres(self) -> bool:
        """Whether this is PostgreSQL (for the few places that choose a strategy)."""
        return self.name == "postgresql"

    def sql(self, text: str) -> str:
        """A statement written with ``?`` placeholders, in this engine's paramstyle."""
        return _pyformat(text) if self.postgres else text

    # column types (DDL) ---------------------------------------------------
    @property
    def int_type(self) -> str:
        """A 64-bit integer column (epoch milliseconds, sequence numbers)."""
        return "bigint" if self.postgres else "INTEGER"

    # parameters -------------------------------------------------------------
    @property
    def json_param(self) -> str:
        """A JSON text parameter where a JSON value is expected."""
        return "?::jsonb" if self.postgres else "?"

    @property
    def text_values(self) -> str:
        """A subquery of the strings in one JSON-array parameter (``x IN (...)``).

        One parameter, however many values: SQLite caps a statement's parameters
        (32,766) and a list of ``?`` costs a statement per length in the cache.
        """
        if self.postgres:
            return "SELECT jsonb_array_elements_text(?::jsonb)"
        return "SELECT value FROM json_each(?)"

    @property
    def json_rows(self) -> str:
        """A FROM item over one JSON-array parameter: one row per element, column ``value``.

        Read members with ``value ->> N`` (SQL value) or ``value -> N`` (JSON); in
        PostgreSQL ``value`` is ``jsonb``, in SQLite JSON text.
        """
        if self.postgres:
            return "jsonb_array_elements(?::jsonb) AS j (value)"
        return "json_each(?) AS j"

    @property
    def for_update(self) -> str:
        """Row locks for a read-modify-write (SQLite's write transaction is exclusive)."""
        return f" ORDER BY id{self.row_lock}" if self.postgres else ""

    @property
    def row_lock(self) -> str:
        """Row locks on a statement that orders its rows itself (``for_update`` orders by id)."""
        return " FOR UPDATE" if self.postgres else ""

    @property
    def multi_typed(self) -> str:
        """A ``WHERE`` condition over ``entities``: the entity has a list of types. Spelled as
        the partial index ``entities_multi_typed`` is, so the index answers it."""
        if self.postgres:
            return "jsonb_typeof(doc->'type') = 'array'"
        return "json_type(doc, '$.type') = 'array'"

    @property
    def real_type(self) -> str:
        """A double-precision column."""
        return "double precision" if self.postgres else "REAL"

    def doc_text(self, column: str = "doc") -> str:
        """A JSON column as text, as the application parses it."""
        return f"{column}::text" if self.postgres else column

    def any_of(self, expr: str, *, cast: str = "text") -> str:
        """``expr`` is one of the values of one list parameter (``list_param``).

        One parameter, however many values (SQLite caps a statement's parameters
        and a list of ``?`` costs a statement per length in the cache). In
        PostgreSQL an array (``= ANY``, of type ``cast``) that the planner can
        hash or search an index with; an array built by a subquery from JSON
        was compared with each row element by element (a ``DELETE`` of an
        hour's 3,600 times against a day's 86,400 instances took seconds).
        """
        if self.postgres:
            return f"{expr} = ANY(?::{cast}[])"
        return f"{expr} IN (SELECT value FROM json_each(?))"  # noqa: S608 (no input)

    def within(
        self, parts: Sequence[tuple[Collection[str], str]], *, type_column: str = "type"
    ) -> tuple[str, list[Any]]:
        """Rows reached by a scoped grant: a union of (types, id prefix) parts, where empty
        types means any type and an empty prefix any id (``ldt.cloud.access.roles.Scope``).
        No part: no row (``FALSE``)."""
        ors: list[str] = []
        params: list[Any] = []
        for types, prefix in parts:
            ands: list[str] = []
            if types:
                ands.append(self.any_of(type_column))
                params.append(self.list_param(sorted(types)))
            if prefix:
                ands.append("substr(id, 1, ?) = ?")
                params.extend((len(prefix), prefix))
            ors.append("(" + " AND ".join(ands) + ")" if ands else "1 = 1")
        return ("(" + " OR ".join(ors) + ")" if ors else "1 = 0"), params

    def list_param(self, values: Sequence[Any]) -> Any:
        """The parameter of ``any_of``: an array in PostgreSQL, JSON text in SQLite."""
        return list(values) if self.postgres else orjson.dumps(list(values)).decode()

    def bulk_rows(self, kinds: Sequence[BulkKind]) -> str:
        """The row source of ``INSERT INTO t (columns) <this>``, with ``bulk_params``.

        SQLite inserts one ``VALUES`` row per parameter row (``executemany``: a
        statement per row costs SQLite little, and taking a JSON array apart
        cost more). PostgreSQL gets every row in one JSON-array parameter: a
        statement per row costs the server a parse and execution each, and
        psycopg escapes every quote of every document in a text array with a
        regex substitution; orjson writes the whole array at once and the
        server parses it in C.
        """
        if not self.postgres:
            return f"VALUES ({', '.join('?' * len(kinds))})"
        return f"SELECT {self._members(kinds)} FROM jsonb_array_elements(?::jsonb) AS j (value)"  # noqa: S608

    @staticmethod
    def _members(kinds: Sequence[BulkKind], names: Sequence[str] = ()) -> str:
        spell = {
            "text": "value ->> {}",
            "int": "(value ->> {})::bigint",
            "real": "(value ->> {})::float8",
            "time": "(value ->> {})::timestamptz",
            "json": "value -> {}",
        }
        members = [spell[kind].format(i) for i, kind in enumerate(kinds)]
        if names:
            members = [f"{m} AS {n}" for m, n in zip(members, names, strict=True)]
        return ", ".join(members)

    def bulk_update(
        self,
        table: str,
        key: str,
        columns: Sequence[str],
        kinds: Sequence[BulkKind],
        *,
        keep: Sequence[str] = (),
    ) -> str:
        """``UPDATE table SET columns = .. WHERE key = ..`` for many rows, with ``bulk_params``
        of rows ``(*column values, key value)`` (``kinds`` likewise, the key's last).
        A column in ``keep`` takes the new value only where it holds none (``coalesce``).

        SQLite: one UPDATE per parameter row. PostgreSQL: one UPDATE joined to the rows of
        one JSON-array parameter, for the reason ``bulk_rows`` gives.
        """
        if not self.postgres:
            sets = ", ".join(
                f"{c} = coalesce({c}, ?)" if c in keep else f"{c} = ?" for c in columns
            )
            return f"UPDATE {table} SET {sets} WHERE {key} = ?"  # noqa: S608
        names = [f"u_{c}" for c in columns]
        sets = ", ".join(
            f"{c} = coalesce({table}.{c}, u.{n})" if c in keep else f"{c} = u.{n}"
            for c, n in zip(columns, names, strict=True)
        )
        rows = self._members(kinds, [*names, "u_key"])
        return (
            f"UPDATE {table} SET {sets} FROM (SELECT {rows}"  # noqa: S608
            f" FROM jsonb_array_elements(?::jsonb) AS j (value)) AS u WHERE {table}.{key} = u.u_key"
        )

    def bulk_params(
        self, kinds: Sequence[BulkKind], rows: Sequence[Sequence[Any]]
    ) -> list[Sequence[Any]]:
        """The parameter rows of a ``bulk_rows`` statement (``Tx.executemany``).

        ``rows`` hold Python values; ``json`` columns any JSON-able value. One
        row in PostgreSQL (the array), one per row in SQLite (JSON as text).
        """
        if self.postgres:
            return [(orjson.dumps(rows).decode(),)]
        at = [i for i, kind in enumerate(kinds) if kind == "json"]
        if not at:
            return list(rows)
        out: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for i in at:
                values[i] = orjson.dumps(values[i]).decode()
            out.append(values)
        return out

    # JSON values in expressions -------------------------------------------------
    def json_member(self, expr: str, key: str) -> str:
        """The JSON of member ``key`` (an SQL text expression) of a JSON object; NULL if absent."""
        if self.postgres:
            return f"({expr} -> {key})"
        return f"json({expr} -> ('$.' || {key}))"

    def json_member_text(self, expr: str, name: str) -> str:
        """The SQL value of member ``name`` (a literal, a plain word) of a JSON object."""
        if self.postgres:
            return f"({expr} ->> '{name}')"
        return f"json_extract({expr}, '$.{name}')"

    def json_without(self, expr: str, *names: str) -> str:
        """A JSON object without the members ``names`` (literals)."""
        if self.postgres:
            return "(" + expr + "".join(f" - '{n}'" for n in names) + ")"
        return f"json_remove({expr}, " + ", ".join(f"'$.{n}'" for n in names) + ")"

    def json_with(self, expr: str, name: str, value: str) -> str:
        """A JSON object with member ``name`` (a literal) set to the SQL value ``value``."""
        if self.postgres:
            return f"({expr} || jsonb_build_object('{name}', {value}))"
        return f"json_set({expr}, '$.{name}', {value})"

    def json_array_of(self, *values: str) -> str:
        """A JSON array of SQL values (JSON ones kept as JSON)."""
        args = ", ".join(values)
        return f"jsonb_build_array({args})" if self.postgres else f"json_array({args})"

    def json_object_of(self, key: str, value: str) -> str:
        """A JSON object of one member: ``key`` an SQL text expression, ``value`` an SQL value."""
        fn = "jsonb_build_object" if self.postgres else "json_object"
        return f"{fn}({key}, {value})"

    def json_text(self, expr: str) -> str:
        """A JSON expression as the text the application parses or sends on."""
        return f"({expr})::text" if self.postgres else expr

    def code_points(self, expr: str) -> str:
        """A text expression ordered by code point (Python's and SQLite's order, not a locale)."""
        return f'{expr} COLLATE "C"' if self.postgres else expr

    @property
    def index_order(self) -> str | None:
        """A statement that makes a transaction read an index in order rather than sort.

        For reads that ``ORDER BY`` an index's columns and ``LIMIT``: right after
        a bulk load (no statistics yet) PostgreSQL's planner estimated one row and
        chose a bitmap scan of all 86,400 instances of a day and a sort.
        Statements no index can order are still sorted (at a penalty only).
        SQLite's planner needs no telling.
        """
        return "SET LOCAL enable_sort = off" if self.postgres else None

    # timestamps (PostgreSQL ``timestamptz``, SQLite ISO 8601 text) ------------
    @property
    def timestamp_param(self) -> str:
        """An ISO 8601 UTC text parameter where a timestamp column is written."""
        return "?::timestamptz" if self.postgres else "?"

    def iso_utc(self, column: str) -> str:
        """A timestamp column read as ISO 8601 UTC text with milliseconds (``...T..:..:..000Z``).

        SQLite already keeps that text; PostgreSQL renders its ``timestamptz`` the same way,
        so callers get one string on both.
        """
        if self.postgres:
            return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""
        return column


SQLITE: Final = Dialect("sqlite")
POSTGRESQL: Final = Dialect("postgresql")
