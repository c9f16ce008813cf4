"""Plausible, seeded, time-varying values for an MQTT profile's points.

What a point does is read from its name: ``temperature``, ``humidity``,
``voltage``, ``current``, ``power``, ``energy`` (a counter that only grows),
``frequency``, ``power_factor``, ``co2``, ``no2``, ``o3``, ``pm10``/``pm25``,
``pressure``, ``battery``; anything else does a bounded random walk. Booleans,
strings and writable points hold their value until a command changes it.
Values are rounded to what such a device reports (two decimals), and all
randomness comes from one ``random.Random(seed)``, so the same seed and the
same number of steps give the same values on every machine.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ldt.simulators.mqtt.profile import SimPoint

__all__ = ["Raw", "ValueModel", "engineering"]

Raw = bool | int | float | str
"""A value as it travels in the payload (before the profile's scale/offset)."""

# name fragment -> (low, high, centre, sigma per second) in engineering units
_RANGES: tuple[tuple[str, tuple[float, float, float, float]], ...] = (
    ("temperature", (-10.0, 45.0, 21.0, 0.05)),
    ("humidity", (5.0, 95.0, 45.0, 0.2)),
    ("voltage", (215.0, 245.0, 230.0, 0.3)),
    ("current", (0.0, 16.0, 2.5, 0.1)),
    ("power_factor", (0.5, 1.0, 0.93, 0.005)),
    ("power", (0.0, 3600.0, 550.0, 20.0)),
    ("frequency", (49.8, 50.2, 50.0, 0.005)),
    ("co2", (380.0, 2000.0, 650.0, 5.0)),
    ("no2", (0.0, 200.0, 35.0, 1.0)),
    ("o3", (0.0, 180.0, 60.0, 1.0)),
    ("pm10", (0.0, 150.0, 22.0, 0.5)),
    ("pm25", (0.0, 100.0, 12.0, 0.3)),
    ("pm2", (0.0, 100.0, 12.0, 0.3)),
    ("pressure", (950.0, 1050.0, 1013.0, 0.1)),
    ("battery", (0.0, 100.0, 87.0, 0.01)),
    ("noise", (30.0, 90.0, 55.0, 1.0)),
)


@dataclass
class _Walk:
    value: float
    lo: float
    hi: float
    centre: float
    sigma: float
    counter: bool = False

    def step(self, rng: random.Random, dt: float) -> None:
        if self.counter:
            self.value += abs(rng.gauss(self.sigma * dt, self.sigma * dt / 4))
            return
        pull = 0.05 * dt * (self.centre - self.value)
        nxt = self.value + pull + rng.gauss(0.0, self.sigma * math.sqrt(dt))
        self.value = min(self.hi, max(self.lo, nxt))


def _walk_for(point: SimPoint, rng: random.Random) -> _Walk:
    name = point.name.lower()
    if "energy" in name or name.endswith("_total"):
        return _Walk(rng.uniform(1000.0, 5000.0), 0, math.inf, 0, 0.0005, True)
    for fragment, (lo, hi, centre, sigma) in _RANGES:
        if fragment in name:
            start = min(hi, max(lo, centre + rng.uniform(-0.1, 0.1) * (hi - lo)))
            return _Walk(start, lo, hi, centre, sigma)
    return _Walk(rng.uniform(10.0, 90.0), 0.0, 100.0, 50.0, 0.5)


class ValueModel:
    """The engineering value of every point and its raw form for the payload."""

    def __init__(self, points: tuple[SimPoint, ...], seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        self._points = {p.name: p for p in points}
        self._walks: dict[str, _Walk] = {}
        self._held: dict[str, Raw] = {}
        for p in points:
            if p.kind == "bool":
                self._held[p.name] = False
            elif p.kind == "string":
                self._held[p.name] = "ok"
            else:
                walk = _walk_for(p, self._rng)
                self._walks[p.name] = walk
                if p.writable:
                    self._held[p.name] = self._raw_number(p, walk.value)

    def step(self, dt: float) -> None:
        """Advance simulated time by ``dt`` seconds."""
        for name in sorted(self._walks):
            self._walks[name].step(self._rng, dt)

    def raw(self, name: str) -> Raw:
        """What the payload carries for point ``name`` now."""
        if name in self._held:
            return self._held[name]
        p = self._points[name]
        return self._raw_number(p, self._walks[name].value)

    def set_raw(self, name: str, raw: Raw) -> None:
        """Hold ``raw`` for point ``name`` (a command set it) until set again."""
        self._held[name] = raw

    @staticmethod
    def _raw_number(p: SimPoint, value: float) -> Raw:
        raw = (value - p.offset) / p.scale
        return round(raw) if p.kind == "int" else round(raw, 2)


def engineering(point: SimPoint, raw: Raw) -> Raw:
    """The value a correct client decodes from ``raw`` (``raw * scale + offset``).

    Mirrors the conversion a driver must make, written independently: numbers
    are scaled only when the profile says so, ``int`` points stay integers.
    """
    if point.kind in ("bool", "string") or isinstance(raw, (bool, str)):
        return raw
    scaled = raw * point.scale + point.offset if (point.scale != 1 or point.offset != 0) else raw
    if point.kind == "int":
        return int(scaled)
    return float(scaled)
