"""One page of a temporal read in SQL, the same statements on SQLite and PostgreSQL.

A day of one attribute at 1 Hz is 86,400 instances; an answer holds at most
``limit`` of them (6.3.10: 206 + Content-Range). Reading every instance of the
window and cutting in Python cost seconds, so the window, lastN, datasetIds and
the cut are in SQL: ``ORDER BY`` the time on the (entity_id, attr, time) index
and ``LIMIT limit + 1`` (the extra row says whether the answer was cut). Only
the returned rows are read, and their JSON is parsed only when the route needs
documents: the store can write each instance's JSON for the answer itself
(``temporal_page.Render``).

The answer is what ``temporal.paginate`` over the whole selection gave: the
first ``limit`` by (time, instanceId), where an instance without the time
property counts at its modifiedAt (``temporal._time_of``), newest first with
lastN. The statements order by the time alone (the index's order) and settle
ties at the cut in Python (``_settle_ties``); where the time may be missing
(no timerel) no index orders the rows and they are sorted with instance ids
compared as code points (PostgreSQL ``COLLATE "C"``, like Python and SQLite).

The statements differ only in the instance-id collation and the JSON functions
(``ldt.cloud.store.dialect``); the logic is written once, over a ``Tx``
(``TemporalRepository.page`` runs it in one read snapshot).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ldt.cloud.ngsild.temporal import VALUE_MEMBERS, WRAPPED_MEMBERS, Window
from ldt.cloud.ngsild.temporal_page import InstanceText, Render, TemporalPage
from ldt.cloud.store.database import Row, Tx
from ldt.cloud.store.dialect import Dialect
from ldt.cloud.store.temporal_rows import TIME_COLUMNS, instance_from_row

__all__ = ["read_page"]


def _case_member(d: Dialect) -> str:
    """The value member's name of the instance's kind (``temporal.VALUE_MEMBERS``)."""
    whens = " ".join(
        f"WHEN '{kind}' THEN '{member}'"
        for kind, (member, _) in VALUE_MEMBERS.items()
        if member != "value"
    )
    return f"(CASE {_kind(d)} {whens} ELSE 'value' END)"


def _kind(d: Dialect) -> str:
    """The instance's type, Property without one."""
    return f"COALESCE({d.json_member_text('doc', 'type')}, 'Property')"


_AT = {"observedAt": 4, "createdAt": 5, "modifiedAt": 6, "deletedAt": 8}
"""Where ``_select`` puts each time; modifiedAt (6) stands in for a missing one."""


def _in(column: str, values: Sequence[Any]) -> str:
    return f"{column} IN ({','.join('?' * len(values))})"


def _filters(window: Window, datasets: frozenset[str | None] | None) -> tuple[list[str], list[Any]]:
    """The window and datasetId conditions (not the entity/attribute ones)."""
    column = TIME_COLUMNS[window.time_property]
    # deletion records have only deletedAt: they answer that time property and no other
    where = [f"deleted_at_ms IS {'NOT ' if window.time_property == 'deletedAt' else ''}NULL"]
    params: list[Any] = []
    if window.start_ms is not None:
        where.append(f"{column} >= ?")
        params.append(window.start_ms)
    if window.end_ms is not None:
        where.append(f"{column} < ?")
        params.append(window.end_ms)
    if datasets is not None:
        named = sorted(d for d in datasets if d is not None)
        terms = [_in("dataset_id", named)] if named else []
        if None in datasets:
            terms.append("dataset_id IS NULL")
        where.append(f"({' OR '.join(terms)})")
        params.extend(named)
    return where, params


def _never_null(window: Window) -> bool:
    """Whether every selected row has the time property (else it counts at modifiedAt)."""
    return (
        window.start_ms is not None
        or window.end_ms is not None
        or window.time_property == "deletedAt"
    )


def _rendered(d: Dialect, render: Render | None, window: Window) -> str:
    """What the eighth column holds: ``doc``, or the instance as ``render`` shows it."""
    if render is None:
        return d.doc_text()
    if render == "full":  # without createdAt/modifiedAt (``temporal._full``), with its id
        doc = d.json_without("doc", "createdAt", "modifiedAt")
        return d.json_text(d.json_with(doc, "instanceId", "instance_id"))
    if render == "full_sys":
        return d.json_text(d.json_with("doc", "instanceId", "instance_id"))
    member = _case_member(d)
    value = d.json_member("doc", member)
    wrapped = "', '".join(sorted(WRAPPED_MEMBERS))
    value = (
        f"(CASE WHEN {member} IN ('{wrapped}') THEN {d.json_object_of(member, value)}"
        f" ELSE {value} END)"
    )
    text_of = d.json_member_text
    at = f"COALESCE({text_of('doc', window.time_property)}, {text_of('doc', 'modifiedAt')})"
    return d.json_text(d.json_array_of(value, at))


def _select(d: Dialect, render: Render | None = None, window: Window | None = None) -> str:
    column = d.doc_text() if window is None else _rendered(d, render, window)
    kind = "NULL" if render != "values" else _kind(d)
    return (  # the dialect's own expressions, no input
        "SELECT entity_id, attr, instance_id, dataset_id, observed_at_ms, created_at_ms,"  # noqa: S608
        f" modified_at_ms, {column}, deleted_at_ms, {kind} FROM attr_instances"
    )


def _page(
    rows: list[Row],
    present: frozenset[tuple[str, str]],
    window: Window,
    render: Render | None,
    more: bool,
) -> TemporalPage:
    """The page of ``rows`` (in answer order): parsed, or as the rendered texts."""
    span = None
    if rows:
        at = _AT[window.time_property]
        first, last = rows[0], rows[-1]
        span = (
            first[6] if first[at] is None else first[at],
            last[6] if last[at] is None else last[at],
        )
    if render is None:
        parsed = [instance_from_row(r) for r in rows]
        return TemporalPage(parsed, present, more=more, span=span)
    texts = [
        InstanceText(
            entity_id=r[0],
            attr=r[1],
            instance_id=r[2],
            dataset_id=r[3],
            sort_ms=r[6] if r[4] is None else r[4],
            kind=str(r[9]),
            text=r[7],
        )
        for r in rows
    ]
    return TemporalPage([], present, more=more, span=span, texts=texts)


async def _attrs_of(tx: Tx, entity_id: str) -> list[str]:
    """The attributes with history of one entity: a loose index scan, one seek per name.

    ``SELECT DISTINCT attr`` would read every instance of the entity (86,400 per
    attribute-day); the recursive query asks the (entity_id, attr, ...) index
    for the next name after each, so it costs one seek per attribute.
    """
    rows = await tx.fetchall(
        "WITH RECURSIVE a(attr) AS ("
        " SELECT (SELECT min(attr) FROM attr_instances WHERE entity_id = ?)"
        " UNION ALL SELECT (SELECT min(i.attr) FROM attr_instances AS i"
        " WHERE i.entity_id = ? AND i.attr > a.attr) FROM a WHERE a.attr IS NOT NULL"
        ") SELECT attr FROM a WHERE attr IS NOT NULL",
        [entity_id, entity_id],
    )
    return [str(r[0]) for r in rows]


async def _pairs(
    tx: Tx, entity_ids: Sequence[str], attrs: Sequence[str] | None
) -> list[tuple[str, str]]:
    """The (entity, attribute) pairs that may have instances: asked for, or stored."""
    if attrs is not None:
        return [(e, a) for e in dict.fromkeys(entity_ids) for a in dict.fromkeys(attrs)]
    return [(e, a) for e in dict.fromkeys(entity_ids) for a in await _attrs_of(tx, e)]


@dataclass(frozen=True, slots=True)
class _Ask:
    """One read: whose instances, the window and datasetId conditions, the page size."""

    tx: Tx
    entity_ids: Sequence[str]
    attrs: Sequence[str] | None
    window: Window
    filters: list[str]
    params: list[Any]
    limit: int
    render: Render | None
    datasets: frozenset[str | None] | None


async def read_page(
    tx: Tx,
    entity_ids: Sequence[str],
    attrs: Sequence[str] | None,
    window: Window,
    *,
    datasets: frozenset[str | None] | None,
    limit: int,
    render: Render | None = None,
) -> TemporalPage:
    """The instances of ``entity_ids`` (``attrs``, ``datasets``) in ``window``, cut at ``limit``.

    ``render`` None: parsed instances (``TemporalPage.rows``); else the store's
    rendering of each (``TemporalPage.texts``).
    """
    if not entity_ids or (attrs is not None and not attrs):
        return TemporalPage([], frozenset(), more=False, texts=None if render is None else [])
    if window.last_n is not None:  # lastN counts every datasetId; the asked ones are kept after
        filters, filter_params = _filters(window, None)
        ask = _Ask(tx, entity_ids, attrs, window, filters, filter_params, limit, render, datasets)
        return await _last_n(ask, window.last_n)
    filters, filter_params = _filters(window, datasets)
    ask = _Ask(tx, entity_ids, attrs, window, filters, filter_params, limit, render, datasets)
    d = tx.dialect
    column = TIME_COLUMNS[window.time_property]
    key = column if _never_null(window) else f"COALESCE({column}, modified_at_ms)"
    where = [_in("entity_id", entity_ids)]
    params: list[Any] = [*entity_ids]
    if attrs is not None:
        where.append(_in("attr", attrs))
        params.extend(attrs)
    head = f"{_select(d, render, window)} WHERE {' AND '.join([*where, *ask.filters])}"
    if _never_null(window):  # the index's order; ties at the cut by instanceId, below
        rows = await tx.fetchall(
            f"{head} ORDER BY {key} LIMIT ?", [*params, *ask.params, limit + 1]
        )
        tie = [*params, *ask.params]
        rows = await _settle_ties(ask, head, tie, rows, limit, newest_first=False)
    else:
        order = f" ORDER BY {key}, {d.code_points('instance_id')} LIMIT ?"
        rows = await tx.fetchall(head + order, [*params, *ask.params, limit + 1])
    more = len(rows) > limit
    del rows[limit:]
    present = {(str(r[0]), str(r[1])) for r in rows}
    if more:  # pairs with instances only past the cut still show, empty
        present |= await _present(ask, present)
    return _page(rows, frozenset(present), window, render, more)


async def _settle_ties(
    ask: _Ask,
    head: str,
    params: list[Any],
    rows: list[Row],
    keep: int,
    *,
    newest_first: bool,
) -> list[Row]:
    """``rows`` (ordered by time alone) ordered by (time, instanceId), the first ``keep`` exact.

    Ordering by the time alone is the (entity_id, attr, time) index's order, so
    the database reads only the rows it returns; adding instanceId made
    PostgreSQL's planner sort every instance of the window instead. Only the
    instances at row ``keep - 1``'s instant can be cut wrongly, and only when
    the row after it (fetched for that) shares the instant: then all of that
    instant are fetched (an index equality) and the first by instanceId kept.
    """
    order = _time_and_id(ask.window)
    if len(rows) <= keep or keep < 1:
        return sorted(rows, key=order, reverse=newest_first)
    at = _AT[ask.window.time_property]
    edge = rows[keep - 1][at]
    if rows[keep][at] != edge:  # the instant ends within what was read
        return sorted(rows, key=order, reverse=newest_first)
    column = TIME_COLUMNS[ask.window.time_property]
    before = [r for r in rows if r[at] != edge]
    same = await ask.tx.fetchall(f"{head} AND {column} = ?", [*params, edge])
    merged = [*before, *same]
    merged.sort(key=order, reverse=newest_first)
    return merged[: len(rows)]


def _time_and_id(window: Window) -> Callable[[Row], tuple[int, str]]:
    """The page order of selected rows: the time (modifiedAt without it), then instanceId."""
    at = _AT[window.time_property]
    return lambda r: (r[6] if r[at] is None else r[at], r[2])


async def _present(ask: _Ask, known: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which other (entity, attribute) pairs have an instance in the window: a seek each."""
    sql = (
        "SELECT 1 FROM attr_instances WHERE entity_id = ? AND attr = ? AND "  # noqa: S608
        + " AND ".join(ask.filters)
        + " LIMIT 1"
    )
    found: set[tuple[str, str]] = set()
    for pair in await _pairs(ask.tx, ask.entity_ids, ask.attrs):
        if pair not in known and await ask.tx.fetchall(sql, [*pair, *ask.params]):
            found.add(pair)
    return found


async def _last_n(ask: _Ask, last_n: int) -> TemporalPage:
    """lastN per (entity, attribute): one LIMITed index scan each, newest first.

    Instances without the time property count as the oldest here; the page is
    then cut newest first by (time, instanceId) as ``temporal.paginate`` does.
    lastN counts the instances of every datasetId, then only the asked ones
    are kept (as the broker always answered). A pair can give at most ``limit
    + 1`` rows to the page when every row has the time and every datasetId is
    asked for (then the SQL order is the page's order); otherwise all lastN.
    """
    window, d = ask.window, ask.tx.dialect
    column = TIME_COLUMNS[window.time_property]
    whole = _never_null(window) and ask.datasets is None
    per_pair = min(last_n, ask.limit + 1) if whole else last_n
    head = (
        f"{_select(d, ask.render, window)} WHERE entity_id = ? AND attr = ?"
        f" AND {' AND '.join(ask.filters)}"
    )
    # NULLs last as two index scans: "DESC NULLS LAST" is not the index's backward
    # order on PostgreSQL, which then sorted every instance of the attribute
    timed = f"{head} AND {column} IS NOT NULL"
    untimed = f"{head} AND {column} IS NULL ORDER BY {d.code_points('instance_id')} DESC LIMIT ?"
    rows: list[Row] = []
    for pair in await _pairs(ask.tx, ask.entity_ids, ask.attrs):
        found = await ask.tx.fetchall(  # one more: does the last one's instant go on?
            f"{timed} ORDER BY {column} DESC LIMIT ?", [*pair, *ask.params, per_pair + 1]
        )
        found = await _settle_ties(
            ask, timed, [*pair, *ask.params], found, per_pair, newest_first=True
        )
        del found[per_pair:]
        if len(found) < per_pair and not _never_null(window):
            found += await ask.tx.fetchall(untimed, [*pair, *ask.params, per_pair - len(found)])
        rows.extend(found)
    if ask.datasets is not None:
        rows = [r for r in rows if r[3] in ask.datasets]
    present = frozenset((str(r[0]), str(r[1])) for r in rows)
    more = len(rows) > ask.limit
    if more:
        rows.sort(key=_time_and_id(window), reverse=True)
        del rows[ask.limit :]
    return _page(rows, present, window, ask.render, more)
