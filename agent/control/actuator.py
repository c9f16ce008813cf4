"""Writing a device point on behalf of a rule or a command, inside the safety bounds.

Every write goes through here, whoever asked: the point must exist and be writable, the
value must pass the rule set's safety bounds for that point (``SafetyGuard``: min/max and
changes per hour, counted over rules and commands together), then the driver writes it
(``Device.write``, which raises ``DriverError`` with a sentence). A dry run checks
everything but the write. The outcome, success or refusal, is an audit line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ldt.agent.control.audit import AuditLog
from ldt.agent.control.safety import SafetyError, SafetyGuard
from ldt.agent.control.validation import PointInfo
from ldt.drivers.errors import DeviceUnreachableError, DriverError
from ldt.reading import Value

__all__ = [
    "WRITE_TIMEOUT_S",
    "ActuationError",
    "Actuator",
    "DeviceDownError",
    "WritablePoint",
    "point_info",
]

_log = logging.getLogger("ldt.agent.actuator")

WRITE_TIMEOUT_S: Final = 10.0
_TEXT_TYPES: Final = ("str", "text", "bool")


class ActuationError(Exception):
    """A write refused or failed; the message is the reason (reported, audited)."""


class DeviceDownError(ActuationError):
    """The device could not be reached (or did not answer in time): nothing refused the
    write, and a command may try it again when the device is back."""


@dataclass(frozen=True, slots=True)
class WritablePoint:
    """A device point as the actuator sees it."""

    driver: Any
    point: Any


def point_info(point: Any) -> PointInfo:
    """What validation needs of a profile point (any protocol's config).

    Numeric unless the point's declared type says text or boolean (``type``/``data_type``
    of the protocol's point config): comparisons ``above``/``below`` need numbers.
    """
    declared = " ".join(
        str(getattr(point, attr, "") or "").lower() for attr in ("type", "data_type", "datatype")
    )
    numeric = not any(word in declared for word in _TEXT_TYPES)
    return PointInfo(writable=bool(getattr(point, "writable", False)), numeric=numeric)


class Actuator:
    """Writes points of the gateway's devices: ``{(device, point): WritablePoint}``."""

    def __init__(
        self,
        points: Mapping[tuple[str, str], WritablePoint],
        audit: AuditLog,
        guard: SafetyGuard | None = None,
    ) -> None:
        self.points = dict(points)
        self.audit = audit
        self.guard = guard or SafetyGuard([])

    def infos(self) -> dict[tuple[str, str], PointInfo]:
        """Every point's ``PointInfo``, for validating a rule set."""
        return {key: point_info(p.point) for key, p in self.points.items()}

    async def write(
        self,
        device: str,
        point: str,
        value: Value,
        *,
        origin: str,
        dry_run: bool = False,
        retry: bool = False,
    ) -> str:
        """Write (or, ``dry_run``, only check); the outcome as a sentence.

        ``origin`` names who asked ("rule pump-on", "command urn:..."). Raises
        ``ActuationError`` with the reason (``DeviceDownError`` when the device could not
        be reached); both outcomes are audited, except that a ``retry`` of a write whose
        device was down is audited only when it succeeds or is refused.
        """
        subject = f"{device}/{point}"
        detail: dict[str, Any] = {"value": value, "origin": origin, "dry_run": dry_run}
        try:
            info = await self._write(device, point, value, dry_run=dry_run)
        except ActuationError as exc:
            if retry and isinstance(exc, DeviceDownError):
                raise  # said when the first attempt failed
            detail["error"] = str(exc)
            await self.audit.record("write.refused", subject, detail)
            _log.warning("write refused", extra={"point": subject, "reason": str(exc)})
            raise
        detail["result"] = info
        await self.audit.record("write.dry_run" if dry_run else "write.ok", subject, detail)
        return info

    async def _write(self, device: str, point: str, value: Value, *, dry_run: bool) -> str:
        target = self.points.get((device, point))
        if target is None:
            raise ActuationError(f"no point {point} on a device {device} of this gateway")
        if not getattr(target.point, "writable", False):
            raise ActuationError(f"{device}/{point} is not writable")
        now_ms = int(time.time() * 1000)
        try:
            self.guard.check(device, point, value, now_ms)
        except SafetyError as exc:
            raise ActuationError(f"outside the safety bounds: {exc}") from None
        if dry_run:
            return f"dry run: would write {value!r} to {device}/{point}"
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                wire = await target.driver.write(target.point, value)
        except DeviceUnreachableError as exc:
            raise DeviceDownError(str(exc)) from None
        except DriverError as exc:
            raise ActuationError(str(exc)) from None
        except TimeoutError:
            raise DeviceDownError(
                f"{device} did not answer the write within {WRITE_TIMEOUT_S:g} s"
            ) from None
        self.guard.record(device, point, value, now_ms)
        return f"wrote {value!r} to {device}/{point}" + (f" ({wire})" if wire else "")
