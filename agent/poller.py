"""One coordinator per device: polls its points on schedule and hands readings to the buffer.

Modelled on Home Assistant's per-device coordinator: the driver is a thin
adapter that reads, the poller owns *when*. Points are grouped by poll
interval (an energy total hourly, a power value every few seconds) and each
group runs at a fixed rate anchored to the start time, so readings from many
gateways line up in time.

A reading is ``stale`` when its value arrived more than one full interval after
the slot it was due for (the gateway was overloaded or the bus was slow): the
value is real but does not represent that slot. Missed slots are skipped, not
queued, so a slow device is never read in a burst to "catch up".
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from ldt.agent.buffer import BufferInputError
from ldt.reading import Quality, Reading

__all__ = ["DeviceHealth", "DevicePoller", "PolledDevice", "ReadingSink", "store_reading"]

_log = logging.getLogger("ldt.agent.poller")

P = TypeVar("P")
P_contra = TypeVar("P_contra", contravariant=True)


class PolledDevice(Protocol[P_contra]):
    """What a poller needs from a driver: read points, never raising for device faults.

    The poller does not open the device: the agent's device supervisor does, once,
    for its poller and its stream together.
    """

    async def read(self, points: Sequence[P_contra] | None = None) -> list[Reading]:
        """One reading per point, bad ones carrying the reason."""
        ...


class ReadingSink(Protocol):
    """Where readings go (the buffer writer); ``put`` waits when the sink is full."""

    async def put(self, series_id: int, reading: Reading) -> None:
        """Accept one reading for durable storage."""
        ...


@dataclass(slots=True)
class DeviceHealth:
    """What the agent reports about one device (logs now, local API later)."""

    device_id: str
    polls: int = 0
    good: int = 0
    bad: int = 0
    stale: int = 0
    last_good_ms: int | None = None
    last_error: str | None = None
    connected: bool = False
    task_restarts: int = 0
    """Times the device's task failed (an exception no driver turned into a reading)."""
    latest: dict[str, Reading] = field(default_factory=dict)
    """The newest reading of each point (the local API's live view)."""
    failing: dict[str, _Failure] = field(default_factory=dict)
    """Points whose latest reading is bad, with the reason and since when (for logs)."""
    down: _Failure | None = None
    """Set while every point of each poll fails for one reason (the device, not a point)."""
    groups_down: dict[object, bool] = field(default_factory=dict)
    """Per poll group (an interval): whether its last poll failed whole, for one reason."""
    poll_groups: int = 1
    """How many poll groups the device has (set by its poller): all must fail."""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def record_poll(self, readings: Sequence[Reading], group: object = None) -> None:
        """Count one poll's readings (of one poll ``group``). When the last poll of every
        group failed whole, for one reason, the device is what fails (down, unreachable,
        rebooting): one line when that starts, a summary at most every ``SUMMARY_S``, one
        when it answers again, and no line per point, nor per change of its reason (a
        killed device times out, then refuses connections). A group failing alone while
        another reads is told point by point."""
        causes = {_cause(r.reason) for r in readings if r.quality is Quality.BAD}
        bad = sum(r.quality is Quality.BAD for r in readings)
        self.groups_down[group] = bool(readings) and bad == len(readings) and len(causes) == 1
        if len(self.groups_down) >= self.poll_groups and all(self.groups_down.values()):
            for r in readings:
                self.latest[r.point] = r
            self.bad += bad
            self.last_error = readings[0].reason
            self._device_failed(readings[0])
            return
        if self.down is not None:
            after_s = round(self.clock() - self.down.since, 1)
            _log.info(
                "device reads again",
                extra={"device": self.device_id, "after_s": after_s,
                       "failed_polls": self.down.count},
            )  # fmt: skip
            self.down = None
        for r in readings:
            self.record(r)

    def _device_failed(self, r: Reading) -> None:
        now = self.clock()
        if self.down is None:
            self.down = _Failure(reason=r.reason, since=now, logged=now)
            _log.warning("device read failed", extra={"device": self.device_id, "reason": r.reason})
            return
        self.down.count += 1
        if now - self.down.logged >= SUMMARY_S:
            self.down.logged = now
            _log.warning(
                "device still failing",
                extra={"device": self.device_id, "reason": r.reason,
                       "for_s": round(now - self.down.since), "failed_polls": self.down.count},
            )  # fmt: skip

    def record(self, r: Reading) -> None:
        """Count one reading, and log failures per point and per reason: one line when a
        point starts failing (or its reason changes), one when it reads again, and a
        summary at most every ``SUMMARY_S`` while it lasts. (Logging per device flipped
        between two bad points' reasons and wrote a warning every poll.)"""
        self.latest[r.point] = r
        if r.quality is Quality.BAD:
            self.bad += 1
            self.last_error = r.reason
            self._failed(r)
            return
        if r.quality is Quality.STALE:
            self.stale += 1
        else:
            self.good += 1
        self.last_good_ms = r.observed_at_ms
        self.connected = True
        failure = self.failing.pop(r.point, None)
        if failure is not None:
            _log.info(
                "point reads again",
                extra={"device": self.device_id, "point": r.point,
                       "after_s": round(self.clock() - failure.since, 1),
                       "bad_readings": failure.count},
            )  # fmt: skip

    def _failed(self, r: Reading) -> None:
        now = self.clock()
        failure = self.failing.get(r.point)
        if failure is None or _cause(failure.reason) != _cause(r.reason):
            self.failing[r.point] = _Failure(reason=r.reason, since=now, logged=now)
            _log.warning(
                "point read failed",
                extra={"device": self.device_id, "point": r.point, "reason": r.reason},
            )
            return
        failure.count += 1
        if now - failure.logged >= SUMMARY_S:
            failure.logged = now
            _log.warning(
                "point still failing",
                extra={"device": self.device_id, "point": r.point, "reason": r.reason,
                       "for_s": round(now - failure.since), "bad_readings": failure.count},
            )  # fmt: skip


def _cause(reason: str | None) -> str | None:
    """A reason without the driver's "not connected: " prefix, which it adds while it waits
    to retry the failure the reason names (the same failure, not a new one)."""
    return reason.removeprefix("not connected: ") if reason else reason


SUMMARY_S = 600.0
"""While a point keeps failing for the same reason, a summary line at most this often."""


@dataclass(slots=True)
class _Failure:
    reason: str | None
    since: float
    logged: float
    count: int = 1


@dataclass(slots=True)
class _Group(Generic[P]):
    interval_s: float
    points: list[P]
    series_ids: list[int]
    next_due: float = field(default=0.0)


class DevicePoller(Generic[P]):
    """Polls one device's point groups forever; run it as a task, cancel to stop."""

    def __init__(
        self,
        *,
        device_id: str,
        device: PolledDevice[P],
        schedule: Sequence[tuple[float, P, int]],
        sink: ReadingSink,
        health: DeviceHealth | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        """``schedule`` lists (poll interval in s, point, series id) for every point."""
        groups: dict[float, _Group[P]] = {}
        for interval, point, series_id in schedule:
            g = groups.setdefault(interval, _Group(interval_s=interval, points=[], series_ids=[]))
            g.points.append(point)
            g.series_ids.append(series_id)
        self._groups = sorted(groups.values(), key=lambda g: g.interval_s)
        self._device = device
        self._sink = sink
        self._clock = clock
        self.health = health or DeviceHealth(device_id=device_id)
        self.health.poll_groups = max(1, len(self._groups))

    async def run(self) -> None:
        """Poll until cancelled. Driver faults become bad readings, never exceptions.

        A driver library may swallow the cancellation (``ldt.cancellation``): stop it with
        ``cancel_and_wait``, which asks again.
        """
        if not self._groups:
            return
        start = self._clock()
        for g in self._groups:
            g.next_due = start
        while True:
            now = self._clock()
            due = [g for g in self._groups if g.next_due <= now]
            if not due:
                await asyncio.sleep(min(g.next_due for g in self._groups) - now)
                continue
            for g in due:
                await self._poll(g)
                g.next_due += g.interval_s
                behind = self._clock() - g.next_due
                if behind > 0:  # skip the slots missed while the device was slow
                    g.next_due += math.ceil(behind / g.interval_s) * g.interval_s

    async def _poll(self, group: _Group[P]) -> None:
        readings = await self._device.read(group.points)
        # stale: the answer came more than a whole interval after the slot it was due for
        stale = self._clock() - group.next_due > group.interval_s
        self.health.polls += 1
        if stale:
            readings = [
                replace(r, quality=Quality.STALE) if r.quality is Quality.GOOD else r
                for r in readings
            ]
        self.health.record_poll(readings, group.interval_s)
        for series_id, r in zip(group.series_ids, readings, strict=True):
            await _put(self._sink, series_id, r)


async def store_reading(
    sink: ReadingSink, health: DeviceHealth, series_id: int, r: Reading
) -> None:
    """Count one reading in the device's health and hand it to the buffer writer.

    A value the buffer refuses (wrong type, too long) is stored as a bad reading
    with the reason, so the slot stays in the record and the device's task lives on.
    """
    health.record(r)
    await _put(sink, series_id, r)


async def _put(sink: ReadingSink, series_id: int, r: Reading) -> None:
    try:
        await sink.put(series_id, r)
    except BufferInputError as exc:
        reason = f"value not storable: {exc}"
        await sink.put(series_id, replace(r, value=None, quality=Quality.BAD, reason=reason))
