"""The pure MQTT codecs: JSON selectors, UltraLight 2.0, conversion, timestamps."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldt.drivers.mqtt.payload import (
    PayloadError,
    UlCommand,
    UlGroup,
    convert,
    format_selector,
    format_ul_command,
    parse_json,
    parse_selector,
    parse_timestamp_ms,
    parse_ul,
    parse_ul_command,
    parse_ul_groups,
    select,
    unconvert,
)

# -- selectors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("$", ()),
        ("$.ENERGY.Power", ("ENERGY", "Power")),
        ("$.sensors[0].value", ("sensors", 0, "value")),
        ("$['odd key'][12]", ("odd key", 12)),
        ('$["it\'s"].x', ("it's", "x")),
        ("$.switch:0.apower", ("switch:0", "apower")),
    ],
)
def test_selectors_parse(text: str, parsed: tuple[Any, ...]) -> None:
    assert parse_selector(text) == parsed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ENERGY.Power", "must start with '\\$'"),
        ("$..Power", "recursive descent"),
        ("$.a[*]", "only \\[N\\]"),
        ("$.a[-1]", "only \\[N\\]"),
        ("$.a[0:2]", "only \\[N\\]"),
        ("$.a[?(@.x>1)]", "only \\[N\\]"),
        ("$.", "expected a key"),
        ("$.1abc", "expected a key"),
        ("$a", "unexpected 'a'"),
        ("$.a[01]", "only \\[N\\]"),
        ("$['a\\'b']", "only \\[N\\]"),
    ],
)
def test_unsupported_selectors_are_rejected_clearly(text: str, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        parse_selector(text)


_keys = st.text(min_size=1, max_size=12).filter(lambda k: "'" not in k or '"' not in k)
_keys = _keys.filter(lambda k: "\\" not in k)
_parts = st.lists(st.one_of(_keys, st.integers(0, 50)), max_size=6)


@given(_parts)
def test_selector_text_round_trips(parts: list[str | int]) -> None:
    assert parse_selector(format_selector(tuple(parts))) == tuple(parts)


def _build(parts: list[str | int], leaf: Any) -> Any:
    doc: Any = leaf
    for part in reversed(parts):
        doc = [None] * part + [doc] if isinstance(part, int) else {part: doc}
    return doc


@given(
    _parts,
    st.one_of(
        st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(), st.booleans()
    ),
)
def test_select_finds_what_was_put_there(parts: list[str | int], leaf: Any) -> None:
    doc = _build(parts, leaf)
    payload = json.dumps(doc).encode()
    sel = parse_selector(format_selector(tuple(parts)))
    assert parse_json(payload, {"p": sel}) == {"p": leaf}
    assert select(doc, sel) == leaf


def test_select_reports_where_a_value_is_missing() -> None:
    doc = {"a": {"b": [1]}}
    with pytest.raises(PayloadError, match=r"no value at \$\.a\.c"):
        select(doc, ("a", "c"))
    with pytest.raises(PayloadError, match=r"no element \[3\] at \$\.a\.b"):
        select(doc, ("a", "b", 3))
    assert parse_json(b'{"a": 1}', {"x": ("b",), "y": ("a",)}) == {"y": 1}


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"{", "malformed JSON"),
        (b"\xff", "not UTF-8"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b"[" * 100_000, "malformed JSON"),
        (b" " * 300_000, "exceeds"),
    ],
)
def test_malformed_json_is_a_payload_error(payload: bytes, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        parse_json(payload, {"a": ("a",)})


@given(st.binary(max_size=200))
def test_parse_json_never_raises_anything_but_payload_error(payload: bytes) -> None:
    with contextlib.suppress(PayloadError):
        parse_json(payload, {"a": ("a", 0), "b": ()})


# -- conversion ------------------------------------------------------------------


def test_conversion_by_type_with_scale_and_offset() -> None:
    assert convert("21.5", "float") == 21.5
    assert convert(215, "float", 0.1) == pytest.approx(21.5)
    assert convert("2619845", "float", 0.001) == pytest.approx(2619.845)
    assert convert(40, "int") == 40
    assert type(convert(40, "int")) is int
    assert convert("7", "int", 2, 1) == 15
    assert convert("ON", "bool") is True
    assert convert(0, "bool") is False
    assert convert(True, "bool") is True
    assert convert(12, "string") == "12"
    for raw, kind in [
        ("abc", "float"),
        ("1.5", "int"),
        ({}, "float"),
        (True, "float"),
        (None, "string"),
    ]:
        with pytest.raises(PayloadError):
            convert(raw, kind)  # type: ignore[arg-type]
    for raw in ("nan", "inf", float("inf")):
        with pytest.raises(PayloadError, match="finite"):
            convert(raw, "float")
    with pytest.raises(PayloadError, match="boolean"):
        convert("maybe", "bool")


@given(st.integers(-(10**6), 10**6), st.sampled_from([1.0, 0.1, 0.001, 2.0]), st.floats(-100, 100))
def test_unconvert_inverts_convert(raw: int, scale: float, offset: float) -> None:
    value = convert(raw, "float", scale, offset)
    assert isinstance(value, float)
    assert unconvert(value, "float", scale, offset) == pytest.approx(
        raw, abs=1e-6 * max(1, abs(raw))
    )


def test_unconvert_rejects_values_that_do_not_fit() -> None:
    assert unconvert(True, "bool") is True
    assert unconvert(30, "int") == 30
    for value, kind in [
        ("x", "float"),
        (1.5, "int"),
        (1, "bool"),
        (3, "string"),
        (math.nan, "float"),
    ]:
        with pytest.raises(PayloadError):
            unconvert(value, kind)  # type: ignore[arg-type]


# -- timestamps ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "ms"),
    [
        ("2016-06-13T00:35:30Z", 1465778130000),
        ("2016-06-13T02:35:30+02:00", 1465778130000),
        ("2016-06-13T00:35:30.250Z", 1465778130250),
        ("2016-06-13T00:35:30", 1465778130000),  # no offset: UTC
        (1465778130, 1465778130000),
        (1465778130.5, 1465778130500),
        (1465778130250, 1465778130250),
    ],
)
def test_timestamps(raw: Any, ms: int) -> None:
    assert parse_timestamp_ms(raw) == ms


@pytest.mark.parametrize("raw", ["yesterday", "2016-06-13", True, None, -5, {}, float("nan"), 1e20])
def test_bad_timestamps(raw: Any) -> None:
    with pytest.raises(PayloadError):
        parse_timestamp_ms(raw)


# -- UltraLight 2.0 --------------------------------------------------------------


def test_ul_examples_from_the_fiware_manual() -> None:
    assert parse_ul(b"t|15|k|abc") == {"t": "15", "k": "abc"}
    assert parse_ul_groups(b"gps|1.2/3.4#t|10") == [
        UlGroup(None, {"gps": "1.2/3.4"}),
        UlGroup(None, {"t": "10"}),
    ]
    assert parse_ul_groups(b"2016-06-13T00:35:30Z|lle|100") == [
        UlGroup("2016-06-13T00:35:30Z", {"lle": "100"})
    ]
    assert parse_ul(b"t|21.5|h|40\n") == {"t": "21.5", "h": "40"}
    assert parse_ul(b"t|1#t|2") == {"t": "2"}  # later groups win


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "empty"),
        (b"t|1|h", "odd number of fields"),
        (b"t", "odd number of fields"),
        (b"|1", "empty attribute name"),
        (b"t|1#", "empty attribute name|odd number"),
        (b"dev@cmd|x", "looks like a command"),
        (b"\xc3\x28", "not UTF-8"),
        (b"2016-06-13T00:35:30Z", "odd number of fields"),
    ],
)
def test_malformed_ul_is_a_payload_error(payload: bytes, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        parse_ul_groups(payload)


_ul_key = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8)
_ul_value = st.text(
    alphabet=st.characters(blacklist_characters="|#\r\n", blacklist_categories=["Cs"]), max_size=10
)
_measures = st.dictionaries(_ul_key, _ul_value, min_size=1, max_size=6)
_stamps = st.one_of(
    st.none(),
    st.datetimes(min_value=dt.datetime(1970, 1, 2), timezones=st.just(dt.UTC)).map(
        lambda d: d.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
)


@given(st.lists(st.tuples(_stamps, _measures), min_size=1, max_size=4))
def test_ul_round_trips(groups: list[tuple[str | None, dict[str, str]]]) -> None:
    text = "#".join(
        "|".join(([ts] if ts else []) + [f"{k}|{v}" for k, v in m.items()]) for ts, m in groups
    )
    parsed = parse_ul_groups(text.encode())
    expected = [(ts, dict(m)) for ts, m in groups]
    last = expected[-1][1]
    key = list(last)[-1]
    last[key] = last[key].rstrip()  # surrounding blanks are stripped from the whole payload
    assert [(g.timestamp, g.measures) for g in parsed] == expected


@given(st.binary(max_size=200))
def test_parse_ul_never_raises_anything_but_payload_error(payload: bytes) -> None:
    with contextlib.suppress(PayloadError):
        parse_ul(payload)


def test_ul_commands_and_results() -> None:
    assert format_ul_command("Robot1", "turn", "left") == b"Robot1@turn|left"
    assert (
        format_ul_command("ws167", "ping", "param1=1|param2=2") == b"ws167@ping|param1=1|param2=2"
    )
    assert format_ul_command("lamp", "on", True) == b"lamp@on|true"
    assert format_ul_command("s", "period", 30) == b"s@period|30"
    assert parse_ul_command(b"weatherStation167@ping|Ping ok") == UlCommand(
        "weatherStation167", "ping", "Ping ok"
    )
    assert parse_ul_command(b"lamp001@on|") == UlCommand("lamp001", "on", "")
    for bad in (b"ping|ok", b"@ping|x", b"dev@|x", b"dev@ping", b"a@b@c|x"):
        with pytest.raises(PayloadError, match="not an UltraLight command"):
            parse_ul_command(bad)
    for device, command, value in (
        ("a|b", "c", 1),
        ("a", "c#", 1),
        ("", "c", 1),
        ("a", "c", "x#y"),
    ):
        with pytest.raises(PayloadError):
            format_ul_command(device, command, value)


@given(_ul_key, _ul_key, _ul_value)
def test_ul_command_round_trips(device: str, command: str, value: str) -> None:
    parsed = parse_ul_command(format_ul_command(device, command, value))
    assert (parsed.device_id, parsed.command) == (device, command)
    assert parsed.value == value.strip() or value != value.strip()
