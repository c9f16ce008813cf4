"""A poller whose cancellation a driver's library swallowed is stopped by asking again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ldt.agent.poller import DevicePoller
from ldt.cancellation import cancel_and_wait
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
            if self.swallowed:
                raise  # the race is a one-off, not a habit
            self.swallowed = True  # and carries on as if the connect had failed
        return [
            Reading("d", p, None, 0, quality=Quality.BAD, reason="refused") for p in points or []
        ]


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def put(self, series_id: int, reading: Reading) -> None:
        self.count += 1


async def test_a_swallowed_cancellation_is_asked_again_until_the_poller_stops() -> None:
    device = SwallowingDevice()
    poller = DevicePoller(device_id="d", device=device, schedule=[(0.02, "p", 1)], sink=Sink())
    task = asyncio.create_task(poller.run())
    await device.reading.wait()
    task.cancel()  # swallowed inside read(): one cancel() is not enough
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert device.swallowed
    assert not done, "the test device did not swallow the cancellation"
    await asyncio.wait_for(cancel_and_wait([task], again_s=0.05), timeout=5)
    assert task.cancelled()
