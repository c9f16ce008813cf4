"""The value a driver hands to the agent: one sample of one point of one device.

This is the only module of ours that drivers import, so it stays free of I/O
and of anything NGSI-LD: drivers speak of devices and points, the agent maps
them to entities and attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Quality", "Reading", "Value"]

Value = bool | int | float | str
"""A decoded point value. ``bool`` before ``int``: Python's bool is an int."""


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
    value: Value | None
    observed_at_ms: int
    quality: Quality = Quality.GOOD
    reason: str | None = None
