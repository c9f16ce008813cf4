"""The value a driver hands to the agent: one sample of one point of one device.

This is the only module of ours that drivers import, so it stays free of I/O
and of anything NGSI-LD: drivers speak of devices and points, the agent maps
them to entities and attributes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "MAX_STRUCTURED_CHARS",
    "Quality",
    "Reading",
    "Structured",
    "Value",
    "json_problem",
    "json_text",
]

Value = bool | int | float | str
"""A decoded point value. ``bool`` before ``int``: Python's bool is an int."""

MAX_STRUCTURED_CHARS = 16_384
"""The largest array or structure a reading carries, as compact JSON text: a point is one
measurement, not a file, and the buffer and the sync batch stay bounded."""


_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson (the agent's and the cloud's encoder) writes


def json_text(data: Any) -> str:
    """``data`` (a structured value) as compact JSON; ``ValueError`` says why it cannot
    travel: text with NUL (PostgreSQL
    refuses it), integers beyond 64 bits and NaN or infinities (JSON has no word for them
    and orjson refuses them), or more than ``MAX_STRUCTURED_CHARS``. One rule for the
    agent's drivers, its buffer and the cloud's ingest."""
    stack = [data]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_STRUCTURED_CHARS:
            raise ValueError(f"the value has more than {MAX_STRUCTURED_CHARS} parts")
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("the value has a NUL character in its text")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not _INT_RANGE[0] <= item <= _INT_RANGE[1]:
                raise ValueError(f"the value has an integer beyond 64 bits ({item})")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"the value has {item} (not a finite number)")
        elif isinstance(item, dict):
            for key, val in item.items():
                if not isinstance(key, str):
                    raise ValueError("the value has a key that is not text")  # noqa: TRY004 - a value, not a call
                stack.append(key)
                stack.append(val)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            raise ValueError(f"the value has a part of type {type(item).__name__}")
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the value cannot be sent as JSON: {exc}") from None
    if len(text) > MAX_STRUCTURED_CHARS:
        raise ValueError(
            f"the value is {len(text)} characters as JSON; at most "
            f"{MAX_STRUCTURED_CHARS} fit in a reading"
        )
    return text


def json_problem(data: Any) -> str | None:
    """Why ``data`` cannot travel (``json_text``'s reason), or None when it can."""
    try:
        json_text(data)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class Structured:
    """A point value that is not one number, flag or text: an instant, or JSON data.

    ``kind`` ``"instant"``: ``data`` is ISO 8601 UTC text (``2026-01-02T03:04:05.678Z``).
    ``kind`` ``"json"``: ``data`` is a list or dict of JSON values (an OPC UA array or
    structure, an MQTT payload's object). Build them with ``instant`` and ``of_json``, which
    check the data; the agent decides how each kind is shown in the twin.
    """

    kind: Literal["instant", "json"]
    data: Any

    @classmethod
    def instant(cls, when: datetime) -> Structured:
        """``when`` (naive means UTC) as an instant, to the millisecond."""
        stamp = when if when.tzinfo else when.replace(tzinfo=UTC)
        text = stamp.astimezone(UTC).isoformat(timespec="milliseconds")
        return cls("instant", text.replace("+00:00", "Z"))

    @classmethod
    def of_json(cls, data: list[Any] | dict[str, Any]) -> Structured:
        """``data`` as a JSON value; ``ValueError`` says why it cannot be one (NaN, a type
        JSON has no word for, more than ``MAX_STRUCTURED_CHARS``)."""
        return cls(
            "json", json.loads(json_text(data))
        )  # a private copy: later changes to data do not leak


class Quality(StrEnum):
    """How far a reading can be trusted; every reading carries one.

    ``good``: read from the device just now. ``bad``: the read failed (the
    reading has no value and ``reason`` says why). ``stale``: the device
    answered but the value did not refresh when it should have.
    """

    GOOD = "good"
    BAD = "bad"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample. ``observed_at`` is Unix time in milliseconds, UTC.

    A ``bad`` reading has ``value is None`` and a human-readable ``reason``;
    a ``good`` or ``stale`` one has a value.
    """

    device_id: str
    point: str
    value: Value | Structured | None
    observed_at_ms: int
    quality: Quality = Quality.GOOD
    reason: str | None = None
