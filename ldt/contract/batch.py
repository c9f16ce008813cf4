"""The sync batch: buffered readings sent by a gateway, and the cloud's acknowledgement.

Shape on the wire (JSON)::

    {"v": 1, "gateway_id": "gw-1", "lane": "live" | "backfill",
     "series": {"7": {"entity_id": "urn:ngsi-ld:Device:meter-1", "entity_type": "Device",
                      "attr": "activePower", "unit": "WTT"}},
     "readings": [[seq, series_id, observed_at_ms, value, quality, reason], ...]}

Readings are rows, not objects, because a batch carries thousands of them and
sync must stay cheap on a Pi; ``series`` names each (entity, attribute, unit)
once per batch. ``seq`` is the gateway buffer's sequence number: the cloud
applies a batch idempotently keyed by (gateway_id, seq), so a replay after a
crash never duplicates. The cloud answers with a ``BatchAck`` only after the
batch is committed to its store; the gateway marks readings sent only then.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ldt.reading import Structured, Value, json_problem

__all__ = [
    "INGEST_PATH",
    "WIRE_VERSION",
    "BatchAck",
    "GatewayStatus",
    "IngestBatch",
    "SeriesInfo",
    "WireReading",
    "WireValue",
    "wire_value",
]

WIRE_VERSION: Literal[1] = 1
INGEST_PATH = "/ldt/v1/ingest"
MAX_BATCH_READINGS = 20_000
"""A batch larger than this is refused (413): bounds the cloud's memory per request."""

_Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
_Urn = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+:\S+$")]
_Unit = Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=r"^[A-Z0-9]+$")]

WireValue = bool | int | float | str | dict[str, Any] | list[Any] | None
"""A reading's value as sent and as the twin shows it: a scalar, an NGSI-LD DateTime
(``{"@type": "DateTime", "@value": "2026-01-02T03:04:05.678Z"}``), or JSON data (an
array or a structure) as the Property's value."""


def wire_value(value: Value | Structured | None) -> WireValue:
    """A driver's value as it goes on the wire (and into the buffer)."""
    if not isinstance(value, Structured):
        return value
    if value.kind == "instant":
        return {"@type": "DateTime", "@value": value.data}
    data: dict[str, Any] | list[Any] = value.data
    return data


WireReading = tuple[
    Annotated[int, Field(ge=1)],  # seq
    Annotated[int, Field(ge=0)],  # series id
    Annotated[int, Field(ge=0)],  # observed_at, Unix ms UTC
    WireValue,
    Literal["good", "bad", "stale"],
    str | None,  # reason, for bad readings
]


class SeriesInfo(BaseModel):
    """Where a series of readings lands in the twin: one attribute of one entity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_id: _Urn
    entity_type: _Name
    attr: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
    unit: _Unit | None = None
    provenance: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """What produced a derived series ("model meter-forecast 1.0.0"); None: a device."""


class GatewayStatus(BaseModel):
    """How the gateway is doing, sent with a batch every few seconds (the fleet view).

    ``sent_at_ms`` is the gateway's clock when it encoded the batch: the cloud compares
    it with its own to detect a gateway whose clock is wrong (and whose ``observed_at``
    timestamps are therefore suspect).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_version: Annotated[str, StringConstraints(max_length=64)]
    pending: Annotated[int, Field(ge=0)]
    oldest_pending_ms: int | None = None
    sent_at_ms: int


class IngestBatch(BaseModel):
    """One sync batch. Validated on the cloud side before anything is written."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = WIRE_VERSION
    gateway_id: _Name
    lane: Literal["live", "backfill"] = "backfill"
    series: dict[str, SeriesInfo]
    readings: Annotated[list[WireReading], Field(max_length=MAX_BATCH_READINGS)]
    status: GatewayStatus | None = None

    @model_validator(mode="after")
    def _series_known(self) -> IngestBatch:
        """Every reading must name a series the batch describes; seqs must be unique.

        Text may not contain NUL: PostgreSQL cannot store it, and a value one store
        takes and the other refuses would make the same batch succeed or fail by
        deployment. The gateway sets such a reading aside (it gets a 400).
        """
        seen: set[int] = set()
        for row in self.readings:
            value = row[3]
            if (isinstance(value, str) and "\x00" in value) or (row[5] and "\x00" in row[5]):
                raise ValueError(f"reading seq {row[0]} has a NUL character in its text")
            if isinstance(value, int) and not isinstance(value, bool):
                if not -(2**63) <= value < 2**63:
                    raise ValueError(f"reading seq {row[0]}'s integer is beyond 64 bits")
            elif isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"reading seq {row[0]}'s value is not a finite number")
            elif isinstance(value, dict | list):
                problem = json_problem(value)
                if problem is not None:
                    raise ValueError(f"reading seq {row[0]}: {problem}")
            if str(row[1]) not in self.series:
                raise ValueError(f"reading seq {row[0]} names unknown series {row[1]}")
            if row[0] in seen:
                raise ValueError(f"seq {row[0]} appears twice in the batch")
            seen.add(row[0])
        return self


class BatchAck(BaseModel):
    """The cloud's answer: the batch is durable. ``duplicates`` were already held."""

    model_config = ConfigDict(extra="forbid")

    gateway_id: str
    accepted: int
    duplicates: int
    max_seq: int
