"""One RS-485 line shared by every device on it: one serial client, one transaction at a time.

On a Modbus RTU bus only the master talks first and only one request may be on
the wire: two at once collide and both answers are lost. A serial port can
also be opened only once (pymodbus opens it with ``exclusive=True``). So all
devices on one port share one ``SerialLine`` from a module registry, keyed by
the port's resolved path (``/dev/serial/by-id/...`` and ``/dev/ttyUSB0`` are
the same line) and reference-counted by the devices' ``async with``. The line
hands out turns (``async with line.turn()``) under one FIFO ``asyncio.Lock``
and keeps the inter-frame silence (t3.5) between the end of one transaction
and the start of the next. The port is opened lazily at the first turn and
reopened after it fails (an unplugged USB adapter).

A response whose CRC does not match is dropped by pymodbus without a word,
leaving the request to time out; the line watches the framer and fails that
request at once with ``GarbledAnswerError`` instead, so a noisy line costs a
frame, not a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, ModbusBaseClient
from pymodbus.framer import FramerType

from ldt.drivers.errors import DriverError
from ldt.drivers.modbus.config import ModbusRtuConnection

__all__ = ["GarbledAnswerError", "LineOpenError", "SerialLine", "attach_line", "detach_line"]


class LineOpenError(DriverError):
    """The serial port could not be opened; the message says why (missing, busy, no permission)."""


class GarbledAnswerError(Exception):
    """A complete answer arrived with a wrong CRC (noise, a collision, wrong line settings)."""


def _line_settings(conn: ModbusRtuConnection) -> tuple[int, str, int, int]:
    return (conn.baudrate, conn.parity, conn.stopbits, conn.bytesize)


def _describe(settings: tuple[int, str, int, int]) -> str:
    baud, parity, stopbits, bytesize = settings
    return f"{baud} {bytesize}{parity}{stopbits}"


class SerialLine:
    """One serial port and its single in-flight transaction; get one with ``attach_line``."""

    def __init__(self, *, path: str, connection: ModbusRtuConnection) -> None:
        self.path = path
        self.settings = _line_settings(connection)
        self.inter_frame_delay_s = connection.inter_frame_delay_s
        self.transactions = 0
        """Turns taken (requests put on the wire or tried), for diagnostics and tests."""
        self.garbled = 0
        """Answers dropped for a wrong CRC."""
        self.users = 0
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._client: AsyncModbusSerialClient | None = None
        self._quiet_until = 0.0  # time.monotonic() before which nothing may be sent

    @property
    def open(self) -> bool:
        """True while the port is open."""
        return self._client is not None and self._client.connected

    @contextlib.asynccontextmanager
    async def turn(self, *, timeout_s: float) -> AsyncIterator[ModbusBaseClient]:
        """The bus for one transaction: waits its turn and the inter-frame silence.

        Opens the port if needed (within ``timeout_s``; ``LineOpenError`` if it
        cannot be). The silence after the turn starts when the turn ends, so a
        timed-out request is followed by t3.5 like an answered one.
        """
        async with self._lock:
            gap = self._quiet_until - time.monotonic()
            if gap > 0:
                await asyncio.sleep(gap)
            client = await self._opened(timeout_s)
            self.transactions += 1
            try:
                yield client
            finally:
                self.keep_quiet(self.inter_frame_delay_s)

    def keep_quiet(self, seconds: float) -> None:
        """Send nothing for ``seconds`` from now (after a request abandoned in flight)."""
        self._quiet_until = max(self._quiet_until, time.monotonic() + seconds)

    async def _opened(self, timeout_s: float) -> AsyncModbusSerialClient:
        if self._client is not None:
            if self._client.connected:
                return self._client
            self.close()  # the port failed since the last turn (adapter unplugged): reopen
        baudrate, parity, stopbits, bytesize = self.settings
        client = AsyncModbusSerialClient(
            self.path,
            framer=FramerType.RTU,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            name=f"ldt:{self.path}",
            timeout=timeout_s + 1.0,  # backstop only: the devices' asyncio.timeout fires first
            retries=0,
            reconnect_delay=0,  # no background reconnect task: reopening is ours
        )
        error: list[str | None] = [None]
        create = client.ctx.call_create

        async def create_and_record() -> Any:
            try:
                return await create()
            except OSError as exc:  # serial.SerialException is an OSError
                error[0] = str(exc) or type(exc).__name__
                raise

        client.ctx.call_create = create_and_record
        try:
            async with asyncio.timeout(timeout_s):
                ok = await client.connect()
        except TimeoutError:
            ok, error[0] = False, f"open timeout after {timeout_s} s"
        except asyncio.CancelledError:
            client.close()
            raise
        if not ok or not client.connected:
            client.close()
            raise LineOpenError(f"cannot open {self.path}: {error[0] or 'open failed'}")
        self._watch_crc(client)
        self._client = client
        return client

    def _watch_crc(self, client: AsyncModbusSerialClient) -> None:
        """Fail the pending request at once when its answer fails the CRC check.

        pymodbus's RTU framer reports a complete frame with a bad CRC by
        consuming the whole buffer and returning no frame (``used > 0``, empty
        payload); it then waits for an answer that will never come.
        """
        ctx = client.ctx
        decode = ctx.framer.decode

        def checked(data: bytes) -> tuple[int, int, int, bytes]:
            used, dev_id, tid, frame = decode(data)
            if used and not frame:
                self.garbled += 1
                pending = ctx.response_future
                if not pending.done():
                    pending.set_exception(GarbledAnswerError(f"{used} bytes failed the CRC check"))
            return used, dev_id, tid, frame

        ctx.framer.decode = checked  # type: ignore[method-assign,assignment]

    def close(self) -> None:
        """Close the port (the next turn reopens it)."""
        if self._client is not None:
            self._client.close()
            self._client = None


_LINES: dict[str, SerialLine] = {}


def attach_line(connection: ModbusRtuConnection) -> SerialLine:
    """The line for ``connection.port``, shared with other devices on it; call ``detach_line``.

    Does no I/O beyond resolving the path. Raises ``DriverError`` if the line is
    already in use with other settings (baud rate, parity, ...): one bus has one speed.
    """
    path = os.path.realpath(connection.port)
    line = _LINES.get(path)
    if line is not None and (line.users == 0 or line._loop is not asyncio.get_running_loop()):
        line.close()  # left behind by an event loop that has ended
        line = None
    if line is None:
        line = _LINES[path] = SerialLine(path=path, connection=connection)
    elif line.settings != _line_settings(connection):
        raise DriverError(
            f"serial line {path} is in use at {_describe(line.settings)}; "
            f"a device on it cannot use {_describe(_line_settings(connection))}"
        )
    line.inter_frame_delay_s = max(line.inter_frame_delay_s, connection.inter_frame_delay_s)
    line.users += 1
    return line


def detach_line(line: SerialLine) -> None:
    """A device is done with ``line``; the last one closes the port."""
    line.users -= 1
    if line.users <= 0:
        line.close()
        if _LINES.get(line.path) is line:
            del _LINES[line.path]
