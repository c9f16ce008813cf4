"""Safety bounds: min/max per point and a sliding-hour limit on changes."""

from __future__ import annotations

import json

import pytest

from ldt.agent.control.safety import SafetyError, SafetyGuard
from ldt.contract.rules import PointLimit

T0 = 1_700_000_000_000
MINUTE = 60_000


def _guard(**limit: float | int | None) -> SafetyGuard:
    return SafetyGuard([PointLimit(device="pump-1", point="speed", **limit)])  # type: ignore[arg-type]


def test_points_without_a_limit_pass() -> None:
    guard = _guard(max=100)
    assert guard.limit("pump-2", "speed") is None
    guard.check("pump-2", "speed", 10_000, T0)
    guard.check("pump-1", "mode", "anything", T0)
    for i in range(100):
        guard.record("pump-2", "speed", i, T0 + i)
        guard.check("pump-2", "speed", i + 1, T0 + i)


def test_limit_lookup() -> None:
    guard = _guard(min=0, max=100)
    limit = guard.limit("pump-1", "speed")
    assert limit is not None
    assert (limit.min, limit.max) == (0, 100)


def test_min_and_max() -> None:
    guard = _guard(min=10, max=100)
    guard.check("pump-1", "speed", 10, T0)
    guard.check("pump-1", "speed", 100.0, T0)
    with pytest.raises(
        SafetyError, match=r"^writing 150 to pump-1/speed refused: above its safety max 100$"
    ):
        guard.check("pump-1", "speed", 150, T0)
    with pytest.raises(
        SafetyError, match=r"^writing 9\.5 to pump-1/speed refused: below its safety min 10$"
    ):
        guard.check("pump-1", "speed", 9.5, T0)


def test_booleans_count_as_0_and_1() -> None:
    guard = _guard(min=0, max=0)
    guard.check("pump-1", "speed", False, T0)
    with pytest.raises(
        SafetyError, match="writing true to pump-1/speed refused: above its safety max 0"
    ):
        guard.check("pump-1", "speed", True, T0)


@pytest.mark.parametrize("value", ["50", float("nan"), float("inf")])
def test_non_numbers_are_refused_on_a_bounded_point(value: str | float) -> None:
    guard = _guard(min=0, max=100)
    with pytest.raises(SafetyError, match="has safety bounds and takes finite numbers only"):
        guard.check("pump-1", "speed", value, T0)


def test_a_rate_only_limit_takes_any_value() -> None:
    guard = _guard(max_changes_per_hour=2)
    guard.check("pump-1", "speed", "fast", T0)


def test_changes_per_hour_over_a_sliding_hour() -> None:
    guard = _guard(max_changes_per_hour=3)
    for i, value in enumerate([1, 2, 3]):  # three changes, at 0, 10 and 20 minutes
        guard.check("pump-1", "speed", value, T0 + i * 10 * MINUTE)
        guard.record("pump-1", "speed", value, T0 + i * 10 * MINUTE)
    with pytest.raises(SafetyError) as caught:
        guard.check("pump-1", "speed", 4, T0 + 30 * MINUTE)
    assert str(caught.value) == (
        "writing 4 to pump-1/speed refused: it changed 3 times in the last hour, its safety "
        "limit is 3; the next change is allowed in 1800 s"
    )
    with pytest.raises(SafetyError, match="allowed in 1 s"):
        guard.check("pump-1", "speed", 4, T0 + 60 * MINUTE - 1)
    guard.check("pump-1", "speed", 4, T0 + 60 * MINUTE)  # the first change is 1 h old: out
    guard.record("pump-1", "speed", 4, T0 + 60 * MINUTE)
    with pytest.raises(SafetyError, match="allowed in 600 s"):
        guard.check("pump-1", "speed", 5, T0 + 60 * MINUTE)


def test_writing_the_last_value_again_is_not_a_change() -> None:
    guard = _guard(max_changes_per_hour=1)
    guard.check("pump-1", "speed", True, T0)
    guard.record("pump-1", "speed", True, T0)
    for i in range(10):  # a rule re-asserting its value: always allowed, never counted
        guard.check("pump-1", "speed", True, T0 + i * MINUTE)
        guard.check("pump-1", "speed", 1, T0 + i * MINUTE)  # the same write as True
        guard.record("pump-1", "speed", True, T0 + i * MINUTE)
    with pytest.raises(SafetyError, match="changed 1 times in the last hour"):
        guard.check("pump-1", "speed", False, T0 + 30 * MINUTE)
    guard.check("pump-1", "speed", False, T0 + 61 * MINUTE)


def test_bounds_and_rate_together() -> None:
    guard = _guard(min=0, max=100, max_changes_per_hour=1)
    guard.record("pump-1", "speed", 50, T0)
    with pytest.raises(SafetyError, match="above its safety max"):
        guard.check("pump-1", "speed", 101, T0 + MINUTE)
    with pytest.raises(SafetyError, match="changed 1 times"):
        guard.check("pump-1", "speed", 60, T0 + MINUTE)


def test_the_rate_limit_survives_a_restart() -> None:
    guard = _guard(max_changes_per_hour=2)
    guard.record("pump-1", "speed", 1, T0)
    guard.record("pump-1", "speed", 2, T0 + MINUTE)
    saved = json.loads(json.dumps(guard.snapshot()))
    restarted = _guard(max_changes_per_hour=2)
    restarted.restore(saved)
    restarted.check("pump-1", "speed", 2, T0 + 2 * MINUTE)  # unchanged value: fine
    with pytest.raises(SafetyError, match="changed 2 times"):
        restarted.check("pump-1", "speed", 3, T0 + 2 * MINUTE)
    unlimited = SafetyGuard([])
    unlimited.restore(saved)  # a point without a limit any more: dropped
    unlimited.check("pump-1", "speed", 3, T0 + 2 * MINUTE)


def test_restore_refuses_a_malformed_snapshot() -> None:
    with pytest.raises(ValueError, match="the saved write history is malformed"):
        _guard(max=1).restore({"v": 1, "points": [{"device": "pump-1"}]})
