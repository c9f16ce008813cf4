"""The BLE part of a device profile and of a device instance's connection.

A profile says which advertisement format a device model speaks (or, for a
connectable device, which GATT characteristics it has) and names the fields
its points take; a gateway config then lists instances by MAC address or name.
"""

from __future__ import annotations

import re
import struct
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "BleConnection",
    "BleFormat",
    "BleMode",
    "BlePoint",
    "BleProfileSettings",
    "characteristic_uuid",
]


class BleFormat(StrEnum):
    """What a device's data looks like on the air (or ``gatt``: read over a connection)."""

    BTHOME = "bthome"
    RUUVI = "ruuvi"
    IBEACON = "ibeacon"
    EDDYSTONE = "eddystone"
    GATT = "gatt"


class BleMode(StrEnum):
    """``advertisement``: listen only (no connection, many devices per radio);
    ``gatt``: connect and read, subscribe, write characteristics."""

    ADVERTISEMENT = "advertisement"
    GATT = "gatt"


_Unit = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,3}$")]
_Attr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
_UUID_RE = re.compile(
    r"^(?:[0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$"
)
_STRUCT_RE = re.compile(r"^[<>!][bBhHiIqQefd?]$")
_MAC = r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$"
_CB_UUID = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"


def characteristic_uuid(text: str) -> str:
    """A characteristic UUID in bleak's form: 16-bit ``2A6E`` -> ``00002a6e-0000-1000-...``."""
    if not _UUID_RE.match(text):
        raise ValueError(f"{text!r} is not a 16-bit (2A6E) or 128-bit UUID")
    if len(text) == 4:
        return f"0000{text.lower()}-0000-1000-8000-00805f9b34fb"
    return text.lower()


class BlePoint(BaseModel):
    """One value of the device.

    Advertisement formats: ``field`` is the decoded field's name (default: the
    point's ``name``), e.g. ``temperature``, ``humidity``, ``battery_voltage``.
    GATT: ``characteristic`` (UUID) and ``struct_format`` (one value with an
    explicit byte order, e.g. ``<h`` for sint16, or ``utf8`` for text).
    ``value = raw * scale + offset`` for numbers; ``invalid`` is a raw value the
    device uses for "not known" (0x8000 = -32768 for the Environmental Sensing
    temperature), which becomes a bad reading instead of a number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Attr
    attribute: _Attr | None = None
    """NGSI-LD attribute name; defaults to ``name``."""
    field: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = None
    characteristic: str | None = None
    struct_format: str | None = None
    notify: bool = False
    """GATT: subscribe to notifications instead of polling with reads."""
    scale: float = 1.0
    offset: float = 0.0
    invalid: int | None = None
    unit: _Unit | None = None
    poll_interval_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    writable: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> BlePoint:
        if self.characteristic is not None:
            characteristic_uuid(self.characteristic)  # raises ValueError with the reason
            if self.struct_format is None:
                raise ValueError("a GATT point needs 'struct_format' (e.g. '<h' or 'utf8')")
            if self.field is not None:
                raise ValueError("'field' is for advertisement points, not GATT ones")
        elif self.struct_format is not None or self.notify:
            raise ValueError("'struct_format' and 'notify' need a 'characteristic'")
        elif self.writable:
            raise ValueError("only GATT points ('characteristic') can be writable")
        fmt = self.struct_format
        if fmt is not None and fmt != "utf8" and not _STRUCT_RE.match(fmt):
            raise ValueError(
                f"struct_format {self.struct_format!r}: use a byte order (<, >, !) "
                "and one of b B h H i I q Q e f d ?, or 'utf8'"
            )
        return self

    @property
    def attribute_name(self) -> str:
        """The NGSI-LD attribute this point becomes."""
        return self.attribute or self.name

    @property
    def field_name(self) -> str:
        """The decoded advertisement field this point reads."""
        return self.field or self.name

    @property
    def uuid(self) -> str | None:
        """The characteristic UUID in bleak's 128-bit form (GATT points only)."""
        return None if self.characteristic is None else characteristic_uuid(self.characteristic)

    @property
    def size(self) -> int | None:
        """Bytes of the characteristic value (``None`` for text)."""
        if self.struct_format is None or self.struct_format == "utf8":
            return None
        return struct.calcsize(self.struct_format)


class BleProfileSettings(BaseModel):
    """The ``[ble]`` table of a profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: BleFormat = BleFormat.BTHOME
    absence_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    """No value of a point for this long -> one bad reading for it, repeated every period."""
    passive: bool = True
    """Scan passively (no scan requests) where the platform supports it."""
    pseudonymise: bool = True
    """Identifiers an advertisement carries (a MAC address, iBeacon ``uuid``/``major``/
    ``minor``, Eddystone ``namespace``/``instance``) leave the gateway as a keyed hash
    (``ldt.drivers.ble.privacy``): tags people carry make them personal data (GDPR).
    ``false`` for fixed assets whose ids say nothing about a person."""


class BleConnection(BaseModel):
    """How to find one device instance: its address (or advertised name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["ble"] = "ble"
    address: (
        Annotated[str, StringConstraints(pattern=_MAC)]
        | Annotated[str, StringConstraints(pattern=_CB_UUID)]
        | None
    ) = None
    """MAC address (Linux, Windows) or the CoreBluetooth UUID macOS reports instead."""
    name: Annotated[str, StringConstraints(min_length=1, max_length=248)] | None = None
    """Advertised local name, for devices with rotating private addresses."""
    mode: BleMode = BleMode.ADVERTISEMENT
    bindkey: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{32}$")] | None = None
    """BTHome AES-CCM key, 32 hex digits (the device's configuration shows it)."""
    adapter: Annotated[str, StringConstraints(pattern=r"^hci[0-9]{1,2}$")] | None = None
    """BlueZ adapter; default: the system's default one."""
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Deadline of a GATT connect, read or write."""

    @model_validator(mode="after")
    def _identified(self) -> BleConnection:
        if self.address is None and self.name is None:
            raise ValueError("a BLE connection needs 'address' or 'name'")
        if self.mode is BleMode.GATT and self.address is None:
            raise ValueError("a GATT connection needs 'address'")
        return self

    @property
    def bindkey_bytes(self) -> bytes | None:
        """The bindkey as 16 bytes."""
        return None if self.bindkey is None else bytes.fromhex(self.bindkey)
