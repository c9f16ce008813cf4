"""Pseudonyms for BLE identifiers: the same tag gets the same pseudonym, nobody can undo it.

A beacon's or tag's identifiers (MAC address, iBeacon proximity UUID/major/minor, Eddystone
namespace/instance) identify the person carrying it, so they are personal data under the
GDPR. A gateway counting tags in a park must not send them to the cloud, or keep them in
its logs. They are replaced by HMAC-SHA256 under a key that never leaves the gateway
(``DATA/privacy.key``, made by the agent): stable, so that the twin can still count and
follow "tag p:3f9a...", and not reversible, not even by the cloud's operator. A profile
opts out (``[ble] pseudonymise = false``) for fixed assets.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["IDENTIFIER_FIELDS", "pseudonym"]

IDENTIFIER_FIELDS: Final = frozenset(
    {"mac", "address", "uuid", "major", "minor", "namespace", "instance"}
)
"""Decoded advertisement fields that identify a device (and so its carrier)."""


def pseudonym(key: bytes, value: object) -> str:
    """``p:`` and 16 hex digits of HMAC-SHA256(key, value): 64 bits, enough to tell a city's
    tags apart, too few to be a useful handle anywhere else."""
    digest = hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()
    return "p:" + digest[:16]
