"""The rule-set schema: TOML and JSON in, one readable sentence out for anything malformed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldt.contract.rules import (
    MAX_RULESET_BYTES,
    Action,
    AlertSpec,
    Condition,
    RuleError,
    RuleSet,
    dump_ruleset,
    parse_ruleset,
)

EVERY_FEATURE = b"""
name = "pumping-station"
description = "Tank 1 and its pump"
timezone = "Europe/Madrid"

[[limits]]
device = "pump-1"
point = "speed"
min = 0
max = 100
max_changes_per_hour = 6

[[rules]]
id = "pump-on"
description = "Empty the tank before it overflows"
when = { device = "tank-1", point = "level", above = 80, hysteresis = 5, for_s = 30 }
then = { device = "pump-1", point = "speed", value = 75 }
otherwise = { device = "pump-1", point = "speed", value = 0 }

[rules.alert]
severity = "high"
category = "security"
sub_category = "flood"
description = "Tank 1 is nearly full"

[[rules]]
id = "night-lights"
dry_run = true
when = { device = "lux-1", point = "illuminance", below = 20, between = ["18:00", "06:00"] }
then = { device = "lamp-1", point = "switch", value = true }
otherwise = { device = "lamp-1", point = "switch", value = false }

[[rules]]
id = "door-open"
enabled = false
when = { device = "door-1", point = "open", equals = true }
alert = { description = "Cabinet door open" }
"""


def _rules_toml(when: str, extra: str = 'alert = { description = "x" }') -> bytes:
    return f'name = "t"\n[[rules]]\nid = "r"\nwhen = {when}\n{extra}\n'.encode()


def test_toml_with_every_feature() -> None:
    rs = parse_ruleset(EVERY_FEATURE)
    assert rs.name == "pumping-station"
    assert rs.timezone == "Europe/Madrid"
    assert rs.limits[0].max == 100
    assert rs.limits[0].max_changes_per_hour == 6
    pump, lights, door = rs.rules
    assert pump.when == Condition(
        device="tank-1", point="level", above=80.0, hysteresis=5.0, for_s=30.0
    )
    assert pump.then == Action(device="pump-1", point="speed", value=75)
    assert pump.otherwise == Action(device="pump-1", point="speed", value=0)
    assert pump.alert == AlertSpec(
        severity="high",
        category="security",
        sub_category="flood",
        description="Tank 1 is nearly full",
    )
    assert lights.dry_run
    assert lights.when.between == ("18:00", "06:00")
    assert lights.then is not None
    assert lights.then.value is True
    assert not door.enabled
    assert door.when.equals is True
    assert door.alert is not None
    assert door.alert.severity == "medium"
    assert door.alert.category == "environment"


def test_json_is_read_when_the_content_starts_with_a_brace() -> None:
    rs = parse_ruleset(EVERY_FEATURE)
    as_json = b"  \n" + json.dumps(rs.model_dump(mode="json"), indent=2).encode()
    assert parse_ruleset(as_json) == rs


def test_values_keep_their_type() -> None:
    rs = parse_ruleset(
        b'{"name": "t", "rules": [{"id": "r", "when": {"device": "d", "point": "p", "equals": 1},'
        b' "then": {"device": "d", "point": "q", "value": "on"}}]}'
    )
    rule = rs.rules[0]
    assert rule.when.equals == 1
    assert type(rule.when.equals) is int
    assert rule.then is not None
    assert rule.then.value == "on"


def test_dump_is_canonical_and_round_trips() -> None:
    rs = parse_ruleset(EVERY_FEATURE)
    dumped = dump_ruleset(rs)
    assert parse_ruleset(dumped) == rs
    assert dump_ruleset(parse_ruleset(dumped)) == dumped
    data = json.loads(dumped)
    assert list(data) == sorted(data)
    assert b" " not in dumped.replace(b"Tank 1 is nearly full", b"").replace(
        b"Empty the tank before it overflows", b""
    ).replace(b"Cabinet door open", b"").replace(b"Tank 1 and its pump", b"")


def test_a_utf8_bom_is_accepted() -> None:
    assert parse_ruleset(b"\xef\xbb\xbf" + EVERY_FEATURE).name == "pumping-station"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe name", "the rule set is not UTF-8 text (invalid byte at offset 0)"),
        (b"name = pumping", "the rule set is not valid TOML: Invalid value (at line 1, column 8)"),
        (b'{"name": "t", "rules": [}', "the rule set is not valid JSON: Expecting value at line 1"),
        (b'{"name": "t", "rules": [], "name": "u"}', "key 'name' is given twice"),
        (
            b'{"name": "t", "rules": [{"id": "r", "when": {"device": "d", "point": "p", '
            b'"above": NaN}, "alert": {"description": "x"}}]}',
            "NaN is not a JSON number",
        ),
        (b"rules = []", "name: required but missing"),
        (b'name = "t"\nrules = []\ncolour = "red"', "unknown key 'colour' (a typo?)"),
        (b'name = "a b"\nrules = []', "name: give 1 to 64 letters, digits, '.', '_' or '-'"),
        (b'name = "t"\nrules = "none"', "rules: input should be a valid list"),
        (
            b'name = "t"\ntimezone = "Mars/Olympus"\nrules = []',
            "timezone: unknown time zone 'Mars/Olympus': give an IANA name",
        ),
        (b'name = "t"\ntimezone = "Europe"\nrules = []', "timezone: unknown time zone 'Europe'"),
        (b'name = "t"\ntimezone = "../etc/passwd"\nrules = []', "timezone: unknown time zone"),
        (
            b'name = "t"\nlimits = [{ device = "d", point = "p", min = 5, max = 1 }]\nrules = []',
            "limits[0]: min 5 is above max 1",
        ),
        (
            b'name = "t"\nlimits = [{ device = "d", point = "p" }]\nrules = []',
            "limits[0]: give min, max or max_changes_per_hour",
        ),
        (
            b'name = "t"\nlimits = [{ device = "d", point = "p", max_changes_per_hour = 0 }]\n'
            b"rules = []",
            "limits[0].max_changes_per_hour: input should be greater than or equal to 1",
        ),
        (
            b'name = "t"\nrules = []\n[[limits]]\ndevice = "d"\npoint = "p"\nmax = 1\n'
            b'[[limits]]\ndevice = "d"\npoint = "p"\nmin = 0\n',
            "limits: give one limit per point; repeated: d/p",
        ),
        (
            _rules_toml('{ device = "d", point = "p" }'),
            "rules[0].when: give exactly one of above, below, equals",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = 1, below = 0 }'),
            "rules[0].when: give exactly one of above, below, equals",
        ),
        (
            _rules_toml('{ device = "d", point = "p", equals = 1, hysteresis = 1 }'),
            "rules[0].when: hysteresis applies to above and below, not to equals",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = 1, hysteresis = -1 }'),
            "rules[0].when.hysteresis: input should be greater than or equal to 0",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = 1, for_s = -1 }'),
            "rules[0].when.for_s: input should be greater than or equal to 0",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = inf }'),
            "rules[0].when.above: input should be a finite number",
        ),
        (
            _rules_toml('{ device = "d", point = "p", equals = [1] }'),
            "rules[0].when.equals: give a boolean, a number or a text",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = 1, between = ["25:00", "06:00"] }'),
            "rules[0].when.between[0]: give a local time as HH:MM, from 00:00 to 23:59",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = 1, between = ["06:00", "06:00"] }'),
            "rules[0].when: between starts and ends at 06:00: give two different times",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = 1, between = ["06:00"] }'),
            "rules[0].when.between",
        ),
        (
            _rules_toml('{ device = "d", point = "2p", above = 1 }'),
            "rules[0].when.point: give a point name",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = 1 }', ""),
            "rules[0]: give then, alert or both",
        ),
        (
            _rules_toml(
                '{ device = "d", point = "p", above = 1 }',
                'then = { device = "d", point = "q", vaule = 1 }',
            ),
            "rules[0].then: unknown key 'vaule' (a typo?) (and 1 more problem)",
        ),
        (
            _rules_toml(
                '{ device = "d", point = "p", above = 1 }',
                'then = { device = "d", point = "q", value = nan }',
            ),
            "rules[0].then.value: give a finite number",
        ),
        (
            _rules_toml(
                '{ device = "d", point = "p", above = 1 }',
                'then = { device = "d", point = "q", value = "' + "x" * 300 + '" }',
            ),
            "rules[0].then.value: give a text of at most 256 characters",
        ),
        (
            _rules_toml(
                '{ device = "d", point = "p", above = 1 }', 'alert = { severity = "urgent" }'
            ),
            "rules[0].alert.severity: input should be 'informational', 'low', 'medium', 'high' "
            "or 'critical' (and 1 more problem)",
        ),
        (
            _rules_toml('{ device = "d", point = "p", above = 1 }', 'alert = { description = "" }'),
            "rules[0].alert.description: string should have at least 1 character",
        ),
        (
            _rules_toml(
                '{ device = "d", point = "p", above = 1 }',
                'alert = { description = "' + "x" * 501 + '" }',
            ),
            "rules[0].alert.description: string should have at most 500 characters",
        ),
    ],
)
def test_malformed_input_is_refused_with_one_sentence(content: bytes, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_ruleset(content)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_rule_ids_are_unique() -> None:
    content = (
        b'name = "t"\n'
        + b'[[rules]]\nid = "a"\nwhen = { device = "d", point = "p", above = 1 }\n'
        + b'alert = { description = "x" }\n' * 1
        + b'[[rules]]\nid = "a"\nwhen = { device = "d", point = "p", below = 1 }\n'
        + b'alert = { description = "y" }\n'
    )
    with pytest.raises(RuleError, match=r"^rules: rule ids must be unique; repeated: a$"):
        parse_ruleset(content)


def test_at_most_200_rules() -> None:
    rule = {"when": {"device": "d", "point": "p", "above": 1}, "alert": {"description": "x"}}
    data = {"name": "t", "rules": [{"id": f"r{i}", **rule} for i in range(201)]}
    with pytest.raises(RuleError, match="rules: list should have at most 200 items"):
        parse_ruleset(json.dumps(data).encode())
    data["rules"] = data["rules"][:200]
    assert len(parse_ruleset(json.dumps(data).encode()).rules) == 200


def test_oversize_content_is_refused_before_parsing() -> None:
    content = b"# " + b"x" * MAX_RULESET_BYTES
    with pytest.raises(RuleError, match=r"more than the 262144 allowed"):
        parse_ruleset(content)


def test_models_are_frozen() -> None:
    rs = parse_ruleset(EVERY_FEATURE)
    with pytest.raises(ValueError, match="frozen"):
        rs.rules[0].when.above = 1


_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


@settings(max_examples=60, deadline=None)
@given(
    equals=_scalars,
    value=_scalars,
    threshold=st.floats(allow_nan=False, allow_infinity=False),
    for_s=st.floats(min_value=0, max_value=3600),
)
def test_any_valid_rule_set_round_trips_through_its_canonical_form(
    equals: bool | int | float | str,
    value: bool | int | float | str,
    threshold: float,
    for_s: float,
) -> None:
    rs = RuleSet.model_validate(
        {
            "name": "p",
            "rules": [
                {
                    "id": "eq",
                    "when": {"device": "d", "point": "p", "equals": equals},
                    "then": {"device": "d", "point": "q", "value": value},
                },
                {
                    "id": "above",
                    "when": {"device": "d", "point": "p", "above": threshold, "for_s": for_s},
                    "alert": {"description": "x"},
                },
            ],
        }
    )
    dumped = dump_ruleset(rs)
    again = parse_ruleset(dumped)
    assert again == rs
    assert type(again.rules[0].when.equals) is type(equals)
    assert dump_ruleset(again) == dumped


def test_errors_never_escape_as_anything_but_rule_error() -> None:
    for content in (b"", b"{", b"[]", b"{}", b"42", b'{"name": 1}', b"name = 1\nrules = [1]"):
        with pytest.raises(RuleError):
            parse_ruleset(content)
