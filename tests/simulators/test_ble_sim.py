"""The BLE simulator: deterministic, its knobs, its CLI (which prints payloads; no radio)."""

from __future__ import annotations

import asyncio

import pytest

from ldt.cli import main
from ldt.drivers.ble import BTHOME_UUID, decode_bthome, decode_ruuvi
from ldt.simulators.ble import FORMATS, BleAdvertiser, BleSimulatorError, SimAdvertisement

A = "C0:FF:EE:00:00:01"


async def _take(sim: BleAdvertiser, n: int) -> list[SimAdvertisement]:
    out: list[SimAdvertisement] = []
    async with asyncio.timeout(5):
        async for adv in sim:
            out.append(adv)
            if len(out) == n:
                break
    return out


async def test_same_seed_same_payloads_different_seed_different() -> None:
    def payloads(advs: list[SimAdvertisement]) -> list[bytes]:
        return [b for a in advs for b in (*a.manufacturer_data.values(), *a.service_data.values())]

    for fmt in FORMATS:
        one = await _take(BleAdvertiser(devices=[(A, fmt, 5)], interval_s=0), 6)
        two = await _take(BleAdvertiser(devices=[(A, fmt, 5)], interval_s=0), 6)
        other = await _take(BleAdvertiser(devices=[(A, fmt, 6)], interval_s=0), 6)
        assert payloads(one) == payloads(two)
        assert payloads(one) != payloads(other)


async def test_faults_do_not_change_the_values_a_seed_produces() -> None:
    clean = BleAdvertiser(devices=[(A, "ruuvi", 9)], interval_s=0)
    noisy = BleAdvertiser(devices=[(A, "ruuvi", 9)], interval_s=0, truncate_rate=0.5, fault_seed=1)
    await _take(clean, 40)
    await _take(noisy, 40)
    assert noisy.corrupted(A) > 5
    seq_temp = dict(
        zip(clean.history(A, "measurement_sequence"), clean.history(A, "temperature"), strict=True)
    )
    for seq, temp in zip(
        noisy.history(A, "measurement_sequence"), noisy.history(A, "temperature"), strict=True
    ):
        assert seq_temp[seq] == temp


async def test_advertisements_look_like_bleaks() -> None:
    sim = BleAdvertiser(devices=[(A, "bthome", 1)], interval_s=0, repeat=2)
    first, second = await _take(sim, 2)
    assert first.address == A
    assert first.service_data.keys() == {BTHOME_UUID}
    assert first.service_data == second.service_data  # a repeat
    packet = decode_bthome(first.service_data[BTHOME_UUID])
    assert packet.values == {
        k: sim.expected(A, k) for k in ("packet_id", "battery", "temperature", "humidity")
    }
    assert sim.sent(A) == 2


async def test_silence_rounds_and_failure() -> None:
    sim = BleAdvertiser(devices=[(A, "ruuvi", 1), ("C0:FF:EE:00:00:02", "ibeacon", 2)],
                        interval_s=0.001, rounds=3)  # fmt: skip
    sim.silence(A)
    advs = await _take(sim, 3)
    assert {a.address for a in advs} == {"C0:FF:EE:00:00:02"}
    with pytest.raises(TimeoutError):  # rounds exhausted: silent, but the iterator stays open
        async with asyncio.timeout(0.05):
            await _take(sim, 1)
    sim.resume(A)
    assert (await _take(sim, 1))[0].address == A
    sim.fail_next("unplugged")
    with pytest.raises(BleSimulatorError, match="unplugged"):
        await _take(sim, 5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"devices": []}, "no devices"),
        ({"devices": [(A, "zigbee", 1)]}, "unknown format"),
        ({"devices": [("nope", "ruuvi", 1)]}, "not a MAC"),
        ({"devices": [(A, "ruuvi", 1), (A.lower(), "ruuvi", 2)]}, "twice"),
        ({"devices": [(A, "ruuvi", 1)], "truncate_rate": 1.5}, "fractions"),
        ({"devices": [(A, "ruuvi", 1)], "truncate_rate": 0.6, "garbage_rate": 0.6}, "exceed"),
        ({"devices": [(A, "ruuvi", 1)], "repeat": 0}, "repeat"),
        ({"devices": [(A, "ruuvi", 1)], "bindkeys": {A: bytes(16)}}, "only for bthome"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(BleSimulatorError, match=match):
        BleAdvertiser(**kwargs)  # type: ignore[arg-type]


def test_cli_prints_hex_payloads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "ble", "--format", "ruuvi", "--seed", "3", "--count", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for line in lines:
        address, kind, company, payload = line.split()
        assert (address, kind, company) == ("C0:FF:EE:00:00:03", "manufacturer", "0x0499")
        assert decode_ruuvi(bytes.fromhex(payload))["mac"] == address
    assert main(["sim", "ble", "--format", "ruuvi", "--seed", "3", "--count", "4"]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # deterministic


def test_cli_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "ble", "--count", "-1"]) == 2
    assert main(["sim", "ble", "--address", "xx"]) == 2
    assert "not a MAC" in capsys.readouterr().err
    assert main(["sim", "ble", "--format", "bthome", "--bindkey", "zz"]) == 2


def test_cli_lists_the_advertisers_formats() -> None:
    from ldt.simulators.ble import advertiser, cli

    assert cli.FORMATS == advertiser.FORMATS
