"""Capped exponential backoff with full jitter, for reconnects and retries.

Jitter matters on a city network: after a cabinet's power returns, fifty
devices and the uplink must not all retry in the same millisecond.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays ``min(cap, base * 2**attempt)`` scaled by a random factor in [0.5, 1].

    Call ``next_delay()`` after each failure and ``reset()`` after a success.
    """

    def __init__(
        self, *, base_s: float = 0.5, cap_s: float = 60.0, rng: random.Random | None = None
    ) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        self._base = base_s
        self._cap = cap_s
        self._attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    @property
    def attempt(self) -> int:
        """Failures since the last success."""
        return self._attempt

    def next_delay(self) -> float:
        """The delay before the next try, in seconds; counts one more failure."""
        ceiling = min(self._cap, self._base * (2.0 ** min(self._attempt, 32)))
        self._attempt += 1
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Forget past failures (call after a success)."""
        self._attempt = 0
