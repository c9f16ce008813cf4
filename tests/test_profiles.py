"""The shipped device profiles: valid for the agent, and read the same by the simulator."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ldt.agent.config import DEFAULT_PROFILE_DIR, ConfigError, load_profile
from ldt.simulators.modbus.errors import SimulatorError
from ldt.simulators.modbus.profile import load_sim_profile

ALL = sorted(DEFAULT_PROFILE_DIR.glob("*.toml"))
SHIPPED = [p for p in ALL if tomllib.loads(p.read_text())["profile"]["protocol"] == "modbus"]
"""The Modbus profiles (the other protocols' profiles are tested with their drivers)."""


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_shipped_profile_loads(path: Path) -> None:
    profile = load_profile(path)
    assert profile.name == path.stem
    assert profile.profile.source.strip()
    assert profile.points


def test_the_expected_profiles_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"eastron-sdm120", "eastron-sdm630", "xymd02-th"} <= names
    protocols = {tomllib.loads(p.read_text())["profile"]["protocol"] for p in ALL}
    assert protocols == {"modbus", "opcua", "mqtt", "ble"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_profile_is_valid_and_simulator_reads_the_same_map(path: Path) -> None:
    profile = load_profile(path)
    assert profile.name == path.stem
    assert profile.profile.source.strip()
    sim = load_sim_profile(path)
    assert sim.name == profile.name
    assert [(p.name, p.table, p.address, p.type, p.registers) for p in sim.points] == [
        (p.name, p.table.value, p.address, p.type.value, p.register_count) for p in profile.points
    ]


def test_eastron_maps_match_the_datasheet_numbers() -> None:
    """Spot checks of 30001-style numbers -> 0-based addresses, from the Eastron manuals."""
    sdm120 = {p.name: p for p in load_profile(DEFAULT_PROFILE_DIR / "eastron-sdm120.toml").points}
    assert {n: sdm120[n].address for n in ("voltage", "current", "active_power")} == {
        "voltage": 0,
        "current": 6,
        "active_power": 12,
    }
    assert sdm120["frequency"].address == 70
    assert sdm120["import_active_energy"].address == 72
    assert sdm120["total_active_energy"].address == 342
    assert all(p.type.value == "float32" for p in sdm120.values())
    assert sdm120["import_active_energy"].poll_interval_s == 60.0
    sdm630 = {p.name: p for p in load_profile(DEFAULT_PROFILE_DIR / "eastron-sdm630.toml").points}
    assert [sdm630[f"voltage_l{i}"].address for i in (1, 2, 3)] == [0, 2, 4]
    assert [sdm630[f"current_l{i}"].address for i in (1, 2, 3)] == [6, 8, 10]
    assert [sdm630[f"active_power_l{i}"].address for i in (1, 2, 3)] == [12, 14, 16]
    assert sdm630["total_active_power"].address == 52
    assert sdm630["serial_number"].address == 0xFC00


def test_shipped_profiles_exercise_tables_and_types() -> None:
    points = [p for path in SHIPPED for p in load_profile(path).points]
    assert {p.table.value for p in points} >= {"input", "holding"}
    assert {p.type.value for p in points} >= {"int16", "uint16", "float32", "uint32"}
    assert any(p.scale != 1.0 for p in points)
    assert any(p.writable for p in points)


BAD = [
    ('name = "x"\ntable = "coil"\naddress = 0\ntype = "float32"\n', "coil"),
    ('name = "x"\ntable = "input"\naddress = 65535\ntype = "float32"\n', "address"),
    ('name = "x"\ntable = "input"\naddress = 0\ntype = "string"\n', "length"),
    ('name = "x"\ntable = "input"\naddress = 0\ntype = "float99"\n', "type"),
]


@pytest.mark.parametrize(("point", "word"), BAD)
def test_bad_points_are_rejected_by_both_readers(tmp_path: Path, point: str, word: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[profile]\nname = "bad"\nmanufacturer = "m"\nmodel = "m"\nprotocol = "modbus"\n'
        'source = "s"\n\n[[points]]\n' + point
    )
    with pytest.raises(ConfigError):
        load_profile(path)
    with pytest.raises(SimulatorError, match=word):
        load_sim_profile(path)
