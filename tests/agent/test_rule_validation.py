"""A rule set must fit the gateway it runs on: known points, writable targets, within limits."""

from __future__ import annotations

from typing import Any

import pytest

from ldt.agent.control.validation import PointInfo, validate_ruleset
from ldt.contract.rules import RuleError, RuleSet

POINTS = {
    ("tank-1", "level"): PointInfo(writable=False, numeric=True),
    ("door-1", "open"): PointInfo(writable=False, numeric=False),
    ("pump-1", "speed"): PointInfo(writable=True, numeric=True),
    ("pump-1", "mode"): PointInfo(writable=True, numeric=False),
    ("relay-1", "switch"): PointInfo(writable=True, numeric=False),
}
MODEL_OUTPUTS = frozenset({("tank-1", "levelForecast")})


def _ruleset(*rules: dict[str, Any], limits: list[dict[str, Any]] | None = None) -> RuleSet:
    return RuleSet.model_validate(
        {
            "name": "station",
            "limits": limits
            if limits is not None
            else [{"device": "pump-1", "point": "speed", "min": 0, "max": 100}],
            "rules": list(rules),
        }
    )


def _rule(
    when: dict[str, Any], then: Any = None, otherwise: Any = None, rule_id: str = "pump-on"
) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": rule_id, "when": when, "alert": {"description": "x"}}
    if then is not None:
        rule["then"] = then
    if otherwise is not None:
        rule["otherwise"] = otherwise
    return rule


LEVEL_HIGH = {"device": "tank-1", "point": "level", "above": 80}


def _speed(value: Any) -> dict[str, Any]:
    return {"device": "pump-1", "point": "speed", "value": value}


def test_a_fitting_rule_set_passes() -> None:
    rs = _ruleset(
        _rule(LEVEL_HIGH, _speed(75), _speed(0)),
        _rule(
            {"device": "door-1", "point": "open", "equals": True},
            {"device": "relay-1", "point": "switch", "value": True},
            rule_id="door",
        ),
        _rule(
            {"device": "tank-1", "point": "levelForecast", "above": 90},
            {"device": "pump-1", "point": "mode", "value": "boost"},
            rule_id="forecast",
        ),
        _rule({"device": "tank-1", "point": "level", "equals": 3}, rule_id="exact"),
        _rule(LEVEL_HIGH, _speed(True), rule_id="bool-speed"),  # true counts as 1
    )
    validate_ruleset(rs, POINTS, MODEL_OUTPUTS)


@pytest.mark.parametrize(
    ("ruleset", "message"),
    [
        (
            _ruleset(limits=[{"device": "pump-9", "point": "speed", "max": 1}]),
            "limits: pump-9/speed is not a point on this gateway",
        ),
        (
            _ruleset(_rule({"device": "tank-2", "point": "level", "above": 1}, _speed(1))),
            "rule pump-on: condition reads tank-2/level, which is neither a point on this "
            "gateway nor a model output",
        ),
        (
            _ruleset(_rule({"device": "door-1", "point": "open", "above": 0}, _speed(1))),
            "rule pump-on: condition compares door-1/open with above, but it is not a numeric "
            "point (use equals)",
        ),
        (
            _ruleset(_rule({"device": "door-1", "point": "open", "below": 1}, _speed(1))),
            "rule pump-on: condition compares door-1/open with below, but it is not a numeric "
            "point (use equals)",
        ),
        (
            _ruleset(_rule({"device": "tank-1", "point": "level", "equals": "full"}, _speed(1))),
            "rule pump-on: condition compares tank-1/level, a numeric point, with the text "
            "'full': it would never match",
        ),
        (
            _ruleset(_rule(LEVEL_HIGH, {"device": "pump-2", "point": "speed", "value": 1})),
            "rule pump-on: action writes to pump-2/speed, which is not a point on this gateway",
        ),
        (
            _ruleset(_rule(LEVEL_HIGH, {"device": "tank-1", "point": "level", "value": 1})),
            "rule pump-on: action writes to tank-1/level, which is read-only",
        ),
        (
            _ruleset(_rule(LEVEL_HIGH, _speed(150))),
            "rule pump-on: action writes 150 to pump-1/speed, above its safety max 100",
        ),
        (
            _ruleset(_rule(LEVEL_HIGH, _speed(-0.5))),
            "rule pump-on: action writes -0.5 to pump-1/speed, below its safety min 0",
        ),
        (
            _ruleset(_rule(LEVEL_HIGH, _speed(75), _speed(101))),
            "rule pump-on: otherwise action writes 101 to pump-1/speed, above its safety max 100",
        ),
        (
            _ruleset(_rule(LEVEL_HIGH, _speed("fast"))),
            "rule pump-on: action writes the text 'fast' to pump-1/speed, a numeric point",
        ),
        (
            _ruleset(
                _rule(LEVEL_HIGH, {"device": "pump-1", "point": "mode", "value": "fast"}),
                limits=[{"device": "pump-1", "point": "mode", "max": 1}],
            ),
            "rule pump-on: action writes 'fast' to pump-1/mode, which has safety bounds and "
            "takes numbers only",
        ),
        (
            _ruleset(
                _rule(LEVEL_HIGH, _speed(1)),
                _rule(LEVEL_HIGH, _speed(1000), rule_id="later") | {"enabled": False},
            ),
            "rule later: action writes 1000 to pump-1/speed, above its safety max 100",
        ),
        (
            _ruleset(
                _rule(LEVEL_HIGH, _speed(1000), rule_id="first"),
                _rule({"device": "x", "point": "y", "above": 1}, rule_id="second"),
            ),
            "rule first: action writes 1000",
        ),
    ],
)
def test_refusals_name_the_rule_and_the_first_problem(ruleset: RuleSet, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        validate_ruleset(ruleset, POINTS, MODEL_OUTPUTS)
    assert str(caught.value).startswith(message)


def test_model_outputs_are_sources_only_when_declared() -> None:
    rs = _ruleset(_rule({"device": "tank-1", "point": "levelForecast", "above": 90}, _speed(1)))
    validate_ruleset(rs, POINTS, MODEL_OUTPUTS)
    with pytest.raises(RuleError, match="condition reads tank-1/levelForecast"):
        validate_ruleset(rs, POINTS)


def test_a_rate_only_limit_does_not_bound_values() -> None:
    rs = _ruleset(
        _rule(LEVEL_HIGH, {"device": "pump-1", "point": "mode", "value": "boost"}),
        limits=[{"device": "pump-1", "point": "mode", "max_changes_per_hour": 4}],
    )
    validate_ruleset(rs, POINTS)
