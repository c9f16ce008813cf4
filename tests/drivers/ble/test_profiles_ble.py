"""The shipped BLE profiles parse into the BLE models and fit their simulator."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ldt.drivers.ble import BleFormat, BlePoint, BleProfileSettings
from ldt.drivers.ble.bthome import BTHOME_OBJECTS
from ldt.drivers.ble.ruuvi import RUUVI_FIELDS

PROFILES = Path(__file__).resolve().parents[3] / "firmware_configs"


@pytest.mark.parametrize(
    ("name", "fmt"), [("ruuvitag", BleFormat.RUUVI), ("bthome-th", BleFormat.BTHOME)]
)
def test_ble_profile_validates(name: str, fmt: BleFormat) -> None:
    doc = tomllib.loads((PROFILES / f"{name}.toml").read_text(encoding="utf-8"))
    assert doc["profile"]["protocol"] == "ble"
    assert doc["profile"]["name"] == name
    assert doc["profile"]["source"].startswith("https://")
    settings = BleProfileSettings.model_validate(doc["ble"])
    assert settings.format is fmt
    points = [BlePoint.model_validate(p) for p in doc["points"]]
    known = (
        set(RUUVI_FIELDS) if fmt is BleFormat.RUUVI else {o.name for o in BTHOME_OBJECTS.values()}
    )
    assert {p.field_name for p in points} <= known
    assert all(p.characteristic is None for p in points)


def test_ruuvi_profile_reports_pressure_in_hectopascal() -> None:
    doc = tomllib.loads((PROFILES / "ruuvitag.toml").read_text(encoding="utf-8"))
    pressure = next(BlePoint.model_validate(p) for p in doc["points"] if p["name"] == "pressure")
    assert (pressure.scale, pressure.unit) == (0.01, "A97")
