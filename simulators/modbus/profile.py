"""The parts of a device profile the simulator needs, read straight from the TOML.

The simulator deliberately does not use ``ldt.agent.config`` or the driver's
schema (import-linter forbids it): a test that runs the driver against the
simulator must not pass because both sides share one misreading of a profile.
Only what serving registers needs is parsed (table, address, type, length,
byte/word order, scale, offset, name, writable); everything else is ignored,
so the agent stays the place where profiles are fully validated.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ldt.simulators.modbus.errors import SimulatorError

__all__ = [
    "PROFILE_DIR",
    "SimPoint",
    "SimProfile",
    "Table",
    "load_sim_profile",
    "resolve_profile",
]

PROFILE_DIR = Path(__file__).resolve().parents[2] / "firmware_configs"
"""The profiles shipped with ldt (``firmware_configs/`` beside the packages)."""

Table = Literal["holding", "input", "coil", "discrete"]
_TABLES: tuple[Table, ...] = ("holding", "input", "coil", "discrete")
_WIDTH = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
    "bool": 1,
}
_ORDERS = ("big", "little")


@dataclass(frozen=True, slots=True)
class SimPoint:
    """One point of the profile, as the simulator serves it."""

    name: str
    table: Table
    address: int
    type: str
    registers: int
    """Registers (or bits, in the bit tables) the point spans."""
    byte_order: str
    word_order: str
    scale: float
    offset: float
    writable: bool

    @property
    def is_bit(self) -> bool:
        """True for points in the coil and discrete-input tables."""
        return self.table in ("coil", "discrete")

    @property
    def span(self) -> range:
        """The addresses this point occupies."""
        return range(self.address, self.address + self.registers)


@dataclass(frozen=True, slots=True)
class SimProfile:
    """A profile reduced to its register map."""

    name: str
    path: Path
    points: tuple[SimPoint, ...]
    max_gap: int
    """Unmapped registers between two points that a block read may span (served as 0)."""

    def point(self, name: str) -> SimPoint:
        """The point called ``name``; raises ``SimulatorError``."""
        for p in self.points:
            if p.name == name:
                return p
        raise SimulatorError(f"profile {self.name} has no point {name!r}")


def resolve_profile(name_or_path: str) -> Path:
    """Turn ``eastron-sdm120`` into ``firmware_configs/eastron-sdm120.toml``; paths pass through.

    Raises ``SimulatorError`` naming the shipped profiles when nothing matches.
    """
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


def _get(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = raw.get(key, default)
    # bool is an int in Python; a profile's `address = true` is still a mistake.
    if isinstance(value, bool) and kind is not bool:
        raise TypeError(key)
    if not isinstance(value, kind):
        raise TypeError(key)
    return value


def _parse_point(path: Path, i: int, raw: Any, defaults: dict[str, str]) -> SimPoint:
    where = f"points[{i}]"
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a table")
    try:
        name = _get(raw, "name", str, None)
        table = _get(raw, "table", str, None)
        address = _get(raw, "address", int, None)
        kind = _get(raw, "type", str, "uint16")
        length = _get(raw, "length", (int, type(None)), None)
        byte_order = _get(raw, "byte_order", str, defaults["byte_order"])
        word_order = _get(raw, "word_order", str, defaults["word_order"])
        scale = float(_get(raw, "scale", (int, float), 1.0))
        offset = float(_get(raw, "offset", (int, float), 0.0))
        writable = _get(raw, "writable", bool, False)
    except TypeError as exc:
        raise _fail(path, f"{where}.{exc.args[0]}", "missing or of the wrong type") from None
    if table not in _TABLES:
        raise _fail(path, f"{where}.table", f"must be one of {', '.join(_TABLES)}")
    if not 0 <= address <= 65535:
        raise _fail(path, f"{where}.address", "must be 0..65535")
    if kind == "string":
        if length is None or not 1 <= length <= 125:
            raise _fail(path, f"{where}.length", "a string needs length 1..125 (registers)")
        registers = length
    elif kind in _WIDTH:
        registers = _WIDTH[kind]
    else:
        raise _fail(path, f"{where}.type", f"unknown type {kind!r}")
    if table in ("coil", "discrete") and kind != "bool":
        raise _fail(path, f"{where}.type", f"a {table} point must be 'bool'")
    if byte_order not in _ORDERS or word_order not in _ORDERS:
        raise _fail(path, where, "byte_order and word_order must be 'big' or 'little'")
    if scale == 0 or not math.isfinite(scale) or not math.isfinite(offset):
        raise _fail(path, f"{where}.scale", "scale must be finite and non-zero")
    if address + registers > 65536:
        raise _fail(path, f"{where}.address", "runs past the end of the address space")
    return SimPoint(
        name=name,
        table=table,
        address=address,
        type=kind,
        registers=registers,
        byte_order=byte_order,
        word_order=word_order,
        scale=scale,
        offset=offset,
        writable=writable and table in ("holding", "coil"),
    )


def load_sim_profile(path: Path) -> SimProfile:
    """Read a profile's register map; raises ``SimulatorError`` with a one-line reason."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SimulatorError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SimulatorError(f"profile {path} is not valid TOML: {exc}") from None
    info = data.get("profile")
    name = info.get("name") if isinstance(info, dict) else None
    if not isinstance(name, str) or not name:
        raise _fail(path, "profile.name", "missing")
    modbus = data.get("modbus", {})
    if not isinstance(modbus, dict):
        raise _fail(path, "modbus", "must be a table")
    defaults = {
        "byte_order": str(modbus.get("byte_order", "big")),
        "word_order": str(modbus.get("word_order", "big")),
    }
    max_gap = modbus.get("max_gap", 8)
    if isinstance(max_gap, bool) or not isinstance(max_gap, int) or not 0 <= max_gap <= 124:
        raise _fail(path, "modbus.max_gap", "must be an integer 0..124")
    raw_points = data.get("points")
    if not isinstance(raw_points, list) or not raw_points:
        raise _fail(path, "points", "at least one [[points]] entry is needed")
    points = tuple(_parse_point(path, i, raw, defaults) for i, raw in enumerate(raw_points))
    seen: set[str] = set()
    used: dict[tuple[str, int], str] = {}
    for p in points:
        if p.name in seen:
            raise _fail(path, "points", f"point name {p.name!r} is repeated")
        seen.add(p.name)
        for addr in p.span:
            other = used.setdefault((p.table, addr), p.name)
            if other != p.name:
                raise _fail(path, "points", f"{p.name} overlaps {other} at {p.table} {addr}")
    return SimProfile(name=name, path=path, points=points, max_gap=max_gap)
