"""MqttDevice against a real mosquitto and the MQTT device simulator.

Telemetry decoding (JSON and UltraLight), payload versus arrival timestamps,
TLS with CA verification and passwords, refusals with clear reasons, commands
with correlated acknowledgements, reconnects after a broker restart, and
malformed payloads that are counted but never stop the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ldt.backoff import Backoff
from ldt.drivers.base import Device
from ldt.drivers.errors import DriverError
from ldt.drivers.mqtt import MqttConnection, MqttDevice, MqttTls
from ldt.reading import Quality
from ldt.simulators.mqtt import MqttDeviceSimulator
from tests.drivers.mqtt.conftest import PROFILES, Collector, load_profile
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

SHELLY = PROFILES / "shelly-plus-1pm.toml"
UL_AQ = PROFILES / "fiware-ul-air-quality.toml"
API_KEY = "4jggokgpepnvsb2uv4s40d59ov"
CAP_S = 1.0

GENERIC_JSON = """
[profile]
name = "generic-json"
manufacturer = "test"
model = "test"
protocol = "mqtt"
source = "test"

[mqtt]
format = "json"
topic = "site/{device_id}/up"
timestamp = "$.ts"
command_topic = "site/{device_id}/down"
command_ack_topic = "site/{device_id}/ack"
correlation_selector = "$.meta.cid"
error_selector = "$.error"
command_timeout_s = 0.5

[[points]]
name = "temperature"
selector = "$.sensors[0].value"

[[points]]
name = "battery_level"
selector = "$['battery level']"
type = "int"

[[points]]
name = "setpoint"
selector = "$.cfg.setpoint"
scale = 0.1
offset = -5.0
writable = true
command_payload = { meta = { cid = "{correlation_id}" }, set = { setpoint = "{value}" } }
"""


def device(
    port: int,
    profile: Path,
    *,
    device_id: str = "dev-1",
    tls: MqttTls | None = None,
    username: str | None = None,
    password: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> MqttDevice:
    settings, points = load_profile(profile)
    if overrides:
        settings = settings.model_copy(update=overrides)
    return MqttDevice(
        device_id=device_id,
        connection=MqttConnection(
            host="127.0.0.1" if tls is None else "localhost",
            port=port,
            tls=tls,
            username=username,
            password=password,  # type: ignore[arg-type]  # pydantic turns str into SecretStr
            api_key=API_KEY,
            timeout_s=2.0,
        ),
        settings=settings,
        points=points,
        backoff=Backoff(base_s=0.1, cap_s=CAP_S, rng=random.Random(3)),
    )


def simulator(port: int, profile: Path, **kw: Any) -> MqttDeviceSimulator:
    kw.setdefault("interval_s", 3600.0)  # tests publish explicitly with publish_now()
    return MqttDeviceSimulator(
        broker_host="127.0.0.1",
        broker_port=port,
        device_id=kw.pop("device_id", "dev-1"),
        profile=profile,
        api_key=API_KEY,
        seed=kw.pop("seed", 7),
        **kw,
    )


@contextlib.asynccontextmanager
async def streaming(dev: MqttDevice) -> AsyncIterator[Collector]:
    """Run ``dev.stream`` as a task; cancelled (and awaited) on exit."""
    out = Collector()
    async with dev:
        task = asyncio.create_task(dev.stream(out), name="stream")
        try:
            yield out
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until_connected(dev: MqttDevice, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not dev.health.connected:  # noqa: ASYNC110 - health is a plain dataclass
            await asyncio.sleep(0.01)


def test_satisfies_the_driver_protocol() -> None:
    dev = device(1883, SHELLY)
    assert isinstance(dev, Device)
    assert dev.streams
    assert dev.polled_points() == ()


async def test_json_telemetry_decodes_to_what_the_device_published(
    mosquitto_module: Mosquitto,
) -> None:
    dev = device(mosquitto_module.port, SHELLY, device_id="shellyplus1pm-a8032ab12345")
    sim = simulator(mosquitto_module.port, SHELLY, device_id="shellyplus1pm-a8032ab12345")
    async with sim, streaming(dev) as out:
        await until_connected(dev)
        before = time.time_ns() // 1_000_000
        sent = [await sim.publish_now() for _ in range(5)]
        await out.wait(lambda: len(out.good()) >= 5 * 8)
        after = time.time_ns() // 1_000_000
    assert dev.topic == "shellyplus1pm-a8032ab12345/status/switch:0"
    assert not out.bad()
    got = out.good()
    for i, message in enumerate(sent):
        batch = {r.point: r.value for r in got[i * 8 : (i + 1) * 8]}
        assert batch == message.values
    assert isinstance(got[0].value, bool)
    energy = [r.value for r in got if r.point == "total_active_energy"]
    floats = [e for e in energy if isinstance(e, float)]
    assert floats == energy
    assert floats == sorted(floats)
    assert all(before <= r.observed_at_ms <= after for r in got)  # arrival time
    assert dev.health.messages == 5
    assert dev.health.malformed_payloads == 0
    latest = {r.point: r.value for r in await dev.read()}
    assert latest == sent[-1].values


async def test_ul_telemetry_uses_the_payload_timestamp(mosquitto_module: Mosquitto) -> None:
    dev = device(mosquitto_module.port, UL_AQ)
    sim = simulator(mosquitto_module.port, UL_AQ, payload_time_offset_s=-3600.0)
    async with sim, streaming(dev) as out:
        await until_connected(dev)
        sent = [await sim.publish_now() for _ in range(3)]
        await out.wait(lambda: len(out.good()) >= 3 * 8)
    assert dev.topic == f"/ul/{API_KEY}/dev-1/attrs"
    assert sent[0].payload.decode().count("|") == 16  # timestamp + 8 pairs
    got = out.good()
    for i, message in enumerate(sent):
        batch = got[i * 8 : (i + 1) * 8]
        assert {r.point: r.value for r in batch} == message.values
        assert {r.observed_at_ms for r in batch} == {message.timestamp_ms}
    assert message.timestamp_ms is not None
    assert abs(message.timestamp_ms - (time.time() - 3600) * 1000) < 5000


async def test_arrival_time_ignores_the_payload_timestamp(mosquitto_module: Mosquitto) -> None:
    dev = device(mosquitto_module.port, UL_AQ, overrides={"timestamp": "arrival"})
    sim = simulator(mosquitto_module.port, UL_AQ, payload_time_offset_s=-3600.0)
    async with sim, streaming(dev) as out:
        await until_connected(dev)
        before = time.time_ns() // 1_000_000
        await sim.publish_now()
        await out.wait(lambda: len(out.good()) >= 8)
        after = time.time_ns() // 1_000_000
    assert all(before <= r.observed_at_ms <= after for r in out.good())


async def test_json_selectors_and_epoch_timestamp(
    mosquitto_module: Mosquitto, tmp_path: Path
) -> None:
    profile = tmp_path / "generic.toml"
    profile.write_text(GENERIC_JSON)
    dev = device(mosquitto_module.port, profile)
    sim = simulator(mosquitto_module.port, profile, payload_time_offset_s=-120.0)
    async with sim, streaming(dev) as out:
        await until_connected(dev)
        message = await sim.publish_now()
        await out.wait(lambda: len(out.good()) >= 3)
        # bare ISO-8601 and epoch-millisecond timestamps are read too
        await sim.publish_raw(
            b'{"ts": "2024-05-01T10:00:00+02:00", "sensors": [{"value": 1.5}], "battery level": 9}'
        )
        await sim.publish_raw(b'{"ts": 1714550400123, "sensors": [{"value": 2}]}')
        await out.wait(lambda: len(out.good()) >= 6)
    assert b'"sensors":[{"value":' in message.payload
    assert b'"battery level":' in message.payload
    first = out.good()[:3]
    assert {r.point: r.value for r in first} == message.values
    assert {r.observed_at_ms for r in first} == {message.timestamp_ms}
    iso, epoch_ms = out.good()[3:5], out.good()[5]
    assert [(r.point, r.value, r.observed_at_ms) for r in iso] == [
        ("temperature", 1.5, 1714550400000),
        ("battery_level", 9, 1714550400000),
    ]
    assert (epoch_ms.point, epoch_ms.value, epoch_ms.observed_at_ms) == (
        "temperature",
        2.0,
        1714550400123,
    )


async def test_tls_with_ca_verification_and_password(mosquitto_module: Mosquitto) -> None:
    b = mosquitto_module
    tls = MqttTls(ca_file=b.ca_file)
    dev = device(b.tls_port, SHELLY, tls=tls, username=b.username, password=b.password)
    sim = simulator(b.tls_port, SHELLY, ca_file=b.ca_file, username=b.username, password=b.password)
    sim.broker_host = "localhost"
    async with sim, streaming(dev) as out:
        await until_connected(dev)
        message = await sim.publish_now()
        await out.wait(lambda: len(out.good()) >= 8)
        await dev.write("output", True)
    assert {r.point: r.value for r in out.good()[:8]} == message.values
    assert sim.commands[-1].value is True


async def test_password_from_a_file(mosquitto_module: Mosquitto, tmp_path: Path) -> None:
    b = mosquitto_module
    secret = tmp_path / "mqtt-password"
    secret.write_text(b.password + "\n")
    settings, points = load_profile(SHELLY)
    dev = MqttDevice(
        device_id="dev-1",
        connection=MqttConnection(
            host="localhost",
            port=b.tls_port,
            tls=MqttTls(ca_file=b.ca_file),
            username=b.username,
            password_file=secret,
        ),
        settings=settings,
        points=points,
    )
    async with streaming(dev):
        await until_connected(dev)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-password", "refused the connection: not authorized (check username and password)"),
        ("no-tls-on-tls-port", "no CONNACK from broker"),
        ("tls-on-plain-port", "TLS handshake with broker"),
        ("unknown-ca", "certificate verify failed"),
    ],
)
async def test_connection_failures_say_why(
    mosquitto_module: Mosquitto, tmp_path: Path, case: str, expected: str
) -> None:
    b = mosquitto_module
    tls = MqttTls(ca_file=b.ca_file)
    if case == "wrong-password":
        dev = device(b.tls_port, SHELLY, tls=tls, username=b.username, password="wrong")
    elif case == "no-tls-on-tls-port":
        dev = device(b.tls_port, SHELLY, username=b.username, password=b.password)
        dev._conn = dev._conn.model_copy(update={"timeout_s": 0.5})
    elif case == "tls-on-plain-port":
        dev = device(b.port, SHELLY, tls=tls)
    else:
        from tests.mosquitto import TestCa

        other = TestCa("someone else").write_ca(tmp_path / "other-ca.crt")
        dev = device(b.tls_port, SHELLY, tls=MqttTls(ca_file=other), username=b.username)
    async with streaming(dev) as out:
        await out.wait(lambda: len(out.bad()) >= 2 * 8, timeout_s=8.0)
    reasons = {r.reason for r in out.bad()}
    assert all(expected in (reason or "") for reason in reasons), reasons
    assert not any("retry in" in (reason or "") for reason in reasons)  # no countdown
    assert not out.good()
    assert dev.health.last_error is not None
    assert expected in dev.health.last_error
    assert dev.health.consecutive_failures >= 2
    assert not dev.health.connected


async def test_ul_command_is_acknowledged_and_observed(mosquitto_module: Mosquitto) -> None:
    dev = device(mosquitto_module.port, UL_AQ)
    sim = simulator(mosquitto_module.port, UL_AQ)
    async with sim, streaming(dev) as out:
        await until_connected(dev)
        await dev.write("reporting_period", 120)
        await out.wait(lambda: any(r.value == 120 for r in out.good()))
    cmd = sim.commands[-1]
    assert cmd.topic == f"/ul/{API_KEY}/dev-1/cmd"
    assert cmd.payload == b"dev-1@setPeriod|120"
    assert (cmd.point, cmd.value, cmd.answer) == ("reporting_period", 120, b"dev-1@setPeriod|OK")


async def test_json_command_without_a_stream_uses_its_own_connection(
    mosquitto_module: Mosquitto, tmp_path: Path
) -> None:
    profile = tmp_path / "generic.toml"
    profile.write_text(GENERIC_JSON)
    dev = device(mosquitto_module.port, profile)
    async with simulator(mosquitto_module.port, profile) as sim, dev:
        await dev.write("setpoint", 21.5)
    cmd = sim.commands[-1]
    assert cmd.point == "setpoint"
    assert cmd.value == pytest.approx(21.5)
    assert b'"set":{"setpoint":265.0}' in cmd.payload  # (21.5 + 5) / 0.1


async def test_unacknowledged_command_times_out(mosquitto_module: Mosquitto) -> None:
    dev = device(mosquitto_module.port, UL_AQ, overrides={"command_timeout_s": 0.3})
    async with (
        simulator(mosquitto_module.port, UL_AQ, ack_commands=False) as sim,
        streaming(dev),
    ):
        await until_connected(dev)
        start = time.monotonic()
        with pytest.raises(
            DriverError, match=r"no acknowledgement on '/ul/.*/cmdexe' within 0.3 s"
        ):
            await dev.write("reporting_period", 30)
        assert time.monotonic() - start < 1.0
    assert sim.commands[-1].payload == b"dev-1@setPeriod|30"


async def test_error_results_and_bad_writes_raise(
    mosquitto_module: Mosquitto, tmp_path: Path
) -> None:
    dev = device(mosquitto_module.port, UL_AQ)
    async with simulator(mosquitto_module.port, UL_AQ, command_error="sensor busy"), streaming(dev):
        await until_connected(dev)
        with pytest.raises(DriverError, match="answered 'ERROR sensor busy'"):
            await dev.write("reporting_period", 30)
        with pytest.raises(DriverError, match="not writable"):
            await dev.write("temperature", 3.0)
        with pytest.raises(DriverError, match="expected a number"):
            await dev.write("reporting_period", "soon")
        with pytest.raises(DriverError, match="has no point"):
            await dev.write("nope", 1)
    profile = tmp_path / "generic.toml"
    profile.write_text(GENERIC_JSON)
    jdev = device(mosquitto_module.port, profile)
    async with simulator(mosquitto_module.port, profile, command_error="locked"), jdev:
        with pytest.raises(DriverError, match="answered 'locked'"):
            await jdev.write("setpoint", 20.0)


async def test_malformed_payloads_are_counted_and_never_stop_the_stream(
    mosquitto_module: Mosquitto,
) -> None:
    corpus_ul = [b"t|1|h", b"\xff\xfe", b"", b"t|abc|h|40", b"|1", b"dev@cmd|x", b"t|NaN"]
    dev = device(mosquitto_module.port, UL_AQ)
    async with simulator(mosquitto_module.port, UL_AQ) as sim, streaming(dev) as out:
        await until_connected(dev)
        for payload in corpus_ul:
            await sim.publish_raw(payload)
        message = await sim.publish_now()
        await out.wait(lambda: len(out.good()) >= 8 + 1)  # h|40 of the 4th is good
    assert dev.health.malformed_payloads == len(corpus_ul)
    assert dev.health.messages == len(corpus_ul) + 1
    reasons = [r.reason or "" for r in out.bad()]
    assert any("odd number of fields" in r for r in reasons)
    assert any("not UTF-8" in r for r in reasons)
    assert any("empty UltraLight payload" in r for r in reasons)
    assert any("'t'" in r and "expected a number, got 'abc'" in r for r in reasons)
    assert any("finite" in r for r in reasons)
    assert {r.point: r.value for r in out.good()[-8:]} == message.values


async def test_malformed_json_and_malformed_rate(
    mosquitto_module: Mosquitto,
) -> None:
    corpus = [b"{not json", b"[1, 2,", b'{"apower": "high"}', b'{"apower": NaN}', b"\xff"]
    dev = device(mosquitto_module.port, SHELLY)
    sim = simulator(mosquitto_module.port, SHELLY, malformed_rate=0.5, interval_s=0.02)
    async with sim, streaming(dev) as out:
        await until_connected(dev)
        for payload in corpus:
            await sim.publish_raw(payload)
        await sim.wait_published(40)
        sim.pause()
        await out.wait(lambda: dev.health.messages >= len(corpus) + 40)
    malformed = sum(1 for p in sim.published if p.malformed)
    assert 5 <= malformed <= 35
    assert dev.health.malformed_payloads >= len(corpus) + malformed
    reasons = [r.reason or "" for r in out.bad()]
    assert any("malformed JSON" in r for r in reasons)
    assert any("$.apower" in r and "expected a number, got 'high'" in r for r in reasons)
    good_messages = [p for p in sim.published if not p.malformed]
    assert {r.point: r.value for r in out.good()[-8:]} == good_messages[-1].values


async def test_reconnects_and_resubscribes_after_a_broker_restart(
    mosquitto_broker: Mosquitto,
) -> None:
    b = mosquitto_broker
    dev = device(b.port, SHELLY)
    sim = simulator(b.port, SHELLY, interval_s=0.05)
    async with sim, streaming(dev) as out:
        await out.wait(lambda: len(out.good()) >= 16)
        b.stop()
        await out.wait(lambda: len(out.bad()) >= 2 * 8, timeout_s=5.0)
        b.start()
        restarted = time.monotonic()
        seen = len(out.readings)
        await out.wait(
            lambda: any(r.quality is Quality.GOOD for r in out.readings[seen:]),
            timeout_s=2 * CAP_S + 3.0,
        )
        recovered = time.monotonic() - restarted
        assert dev.health.connected
        assert dev.health.consecutive_failures == 0
    gap = out.bad()
    assert recovered < 2 * CAP_S + 0.5, recovered
    assert {r.point for r in gap} == {p.name for p in dev.points}
    assert any("connection to the broker lost" in (r.reason or "") for r in gap)
    assert any("connection refused" in (r.reason or "") for r in gap)
    assert dev.health.connects >= 2
