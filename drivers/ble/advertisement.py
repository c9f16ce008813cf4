"""The seam between the radio and the decoders: one received advertisement.

bleak (or the simulator) produces these; decoders and the device read them.
``AdvertisementLike`` is structural so a source outside the driver package
(the simulator, which must not import drivers) can hand in its own dataclass
with the same fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Advertisement",
    "AdvertisementLike",
    "AdvertisementSource",
    "normalize_address",
    "uuid16",
]

_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """The 128-bit UUID string bleak uses for a 16-bit SIG UUID (``0xFCD2`` -> ``0000fcd2-...``)."""
    if not 0 <= short <= 0xFFFF:
        raise ValueError(f"16-bit UUID {short:#x} is out of range")
    return f"0000{short:04x}{_BASE_UUID_TAIL}"


def normalize_address(address: str) -> str:
    """Upper-case, colon-separated; the form used to compare addresses."""
    return address.strip().upper().replace("-", ":")


class AdvertisementLike(Protocol):
    """What the driver needs of a received advertisement (read-only)."""

    @property
    def address(self) -> str: ...
    @property
    def rssi(self) -> int | None: ...
    @property
    def local_name(self) -> str | None: ...
    @property
    def manufacturer_data(self) -> Mapping[int, bytes]: ...
    @property
    def service_data(self) -> Mapping[str, bytes]: ...
    @property
    def service_uuids(self) -> Sequence[str]: ...
    @property
    def received_at_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One advertisement as received, in bleak's terms.

    ``manufacturer_data`` is keyed by the Bluetooth SIG company id, the value
    *without* the two company-id bytes; ``service_data`` is keyed by 128-bit
    UUID strings (lower case, as bleak gives them). ``received_at_ms`` is Unix
    time in milliseconds.
    """

    address: str
    rssi: int | None
    local_name: str | None
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    service_uuids: Sequence[str] = ()
    received_at_ms: int = 0


class AdvertisementSource(Protocol):
    """An async iterable of received advertisements (a scanner, or a simulator).

    Iterating starts receiving; closing the iterator (``aclose``) stops it. An
    iterator that ends or raises means the source failed; the device retries.
    """

    def __aiter__(self) -> AsyncIterator[AdvertisementLike]: ...
