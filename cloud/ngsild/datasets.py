"""The ``datasetId`` query parameter (GS CIM 009 v1.9.1 clauses 5.7.1, 5.7.2, 5.7.4).

``datasetId=urn:a,urn:b`` keeps, of every attribute, only the instances with one of those
datasetIds; ``@none`` names the default instance (the one without a datasetId). It selects
instances, not entities: an entity whose attributes all drop out is still answered (with none
left, ETSI 019_12_07), while a temporal query leaves out an entity with no instance left, as
it does one with nothing in its time window (021_18_07). Combined with ``attrs`` both apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.problems import NgsiLdError

__all__ = ["DEFAULT_INSTANCE", "keep_datasets", "parse_dataset_ids"]

DEFAULT_INSTANCE: Final = "@none"
# entity members that are not attributes: kept whatever the datasetId
_NOT_ATTRIBUTES: Final = frozenset(
    {"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt", "@context"}
)


def parse_dataset_ids(text: str) -> frozenset[str | None]:
    """The wanted datasetIds (None: the default instance); 400 BadRequestData if malformed."""
    wanted: set[str | None] = set()
    for part in (p.strip() for p in text.split(",")):
        if part == DEFAULT_INSTANCE:
            wanted.add(None)
        elif part and is_uri(part):
            wanted.add(part)
        else:
            raise NgsiLdError(
                400,
                "BadRequestData",
                "Invalid datasetId",
                f"datasetId must list URIs or {DEFAULT_INSTANCE}, got {part!r}",
            )
    return frozenset(wanted)


def _dataset(instance: Any) -> str | None:
    return instance.get("datasetId") if isinstance(instance, Mapping) else None


def keep_datasets(entity: Mapping[str, Any], wanted: frozenset[str | None]) -> dict[str, Any]:
    """``entity`` with only the attribute instances of the ``wanted`` datasetIds.

    An attribute left with one instance is shown as that instance (not a one-item list);
    one left with none is dropped.
    """
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if name in _NOT_ATTRIBUTES:
            out[name] = value
            continue
        instances = value if isinstance(value, list) else [value]
        kept = [i for i in instances if _dataset(i) in wanted]
        if kept:
            out[name] = kept[0] if len(kept) == 1 else kept
    return out
