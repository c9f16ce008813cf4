"""What the agent logs about a failing device: per point and per reason, not per poll."""

from __future__ import annotations

import logging

import pytest

from ldt.agent.poller import SUMMARY_S, DeviceHealth
from ldt.reading import Quality, Reading


def test_failures_are_logged_per_point_and_reason_not_per_poll(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 15: logging once per device and distinct reason, a healthy server with two bad
    points logged 45 warnings in 109 s (the device's last reason flipped between them).
    Now: one line when a point starts failing, a summary at most every 10 minutes, one
    line when it reads again."""
    now = [1000.0]
    health = DeviceHealth(device_id="meter", clock=lambda: now[0])

    def reading(point: str, reason: str | None) -> Reading:
        quality = Quality.GOOD if reason is None else Quality.BAD
        value = 1 if reason is None else None
        return Reading(device_id="meter", point=point, value=value, observed_at_ms=0,
                       quality=quality, reason=reason)  # fmt: skip

    with caplog.at_level(logging.INFO, logger="ldt.agent.poller"):
        for _ in range(200):  # 100 s of polls every 0.5 s
            health.record(reading("a", "modbus exception 2 reading holding 34"))
            health.record(reading("b", "modbus exception 3 reading holding 90"))
            health.record(reading("c", None))
            now[0] += 0.5
        assert [r.getMessage() for r in caplog.records] == ["point read failed"] * 2
        now[0] += SUMMARY_S
        health.record(reading("a", "modbus exception 2 reading holding 34"))
        health.record(reading("b", "modbus exception 3 reading holding 90"))
        health.record(reading("a", None))
        health.record(reading("b", None))
    messages = [r.getMessage() for r in caplog.records]
    assert (
        messages
        == ["point read failed"] * 2 + ["point still failing"] * 2 + ["point reads again"] * 2
    )
    assert caplog.records[2].__dict__["bad_readings"] == 201
