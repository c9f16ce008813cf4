"""Builds sync batches as a gateway sends them (plain JSON, the wire format)."""

from __future__ import annotations

from typing import Any

import orjson

T0 = 1_795_780_800_000
"""2026-11-27T12:00:00.000Z in Unix ms."""


def series(
    gateway_id: str, *, devices: int = 1, attrs: tuple[str, ...] = ("activePower",)
) -> dict[str, dict[str, Any]]:
    """Series ids 0.. for each (device, attr): urn:ngsi-ld:Device:<gw>:m<i>."""
    out: dict[str, dict[str, Any]] = {}
    for d in range(devices):
        for a, attr in enumerate(attrs):
            out[str(d * len(attrs) + a)] = {
                "entity_id": f"urn:ngsi-ld:Device:{gateway_id}:m{d}",
                "entity_type": "Device",
                "attr": attr,
                "unit": "WTT",
            }
    return out


def batch(
    gateway_id: str,
    readings: list[list[Any]],
    *,
    series_map: dict[str, dict[str, Any]] | None = None,
    lane: str = "live",
) -> dict[str, Any]:
    """A batch dict; ``readings`` rows are [seq, series, observed_at_ms, value, quality, reason]."""
    return {
        "v": 1,
        "gateway_id": gateway_id,
        "lane": lane,
        "series": series_map if series_map is not None else series(gateway_id),
        "readings": readings,
    }


def good_rows(start_seq: int, n: int, *, n_series: int = 1, t0: int = T0) -> list[list[Any]]:
    """``n`` good readings, seqs from ``start_seq``, one ms apart, round-robin over series."""
    return [
        [seq, seq % n_series, t0 + seq, 200.0 + seq % 50, "good", None]
        for seq in range(start_seq, start_seq + n)
    ]


def encode(body: dict[str, Any]) -> bytes:
    """The bytes the agent would POST."""
    return orjson.dumps(body)
