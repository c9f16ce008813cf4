"""``AdvertisementSource`` over bleak's ``BleakScanner`` detection callback.

Thin on purpose: it only turns bleak's callback into an async iterator through
a bounded queue (when full, the newest advertisement is dropped and counted;
sensors repeat themselves). Passive scanning is used when asked and the
formats give BlueZ the or-patterns its advertisement monitor needs. It needs a
Bluetooth adapter and BlueZ/D-Bus (or CoreBluetooth / WinRT): nothing here
runs in the test suite, which feeds the device through the simulator instead.

Several devices may each run a scanner; an agent with many BLE devices can
instead share one source and fan out by address (the device accepts any
``AdvertisementSource``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from ldt.drivers.ble.advertisement import Advertisement
from ldt.drivers.ble.config import BleFormat
from ldt.drivers.errors import DriverError

__all__ = ["BleakScannerSource"]

_AD_SERVICE_DATA_16 = 0x16
_AD_MANUFACTURER = 0xFF
_OR_PATTERNS: dict[BleFormat, tuple[int, int, bytes]] = {
    BleFormat.BTHOME: (0, _AD_SERVICE_DATA_16, b"\xd2\xfc"),
    BleFormat.RUUVI: (0, _AD_MANUFACTURER, b"\x99\x04"),
    BleFormat.IBEACON: (0, _AD_MANUFACTURER, b"\x4c\x00\x02\x15"),
    BleFormat.EDDYSTONE: (0, _AD_SERVICE_DATA_16, b"\xaa\xfe"),
}


class BleakScannerSource:
    """Scan with bleak while iterated; ``dropped`` counts queue overflows."""

    def __init__(
        self,
        *,
        adapter: str | None = None,
        passive: bool = True,
        formats: Sequence[BleFormat] = (),
        queue_size: int = 1024,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._adapter = adapter
        self._patterns = [_OR_PATTERNS[f] for f in formats if f in _OR_PATTERNS]
        self._passive = passive and bool(self._patterns)
        self._queue_size = queue_size
        self.dropped = 0

    def __aiter__(self) -> AsyncIterator[Advertisement]:
        return self._scan()

    async def _scan(self) -> AsyncIterator[Advertisement]:
        try:
            from bleak import BleakScanner
            from bleak.exc import BleakError
        except ImportError as exc:  # pragma: no cover - bleak is a dependency
            raise DriverError("BLE scanning needs the 'bleak' package") from exc

        queue: asyncio.Queue[Advertisement] = asyncio.Queue(self._queue_size)

        def detected(device: Any, adv: Any) -> None:
            item = Advertisement(
                address=str(device.address),
                rssi=adv.rssi,
                local_name=adv.local_name,
                manufacturer_data=dict(adv.manufacturer_data),
                service_data=dict(adv.service_data),
                service_uuids=tuple(adv.service_uuids),
                received_at_ms=time.time_ns() // 1_000_000,
            )
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self.dropped += 1

        bluez: Any = {}
        if self._adapter:
            bluez["adapter"] = self._adapter
        if self._passive:
            bluez["or_patterns"] = self._patterns
        mode: Literal["active", "passive"] = "passive" if self._passive else "active"
        try:
            scanner = BleakScanner(detected, scanning_mode=mode, bluez=bluez)
            await scanner.start()
        except (BleakError, OSError, ValueError) as exc:
            raise DriverError(f"BLE scanning could not start ({mode}): {exc}") from exc
        try:
            while True:
                yield await queue.get()
        finally:
            with contextlib.suppress(BleakError, OSError):  # the adapter is already gone
                await scanner.stop()
