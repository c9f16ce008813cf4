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
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["POSTGRESQL", "SQLITE", "Dialect", "DialectName"]

DialectName = Literal["sqlite", "postgresql"]


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
    def json_type(self) -> str:
        """A column holding a JSON document (text in SQLite, ``jsonb`` in PostgreSQL)."""
        return "jsonb" if self.postgres else "TEXT"

    @property
    def bytes_type(self) -> str:
        """A column holding bytes."""
        return "bytea" if self.postgres else "BLOB"

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
    def int_values(self) -> str:
        """A subquery of the integers in one JSON-array parameter (``x IN (...)``)."""
        if self.postgres:
            return "SELECT jsonb_array_elements_text(?::jsonb)::bigint"
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

    def row_text(self, n: int) -> str:
        """Member ``n`` of a ``json_rows`` row as text (NULL for JSON null)."""
        return f"value ->> {n}"

    def row_int(self, n: int) -> str:
        """Member ``n`` of a ``json_rows`` row as a 64-bit integer."""
        return f"(value ->> {n})::bigint" if self.postgres else f"value ->> {n}"

    def row_real(self, n: int) -> str:
        """Member ``n`` of a ``json_rows`` row as a double."""
        return f"(value ->> {n})::float8" if self.postgres else f"value ->> {n}"

    def row_json(self, n: int) -> str:
        """Member ``n`` of a ``json_rows`` row as a JSON document for a JSON column."""
        return f"value -> {n}" if self.postgres else f"value ->> {n}"

    @property
    def for_update(self) -> str:
        """Row locks for a read-modify-write (SQLite's write transaction is exclusive)."""
        return " ORDER BY id FOR UPDATE" if self.postgres else ""

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

    def json_array_length(self, expr: str) -> str:
        """The length of a JSON array expression."""
        return f"jsonb_array_length({expr})" if self.postgres else f"json_array_length({expr})"

    def json_type_of(self, expr: str) -> str:
        """The JSON type name of an expression; 'array' and 'object' agree, scalars differ
        (SQLite: integer, real, text, true, false; PostgreSQL: number, string, boolean)."""
        if self.postgres:
            return f"jsonb_typeof({expr})"
        return f"json_type({expr})"

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
