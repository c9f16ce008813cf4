"""Helpers: run a BLE device's stream against a source until a condition holds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from ldt.backoff import Backoff
from ldt.drivers.ble import (
    AdvertisementSource,
    BleConnection,
    BleDevice,
    BleFormat,
    BlePoint,
    BleProfileSettings,
)
from ldt.reading import Quality, Reading


def advert_device(
    source: AdvertisementSource,
    address: str,
    fmt: BleFormat,
    fields: Sequence[str],
    *,
    absence_s: float = 30.0,
    bindkey: str | None = None,
    name: str | None = None,
    pseudonymise: bool = False,
    pseudonym_key: bytes | None = None,
) -> BleDevice:
    """``pseudonymise`` is off here: these tests compare decoded values with the
    simulator's (tests/security/test_ble_privacy.py covers the default, on)."""
    return BleDevice(
        device_id="sensor-1",
        connection=BleConnection(address=None if name else address, name=name, bindkey=bindkey),
        settings=BleProfileSettings(
            format=fmt, absence_timeout_s=absence_s, pseudonymise=pseudonymise
        ),
        points=[BlePoint(name=f) for f in fields],
        backoff=Backoff(base_s=0.05, cap_s=0.2),
        source=source,
        pseudonym_key=pseudonym_key,
    )


async def stream_until(
    device: BleDevice, done: Callable[[list[Reading]], bool], *, limit_s: float = 5.0
) -> list[Reading]:
    """Run ``device.stream`` until ``done(readings)``; the stream is cancelled after."""
    readings: list[Reading] = []

    async def emit(reading: Reading) -> None:
        readings.append(reading)

    task = asyncio.create_task(device.stream(emit), name="test-ble-stream")
    try:
        async with asyncio.timeout(limit_s):
            while not done(readings):
                if task.done():
                    task.result()  # surface a crash of the stream
                await asyncio.sleep(0.002)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return readings


def good(readings: list[Reading], point: str) -> list[Reading]:
    return [r for r in readings if r.point == point and r.quality is Quality.GOOD]


def bad(readings: list[Reading], point: str) -> list[Reading]:
    return [r for r in readings if r.point == point and r.quality is Quality.BAD]
