"""MQTT payloads come from devices and from anyone who can publish on the broker: the
JSON and UltraLight 2.0 parsers, selectors, timestamps and the value conversion must
answer any bytes with a result or a ``PayloadError``, never another exception."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ldt.drivers.mqtt.payload import (
    PayloadError,
    convert,
    decode_json,
    parse_json,
    parse_selector,
    parse_timestamp_ms,
    parse_ul,
    parse_ul_command,
    parse_ul_groups,
    select,
)
from ldt.reading import Structured

EXAMPLES = int(os.environ.get("LDT_FUZZ_EXAMPLES", "400"))  # the long form: 20000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)
payload_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.text(alphabet="|#abc0123456789.-T:Z", max_size=12), max_size=12).map(
        lambda parts: "|".join(parts).encode()
    ),
)


def _only_payload_errors(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except PayloadError:
        return None


@FUZZ
@given(payload_bytes)
def test_json_and_ultralight_payloads(payload: bytes) -> None:
    _only_payload_errors(decode_json, payload)
    _only_payload_errors(parse_json, payload, {"a": ("a",), "b": ("b", 0)})
    groups = _only_payload_errors(parse_ul_groups, payload)
    if groups is not None:
        assert all(
            isinstance(k, str) and isinstance(v, str) for g in groups for k, v in g.measures.items()
        )
    _only_payload_errors(parse_ul, payload)
    _only_payload_errors(parse_ul_command, payload)


@FUZZ
@given(st.text(max_size=40), json_values)
def test_selectors_on_any_document(text: str, document: Any) -> None:
    selector = _only_payload_errors(parse_selector, text)
    if selector is not None:
        _only_payload_errors(select, document, selector)


@FUZZ
@given(json_values, st.sampled_from(["float", "int", "bool", "string", "datetime", "json"]))
def test_conversion_of_any_value(raw: Any, kind: Any) -> None:
    value = _only_payload_errors(convert, raw, kind, 0.1, 2.0)
    if value is None:
        return
    if isinstance(value, float):
        assert math.isfinite(value)
    assert isinstance(value, bool | int | float | str | Structured)


stamps = st.one_of(
    json_values,
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.text(alphabet="0123456789-T:.Z+ ", max_size=32),
)


@FUZZ
@example("0001-01-01T00000000")  # found by this test: year 1 gave a negative Unix time
@example("0001-01-01T00:00:00+14:00")
@example("9999-12-31T23:59:59-14:00")
@given(stamps)
def test_timestamps_of_any_value(raw: Any) -> None:
    ms = _only_payload_errors(parse_timestamp_ms, raw)
    if ms is not None:
        assert isinstance(ms, int)
        assert 0 <= ms <= 253402300799999
