"""The GATT seam: what the device needs of a connection, and bleak's implementation.

``GattClient`` is the lowest seam; tests drive the device through a fake that
replays recorded characteristic bytes. ``BleakGattClient`` is deliberately
thin (bleak imported lazily, its exceptions translated to ``DriverError``);
it cannot run without a Bluetooth adapter and is not exercised by the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ldt.drivers.errors import DriverError

if TYPE_CHECKING:
    from bleak import BleakClient

__all__ = ["BleakGattClient", "GattClient", "GattClientFactory", "NotifyCallback"]

NotifyCallback = Callable[[bytes], None]
"""Called on the event loop with each notified value."""


class GattClient(Protocol):
    """One connection to one peripheral. Methods raise ``DriverError`` on failure.

    Deadlines are the caller's (the device wraps each call in ``asyncio.timeout``).
    """

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def read_gatt_char(self, uuid: str) -> bytes: ...

    async def write_gatt_char(self, uuid: str, data: bytes, *, response: bool = True) -> None: ...

    async def start_notify(self, uuid: str, callback: NotifyCallback) -> None: ...


GattClientFactory = Callable[[str, Callable[[], None]], GattClient]
"""``factory(address, on_disconnect)``: a new, unconnected client; ``on_disconnect``
is called (on the loop) when the peripheral drops the link."""


class BleakGattClient:
    """``GattClient`` over ``bleak.BleakClient``."""

    def __init__(
        self, *, address: str, on_disconnect: Callable[[], None], adapter: str | None = None
    ) -> None:
        self._address = address
        self._on_disconnect = on_disconnect
        self._adapter = adapter
        self._client: BleakClient | None = None

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def connect(self) -> None:
        from bleak import BleakClient
        from bleak.exc import BleakError

        bluez: Any = {"adapter": self._adapter} if self._adapter else {}
        client = BleakClient(
            self._address, disconnected_callback=lambda _c: self._on_disconnect(), bluez=bluez
        )
        try:
            await client.connect()
        except (BleakError, OSError) as exc:
            raise DriverError(f"BLE connect to {self._address} failed: {exc}") from exc
        self._client = client

    async def disconnect(self) -> None:
        from bleak.exc import BleakError

        client, self._client = self._client, None
        if client is not None:
            try:
                await client.disconnect()
            except (BleakError, OSError) as exc:
                raise DriverError(f"BLE disconnect from {self._address} failed: {exc}") from exc

    def _live(self) -> BleakClient:
        if self._client is None:
            raise DriverError(f"not connected to {self._address}")
        return self._client

    async def read_gatt_char(self, uuid: str) -> bytes:
        from bleak.exc import BleakError

        try:
            return bytes(await self._live().read_gatt_char(uuid))
        except (BleakError, OSError) as exc:
            raise DriverError(f"reading {uuid} from {self._address} failed: {exc}") from exc

    async def write_gatt_char(self, uuid: str, data: bytes, *, response: bool = True) -> None:
        from bleak.exc import BleakError

        try:
            await self._live().write_gatt_char(uuid, data, response=response)
        except (BleakError, OSError) as exc:
            raise DriverError(f"writing {uuid} on {self._address} failed: {exc}") from exc

    async def start_notify(self, uuid: str, callback: NotifyCallback) -> None:
        from bleak.exc import BleakError

        try:
            await self._live().start_notify(uuid, lambda _char, data: callback(bytes(data)))
        except (BleakError, OSError) as exc:
            raise DriverError(f"subscribing to {uuid} on {self._address} failed: {exc}") from exc
