"""The linear-time regex engine behind ``~=``: agrees with ``re``, never backtracks."""

from __future__ import annotations

import re
import time as clock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldt.cloud.ngsild.query import SafeRegex as ReexportedSafeRegex
from ldt.cloud.ngsild.safe_regex import MAX_REGEX_LENGTH, SafeRegex

regex_atoms = st.sampled_from(
    ["a", "b", ".", "[ab]", "[^a]", "\\d", "\\w", "\\s", "(a|b)", "(?:ab)", "\\.", "x"]
)
regex_quants = st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,3}", "{0,}", "*?"])


@st.composite
def safe_patterns(draw: st.DrawFn) -> str:
    parts = [draw(regex_atoms) + draw(regex_quants) for _ in range(draw(st.integers(1, 5)))]
    body = "".join(parts)
    if draw(st.booleans()):
        body = body + "|" + draw(regex_atoms)
    prefix = draw(st.sampled_from(["", "^", "(?i)"]))
    suffix = draw(st.sampled_from(["", "$"]))
    return prefix + body + suffix


@given(safe_patterns(), st.text(alphabet="abAB1 .\nx_", max_size=12))
@settings(max_examples=1500)
def test_safe_regex_agrees_with_re_search(pattern: str, text: str) -> None:
    flags = 0
    plain = pattern
    if pattern.startswith("(?i)"):
        flags, plain = re.IGNORECASE, pattern[4:]
    assert SafeRegex(pattern).search(text) is (re.search(plain, text, flags) is not None)


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*$", "(a*)*b", "(x+x+)+y", "(.*a){20}"])
def test_catastrophic_patterns_run_in_linear_time(pattern: str) -> None:
    text = "a" * 3000 + "!"
    started = clock.perf_counter()
    SafeRegex(pattern).search(text)
    assert clock.perf_counter() - started < 5.0


@pytest.mark.parametrize(
    "pattern",
    [
        "\\1",
        "(?=a)",
        "(?<=a)",
        "(?P<n>a)",
        "a{101}",
        "a{3,2}",
        "\\b",
        "[[:alpha:]]",
        "*a",
        "(a",
        "a)",
        "[z-a]",
        "a**",
    ],
)
def test_unsupported_or_invalid_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        SafeRegex(pattern)


def test_the_query_module_re_exports_the_engine() -> None:
    assert ReexportedSafeRegex is SafeRegex


def test_pattern_length_is_bounded() -> None:
    SafeRegex("a" * MAX_REGEX_LENGTH)
    with pytest.raises(ValueError, match="longer than"):
        SafeRegex("a" * (MAX_REGEX_LENGTH + 1))
