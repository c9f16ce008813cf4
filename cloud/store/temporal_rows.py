"""Rows of the temporal tables <-> Python values, the same for SQLite and PostgreSQL.

The two stores differ in SQL (placeholders, JSON types, lateral joins) but not
in what a row holds, so the conversions live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ldt.cloud.ngsild.temporal import AttrInstance
from ldt.cloud.ngsild.timestamps import iso_ms, parse_iso_ms

__all__ = ["header_doc", "header_params", "instance_from_row", "instance_params"]


def _main(etype: Any) -> str:
    return str(etype[0] if isinstance(etype, list) else etype)


def header_params(headers: dict[str, tuple[Any, str]]) -> list[tuple[Any, ...]]:
    """(id, main type, types JSON, created ms, modified ms) per temporal entity header."""
    return [
        (eid, _main(t), orjson.dumps(t).decode(), *(2 * [parse_iso_ms(now) or 0]))
        for eid, (t, now) in headers.items()
    ]


def instance_params(
    rows: Sequence[AttrInstance], *, doc_text: bool = True
) -> list[tuple[Any, ...]]:
    """The ``attr_instances`` columns of each instance, in table order.

    ``doc_text``: the document as JSON text (a statement parameter); False keeps it
    as it is, for rows that are serialized together (PostgreSQL's one JSON array).
    """
    return [
        (
            r.instance_id,
            r.entity_id,
            r.attr,
            r.dataset_id,
            r.observed_at_ms,
            r.created_at_ms,
            r.modified_at_ms,
            orjson.dumps(r.doc).decode() if doc_text else r.doc,
            r.deleted_at_ms,
        )
        for r in rows
    ]


def header_doc(row: Sequence[Any]) -> dict[str, Any]:
    """A ``temporal_entities`` row (id, types, created ms, modified ms) as an entity header."""
    return {
        "id": row[0],
        "type": orjson.loads(row[1]),
        "createdAt": iso_ms(int(row[2])),
        "modifiedAt": iso_ms(int(row[3])),
    }


def instance_from_row(r: Sequence[Any]) -> AttrInstance:
    """An ``attr_instances`` row, selected in table order with ``doc`` as text."""
    return AttrInstance(
        entity_id=r[0],
        attr=r[1],
        instance_id=r[2],
        dataset_id=r[3],
        observed_at_ms=r[4],
        created_at_ms=r[5],
        modified_at_ms=r[6],
        doc=orjson.loads(r[7]),
        deleted_at_ms=r[8],
    )
