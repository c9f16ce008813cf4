"""BTHome v2 decoder: service data of UUID 0xFCD2 (https://bthome.io/format).

A payload is one device-information byte (bit 0 encrypted, bit 1 MAC included,
bit 2 trigger-based device, bits 5-7 version = 2) followed by objects, each an
object id and a value whose length the id alone determines (little-endian,
scaled by the spec's factor). Because lengths come from the table, an unknown
object id ends decoding with an error: the rest of the payload cannot be
framed. Encrypted payloads (bit 0) are AES-CCM with a 16-byte bindkey
(https://bthome.io/encryption): ciphertext, 4-byte counter, 4-byte MIC.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from ldt.drivers.ble.advertisement import uuid16
from ldt.drivers.ble.errors import BleDecodeError
from ldt.reading import Value

__all__ = ["BTHOME_OBJECTS", "BTHOME_UUID", "BTHomeObject", "BTHomePacket", "decode_bthome"]

BTHOME_UUID = uuid16(0xFCD2)
"""The service-data key bleak reports BTHome v2 under."""

_UUID_LE = b"\xd2\xfc"  # 0xFCD2 as sent, part of the encryption nonce


class _Kind(Enum):
    NUMBER = "number"
    BINARY = "binary"
    BUTTON = "button"
    DIMMER = "dimmer"
    TEXT = "text"
    RAW = "raw"
    VERSION = "version"


@dataclass(frozen=True, slots=True)
class BTHomeObject:
    """One row of the spec's object table: ``value = int(le bytes) * factor``."""

    object_id: int
    name: str
    length: int  # bytes of the value; 0 = length-prefixed (text, raw)
    signed: bool = False
    factor: float = 1.0
    kind: _Kind = _Kind.NUMBER

    @property
    def decimals(self) -> int:
        """Decimal places the factor gives (0.01 -> 2), to round away float noise."""
        exponent = Decimal(str(self.factor)).normalize().as_tuple().exponent
        return max(0, -int(exponent))


def _n(
    oid: int, name: str, length: int, factor: float = 1.0, *, signed: bool = False
) -> BTHomeObject:
    return BTHomeObject(oid, name, length, signed, factor)


def _b(oid: int, name: str) -> BTHomeObject:
    return BTHomeObject(oid, name, 1, kind=_Kind.BINARY)


_TABLE: tuple[BTHomeObject, ...] = (
    _n(0x00, "packet_id", 1),
    _n(0x01, "battery", 1),  # %
    _n(0x02, "temperature", 2, 0.01, signed=True),  # degC
    _n(0x03, "humidity", 2, 0.01),  # %
    _n(0x04, "pressure", 3, 0.01),  # hPa
    _n(0x05, "illuminance", 3, 0.01),  # lux
    _n(0x06, "mass_kg", 2, 0.01),
    _n(0x07, "mass_lb", 2, 0.01),
    _n(0x08, "dewpoint", 2, 0.01, signed=True),  # degC
    _n(0x09, "count", 1),
    _n(0x0A, "energy", 3, 0.001),  # kWh
    _n(0x0B, "power", 3, 0.01),  # W
    _n(0x0C, "voltage", 2, 0.001),  # V
    _n(0x0D, "pm2_5", 2),  # ug/m3
    _n(0x0E, "pm10", 2),  # ug/m3
    _b(0x0F, "generic_boolean"),
    _b(0x10, "power_on"),
    _b(0x11, "opening"),
    _n(0x12, "co2", 2),  # ppm
    _n(0x13, "tvoc", 2),  # ug/m3
    _n(0x14, "moisture", 2, 0.01),  # %
    _b(0x15, "battery_low"),
    _b(0x16, "battery_charging"),
    _b(0x17, "carbon_monoxide"),
    _b(0x18, "cold"),
    _b(0x19, "connectivity"),
    _b(0x1A, "door"),
    _b(0x1B, "garage_door"),
    _b(0x1C, "gas_detected"),
    _b(0x1D, "heat"),
    _b(0x1E, "light"),
    _b(0x1F, "lock"),
    _b(0x20, "moisture_detected"),
    _b(0x21, "motion"),
    _b(0x22, "moving"),
    _b(0x23, "occupancy"),
    _b(0x24, "plug"),
    _b(0x25, "presence"),
    _b(0x26, "problem"),
    _b(0x27, "running"),
    _b(0x28, "safety"),
    _b(0x29, "smoke"),
    _b(0x2A, "sound"),
    _b(0x2B, "tamper"),
    _b(0x2C, "vibration"),
    _b(0x2D, "window"),
    _n(0x2E, "humidity", 1),  # %
    _n(0x2F, "moisture", 1),  # %
    BTHomeObject(0x3A, "button", 1, kind=_Kind.BUTTON),
    BTHomeObject(0x3C, "dimmer", 2, kind=_Kind.DIMMER),
    _n(0x3D, "count", 2),
    _n(0x3E, "count", 4),
    _n(0x3F, "rotation", 2, 0.1, signed=True),  # degrees
    _n(0x40, "distance_mm", 2),
    _n(0x41, "distance_m", 2, 0.1),
    _n(0x42, "duration", 3, 0.001),  # s
    _n(0x43, "current", 2, 0.001),  # A
    _n(0x44, "speed", 2, 0.01),  # m/s
    _n(0x45, "temperature", 2, 0.1, signed=True),
    _n(0x46, "uv_index", 1, 0.1),
    _n(0x47, "volume_l", 2, 0.1),
    _n(0x48, "volume_ml", 2),
    _n(0x49, "volume_flow_rate", 2, 0.001),  # m3/h
    _n(0x4A, "voltage", 2, 0.1),
    _n(0x4B, "gas", 3, 0.001),  # m3
    _n(0x4C, "gas", 4, 0.001),
    _n(0x4D, "energy", 4, 0.001),
    _n(0x4E, "volume_l", 4, 0.001),
    _n(0x4F, "water", 4, 0.001),  # L
    _n(0x50, "timestamp", 4),  # Unix seconds
    _n(0x51, "acceleration", 2, 0.001),  # m/s2
    _n(0x52, "gyroscope", 2, 0.001),  # deg/s
    BTHomeObject(0x53, "text", 0, kind=_Kind.TEXT),
    BTHomeObject(0x54, "raw", 0, kind=_Kind.RAW),
    _n(0x55, "volume_storage", 4, 0.001),  # L
    _n(0x56, "conductivity", 2),  # uS/cm
    _n(0x57, "temperature", 1, signed=True),
    _n(0x58, "temperature", 1, 0.35, signed=True),
    _n(0x59, "count", 1, signed=True),
    _n(0x5A, "count", 2, signed=True),
    _n(0x5B, "count", 4, signed=True),
    _n(0x5C, "power", 4, 0.01, signed=True),
    _n(0x5D, "current", 2, 0.001, signed=True),
    _n(0x5E, "direction", 2, 0.01),  # degrees
    _n(0x5F, "precipitation", 2, 0.1),  # mm
    _n(0x60, "channel", 1),
    _n(0x61, "rotational_speed", 2),  # rpm
    _n(0x62, "speed", 4, 0.000001, signed=True),
    _n(0x63, "acceleration", 4, 0.000001, signed=True),
    _n(0xF0, "device_type_id", 2),
    BTHomeObject(0xF1, "firmware_version", 4, kind=_Kind.VERSION),
    BTHomeObject(0xF2, "firmware_version", 3, kind=_Kind.VERSION),
)

BTHOME_OBJECTS: dict[int, BTHomeObject] = {o.object_id: o for o in _TABLE}
"""Object id -> how to decode it (bthome.io/format, "Sensor data", "Binary sensor data", events)."""

_BUTTON_EVENTS = {
    0x00: "none",
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
}


@dataclass(frozen=True, slots=True)
class BTHomePacket:
    """A decoded BTHome v2 payload.

    ``values`` maps the spec's property names to values (a repeated property is
    ``name``, ``name_2``, ...); ``packet_id`` (object 0x00) and ``counter``
    (encrypted payloads) let a receiver drop the repeats devices send.
    """

    values: dict[str, Value]
    encrypted: bool
    trigger_based: bool
    packet_id: int | None
    counter: int | None
    mac: str | None


def _mac_bytes(mac: str) -> bytes:
    digits = mac.replace(":", "").replace("-", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise BleDecodeError(
            f"an encrypted BTHome payload needs the sender's MAC for its nonce; {mac!r} is not one"
        )
    return raw


def _decrypt(info: int, body: bytes, mac: bytes, bindkey: bytes) -> tuple[bytes, int]:
    if len(body) < 8:
        raise BleDecodeError(
            f"encrypted BTHome payload is {len(body)} bytes after the header, "
            "too short for counter and MIC (8)"
        )
    ciphertext, counter, mic = body[:-8], body[-8:-4], body[-4:]
    nonce = mac + _UUID_LE + bytes([info]) + counter
    try:
        plain = AESCCM(bindkey, tag_length=4).decrypt(nonce, ciphertext + mic, None)
    except InvalidTag:
        raise BleDecodeError(
            "BTHome decryption failed: wrong bindkey, or the payload was corrupted"
        ) from None
    return plain, int.from_bytes(counter, "little")


def _value(obj: BTHomeObject, raw: bytes) -> Value:
    if obj.kind is _Kind.BINARY:
        return raw[0] != 0
    if obj.kind is _Kind.BUTTON:
        if raw[0] not in _BUTTON_EVENTS:
            raise BleDecodeError(f"BTHome button event {raw[0]:#04x} is not in the spec")
        return _BUTTON_EVENTS[raw[0]]
    if obj.kind is _Kind.DIMMER:
        direction, steps = raw[0], raw[1]
        if direction not in (0, 1, 2):
            raise BleDecodeError(f"BTHome dimmer event {direction:#04x} is not in the spec")
        return -steps if direction == 1 else (steps if direction == 2 else 0)
    if obj.kind is _Kind.TEXT:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BleDecodeError("BTHome text object is not valid UTF-8") from None
    if obj.kind is _Kind.RAW:
        return raw.hex()
    if obj.kind is _Kind.VERSION:
        return ".".join(str(b) for b in reversed(raw))
    number = int.from_bytes(raw, "little", signed=obj.signed)
    if obj.factor == 1.0:
        return number
    return round(number * obj.factor, obj.decimals)


def _objects(data: bytes) -> tuple[dict[str, Value], int | None]:
    values: dict[str, Value] = {}
    packet_id: int | None = None
    pos = 0
    while pos < len(data):
        oid = data[pos]
        obj = BTHOME_OBJECTS.get(oid)
        if obj is None:
            raise BleDecodeError(
                f"unknown BTHome object id {oid:#04x} at byte {pos}: "
                "its length is unknown, so the rest of the payload cannot be read"
            )
        pos += 1
        length = obj.length
        if length == 0:  # text/raw: a length byte first
            if pos >= len(data):
                raise BleDecodeError(f"BTHome object {oid:#04x} ({obj.name}) lacks its length byte")
            length = data[pos]
            pos += 1
        if pos + length > len(data):
            raise BleDecodeError(
                f"BTHome object {oid:#04x} ({obj.name}) needs {length} bytes, "
                f"{len(data) - pos} left: truncated payload"
            )
        value = _value(obj, data[pos : pos + length])
        pos += length
        if oid == 0x00:
            packet_id = int(value)
        name, n = obj.name, 2
        while name in values:
            name, n = f"{obj.name}_{n}", n + 1
        values[name] = value
    return values, packet_id


def decode_bthome(
    service_data: bytes, *, mac: str | None = None, bindkey: bytes | None = None
) -> BTHomePacket:
    """Decode the service data of UUID 0xFCD2 (without the UUID itself).

    ``mac`` is the sender's address (for the nonce of encrypted payloads that
    do not carry it); ``bindkey`` the 16-byte AES key. Raises ``BleDecodeError``
    for every malformed, unknown or undecryptable payload.
    """
    if not service_data:
        raise BleDecodeError("empty BTHome service data")
    info = service_data[0]
    version = info >> 5
    if version != 2:
        raise BleDecodeError(f"BTHome device information says version {version}, not 2")
    encrypted = bool(info & 0x01)
    body = service_data[1:]
    sender = mac
    if info & 0x02:  # MAC included, reversed
        if len(body) < 6:
            raise BleDecodeError("BTHome payload says it includes a MAC but is too short")
        sender = ":".join(f"{b:02X}" for b in reversed(body[:6]))
        body = body[6:]
    counter: int | None = None
    if encrypted:
        if bindkey is None:
            raise BleDecodeError(
                "the BTHome payload is encrypted: configure the device's bindkey (32 hex digits)"
            )
        if len(bindkey) != 16:
            raise BleDecodeError(f"a BTHome bindkey is 16 bytes, not {len(bindkey)}")
        if sender is None:
            raise BleDecodeError("an encrypted BTHome payload needs the sender's MAC")
        body, counter = _decrypt(info, body, _mac_bytes(sender), bindkey)
    values, packet_id = _objects(body)
    return BTHomePacket(
        values=values,
        encrypted=encrypted,
        trigger_based=bool(info & 0x04),
        packet_id=packet_id,
        counter=counter,
        mac=sender,
    )
