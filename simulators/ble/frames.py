"""The simulator's own encoders for the advertisement formats it sends.

Written from the published specs, independently of ``ldt.drivers.ble`` (the
import contract forbids sharing code), so a round trip through both is a real
check of each against the spec rather than of one implementation against itself:

* Ruuvi data format 5 / RAWv2: docs.ruuvi.com, "Data format 5 (RAWv2)";
* BTHome v2: bthome.io/format and bthome.io/encryption (AES-CCM, 4-byte MIC);
* iBeacon: Apple manufacturer data type 0x02, length 0x15;
* Eddystone UID / URL / TLM: github.com/google/eddystone.

Encoders take raw integers (what the sensor's firmware holds), never scaled
floats, so the simulator knows exactly what a correct decoder must return.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

__all__ = [
    "BTHOME_SERVICE_UUID",
    "EDDYSTONE_SERVICE_UUID",
    "bthome_frame",
    "eddystone_tlm",
    "eddystone_uid",
    "eddystone_url",
    "ibeacon_frame",
    "ruuvi_rawv2",
]

BTHOME_SERVICE_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
EDDYSTONE_SERVICE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"

_URL_PREFIXES = ["http://www.", "https://www.", "http://", "https://"]
_URL_CODES = [
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
]  # fmt: skip


def _be(value: int, size: int, *, signed: bool = False) -> bytes:
    return value.to_bytes(size, "big", signed=signed)


def ruuvi_rawv2(
    *,
    temperature: int,
    humidity: int,
    pressure: int,
    acceleration: tuple[int, int, int],
    battery_mv_above_1600: int,
    tx_power_code: int,
    movement: int,
    sequence: int,
    mac: bytes,
) -> bytes:
    """24 bytes of manufacturer data (after company id 0x0499), all raw spec units.

    temperature in 0.005 degC steps, humidity in 0.0025 %, pressure in Pa above
    50 000, battery 11 bits, tx power code 5 bits (2 dBm steps above -40).
    """
    power = (battery_mv_above_1600 << 5) | tx_power_code
    return (
        bytes([5])
        + _be(temperature, 2, signed=True)
        + _be(humidity, 2)
        + _be(pressure, 2)
        + b"".join(_be(a, 2, signed=True) for a in acceleration)
        + _be(power, 2)
        + bytes([movement])
        + _be(sequence, 2)
        + mac
    )


def bthome_frame(
    objects: list[tuple[int, bytes]],
    *,
    bindkey: bytes | None = None,
    mac: bytes | None = None,
    counter: int = 0,
) -> bytes:
    """BTHome v2 service data: device info byte and the objects (id, little-endian value).

    With ``bindkey`` the objects are AES-CCM encrypted (nonce: MAC, UUID
    ``d2 fc``, device info, counter) and counter and MIC appended.
    """
    body = b"".join(bytes([oid]) + value for oid, value in objects)
    if bindkey is None:
        return bytes([0x40]) + body
    if mac is None:
        raise ValueError("encryption needs the MAC for the nonce")
    info = 0x41
    count = counter.to_bytes(4, "little")
    nonce = mac + b"\xd2\xfc" + bytes([info]) + count
    sealed = AESCCM(bindkey, tag_length=4).encrypt(nonce, body, None)
    return bytes([info]) + sealed[:-4] + count + sealed[-4:]


def ibeacon_frame(*, proximity_uuid: bytes, major: int, minor: int, tx_power: int) -> bytes:
    """Apple manufacturer data (after company id 0x004C): 0x02 0x15 UUID major minor power."""
    return (
        b"\x02\x15" + proximity_uuid + _be(major, 2) + _be(minor, 2) + _be(tx_power, 1, signed=True)
    )


def eddystone_uid(*, tx_power: int, namespace: bytes, instance: bytes) -> bytes:
    """Eddystone-UID service data (with the two reserved bytes)."""
    return b"\x00" + _be(tx_power, 1, signed=True) + namespace + instance + b"\x00\x00"


def eddystone_url(*, tx_power: int, url: str) -> bytes:
    """Eddystone-URL service data: the longest scheme prefix and expansion codes."""
    for code, prefix in sorted(enumerate(_URL_PREFIXES), key=lambda cp: -len(cp[1])):
        if url.startswith(prefix):
            rest, out = url[len(prefix) :], bytearray([0x10, tx_power & 0xFF, code])
            break
    else:
        raise ValueError(f"{url!r} has no Eddystone scheme")
    while rest:
        for code, text in enumerate(_URL_CODES):
            if rest.startswith(text):
                out.append(code)
                rest = rest[len(text) :]
                break
        else:
            out += rest[0].encode("ascii")
            rest = rest[1:]
    if len(out) > 20:
        raise ValueError(f"{url!r} is too long for an Eddystone-URL frame")
    return bytes(out)


def eddystone_tlm(
    *, battery_mv: int, temperature_8_8: int, adv_count: int, deciseconds: int
) -> bytes:
    """Unencrypted Eddystone-TLM (version 0): all big-endian, temperature signed 8.8."""
    return (
        b"\x20\x00"
        + _be(battery_mv, 2)
        + _be(temperature_8_8, 2, signed=True)
        + _be(adv_count, 4)
        + _be(deciseconds, 4)
    )
