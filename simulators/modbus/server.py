"""A Modbus TCP device on loopback, serving a profile's register map with live values.

Built on pymodbus 3.16.1's ``SimDevice``/``SimData`` server datastore (the
``ModbusDeviceContext``/``ModbusSequentialDataBlock`` API is deprecated there).
The simulator keeps its own register image, encoded by its own codec; the
datastore's ``action`` hook, which pymodbus awaits on every table access,
copies that image into the served registers before a read, applies writes to
it, and is where the misbehaviour knobs (delay, drop, exception) act.

What a client sees, like a real device:
- registers of mapped points, and unmapped gaps of at most the profile's
  ``max_gap`` registers between two points (as 0), so coalesced block reads
  work; anything else is answered with ILLEGAL DATA ADDRESS (0x02);
- writes only to ``writable`` holding registers and coils (others: 0x02);
- requests for another unit id: GATEWAY TARGET DEVICE FAILED TO RESPOND (0x0B)
  where this unit would have answered.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path
from types import TracebackType
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from ldt.simulators.modbus.errors import SimulatorError
from ldt.simulators.modbus.model import DeviceModel
from ldt.simulators.modbus.profile import SimPoint, SimProfile, Table, load_sim_profile
from ldt.simulators.modbus.registers import Value, decode, encode

__all__ = ["ModbusSimulator"]

_FC_TABLE: dict[int, Table] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
_FC_TABLE.update({5: "coil", 15: "coil", 6: "holding", 16: "holding", 22: "holding", 23: "holding"})
_TABLES: tuple[Table, ...] = ("coil", "discrete", "holding", "input")  # SimDevice tuple order


def _is_second_access(fc: int, writing: bool) -> bool:
    """True for the datastore access pymodbus makes after the first one of the same request.

    FC 5/6/23 write and then read back; FC 22 reads and then writes. The knobs
    act once per request, on its first access.
    """
    return (fc in (5, 6, 23) and not writing) or (fc == 22 and writing)


class ModbusSimulator:
    """One simulated Modbus TCP device serving a profile; use as an async context manager.

    ``exception_rate``: fraction of requests answered with SLAVE DEVICE FAILURE
    (0x04); ``delay_ms``: every request is answered this late; ``drop_rate``:
    fraction of requests never answered. Faults draw from their own random
    stream, so they never change the values a seed produces.
    """

    def __init__(
        self,
        *,
        profile: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int = 1,
        seed: int = 0,
        update_interval_s: float = 1.0,
        exception_rate: float = 0.0,
        delay_ms: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        if not 0 <= unit_id <= 255:
            raise SimulatorError(f"unit id {unit_id} is outside 0..255")
        if not 0 <= port <= 65535:
            raise SimulatorError(f"port {port} is outside 0..65535")
        if not update_interval_s > 0:
            raise SimulatorError("update interval must be positive")
        for label, rate in (("exception rate", exception_rate), ("drop rate", drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise SimulatorError(f"{label} must be between 0 and 1, not {rate}")
        if not delay_ms >= 0:
            raise SimulatorError("delay must not be negative")
        self.profile_path = profile
        self.host = host
        self.port = port
        """The bound port after ``start()`` (the requested one before)."""
        self.unit_id = unit_id
        self.seed = seed
        self.update_interval_s = update_interval_s
        self.exception_rate = exception_rate
        self.delay_ms = delay_ms
        self.drop_rate = drop_rate
        self.request_count = 0
        """Requests received (decoded frames), including ones answered with an exception."""
        self._faults = random.Random(f"faults:{seed}")  # noqa: S311 - simulation, not crypto
        self._profile: SimProfile | None = None
        self._points: dict[str, SimPoint] = {}
        self._model: DeviceModel | None = None
        self._image: dict[Table, dict[int, int]] = {t: {} for t in _TABLES}
        self._readable: dict[Table, frozenset[int]] = {}
        self._writable: dict[Table, frozenset[int]] = {}
        self._frozen = False
        self._server: ModbusTcpServer | None = None
        self._updater: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[object]] = set()

    # -- profile and values -------------------------------------------------

    def _load(self) -> DeviceModel:
        """Read the profile and compute the values at simulated time 0 (once)."""
        if self._model is not None:
            return self._model
        profile = load_sim_profile(self.profile_path)
        self._profile = profile
        self._points = {p.name: p for p in profile.points}
        for table in _TABLES:
            points = sorted(
                (p for p in profile.points if p.table == table), key=lambda p: p.address
            )
            readable: set[int] = set()
            for prev, nxt in itertools.pairwise(points):
                gap = nxt.address - (prev.address + prev.registers)
                if 0 < gap <= profile.max_gap:
                    readable.update(range(prev.address + prev.registers, nxt.address))
            for p in points:
                readable.update(p.span)
            self._readable[table] = frozenset(readable)
            self._writable[table] = frozenset(a for p in points if p.writable for a in p.span)
            self._image[table] = dict.fromkeys(readable, 0)
        self._model = DeviceModel(points=profile.points, seed=self.seed, unit_id=self.unit_id)
        for name, value in self._model.values.items():
            self._store(self._points[name], value)
        return self._model

    def _store(self, point: SimPoint, value: Value) -> None:
        image = self._image[point.table]
        for addr, reg in zip(point.span, encode(point, value), strict=True):
            image[addr] = reg

    @property
    def profile_name(self) -> str:
        """The ``[profile] name`` of the served profile."""
        self._load()
        assert self._profile is not None
        return self._profile.name

    def _point(self, name: str) -> SimPoint:
        self._load()
        point = self._points.get(name)
        if point is None:
            raise SimulatorError(f"profile {self.profile_name} has no point {name!r}")
        return point

    def expected(self, name: str) -> Value:
        """What a correct client decodes for point ``name`` from the registers served now.

        Includes the type's rounding (float32, integer scaling); raises ``SimulatorError``
        for an unknown name.
        """
        point = self._point(name)
        image = self._image[point.table]
        return decode(point, [image[a] for a in point.span])

    def values(self) -> dict[str, Value]:
        """``expected()`` of every point, by name."""
        self._load()
        return {name: self.expected(name) for name in self._points}

    def set_value(self, name: str, value: Value) -> None:
        """Encode ``value`` into the point's registers now.

        Writable and configuration points keep it until written again; measured
        points are recomputed at the next update (``freeze()`` first to keep it).
        Raises ``SimulatorError`` if the value does not fit the point.
        """
        point = self._point(name)
        try:
            self._store(point, value)
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None

    def advance(self, steps: int = 1) -> None:
        """Advance simulated time by ``steps`` update intervals now (what the updater does).

        The values after n steps depend only on the seed and n, which is what
        makes runs reproducible.
        """
        model = self._load()
        for _ in range(steps):
            model.step(self.update_interval_s, self._points)
        held = model.held
        for name, value in model.values.items():
            if name not in held:
                self._store(self._points[name], value)

    def freeze(self) -> None:
        """Stop time-variation: values stay as served until ``unfreeze()``."""
        self._frozen = True

    def unfreeze(self) -> None:
        """Resume time-variation."""
        self._frozen = False

    # -- serving ------------------------------------------------------------

    def _simdata(self, table: Table) -> list[SimData]:
        bits = table in ("coil", "discrete")
        kind = DataType.BITS if bits else DataType.REGISTERS
        fill: bool | int = False if bits else 0
        readable = self._readable[table]
        if not readable:
            # pymodbus wants a block per table; a lone bit block is rejected in _action
            if bits:
                return [SimData(address=0, values=False, datatype=kind)]
            return [SimData(address=0, datatype=DataType.INVALID)]
        lo, hi = min(readable), max(readable)
        # a list of values, never count=N: pymodbus 3.16.1 validates a block by
        # building it count*count times over (count=65536 -> MemoryError)
        return [SimData(address=lo, values=[fill] * (hi - lo + 1), datatype=kind)]

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.request_count += 1
        return pdu

    async def _wrong_unit(self, *_args: object) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def _action(  # noqa: PLR0917 - pymodbus's SimAction signature
        self,
        fc: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this on each table access; see the module docstring."""
        table = _FC_TABLE.get(fc)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            writing = set_values is not None
            if not _is_second_access(fc, writing):
                if self.drop_rate and self._faults.random() < self.drop_rate:
                    await asyncio.Event().wait()  # never answered; stop() cancels it
                if self.delay_ms:
                    await asyncio.sleep(self.delay_ms / 1000)
            bits = table in ("coil", "discrete")
            if set_values is not None:
                span = range(address, address + len(set_values))
                if not set(span) <= self._writable[table]:
                    return ExcCodes.ILLEGAL_ADDRESS
            else:
                # pymodbus passes bit reads as a count of 16-bit words: check the first bit
                span = range(address, address + (1 if bits else count))
                if not set(span) <= self._readable[table]:
                    return ExcCodes.ILLEGAL_ADDRESS
            if (
                not _is_second_access(fc, writing)
                and self.exception_rate
                and self._faults.random() < self.exception_rate
            ):
                return ExcCodes.DEVICE_FAILURE
            image = self._image[table]
            if set_values is not None:
                for addr, value in zip(span, set_values, strict=True):
                    image[addr] = int(value) & 0xFFFF
            elif bits:
                first_word = address // 16
                for k in range(count):
                    base = (first_word + k) * 16
                    word = sum(1 << j for j in range(16) if image.get(base + j, 0))
                    registers[first_word - start + k] = word
            else:
                for k in range(count):
                    registers[address - start + k] = image.get(address + k, 0)
            return None
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def start(self) -> None:
        """Load the profile and listen; ``port`` then holds the bound port.

        Raises ``SimulatorError`` for a bad profile or an address that cannot be bound.
        """
        if self._server is not None:
            raise SimulatorError("simulator already started")
        devices = [self._sim_device()]
        if self.unit_id != 0:
            devices.append(
                SimDevice(
                    id=0,
                    simdata=tuple(self._simdata(t) for t in _TABLES),  # type: ignore[arg-type]
                    action=self._wrong_unit,
                )
            )
        server = ModbusTcpServer(devices, address=(self.host, self.port), trace_pdu=self._trace_pdu)
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            raise SimulatorError(
                f"cannot listen on {self.host}:{self.port} (in use, or not an address of this host)"
            ) from None
        listener = server.transport
        sockets = getattr(listener, "sockets", None) or ()
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._server = server
        self._start_updates(f"ldt-sim-modbus-update:{self.port}")

    def _sim_device(self, action: SimAction | None = None) -> SimDevice:
        """This device's registers for a pymodbus server (the RTU line serves several)."""
        self._load()
        return SimDevice(
            id=self.unit_id,
            simdata=tuple(self._simdata(t) for t in _TABLES),  # type: ignore[arg-type]
            action=action or self._action,
        )

    def _start_updates(self, name: str) -> None:
        self._updater = asyncio.create_task(self._update_forever(), name=name)

    async def _update_forever(self) -> None:
        while True:
            await asyncio.sleep(self.update_interval_s)
            if not self._frozen:
                self.advance()

    async def stop(self) -> None:
        """Stop serving; requests still delayed or dropped are never answered."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
        await self._stop_updates()

    async def _stop_updates(self) -> None:
        """Stop the value updater and the requests still delayed or dropped."""
        updater, self._updater = self._updater, None
        if updater is not None:
            updater.cancel()
            await asyncio.wait([updater])
        pending = list(self._inflight)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        if updater is not None and not updater.cancelled() and updater.exception() is not None:
            raise SimulatorError("the value updater failed") from updater.exception()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
