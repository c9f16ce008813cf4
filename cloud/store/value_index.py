"""Declared indexes on attribute values, so that a selective ``q`` needs no scan.

Without one, ``GET /entities?type=T&q=temperature>34.7`` at 100,000 entities evaluates the
term on every entity of ``T`` until the page is full: ~330 ms on SQLite when 1 % match, and
~1.3 s for a string equality that matches one. An operator declares the attributes worth
indexing (``ldt cloud index add NAME``, ``store.value_indexes``); every write then keeps
``attr_values`` rows for them (``value_facts``: one row per number, string, object id or
``observedAt``), and a search whose ``q`` holds a term on one of them starts from the
rows that term selects.

Why declared, not every attribute: measured on SQLite at 100,000 entities, a row in this
table with its indexes costs 10-20 µs to write. Eight attributes plus their observedAt
would add ~100-200 µs to every created entity, as much again as everything else a write
does. Document stores make the same choice (MongoDB indexes under Orion are declared by
the operator); here the index is built and kept by the broker, so it cannot drift.

Correctness: a declared index is ``ready`` once every entity has its rows (``add`` fills
them in chunks); until then searches ignore it. Each write reads the declarations after
locking its entity rows, and the fill locks the rows it reads, so a write racing a new
declaration is either indexed by the write or seen by the fill. The index names exactly
the entities a term holds for, except those marked ``UNINDEXED``: when an attribute has
such rows the search adds them as candidates and checks every candidate's document.

Plan choice: a term's rows are counted up to ``ENOUGH``; the least selective index is
not used, because the page of a term that matches most entities fills fastest in id
order without it. Only the terms of the top-level ``;`` (AND) drive a search.
"""

# ruff: noqa: S608 - SQL text here is built from constants; values are bound parameters.

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, NamedTuple

import orjson

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild import value_facts
from ldt.cloud.ngsild.query import QAnd, QExpr, QList, QRange, QTerm, QValue
from ldt.cloud.ngsild.value_facts import NUMBER, OBJECT, OBSERVED, TEXT, UNINDEXED
from ldt.cloud.store.base import Entity
from ldt.cloud.store.database import Database, Tx
from ldt.cloud.store.dialect import BulkKind

__all__ = [
    "ENOUGH",
    "Driver",
    "IndexState",
    "ValueIndexRepository",
    "choose",
    "create_tables",
    "maintain",
    "term_driver",
]

ENOUGH: Final = 4000
"""A term selecting at least this many rows does not drive a search (see the docstring)."""
MAX_NAME: Final = 1000
_CHUNK: Final = 1000
_MAX_LIST: Final = 100
_SLACK_S: Final = 1e-3
"""observedAt bounds are widened by this (seconds): candidates, re-checked exactly."""
_KINDS: Final[tuple[BulkKind, ...]] = ("text", "text", "int", "real", "text")
_INSERT: Final = "INSERT INTO attr_values (entity_id, name, kind, num, txt)"


class IndexState(NamedTuple):
    """One declared index: its attribute, whether searches use it yet, its rows."""

    name: str
    ready: bool
    rows: int


async def create_tables(tx: Tx) -> None:
    """Schema step 14: the declarations and the rows (idempotent)."""
    d = tx.dialect
    text = 'text COLLATE "C"' if d.postgres else "TEXT"
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS value_indexes (name TEXT PRIMARY KEY,"
        f" ready {d.int_type} NOT NULL DEFAULT 0)"
    )
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS attr_values (entity_id TEXT NOT NULL, name TEXT NOT NULL,"
        f" kind {d.int_type} NOT NULL, num {d.real_type}, txt {text})"
    )
    for index in (
        "attr_values_by_num ON attr_values (name, kind, num, entity_id) WHERE num IS NOT NULL",
        "attr_values_by_txt ON attr_values (name, kind, txt, entity_id) WHERE txt IS NOT NULL",
        "attr_values_of ON attr_values (entity_id, name)",
        f"attr_values_unindexed ON attr_values (name) WHERE kind = {UNINDEXED}",
    ):
        await tx.execute(f"CREATE INDEX IF NOT EXISTS {index}")


async def _declared(tx: Tx) -> list[tuple[str, bool]]:
    rows = await tx.fetchall("SELECT name, ready FROM value_indexes ORDER BY name")
    return [(str(n), bool(r)) for n, r in rows]


async def maintain(tx: Tx, changes: Iterable[tuple[str, Entity | None, Entity | None]]) -> None:
    """Bring the rows of the declared attributes of each (id, old, new) up to date, in the
    caller's transaction, after it locked the entities (see the docstring)."""
    names = [n for n, _ in await _declared(tx)]
    if not names:
        return
    gone: list[tuple[str, str]] = []
    rows: list[tuple[str, str, int, float | None, str | None]] = []
    for eid, old, new in changes:
        for name in names:
            before = None if old is None else old.get(name)
            after = None if new is None else new.get(name)
            if before is after or before == after:
                continue
            if before is not None:
                gone.append((eid, name))
            rows.extend((eid, name, *fact) for fact in value_facts.facts(after))
    await _replace(tx, gone, rows)


async def _replace(
    tx: Tx,
    gone: Sequence[tuple[str, str]],
    rows: Sequence[tuple[str, str, int, float | None, str | None]],
) -> None:
    if gone:
        await tx.executemany("DELETE FROM attr_values WHERE entity_id = ? AND name = ?", gone)
    if rows:
        d = tx.dialect
        await tx.bulk(f"{_INSERT} {d.bulk_rows(_KINDS)}", d.bulk_params(_KINDS, rows))


# -- searches -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Driver:
    """The entities a ``q`` term may hold for, from one declared index.

    ``sql`` selects their ids (``entity_id``), and ``choose`` fills ``ids`` with them;
    ``exact``: they are exactly the entities the term holds for, so the term itself need
    not be checked again. ``row_sql`` tests one row of ``entities`` instead, for a term
    too common to list its ids (``ids`` is then None).
    """

    term: QTerm
    name: str
    sql: str
    params: list[Any]
    exact: bool
    row_sql: str
    ids: tuple[str, ...] | None = ()


def term_driver(term: QTerm) -> Driver | None:
    """The index form of ``term``, or None when an index cannot answer it (``!=``,
    patterns, booleans, sub-attributes other than ``observedAt``, linked entities)."""
    path, value = term.path, term.value
    if path.link is not None or path.member is not None or value is None:
        return None
    if term.op not in ("==", ">", ">=", "<", "<="):
        return None
    if isinstance(value, QRange | QList) and term.op != "==":
        return None
    if len(path.names) == 2 and path.names[1] == "observedAt":
        return _observed_driver(term, path.names[0])
    if len(path.names) != 1:
        return None
    literals = _literals(value)
    if literals is None:
        return None
    kind = literals[0].kind
    kinds: tuple[int, ...]
    if kind == "number":
        if any(abs(v.value) > 2**53 for v in literals):
            return None
        column, kinds = "num", (NUMBER,)
    elif kind in ("string", "uri"):
        column, kinds = "txt", (TEXT, OBJECT) if term.op == "==" else (TEXT,)
    else:
        return None
    test, params = _test(term.op, value, column, [v.value for v in literals])
    return _driver(term, path.names[0], kinds, test, params, exact=True)


def _observed_driver(term: QTerm, name: str) -> Driver | None:
    literals = _literals(term.value)
    if literals is None or literals[0].kind != "datetime":
        return None
    seconds = [v.value.timestamp() for v in literals]
    op, value = term.op, term.value
    if isinstance(value, QList):
        test = "(" + " OR ".join("num BETWEEN ? AND ?" for _ in seconds) + ")"
        params = [b for s in seconds for b in (s - _SLACK_S, s + _SLACK_S)]
    elif isinstance(value, QRange) or op == "==":
        test, params = "num BETWEEN ? AND ?", [seconds[0] - _SLACK_S, seconds[-1] + _SLACK_S]
    elif op in (">", ">="):
        test, params = "num >= ?", [seconds[0] - _SLACK_S]
    else:
        test, params = "num <= ?", [seconds[0] + _SLACK_S]
    return _driver(term, name, (OBSERVED,), test, params, exact=False)


def _literals(value: object) -> list[QValue] | None:
    """The literals of a value, when they are all of one kind (None: mixed or none)."""
    if isinstance(value, QValue):
        items = [value]
    elif isinstance(value, QRange):
        items = [value.low, value.high]
    elif isinstance(value, QList) and 0 < len(value.items) <= _MAX_LIST:
        items = list(value.items)
    else:
        return None
    kinds = {"uri" if v.kind == "string" else v.kind for v in items}
    return items if len(kinds) == 1 else None


def _test(op: str | None, value: object, column: str, values: list[Any]) -> tuple[str, list[Any]]:
    if isinstance(value, QRange):
        return f"{column} BETWEEN ? AND ?", values
    if isinstance(value, QList):
        return f"{column} IN ({', '.join('?' * len(values))})", values
    return f"{column} {'=' if op == '==' else op} ?", values


def _driver(
    term: QTerm, name: str, kinds: tuple[int, ...], test: str, params: list[Any], *, exact: bool
) -> Driver | None:
    if len(name) > MAX_NAME:
        return None
    kind_test = f"kind = {kinds[0]}" if len(kinds) == 1 else f"kind IN {kinds}"
    sql = f"SELECT entity_id FROM attr_values WHERE name = ? AND {kind_test} AND {test}"
    # per row, by entity_id (a few rows): "name || ''" and "+kind" keep SQLite from a
    # covering index of every row of the attribute (it chose one, without statistics:
    # 230 ms a page), and "OFFSET 0" keeps PostgreSQL from turning the test into a join
    # that reads every such row first (its estimates for "num > ?" are of all attributes'
    # numbers together); walking the type in id order then stops at the page's end
    row_sql = (
        "EXISTS (SELECT 1 FROM attr_values WHERE entity_id = entities.id AND name || '' = ?"
        f" AND +{kind_test} AND {test} LIMIT 1 OFFSET 0)"
    )
    return Driver(term, name, sql, [name, *params], exact, row_sql)


async def choose(tx: Tx, q: QExpr | None, *, enough: int | None = None) -> Driver | None:
    """How a declared index serves ``q``'s top-level terms; None: it does not.

    The most selective term naming fewer than ``enough`` (default ``ENOUGH``) entities
    comes with their ids. Otherwise an exactly indexed term is tested per row
    (``row_sql``, ``ids`` None): its index rows cost less to check than the document.

    The ids travel back into the search as a list rather than as a subquery: PostgreSQL
    estimates ``name = ? AND num > ?`` from statistics of every attribute's numbers mixed
    together (temperatures beside pressures beside dates), and with such estimates it
    walked every entity in id order instead of the few the index names.
    """
    if q is None:
        return None
    enough = ENOUGH if enough is None else enough
    terms = q.items if isinstance(q, QAnd) else (q,)
    best: Driver | None = None
    common: Driver | None = None
    for term in terms:
        driver = term_driver(term) if isinstance(term, QTerm) else None
        if driver is None:
            continue
        state = await tx.fetchone(
            "SELECT ready, (SELECT count(*) FROM attr_values WHERE name = ?"
            f" AND kind = {UNINDEXED}), (SELECT count(*) FROM ({driver.sql} LIMIT ?) AS c)"
            " FROM value_indexes WHERE name = ?",
            [driver.name, *driver.params, enough, driver.name],
        )
        if state is None or not state[0]:
            continue
        found = int(state[2]) + int(state[1])
        if state[1]:  # those entities are candidates too, checked by their documents
            driver = replace(
                driver,
                sql=f"{driver.sql} UNION ALL SELECT entity_id FROM attr_values"
                f" WHERE name = ? AND kind = {UNINDEXED}",
                params=[*driver.params, driver.name],
                exact=False,
            )
        if found < enough:
            if best is None or best.ids is None or found < len(best.ids):
                rows = await tx.fetchall(driver.sql, driver.params)
                best = replace(driver, ids=tuple(sorted({str(r[0]) for r in rows})))
        elif driver.exact and common is None:
            common = replace(driver, ids=None)
    return best or common


# -- declarations ---------------------------------------------------------------------------


class ValueIndexRepository:
    """``store.value_indexes``: declare, list and drop indexes on attribute values."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, name: str) -> IndexState:
        """Declare an index on attribute ``name`` (as entities store it) and fill it, in
        chunks (a broker keeps serving meanwhile). Adding an existing one finishes it."""
        if not name or len(name) > MAX_NAME or any(c in name for c in "\x00\n\r"):
            raise StoreError(f"not an attribute name: {name[:80]!r}")

        async def declare(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO value_indexes (name, ready) VALUES (?, 0)"
                " ON CONFLICT (name) DO NOTHING",
                (name,),
            )

        await self._db.write(declare)
        last = ""
        while True:

            async def chunk(tx: Tx, last: str = last) -> str | None:
                d = tx.dialect
                rows = await tx.fetchall(
                    f"SELECT id, {d.doc_text()} FROM entities WHERE id > ? ORDER BY id LIMIT ?"
                    f"{d.row_lock}",
                    (last, _CHUNK),
                )
                if not rows:
                    return None
                facts = [
                    (eid, name, *fact)
                    for eid, text in rows
                    for fact in value_facts.facts(orjson.loads(text).get(name))
                ]
                await _replace(tx, [(eid, name) for eid, _ in rows], facts)
                return str(rows[-1][0])

            moved = await self._db.write(chunk)
            if moved is None:
                break
            last = moved

        async def finish(tx: Tx) -> None:
            await tx.execute("UPDATE value_indexes SET ready = 1 WHERE name = ?", (name,))

        await self._db.write(finish)
        return next(i for i in await self.list() if i.name == name)

    async def drop(self, name: str) -> bool:
        """Forget the index on ``name`` and its rows; False if there was none."""

        async def apply(tx: Tx) -> bool:
            gone = await tx.execute("DELETE FROM value_indexes WHERE name = ?", (name,))
            await tx.execute("DELETE FROM attr_values WHERE name = ?", (name,))
            return gone > 0

        return await self._db.write(apply)

    async def list(self) -> list[IndexState]:
        """Every declared index, by name."""

        async def read(tx: Tx) -> list[IndexState]:
            declared = await _declared(tx)
            rows = await tx.fetchall("SELECT name, count(*) FROM attr_values GROUP BY name")
            counts = {str(n): int(c) for n, c in rows}
            return [IndexState(n, r, int(counts.get(n, 0))) for n, r in declared]

        return await self._db.read(read)
