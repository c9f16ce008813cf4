"""One Modbus RTU device: a unit id on a serial line shared with the other devices on it.

Reads, decoding, writes and the failure policy are ``ModbusDevice``'s, the same
as for TCP. What RTU changes is the link: the serial line
(``ldt.drivers.modbus.bus``) belongs to every device on the port, so

* each request takes a turn on the line: one transaction on the wire at a
  time, with the inter-frame silence kept in between; a device's multi-block
  read gives the line up between blocks, so units interleave fairly;
* a unit that does not answer costs the line one ``timeout_s`` per attempt and
  then backs off (capped, jittered) without touching the line, so a dead
  meter slows its neighbours by a fraction of its timeout per backoff period;
* a timeout never closes the port (the others still answer); a request
  cancelled in flight keeps the line quiet for one timeout so its late answer
  cannot be taken for the next request's;
* a garbled answer (bad CRC) fails only its block, at once, with no backoff:
  the unit is alive, the line is noisy.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Self

from pymodbus.pdu import ModbusPDU

from ldt.backoff import Backoff
from ldt.drivers.errors import DriverError
from ldt.drivers.modbus.bus import (
    GarbledAnswerError,
    LineOpenError,
    SerialLine,
    attach_line,
    detach_line,
)
from ldt.drivers.modbus.config import ModbusPoint, ModbusProfileSettings, ModbusRtuConnection
from ldt.drivers.modbus.device import BadAnswerError, ModbusDevice, Request

__all__ = ["ModbusRtuDevice"]


class ModbusRtuDevice(ModbusDevice):
    """A Modbus RTU device instance (one unit id on one serial port); use as ``async with``.

    Entering attaches to the port's shared line (no I/O: the port opens at the
    first request); leaving detaches, and the last device on a port closes it.
    Raises ``DriverError`` on entering if another device uses the same port
    with other line settings, and from ``read``/``write`` if not entered.
    """

    _transport_errors = (GarbledAnswerError, LineOpenError)

    def __init__(
        self,
        *,
        device_id: str,
        connection: ModbusRtuConnection,
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
        self._line: SerialLine | None = None

    @property
    def line(self) -> SerialLine | None:
        """The shared serial line while entered (diagnostics: transactions, garbled answers)."""
        return self._line

    async def __aenter__(self) -> Self:
        if self._line is None:
            self._line = attach_line(self._conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._drop_link()
        line, self._line = self._line, None
        if line is not None:
            detach_line(line)

    def _attached(self) -> SerialLine:
        if self._line is None:
            raise DriverError(f"device {self.device_id!r} is not open: use 'async with' first")
        return self._line

    async def _ensure_link(self) -> None:
        """Only the unit's own backoff: the port is opened by the line, in turn."""
        self._attached()
        if (waiting := self._backing_off()) is not None:
            raise waiting

    async def _transact(self, request: Request, what: str) -> ModbusPDU:
        line = self._attached()
        try:
            async with line.turn(timeout_s=self._conn.timeout_s) as client:
                return await self._execute(client, request, what)
        except LineOpenError as exc:
            raise self._lost(f"not connected: {exc}") from None
        except GarbledAnswerError as exc:
            raise BadAnswerError(f"garbled answer ({exc}) {what}") from None

    def _abandon(self) -> None:
        self.health.connected = False
        if self._line is not None:
            self._line.keep_quiet(self._conn.timeout_s)
