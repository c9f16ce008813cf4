"""The pumping station's process values: deterministic from a seed, no I/O.

A small wastewater lift station: an inlet wet well whose level rises with the
inflow and falls with what two duty/assist pumps take out. Each pump's speed
follows its speed setpoint (percent of 1480 rpm) while it runs; flow and
discharge pressure follow the affinity laws (flow ~ speed, head ~ speed**2).
The high-level alarm latches until ``ResetAlarm`` is called, as on a real
station controller. Values are rounded to 3 decimals so that what a client
decodes equals what ``expected`` says, bit for bit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["NOMINAL_RPM", "PUMPS", "StationModel"]

NOMINAL_RPM = 1480.0
PUMPS = ("Pump1", "Pump2")
_RATED_FLOW_M3H = 120.0
_WELL_AREA_M2 = 12.0
_HIGH_LEVEL_M = 3.2


@dataclass
class _Pump:
    running: bool
    setpoint_pct: float
    speed_rpm: float = 0.0
    flow_m3h: float = 0.0
    pressure_bar: float = 0.0
    run_hours: float = 0.0


@dataclass
class StationModel:
    """The station's state; ``step`` advances it by one update interval."""

    seed: int
    level_m: float = 1.8
    outlet_pressure_setpoint_bar: float = 4.5
    alarm_active: bool = False
    alarms_raised: int = 0
    mode: str = "auto"
    pumps: dict[str, _Pump] = field(default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"ldt-opcua-station:{self.seed}")  # noqa: S311 - simulation
        if not self.pumps:
            self.pumps = {
                "Pump1": _Pump(running=True, setpoint_pct=75.0),
                "Pump2": _Pump(False, 60.0),
            }
        self._settle()

    def _settle(self) -> None:
        for pump in self.pumps.values():
            if pump.running:
                ratio = pump.setpoint_pct / 100.0
                jitter = 1.0 + self._rng.uniform(-0.01, 0.01)
                pump.speed_rpm = round(NOMINAL_RPM * ratio * jitter, 3)
                frac = pump.speed_rpm / NOMINAL_RPM
                pump.flow_m3h = round(_RATED_FLOW_M3H * frac * self._rng.uniform(0.97, 1.03), 3)
                pump.pressure_bar = round(
                    0.8 + 4.2 * frac * frac + self._rng.uniform(-0.05, 0.05), 3
                )
            else:
                pump.speed_rpm = pump.flow_m3h = 0.0
                pump.pressure_bar = round(0.8 + self._rng.uniform(-0.02, 0.02), 3)

    def step(self, interval_s: float) -> None:
        """Advance simulated time by ``interval_s`` seconds."""
        inflow_m3h = 90.0 + 60.0 * self._rng.random()
        outflow_m3h = sum(p.flow_m3h for p in self.pumps.values())
        # the time scale is compressed 60x so that a demo shows the level move
        delta = (inflow_m3h - outflow_m3h) / _WELL_AREA_M2 * interval_s / 60.0
        self.level_m = round(min(4.5, max(0.3, self.level_m + delta)), 3)
        if self.level_m >= _HIGH_LEVEL_M and not self.alarm_active:
            self.alarm_active = True
            self.alarms_raised += 1
        for pump in self.pumps.values():
            if pump.running:
                pump.run_hours = round(pump.run_hours + interval_s / 3600.0, 6)
        self._settle()

    def start_pump(self, name: str) -> bool:
        """Start a pump; False if it was already running."""
        pump = self.pumps[name]
        was, pump.running = pump.running, True
        self._settle()
        return not was

    def stop_pump(self, name: str) -> bool:
        """Stop a pump; False if it was already stopped."""
        pump = self.pumps[name]
        was, pump.running = pump.running, False
        self._settle()
        return was

    def reset_alarm(self) -> int:
        """Clear the latched alarm; returns how many alarms it acknowledged (0 or 1)."""
        cleared = 1 if self.alarm_active else 0
        self.alarm_active = False
        return cleared
