"""Safety bounds the cloud cannot lift (issue 14, item 8): the gateway's own ``[[safety]]``
bounds hold with no rule set, and a rule set from the cloud can only tighten them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ldt.agent.config import load_gateway_config
from ldt.agent.control.edge import EdgeControl
from ldt.agent.control.safety import SafetyError, SafetyGuard, combine
from ldt.contract.rules import PointLimit

LOCAL = PointLimit(device="station-1", point="pump1_speed", min=0, max=80, max_changes_per_hour=10)


def test_a_rule_set_cannot_lift_a_local_bound() -> None:
    lifted = PointLimit(device="station-1", point="pump1_speed", min=-50, max=500)
    guard = SafetyGuard(combine([LOCAL], [lifted]))
    with pytest.raises(SafetyError, match="safety max 80"):
        guard.check("station-1", "pump1_speed", 100.0, now_ms=0)
    with pytest.raises(SafetyError, match="safety min 0"):
        guard.check("station-1", "pump1_speed", -1.0, now_ms=0)
    tighter = PointLimit(device="station-1", point="pump1_speed", max=60, max_changes_per_hour=2)
    (both,) = combine([LOCAL], [tighter])
    assert (both.min, both.max, both.max_changes_per_hour) == (0, 60, 2)
    other = PointLimit(device="relay-1", point="relay1", max_changes_per_hour=120)
    assert len(combine([LOCAL], [other])) == 2


async def test_local_bounds_hold_without_a_rule_set(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[gateway]\nid = "gw-1"\ndata_dir = "data"\n[cloud]\nurl = "http://127.0.0.1:9"\n'
        'token = "0123456789abcdef0123"\n'
        '[[safety]]\ndevice = "station-1"\npoint = "pump1_speed"\nmax = 80\n'
    )
    cfg = load_gateway_config(config)
    assert cfg.safety[0].max == 80

    async def store(*_args: object) -> None:
        return None

    async def series_of(*_args: object) -> int:
        return 1

    edge = EdgeControl(
        folder=tmp_path / "control", points={}, entities={}, store=store,
        series_of=series_of, local_limits=cfg.safety,
    )  # fmt: skip
    with pytest.raises(SafetyError, match="safety max 80"):
        edge.actuator.guard.check("station-1", "pump1_speed", 100.0, now_ms=0)
