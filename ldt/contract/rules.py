"""Actuation rule sets: what a cloud admin authors and a gateway evaluates on every reading.

A rule set travels as a signed artifact of kind ``rules`` (see ``ldt.contract.artifacts``);
its content is the canonical JSON of ``dump_ruleset``. Admins write TOML or JSON::

    name = "pumping-station"
    timezone = "Europe/Madrid"

    [[limits]]
    device = "pump-1"
    point = "speed"
    min = 0
    max = 100
    max_changes_per_hour = 6

    [[rules]]
    id = "pump-on"
    when = { device = "tank-1", point = "level", above = 80, hysteresis = 5, for_s = 30 }
    then = { device = "pump-1", point = "speed", value = 75 }
    otherwise = { device = "pump-1", point = "speed", value = 0 }
    alert = { severity = "high", description = "Tank 1 is nearly full" }

The gateway evaluates rules offline too, so everything a rule needs is in the rule set:
thresholds, hysteresis, durations, time windows in the set's own time zone. Whether the
named devices and points exist on a gateway is checked there (``ldt.agent.control.validation``),
not here: this module knows only the shape.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    PlainValidator,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ldt.error_location import error_location

__all__ = [
    "MAX_RULES",
    "MAX_RULESET_BYTES",
    "Action",
    "AlertSpec",
    "Condition",
    "PointLimit",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleValue",
    "dump_ruleset",
    "parse_ruleset",
]

MAX_RULES: Final = 200
"""More rules than this is refused: every reading is matched against them on a Pi."""
MAX_RULESET_BYTES: Final = 256 << 10
_MAX_TEXT_VALUE: Final = 256
_MAX_FOR_S: Final = 7 * 86_400

_SLUG_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_POINT_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_HHMM_PATTERN: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_Slug = Annotated[str, StringConstraints(pattern=_SLUG_PATTERN)]
_Point = Annotated[str, StringConstraints(pattern=_POINT_PATTERN)]
"""A point name as device profiles spell it (it becomes an NGSI-LD attribute name)."""
_HHMM = Annotated[str, StringConstraints(pattern=_HHMM_PATTERN)]
_Text = Annotated[str, StringConstraints(max_length=500)]


class RuleError(ValueError):
    """A rule set refused; the message is one sentence saying what to fix and where."""


def _scalar(value: Any) -> bool | int | float | str:
    """Accept a boolean, a finite number or a short text, with one message for anything else.

    A plain union would report one error per member ("should be a valid boolean", "... a
    valid integer", ...), which reads as four problems where there is one.
    """
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("give a finite number")
        return value
    if isinstance(value, str):
        if len(value) > _MAX_TEXT_VALUE:
            raise ValueError(f"give a text of at most {_MAX_TEXT_VALUE} characters")
        return value
    raise ValueError("give a boolean, a number or a text")


RuleValue = Annotated[bool | int | float | str, PlainValidator(_scalar)]
"""A value a condition compares with or an action writes (``ldt.reading.Value``)."""


class PointLimit(BaseModel):
    """Safety bounds of one writable point, enforced on every write whatever asked for it.

    ``min``/``max`` bound the value (booleans count as 0 and 1); ``max_changes_per_hour``
    protects equipment that wears with switching (a compressor, a contactor): a write of
    the value already written does not count.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: _Slug
    point: _Point
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    max_changes_per_hour: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _meaningful(self) -> PointLimit:
        if self.min is None and self.max is None and self.max_changes_per_hour is None:
            raise ValueError("give min, max or max_changes_per_hour (a limit that bounds nothing)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class Condition(BaseModel):
    """When a rule holds: one point compared with one threshold or value.

    With ``above = 100, hysteresis = 5`` the condition starts holding when the value goes
    above 100 and stops holding only when it falls below 95, so a value hovering around
    100 does not switch a pump on and off (``below`` mirrors this). ``for_s`` asks the
    condition to hold that long without interruption before the rule fires. ``between``
    is a window of local times in the rule set's time zone, ``[start, end)``; it may cross
    midnight (``["18:00", "06:00"]``); outside it the rule does not fire.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: _Slug
    point: _Point
    above: FiniteFloat | None = None
    below: FiniteFloat | None = None
    equals: RuleValue | None = None
    hysteresis: Annotated[FiniteFloat, Field(ge=0)] = 0.0
    for_s: Annotated[FiniteFloat, Field(ge=0, le=_MAX_FOR_S)] = 0.0
    between: tuple[_HHMM, _HHMM] | None = None

    @model_validator(mode="after")
    def _one_comparison(self) -> Condition:
        given = [k for k in ("above", "below", "equals") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of above, below, equals")
        if self.equals is not None and self.hysteresis > 0:
            raise ValueError("hysteresis applies to above and below, not to equals")
        if self.between is not None and self.between[0] == self.between[1]:
            raise ValueError(
                f"between starts and ends at {self.between[0]}: give two different times "
                "(leave between out for all day)"
            )
        return self


class Action(BaseModel):
    """Write ``value`` to one point of one device (through its driver, past the safety guard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: _Slug
    point: _Point
    value: RuleValue


class AlertSpec(BaseModel):
    """The alert a rule raises when it fires, a FIWARE Smart Data Models ``Alert``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Literal["informational", "low", "medium", "high", "critical"] = "medium"
    category: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "environment"
    sub_category: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    description: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class Rule(BaseModel):
    """One rule: when ``when`` holds, write ``then`` and/or raise ``alert``.

    ``otherwise`` is written when the condition stops holding after the rule fired (the
    pump goes back off). ``dry_run`` rules go through every state and are logged and
    alerted, but write nothing: how a new rule is tried on a live site.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Slug
    description: _Text = ""
    enabled: bool = True
    dry_run: bool = False
    when: Condition
    then: Action | None = None
    otherwise: Action | None = None
    alert: AlertSpec | None = None

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        if self.then is None and self.alert is None:
            raise ValueError("give then, alert or both: a rule must do something when it fires")
        return self


class RuleSet(BaseModel):
    """A named set of rules and the safety limits of the points they write."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Slug
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    """IANA time zone of the ``between`` windows (``Europe/Madrid``), daylight saving included."""
    limits: list[PointLimit] = Field(default_factory=list)
    rules: Annotated[list[Rule], Field(max_length=MAX_RULES)]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError):
            raise ValueError(
                f"unknown time zone {value!r}: give an IANA name such as 'Europe/Madrid' or 'UTC'"
            ) from None
        return value

    @field_validator("limits")
    @classmethod
    def _one_limit_per_point(cls, value: list[PointLimit]) -> list[PointLimit]:
        keys = [f"{limit.device}/{limit.point}" for limit in value]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"give one limit per point; repeated: {', '.join(repeated)}")
        return value

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, value: list[Rule]) -> list[Rule]:
        ids = [rule.id for rule in value]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(repeated)}")
        return value


_PREFIX: Final = re.compile(r"^(Value error|Assertion failed), ")
_PATTERN_HELP: Final = {
    _SLUG_PATTERN: "give 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    _POINT_PATTERN: "give a point name: letters, digits and '_', not starting with a digit",
    _HHMM_PATTERN: "give a local time as HH:MM, from 00:00 to 23:59",
}


def _sentence(error: ErrorDetails) -> str:
    """One pydantic error as ``where: what``, in the words of the rule file's author."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        loc, what = loc[:-1], f"unknown key {loc[-1]!r} (a typo?)"
    elif kind == "missing":
        what = "required but missing"
    elif kind == "string_pattern_mismatch":
        what = _PATTERN_HELP.get(str(error.get("ctx", {}).get("pattern")), "malformed text")
    else:
        what = _PREFIX.sub("", error["msg"])
        what = what[:1].lower() + what[1:]
    return f"{error_location(loc)}: {what}" if loc else what


def _refuse_constant(name: str) -> Any:
    raise RuleError(f"the rule set is not valid JSON: {name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse a key given twice: JSON parsers disagree on which one wins, a signed rule must not."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RuleError(f"the rule set is not valid JSON: key {key!r} is given twice")
        out[key] = value
    return out


def parse_ruleset(content: bytes) -> RuleSet:
    """Read a rule set from JSON (first non-blank character ``{``) or TOML.

    Raises ``RuleError`` with one sentence: too large, not UTF-8, a syntax error (with its
    line), or the first schema problem and where it is (``rules[2].when: give exactly one
    of above, below, equals``), followed by how many more there are.
    """
    if len(content) > MAX_RULESET_BYTES:
        raise RuleError(
            f"the rule set is {len(content)} bytes, more than the {MAX_RULESET_BYTES} allowed"
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RuleError(
            f"the rule set is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None
    data: Any
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise RuleError(
                f"the rule set is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RuleError(f"the rule set is not valid TOML: {exc}") from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        # an unknown key first: a misspelt key also makes the real one "missing"
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        message = _sentence(errors[0])
        if len(errors) > 1:
            more = len(errors) - 1
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise RuleError(message) from None


def dump_ruleset(ruleset: RuleSet) -> bytes:
    """The canonical bytes of a rule set, what the cloud signs: JSON, sorted keys, no spaces.

    ``parse_ruleset(dump_ruleset(rs)) == rs``; equal rule sets dump to equal bytes.
    """
    return json.dumps(
        ruleset.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
