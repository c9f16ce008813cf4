"""Backfill batch size that follows the link: large on fibre, small on a weak LTE cell.

Why: a batch is all-or-nothing. On a slow or flaky link a 5,000-reading batch (~45 KiB
gzipped) can take tens of seconds and fail near the end, and every retry resends all of
it; on a fast link small batches waste round trips (the sync benchmark: batch 1,000 gives
half the throughput of 5,000 on loopback). So the size adapts, AIMD-style like TCP:

- a batch that took longer than ``target_s`` halves the size (down to ``minimum``);
- a batch that failed (timeout, network) halves it too;
- a batch that took less than a quarter of ``target_s`` doubles it (up to ``maximum``,
  the configured ``batch_max_readings``).

Only full batches count as evidence for growing: a backlog's tail is small whatever the link.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchSizer"]


@dataclass
class BatchSizer:
    """The current backfill batch size and the rules that move it."""

    maximum: int
    minimum: int = 100
    target_s: float = 5.0
    size: int = 0

    def __post_init__(self) -> None:
        self.minimum = min(self.minimum, self.maximum)
        self.size = self.size or self.maximum

    def sent(self, readings: int, seconds: float) -> None:
        """A batch of ``readings`` was acknowledged after ``seconds``."""
        if seconds > self.target_s:
            self.size = max(self.minimum, self.size // 2)
        elif seconds < self.target_s / 4 and readings >= self.size:
            self.size = min(self.maximum, self.size * 2)

    def failed(self) -> None:
        """A batch did not arrive (timeout, connection lost): try a smaller one next."""
        self.size = max(self.minimum, self.size // 2)
