"""One BLE device: decoded advertisements or GATT characteristics as readings.

Advertisement mode (``connection.mode = "advertisement"``): ``stream`` listens
to an ``AdvertisementSource`` (bleak's scanner by default, or any injected
source such as the simulator), keeps this device's advertisements (by address,
or by advertised name), decodes them in the profile's format and emits one
reading per point whose field the advertisement carries. Repeats of the same
BTHome packet id (or encryption counter, or Ruuvi measurement sequence) are
dropped. A point without a value for ``absence_timeout_s`` gets one bad
reading ("no advertisement for N s"), repeated every period, so a dead battery
shows as quality, not silence. Malformed advertisements are counted in
``health`` and never stop the stream.

GATT mode: ``stream`` connects (capped, jittered backoff), subscribes to the
``notify`` points and emits each notification; after a disconnect it
reconnects and re-subscribes, emitting one bad reading per notify point at
each failed attempt. The other points are polled by the agent through
``read``; ``write`` writes a characteristic with response. Every GATT call has
a deadline (``connection.timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from ldt.backoff import Backoff
from ldt.drivers.base import Emit
from ldt.drivers.ble.advertisement import AdvertisementLike, AdvertisementSource, normalize_address
from ldt.drivers.ble.beacons import (
    APPLE_COMPANY_ID,
    EDDYSTONE_UUID,
    decode_eddystone,
    decode_ibeacon,
)
from ldt.drivers.ble.bthome import BTHOME_UUID, decode_bthome
from ldt.drivers.ble.config import BleConnection, BleFormat, BleMode, BlePoint, BleProfileSettings
from ldt.drivers.ble.errors import BleDecodeError
from ldt.drivers.ble.gatt import BleakGattClient, GattClient, GattClientFactory
from ldt.drivers.ble.gatt_codec import decode_characteristic, encode_characteristic
from ldt.drivers.ble.privacy import IDENTIFIER_FIELDS, pseudonym
from ldt.drivers.ble.ruuvi import RUUVI_COMPANY_ID, decode_ruuvi
from ldt.drivers.errors import DeviceUnreachableError, DriverError
from ldt.reading import Quality, Reading, Value

__all__ = ["BleDevice", "BleDeviceHealth"]

_T = TypeVar("_T")
_QUEUE_SIZE = 256  # this device's advertisements / notifications awaiting decoding


@dataclass(slots=True)
class BleDeviceHealth:
    """Link state and advertisement statistics, for the agent's health report.

    ``connected``: GATT link up, or (advertisement mode) a decodable
    advertisement heard within the absence timeout. Advertisement counters
    count this device's advertisements only: ``decoded`` (new data),
    ``duplicate`` (a repeat of the last packet), ``malformed`` (failed to
    decode; ``last_error`` says why), ``other`` (this device, another frame
    type, e.g. a scan response), ``dropped`` (queue overflow).
    """

    connected: bool = False
    last_error: str | None = None
    consecutive_failures: int = 0
    adverts_received: int = 0
    adverts_decoded: int = 0
    adverts_duplicate: int = 0
    adverts_malformed: int = 0
    adverts_other: int = 0
    adverts_dropped: int = 0
    notifications: int = 0
    last_rssi: int | None = None


class _LinkDownError(Exception):
    """Internal: no usable link; the message is the reason for the readings."""


@dataclass(slots=True)
class _SourceEnded:
    reason: str


@dataclass(slots=True)
class _Notification:
    point: BlePoint
    data: bytes
    at_ms: int


class _Disconnected:
    pass


@dataclass(slots=True)
class _Session:
    client: GattClient
    events: asyncio.Queue[_Notification | _Disconnected] = field(
        default_factory=lambda: asyncio.Queue(_QUEUE_SIZE)
    )
    lost: bool = False


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _put_dropping_oldest(queue: asyncio.Queue[object], item: object) -> bool:
    """Queue ``item``; if full, drop the oldest first. True when something was dropped."""
    dropped = False
    if queue.full():
        queue.get_nowait()
        dropped = True
    queue.put_nowait(item)
    return dropped


class BleDevice:
    """A BLE device instance; use as ``async with`` (entering does no I/O).

    ``source``: where advertisements come from (default: a ``BleakScannerSource``
    created when ``stream`` starts). ``gatt_client_factory``: makes GATT clients
    (default: ``BleakGattClient``).
    """

    def __init__(
        self,
        *,
        device_id: str,
        connection: BleConnection,
        settings: BleProfileSettings,
        points: Sequence[BlePoint],
        backoff: Backoff | None = None,
        source: AdvertisementSource | None = None,
        gatt_client_factory: GattClientFactory | None = None,
        pseudonym_key: bytes | None = None,
    ) -> None:
        """``pseudonym_key``: the gateway's key for identifiers (``privacy``); without one
        a random key for this process is used: pseudonyms then change at every start,
        which loses continuity, never privacy."""
        self.device_id = device_id
        self._pseudonym_key = (
            None if not settings.pseudonymise else pseudonym_key or secrets.token_bytes(32)
        )
        self.health = BleDeviceHealth()
        self._conn = connection
        self._settings = settings
        self._points = tuple(points)
        self._by_name = {p.name: p for p in self._points}
        if len(self._by_name) != len(self._points):
            raise DriverError(f"device {device_id!r}: two points share a name")
        gatt = connection.mode is BleMode.GATT
        if gatt != (settings.format is BleFormat.GATT):
            raise DriverError(
                f"device {device_id!r}: connection mode {connection.mode.value!r} does not fit "
                f"profile format {settings.format.value!r} (GATT profiles need mode 'gatt')"
            )
        for p in self._points:
            if gatt and p.characteristic is None:
                raise DriverError(
                    f"device {device_id!r}: GATT point {p.name!r} has no characteristic"
                )
            if not gatt and p.characteristic is not None:
                raise DriverError(
                    f"device {device_id!r}: point {p.name!r} names a characteristic "
                    f"but the profile format is {settings.format.value!r}"
                )
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self._source = source
        self._factory = gatt_client_factory or self._bleak_client
        address = connection.address
        self._address = None if address is None else normalize_address(address)
        self._bindkey = connection.bindkey_bytes
        # advertisement state
        self._last_key: Hashable | None = None
        self._heard_at = 0.0  # monotonic time of this device's last advertisement
        self._value_at: dict[str, float] = {}  # point name -> monotonic time of its last value
        self._latest: dict[str, Reading] = {}
        # GATT state
        self._session: _Session | None = None
        self._retry_at = 0.0
        self._down_reason = "never connected"
        self._connect_lock = asyncio.Lock()

    @property
    def points(self) -> tuple[BlePoint, ...]:
        """The device's points, in profile order."""
        return self._points

    @property
    def streams(self) -> bool:
        """Advertisements always stream; a GATT device streams when it has notify points."""
        return self._conn.mode is BleMode.ADVERTISEMENT or any(p.notify for p in self._points)

    def polled_points(self) -> Sequence[BlePoint]:
        """GATT points without ``notify``; none in advertisement mode."""
        if self._conn.mode is BleMode.ADVERTISEMENT:
            return ()
        return tuple(p for p in self._points if not p.notify)

    async def __aenter__(self) -> BleDevice:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._drop_session()

    # ---------------------------------------------------------------- readings

    def _reading(self, point: BlePoint, value: Value, at_ms: int) -> Reading:
        return Reading(
            device_id=self.device_id, point=point.name, value=value, observed_at_ms=at_ms
        )

    def _bad(self, point: BlePoint, reason: str, at_ms: int | None = None) -> Reading:
        return Reading(
            device_id=self.device_id,
            point=point.name,
            value=None,
            observed_at_ms=_now_ms() if at_ms is None else at_ms,
            quality=Quality.BAD,
            reason=reason,
        )

    @staticmethod
    def _scaled(point: BlePoint, value: Value) -> Value:
        if isinstance(value, bool | str) or (point.scale == 1.0 and point.offset == 0.0):
            return value
        return value * point.scale + point.offset

    # --------------------------------------------------------------- streaming

    async def stream(self, emit: Emit) -> None:
        """Emit readings until cancelled (see the module docstring); never raises for faults."""
        if self._conn.mode is BleMode.GATT:
            await self._stream_gatt(emit)
        else:
            await self._stream_adverts(emit)

    async def _stream_adverts(self, emit: Emit) -> None:
        while True:
            start = time.monotonic()
            self._value_at = {p.name: start for p in self._points}
            reason = await self._listen(emit)
            self.health.connected = False
            self.health.consecutive_failures += 1
            delay = self._backoff.next_delay()
            self.health.last_error = reason
            now = _now_ms()
            for p in self._points:
                await emit(self._bad(p, reason, now))
            await asyncio.sleep(delay)

    def _default_source(self) -> AdvertisementSource:
        from ldt.drivers.ble.scanner import BleakScannerSource

        return BleakScannerSource(
            adapter=self._conn.adapter,
            passive=self._settings.passive,
            formats=(self._settings.format,),
        )

    async def _listen(self, emit: Emit) -> str:
        """Run one source until it ends or fails; returns why."""
        source = self._source if self._source is not None else self._default_source()
        queue: asyncio.Queue[AdvertisementLike | _SourceEnded] = asyncio.Queue(_QUEUE_SIZE)
        async with asyncio.TaskGroup() as tg:
            pump = tg.create_task(self._pump(source, queue), name=f"ldt-ble-scan:{self.device_id}")
            try:
                return await self._consume(queue, emit)
            finally:
                pump.cancel()

    def _matches(self, adv: AdvertisementLike) -> bool:
        if self._address is not None:
            return normalize_address(adv.address) == self._address
        return adv.local_name is not None and adv.local_name == self._conn.name

    async def _pump(
        self,
        source: AdvertisementSource,
        queue: asyncio.Queue[AdvertisementLike | _SourceEnded],
    ) -> None:
        """Move this device's advertisements from the source to the queue; never raises."""
        iterator = aiter(source)
        try:
            async for adv in iterator:
                if not self._matches(adv):
                    continue
                self.health.adverts_received += 1
                if _put_dropping_oldest(queue, adv):  # type: ignore[arg-type]
                    self.health.adverts_dropped += 1
            reason = "advertisement source stopped"
        except DriverError as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - any scanner fault becomes a retried outage
            reason = f"advertisement source failed: {exc}"
        finally:
            await _aclose(iterator)
        await queue.put(_SourceEnded(reason))

    async def _consume(
        self, queue: asyncio.Queue[AdvertisementLike | _SourceEnded], emit: Emit
    ) -> str:
        period = self._settings.absence_timeout_s
        while True:
            now = time.monotonic()
            due = [p for p in self._points if now - self._value_at[p.name] >= period]
            if due:
                await self._emit_absent(due, now, emit)
                continue
            wait = min(self._value_at.values()) + period - now
            try:
                async with asyncio.timeout(wait):
                    item = await queue.get()
            except TimeoutError:
                continue
            if isinstance(item, _SourceEnded):
                return item.reason
            await self._handle(item, emit)

    async def _emit_absent(self, due: list[BlePoint], now: float, emit: Emit) -> None:
        period = self._settings.absence_timeout_s
        heard = now - self._heard_at < period
        at_ms = _now_ms()
        for p in due:
            if heard:
                reason = f"no value for {p.field_name!r} in advertisements for {period:g} s"
            else:
                reason = f"no advertisement for {period:g} s"
            self._value_at[p.name] = now
            self._latest.pop(p.name, None)
            await emit(self._bad(p, reason, at_ms))
        if not heard:
            self.health.connected = False
            self.health.consecutive_failures += 1
            self.health.last_error = f"no advertisement for {period:g} s"

    def _decode(self, adv: AdvertisementLike) -> tuple[Mapping[str, Value], Hashable] | None:
        """Values and a de-duplication key, or None when the advertisement is not in our format."""
        fmt = self._settings.format
        if fmt is BleFormat.RUUVI:
            data = adv.manufacturer_data.get(RUUVI_COMPANY_ID)
            if data is None:
                return None
            values = decode_ruuvi(bytes(data))
            return values, values.get("measurement_sequence")
        if fmt is BleFormat.BTHOME:
            data = adv.service_data.get(BTHOME_UUID)
            if data is None:
                return None
            packet = decode_bthome(bytes(data), mac=adv.address, bindkey=self._bindkey)
            if self._bindkey is not None and not packet.encrypted:
                raise BleDecodeError("unencrypted BTHome payload although a bindkey is configured")
            key = packet.packet_id if packet.packet_id is not None else packet.counter
            return packet.values, key
        if fmt is BleFormat.IBEACON:
            data = adv.manufacturer_data.get(APPLE_COMPANY_ID)
            if data is None or data[:1] != b"\x02":
                return None  # Apple sends many other frame types
            return decode_ibeacon(bytes(data)), None
        data = adv.service_data.get(EDDYSTONE_UUID)
        if data is None:
            return None
        return decode_eddystone(bytes(data)), None

    def _shown(self, address: str) -> str:
        """An address as health and logs may show it (pseudonymised unless opted out)."""
        if self._pseudonym_key is None:
            return address
        return pseudonym(self._pseudonym_key, normalize_address(address))

    async def _handle(self, adv: AdvertisementLike, emit: Emit) -> None:
        health = self.health
        health.last_rssi = adv.rssi
        now = time.monotonic()
        try:
            decoded = self._decode(adv)
        except BleDecodeError as exc:
            health.adverts_malformed += 1
            health.last_error = f"advertisement from {self._shown(adv.address)}: {exc}"
            self._heard_at = now
            return
        if decoded is None:
            health.adverts_other += 1
            return
        values, key = decoded
        self._heard_at = now
        health.connected = True
        health.consecutive_failures = 0
        self._backoff.reset()
        fresh = [p for p in self._points if p.field_name in values]
        for p in fresh:
            self._value_at[p.name] = now
        if key is not None and key == self._last_key:
            health.adverts_duplicate += 1
            return
        self._last_key = key
        health.adverts_decoded += 1
        for p in fresh:
            value = values[p.field_name]
            if self._pseudonym_key is not None and p.field_name in IDENTIFIER_FIELDS:
                value = pseudonym(self._pseudonym_key, value)
            reading = self._reading(p, self._scaled(p, value), adv.received_at_ms)
            self._latest[p.name] = reading
            await emit(reading)

    # -------------------------------------------------------------------- read

    async def read(self, points: Sequence[BlePoint] | None = None) -> list[Reading]:
        """One reading per point, in order; never raises for device faults.

        GATT: reads each characteristic now. Advertisement mode: the latest
        value ``stream`` received, or a bad reading when there is none within
        the absence timeout.
        """
        wanted = self._points if points is None else tuple(points)
        if self._conn.mode is BleMode.GATT:
            return await self._read_gatt(wanted)
        out = []
        for p in wanted:
            latest = self._latest.get(p.name)
            if latest is not None:
                out.append(latest)
            else:
                period = self._settings.absence_timeout_s
                out.append(self._bad(p, f"no advertisement with {p.field_name!r} in {period:g} s"))
        return out

    # -------------------------------------------------------------------- GATT

    def _bleak_client(self, address: str, on_disconnect: Callable[[], None]) -> GattClient:
        return BleakGattClient(
            address=address, on_disconnect=on_disconnect, adapter=self._conn.adapter
        )

    async def _ensure_session(self) -> _Session:
        """The live session, connecting first if the backoff allows (else _LinkDownError)."""
        async with self._connect_lock:
            session = self._session
            if session is not None and not session.lost and session.client.is_connected:
                return session
            if session is not None:
                await self._drop_session()
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise _LinkDownError(f"not connected: {self._down_reason}")
            assert self._address is not None  # validated: GATT needs an address
            holder: list[_Session] = []

            def disconnected() -> None:
                if holder and not holder[0].lost:
                    holder[0].lost = True
                    _put_dropping_oldest(holder[0].events, _Disconnected())  # type: ignore[arg-type]

            client = self._factory(self._address, disconnected)
            timeout = self._conn.timeout_s
            try:
                async with asyncio.timeout(timeout):
                    await client.connect()
            except TimeoutError:
                raise self._lost(f"connect timeout after {timeout:g} s") from None
            except DriverError as exc:
                raise self._lost(str(exc)) from exc
            session = _Session(client=client)
            holder.append(session)
            self._session = session
            self.health.connected = True
            return session

    def _lost(self, reason: str) -> _LinkDownError:
        """Forget the session, schedule the next connect, and return the error to raise."""
        if self._session is not None:
            self._session.lost = True
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self._down_reason = reason
        self.health.connected = False
        self.health.consecutive_failures += 1
        self.health.last_error = reason
        return _LinkDownError(reason)

    def _answered(self) -> None:
        self._backoff.reset()
        self.health.consecutive_failures = 0
        self.health.connected = True

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        self.health.connected = False
        if session is None:
            return
        session.lost = True
        if session.client.is_connected:
            with contextlib.suppress(DriverError, TimeoutError):
                async with asyncio.timeout(self._conn.timeout_s):
                    await session.client.disconnect()

    async def _call(self, session: _Session, what: str, call: Awaitable[_T]) -> _T:
        """Await one GATT call under the deadline; link faults raise _LinkDownError."""
        timeout = self._conn.timeout_s
        try:
            async with asyncio.timeout(timeout):
                result = await call
        except TimeoutError:
            raise self._lost(f"timeout after {timeout:g} s {what}") from None
        except DriverError as exc:
            if session.lost or not session.client.is_connected:
                raise self._lost(f"connection lost {what}: {exc}") from exc
            raise
        self._answered()
        return result

    async def _read_gatt(self, wanted: tuple[BlePoint, ...]) -> list[Reading]:
        try:
            session = await self._ensure_session()
        except _LinkDownError as exc:
            now = _now_ms()
            return [self._bad(p, str(exc), now) for p in wanted]
        out: list[Reading] = []
        down: str | None = None
        for p in wanted:
            if down is not None:
                out.append(self._bad(p, down))
                continue
            assert p.uuid is not None
            try:
                data = await self._call(
                    session, f"reading {p.name}", session.client.read_gatt_char(p.uuid)
                )
                out.append(self._reading(p, decode_characteristic(p, bytes(data)), _now_ms()))
            except _LinkDownError as exc:
                down = str(exc)
                out.append(self._bad(p, down))
            except DriverError as exc:  # BleDecodeError, or the peripheral refused this one
                self.health.last_error = str(exc)
                out.append(self._bad(p, str(exc)))
        return out

    async def _stream_gatt(self, emit: Emit) -> None:
        notify = [p for p in self._points if p.notify]
        if not notify:
            await asyncio.Event().wait()  # nothing pushes: the agent polls with read()
        while True:
            try:
                session = await self._ensure_session()
                await self._subscribe(session, notify)
                await self._relay(session, emit)
            except _LinkDownError as exc:
                now = _now_ms()
                for p in notify:
                    await emit(self._bad(p, str(exc), now))
                await asyncio.sleep(max(0.0, self._retry_at - time.monotonic()))

    async def _subscribe(self, session: _Session, notify: list[BlePoint]) -> None:
        for p in notify:
            assert p.uuid is not None

            def deliver(data: bytes, p: BlePoint = p) -> None:
                if not session.lost:
                    item = _Notification(p, bytes(data), _now_ms())
                    if _put_dropping_oldest(session.events, item):  # type: ignore[arg-type]
                        self.health.adverts_dropped += 1

            try:
                subscribe = session.client.start_notify(p.uuid, deliver)
                await self._call(session, f"subscribing to {p.name}", subscribe)
            except DriverError as exc:  # refused (not notifiable): treat like a lost link
                raise self._lost(str(exc)) from exc

    async def _relay(self, session: _Session, emit: Emit) -> None:
        """Emit notifications until the link drops (then raise _LinkDownError)."""
        while True:
            item = await session.events.get()
            if isinstance(item, _Disconnected):
                raise self._lost("peripheral disconnected")
            self.health.notifications += 1
            try:
                value = decode_characteristic(item.point, item.data)
            except BleDecodeError as exc:
                self.health.last_error = str(exc)
                await emit(self._bad(item.point, str(exc), item.at_ms))
                continue
            await emit(self._reading(item.point, value, item.at_ms))

    # ------------------------------------------------------------------- write

    async def write(self, point: BlePoint | str, value: Value) -> None:
        """Write one GATT point (with response); raises ``DriverError`` saying what failed.

        A write tries to connect even during reconnect backoff: a command is
        worth one attempt.
        """
        p = self._resolve(point)
        if not p.writable or p.uuid is None:
            raise DriverError(f"point {p.name!r} of {self.device_id!r} is not writable")
        data = encode_characteristic(p, value)
        if self._session is None or self._session.lost:
            self._retry_at = 0.0
        try:
            session = await self._ensure_session()
            request = session.client.write_gatt_char(p.uuid, data)
            await self._call(session, f"writing {p.name}", request)
        except _LinkDownError as exc:
            raise DeviceUnreachableError(
                f"write to {self.device_id!r} {p.name!r} failed: {exc}"
            ) from None
        except DriverError as exc:
            raise DriverError(f"write to {self.device_id!r} {p.name!r} refused: {exc}") from exc

    def _resolve(self, point: BlePoint | str) -> BlePoint:
        if isinstance(point, str):
            try:
                return self._by_name[point]
            except KeyError:
                raise DriverError(f"device {self.device_id!r} has no point {point!r}") from None
        if self._by_name.get(point.name) != point:
            raise DriverError(f"point {point.name!r} is not one of {self.device_id!r}'s points")
        return point


async def _aclose(iterator: AsyncIterator[object]) -> None:
    """Close an async iterator if it can be closed (async generators can)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
