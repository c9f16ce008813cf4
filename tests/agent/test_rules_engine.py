"""The rule engine: thresholds, hysteresis, durations, windows, restarts and rule-set updates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldt.agent.control.rules import Firing, RuleEngine
from ldt.contract.rules import Action, RuleSet
from ldt.reading import Quality, Value

T0 = 1_700_000_000_000
S = 1000


def _ruleset(*rules: dict[str, Any], timezone: str = "UTC") -> RuleSet:
    return RuleSet.model_validate({"name": "test", "timezone": timezone, "rules": list(rules)})


def _rule(rule_id: str = "r", **when: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "when": {"device": "meter-1", "point": "activePower", **when},
        "then": {"device": "relay-1", "point": "switch", "value": False},
        "otherwise": {"device": "relay-1", "point": "switch", "value": True},
        "alert": {"severity": "high", "description": "Power too high"},
    }


def _feed(
    engine: RuleEngine, value: Value | None, at_ms: int, quality: str = "good"
) -> list[Firing]:
    return engine.observe("meter-1", "activePower", value, quality, at_ms, at_ms)


def _transitions(firings: list[Firing]) -> list[str]:
    return [f.transition for f in firings]


def _utc_ms(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


# --- thresholds ---------------------------------------------------------------------------


def test_above_fires_once_and_clears_with_the_otherwise_action() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100)))
    assert _feed(engine, 90.0, T0) == []
    assert engine.state("r") == "idle"
    assert _feed(engine, 100.0, T0 + S) == []  # not above
    [fire] = _feed(engine, 112.0, T0 + 2 * S)
    assert fire.transition == "fire"
    assert fire.rule_id == "r"
    assert fire.action == Action(device="relay-1", point="switch", value=False)
    assert fire.alert is not None
    assert fire.alert.severity == "high"
    assert fire.alert_state == "raised"
    assert fire.value == 112.0
    assert fire.at_ms == fire.fired_at_ms == T0 + 2 * S
    assert fire.reason == "activePower 112.0 > 100"
    assert not fire.dry_run
    assert engine.state("r") == "active"
    assert _feed(engine, 130.0, T0 + 3 * S) == []  # still above: nothing new
    [clear] = _feed(engine, 100.0, T0 + 4 * S)
    assert clear.transition == "clear"
    assert clear.action == Action(device="relay-1", point="switch", value=True)
    assert clear.alert_state == "cleared"
    assert clear.fired_at_ms == T0 + 2 * S
    assert clear.at_ms == T0 + 4 * S
    assert clear.reason == "activePower 100.0 <= 100"
    assert engine.state("r") == "idle"


def test_below_mirrors_above() -> None:
    engine = RuleEngine(_ruleset(_rule(below=10)))
    assert _feed(engine, 10, T0) == []
    [fire] = _feed(engine, 9, T0 + S)
    assert fire.reason == "activePower 9 < 10"
    [clear] = _feed(engine, 10, T0 + 2 * S)
    assert clear.reason == "activePower 10 >= 10"


def test_equals_on_a_boolean_point() -> None:
    rule = {
        "id": "door",
        "when": {"device": "door-1", "point": "open", "equals": True},
        "alert": {"description": "Cabinet door open"},
    }
    engine = RuleEngine(_ruleset(rule))

    def feed(value: Value, at: int) -> list[Firing]:
        return engine.observe("door-1", "open", value, "good", at, at)

    assert feed(False, T0) == []
    [fire] = feed(True, T0 + S)
    assert fire.reason == "open true == true"
    assert fire.action is None
    assert feed(True, T0 + 2 * S) == []
    [clear] = feed(False, T0 + 3 * S)
    assert clear.action is None  # no otherwise
    assert clear.alert is not None
    assert clear.alert_state == "cleared"
    assert clear.reason == "open false != true"
    assert _transitions(feed(1, T0 + 4 * S)) == ["fire"]  # a 0/1 register counts as a boolean
    assert _transitions(feed("true", T0 + 5 * S)) == ["clear"]  # text is not a boolean


def test_equals_on_text() -> None:
    rule = {
        "id": "mode",
        "when": {"device": "hvac-1", "point": "mode", "equals": "fault"},
        "alert": {"description": "HVAC fault"},
    }
    engine = RuleEngine(_ruleset(rule))
    assert engine.observe("hvac-1", "mode", "auto", "good", T0, T0) == []
    assert _transitions(engine.observe("hvac-1", "mode", "fault", "good", T0 + S, T0 + S)) == [
        "fire"
    ]


def test_only_rules_reading_the_point_are_evaluated_and_disabled_rules_never_fire() -> None:
    other = _rule("other", above=0) | {
        "when": {"device": "meter-2", "point": "activePower", "above": 0}
    }
    off = _rule("off", above=0) | {"enabled": False}
    engine = RuleEngine(_ruleset(_rule(above=100), other, off))
    assert [f.rule_id for f in _feed(engine, 200.0, T0)] == ["r"]
    assert engine.states() == {"r": "active", "other": "idle", "off": "disabled"}
    assert engine.observe("meter-1", "voltage", 999, "good", T0, T0) == []
    assert engine.tick(T0 + 10 * S) == []
    with pytest.raises(KeyError, match="has no rule 'nope'"):
        engine.state("nope")


def test_bad_readings_and_unusable_values_change_nothing() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100)))
    assert _feed(engine, 200.0, T0, quality="bad") == []
    assert _feed(engine, None, T0) == []
    assert _feed(engine, float("nan"), T0) == []
    assert _feed(engine, float("inf"), T0) == []
    assert _feed(engine, "high", T0) == []
    assert engine.state("r") == "idle"
    assert _transitions(_feed(engine, 200.0, T0 + S, quality=Quality.STALE)) == ["fire"]
    assert _feed(engine, 0.0, T0 + 2 * S, quality=Quality.BAD) == []
    assert _feed(engine, None, T0 + 2 * S) == []
    assert _feed(engine, "low", T0 + 2 * S) == []
    assert engine.state("r") == "active"


def test_a_reading_older_than_the_last_one_is_ignored() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100)))
    assert _transitions(_feed(engine, 200.0, T0 + 10 * S)) == ["fire"]
    assert engine.observe("meter-1", "activePower", 0.0, "good", T0, T0 + 11 * S) == []
    assert engine.state("r") == "active"


def test_dry_run_is_carried_through() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100) | {"dry_run": True}))
    [fire] = _feed(engine, 200.0, T0)
    [clear] = _feed(engine, 0.0, T0 + S)
    assert fire.dry_run
    assert clear.dry_run
    assert fire.action is not None  # what would have been written


# --- hysteresis ---------------------------------------------------------------------------


def test_hysteresis_fires_once_while_oscillating_and_clears_only_past_the_band() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100, hysteresis=5)))
    firings: list[Firing] = []
    t = T0
    for value in (99, 101, 99, 101, 96, 100.5, 95, 101, 95.0):
        t += S
        firings += _feed(engine, value, t)
    assert _transitions(firings) == ["fire"]
    assert engine.state("r") == "active"
    [clear] = _feed(engine, 94.9, t + S)
    assert clear.reason == "activePower 94.9 < 95 (100 less hysteresis 5)"
    assert _feed(engine, 99.0, t + 2 * S) == []  # below the threshold: does not fire again
    assert _transitions(_feed(engine, 100.1, t + 3 * S)) == ["fire"]


def test_hysteresis_below() -> None:
    engine = RuleEngine(_ruleset(_rule(below=10, hysteresis=2)))
    assert _transitions(_feed(engine, 9, T0)) == ["fire"]
    assert _feed(engine, 11, T0 + S) == []
    assert _feed(engine, 12, T0 + 2 * S) == []
    [clear] = _feed(engine, 12.5, T0 + 3 * S)
    assert clear.reason == "activePower 12.5 > 12 (10 plus hysteresis 2)"


def test_hysteresis_also_holds_a_pending_condition() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100, hysteresis=5, for_s=10)))
    assert _feed(engine, 101, T0) == []
    assert engine.state("r") == "pending"
    assert _feed(engine, 97, T0 + 5 * S) == []  # inside the band: still holding
    assert engine.state("r") == "pending"
    [fire] = engine.tick(T0 + 10 * S)
    assert fire.value is None
    assert fire.reason == "activePower 97 >= 95 (went above 100, hysteresis 5) for 10 s"


# --- for_s --------------------------------------------------------------------------------


def test_short_spikes_do_not_fire() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100, for_s=10)))
    t = T0
    for _ in range(5):
        assert _feed(engine, 150.0, t) == []
        assert engine.state("r") == "pending"
        assert engine.tick(t + 5 * S) == []
        assert _feed(engine, 50.0, t + 9 * S) == []
        assert engine.state("r") == "idle"
        assert engine.tick(t + 11 * S) == []
        t += 20 * S


def test_tick_completes_the_duration_without_new_readings() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100, for_s=10)))
    assert _feed(engine, 112.0, T0) == []
    for second in range(1, 10):
        assert engine.tick(T0 + second * S) == []
    [fire] = engine.tick(T0 + 10 * S)
    assert fire.transition == "fire"
    assert fire.value is None
    assert fire.at_ms == T0 + 10 * S
    assert fire.reason == "activePower 112.0 > 100 for 10 s"
    assert engine.tick(T0 + 11 * S) == []


def test_a_reading_after_the_duration_fires_at_once() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100, for_s=10)))
    assert _feed(engine, 112.0, T0) == []
    [fire] = _feed(engine, 113.0, T0 + 12 * S)
    assert fire.value == 113.0


def test_the_duration_counts_from_when_the_reading_was_taken() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100, for_s=10)))
    # taken 8 s before it was evaluated: 2 s left
    assert engine.observe("meter-1", "activePower", 150.0, "good", T0, T0 + 8 * S) == []
    assert _transitions(engine.tick(T0 + 10 * S)) == ["fire"]


# --- time windows -------------------------------------------------------------------------

# 2024-01-15, winter: Madrid is UTC+1.
_JAN_15 = (2024, 1, 15)


def _window_rule(between: tuple[str, str]) -> dict[str, Any]:
    return _rule(above=100, between=list(between))


def test_window_blocks_firing_outside_and_clears_when_it_closes() -> None:
    engine = RuleEngine(_ruleset(_window_rule(("08:00", "18:00"))))
    before = _utc_ms(*_JAN_15, 7, 59)
    assert _feed(engine, 150.0, before) == []
    assert engine.state("r") == "idle"
    [fire] = engine.tick(_utc_ms(*_JAN_15, 8, 0))
    assert fire.reason == "activePower 150.0 > 100, within 08:00-18:00 UTC"
    assert engine.tick(_utc_ms(*_JAN_15, 17, 59, 59)) == []
    [clear] = engine.tick(_utc_ms(*_JAN_15, 18, 0))
    assert clear.reason == "outside 08:00-18:00 UTC"
    assert clear.action is not None
    assert engine.state("r") == "idle"
    assert engine.tick(_utc_ms(*_JAN_15, 18, 1)) == []


def test_window_crossing_midnight() -> None:
    engine = RuleEngine(_ruleset(_window_rule(("18:00", "06:00"))))
    assert _feed(engine, 150.0, _utc_ms(*_JAN_15, 12, 0)) == []
    assert _transitions(engine.tick(_utc_ms(*_JAN_15, 18, 0))) == ["fire"]
    assert engine.tick(_utc_ms(*_JAN_15, 23, 59)) == []
    assert engine.tick(_utc_ms(2024, 1, 16, 0, 0)) == []
    assert engine.tick(_utc_ms(2024, 1, 16, 5, 59)) == []
    assert _transitions(engine.tick(_utc_ms(2024, 1, 16, 6, 0))) == ["clear"]


def test_window_is_in_the_rule_sets_time_zone() -> None:
    at = _utc_ms(*_JAN_15, 17, 30)  # 18:30 in Madrid
    madrid = RuleEngine(_ruleset(_window_rule(("18:00", "06:00")), timezone="Europe/Madrid"))
    utc = RuleEngine(_ruleset(_window_rule(("18:00", "06:00"))))
    assert _transitions(_feed(madrid, 150.0, at)) == ["fire"]
    assert _feed(utc, 150.0, at) == []
    # 05:30 UTC is 06:30 in Madrid: its window has closed, UTC's has not
    morning = _utc_ms(2024, 1, 16, 5, 30)
    assert _transitions(madrid.tick(morning)) == ["clear"]
    assert _transitions(utc.tick(morning)) == ["fire"]


def test_window_follows_daylight_saving_time() -> None:
    engine = RuleEngine(_ruleset(_window_rule(("18:00", "06:00")), timezone="Europe/Madrid"))
    july = (2024, 7, 15)  # summer: UTC+2
    assert _feed(engine, 150.0, _utc_ms(*july, 15, 59)) == []
    assert _transitions(engine.tick(_utc_ms(*july, 16, 0))) == ["fire"]


def test_for_s_starts_when_the_window_opens() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100, for_s=60, between=["08:00", "18:00"])))
    assert _feed(engine, 150.0, _utc_ms(*_JAN_15, 7, 0)) == []
    assert engine.tick(_utc_ms(*_JAN_15, 8, 0)) == []
    assert engine.state("r") == "pending"
    assert engine.tick(_utc_ms(*_JAN_15, 8, 0, 59)) == []
    assert _transitions(engine.tick(_utc_ms(*_JAN_15, 8, 1))) == ["fire"]


# --- restarts and updates -----------------------------------------------------------------


def test_snapshot_and_restore_keep_active_rules_quiet() -> None:
    rs = _ruleset(_rule(above=100), _rule("slow", above=100, for_s=30))
    engine = RuleEngine(rs)
    assert _transitions(_feed(engine, 150.0, T0)) == ["fire"]
    saved = json.loads(json.dumps(engine.snapshot()))  # what goes to disk and back
    restarted = RuleEngine(rs)
    restarted.restore(saved)
    assert restarted.states() == {"r": "active", "slow": "pending"}
    assert _feed(restarted, 160.0, T0 + 10 * S) == []
    assert [f.rule_id for f in restarted.tick(T0 + 30 * S)] == ["slow"]
    [clear, _] = _feed(restarted, 0.0, T0 + 40 * S)
    assert clear.fired_at_ms == T0


def test_restore_drops_rules_whose_condition_changed() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100)))
    _feed(engine, 150.0, T0)
    changed = RuleEngine(_ruleset(_rule(above=120)))
    changed.restore(engine.snapshot())
    assert changed.state("r") == "idle"
    # the last value was kept: the changed rule fires on the next tick
    assert _transitions(changed.tick(T0 + S)) == ["fire"]


@pytest.mark.parametrize(
    "snapshot",
    [None, [], {"v": 2, "sources": [], "rules": {}}, {"v": 1, "sources": [{}], "rules": {}}],
)
def test_restore_refuses_a_malformed_snapshot(snapshot: Any) -> None:
    engine = RuleEngine(_ruleset(_rule(above=100)))
    with pytest.raises(ValueError, match="the saved rule state is malformed"):
        engine.restore(snapshot)


def test_replace_keeps_state_of_rules_with_the_same_condition() -> None:
    engine = RuleEngine(_ruleset(_rule(above=100), _rule("b", above=50)))
    assert _transitions(_feed(engine, 150.0, T0)) == ["fire", "fire"]
    new_then = _rule(above=100) | {"then": {"device": "relay-1", "point": "switch", "value": 1}}
    assert engine.replace(_ruleset(new_then, _rule("b", above=50))) == []
    assert engine.states() == {"r": "active", "b": "active"}
    assert _feed(engine, 160.0, T0 + S) == []  # not fired again
    [clear, _] = _feed(engine, 0.0, T0 + 2 * S)
    assert clear.fired_at_ms == T0


def test_replace_clears_active_rules_that_went_away_or_changed_without_writing() -> None:
    engine = RuleEngine(
        _ruleset(_rule("gone", above=10), _rule("off", above=10), _rule("moved", above=10))
    )
    _feed(engine, 150.0, T0)
    new = _ruleset(
        _rule("off", above=10) | {"enabled": False},
        _rule("moved", above=200),
        _rule("new", above=10),
    )
    firings = engine.replace(new, now_ms=T0 + 5 * S)
    assert [(f.rule_id, f.transition, f.action) for f in firings] == [
        ("gone", "clear", None),
        ("off", "clear", None),
        ("moved", "clear", None),
    ]
    assert all(f.alert_state == "cleared" and f.at_ms == T0 + 5 * S for f in firings)
    assert [f.reason for f in firings] == [
        "rule removed by rule set 'test'",
        "rule disabled by rule set 'test'",
        "rule given a new condition by rule set 'test'",
    ]
    assert engine.states() == {"off": "disabled", "moved": "idle", "new": "idle"}
    # the last value survives for rules reading the same point: the new rule fires on a tick
    assert [f.rule_id for f in engine.tick(T0 + 6 * S)] == ["new"]


def test_replace_defaults_to_the_latest_time_seen() -> None:
    engine = RuleEngine(_ruleset(_rule(above=10)))
    _feed(engine, 150.0, T0)
    engine.tick(T0 + 7 * S)
    [clear] = engine.replace(_ruleset())
    assert clear.at_ms == T0 + 7 * S


# --- a property -------------------------------------------------------------------------

_event = st.one_of(
    st.tuples(st.just("read"), st.integers(0, 5_000), st.floats(80, 120) | st.booleans()),
    st.tuples(st.just("bad"), st.integers(0, 5_000), st.floats(80, 120)),
    st.tuples(st.just("tick"), st.integers(0, 5_000), st.none()),
    st.tuples(st.just("replace"), st.integers(0, 5_000), st.none()),
)


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(_event, max_size=60),
    hysteresis=st.sampled_from([0, 5]),
    for_s=st.sampled_from([0, 2, 10]),
    between=st.sampled_from([None, ["00:00", "00:01"], ["23:59", "00:00"]]),
)
def test_fire_and_clear_alternate(
    events: list[tuple[str, int, Any]], hysteresis: float, for_s: float, between: list[str] | None
) -> None:
    """Whatever happens, a rule never fires twice without a clear between (nor clears twice)."""
    rules = [_rule(above=100, hysteresis=hysteresis, for_s=for_s, between=between)]
    rules.append(_rule("eq", equals=True))
    engine = RuleEngine(_ruleset(*rules))
    last: dict[str, str] = {}
    now = _utc_ms(*_JAN_15, 23, 58)
    for kind, step_ms, value in events:
        now += step_ms
        if kind == "read":
            firings = _feed(engine, value, now)
        elif kind == "bad":
            firings = _feed(engine, value, now, quality="bad")
        elif kind == "tick":
            firings = engine.tick(now)
        else:
            saved = engine.snapshot()
            engine = RuleEngine(_ruleset(*rules))
            engine.restore(saved)
            firings = []
        for firing in firings:
            previous = last.get(firing.rule_id, "clear")
            assert firing.transition != previous, f"{firing.rule_id} {firing.transition} twice"
            last[firing.rule_id] = firing.transition
            assert engine.state(firing.rule_id) == (
                "active" if firing.transition == "fire" else "idle"
            )
