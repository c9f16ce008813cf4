"""Secrets a client gives the store to use but never to read back, sealed at rest.

A subscription's ``receiverInfo`` carries the receiver's credentials (an ``Authorization``
header, an API key) and an MQTT endpoint's URI may carry a password. The broker must send
them with every notification, so it cannot keep only a hash; what it can do is keep them
out of the clear in the database, its backups and its dumps (a PostgreSQL shared with
other teams, a ``cloud.db`` copied for a bug report), and never hand them out again.

Each value is sealed with AES-256-GCM under a key kept beside the CA and the token key,
``DATA/pki/store-secrets.key`` (brokers that share a database share the ``pki`` folder),
and bound to where it belongs (the subscription id and the field): a sealed value copied
into another subscription does not open. A value sealed under another key says so
instead of decoding to garbage.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ldt.cloud.errors import StoreError
from ldt.private_files import kept_secret

__all__ = ["KEY_FILE", "PREFIX", "Sealer", "is_sealed"]

KEY_FILE: Final = "store-secrets.key"
PREFIX: Final = "sealed:v1:"
_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a sealed text (``Sealer.seal``)."""
    return isinstance(value, str) and value.startswith(PREFIX)


class Sealer:
    """Seals and opens short texts with one key (AES-256-GCM, a fresh nonce each time)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError(f"a store secrets key is {_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]
        """Names the key in each sealed value, so a wrong key is told apart from damage."""

    @classmethod
    def open(cls, pki_dir: Path) -> Sealer:
        """The sealer whose key is ``pki_dir/KEY_FILE`` (made, mode 0600, on first use)."""
        pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = kept_secret(
            pki_dir / KEY_FILE, lambda: os.urandom(_KEY_BYTES), lambda k: len(k) == _KEY_BYTES
        )
        return cls(key)

    def seal(self, plain: str, *, bound_to: str) -> str:
        """``plain`` sealed; it opens only with this key and the same ``bound_to``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode(), bound_to.encode())
        return f"{PREFIX}{self.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def unseal(self, text: str, *, bound_to: str) -> str:
        """The plain text of ``seal(..., bound_to=bound_to)``.

        Raises ``StoreError`` when ``text`` was sealed under another key (a broker whose
        ``pki`` folder is not the one the others use) or has been altered.
        """
        key_id, _, body = text.removeprefix(PREFIX).partition(":")
        if key_id != self.key_id:
            raise StoreError(
                f"a stored secret was sealed with store secrets key {key_id}, this broker has"
                f" {self.key_id}: brokers that share a database must share DATA/pki/{KEY_FILE}"
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode())
        except (ValueError, InvalidTag):
            raise StoreError(f"a stored secret of {bound_to} is damaged") from None
        return plain.decode()
