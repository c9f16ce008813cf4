"""Gateway configs and profiles: valid files load, invalid ones name file, key path and problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ldt.agent.config import ConfigError, load_gateway_config, load_profile

PROFILE = """
[profile]
name = "test-meter"
manufacturer = "Acme"
model = "M1"
protocol = "modbus"
source = "test fixture"
poll_interval_s = 2

[[points]]
name = "voltage"
table = "input"
address = 0
type = "float32"
unit = "VLT"

[[points]]
name = "relay"
table = "coil"
address = 3
type = "bool"
writable = true
"""

GATEWAY = """
[gateway]
id = "gw-1"
data_dir = "data"
profile_dirs = ["profiles"]

[cloud]
url = "http://127.0.0.1:8080"
token = "0123456789abcdef0123"

[[devices]]
id = "m1"
profile = "test-meter"
[devices.connection]
host = "127.0.0.1"
port = 5020
"""


def _write(tmp_path: Path, gateway: str = GATEWAY, profile: str = PROFILE) -> Path:
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "test-meter.toml").write_text(profile)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(gateway)
    return cfg


def test_valid_config_loads_with_profiles_and_resolved_paths(tmp_path: Path) -> None:
    cfg = load_gateway_config(_write(tmp_path))
    assert cfg.gateway.data_dir == tmp_path / "data"
    assert cfg.buffer_path == tmp_path / "data" / "buffer.db"
    assert list(cfg.profiles) == ["test-meter"]
    dev = cfg.devices[0]
    assert cfg.entity_id(dev) == "urn:ngsi-ld:Device:gw-1:m1"
    points = cfg.profiles["test-meter"].points
    assert [p.register_count for p in points] == [2, 1]


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        (GATEWAY.replace("port = 5020", "port = 70000"), "devices[0].connection.port"),
        (GATEWAY.replace('id = "gw-1"', 'id = "gw 1!"'), "gateway.id"),
        (GATEWAY.replace('url = "http://127.0.0.1:8080"', 'url = "ftp://x"'), "cloud.url"),
        (GATEWAY.replace('profile = "test-meter"', 'profile = "nope"'), "no profile 'nope'"),
        (
            GATEWAY + "\n[[devices]]\nid='m1'\nprofile='test-meter'\n[devices.connection]\n"
            "host='h'\n",
            "repeated: m1",
        ),
        (GATEWAY.replace("[cloud]", "[cloud]\nbogus = 1"), "cloud.bogus: Extra inputs"),
        ("[gateway\nid=", "not valid TOML"),
    ],
)
def test_invalid_gateway_config_names_file_and_key(
    tmp_path: Path, gateway: str, expected: str
) -> None:
    path = _write(tmp_path, gateway=gateway)
    with pytest.raises(ConfigError) as info:
        load_gateway_config(path)
    text = str(info.value)
    assert str(path) in text
    assert expected in text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('table = "coil"', 'table = "input"'), "points[1]: input points are read-only"),
        (('type = "float32"', 'type = "float128"'), "points[0].type"),
        (("address = 0", "address = -1"), "points[0].address"),
        (('name = "relay"', 'name = "voltage"'), "repeated: voltage"),
        (('unit = "VLT"', 'unit = "volts"'), "points[0].unit"),
    ],
)
def test_invalid_profile_names_the_profile_file(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    _write(tmp_path, profile=PROFILE.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_gateway_config(tmp_path / "gateway.toml")
    text = str(info.value)
    assert "test-meter.toml" in text
    assert expected in text


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_profile(tmp_path / "absent.toml")


def test_check_config_cli_prints_problems_without_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, gateway=GATEWAY.replace("port = 5020", "port = 0"))
    proc = subprocess.run(
        [sys.executable, "-m", "ldt", "agent", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "devices[0].connection.port" in proc.stderr
    assert "Traceback" not in proc.stderr

    ok = _write(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "ldt", "agent", "check-config", str(ok)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok: gateway gw-1, 1 devices, 2 points" in proc.stdout


def test_other_protocols_connections_are_checked_and_paths_resolved(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        '[gateway]\nid = "gw"\n[cloud]\nurl = "http://127.0.0.1:1"\ntoken = "0123456789abcdef"\n'
        '[[devices]]\nid = "station"\nprofile = "pumping-station-opcua"\n'
        'connection = { protocol = "opcua", endpoint = "opc.tcp://10.0.0.5:4840", '
        'security_policy = "Basic256Sha256", security_mode = "SignAndEncrypt", '
        'client_certificate = "pki/gw.der", client_private_key = "pki/gw.pem" }\n'
        '[[devices]]\nid = "air"\nprofile = "fiware-ul-air-quality"\n'
        'connection = { protocol = "mqtt", host = "broker", api_key = "k" }\n'
    )
    loaded = load_gateway_config(cfg)
    station = loaded.devices[0].connection
    assert station.client_certificate == tmp_path / "pki" / "gw.der"
    assert loaded.devices[1].connection.protocol == "mqtt"

    cfg.write_text(cfg.read_text().replace('protocol = "mqtt"', 'protocol = "modbus-tcp"'))
    with pytest.raises(ConfigError) as err:
        load_gateway_config(cfg)
    assert "devices[1].connection.protocol: 'modbus-tcp' cannot reach a mqtt device" in str(
        err.value
    )

    cfg.write_text(cfg.read_text().replace("opc.tcp://10.0.0.5:4840", "http://nope"))
    with pytest.raises(ConfigError) as err:
        load_gateway_config(cfg)
    assert "devices[0].connection.endpoint" in str(err.value)
