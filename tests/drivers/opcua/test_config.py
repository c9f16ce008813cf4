"""The OPC UA profile schema, the shipped profile, the value codec, and the browse CLI."""

from __future__ import annotations

import asyncio
import struct
import sys
import tomllib
from pathlib import Path

import pytest
from asyncua import ua
from pydantic import ValidationError

from ldt.drivers.opcua.codec import from_variant, to_variant
from ldt.drivers.opcua.config import (
    OpcUaConnection,
    OpcUaPoint,
    OpcUaProfileSettings,
    PointMode,
    parse_browse_path,
)
from ldt.reading import Structured, Value
from ldt.simulators.opcua import OpcUaSimulator
from tests.drivers.modbus.conftest import free_port

PROFILE = Path(__file__).parents[3] / "firmware_configs" / "pumping-station-opcua.toml"


def test_the_shipped_profile_validates_and_matches_the_simulator() -> None:
    data = tomllib.loads(PROFILE.read_text())
    assert data["profile"]["protocol"] == "opcua"
    assert data["profile"]["name"] == PROFILE.stem
    OpcUaProfileSettings.model_validate(data["opcua"])
    points = [OpcUaPoint.model_validate(p) for p in data["points"]]
    names = {p.name for p in points}
    assert {"pump1_speed", "pump1_flow", "pump1_speed_setpoint", "inlet_level"} <= names
    assert any(p.writable for p in points)
    assert any(p.mode == "poll" for p in points)
    # every node is one the simulator serves (by identifier or by the last browse name)
    served = set(OpcUaSimulator().variable_names)
    for p in points:
        if p.node.startswith("/"):
            segments = parse_browse_path(p.node)
            assert f"{segments[-2][1]}.{segments[-1][1]}" in served, p.node
        else:
            assert p.node.removeprefix("ns=2;s=") in served


@pytest.mark.parametrize(
    ("node", "ok"),
    [
        ("ns=2;s=Pump1.Speed", True),
        ("i=2258", True),
        ("/Objects/2:PumpingStation/2:Pump1", True),
        ("Pump1.Speed", False),
        ("/Objects//2:X", False),
        ("/", False),
        ("ns=2;x=1", False),
    ],
)
def test_point_node_syntax(node: str, ok: bool) -> None:
    if ok:
        OpcUaPoint(name="p", node=node)
    else:
        with pytest.raises(ValidationError, match="node"):
            OpcUaPoint(name="p", node=node)


def test_browse_path_namespaces() -> None:
    assert parse_browse_path("/Objects/2:Station/3:Pump") == [
        (0, "Objects"),
        (2, "Station"),
        (3, "Pump"),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_policy": "Basic256Sha256"}, "go together"),
        ({"security_policy": "Basic256Sha256", "security_mode": "Sign"}, "client_certificate"),
        ({"server_certificate": "/x.der"}, "pinning"),
        ({"username": "u", "password": "p", "password_file": "/p"}, "not both"),
        ({"password": "p"}, "needs a username"),
        ({"endpoint": "http://host:4840"}, "endpoint"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"protocol": "modbus-tcp"}, "protocol"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_connections_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpcUaConnection.model_validate({"endpoint": "opc.tcp://127.0.0.1:4840", **fields})


def test_bad_points_are_rejected() -> None:
    with pytest.raises(ValidationError, match="deadband"):
        OpcUaPoint(name="p", node="i=1", mode=PointMode.POLL, deadband=1.0)
    with pytest.raises(ValidationError, match="name"):
        OpcUaPoint(name="1p", node="i=1")
    with pytest.raises(ValidationError, match="mode"):
        OpcUaPoint.model_validate({"name": "p", "node": "i=1", "mode": "push"})


def test_codec_round_trips_and_refusals() -> None:
    assert to_variant(3, ua.VariantType.Double) == ua.Variant(3.0, ua.VariantType.Double)
    assert to_variant(255, ua.VariantType.Byte).Value == 255
    assert to_variant(2.0, ua.VariantType.Int32).Value == 2
    cases: list[tuple[Value, ua.VariantType]] = [
        (256, ua.VariantType.Byte),
        (-1, ua.VariantType.UInt64),
        (True, ua.VariantType.Int16),
        (1, ua.VariantType.Boolean),
        (1e39, ua.VariantType.Float),
        (float("nan"), ua.VariantType.Double),
        (1, ua.VariantType.String),
        ("x", ua.VariantType.ByteString),
    ]
    for value, vtype in cases:
        with pytest.raises(ValueError):  # noqa: PT011 - the messages are checked in the device tests
            to_variant(value, vtype)
    assert from_variant(ua.LocalizedText("auto")) == "auto"
    assert from_variant([1, 2]) == Structured("json", [1, 2])
    assert from_variant([ua.LocalizedText("a"), None]) == Structured("json", ["a", None])
    with pytest.raises(ValueError, match="finite"):
        from_variant(float("inf"))
    with pytest.raises(ValueError, match="finite"):
        from_variant([1.0, float("nan")])
    with pytest.raises(ValueError, match="ByteString"):
        from_variant([b"x"])
    with pytest.raises(ValueError, match="at most"):
        from_variant(list(range(10_000)))


async def _ldt(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ldt.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.integration
async def test_browse_cli_lists_the_variables() -> None:
    async with OpcUaSimulator(seed=1) as sim:
        sim.freeze()
        code, out, err = await _ldt("opcua", "browse", sim.endpoint, "--depth", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "browse path\tNodeId\tDataType\taccess\tvalue"
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    speed = rows["/Objects/2:PumpingStation/2:Pump1/2:Speed"]
    assert speed[1:4] == ["ns=2;s=Pump1.Speed", "Double", "r"]
    assert float(speed[4]) == sim.expected("Pump1.Speed")
    assert rows["/Objects/2:PumpingStation/2:DutyPump"][2:4] == ["Byte", "rw"]
    assert not any("/0:Server" in k for k in rows)


@pytest.mark.integration
async def test_browse_cli_unreachable_server_is_one_line() -> None:
    code, out, err = await _ldt("opcua", "browse", f"opc.tcp://127.0.0.1:{free_port()}")
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert "connection refused" in err


def test_a_float32_reads_as_its_shortest_decimal() -> None:
    """Issue 15: an OPC UA Float of 1.35 arrived as 1.350000023841858, while Modbus float32
    gave 1.35; one rule now (``ldt.drivers.numbers``). A Double keeps every digit."""
    widened = struct.unpack(">f", struct.pack(">f", 1.35))[0]
    assert widened == 1.350000023841858
    assert from_variant(widened, ua.VariantType.Float) == 1.35
    assert from_variant(widened, ua.VariantType.Double) == widened
    assert from_variant(widened) == widened  # type unknown: as sent
