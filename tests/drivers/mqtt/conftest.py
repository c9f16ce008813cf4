"""Shared pieces of the MQTT driver tests: a real mosquitto, profiles, a reading collector."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from pathlib import Path

from ldt.drivers.mqtt.config import MqttPoint, MqttProfileSettings
from ldt.reading import Quality, Reading
from tests.mosquitto import mosquitto_broker, mosquitto_module

__all__ = ["PROFILES", "Collector", "load_profile", "mosquitto_broker", "mosquitto_module"]

PROFILES = Path(__file__).resolve().parents[3] / "firmware_configs"


def load_profile(path: Path) -> tuple[MqttProfileSettings, list[MqttPoint]]:
    """The ``[mqtt]`` table and the points of a profile file, validated by the driver's models."""
    data = tomllib.loads(path.read_text())
    return MqttProfileSettings(**data.get("mqtt", {})), [MqttPoint(**p) for p in data["points"]]


class Collector:
    """An ``emit`` that keeps every reading and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self._changed = asyncio.Event()

    async def __call__(self, reading: Reading) -> None:
        self.readings.append(reading)
        self._changed.set()

    def good(self) -> list[Reading]:
        return [r for r in self.readings if r.quality is Quality.GOOD]

    def bad(self) -> list[Reading]:
        return [r for r in self.readings if r.quality is Quality.BAD]

    async def wait(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
