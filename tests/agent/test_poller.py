"""The poller stops when cancelled, even when a driver's library swallowed the cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ldt.agent.poller import DevicePoller
from ldt.reading import Quality, Reading


class SwallowingDevice:
    """Loses the first cancellation, as Python 3.11's ``asyncio.wait_for`` does when the
    awaited call fails in the same loop turn (pymodbus connecting to a refused port)."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.swallowed = False

    async def read(self, points: Sequence[str] | None = None) -> list[Reading]:
        self.reading.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.swallowed = True  # and carries on as if the connect had failed
        return [
            Reading("d", p, None, 0, quality=Quality.BAD, reason="refused") for p in points or []
        ]


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def put(self, series_id: int, reading: Reading) -> None:
        self.count += 1


async def test_a_swallowed_cancellation_still_stops_the_poller() -> None:
    device = SwallowingDevice()
    poller = DevicePoller(device_id="d", device=device, schedule=[(0.02, "p", 1)], sink=Sink())
    task = asyncio.create_task(poller.run())
    await device.reading.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)
    assert device.swallowed
    assert done, "the poller kept polling after its cancellation was swallowed"
    assert task.cancelled()
