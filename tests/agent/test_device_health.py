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


def test_a_device_down_is_one_line_whatever_its_points_and_reasons(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When every point of a poll fails for one reason, the device is what fails: one
    line when it starts (the driver's "not connected: " and a change from a timeout to
    a refused connection are the same outage), a summary at most every 10 minutes, one
    line when it answers again; points failing on their own before are not told again."""
    now = [0.0]
    health = DeviceHealth(device_id="plc", clock=lambda: now[0])

    def poll(*reasons: str | None) -> None:
        health.record_poll([
            Reading(device_id="plc", point=f"p{i}", value=None if why else 1, observed_at_ms=0,
                    quality=Quality.BAD if why else Quality.GOOD, reason=why)
            for i, why in enumerate(reasons)
        ])  # fmt: skip

    with caplog.at_level(logging.INFO, logger="ldt.agent.poller"):
        poll(None, "modbus exception 2 reading holding 35")
        for reason in ["timeout after 0.5 s", "not connected: timeout after 0.5 s"] * 50 + [
            "not connected: connection refused"
        ] * 100:
            poll(reason, reason)
            now[0] += 5
        poll(None, "modbus exception 2 reading holding 35")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "point read failed",
        "device read failed",
        "device still failing",  # 1,000 s of outage: one summary at 600 s
        "device reads again",
        "point still failing",  # its own failure, now 1,000 s old: the 10-minute summary
    ]
    assert health.bad == 1 + 400 + 1
    assert health.down is None


def test_one_group_failing_alone_is_told_per_point_not_as_the_device(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A point polled alone in its own group, outside the map, while the other group
    reads: its point is told once, and the device is never said down (the review of issue
    15 found "device read failed" / "device reads again" logged at every poll)."""
    health = DeviceHealth(device_id="meter", poll_groups=2)
    hole = Reading(
        device_id="meter",
        point="hole",
        value=None,
        observed_at_ms=0,
        quality=Quality.BAD,
        reason="modbus exception 2 reading holding 90",
    )
    good = Reading(device_id="meter", point="a", value=1, observed_at_ms=0)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="ldt.agent.poller"):
        for _ in range(50):
            health.record_poll([hole], group=60.0)
            health.record_poll([good], group=1.0)
    assert [r.getMessage() for r in caplog.records] == ["point read failed"]
