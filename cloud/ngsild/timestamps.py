"""NGSI-LD DateTime strings <-> Unix milliseconds (UTC), exact to the millisecond."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["expiry_problem", "iso_ms", "parse_iso_ms"]

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


def expiry_problem(value: object, now: str) -> str | None:
    """Why ``value`` is no ``expiresAt`` (a DateTime after ``now``), or None when it is one.

    Subscriptions and registrations both refuse an expiry that is not a date or already past
    (GS CIM 009 5.2.12, 5.2.9): a document that would be born expired is a client's mistake.
    """
    expires = parse_iso_ms(value)
    if expires is None:
        return f"expiresAt {value!r} is not a DateTime"
    if expires <= (parse_iso_ms(now) or 0):
        return f"expiresAt {value} is in the past"
    return None
