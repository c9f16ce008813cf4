"""Purge entities (``DELETE /entities``, GS CIM 009 v1.9 clause 5.6.21) as set-based SQL.

Both stores purge the same way, in one transaction: select the matching rows with the
query's pushdown (``entity_search.where``), re-check the Python residue (idPattern, scopeQ,
an inexact ``q``), then change every chosen row with ONE statement that names them as a
set: ``DELETE`` for whole entities, or an ``UPDATE`` that filters each document's members
(``keep``: only the listed attributes stay; ``drop``: the listed ones go). The old
documents come from the select and the new ones from the ``UPDATE ... RETURNING``, so the
caller can notify subscribers and the temporal history sees what was removed.

This module holds what the two dialects share: which members a purge touches, which rows
it changes at all, and the two ``UPDATE`` statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ldt.cloud.store.dialect import Dialect

__all__ = ["FIXED_MEMBERS", "Purge"]

FIXED_MEMBERS: Final = frozenset({"id", "type", "scope", "createdAt", "modifiedAt"})
"""Entity members a ``keep``/``drop`` never removes: they are not attributes."""


@dataclass(frozen=True, slots=True)
class Purge:
    """What a purge removes from each matching entity.

    Neither ``keep`` nor ``drop``: the whole entity. ``keep``: every attribute but these
    (stored names). ``drop``: these attributes. Never both (the route refuses that).
    """

    keep: frozenset[str] | None = None
    drop: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.keep is not None and self.drop is not None:
            raise ValueError("a purge keeps or drops attributes, not both")

    @property
    def whole(self) -> bool:
        """Whether matching entities are deleted whole."""
        return self.keep is None and self.drop is None

    def changes(self, doc: Mapping[str, Any]) -> bool:
        """Whether purging ``doc`` changes it (an untouched entity is not rewritten)."""
        if self.whole:
            return True
        return any(self._removes(name) for name in doc)

    def _removes(self, name: str) -> bool:
        if name in FIXED_MEMBERS:
            return False
        if self.keep is not None:
            return name not in self.keep
        return self.drop is not None and name in self.drop

    def _filter(self) -> tuple[bool, list[str]]:
        """(keep listed members?, the member names): the one key test both dialects run."""
        if self.keep is not None:
            return True, sorted(self.keep | FIXED_MEMBERS)
        return False, sorted((self.drop or frozenset()) - FIXED_MEMBERS)

    def update(self, dialect: Dialect, ids: Sequence[str], now: str) -> tuple[str, list[Any]]:
        """One ``UPDATE`` rewriting the documents of ``ids``, ``RETURNING id, doc`` (text)."""
        if dialect.postgres:
            return self.postgres_update(ids, now)
        return self.sqlite_update(ids, now)

    def sqlite_update(self, ids: Sequence[str], now: str) -> tuple[str, list[Any]]:
        """One ``UPDATE`` rewriting the documents of ``ids`` (SQLite JSON1), ``RETURNING``
        ``id, doc``. Member names travel as a JSON array parameter: no path quoting."""
        keep, names = self._filter()
        sql = _SQLITE_KEEP if keep else _SQLITE_DROP
        return sql, [_json_array(names), now, now, _json_array(ids)]

    def postgres_update(self, ids: Sequence[str], now: str) -> tuple[str, list[Any]]:
        """One ``UPDATE`` rewriting the documents of ``ids`` (jsonb), ``RETURNING id, doc``."""
        keep, names = self._filter()
        sql = _POSTGRES_KEEP if keep else _POSTGRES_DROP
        return sql, [names, now, now, list(ids)]


# fixed SQL (request input only ever travels as parameters); KEEP and DROP differ only in
# which members survive: the listed ones, or all but the listed ones
_SQLITE_KEEP: Final = (
    "UPDATE entities SET doc = json_set((SELECT json_group_object(key, value)"
    " FROM json_each(entities.doc) WHERE key IN (SELECT value FROM json_each(?))),"
    " '$.modifiedAt', ?), modified_at = ?"
    " WHERE id IN (SELECT value FROM json_each(?)) RETURNING id, doc"
)
_SQLITE_DROP: Final = (
    "UPDATE entities SET doc = json_set((SELECT json_group_object(key, value)"
    " FROM json_each(entities.doc) WHERE key NOT IN (SELECT value FROM json_each(?))),"
    " '$.modifiedAt', ?), modified_at = ?"
    " WHERE id IN (SELECT value FROM json_each(?)) RETURNING id, doc"
)
_POSTGRES_KEEP: Final = (
    "UPDATE entities SET doc = (SELECT jsonb_object_agg(key, value)"
    " FROM jsonb_each(entities.doc) WHERE key = ANY(?::text[]))"
    " || jsonb_build_object('modifiedAt', ?::text), modified_at = ?::timestamptz"
    " WHERE id = ANY(?::text[]) RETURNING id, doc::text"
)
_POSTGRES_DROP: Final = (
    "UPDATE entities SET doc = (entities.doc - ?::text[])"
    " || jsonb_build_object('modifiedAt', ?::text), modified_at = ?::timestamptz"
    " WHERE id = ANY(?::text[]) RETURNING id, doc::text"
)


def _json_array(values: Sequence[str]) -> str:
    return orjson.dumps(list(values)).decode()
