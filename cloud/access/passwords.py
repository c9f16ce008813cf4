"""Password and client-secret hashing (argon2id), off the event loop and bounded.

argon2id with argon2-cffi's defaults (RFC 9106's second recommended profile: 64 MiB,
3 passes, 4 lanes): a stolen database costs an attacker that much per guess. The same
cost would let a flood of sign-ins stall the broker or exhaust its memory, so hashing
runs in worker threads, at most ``MAX_PARALLEL`` at once; the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MAX_SECRET_BYTES", "generate_secret", "hash_secret", "verify_secret"]

MAX_PARALLEL: Final = 2
MAX_SECRET_BYTES: Final = 1024
"""Longer passwords and secrets are refused before hashing (oversized credentials)."""

_hasher = PasswordHasher()
_slots = asyncio.Semaphore(MAX_PARALLEL)
_DUMMY: Final = _hasher.hash("ldt-dummy-password")
"""Verified against when the account does not exist, so timing does not tell."""


def generate_secret(nbytes: int = 18) -> str:
    """A random password or client secret, URL-safe (18 bytes: 24 characters)."""
    return secrets.token_urlsafe(nbytes)


async def hash_secret(secret: str) -> str:
    """The argon2id hash of ``secret`` (a ``$argon2id$...`` string)."""
    if len(secret.encode()) > MAX_SECRET_BYTES:
        raise ValueError(f"a password is at most {MAX_SECRET_BYTES} bytes")
    async with _slots:
        return await asyncio.to_thread(_hasher.hash, secret)


async def verify_secret(secret: str, hashed: str | None) -> bool:
    """Whether ``secret`` matches ``hashed``; None (no such account) costs the same and fails."""
    if len(secret.encode()) > MAX_SECRET_BYTES:
        return False

    def check() -> bool:
        try:
            return _hasher.verify(hashed or _DUMMY, secret) and hashed is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async with _slots:
        return await asyncio.to_thread(check)
