"""Plausible, seeded, time-varying values for a profile's points.

What each point does is read from its name, in the words ldt profiles use:
``voltage``, ``current``, ``active_power``, ``apparent_power``,
``reactive_power``, ``power_factor``, ``frequency``, ``*_energy`` (``import``,
``export``, ``total``; ``reactive`` for kvarh), ``temperature``,
``humidity``; a phase is ``_l1``/``_l2``/``_l3``; ``total``/``system``/``sum``
aggregate the phases, ``average`` averages them, ``line_to_line`` gives the
delta voltage. Electrical points share one consistent model (P = V*I*pf,
S = V*I, Q = sqrt(S^2 - P^2), energy = integral of P), so a client can
cross-check them. Anything else does a bounded random walk in a plausible
range of its type. Writable points and configuration-like names (address,
baud, parity, serial, period, correction) hold their value until written.

Time is simulated: each ``step(dt)`` advances the clock by ``dt`` seconds and
draws from one ``random.Random(seed)``, so the same seed and the same steps
give the same values on every machine. The daily load curve is compressed to
``LOAD_PERIOD_S`` so a demo shows it.
"""

from __future__ import annotations

import cmath
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from ldt.simulators.modbus.profile import SimPoint
from ldt.simulators.modbus.registers import Value, value_limits

__all__ = ["LOAD_PERIOD_S", "DeviceModel"]

LOAD_PERIOD_S = 3600.0
"""One simulated 'day' of load variation, in simulated seconds."""

_PHASE = re.compile(r"(?:_l|_phase_?|phase)([123])(?:_|$)")
_CONFIG_WORDS = ("address", "baud", "parity", "serial", "period", "correction", "password")
_PHASES = (1, 2, 3)


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


@dataclass
class _Walk:
    """A mean-reverting random walk kept inside [lo, hi]."""

    value: float
    lo: float
    hi: float
    sigma: float
    """Standard deviation of one second's change."""
    centre: float

    def step(self, rng: random.Random, dt: float) -> float:
        pull = 0.02 * dt * (self.centre - self.value)
        self.value = _clamp(
            self.value + pull + rng.gauss(0.0, self.sigma * math.sqrt(dt)), self.lo, self.hi
        )
        return self.value


class _Electrics:
    """Three phases of voltage, load current and power factor, and the energy counters."""

    def __init__(self, rng: random.Random, phases: tuple[int, ...]) -> None:
        self.t = 0.0
        self.phases = phases
        self.voltage = {p: _Walk(230.0 + rng.uniform(-2, 2), 218, 242, 0.3, 230) for p in _PHASES}
        self.pf = {p: _Walk(rng.uniform(0.9, 0.97), 0.8, 0.995, 0.003, 0.93) for p in _PHASES}
        self.peak = {p: rng.uniform(8.0, 16.0) for p in _PHASES}
        self.shift = {p: rng.uniform(0, 2 * math.pi) for p in _PHASES}
        self.noise = dict.fromkeys(_PHASES, 0.0)
        self.freq = _Walk(50.0 + rng.uniform(-0.02, 0.02), 49.9, 50.1, 0.005, 50.0)
        self.import_kwh = rng.uniform(1000.0, 5000.0)
        self.export_kwh = rng.uniform(0.0, 50.0)
        self.import_kvarh = rng.uniform(100.0, 800.0)
        self.export_kvarh = rng.uniform(0.0, 5.0)

    def step(self, rng: random.Random, dt: float) -> None:
        self.t += dt
        for p in _PHASES:
            self.voltage[p].step(rng, dt)
            self.pf[p].step(rng, dt)
            self.noise[p] = rng.gauss(0.0, 0.03)
        self.freq.step(rng, dt)
        self.import_kwh += self.total_p() * dt / 3.6e6
        self.import_kvarh += self.total_q() * dt / 3.6e6

    def v(self, p: int) -> float:
        return self.voltage[p].value

    def i(self, p: int) -> float:
        day = 0.5 - 0.5 * math.cos(2 * math.pi * self.t / LOAD_PERIOD_S + self.shift[p])
        return max(0.05, self.peak[p] * (0.15 + 0.85 * day) * (1.0 + self.noise[p]))

    def power_factor(self, ph: int) -> float:
        return self.pf[ph].value

    def p(self, ph: int) -> float:
        return self.v(ph) * self.i(ph) * self.pf[ph].value

    def s(self, ph: int) -> float:
        return self.v(ph) * self.i(ph)

    def q(self, ph: int) -> float:
        return math.sqrt(max(0.0, self.s(ph) ** 2 - self.p(ph) ** 2))

    def total_p(self) -> float:
        return sum(self.p(ph) for ph in self.phases)

    def total_q(self) -> float:
        return sum(self.q(ph) for ph in self.phases)

    def neutral(self) -> float:
        rot = (0.0, -2 * math.pi / 3, 2 * math.pi / 3)
        return abs(sum(cmath.rect(self.i(ph), rot[ph - 1]) for ph in self.phases))


def _role(point: SimPoint, el: _Electrics, phases: tuple[int, ...]) -> Callable[[], float] | None:
    """How a measured point follows the electrical model, or None if its name says nothing."""
    name = point.name.lower()
    m = _PHASE.search(name)
    aggregate = any(w in name for w in ("total", "system", "sum"))
    average = "average" in name or "avg" in name
    ph = int(m.group(1)) if m else 1
    fns: dict[str, Callable[[int], float]] = {
        "apparent_power": el.s,
        "reactive_power": el.q,
        "active_power": el.p,
        "power_factor": el.power_factor,
    }
    if "energy" in name:
        reactive = "reactive" in name

        def imp() -> float:
            return el.import_kvarh if reactive else el.import_kwh

        def exp() -> float:
            return el.export_kvarh if reactive else el.export_kwh

        if "import" in name:
            return imp
        if "export" in name:
            return exp
        return lambda: imp() + exp()
    if "frequency" in name:
        return lambda: el.freq.value
    if "voltage" in name:
        if "line_to_line" in name:
            nxt = phases[(phases.index(ph) + 1) % len(phases)] if ph in phases else ph
            return lambda: abs(cmath.rect(el.v(ph), 0) - cmath.rect(el.v(nxt), 2 * math.pi / 3))
        if average or aggregate:
            return lambda: sum(el.v(x) for x in phases) / len(phases)
        return lambda: el.v(ph)
    if "current" in name:
        if "neutral" in name:
            return el.neutral
        if average:
            return lambda: sum(el.i(x) for x in phases) / len(phases)
        if aggregate:
            return lambda: sum(el.i(x) for x in phases)
        return lambda: el.i(ph)
    if "power_factor" in name and aggregate:
        return lambda: sum(el.p(x) for x in phases) / sum(el.s(x) for x in phases)
    for key, fn in fns.items():
        if key in name or (key == "active_power" and name.endswith("power")):
            return _per_phase(fn, (*phases,) if aggregate else (ph,))
    return None


def _per_phase(fn: Callable[[int], float], phases: tuple[int, ...]) -> Callable[[], float]:
    """``fn`` summed over ``phases`` (one phase: just that phase's value)."""
    return lambda: sum(fn(x) for x in phases)


class DeviceModel:
    """The true (unencoded) value of every point, advanced by ``step``."""

    def __init__(self, *, points: tuple[SimPoint, ...], seed: int, unit_id: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not crypto
        three_phase = any(
            (m := _PHASE.search(p.name.lower())) is not None and m.group(1) == "3" for p in points
        )
        phases = _PHASES if three_phase else (1,)
        self._el = _Electrics(self._rng, phases)
        self._climate = {
            "temperature": _Walk(21.0 + self._rng.uniform(-2, 2), 15, 30, 0.02, 21),
            "humidity": _Walk(45.0 + self._rng.uniform(-5, 5), 25, 75, 0.05, 45),
        }
        self._measured: dict[str, Callable[[], float]] = {}
        self._walks: dict[str, _Walk] = {}
        self._flags: dict[str, bool] = {}
        self.values: dict[str, Value] = {}
        """Every point's current true value; held values stay until written."""
        for p in points:
            self.values[p.name] = self._initial(p, unit_id, phases)

    def _initial(self, p: SimPoint, unit_id: int, phases: tuple[int, ...]) -> Value:
        name = p.name.lower()
        config = p.writable or any(w in name for w in _CONFIG_WORDS)
        if p.type == "string":
            return f"SIM-{p.name}"[: 2 * p.registers]
        if p.type == "bool":
            state = self._rng.random() < 0.5
            if not config:
                self._flags[p.name] = state
            return state
        lo, hi = value_limits(p)
        if config:
            if "address" in name:
                guess: float = unit_id
            elif "serial" in name:
                guess = self._rng.randrange(10_000_000, 99_999_999)
            elif "period" in name:
                guess = 60
            else:
                guess = 0
            return self._fit(p, _clamp(guess, lo, hi))
        role = _role(p, self._el, phases)
        for key, walk in self._climate.items():
            if role is None and key in name:
                role = self._climate_value(walk)
        if role is not None:
            self._measured[p.name] = role
            return self._fit(p, role())
        # generic: somewhere plausible inside what the type can carry
        plo = max(lo, 0.0) if hi > 0 else lo
        phi = min(hi, plo + 1000.0 * abs(p.scale))
        start = self._rng.uniform(plo, phi)
        self._walks[p.name] = _Walk(start, plo, phi, (phi - plo) * 0.005, (plo + phi) / 2)
        return self._fit(p, start)

    @staticmethod
    def _climate_value(walk: _Walk) -> Callable[[], float]:
        return lambda: walk.value

    @staticmethod
    def _fit(p: SimPoint, value: float) -> Value:
        """Clamp into the type's range; integers with unit scale stay integers."""
        lo, hi = value_limits(p)
        value = _clamp(value, lo, hi)
        if p.type in ("float32", "float64") or p.scale != 1.0 or p.offset != 0.0:
            return value
        return round(value)

    @property
    def held(self) -> frozenset[str]:
        """Points the model does not change over time (configuration, strings)."""
        moving = self._measured.keys() | self._walks.keys() | self._flags.keys()
        return frozenset(self.values.keys() - moving)

    def step(self, dt: float, points: dict[str, SimPoint]) -> None:
        """Advance the simulated clock by ``dt`` seconds and recompute moving points."""
        self._el.step(self._rng, dt)
        for walk in self._climate.values():
            walk.step(self._rng, dt)
        for name, fn in self._measured.items():
            self.values[name] = self._fit(points[name], fn())
        for name, walk in self._walks.items():
            self.values[name] = self._fit(points[name], walk.step(self._rng, dt))
        for name in self._flags:
            if self._rng.random() < min(1.0, 0.05 * dt):
                self._flags[name] = not self._flags[name]
            self.values[name] = self._flags[name]
