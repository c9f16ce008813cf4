"""Several Modbus RTU devices on one serial line (RS-485), each serving its own profile.

Built on pymodbus 3.16.1's ``ModbusSerialServer`` with one ``SimDevice`` per
unit id; each unit is a ``ModbusSimulator`` (its registers, values, knobs and
``expected()``) that is served here instead of over TCP. What a master on the
line sees, like a real bus:

- each configured unit answers its own requests;
- a unit id nobody has is *silent* (the request times out). pymodbus's
  ``ignore_missing_devices`` has no effect with ``SimDevice`` datastores
  (unknown ids fall back to device 0), so the answer is dropped on its way
  to the wire instead;
- answers take the time the line would take (``line_timing``): request and
  answer bytes at the configured baud rate, so throughput measured over a pty
  (which ignores baud rates) is that of a real line;
- ``crc_error_rate``: a fraction of answers go out with a corrupted CRC.

Every transaction is recorded (unit, function code, start, end) so tests can
check that the master never had two requests on the line at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from ldt.simulators.modbus.errors import SimulatorError
from ldt.simulators.modbus.server import ModbusSimulator, _is_second_access

__all__ = ["ModbusRtuSimulator", "Transaction"]

_RTU_OVERHEAD = 4  # unit id, function code, two CRC bytes
_BITS_FC = (1, 2)
_REGISTERS_FC = (3, 4)


@dataclass(slots=True)
class Transaction:
    """One request the line carried, as the simulator saw it (``time.monotonic()`` seconds)."""

    unit_id: int
    function_code: int
    started: float
    """When the whole request had arrived."""
    ended: float | None = None
    """When the answer was handed to the line; None while pending or never answered."""
    answered: bool = False
    """False for a unit id nobody on the line has (and for dropped requests)."""


def _answer_bytes(pdu: ModbusPDU) -> int:
    """Bytes of a normal answer to request ``pdu`` on the wire (FC 5/6/15/16: an echo of 8)."""
    fc = pdu.function_code
    if fc in _BITS_FC:
        return _RTU_OVERHEAD + 1 + (pdu.count + 7) // 8
    if fc in _REGISTERS_FC:
        return _RTU_OVERHEAD + 1 + 2 * pdu.count
    return 8


class ModbusRtuSimulator:
    """Simulated RTU devices sharing one serial port; use as an async context manager.

    ``devices``: ``(unit_id, profile, seed)`` per device, unit ids 1..247, each
    once. ``unit(id)`` gives that device's ``ModbusSimulator`` for values,
    ``expected()``, ``freeze()``, ``set_value()`` and its own knobs
    (``delay_ms``, ``drop_rate``, ``exception_rate``). ``port`` is the serial
    device to serve on (one end of a ``socat`` pty pair in tests).
    """

    def __init__(
        self,
        *,
        port: str,
        devices: Sequence[tuple[int, Path, int]],
        baudrate: int = 9600,
        parity: Literal["N", "E", "O"] = "N",
        stopbits: Literal[1, 2] = 1,
        update_interval_s: float = 1.0,
        line_timing: bool = True,
        crc_error_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not devices:
            raise SimulatorError("an RTU line needs at least one device")
        if not 1200 <= baudrate <= 115200:
            raise SimulatorError(f"baud rate {baudrate} is outside 1200..115200")
        if parity not in ("N", "E", "O") or stopbits not in (1, 2):
            raise SimulatorError(f"line settings {parity}{stopbits} are not Modbus RTU framings")
        if not 0.0 <= crc_error_rate <= 1.0:
            raise SimulatorError(f"CRC error rate must be between 0 and 1, not {crc_error_rate}")
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.line_timing = line_timing
        self.crc_error_rate = crc_error_rate
        self._units: dict[int, ModbusSimulator] = {}
        for unit_id, profile, unit_seed in devices:
            if not 1 <= unit_id <= 247:
                raise SimulatorError(f"RTU unit id {unit_id} is outside 1..247")
            if unit_id in self._units:
                raise SimulatorError(f"unit id {unit_id} appears twice on the line")
            self._units[unit_id] = ModbusSimulator(
                profile=profile,
                unit_id=unit_id,
                seed=unit_seed,
                update_interval_s=update_interval_s,
            )
        self.transactions: list[Transaction] = []
        """Every request received, in arrival order."""
        self.corrupted = 0
        """Answers sent with a corrupted CRC."""
        self._faults = random.Random(f"rtu-faults:{seed}")  # noqa: S311 - simulation
        self._open: dict[int, list[Transaction]] = {}  # by unit: received, not yet answered
        self._collisions: list[tuple[Transaction, Transaction]] = []
        self._wire_s: dict[int, float] = {}
        self._server: ModbusSerialServer | None = None
        self._inflight: set[asyncio.Task[object]] = set()

    @property
    def unit_ids(self) -> tuple[int, ...]:
        """The unit ids that answer on this line."""
        return tuple(self._units)

    def unit(self, unit_id: int) -> ModbusSimulator:
        """The simulated device at ``unit_id`` (``SimulatorError`` if none)."""
        try:
            return self._units[unit_id]
        except KeyError:
            raise SimulatorError(f"no device with unit id {unit_id} on this line") from None

    @property
    def character_s(self) -> float:
        """Time one character takes on the line (start, 8 data, parity, stop bits)."""
        return (1 + 8 + (0 if self.parity == "N" else 1) + self.stopbits) / self.baudrate

    def overlapping(self) -> list[tuple[Transaction, Transaction]]:
        """Pairs of transactions that were on the line at the same time (collisions).

        A request that arrives while another unit's answer is still pending
        counts, as do answered transactions whose times overlap. A request
        dropped by ``drop_rate`` stays pending for good, so only ask this of a
        line without dropped requests.
        """
        pairs = list(self._collisions)
        done = sorted(
            (t for t in self.transactions if t.answered and t.ended is not None),
            key=lambda t: t.started,
        )
        latest: Transaction | None = None  # the one that ends last among those started so far
        for t in done:
            assert t.ended is not None
            overlap = latest is not None and latest.ended is not None and t.started < latest.ended
            if overlap and latest is not None and (latest, t) not in pairs:
                pairs.append((latest, t))
            if latest is None or (latest.ended or 0.0) < t.ended:
                latest = t
        return pairs

    # -- the line -----------------------------------------------------------

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending:
            return pdu
        unit_id = pdu.dev_id
        ours = unit_id in self._units
        record = Transaction(
            unit_id=unit_id,
            function_code=pdu.function_code,
            started=asyncio.get_running_loop().time(),
        )
        for waiting in self._open.values():
            self._collisions.extend((earlier, record) for earlier in waiting)
        self.transactions.append(record)
        if ours:
            self._units[unit_id].request_count += 1
            self._open.setdefault(unit_id, []).append(record)
            request_bytes = _RTU_OVERHEAD + len(pdu.encode())
            self._wire_s[unit_id] = (request_bytes + _answer_bytes(pdu)) * self.character_s
        else:
            record.ended = record.started
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        unit_id = data[0]
        if unit_id not in self._units:
            return b""  # nobody with this address is on the line: silence
        pending = self._open.get(unit_id)
        if pending:
            record = pending.pop(0)
            record.ended = asyncio.get_running_loop().time()
            record.answered = True
        if self.crc_error_rate and self._faults.random() < self.crc_error_rate:
            self.corrupted += 1
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    def _paced(self, unit: ModbusSimulator) -> SimAction:
        """``unit``'s datastore hook, answering only after the line time of request and answer."""
        unit_action = unit._action
        unit_id = unit.unit_id

        async def action(  # noqa: PLR0917 - pymodbus's SimAction signature
            fc: int,
            start: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            task = asyncio.current_task()
            if task is not None:
                self._inflight.add(task)
            try:
                if self.line_timing and not _is_second_access(fc, set_values is not None):
                    await asyncio.sleep(self._wire_s.get(unit_id, 0.0))
                return await unit_action(fc, start, address, count, registers, set_values)
            finally:
                if task is not None:
                    self._inflight.discard(task)

        return action

    async def _nobody(self, *_args: object) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE  # never reaches the wire (see _trace_packet)

    async def start(self) -> None:
        """Open the serial port and serve; ``SimulatorError`` for a bad profile or port."""
        if self._server is not None:
            raise SimulatorError("simulator already started")
        devices = [unit._sim_device(self._paced(unit)) for unit in self._units.values()]
        bits = [SimData(address=0, values=False, datatype=DataType.BITS)]
        registers = [SimData(address=0, datatype=DataType.INVALID)]
        devices.append(
            SimDevice(id=0, simdata=(bits, bits, registers, registers), action=self._nobody)
        )
        server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=self.port,
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            bytesize=8,
            trace_pdu=self._trace_pdu,
            trace_packet=self._trace_packet,
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            raise SimulatorError(
                f"cannot open serial port {self.port} (missing, in use, or no permission)"
            ) from None
        self._server = server
        for unit in self._units.values():
            unit._start_updates(f"ldt-sim-modbus-rtu-update:{unit.unit_id}")

    async def stop(self) -> None:
        """Close the port; requests still being answered are never answered."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
        pending = list(self._inflight)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for unit in self._units.values():
            await unit._stop_updates()
        self._open.clear()

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
