"""The parts of an MQTT profile the simulator needs, read straight from the TOML.

Deliberately independent of ``ldt.drivers.mqtt`` (import-linter forbids it):
a driver test against this simulator must not pass because both sides share
one misreading of a profile or of a JSON selector. Only what publishing and
answering commands needs is parsed; the agent stays the place where profiles
are fully validated.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldt.simulators.mqtt.errors import SimulatorError

__all__ = [
    "PROFILE_DIR",
    "Path_",
    "SimPoint",
    "SimProfile",
    "json_path",
    "load_sim_profile",
    "resolve_profile",
]

PROFILE_DIR = Path(__file__).resolve().parents[2] / "firmware_configs"
"""The profiles shipped with ldt (``firmware_configs/`` beside the packages)."""

Path_ = tuple[str | int, ...]
"""Where a value sits in a JSON document: keys and indexes from the root."""

_STEP = re.compile(
    r"""\.(?P<key>[A-Za-z_][A-Za-z0-9_:\-]*)|\[(?P<index>\d+)\]|\[(?:'(?P<sq>[^'\\]*)'|"(?P<dq>[^"\\]*)")\]"""
)
_KINDS = ("float", "int", "bool", "string")


def json_path(text: str) -> Path_:
    """``$.a[0]['b c']`` -> ``("a", 0, "b c")``; raises ``ValueError``."""
    if not text.startswith("$"):
        raise ValueError(f"{text!r} does not start with '$'")
    out: list[str | int] = []
    pos = 1
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise ValueError(f"{text!r}: cannot read position {pos}")
        if m.group("key") is not None:
            out.append(m.group("key"))
        elif m.group("index") is not None:
            out.append(int(m.group("index")))
        else:
            out.append(m.group("sq") if m.group("sq") is not None else m.group("dq"))
        pos = m.end()
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SimPoint:
    """One published value."""

    name: str
    path: Path_ | None
    """JSON profiles: where the value goes."""
    ul_key: str | None
    kind: str
    scale: float
    offset: float
    writable: bool
    command: str | None
    """UL profiles: the command that sets this point."""
    command_payload: dict[str, Any] | None
    """JSON profiles: the command template that sets this point."""


@dataclass(frozen=True, slots=True)
class SimProfile:
    """A profile reduced to what the simulator publishes and answers."""

    name: str
    path: Path
    format: str
    topic: str
    command_topic: str | None
    ack_topic: str | None
    timestamp: str
    qos: int
    correlation_path: Path_ | None
    error_path: Path_ | None
    ul_error_prefix: str
    points: tuple[SimPoint, ...]

    def point(self, name: str) -> SimPoint:
        """The point called ``name``; raises ``SimulatorError``."""
        for p in self.points:
            if p.name == name:
                return p
        raise SimulatorError(f"profile {self.name} has no point {name!r}")


def resolve_profile(name_or_path: str) -> Path:
    """``shelly-plus-1pm`` -> ``firmware_configs/shelly-plus-1pm.toml``; paths pass through."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path or candidate.is_file():
        if not candidate.is_file():
            raise SimulatorError(f"profile file {name_or_path} does not exist")
        return candidate
    shipped = PROFILE_DIR / f"{name_or_path}.toml"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))) or "none"
    raise SimulatorError(f"no profile named {name_or_path!r} (shipped profiles: {known})")


def _fail(path: Path, where: str, what: str) -> SimulatorError:
    return SimulatorError(f"{path}: {where}: {what}")


def _opt_path(path: Path, where: str, text: Any) -> Path_ | None:
    if text is None:
        return None
    try:
        return json_path(str(text))
    except ValueError as exc:
        raise _fail(path, where, str(exc)) from None


def _point(path: Path, i: int, raw: Any, fmt: str) -> SimPoint:
    where = f"points[{i}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise _fail(path, where, "must be a table with a 'name'")
    kind = raw.get("type", "float")
    if kind not in _KINDS:
        raise _fail(path, f"{where}.type", f"must be one of {', '.join(_KINDS)}")
    selector, ul_key = raw.get("selector"), raw.get("ul_key")
    if fmt == "json" and not isinstance(selector, str):
        raise _fail(path, f"{where}.selector", "a JSON profile's points need a selector")
    if fmt == "ul" and not isinstance(ul_key, str):
        raise _fail(path, f"{where}.ul_key", "an UltraLight profile's points need ul_key")
    scale, offset = raw.get("scale", 1.0), raw.get("offset", 0.0)
    if not isinstance(scale, (int, float)) or not isinstance(offset, (int, float)) or scale == 0:
        raise _fail(path, f"{where}.scale", "scale and offset must be numbers, scale non-zero")
    payload = raw.get("command_payload")
    if payload is not None and not isinstance(payload, dict):
        raise _fail(path, f"{where}.command_payload", "must be a table")
    writable = raw.get("writable", False) is True
    return SimPoint(
        name=raw["name"],
        path=_opt_path(path, f"{where}.selector", selector) if fmt == "json" else None,
        ul_key=ul_key if fmt == "ul" else None,
        kind=kind,
        scale=float(scale),
        offset=float(offset),
        writable=writable,
        command=(raw.get("command") or ul_key) if (fmt == "ul" and writable) else None,
        command_payload=payload,
    )


def load_sim_profile(path: Path) -> SimProfile:
    """Read an MQTT profile; raises ``SimulatorError`` with a one-line reason."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SimulatorError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SimulatorError(f"profile {path} is not valid TOML: {exc}") from None
    info = data.get("profile")
    if not isinstance(info, dict):
        raise _fail(path, "profile", "missing [profile] table")
    name = info.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(path, "profile.name", "missing")
    if info.get("protocol") != "mqtt":
        raise _fail(path, "profile.protocol", "is not 'mqtt'")
    mqtt = data.get("mqtt", {})
    if not isinstance(mqtt, dict):
        raise _fail(path, "mqtt", "must be a table")
    fmt = mqtt.get("format", "json")
    if fmt not in ("json", "ul"):
        raise _fail(path, "mqtt.format", "must be 'json' or 'ul'")
    timestamp = str(mqtt.get("timestamp", "arrival"))
    if timestamp.startswith("$"):
        _opt_path(path, "mqtt.timestamp", timestamp)
    raw_points = data.get("points")
    if not isinstance(raw_points, list) or not raw_points:
        raise _fail(path, "points", "at least one [[points]] entry is needed")
    points = tuple(_point(path, i, raw, fmt) for i, raw in enumerate(raw_points))
    return SimProfile(
        name=name,
        path=path,
        format=fmt,
        topic=str(mqtt.get("topic", "ldt/{device_id}/telemetry")),
        command_topic=mqtt.get("command_topic"),
        ack_topic=mqtt.get("command_ack_topic"),
        timestamp=timestamp,
        qos=int(mqtt.get("qos", 1)),
        correlation_path=_opt_path(
            path, "mqtt.correlation_selector", mqtt.get("correlation_selector")
        ),
        error_path=_opt_path(path, "mqtt.error_selector", mqtt.get("error_selector")),
        ul_error_prefix=str(mqtt.get("ul_error_prefix", "ERROR")),
        points=points,
    )
