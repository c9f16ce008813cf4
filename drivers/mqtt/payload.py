"""Pure MQTT payload codecs: JSON selectors, FIWARE UltraLight 2.0, value conversion.

No I/O and no configuration models here, so every function can be tested
exhaustively (hypothesis) and fed a corpus of malformed payloads. Every failure
is a ``PayloadError`` whose message is the reason a bad reading carries.

JSON selectors are a small, safe subset of JSONPath: ``$`` followed by
``.key`` (letters, digits, ``_``, ``-``, ``:``), ``[index]`` (a non-negative
integer) and ``['quoted key']`` / ``["quoted key"]`` (any characters but the
quote and backslash). Wildcards, recursive descent, slices and filters are
rejected: a point names exactly one value.

UltraLight 2.0 (FIWARE IoT Agent UL user manual, "Measure Payload Syntax" and
"Commands Syntax"): measures are ``key|value`` pairs joined by ``|``
(``t|21.5|h|40``); several measure groups are joined by ``#``; a group may
start with an ISO-8601 timestamp (``2016-06-13T00:35:30Z|lle|100``). Values
are untyped strings. Commands are ``<device>@<command>|<value>`` and their
results ``<device>@<command>|<result>``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ldt.reading import Structured, Value

__all__ = [
    "PayloadError",
    "Selector",
    "UlCommand",
    "UlGroup",
    "ValueKind",
    "convert",
    "decode_json",
    "format_selector",
    "format_ul_command",
    "parse_json",
    "parse_selector",
    "parse_timestamp_ms",
    "parse_ul",
    "parse_ul_command",
    "parse_ul_groups",
    "select",
    "unconvert",
]

ValueKind = Literal["float", "int", "bool", "string", "datetime", "json"]
Selector = tuple[str | int, ...]
"""A parsed JSON selector: object keys (str) and array indexes (int), root first."""

_MAX_PAYLOAD = 256 * 1024  # a telemetry message larger than this is a misbehaving device
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_:\-]*")
_INDEX = re.compile(r"\[(0|[1-9][0-9]{0,8})\]")
_QUOTED = re.compile(r"""\[(?:'([^'\\]*)'|"([^"\\]*)")\]""")
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})
_UL_FORBIDDEN = re.compile(r"[|#@\r\n]")


class PayloadError(ValueError):
    """A payload (or a selector) cannot be decoded; the message says why."""


# ------------------------------------------------------------------ selectors


def parse_selector(text: str) -> Selector:
    """Parse ``$.a.b[0]['c d']`` into ``("a", "b", 0, "c d")``; raises ``PayloadError``.

    ``$`` alone selects the whole document (for a payload that is a bare value).
    """
    if not text.startswith("$"):
        raise PayloadError(f"selector {text!r} must start with '$' (e.g. '$.ENERGY.Power')")
    parts: list[str | int] = []
    pos = 1
    while pos < len(text):
        if text.startswith("..", pos):
            raise PayloadError(f"selector {text!r}: recursive descent '..' is not supported")
        if text[pos] == ".":
            m = _KEY.match(text, pos + 1)
            if m is None:
                raise PayloadError(
                    f"selector {text!r}: expected a key after '.' at position {pos + 1}; "
                    "quote other keys as ['key']"
                )
            parts.append(m.group())
            pos = m.end()
            continue
        if text[pos] == "[":
            m = _INDEX.match(text, pos)
            if m is not None:
                parts.append(int(m.group(1)))
                pos = m.end()
                continue
            q = _QUOTED.match(text, pos)
            if q is not None:
                parts.append(q.group(1) if q.group(1) is not None else q.group(2))
                pos = q.end()
                continue
            raise PayloadError(
                f"selector {text!r}: unsupported bracket at position {pos}; only [N] "
                "(non-negative index) and ['key'] are allowed (no wildcards, slices or filters)"
            )
        raise PayloadError(f"selector {text!r}: unexpected {text[pos]!r} at position {pos}")
    return tuple(parts)


def format_selector(selector: Selector) -> str:
    """The canonical text of a parsed selector (``parse_selector`` reads it back)."""
    out = ["$"]
    for part in selector:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _KEY.fullmatch(part):
            out.append(f".{part}")
        elif "'" not in part:
            out.append(f"['{part}']")
        else:
            out.append(f'["{part}"]')
    return "".join(out)


def select(document: Any, selector: Selector) -> Any:
    """The value at ``selector`` in a decoded JSON document; raises ``PayloadError`` if absent."""
    node = document
    for depth, part in enumerate(selector):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                where = format_selector(selector[:depth]) or "$"
                raise PayloadError(f"no element [{part}] at {where}")
            node = node[part]
        else:
            if not isinstance(node, dict) or part not in node:
                raise PayloadError(f"no value at {format_selector(selector[: depth + 1])}")
            node = node[part]
    return node


# ----------------------------------------------------------------------- JSON


def decode_json(payload: bytes) -> Any:
    """Decode a JSON payload (UTF-8); raises ``PayloadError``."""
    if len(payload) > _MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {_MAX_PAYLOAD}")
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise PayloadError("malformed JSON: nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"malformed JSON: {name} is not valid JSON")


def parse_json(payload: bytes, selectors: Mapping[str, Selector]) -> dict[str, Any]:
    """The raw value at each point's selector, by point name; absent points are left out.

    Raises ``PayloadError`` only when the payload as a whole does not decode.
    """
    document = decode_json(payload)
    out: dict[str, Any] = {}
    for name, selector in selectors.items():
        try:
            out[name] = select(document, selector)
        except PayloadError:
            continue
    return out


# ------------------------------------------------------------------ conversion


def convert(
    raw: Any, kind: ValueKind, scale: float = 1.0, offset: float = 0.0
) -> Value | Structured:
    """A raw JSON value or UL string as the point's type, then ``raw * scale + offset``.

    Raises ``PayloadError`` when it does not fit (a string that is not a number,
    a JSON object, NaN, ...). ``bool`` accepts true/false, 1/0, on/off, yes/no.
    ``datetime`` takes what ``parse_timestamp_ms`` takes; ``json`` an object or array.
    """
    if kind == "datetime":
        ms = parse_timestamp_ms(raw)
        return Structured.instant(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))
    if kind == "json":
        if not isinstance(raw, dict | list):
            raise PayloadError(f"expected an object or an array, got {_kind_of(raw)}")
        try:
            return Structured.of_json(raw)
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
    if kind == "string":
        if isinstance(raw, (dict, list)) or raw is None:
            raise PayloadError(f"expected a text value, got {_kind_of(raw)}")
        return raw if isinstance(raw, str) else json.dumps(raw)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str):
            word = raw.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        raise PayloadError(f"expected a boolean, got {_show(raw)}")
    number = _number(raw)
    value = number * scale + offset if (scale != 1.0 or offset != 0.0) else number
    if kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise PayloadError(f"expected an integer, got {_show(raw)}")
            return int(value)
        return value
    return float(value)


def unconvert(value: Value, kind: ValueKind, scale: float = 1.0, offset: float = 0.0) -> Value:
    """The raw value to send for an engineering ``value`` (inverse of ``convert``).

    Raises ``PayloadError`` when the value does not fit the type.
    """
    if kind in ("datetime", "json"):
        raise PayloadError(f"points of type {kind} cannot be written")
    if kind == "string":
        if not isinstance(value, str):
            raise PayloadError(f"expected a text value, got {_show(value)}")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise PayloadError(f"expected a boolean, got {_show(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(f"expected a number, got {_show(value)}")
    if not math.isfinite(value):
        raise PayloadError(f"expected a finite number, got {value}")
    raw = (value - offset) / scale if (scale != 1.0 or offset != 0.0) else value
    if kind == "int":
        rounded = round(raw)
        if abs(raw - rounded) > 1e-9 * max(1.0, abs(raw)):
            raise PayloadError(f"{value} is not a whole number of raw units")
        return rounded
    return float(raw)


def _number(raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise PayloadError(f"expected a number, got {_show(raw)}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise PayloadError(f"expected a finite number, got {raw}")
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            number: int | float = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise PayloadError(f"expected a number, got {_show(raw)}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise PayloadError(f"expected a finite number, got {_show(raw)}")
        return number
    raise PayloadError(f"expected a number, got {_kind_of(raw)}")


def _kind_of(raw: Any) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, dict):
        return "an object"
    if isinstance(raw, list):
        return "an array"
    return _show(raw)


def _show(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------ timestamps


def parse_timestamp_ms(raw: Any) -> int:
    """Unix milliseconds from an ISO-8601 string or an epoch number; raises ``PayloadError``.

    Epoch numbers above 10**11 are taken as milliseconds, others as seconds
    (10**11 s is the year 5138; 10**11 ms is 1973). An ISO-8601 time without a
    UTC offset is taken as UTC.
    """
    if isinstance(raw, bool):
        raise PayloadError(f"timestamp {_show(raw)} is neither ISO-8601 nor an epoch number")
    if isinstance(raw, (int, float)):
        if not math.isfinite(raw) or raw < 0:
            raise PayloadError(f"timestamp {raw} is not a valid epoch time")
        ms = raw if raw > 1e11 else raw * 1000
        if ms > 253402300799999:  # 9999-12-31T23:59:59.999Z
            raise PayloadError(f"timestamp {raw} is out of range")
        return int(ms)
    if isinstance(raw, str):
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise PayloadError(f"timestamp {_show(raw)} is not ISO-8601") from None
        if len(text) < 10 or ("T" not in text.upper() and " " not in text):
            raise PayloadError(f"timestamp {_show(raw)} has no time of day")
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        try:
            ms = int(when.timestamp() * 1000)
        except (OverflowError, ValueError):
            raise PayloadError(f"timestamp {_show(raw)} is out of range") from None
        if not 0 <= ms <= 253402300799999:  # 1970 (a reading's time is Unix ms) .. 9999
            raise PayloadError(f"timestamp {_show(raw)} is out of range (before 1970?)")
        return ms
    raise PayloadError(f"timestamp {_kind_of(raw)} is neither ISO-8601 nor an epoch number")


# --------------------------------------------------------------- UltraLight 2.0


@dataclass(frozen=True, slots=True)
class UlGroup:
    """One UltraLight measure group: its optional timestamp and its measures in order."""

    timestamp: str | None
    measures: dict[str, str] = field(default_factory=dict)


def _ul_text(payload: bytes) -> str:
    if len(payload) > _MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {_MAX_PAYLOAD}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return text.strip()


def _is_timestamp(text: str) -> bool:
    try:
        parse_timestamp_ms(text)
    except PayloadError:
        return False
    return True


def parse_ul_groups(payload: bytes) -> list[UlGroup]:
    """Parse an UltraLight 2.0 measure payload into its groups; raises ``PayloadError``.

    A group with an odd number of fields must start with an ISO-8601 timestamp.
    Keys must be non-empty; values may be empty (a device's way of saying "no
    value", which ``convert`` then rejects for numeric points). A key repeated in
    one group keeps its last value.
    """
    text = _ul_text(payload)
    if not text:
        raise PayloadError("empty UltraLight payload")
    groups: list[UlGroup] = []
    for number, chunk in enumerate(text.split("#"), start=1):
        fields = chunk.split("|")
        timestamp: str | None = None
        if len(fields) % 2 == 1:
            if len(fields) > 1 and _is_timestamp(fields[0]):
                timestamp = fields[0].strip()
                fields = fields[1:]
            else:
                raise PayloadError(
                    f"UltraLight group {number} {_show(chunk)} has an odd number of fields "
                    "and does not start with an ISO-8601 timestamp"
                )
        measures: dict[str, str] = {}
        for i in range(0, len(fields), 2):
            key = fields[i].strip()
            if not key:
                raise PayloadError(f"UltraLight group {number} has an empty attribute name")
            if "@" in key:
                raise PayloadError(
                    f"UltraLight group {number}: {_show(key)} looks like a command, not a measure"
                )
            measures[key] = fields[i + 1]
        groups.append(UlGroup(timestamp=timestamp, measures=measures))
    return groups


def parse_ul(payload: bytes) -> dict[str, str]:
    """All measures of an UltraLight payload, later groups overriding earlier ones."""
    out: dict[str, str] = {}
    for group in parse_ul_groups(payload):
        out.update(group.measures)
    return out


@dataclass(frozen=True, slots=True)
class UlCommand:
    """An UltraLight command (``device@command|value``) or its result (``...|result``)."""

    device_id: str
    command: str
    value: str


def _check_ul_name(label: str, name: str) -> None:
    if not name or _UL_FORBIDDEN.search(name):
        raise PayloadError(
            f"UltraLight {label} {name!r} must be non-empty without | # @ or newlines"
        )


def format_ul_command(device_id: str, command: str, value: object) -> bytes:
    """``device@command|value`` as UTF-8; booleans travel as ``true``/``false``.

    The value may contain ``|`` (the spec's ``param1=1|param2=2``) but not
    ``#`` or newlines, which would split the message. Raises ``PayloadError``.
    """
    _check_ul_name("device id", device_id)
    _check_ul_name("command", command)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = repr(value)
    else:
        text = str(value)
    if re.search(r"[#\r\n]", text):
        raise PayloadError(f"UltraLight command value {_show(text)} must not contain # or newlines")
    return f"{device_id}@{command}|{text}".encode()


def parse_ul_command(payload: bytes) -> UlCommand:
    """Parse ``device@command|value`` (a command or its result); raises ``PayloadError``."""
    text = _ul_text(payload)
    head, sep, value = text.partition("|")
    device_id, at, command = head.partition("@")
    if not sep or not at or not device_id or not command or "@" in command:
        raise PayloadError(f"{_show(text)} is not an UltraLight command (device@command|value)")
    return UlCommand(device_id=device_id, command=command, value=value)
