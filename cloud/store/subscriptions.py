"""NGSI-LD subscriptions as stored: documents, delivery counters, and what lets brokers share them.

Three tables (their DDL is still with each store): ``subscriptions`` (the document
``ldt.cloud.ngsild.subscriptions.validate`` made, and the counters), the one-row
``subscription_generation`` and ``subscription_slots``. Several broker processes may
share one PostgreSQL database; each matches subscriptions in memory, so every change
moves the generation in the same transaction (the others reload when it has moved), and
a notification that must go out once per period goes out from whichever broker claims
the period's slot first.

Every statement here is the same on SQLite and PostgreSQL; the few fragments that are
not come from ``Dialect``.

With a ``sealer`` (``ldt cloud serve`` always sets one), the endpoint's secrets are sealed
in the stored document (``sealing``): each ``receiverInfo`` value, and a URI with
credentials (the document keeps it with ``***`` and the whole URI in ``sealedUri``).
Records come back opened, for the notifier; what a client reads is masked by the routes.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from ldt.cloud.errors import StoreError
from ldt.cloud.store.database import Database, Row, Tx
from ldt.cloud.store.sealing import Sealer, is_sealed
from ldt.url_secrets import redact

__all__ = ["NotificationCounts", "SubscriptionRecord", "SubscriptionRepository"]


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """A stored NGSI-LD subscription (``ldt.cloud.ngsild.subscriptions``) and its counters.

    Counters are kept apart from the document so that a delivery never rewrites (and never
    races with) a client's PATCH; times are ISO 8601 UTC.
    """

    doc: dict[str, Any]
    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    owner: str | None = None
    """Who created it (``user:bob``), with the grants it had then (JSON, ``access``):
    notifications carry only what the owner may read. None: made with authentication off."""


@dataclass(frozen=True, slots=True)
class NotificationCounts:
    """What one broker process counted for one subscription since its last flush.

    ``SubscriptionRepository.record_notifications`` adds the counts to the stored ones and
    keeps the later of each time (ISO 8601 UTC, so later sorts higher), so several
    processes sharing one database add up instead of overwriting each other.
    """

    sub_id: str
    sent: int = 0
    """Attempts made (``timesSent``; ``last_notification`` is the last one's time)."""
    failed: int = 0
    """Attempts that failed or notifications dropped (``timesFailed``)."""
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None


_NO_LIMIT: Final = 2**63 - 1
"""``LIMIT`` for "all rows": SQLite wants a LIMIT before an OFFSET, PostgreSQL refuses -1."""


def _later(column: str, new: str) -> str:
    """The later of two ISO times, either possibly NULL.

    PostgreSQL's ``greatest()`` does this but SQLite has none, and SQLite's two-argument
    ``max()`` is NULL when either side is; a comparison against NULL is not true, so
    the CASE falls through to whichever one is set.
    """
    return f"CASE WHEN {new} > {column} THEN {new} ELSE coalesce({column}, {new}) END"


class SubscriptionRepository:
    """Subscriptions of one store (one tenant); every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.sealer: Sealer | None = None
        """Seals endpoint secrets at rest; None keeps them in the clear (tests, tools)."""
        d = db.dialect
        self._select = (
            f"SELECT {d.doc_text()}, times_sent, times_failed,"  # noqa: S608
            " last_notification, last_success, last_failure, owner FROM subscriptions"
        )
        self._insert = (
            f"INSERT INTO subscriptions (id, doc, owner) VALUES (?, {d.json_param}, ?)"  # noqa: S608
            " ON CONFLICT (id) DO NOTHING"
        )
        self._update = f"UPDATE subscriptions SET doc = {d.json_param} WHERE id = ?"  # noqa: S608
        # Rows of one id are summed first: UPDATE .. FROM applies one source row per
        # target row. Members are [id, sent, failed, last_notification, last_success,
        # last_failure]; ->> gives text in PostgreSQL, hence the casts.
        self._record = (
            "UPDATE subscriptions AS s SET"  # noqa: S608
            " times_sent = s.times_sent + u.sent, times_failed = s.times_failed + u.failed,"
            f" last_notification = {_later('s.last_notification', 'u.ln')},"
            f" last_success = {_later('s.last_success', 'u.ls')},"
            f" last_failure = {_later('s.last_failure', 'u.lf')}"
            " FROM (SELECT value ->> 0 AS id,"
            " CAST(sum(CAST(value ->> 1 AS bigint)) AS bigint) AS sent,"
            " CAST(sum(CAST(value ->> 2 AS bigint)) AS bigint) AS failed,"
            " max(value ->> 3) AS ln, max(value ->> 4) AS ls, max(value ->> 5) AS lf"
            f" FROM {d.json_rows} GROUP BY value ->> 0) AS u"
            " WHERE s.id = u.id"
        )

    # documents ----------------------------------------------------------------------
    async def create(self, doc: dict[str, Any], owner: str | None = None) -> bool:
        """Store a new subscription (``doc["id"]``) made by ``owner``; False (nothing
        written) if the id exists."""
        sub_id, text = doc["id"], _dumps(self._sealed(doc))

        async def work(tx: Tx) -> bool:
            inserted = await tx.execute(self._insert, (sub_id, text, owner))
            return await _changed(tx, sub_id, inserted)

        return await self._db.write(work)

    async def replace(self, doc: dict[str, Any]) -> bool:
        """Replace an existing subscription's document (counters kept); False if absent."""
        sub_id, text = doc["id"], _dumps(self._sealed(doc))

        async def work(tx: Tx) -> bool:
            return await _changed(tx, sub_id, await tx.execute(self._update, (text, sub_id)))

        return await self._db.write(work)

    async def delete(self, sub_id: str) -> bool:
        """Delete a subscription; False if absent."""

        async def work(tx: Tx) -> bool:
            deleted = await tx.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
            return await _changed(tx, sub_id, deleted)

        return await self._db.write(work)

    async def get(self, sub_id: str) -> SubscriptionRecord | None:
        """One subscription, or None."""

        async def work(tx: Tx) -> SubscriptionRecord | None:
            row = await tx.fetchone(f"{self._select} WHERE id = ?", (sub_id,))
            return None if row is None else _record(row)

        record = await self._db.read(work, snapshot=False)
        return None if record is None else self._opened(record)

    async def list(
        self, *, limit: int | None = None, offset: int = 0
    ) -> tuple[builtins.list[SubscriptionRecord], int]:
        """One page of subscriptions by id (``limit`` None: all) and their total number."""
        records, total = await self._stored(limit, offset)
        return [self._opened(r) for r in records], total

    async def _stored(
        self, limit: int | None, offset: int
    ) -> tuple[builtins.list[SubscriptionRecord], int]:
        params = (_NO_LIMIT if limit is None else limit, offset)

        async def work(tx: Tx) -> tuple[builtins.list[SubscriptionRecord], int]:
            total = int(await tx.scalar("SELECT count(*) FROM subscriptions"))
            rows = await tx.fetchall(f"{self._select} ORDER BY id LIMIT ? OFFSET ?", params)
            return [_record(r) for r in rows], total

        return await self._db.read(work)

    async def seal_with(self, sealer: Sealer) -> int:
        """Seal endpoint secrets with ``sealer`` from now on, and those stored in the clear
        (by a broker before sealing, or without a sealer) now; returns how many
        subscriptions were rewritten."""
        self.sealer = sealer
        records, _ = await self._stored(None, 0)
        clear = [r.doc for r in records if _endpoint_secrets(r.doc) and not _has_sealed(r.doc)]
        for doc in clear:
            await self.replace(doc)
        return len(clear)

    # sealing ----------------------------------------------------------------------------
    def _sealed(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` as stored: its endpoint's secrets sealed (unchanged without a sealer)."""
        sealer = self.sealer
        endpoint = _endpoint(doc)
        if sealer is None or endpoint is None or not _endpoint_secrets(doc):
            return doc
        sub_id = str(doc["id"])
        stored = dict(endpoint)
        if "receiverInfo" in endpoint:
            stored["receiverInfo"] = [
                {"key": kv["key"], "value": sealer.seal(kv["value"], bound_to=_bound(sub_id, kv))}
                for kv in endpoint["receiverInfo"]
            ]
        uri = str(endpoint.get("uri", ""))
        if urlsplit(uri).username is not None:
            stored["uri"] = redact(uri, keep_lone_user=False)
            stored["sealedUri"] = sealer.seal(uri, bound_to=f"{sub_id} uri")
        return {**doc, "notification": {**doc["notification"], "endpoint": stored}}

    def _opened(self, record: SubscriptionRecord) -> SubscriptionRecord:
        """``record`` with its endpoint's secrets opened (``_sealed`` undone)."""
        doc = record.doc
        endpoint = _endpoint(doc)
        if endpoint is None or not _has_sealed(doc):
            return record
        sealer = self.sealer
        sub_id = str(doc["id"])
        if sealer is None:
            raise StoreError(f"subscription {sub_id} holds sealed secrets: open it with a key")
        opened = dict(endpoint)
        if "receiverInfo" in endpoint:
            opened["receiverInfo"] = [
                {"key": kv["key"], "value": sealer.unseal(kv["value"], bound_to=_bound(sub_id, kv))}
                if is_sealed(kv["value"])
                else kv
                for kv in endpoint["receiverInfo"]
            ]
        if "sealedUri" in opened:
            opened["uri"] = sealer.unseal(opened.pop("sealedUri"), bound_to=f"{sub_id} uri")
        doc = {**doc, "notification": {**doc["notification"], "endpoint": opened}}
        return replace(record, doc=doc)

    # delivery -------------------------------------------------------------------------
    async def record_notifications(self, counts: Sequence[NotificationCounts]) -> None:
        """Add notification counters, several subscriptions in one statement.

        The notifier counts attempts in memory and flushes them every few hundred
        milliseconds: one write per delivery, queued behind the entity writes, was what
        limited notification throughput. Subscriptions that no longer exist are skipped.
        Each flush adds to the rows as they are when their locks are granted, so brokers
        flushing at once add up; counts come sorted by id so that they tend to take the
        locks in one order (a deadlock between two of them is retried by the database).
        """
        if not counts:
            return
        rows = _dumps(
            [
                [c.sub_id, c.sent, c.failed, c.last_notification, c.last_success, c.last_failure]
                for c in sorted(counts, key=lambda c: c.sub_id)
            ]
        )

        async def work(tx: Tx) -> None:
            await tx.execute(self._record, (rows,))

        await self._db.write(work)

    async def generation(self) -> int:
        """A number that changes whenever a subscription is created, replaced or deleted.

        Broker processes sharing one database match subscriptions in memory; each reloads
        them when this number has moved, so a change made through one process is in force
        in the others at their next write (not only after a refresh period).
        """

        async def work(tx: Tx) -> int:
            n = await tx.scalar("SELECT n FROM subscription_generation")
            return 0 if n is None else int(n)

        return await self._db.read(work, snapshot=False)

    async def claim_notification_slot(
        self, sub_id: str, *, now_ms: int, period_ms: int
    ) -> tuple[bool, int]:
        """Take a subscription's notification slot if it is free at ``now_ms`` (epoch ms).

        Returns ``(claimed, due_ms)``: claimed, the caller alone sends this period's
        notification (a ``timeInterval`` one, or a throttled one) and the slot is next free
        at ``due_ms = now_ms + period_ms``; not claimed, someone else holds it until
        ``due_ms``. Deleting or replacing the subscription frees it.

        One upsert that changes the row only if the slot is free: PostgreSQL re-checks
        the condition on the row as the competing broker committed it, so of two brokers
        claiming at once exactly one gets a row back (SQLite has one writer anyway).
        """
        due = now_ms + period_ms

        async def work(tx: Tx) -> tuple[bool, int]:
            won = await tx.fetchone(_CLAIM_SLOT, (sub_id, due, now_ms))
            if won is not None:
                return True, int(won[0])
            held = await tx.scalar("SELECT due_ms FROM subscription_slots WHERE id = ?", (sub_id,))
            # None: freed by a change of the subscription since the upsert
            return False, now_ms if held is None else int(held)

        return await self._db.write(work)


_CLAIM_SLOT: Final = (
    "INSERT INTO subscription_slots AS s (id, due_ms) VALUES (?, ?)"
    " ON CONFLICT (id) DO UPDATE SET due_ms = excluded.due_ms WHERE s.due_ms <= ?"
    " RETURNING due_ms"
)


async def _changed(tx: Tx, sub_id: str, rows: int) -> bool:
    """After a subscription write, in its transaction: move the generation, free its slot."""
    if rows != 1:
        return False
    await tx.execute("UPDATE subscription_generation SET n = n + 1")
    await tx.execute("DELETE FROM subscription_slots WHERE id = ?", (sub_id,))
    return True


def _endpoint(doc: dict[str, Any]) -> dict[str, Any] | None:
    notification = doc.get("notification")
    endpoint = notification.get("endpoint") if isinstance(notification, dict) else None
    return endpoint if isinstance(endpoint, dict) else None


def _endpoint_secrets(doc: dict[str, Any]) -> bool:
    """Whether ``doc``'s endpoint has anything to seal."""
    endpoint = _endpoint(doc) or {}
    return bool(endpoint.get("receiverInfo")) or (
        urlsplit(str(endpoint.get("uri", ""))).username is not None
    )


def _has_sealed(doc: dict[str, Any]) -> bool:
    endpoint = _endpoint(doc) or {}
    return "sealedUri" in endpoint or any(
        is_sealed(kv.get("value")) for kv in endpoint.get("receiverInfo", ())
    )


def _bound(sub_id: str, kv: dict[str, Any]) -> str:
    return f"{sub_id} receiverInfo {kv['key']}"


def _record(row: Row) -> SubscriptionRecord:
    doc: dict[str, Any] = orjson.loads(row[0])
    return SubscriptionRecord(
        doc=doc,
        times_sent=int(row[1]),
        times_failed=int(row[2]),
        last_notification=row[3],
        last_success=row[4],
        last_failure=row[5],
        owner=row[6],
    )


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
