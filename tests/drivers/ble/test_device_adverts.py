"""BleDevice in advertisement mode, end to end with the simulator as its source.

The simulator encodes with its own encoders (simulators/ble/frames.py), so a
reading equal to the simulator's record means both sides agree on the spec.
"""

from __future__ import annotations

import time

import pytest

from ldt.drivers.ble import (
    BleConnection,
    BleDevice,
    BleFormat,
    BleMode,
    BlePoint,
    BleProfileSettings,
)
from ldt.drivers.errors import DriverError
from ldt.reading import Quality, Reading
from ldt.simulators.ble import BleAdvertiser

from .conftest import advert_device, bad, good, stream_until

A = "C0:FF:EE:00:00:01"
B = "C0:FF:EE:00:00:02"
KEY = "231d39c1d7cc1ab1aee224cd096db932"


def _connected(device: BleDevice) -> bool:
    return device.health.connected


def _values(readings: list[Reading]) -> list[object]:
    return [r.value for r in readings]


async def test_ruuvi_readings_equal_what_the_simulator_sent() -> None:
    sim = BleAdvertiser(
        devices=[(A, "ruuvi", 1), (B, "ruuvi", 2)], interval_s=0.001, repeat=3, rounds=25
    )
    fields = ["temperature", "humidity", "pressure", "battery_voltage", "acceleration_z"]
    device = advert_device(sim, A.lower(), BleFormat.RUUVI, fields)
    readings = await stream_until(device, lambda rs: len(good(rs, "pressure")) >= 25)
    for f in fields:
        assert _values(good(readings, f)) == pytest.approx(sim.history(A, f), abs=1e-9)
    assert {r.device_id for r in readings} == {"sensor-1"}
    assert good(readings, "temperature")[-1].value == pytest.approx(sim.expected(A, "temperature"))
    # repeats of one measurement (same sequence number) count as duplicates, not readings
    assert device.health.adverts_decoded == 25
    assert device.health.adverts_duplicate == 50
    assert device.health.adverts_received == 75  # B's advertisements were never ours
    assert device.health.connected


async def test_bthome_encrypted_stream_dedups_packet_ids() -> None:
    sim = BleAdvertiser(
        devices=[(A, "bthome", 7)], interval_s=0.001, repeat=2, rounds=30,
        bindkeys={A: bytes.fromhex(KEY)},
    )  # fmt: skip
    device = advert_device(sim, A, BleFormat.BTHOME, ["temperature", "humidity", "battery"],
                           bindkey=KEY)  # fmt: skip
    readings = await stream_until(device, lambda rs: len(good(rs, "humidity")) >= 30)
    for f in ("temperature", "humidity", "battery"):
        assert _values(good(readings, f)) == pytest.approx(sim.history(A, f), abs=1e-9)
    assert device.health.adverts_duplicate == 30
    assert device.health.adverts_malformed == 0


async def test_beacons_end_to_end_by_name_and_address() -> None:
    sim = BleAdvertiser(
        devices=[(A, "ibeacon", 3), (B, "eddystone", 4)], interval_s=0.001, rounds=9
    )
    ibeacon = advert_device(sim, A, BleFormat.IBEACON, ["major", "minor", "uuid", "tx_power"])
    readings = await stream_until(ibeacon, lambda rs: len(good(rs, "uuid")) >= 9)
    assert _values(good(readings, "major")) == sim.history(A, "major")
    assert good(readings, "uuid")[0].value == sim.expected(A, "uuid")

    sim2 = BleAdvertiser(
        devices=[(A, "ibeacon", 3), (B, "eddystone", 4)], interval_s=0.001, rounds=9
    )
    eddystone = advert_device(
        sim2, B, BleFormat.EDDYSTONE, ["url", "temperature", "battery_voltage", "namespace"],
        name="eddystone-0002",
    )  # fmt: skip
    readings = await stream_until(eddystone, lambda rs: len(good(rs, "temperature")) >= 3)
    assert _values(good(readings, "url")) == sim2.history(B, "url")
    assert _values(good(readings, "temperature")) == sim2.history(B, "temperature")
    assert _values(good(readings, "battery_voltage")) == sim2.history(B, "battery_voltage")
    assert _values(good(readings, "namespace")) == sim2.history(B, "namespace")


async def test_truncated_and_garbage_adverts_are_counted_never_fatal() -> None:
    sim = BleAdvertiser(
        devices=[(A, "bthome", 11), (B, "ruuvi", 12)],
        interval_s=0.0005,
        truncate_rate=0.25,
        garbage_rate=0.25,
        rounds=120,
        fault_seed=5,
    )
    device = advert_device(sim, A, BleFormat.BTHOME, ["temperature", "humidity"])
    h = device.health

    def all_seen(_: list[Reading]) -> bool:
        return h.adverts_decoded + h.adverts_duplicate + h.adverts_malformed == 120

    readings = await stream_until(device, all_seen)
    assert sim.corrupted(A) > 30  # the knobs did bite
    assert h.adverts_malformed == sim.corrupted(A)
    assert h.adverts_decoded == len(sim.history(A, "temperature"))
    assert _values(good(readings, "temperature")) == pytest.approx(sim.history(A, "temperature"))
    assert not bad(readings, "temperature")  # a bad advert is a counter, not a bad reading
    assert h.last_error is not None
    assert "advertisement from" in h.last_error

    ruuvi_sim = BleAdvertiser(
        devices=[(B, "ruuvi", 12)], interval_s=0.0005, truncate_rate=0.3, garbage_rate=0.3,
        rounds=100, fault_seed=6,
    )  # fmt: skip
    ruuvi = advert_device(ruuvi_sim, B, BleFormat.RUUVI, ["humidity"])
    rh = ruuvi.health
    readings = await stream_until(
        ruuvi, lambda _: rh.adverts_decoded + rh.adverts_malformed + rh.adverts_duplicate == 100
    )
    assert rh.adverts_malformed == ruuvi_sim.corrupted(B) > 30
    assert _values(good(readings, "humidity")) == pytest.approx(ruuvi_sim.history(B, "humidity"))


async def test_absence_becomes_bad_readings_every_period_then_recovers() -> None:
    sim = BleAdvertiser(devices=[(A, "ruuvi", 21)], interval_s=0.01)
    device = advert_device(sim, A, BleFormat.RUUVI, ["temperature", "humidity"], absence_s=0.2)
    await stream_until(device, lambda rs: len(good(rs, "temperature")) >= 3)

    started = time.monotonic()
    sim.silence(A)
    readings = await stream_until(device, lambda rs: len(bad(rs, "humidity")) >= 2)
    gaps = bad(readings, "temperature")
    assert len(gaps) >= 2
    assert all(r.reason == "no advertisement for 0.2 s" and r.value is None for r in gaps)
    assert time.monotonic() - started >= 0.35  # first after one period, the next a period later
    assert gaps[1].observed_at_ms - gaps[0].observed_at_ms >= 150
    assert not device.health.connected
    stale = await device.read()
    assert [(r.point, r.quality) for r in stale] == [
        ("temperature", Quality.BAD),
        ("humidity", Quality.BAD),
    ]

    sim.resume(A)
    readings = await stream_until(device, lambda rs: len(good(rs, "temperature")) >= 2)
    assert _connected(device)
    latest = await device.read()
    assert latest[0].quality is Quality.GOOD
    assert latest[0].value == pytest.approx(sim.expected(A, "temperature"))


async def test_a_field_missing_from_advertisements_goes_bad_with_its_own_reason() -> None:
    sim = BleAdvertiser(devices=[(A, "bthome", 2)], interval_s=0.01)
    device = advert_device(sim, A, BleFormat.BTHOME, ["temperature", "co2"], absence_s=0.15)
    readings = await stream_until(device, lambda rs: len(bad(rs, "co2")) >= 1)
    assert bad(readings, "co2")[0].reason == "no value for 'co2' in advertisements for 0.15 s"
    assert good(readings, "temperature")
    assert not bad(readings, "temperature")


async def test_source_failure_is_retried_within_twice_the_backoff_cap() -> None:
    sim = BleAdvertiser(devices=[(A, "ruuvi", 8)], interval_s=0.005)
    device = advert_device(sim, A, BleFormat.RUUVI, ["temperature"])
    await stream_until(device, lambda rs: len(good(rs, "temperature")) >= 2)
    sim.fail_next("adapter unplugged")
    failed_at = time.monotonic()
    readings = await stream_until(
        device, lambda rs: bool(bad(rs, "temperature")) and len(good(rs, "temperature")) >= 1
    )
    outage = bad(readings, "temperature")
    assert outage[0].reason is not None
    assert outage[0].reason == "advertisement source failed: adapter unplugged"
    recovered = good(readings, "temperature")[0]
    assert recovered.observed_at_ms > outage[0].observed_at_ms
    assert time.monotonic() - failed_at < 2 * 0.2 + 0.3  # cap 0.2 s; generous for CI jitter
    assert device.health.consecutive_failures == 0


async def test_unencrypted_bthome_is_refused_when_a_bindkey_is_set() -> None:
    sim = BleAdvertiser(devices=[(A, "bthome", 3)], interval_s=0.001, rounds=10)
    device = advert_device(sim, A, BleFormat.BTHOME, ["temperature"], bindkey=KEY)
    h = device.health
    readings = await stream_until(device, lambda _: h.adverts_malformed == 10)
    assert not good(readings, "temperature")
    assert h.last_error is not None
    assert "unencrypted" in h.last_error


async def test_read_before_any_advertisement_is_bad_and_context_manager_does_no_io() -> None:
    sim = BleAdvertiser(devices=[(A, "ruuvi", 1)])
    async with advert_device(sim, A, BleFormat.RUUVI, ["temperature"]) as device:
        assert device.streams
        assert device.polled_points() == ()
        [reading] = await device.read()
        assert reading.quality is Quality.BAD
        assert sim.sent(A) == 0
        with pytest.raises(DriverError, match="not writable"):
            await device.write("temperature", 1.0)
        with pytest.raises(DriverError, match="no point"):
            await device.write("nope", 1.0)


def test_mode_and_format_must_agree() -> None:
    with pytest.raises(DriverError, match="does not fit"):
        BleDevice(
            device_id="x",
            connection=BleConnection(address=A, mode=BleMode.GATT),
            settings=BleProfileSettings(format=BleFormat.RUUVI),
            points=[],
        )
    with pytest.raises(DriverError, match="characteristic"):
        BleDevice(
            device_id="x",
            connection=BleConnection(address=A),
            settings=BleProfileSettings(format=BleFormat.RUUVI),
            points=[BlePoint(name="t", characteristic="2A6E", struct_format="<h")],
        )
    with pytest.raises(DriverError, match="share a name"):
        BleDevice(
            device_id="x",
            connection=BleConnection(address=A),
            settings=BleProfileSettings(format=BleFormat.RUUVI),
            points=[BlePoint(name="t"), BlePoint(name="t")],
        )
