"""One Modbus device: reads points into readings, writes commands.

``ModbusDevice`` holds everything that does not depend on the transport (the
read plan, decoding, the failure policy, writes); ``ModbusTcpDevice`` adds a
pymodbus ``AsyncModbusTcpClient`` per device, ``ldt.drivers.modbus.rtu`` a
shared serial line. The failure policy, so the agent never has to own it:

* ``read`` never raises for a device fault. A failed block makes only its own
  points ``bad`` (with a reason a technician can act on); a timeout or a lost
  connection closes the client and makes the rest of that read bad at once.
* Reconnects wait out a capped, jittered backoff (``ldt.backoff.Backoff``).
  While waiting, ``read`` answers bad readings immediately without touching
  the network, so a dead device costs nothing and never stalls the others.
* Every connect and request has a deadline (``connection.timeout_s``, ours,
  via ``asyncio.timeout``). pymodbus's own retries and auto-reconnect are
  switched off (``retries=0``, ``reconnect_delay=0``) and its timeout is only a
  backstop, so timing and reconnects have exactly one owner.

A TCP connection that drops *during* a request is noticed as a timeout
(pymodbus does not fail the pending request when the socket closes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from pymodbus.client import AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from ldt.backoff import Backoff
from ldt.drivers.base import Emit
from ldt.drivers.errors import DeviceUnreachableError, DriverError
from ldt.drivers.modbus.codec import decode, encode
from ldt.drivers.modbus.config import (
    ModbusPoint,
    ModbusProfileSettings,
    ModbusTcpConnection,
    RegisterTable,
)
from ldt.drivers.modbus.planner import ReadBlock, plan_reads, slice_point
from ldt.drivers.tcp_probe import TcpProbe
from ldt.reading import Quality, Reading, Value

__all__ = [
    "EXCEPTION_NAMES",
    "BadAnswerError",
    "ConnectionDownError",
    "ModbusDevice",
    "ModbusDeviceHealth",
    "ModbusTcpDevice",
    "Request",
]

EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
"""Modbus exception codes (Modbus Application Protocol v1.1b3, section 7)."""

_log = logging.getLogger("ldt.drivers.modbus")

Request = Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]
"""One pymodbus call on whichever client the transport provides."""

_PLAN_CACHE_SIZE = 64  # distinct point lists a device is polled with: a few per interval


def _quiet_pymodbus_logging() -> None:
    """Silence pymodbus's own lines (a warning per failed connect) unless the operator set
    its logger's level: the driver reports the same facts once, as reasons and health."""
    logger = logging.getLogger("pymodbus")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL + 1)


@dataclass(slots=True)
class ModbusDeviceHealth:
    """The connection's state, for the agent's health report.

    ``consecutive_failures`` counts connection-level failures (refused connect,
    timeout, lost connection) since the device last answered; a Modbus exception
    response is an answer. ``last_error`` is the most recent failure reason of any
    kind and is kept after recovery (``connected`` says whether it is current).
    """

    connected: bool = False
    last_error: str | None = None
    consecutive_failures: int = 0


class ConnectionDownError(Exception):
    """The device cannot be reached now; the message is the reason for the readings.

    Internal to the driver package (transports raise it, ``read`` turns it into
    bad readings and ``write`` into ``DriverError``).
    """


class BadAnswerError(Exception):
    """The device answered, but unusably (a garbled frame): only this one request failed.

    Raised by transports from ``_transact``; the message is the reason for the readings.
    """


_ADDRESS_REFUSALS = frozenset({2, 3})
"""Exceptions a device answers for an address outside its map (illegal data address, or
value: some devices say 3 for a count that runs into a hole)."""


def _halves(block: ReadBlock) -> tuple[ReadBlock, ReadBlock]:
    """``block``'s points in two reads, each spanning only its own points."""
    points = sorted(block.points, key=lambda p: (p.address, p.register_count))
    middle = len(points) // 2
    return _spanning(block.table, points[:middle]), _spanning(block.table, points[middle:])


def _spanning(table: RegisterTable, points: Sequence[ModbusPoint]) -> ReadBlock:
    start = min(p.address for p in points)
    end = max(p.address + p.register_count for p in points)
    return ReadBlock(table, start, end - start, tuple(points))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _exception_text(code: int) -> str:
    return f"modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class ModbusDevice:
    """What every Modbus device does, whatever carries its requests (subclass per transport).

    ``points`` is the device's register map (the profile's points); ``read()``
    with no argument reads all of them, ``write()`` accepts only these. A
    transport subclass provides ``_ensure_link`` (make the link usable, or raise
    what ``_lost``/``_backing_off`` return), ``_transact`` (one request under the
    deadline, via ``_execute``) and ``_drop_link`` (forget a link that failed).
    """

    _transport_errors: tuple[type[Exception], ...] = ()
    """Exceptions of the transport's own that ``_execute`` lets through untranslated."""

    def __init__(
        self,
        *,
        device_id: str,
        settings: ModbusProfileSettings,
        points: Sequence[ModbusPoint],
        backoff: Backoff | None,
        unit_id: int,
        timeout_s: float,
    ) -> None:
        self.device_id = device_id
        self.health = ModbusDeviceHealth()
        self._settings = settings
        self._points = tuple(points)
        self._by_name = {p.name: p for p in self._points}
        if len(self._by_name) != len(self._points):
            raise DriverError(f"device {device_id!r}: two points share a name")
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=60.0)
        self._unit_id = unit_id
        self._timeout_s = timeout_s
        self._plans: dict[tuple[ModbusPoint, ...], list[ReadBlock]] = {}
        self._refined: dict[ReadBlock, tuple[ReadBlock, ...]] = {}
        """Planned blocks the device refused (a hole in its map), and the reads that
        replaced them (``_read_block``); cleared with the plans."""
        self._plan(self._points)  # a profile that can never be read fails here, not per poll
        self._retry_at = 0.0  # time.monotonic() before which the device is not tried
        self._down_reason: str | None = None
        self._lock = asyncio.Lock()  # one of this device's requests at a time
        self._heard = False  # the device answered something on the current link

    @property
    def points(self) -> tuple[ModbusPoint, ...]:
        """The device's points, in profile order."""
        return self._points

    @property
    def streams(self) -> bool:
        """Always False: Modbus devices only answer polls."""
        return False

    def polled_points(self) -> tuple[ModbusPoint, ...]:
        """Every point: the agent polls them all with ``read``."""
        return self._points

    async def stream(self, emit: Emit) -> None:
        """Modbus never pushes; raises ``DriverError`` (``streams`` is False, so nobody asks)."""
        raise DriverError(f"device {self.device_id!r} is Modbus, which does not push: poll it")

    async def __aenter__(self) -> Self:
        _quiet_pymodbus_logging()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._drop_link()

    # ------------------------------------------------------------------ read

    async def read(self, points: Sequence[ModbusPoint] | None = None) -> list[Reading]:
        """One reading per point (default: all), in the order asked; never raises for faults.

        Each good reading's ``observed_at_ms`` is when its block answered.
        Only ``CancelledError`` propagates.
        """
        wanted = self._points if points is None else tuple(points)
        try:
            blocks = self._plan(wanted)
        except DriverError as exc:
            return self._all_bad(wanted, str(exc))
        async with self._lock:
            results = await self._read_blocks(blocks)
        return [results[p] for p in wanted]

    def _plan(self, points: tuple[ModbusPoint, ...]) -> list[ReadBlock]:
        plan = self._plans.get(points)
        if plan is None:
            plan = plan_reads(points, self._settings)
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
                self._refined.clear()
            self._plans[points] = plan
        return plan

    def _all_bad(self, points: Sequence[ModbusPoint], reason: str) -> list[Reading]:
        self.health.last_error = reason
        now = _now_ms()
        return [self._bad(p, reason, now) for p in points]

    def _bad(self, point: ModbusPoint, reason: str, at_ms: int) -> Reading:
        return Reading(
            device_id=self.device_id,
            point=point.name,
            value=None,
            observed_at_ms=at_ms,
            quality=Quality.BAD,
            reason=reason,
        )

    async def _read_blocks(self, blocks: list[ReadBlock]) -> dict[ModbusPoint, Reading]:
        results: dict[ModbusPoint, Reading] = {}
        try:
            await self._ensure_link()
        except ConnectionDownError as exc:
            now = _now_ms()
            return {p: self._bad(p, str(exc), now) for b in blocks for p in b.points}
        down: str | None = None
        for planned in blocks:
            for block in self._refined.get(planned, (planned,)):
                if down is None:
                    try:
                        results.update(await self._read_block(block, planned))
                        continue
                    except ConnectionDownError as exc:
                        down = str(exc)
                now = _now_ms()
                for p in block.points:
                    results[p] = self._bad(p, down, now)
        return results

    async def _read_block(self, block: ReadBlock, planned: ReadBlock) -> dict[ModbusPoint, Reading]:
        """One block's readings. A joined read refused for an address (exception 2 or 3:
        the map has a hole between the points) is read again in halves, down to single
        points, and the reads that worked replace ``block`` in ``planned``'s later polls:
        every valid point reads, with no failing request per poll. Raises
        ``ConnectionDownError``."""
        results, used = await self._read_parts(block, planned=block == planned)
        if used != [block]:
            known = self._refined.get(planned, (planned,))
            self._refined[planned] = (*(k for k in known if k != block), *used)
        return results

    async def _read_parts(
        self, block: ReadBlock, *, planned: bool = False
    ) -> tuple[dict[ModbusPoint, Reading], list[ReadBlock]]:
        """``block``'s readings, halving it while the device refuses an address in it;
        and the reads that answered (``[block]`` when it was read whole). A refused
        ``planned`` block (the planner's, not a half) is logged."""
        try:
            response = await self._transact(
                self._read_request(block), f"reading {block.describe()}"
            )
        except BadAnswerError as exc:
            self.health.last_error = str(exc)
            now = _now_ms()
            return {p: self._bad(p, str(exc), now) for p in block.points}, [block]
        if not (
            response.isError()
            and response.exception_code in _ADDRESS_REFUSALS
            and len(block.points) > 1
        ):
            return self._decode_block(block, response), [block]
        if planned:
            _log.info(
                "read refused for an address between points: reading them apart from now on",
                extra={
                    "device": self.device_id,
                    "block": block.describe(),
                    "exception": response.exception_code,
                    "hint": "the device's map has holes; max_gap = 0 avoids the first try",
                },
            )
        results: dict[ModbusPoint, Reading] = {}
        used: list[ReadBlock] = []
        for half in _halves(block):
            part, reads = await self._read_parts(half)
            results.update(part)
            used.extend(reads)
        return results, used

    def _decode_block(self, block: ReadBlock, response: ModbusPDU) -> dict[ModbusPoint, Reading]:
        now = _now_ms()
        if response.isError():
            reason = f"{_exception_text(response.exception_code)} reading {block.describe()}"
            if len(block.points) == 1:
                reason += f" (point {block.points[0].name!r}: is it in the device's map?)"
            self.health.last_error = reason
            return {p: self._bad(p, reason, now) for p in block.points}
        values: Sequence[int] = response.bits if block.table.is_bit else response.registers
        out: dict[ModbusPoint, Reading] = {}
        for p in block.points:
            try:
                value = decode(p, self._settings, slice_point(block, p, values))
            except DriverError as exc:  # CodecError, or a short answer
                self.health.last_error = str(exc)
                out[p] = self._bad(p, str(exc), now)
                continue
            out[p] = Reading(
                device_id=self.device_id, point=p.name, value=value, observed_at_ms=now
            )
        return out

    def _read_request(self, block: ReadBlock) -> Request:
        unit, address, count = self._unit_id, block.address, block.count

        def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
            if block.table is RegisterTable.HOLDING:
                return client.read_holding_registers(address, count=count, device_id=unit)
            if block.table is RegisterTable.INPUT:
                return client.read_input_registers(address, count=count, device_id=unit)
            if block.table is RegisterTable.COIL:
                return client.read_coils(address, count=count, device_id=unit)
            return client.read_discrete_inputs(address, count=count, device_id=unit)

        return request

    # ------------------------------------------------------- failure policy

    async def _execute(self, client: ModbusBaseClient, request: Request, what: str) -> ModbusPDU:
        """One pymodbus request under our deadline; link faults raise ConnectionDownError."""
        timeout = self._timeout_s
        try:
            async with asyncio.timeout(timeout):
                response = await request(client)
        except TimeoutError:
            hint = ""
            if not self._heard:  # nothing answered since the link opened
                hint = (
                    f" (no answer at all: is unit_id {self._unit_id} right? a device ignores"
                    " requests for another unit)"
                )
            raise self._lost(f"timeout after {timeout} s {what}{hint}") from None
        except asyncio.CancelledError:
            self._abandon()  # a request may be in flight: its late answer must not be misread
            raise
        except (ModbusException, OSError) as exc:
            raise self._lost(f"connection lost {what}: {exc}") from exc
        except Exception as exc:  # pymodbus may raise anything on a bad frame
            if isinstance(exc, self._transport_errors):
                raise  # the transport's own, which it translates (``rtu``: a garbled answer)
            # the link's state is unknown after it: start over, and say what happened
            raise self._lost(f"unexpected error from pymodbus {what}: {exc!r}") from exc
        self._answered()
        return response

    def _backing_off(self) -> ConnectionDownError | None:
        """The error to raise while the backoff after a failure lasts, else None."""
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            # no countdown in the text: a reason that changes every poll is a new reason
            # to every log and every reading (issue 15)
            return ConnectionDownError(f"not connected: {self._down_reason}")
        return None

    def _lost(self, reason: str) -> ConnectionDownError:
        """Drop the link, schedule the next try, and return the error to raise."""
        self._drop_link()
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self._down_reason = reason.removeprefix("not connected: ")
        self.health.consecutive_failures += 1
        self.health.last_error = reason
        return ConnectionDownError(reason)

    def _answered(self) -> None:
        self._heard = True
        self._backoff.reset()
        self.health.consecutive_failures = 0
        self.health.connected = True

    # ------------------------------------------------------- transport hooks

    async def _ensure_link(self) -> None:
        """Make the link usable, or raise ``ConnectionDownError`` saying why not."""
        raise NotImplementedError

    async def _transact(self, request: Request, what: str) -> ModbusPDU:
        """Run one request (through ``_execute``).

        Link faults raise ``ConnectionDownError``; an unusable answer ``BadAnswerError``.
        """
        raise NotImplementedError

    def _drop_link(self) -> None:
        """Forget the link after a failure or on exit; the next request re-establishes it."""
        self.health.connected = False
        self._heard = False

    def _abandon(self) -> None:
        """A request was cancelled in flight: make sure its late answer cannot be misread."""
        self._drop_link()

    # ----------------------------------------------------------------- write

    async def write(self, point: ModbusPoint | str, value: Value) -> str:
        """Write one point: coils with FC 5, holding registers with FC 6 (one) or FC 16.

        Raises ``DriverError`` (with what failed) when the point is unknown or not
        writable, the value does not encode, or the device refuses or does not
        answer. Nothing is sent unless the value encodes. A write is tried even
        during read backoff: a command is worth one attempt.
        """
        p = self._resolve(point)
        if not p.writable:
            raise DriverError(f"point {p.name!r} of {self.device_id!r} is not writable")
        words = encode(p, self._settings, value)
        span = f"{p.table.value} {p.address}..{p.address + len(words) - 1}"
        async with self._lock:
            self._retry_at = 0.0
            try:
                await self._ensure_link()
                response = await self._transact(self._write_request(p, words), f"writing {span}")
            except ConnectionDownError as exc:
                raise DeviceUnreachableError(
                    f"write to {self.device_id!r} {p.name!r} failed: {exc}"
                ) from None
            except BadAnswerError as exc:
                raise DriverError(f"write to {self.device_id!r} {p.name!r} failed: {exc}") from None
        if response.isError():
            reason = f"{_exception_text(response.exception_code)} writing {span}"
            self.health.last_error = reason
            raise DriverError(f"write to {self.device_id!r} {p.name!r} refused: {reason}")
        raw = ", ".join(f"0x{w:04X}" for w in words) if not p.table.is_bit else str(words[0])
        return f"{span} = {raw}"

    def _write_request(self, p: ModbusPoint, words: list[int]) -> Request:
        unit = self._unit_id

        def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
            if p.table is RegisterTable.COIL:
                return client.write_coil(p.address, bool(words[0]), device_id=unit)
            if len(words) == 1:
                return client.write_register(p.address, words[0], device_id=unit)
            return client.write_registers(p.address, words, device_id=unit)

        return request

    def _resolve(self, point: ModbusPoint | str) -> ModbusPoint:
        if isinstance(point, str):
            try:
                return self._by_name[point]
            except KeyError:
                raise DriverError(f"device {self.device_id!r} has no point {point!r}") from None
        if self._by_name.get(point.name) != point:
            raise DriverError(f"point {point.name!r} is not one of {self.device_id!r}'s points")
        return point


class ModbusTcpDevice(ModbusDevice):
    """A Modbus TCP device instance with its own connection; use as ``async with``.

    Entering does no I/O: the connection is made by the first ``read``/``write``.
    """

    def __init__(
        self,
        *,
        device_id: str,
        connection: ModbusTcpConnection,
        settings: ModbusProfileSettings,
        points: Sequence[ModbusPoint],
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(
            device_id=device_id,
            settings=settings,
            points=points,
            backoff=backoff,
            unit_id=connection.unit_id,
            timeout_s=connection.timeout_s,
        )
        self._conn = connection
        self._client: AsyncModbusTcpClient | None = None
        self._probe = TcpProbe(connection.host, connection.port)
        self._refused = False  # the last failure was a connect: a probe can tell it is back

    async def _ensure_link(self) -> None:
        """Connect if there is no live connection and the backoff allows it.

        While the backoff lasts (up to a minute), a bare TCP connect every ``PROBE_S``
        looks whether the device is back, and ends the wait at once when it is: a PLC that
        rebooted for 30-90 s is read again within seconds, not at the end of the backoff.
        One connect every few seconds is no storm against a device that stays down."""
        if self._client is not None:
            if self._client.connected:
                return
            self._drop_link()  # the peer closed it since the last request: reconnect now
        if (waiting := self._backing_off()) is not None:
            if not (self._refused and await self._probe.back(self._conn.timeout_s)):
                raise waiting
            self._retry_at = 0.0
        client, error = self._new_client()
        timeout = self._conn.timeout_s
        try:
            async with asyncio.timeout(timeout):
                ok = await client.connect()
        except TimeoutError:
            ok, error[0] = False, f"connect timeout after {timeout} s"
        except asyncio.CancelledError:
            client.close()
            raise
        if not ok or not client.connected:
            client.close()
            self._refused = True
            raise self._lost(f"not connected: {error[0] or 'connect failed'}")
        self._refused = False  # a device that takes connections but never answers: no probe
        self._client = client
        self.health.connected = True

    async def _transact(self, request: Request, what: str) -> ModbusPDU:
        if self._client is None:
            raise self._lost(f"not connected: connection closed before {what}")
        return await self._execute(self._client, request, what)

    def _new_client(self) -> tuple[AsyncModbusTcpClient, list[str | None]]:
        """A fresh client, and a cell that receives the reason its connect fails.

        pymodbus's ``connect()`` swallows the ``OSError`` and returns False; the
        wrapper around its transport factory keeps the error's text
        ("connection refused") for the readings.
        """
        client = AsyncModbusTcpClient(
            self._conn.host,
            port=self._conn.port,
            name=f"ldt:{self.device_id}",
            timeout=self._conn.timeout_s + 1.0,  # backstop only: our asyncio.timeout fires first
            retries=0,
            reconnect_delay=0,  # no background reconnect task: reconnects are ours
        )
        error: list[str | None] = [None]
        create = client.ctx.call_create

        async def create_and_record() -> Any:
            try:
                return await create()
            except OSError as exc:
                error[0] = _describe_os_error(exc)
                raise

        client.ctx.call_create = create_and_record
        return client, error

    def _drop_link(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.health.connected = False
