"""The one driver model every protocol implements.

A driver is a thin async adapter between one device and the agent (the model
is Home Assistant's: the driver talks, the agent's coordinator decides when).
Every driver:

* is an async context manager whose ``__aenter__`` does no blocking I/O and
  never fails because the device is down (connecting happens inside ``read``
  / ``stream`` with capped, jittered backoff);
* reports faults as ``Reading`` objects with quality ``bad`` and a reason,
  never as exceptions (only ``CancelledError`` propagates), so one device can
  never stall or stop another;
* writes through ``write``, which *does* raise ``DriverError`` with a sentence
  saying what failed, because a command's caller must know;
* keeps a ``DriverHealth`` the agent reports.

Polled protocols (Modbus, OPC UA without subscriptions) implement ``read``;
pushing protocols (MQTT, BLE advertisements, OPC UA monitored items) also
implement ``stream``. The agent polls ``polled_points()`` on their schedule and
runs ``stream`` as a task when ``streams`` is true.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from ldt.reading import Reading, Value

__all__ = ["Device", "DriverHealth", "Emit", "PointSpec"]

Emit = Callable[[Reading], Awaitable[None]]
"""Where a streaming driver hands each pushed reading (the agent's buffer writer)."""


@dataclass(slots=True)
class DriverHealth:
    """What a driver knows about its link to the device."""

    connected: bool = False
    last_error: str | None = None
    consecutive_failures: int = 0


class PointSpec(Protocol):
    """What the agent needs of any protocol's point (each driver's config has its own)."""

    @property
    def name(self) -> str: ...
    @property
    def attribute_name(self) -> str: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def poll_interval_s(self) -> float | None: ...
    @property
    def writable(self) -> bool: ...


@runtime_checkable
class Device(Protocol):
    """One device behind one driver."""

    device_id: str
    health: Any  # DriverHealth or a driver's richer dataclass with the same fields

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    @property
    def streams(self) -> bool:
        """True when the device pushes readings (the agent runs ``stream``)."""
        ...

    def polled_points(self) -> Sequence[Any]:
        """The points the agent must poll with ``read`` (may be empty for pushing devices)."""
        ...

    async def read(self, points: Sequence[Any] | None = None) -> list[Reading]:
        """One reading per requested point, in order; faults become bad readings."""
        ...

    async def stream(self, emit: Emit) -> None:
        """Push readings to ``emit`` until cancelled; reconnects and re-subscribes itself.

        While the link is down it emits one ``bad`` reading per point at each
        failed attempt, so an outage shows in the data as quality, not silence.
        """
        ...

    async def write(self, point: Any, value: Value) -> str | None:
        """Write one point (by point object or name); raises ``DriverError``. May return
        what went on the wire when it is not the value as given (Modbus: the raw registers
        after scale and offset), for the command's result."""
        ...
