"""Optional encryption of buffered values at rest (``[buffer] encryption_key_file``).

Why: a gateway in a street cabinet can be stolen, or its SD card copied; the buffer may
hold a week of readings (occupancy, energy use) that the city must not leak. With a key
set, every value is sealed with AES-256-GCM before it enters the buffer and opened by the
uplink just before it is sent (over TLS). Timestamps, series and seqs stay in clear: the
buffer's order, deduplication and limits need them, and they reveal when, not what.

The key is 32 random bytes (``ldt agent buffer-key FILE`` makes one, mode 0600). It only
helps if it does not sit on the same card as the buffer: keep it on a separate medium or
unseal it from a TPM at boot. Values sealed are text ``ldtenc1:<base64(nonce|ciphertext)>``
in the buffer; rows written before encryption was switched on are sent as they are, and a
value that cannot be opened (the key changed) is set aside with the reason, never sent.
``cryptography`` (~14 MiB of RSS) is imported only when a key is configured.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Final

import orjson

from ldt.contract import WireValue
from ldt.private_files import write_private

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PREFIX", "CipherError", "ValueCipher", "write_new_key"]

PREFIX: Final = "ldtenc1:"
_AAD: Final = b"ldt-buffer-value-v1"
_RECORD_AAD: Final = b"ldt-buffer-record-v1"
_KEY_BYTES: Final = 32


class CipherError(Exception):
    """A key that cannot be used, or a value that cannot be opened; the message says why."""


def write_new_key(path: Path) -> None:
    """A fresh random key in ``path`` (mode 0600); refuses to overwrite one."""
    if path.exists():
        raise CipherError(f"{path} exists: a new key would make its buffered values unreadable")
    write_private(path, secrets.token_bytes(_KEY_BYTES))


class ValueCipher:
    """Seals and opens buffered values with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise CipherError(f"the buffer key must be {_KEY_BYTES} bytes, not {len(key)}")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead: AESGCM = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> ValueCipher:
        """The key in ``path``; refused if others may read it."""
        try:
            if path.stat().st_mode & 0o077:
                raise CipherError(f"{path} is readable by others: chmod 600 it")
            return cls(path.read_bytes())
        except OSError as exc:
            raise CipherError(f"cannot read the buffer key {path}: {exc}") from exc

    def seal(self, value: WireValue) -> str:
        """The value as stored in the buffer."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, orjson.dumps(value), _AAD)
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: object) -> object:
        """The value to send; a stored value without the prefix was never sealed."""
        if not isinstance(stored, str) or not stored.startswith(PREFIX):
            return stored
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
            return orjson.loads(self._aead.decrypt(raw[:12], raw[12:], _AAD))
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise CipherError("cannot open a buffered value: another key sealed it") from exc

    def seal_bytes(self, plain: bytes) -> bytes:
        """A whole buffer record sealed (nonce | ciphertext and tag): since schema 4 the
        buffer seals records, not values, so sealing adds 28 bytes per flush, not per value."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plain, _RECORD_AAD)

    def open_bytes(self, sealed: bytes) -> bytes:
        """The inverse of ``seal_bytes``; ``CipherError`` when another key sealed it."""
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], _RECORD_AAD)
        except (ValueError, InvalidTag) as exc:
            raise CipherError("cannot open a buffered record: another key sealed it") from exc
