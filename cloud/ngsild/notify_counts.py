"""Notification counters (``timesSent``, ``timesFailed``, ``lastNotification``,
``lastSuccess``, ``lastFailure``), counted in memory and flushed to the store in batches.

Writing them per attempt (two writes per delivery, each queued behind the entity writes)
was what limited notification throughput. ``Counters`` adds each attempt to a tally per
subscription and writes every tally in one ``SubscriptionRepository.record_notifications``
call: at once when the first count after a quiet spell arrives (so an idle broker shows its
counters within one round trip), then at most every ``interval_s`` while counts keep
coming, and a last time at ``aclose``. The store adds the counts to the stored ones, so
brokers sharing a database add up. A flush that fails keeps its tallies for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.base import Store
from ldt.cloud.store.subscriptions import NotificationCounts

__all__ = ["Counters"]

_log = logging.getLogger("ldt.cloud.notifier")


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)


@dataclass(slots=True)
class _Tally:
    sent: int = 0
    failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None

    def add(self, other: _Tally) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.last_notification = _later(self.last_notification, other.last_notification)
        self.last_success = _later(self.last_success, other.last_success)
        self.last_failure = _later(self.last_failure, other.last_failure)


class Counters:
    """Per-subscription notification counters of one notifier, flushed in batches.

    ``count`` never blocks and never fails; the flushing task starts on first use.
    """

    def __init__(self, store: Store, *, interval_s: float = 0.15) -> None:
        self._store = store
        self._interval_s = interval_s
        self._tallies: dict[str, _Tally] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing: asyncio.Future[None] | None = None
        self._closed = False
        self._open: dict[str, int] = {}  # attempts sent whose outcome is not known yet
        self._outcome = asyncio.Event()  # set whenever an outcome is counted

    def count(self, subscription_id: str, *, ok: bool | None) -> None:
        """One attempt: ``ok`` None when it is sent, then True or False for its outcome."""
        at = iso_ms(time.time_ns() // 1_000_000)
        tally = self._tallies.get(subscription_id)
        if tally is None:
            tally = self._tallies[subscription_id] = _Tally()
        if ok is None:
            self._open[subscription_id] = self._open.get(subscription_id, 0) + 1
        elif self._open.get(subscription_id, 0) > 1:
            self._open[subscription_id] -= 1
        else:
            self._open.pop(subscription_id, None)
        if ok is not None:
            self._outcome.set()
        if ok is None:
            tally.sent += 1
            tally.last_notification = at
        elif ok:
            tally.last_success = at
        else:
            tally.failed += 1
            tally.last_failure = at
        self._dirty.set()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="ldt-notify-counters")

    async def settle(self, subscription_id: str | None, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until no attempt of ``subscription_id`` (None: of
        any subscription) is waiting for its outcome.

        A receiver learns of a notification before the broker learns that it arrived; a
        client that reads the subscription right after being notified should see that
        attempt's outcome (lastSuccess), not only that it was sent.
        """
        deadline = time.monotonic() + timeout_s
        while self._open.get(subscription_id, 0) if subscription_id else any(self._open.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._outcome.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._outcome.wait()

    def pending(self) -> int:
        """Subscriptions with counts not yet written (for tests and logs)."""
        return len(self._tallies)

    async def aclose(self) -> None:
        """Stop the flushing task, then write what is left."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._flushing is not None:  # a flush under way goes on through the cancel
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        await self.flush()
        if self._tallies:
            _log.warning(
                "notification counters lost at shutdown",
                extra={"subscriptions": sorted(self._tallies)},
            )

    async def flush(self) -> None:
        """Write every tally now (one store call); on failure they wait for the next."""
        if not self._tallies:
            return
        tallies, self._tallies = self._tallies, {}
        counts = [
            NotificationCounts(
                sub_id=sub_id,
                sent=t.sent,
                failed=t.failed,
                last_notification=t.last_notification,
                last_success=t.last_success,
                last_failure=t.last_failure,
            )
            for sub_id, t in tallies.items()
        ]
        try:
            await self._store.subscriptions.record_notifications(counts)
        except StoreError as exc:
            _log.warning("notification counters not saved yet", extra={"error": str(exc)})
            for sub_id, tally in tallies.items():  # counts made meanwhile are added to them
                newer = self._tallies.get(sub_id)
                if newer is not None:
                    tally.add(newer)
                self._tallies[sub_id] = tally
            self._dirty.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._flushing = asyncio.ensure_future(self.flush())
            await asyncio.shield(self._flushing)
            self._flushing = None
            await asyncio.sleep(self._interval_s)
