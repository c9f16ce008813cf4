"""NGSI-LD DateTime strings <-> Unix milliseconds (UTC), exact to the millisecond."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["iso_ms", "parse_iso_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def iso_ms(ms: int) -> str:
    """``1795780800123`` -> ``"2026-11-27T12:00:00.123Z"`` (integer maths: no float rounding)."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def parse_iso_ms(text: object) -> int | None:
    """Unix ms of an ISO 8601 DateTime, or None if ``text`` is not one (naive means UTC)."""
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS
