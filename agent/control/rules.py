"""The rule engine: evaluates a rule set on every reading, on the gateway, online or not.

Pure logic: no I/O, no clock. The agent feeds it readings (``observe``) and the time once a
second (``tick``, which completes ``for_s`` durations and opens and closes time windows
without new readings); it answers with ``Firing``s, which the agent turns into writes (past
the ``SafetyGuard``), alerts and audit lines.

Each enabled rule is in one of three states::

    idle --condition holds--> pending --held for_s--> active --condition clears--> idle
                                  \\--stops holding--> idle (nothing emitted)

"fire" is emitted on pending -> active (``for_s = 0`` goes straight through), "clear" on
active -> idle. A condition with hysteresis is a Schmitt trigger: it starts holding past
the threshold and stops holding only past the band, also while pending.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ldt.agent.control.saved import load_saved
from ldt.agent.control.values import as_number, same_value
from ldt.agent.control.values import threshold_text as _num
from ldt.contract.rules import Action, AlertSpec, Condition, Rule, RuleSet
from ldt.reading import Value

__all__ = ["Firing", "RuleEngine", "RuleState"]

RuleState = Literal["idle", "pending", "active", "disabled"]
_Phase = Literal["idle", "pending", "active"]
_COUNTED: Final = frozenset({"good", "stale"})
_SNAPSHOT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Firing:
    """A rule changed state: what the agent should write, alert and log.

    ``transition == "fire"``: write ``action`` (the rule's ``then``) and raise ``alert``.
    ``transition == "clear"``: write ``action`` (the rule's ``otherwise``) and close
    ``alert``, the one raised at ``fired_at_ms`` (with ``rule_id`` it names the alert, as
    ``ldt.contract.control.AlertEvent`` does). ``dry_run``: log and alert, write nothing.
    ``value`` is the reading that caused the change, None when the time did (``tick``) or
    a rule-set update did (``replace``).
    """

    rule_id: str
    transition: Literal["fire", "clear"]
    action: Action | None
    alert: AlertSpec | None
    dry_run: bool
    value: Value | None
    at_ms: int
    reason: str
    fired_at_ms: int
    """When the rule fired: ``at_ms`` on a fire, the fire being ended on a clear."""

    @property
    def alert_state(self) -> Literal["raised", "cleared"] | None:
        """What to do with ``alert``: raise it, close it, or None when the rule has none."""
        if self.alert is None:
            return None
        return "raised" if self.transition == "fire" else "cleared"


@dataclass(slots=True)
class _RuleState:
    phase: _Phase = "idle"
    since_ms: int = 0
    """Pending: when the condition started holding. Active: when the rule fired."""


@dataclass(frozen=True, slots=True)
class _Last:
    """The last good or stale value of a source (a point or a model output)."""

    value: Value
    observed_at_ms: int


# --- the snapshot's schema: checked on restore, since it comes back from disk ----------


class _SavedSource(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    device: str
    point: str
    value: bool | int | float | str
    observed_at_ms: int


class _SavedRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: dict[str, Any]
    phase: Literal["pending", "active"]
    since_ms: int


class _Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1]
    sources: Annotated[list[_SavedSource], Field(max_length=10_000)]
    rules: dict[str, _SavedRule]

    @model_validator(mode="after")
    def _sources_unique(self) -> _Snapshot:
        keys = [(s.device, s.point) for s in self.sources]
        if len(set(keys)) != len(keys):
            raise ValueError("a source appears twice")
        return self


# --- values and wording -----------------------------------------------------------------


def _show(value: Value) -> str:
    if isinstance(value, bool | str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _holds(cond: Condition, value: Value, engaged: bool) -> bool | None:
    """Whether ``cond`` holds for ``value``; None if the value cannot be compared.

    ``engaged``: the condition held at the last evaluation, so hysteresis widens it.
    """
    threshold = cond.above if cond.above is not None else cond.below
    if threshold is None:
        return cond.equals is not None and same_value(value, cond.equals)
    x = as_number(value)
    if x is None:
        return None
    band = cond.hysteresis if engaged else 0.0
    if cond.above is not None:
        return x >= threshold - band if band > 0 else x > threshold
    return x <= threshold + band if band > 0 else x < threshold


def _equals(cond: Condition) -> Value:
    """The ``equals`` of a condition without ``above``/``below`` (the schema gives one)."""
    if cond.equals is None:
        raise ValueError("the condition compares with nothing")
    return cond.equals


def _fire_reason(cond: Condition, value: Value, timezone: str) -> str:
    shown = f"{cond.point} {_show(value)}"
    x = as_number(value)
    h = cond.hysteresis
    # With for_s and hysteresis the value may be back inside the band when the rule fires.
    if cond.above is not None:
        if x is not None and x <= cond.above:
            edge = _num(cond.above - h)
            text = f"{shown} >= {edge} (went above {_num(cond.above)}, hysteresis {_num(h)})"
        else:
            text = f"{shown} > {_num(cond.above)}"
    elif cond.below is not None:
        if x is not None and x >= cond.below:
            edge = _num(cond.below + h)
            text = f"{shown} <= {edge} (went below {_num(cond.below)}, hysteresis {_num(h)})"
        else:
            text = f"{shown} < {_num(cond.below)}"
    else:
        text = f"{shown} == {_show(_equals(cond))}"
    if cond.for_s > 0:
        text += f" for {_num(cond.for_s)} s"
    if cond.between is not None:
        text += f", within {cond.between[0]}-{cond.between[1]} {timezone}"
    return text


def _release_reason(cond: Condition, value: Value) -> str:
    shown = f"{cond.point} {_show(value)}"
    h = cond.hysteresis
    if cond.above is not None:
        if h > 0:
            edge = _num(cond.above - h)
            return f"{shown} < {edge} ({_num(cond.above)} less hysteresis {_num(h)})"
        return f"{shown} <= {_num(cond.above)}"
    if cond.below is not None:
        if h > 0:
            edge = _num(cond.below + h)
            return f"{shown} > {edge} ({_num(cond.below)} plus hysteresis {_num(h)})"
        return f"{shown} >= {_num(cond.below)}"
    return f"{shown} != {_show(_equals(cond))}"


# --- the engine -------------------------------------------------------------------------


class RuleEngine:
    """Evaluates one rule set. Not thread-safe: one owner (the agent's control task) calls it.

    Times are Unix milliseconds, UTC, passed in by the caller: ``observed_at_ms`` is when a
    reading was taken, ``now_ms`` when it is evaluated. ``for_s`` counts from the reading
    that made the condition hold.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self._load(ruleset)
        self._last: dict[tuple[str, str], _Last] = {}
        self._now_ms = 0
        """The latest time given to ``observe`` or ``tick``."""

    def _load(self, ruleset: RuleSet) -> None:
        self._ruleset = ruleset
        self._zone = ZoneInfo(ruleset.timezone)
        self._rules = {rule.id: rule for rule in ruleset.rules}
        self._states = {rule.id: _RuleState() for rule in ruleset.rules if rule.enabled}
        self._by_source: dict[tuple[str, str], list[Rule]] = {}
        for rule in ruleset.rules:
            if rule.enabled:
                key = (rule.when.device, rule.when.point)
                self._by_source.setdefault(key, []).append(rule)

    @property
    def ruleset(self) -> RuleSet:
        """The rule set being evaluated."""
        return self._ruleset

    def observe(  # noqa: PLR0917 - a reading's fields, in the order ``Reading`` has them
        self,
        device: str,
        point: str,
        value: Value | None,
        quality: str,
        observed_at_ms: int,
        now_ms: int,
    ) -> list[Firing]:
        """Feed one reading; returns the rules it fired or cleared, in rule-set order.

        Good and stale readings count. A bad reading, a None value, a reading older than
        the last one of the same point (a replay), NaN or infinity, or a value a rule cannot
        compare (text for ``above``) changes nothing: the last usable value stands.
        """
        self._now_ms = max(self._now_ms, now_ms)
        key = (device, point)
        rules = self._by_source.get(key)
        if not rules or value is None or str(quality) not in _COUNTED:
            return []
        if isinstance(value, float) and not math.isfinite(value):
            return []
        last = self._last.get(key)
        if last is not None and observed_at_ms < last.observed_at_ms:
            return []
        self._last[key] = _Last(value, observed_at_ms)
        since = min(observed_at_ms, now_ms)
        firings = []
        for rule in rules:
            firing = self._evaluate(rule, now_ms, since, value)
            if firing is not None:
                firings.append(firing)
        return firings

    def tick(self, now_ms: int) -> list[Firing]:
        """Let time pass: complete ``for_s`` waits, open and close ``between`` windows."""
        self._now_ms = max(self._now_ms, now_ms)
        firings = []
        for rule in self._ruleset.rules:
            if rule.enabled:
                firing = self._evaluate(rule, now_ms, now_ms, None)
                if firing is not None:
                    firings.append(firing)
        return firings

    def state(self, rule_id: str) -> RuleState:
        """``idle``, ``pending`` (waiting for ``for_s``), ``active`` (fired) or ``disabled``.

        Raises ``KeyError`` for an id the rule set does not have.
        """
        if rule_id not in self._rules:
            raise KeyError(f"rule set {self._ruleset.name!r} has no rule {rule_id!r}")
        st = self._states.get(rule_id)
        return "disabled" if st is None else st.phase

    def states(self) -> dict[str, RuleState]:
        """Every rule's state by id, in rule-set order (the technician's status view)."""
        return {rule_id: self.state(rule_id) for rule_id in self._rules}

    def snapshot(self) -> dict[str, Any]:
        """The engine's state as plain JSON-able data, for ``restore`` after a restart.

        Holds the last value of each source and the pending and active rules, each with
        its ``when``: a rule whose condition changed since does not inherit the state.
        """
        return {
            "v": _SNAPSHOT_VERSION,
            "sources": [
                {
                    "device": d,
                    "point": p,
                    "value": last.value,
                    "observed_at_ms": last.observed_at_ms,
                }
                for (d, p), last in self._last.items()
            ],
            "rules": {
                rule_id: {
                    "when": self._rules[rule_id].when.model_dump(mode="json"),
                    "phase": st.phase,
                    "since_ms": st.since_ms,
                }
                for rule_id, st in self._states.items()
                if st.phase != "idle"
            },
        }

    def restore(self, snapshot: Any) -> None:
        """Take back a ``snapshot``: active rules stay active instead of firing again.

        Restore into an engine built with the rule set the snapshot was taken under, then
        ``replace`` with a newer one if there is one, so that rules it changed are cleared
        properly. Entries for rules that are gone, disabled or whose ``when`` differs, and
        sources no rule reads, are dropped. Raises ``ValueError`` if the snapshot is
        malformed (start without it: rules then fire again on the next readings).
        """
        saved = load_saved(_Snapshot, snapshot, "rule state")
        for src in saved.sources:
            key = (src.device, src.point)
            if key in self._by_source:
                self._last[key] = _Last(src.value, src.observed_at_ms)
        for rule_id, entry in saved.rules.items():
            rule = self._rules.get(rule_id)
            st = self._states.get(rule_id)
            if rule is None or st is None or not _same_when(rule.when, entry.when):
                continue
            if (rule.when.device, rule.when.point) not in self._last:
                continue  # a state without the value it was based on cannot be re-checked
            st.phase, st.since_ms = entry.phase, entry.since_ms

    def replace(self, ruleset: RuleSet, *, now_ms: int | None = None) -> list[Firing]:
        """Switch to a new version of the rule set without re-firing what is already active.

        A rule with the same id, still enabled, and the same ``when`` keeps its state (its
        ``then``, ``dry_run`` or alert may have changed: they apply from its next transition;
        to have a changed ``then`` written at once, give the rule a new id). An active
        rule that is gone, disabled or whose ``when`` changed is cleared: the returned
        "clear" firings close its alert but write nothing (``action`` is None), since a
        rule-set update should not move equipment by itself; the new rules decide from
        the next reading or tick. Their ``at_ms`` is ``now_ms``, by default the latest time
        the engine was given.
        """
        old_rules, old_states, old_last = self._rules, self._states, self._last
        self._load(ruleset)
        firings = []
        for rule_id, st in old_states.items():
            new = self._rules.get(rule_id)
            kept = new is not None and new.enabled and new.when == old_rules[rule_id].when
            if kept:
                self._states[rule_id] = st
            elif st.phase == "active":
                old = old_rules[rule_id]
                if new is None:
                    why = "removed"
                elif not new.enabled:
                    why = "disabled"
                else:
                    why = "given a new condition"
                firings.append(
                    Firing(
                        rule_id=rule_id,
                        transition="clear",
                        action=None,
                        alert=old.alert,
                        dry_run=old.dry_run,
                        value=None,
                        at_ms=max(self._now_ms, st.since_ms) if now_ms is None else now_ms,
                        reason=f"rule {why} by rule set {ruleset.name!r}",
                        fired_at_ms=st.since_ms,
                    )
                )
        self._last = {k: v for k, v in old_last.items() if k in self._by_source}
        return firings

    # --- internals ----------------------------------------------------------------------

    def _in_window(self, cond: Condition, now_ms: int) -> bool:
        if cond.between is None:
            return True
        local = datetime.fromtimestamp(now_ms / 1000, tz=self._zone)
        minute = local.hour * 60 + local.minute
        start, end = (_minute_of_day(t) for t in cond.between)
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end  # the window crosses midnight

    def _evaluate(
        self, rule: Rule, now_ms: int, since_ms: int, reading: Value | None
    ) -> Firing | None:
        """Advance one rule. ``since_ms``: when the condition would have started holding."""
        st = self._states[rule.id]
        last = self._last.get((rule.when.device, rule.when.point))
        if last is None:
            return None
        cond = rule.when
        holds = _holds(cond, last.value, engaged=st.phase != "idle")
        if holds is None:
            return None
        in_window = self._in_window(cond, now_ms)
        if st.phase == "active":
            if holds and in_window:
                return None
            fired_at = st.since_ms
            st.phase, st.since_ms = "idle", 0
            if holds and cond.between is not None:
                start, end = cond.between
                reason = f"outside {start}-{end} {self._ruleset.timezone}"
            else:
                reason = _release_reason(cond, last.value)
            return self._firing(
                rule,
                transition="clear",
                reading=reading,
                now_ms=now_ms,
                reason=reason,
                fired_at_ms=fired_at,
            )
        if not (holds and in_window):
            st.phase, st.since_ms = "idle", 0
            return None
        if st.phase == "idle":
            st.phase, st.since_ms = "pending", since_ms
        if now_ms - st.since_ms < round(cond.for_s * 1000):
            return None
        st.phase, st.since_ms = "active", now_ms
        reason = _fire_reason(cond, last.value, self._ruleset.timezone)
        return self._firing(
            rule,
            transition="fire",
            reading=reading,
            now_ms=now_ms,
            reason=reason,
            fired_at_ms=now_ms,
        )

    @staticmethod
    def _firing(
        rule: Rule,
        *,
        transition: Literal["fire", "clear"],
        reading: Value | None,
        now_ms: int,
        reason: str,
        fired_at_ms: int,
    ) -> Firing:
        return Firing(
            rule_id=rule.id,
            transition=transition,
            action=rule.then if transition == "fire" else rule.otherwise,
            alert=rule.alert,
            dry_run=rule.dry_run,
            value=reading,
            at_ms=now_ms,
            reason=reason,
            fired_at_ms=fired_at_ms,
        )


def _minute_of_day(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _same_when(current: Condition, saved: dict[str, Any]) -> bool:
    try:
        return Condition.model_validate(saved) == current
    except ValidationError:
        return False
