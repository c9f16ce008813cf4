"""``ldt modbus scan`` against npm's modbus-serial (issue 15): a technician asks the device
itself which registers, and which of a profile's points, answer."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.thirdparty.modbus_server import modbus_serial_server

pytestmark = pytest.mark.integration

MAP = {
    "unit": 1,
    "holding": {"32": 100, "37": 7, "38": 0x4366, "39": 0x0000, "40": 5},
    "input": {"0": 0x4366, "1": 0x0000},
    "coils": {"0": True, "1": False},
}
PROFILE = """
[profile]
name = "gappy-meter"
manufacturer = "test"
model = "modbus-serial"
protocol = "modbus"
source = "tests/thirdparty/modbus/server.js"
description = "a map with holes"

[[points]]
name = "a"
table = "holding"
address = 32

[[points]]
name = "missing"
table = "holding"
address = 34

[[points]]
name = "temperature"
table = "holding"
address = 38
type = "float32"

[[points]]
name = "voltage"
table = "input"
address = 0
type = "float32"
"""


def _scan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ldt", "modbus", "scan", "127.0.0.1", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_a_range_scan_lists_what_answers_and_what_does_not(tmp_path: Path) -> None:
    async with modbus_serial_server(tmp_path, MAP) as server:
        done = await asyncio.to_thread(
            _scan, "--port", str(server.port), "--table", "holding", "--start", "30",
            "--count", "12",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "holding 30..31\tno: modbus exception 2 (illegal data address)",
        "holding 32\tanswers",
        "holding 33..36\tno: modbus exception 2 (illegal data address)",
        "holding 37..40\tanswers",
        "holding 41\tno: modbus exception 2 (illegal data address)",
    ]
    assert done.stderr.strip() == "5 of 12 holding addresses answer"


async def test_a_profile_scan_names_each_point_and_a_wrong_unit(tmp_path: Path) -> None:
    profile = tmp_path / "gappy-meter.toml"
    profile.write_text(PROFILE)
    async with modbus_serial_server(tmp_path, MAP) as server:
        done = await asyncio.to_thread(_scan, "--port", str(server.port), "--profile", str(profile))
        wrong = await asyncio.to_thread(
            _scan, "--port", str(server.port), "--unit", "7", "--timeout", "0.5",
            "--table", "input", "--count", "50",
        )  # fmt: skip
    assert done.returncode == 1  # one point does not answer
    lines = done.stdout.splitlines()
    assert lines[0] == "point\ttable\taddress\ttype\tanswer"
    assert lines[1] == "a\tholding\t32\tuint16\t100"
    assert lines[2].startswith("missing\tholding\t34\tuint16\tno: modbus exception 2")
    assert lines[3] == "temperature\tholding\t38\tfloat32\t230.0"
    assert lines[4] == "voltage\tinput\t0\tfloat32\t230.0"
    assert done.stderr.strip() == "3 of 4 points answer"
    # a unit id the device ignores: one line with the hint, not 50 timeouts
    assert wrong.returncode == 1
    assert len(wrong.stdout.splitlines()) == 1
    assert "is unit_id 7 right?" in wrong.stdout


async def test_bit_tables_scan_too(tmp_path: Path) -> None:
    async with modbus_serial_server(tmp_path, MAP) as server:
        done = await asyncio.to_thread(
            _scan, "--port", str(server.port), "--table", "coil", "--count", "3"
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "coil 0..1\tanswers",
        "coil 2\tno: modbus exception 2 (illegal data address)",
    ]


def test_usage_errors_are_one_line() -> None:
    done = _scan("--table", "holding", "--count", "5000")
    assert done.returncode == 2
    assert done.stderr.strip() == "ldt modbus scan: --count must be 1..2000"
    done = _scan()
    assert done.returncode == 2
    assert "give --profile NAME" in done.stderr
    done = _scan("--profile", "no-such-profile")
    assert done.returncode == 2
    assert "no shipped profile named no-such-profile" in done.stderr
