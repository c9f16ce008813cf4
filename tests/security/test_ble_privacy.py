"""BLE identifiers are personal data (issue 14, item 11): by default a gateway sends, keeps
and logs pseudonyms of a tag's MAC address and beacon ids (a keyed hash), stable for one
key; a profile opts out for fixed assets. The simulator is the advertisements' source (no
radio here), at the driver's seam."""

from __future__ import annotations

from ldt.drivers.ble import BleFormat
from ldt.simulators.ble import BleAdvertiser
from tests.drivers.ble.conftest import advert_device, good, stream_until

A = "C0:FF:EE:00:00:01"
KEY = bytes(range(32))


async def test_beacon_ids_leave_the_gateway_as_stable_pseudonyms() -> None:
    fields = ["major", "minor", "uuid", "tx_power"]

    async def uuids(pseudonymise: bool, key: bytes | None) -> tuple[list[object], list[object]]:
        sim = BleAdvertiser(devices=[(A, "ibeacon", 3)], interval_s=0.001, rounds=4)
        device = advert_device(
            sim, A, BleFormat.IBEACON, fields, pseudonymise=pseudonymise, pseudonym_key=key
        )
        readings = await stream_until(device, lambda rs: len(good(rs, "uuid")) >= 4)
        shown: list[object] = [r.value for r in good(readings, "uuid")]
        return shown, [sim.expected(A, "uuid"), *[r.value for r in good(readings, "major")]]

    hidden, raw = await uuids(True, KEY)
    assert all(isinstance(v, str) and v.startswith("p:") for v in hidden)
    assert len(set(hidden)) == 1  # the same tag, the same pseudonym
    assert raw[0] not in hidden
    again, _ = await uuids(True, KEY)
    assert again[0] == hidden[0]  # stable under the gateway's key
    other, _ = await uuids(True, bytes(32))
    assert other[0] != hidden[0]  # another gateway's key: unlinkable
    opted_out, raw = await uuids(False, None)  # a fixed asset's profile
    assert opted_out[0] == raw[0]


async def test_health_and_logs_show_no_address() -> None:
    sim = BleAdvertiser(devices=[(A, "bthome", 7)], interval_s=0.001, rounds=3,
                        bindkeys={A: bytes(16)})  # fmt: skip
    # no bindkey on our side for an encrypted stream: every advertisement is malformed
    device = advert_device(sim, A, BleFormat.BTHOME, ["temperature"], pseudonymise=True,
                           pseudonym_key=KEY)  # fmt: skip
    await stream_until(device, lambda _rs: device.health.adverts_malformed >= 1)
    error = device.health.last_error or ""
    assert A not in error
    assert A.lower() not in error
    assert "p:" in error
