"""Rows of the temporal tables <-> Python values, the same for SQLite and PostgreSQL.

The two engines differ in SQL (placeholders, JSON types) but not in what a row
holds, so the conversions live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from ldt.cloud.ngsild.temporal import AttrInstance
from ldt.cloud.ngsild.timestamps import parse_iso_ms
from ldt.cloud.store.dialect import BulkKind

__all__ = [
    "HEADER_KINDS",
    "INSTANCE_COLUMNS",
    "INSTANCE_KINDS",
    "TIME_COLUMNS",
    "header_params",
    "instance_from_row",
    "instance_params",
]

TIME_COLUMNS: Final = {
    "observedAt": "observed_at_ms",
    "createdAt": "created_at_ms",
    "modifiedAt": "modified_at_ms",
    "deletedAt": "deleted_at_ms",
}
"""The ``attr_instances`` column of each time property."""

INSTANCE_COLUMNS: Final = (
    "instance_id, entity_id, attr, dataset_id, observed_at_ms, created_at_ms,"
    " modified_at_ms, doc, deleted_at_ms"
)
"""``attr_instances`` in table order (``instance_params``)."""
INSTANCE_KINDS: Final[tuple[BulkKind, ...]] = (
    *(4 * ("text",)),
    *(3 * ("int",)),
    "json",
    "int",
)
HEADER_KINDS: Final[tuple[BulkKind, ...]] = ("text", "text", "text", "int", "int")
"""``header_params``'s columns: id, main type, types (JSON text), created, modified."""


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
    as it is (``Dialect.bulk_params`` serializes it).
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
