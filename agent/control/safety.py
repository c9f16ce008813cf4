"""Safety bounds on writes: the last check before a value reaches a device.

Every write goes through the guard, whatever asked for it (a rule, a command from the
cloud, a technician), so a wrong rule or a compromised cloud can still not drive a pump
past its rated speed or switch a compressor on and off every minute. Bounds are per point.
They come from the gateway's own config (``[[safety]]`` in ``gateway.toml``, set on site)
and from the rule set the cloud pushes (``RuleSet.limits``); where both bound a point, the
stricter bound of each kind holds (``combine``), so nothing from the cloud can lift a
bound set on the gateway. A point without a limit is not bounded.

Pure logic, no clock: the caller passes ``now_ms`` (Unix ms) and calls ``record`` after a
write the device accepted.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from ldt.agent.control.saved import load_saved
from ldt.agent.control.values import as_number, same_value, written_value
from ldt.agent.control.values import threshold_text as _num
from ldt.contract.rules import PointLimit
from ldt.reading import Value

__all__ = [
    "SafetyError",
    "SafetyGuard",
    "bound_breach",
    "combine",
]

_HOUR_MS: Final = 3_600_000


class SafetyError(ValueError):
    """A write refused by a safety limit; the message says which and why."""


@dataclass(slots=True)
class _History:
    last: Value | None = None
    """The value written last (None: nothing written since start or restore)."""
    changes_ms: deque[int] = field(default_factory=deque)
    """When the value changed, oldest first, at most ``max_changes_per_hour`` of them."""


class _SavedPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str
    point: str
    last: bool | int | float | str | None
    changes_ms: list[int]


class _Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1]
    points: list[_SavedPoint]


def combine(local: Sequence[PointLimit], pushed: Sequence[PointLimit]) -> list[PointLimit]:
    """The limits that hold when the gateway's own (``local``) and a rule set's (``pushed``)
    both apply: per point, the higher min, the lower max and the fewer changes per hour."""
    merged: dict[tuple[str, str], PointLimit] = {(x.device, x.point): x for x in local}
    for limit in pushed:
        key = (limit.device, limit.point)
        mine = merged.get(key)
        if mine is None:
            merged[key] = limit
            continue

        def stricter(a: float | int | None, b: float | int | None, pick: Any) -> Any:
            return b if a is None else a if b is None else pick(a, b)

        merged[key] = PointLimit(
            device=limit.device,
            point=limit.point,
            min=stricter(mine.min, limit.min, max),
            max=stricter(mine.max, limit.max, min),
            max_changes_per_hour=stricter(
                mine.max_changes_per_hour, limit.max_changes_per_hour, min
            ),
        )
    return list(merged.values())


def bound_breach(limit: PointLimit, x: float) -> str | None:
    """How ``x`` breaks ``limit``'s min/max ("below its safety min 0"), or None if it does not.

    One wording and one comparison for the guard at write time and for the validation of
    a rule set at install time, so both refuse the same values.
    """
    if limit.min is not None and x < limit.min:
        return f"below its safety min {_num(limit.min)}"
    if limit.max is not None and x > limit.max:
        return f"above its safety max {_num(limit.max)}"
    return None


class SafetyGuard:
    """Checks writes against per-point limits and remembers recent writes for the rate limit.

    Not thread-safe: one owner (the agent's write path) calls it.
    """

    def __init__(self, limits: Sequence[PointLimit]) -> None:
        self._limits = {(limit.device, limit.point): limit for limit in limits}
        self._history: dict[tuple[str, str], _History] = {}

    def limit(self, device: str, point: str) -> PointLimit | None:
        """The limit of a point, None if it has none."""
        return self._limits.get((device, point))

    def check(self, device: str, point: str, value: Value, now_ms: int) -> None:
        """Raise ``SafetyError`` if writing ``value`` now would break the point's limit.

        Bounds: booleans count as 0 and 1; text, NaN and infinity are refused on a point
        with ``min`` or ``max``. Rate: a write that changes the value is refused once
        ``max_changes_per_hour`` changes were recorded in the last 3600 s; writing the
        value written last is not a change and always passes the rate limit.
        """
        limit = self._limits.get((device, point))
        if limit is None:
            return
        where = f"{device}/{point}"
        shown = written_value(value)
        if limit.min is not None or limit.max is not None:
            x = as_number(value)
            if x is None:
                raise SafetyError(
                    f"writing {shown} to {where} refused: the point has safety bounds "
                    "and takes finite numbers only"
                )
            breach = bound_breach(limit, x)
            if breach is not None:
                raise SafetyError(f"writing {shown} to {where} refused: {breach}")
        allowed = limit.max_changes_per_hour
        if allowed is None:
            return
        history = self._history.get((device, point))
        if history is None:
            return
        if history.last is not None and same_value(value, history.last):
            return
        recent = [t for t in history.changes_ms if t > now_ms - _HOUR_MS]
        if len(recent) >= allowed:
            wait_s = math.ceil((recent[len(recent) - allowed] + _HOUR_MS - now_ms) / 1000)
            raise SafetyError(
                f"writing {shown} to {where} refused: it changed {len(recent)} times "
                f"in the last hour, its safety limit is {allowed}; "
                f"the next change is allowed in {wait_s} s"
            )

    def record(self, device: str, point: str, value: Value, now_ms: int) -> None:
        """Note a write the device accepted (call after ``check`` passed and the write did)."""
        limit = self._limits.get((device, point))
        if limit is None:
            return
        history = self._history.setdefault((device, point), self._new_history(limit))
        if history.last is None or not same_value(value, history.last):
            history.changes_ms.append(now_ms)
        history.last = value

    def snapshot(self) -> dict[str, Any]:
        """The recent writes as plain JSON-able data: a restart must not reset the rate limit.

        (Otherwise an agent crashing in a loop could switch a compressor at every start.)
        """
        return {
            "v": 1,
            "points": [
                {"device": d, "point": p, "last": h.last, "changes_ms": list(h.changes_ms)}
                for (d, p), h in self._history.items()
            ],
        }

    def restore(self, snapshot: Any) -> None:
        """Take back a ``snapshot``; points that no longer have a limit are dropped.

        Raises ``ValueError`` if the snapshot is malformed.
        """
        saved = load_saved(_Snapshot, snapshot, "write history")
        for entry in saved.points:
            limit = self._limits.get((entry.device, entry.point))
            if limit is None:
                continue
            history = self._new_history(limit)
            history.last = entry.last
            history.changes_ms.extend(sorted(entry.changes_ms))
            self._history[(entry.device, entry.point)] = history

    @staticmethod
    def _new_history(limit: PointLimit) -> _History:
        # Only the last ``max_changes_per_hour`` changes can refuse a write: keep no more.
        return _History(changes_ms=deque(maxlen=limit.max_changes_per_hour or 1))
