"""HTTP delivery of NGSI-LD notifications (GS CIM 009 v1.9 clause 5.8.6, 5.11).

The hook: every entity write of the API goes through ``Notifier.write_entities`` (it wraps
``Store.write_entities``, records each committed change's document before and after, and
matches them once the transaction has committed); gateway ingest calls
``Notifier.ingested`` after its commit. Matching is in memory against compiled
subscriptions (reloaded after a subscription changes here, and every ``refresh_s`` for
changes made by other broker processes: ``Store.subscriptions_generation`` is checked
before every match, so a change made through another process sharing the database is in
force at once).

Delivery: one asyncio task per endpoint URI with its own bounded queue, so a slow or dead
receiver only ever delays its own notifications. Each notification is POSTed up to
``attempts`` times with capped, jittered backoff (at-least-once while the broker runs; a
full queue drops the notification and counts it as failed). Every attempt is counted in
the store (``timesSent``, ``timesFailed``, ``lastNotification``/``lastSuccess``/
``lastFailure``). ``mqtt://``/``mqtts://`` endpoints go through the same queues and
counters and are published by ``notify_mqtt.MqttPublisher`` (one connection per broker).

Periodic (``timeInterval``) subscriptions: a ticker task, started when a subscription is
created or changed here or a periodic one is loaded, queries their entities every
``timeInterval`` seconds. Periodic and throttled notifications take the subscription's slot
in the store first (``Store.claim_notification_slot``), so several broker processes on one
database send one per period between them, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from ldt.backoff import Backoff
from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.contexts import ContextStore
from ldt.cloud.ngsild.jsonld import CORE_CONTEXT_URL, ContextError
from ldt.cloud.ngsild.linked import fetch_from
from ldt.cloud.ngsild.media import JSON, JSON_LD
from ldt.cloud.ngsild.mqtt_endpoint import MQTT_SCHEMES
from ldt.cloud.ngsild.notify_mqtt import MqttPublisher
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.subscriptions import (
    Change,
    Matcher,
    compile_subscription,
    notification,
    status_of,
)
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.base import Entity, EntityChange, Store, WriteOutcome
from ldt.contract import IngestBatch

__all__ = ["Notifier"]

_log = logging.getLogger("ldt.cloud.notifier")
_TICK_S: Final = 0.5
_PERIODIC_MAX: Final = 1000  # entities per periodic notification
_CONTEXT_REL: Final = '; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


@dataclass(frozen=True, slots=True)
class _Job:
    subscription_id: str
    uri: str
    body: bytes
    headers: dict[str, str]
    timeout_s: float
    options: tuple[tuple[str, str], ...] = ()  # notifierInfo (MQTT-Version, MQTT-QoS)


def redacted(uri: str) -> str:
    """``uri`` fit for logs and task names: a password in its userinfo becomes ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _now_iso() -> str:
    return iso_ms(time.time_ns() // 1_000_000)


def _link_url(context: Any) -> str:
    """The URL a Link header can name for ``context`` (the core context if it has none)."""
    if isinstance(context, str):
        return context
    if isinstance(context, list) and len(context) == 1 and isinstance(context[0], str):
        return context[0]
    return CORE_CONTEXT_URL


class _Endpoint:
    """One receiver: its queue and the task draining it."""

    def __init__(self, notifier: Notifier, uri: str, queue_size: int) -> None:
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self.task = asyncio.create_task(
            notifier._drain(self.queue), name=f"ldt-notify {redacted(uri)}"
        )


class Notifier:
    """Matches committed entity changes to subscriptions and delivers notifications.

    Keyword-only, no I/O in the constructor; tasks start on first use. ``aclose()`` (or
    leaving ``async with``) stops every endpoint task; queued notifications are dropped.
    """

    def __init__(
        self,
        *,
        store: Store,
        contexts: ContextStore,
        timeout_s: float = 10.0,
        queue_size: int = 1000,
        attempts: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 5.0,
        refresh_s: float = 5.0,
        tenant: str | None = None,
    ) -> None:
        if attempts < 1 or queue_size < 1:
            raise ValueError("attempts and queue_size must be at least 1")
        self._store = store
        self._tenant = tenant
        """The NGSILD-Tenant its subscriptions belong to (None: the default tenant)."""
        self._contexts = contexts
        self._timeout_s = timeout_s
        self._queue_size = queue_size
        self._attempts = attempts
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._refresh_s = refresh_s
        self._matchers: list[Matcher] | None = None
        self._loaded_at = 0.0
        self._generation: int | None = None
        self._load_lock = asyncio.Lock()
        self._generation_read: asyncio.Future[int] | None = None
        self._slot_due: dict[str, int] = {}  # epoch ms a periodic/throttled slot is next free
        self._endpoints: dict[str, _Endpoint] = {}
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self._ticker: asyncio.Task[None] | None = None
        self._mqtt = MqttPublisher(backoff_base_s=backoff_base_s, backoff_cap_s=backoff_cap_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every endpoint task and close the HTTP client."""
        self._closed = True
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            endpoint.task.cancel()
        for endpoint in endpoints:
            with contextlib.suppress(asyncio.CancelledError):
                await endpoint.task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        await self._mqtt.aclose()

    def invalidate(self) -> None:
        """Subscriptions changed: reload them before the next match."""
        self._matchers = None
        self._start_ticker()

    def _start_ticker(self) -> None:
        if self._ticker is None and not self._closed:
            self._ticker = asyncio.create_task(self._tick(), name="ldt-notify-periodic")

    # --- the hook ---------------------------------------------------------------------
    async def write_entities(
        self, changes: Sequence[tuple[str, EntityChange]]
    ) -> list[WriteOutcome | NgsiLdError]:
        """``Store.write_entities``, then notify subscribers of what was committed."""
        seen: list[tuple[Entity | None, Entity | None] | None] = [None] * len(changes)

        def recording(index: int, change: EntityChange) -> EntityChange:
            def run(old: Entity | None) -> Entity | None:
                new = change(old)  # a store may retry: the last run is what committed
                seen[index] = (old, new)
                return new

            return run

        results = await self._store.write_entities(
            [(eid, recording(i, change)) for i, (eid, change) in enumerate(changes)]
        )
        committed: list[Change] = []
        for outcome, pair in zip(results, seen, strict=True):
            if pair is not None and outcome in ("created", "updated", "deleted"):
                committed.append(pair)
        if committed:
            await self.entities_changed(committed)
        return results

    async def ingested(self, batch: IngestBatch) -> None:
        """A gateway batch was committed: notify about the entities it touched.

        The documents before the batch are not known here, so every attribute the batch
        carries counts as updated (an entity a batch creates is notified as updated).
        """
        matchers = await self._current()
        if not matchers:
            return
        attrs: dict[str, set[str]] = {}
        for info in batch.series.values():
            attrs.setdefault(info.entity_id, set()).add(info.attr)
        changes: list[Change] = []
        for entity_id, names in attrs.items():
            doc = await self._store.get_entity(entity_id)
            if doc is None:
                continue
            before = {**doc, **{n: {"type": "Property"} for n in names if n in doc}}
            changes.append((before, doc))
        await self.entities_changed(changes)

    async def entities_changed(self, changes: Sequence[Change]) -> None:
        """Queue one notification per matching subscription for these committed changes."""
        if self._closed or not changes:
            return
        now_ms = time.time_ns() // 1_000_000
        for matcher in await self._current():
            matched = [c for c in changes if matcher.matches(c, now_ms)]
            if not matched:
                continue
            if matcher.throttling_s and not await self._claim(matcher, matcher.throttling_s):
                continue
            await self._enqueue(matcher, matched)

    async def _claim(self, matcher: Matcher, period_s: float) -> bool:
        """Take the subscription's slot for this period (shared by every broker process)."""
        now_ms = time.time_ns() // 1_000_000
        if now_ms < self._slot_due.get(matcher.id, 0):
            return False  # known taken: no store round trip
        try:
            claimed, due = await self._store.claim_notification_slot(
                matcher.id, now_ms=now_ms, period_ms=max(1, round(period_s * 1000))
            )
        except StoreError as exc:
            _log.warning("notification slot not taken", extra={"error": str(exc)})
            return False
        self._slot_due[matcher.id] = due
        return claimed

    # --- subscriptions -------------------------------------------------------------------
    def _fresh(self, generation: int) -> list[Matcher] | None:
        matchers = self._matchers
        if (
            matchers is not None
            and generation == self._generation
            and time.monotonic() - self._loaded_at < self._refresh_s
        ):
            return matchers
        return None

    async def _shared_generation(self) -> int:
        """``Store.subscriptions_generation``, one read shared by the writes asking meanwhile.

        Every committed write checks the generation before matching; under load that was
        one store round trip per write, queued behind the writes themselves. Writes that
        ask while a read is in flight take its answer: it began at most one round trip
        earlier, and another process's subscription change can race a fresh read as well.
        """
        loop = asyncio.get_running_loop()
        pending = self._generation_read
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = self._generation_read = loop.create_task(
                self._store.subscriptions_generation()
            )
        return await asyncio.shield(pending)

    async def _current(self) -> list[Matcher]:
        try:
            fresh = self._fresh(await self._shared_generation())
        except StoreError as exc:
            if self._matchers is None:
                raise
            # the write has committed: notify with what is known rather than fail it
            _log.warning("subscriptions not rechecked", extra={"error": str(exc)})
            return self._matchers
        if fresh is not None:
            return fresh
        async with self._load_lock:
            generation = await self._store.subscriptions_generation()  # read before the list
            fresh = self._fresh(generation)
            if fresh is None:
                records, _ = await self._store.list_subscriptions()
                loaded: list[Matcher] = []
                for record in records:
                    doc = record.doc
                    try:
                        ctx = await self._contexts.resolve(doc.get("@context"))
                        shown = doc.get("jsonldContext")
                        render_ctx = None if shown is None else await self._contexts.resolve(shown)
                        loaded.append(compile_subscription(doc, ctx, render_ctx=render_ctx))
                    except (ContextError, ValueError) as exc:
                        _log.warning(
                            "subscription skipped", extra={"id": doc.get("id"), "error": str(exc)}
                        )
                self._matchers = fresh = loaded
                self._loaded_at = time.monotonic()
                self._generation = generation
                self._slot_due.clear()  # a changed subscription's slot was freed
                if any(m.interval_s is not None for m in loaded):
                    self._start_ticker()
            return fresh

    # --- periodic (timeInterval) subscriptions -------------------------------------------
    async def _tick(self) -> None:
        """Every ``_TICK_S``: send the notifications of ``timeInterval`` subscriptions due."""
        while True:
            await asyncio.sleep(_TICK_S)
            try:
                matchers = await self._current()
                now_ms = time.time_ns() // 1_000_000
                for matcher in matchers:
                    if matcher.interval_s is None or status_of(matcher.doc, now_ms) != "active":
                        continue
                    if await self._claim(matcher, matcher.interval_s):
                        await self._periodic(matcher)
            except StoreError as exc:
                _log.warning("periodic notifications skipped", extra={"error": str(exc)})

    async def _periodic(self, matcher: Matcher) -> None:
        found: dict[str, Entity] = {}
        for query in matcher.queries():
            page, _ = await self._store.search_entities(
                query, limit=_PERIODIC_MAX, offset=0, count=False
            )
            found.update((doc["id"], doc) for doc in page)
        if found:
            await self._enqueue(matcher, [(doc, doc) for doc in found.values()])

    # --- delivery --------------------------------------------------------------------
    async def _joined(self, matcher: Matcher, changes: Sequence[Change]) -> list[Any] | None:
        """The data with linked entities (``notification.join``); None: shown without them."""
        if matcher.join is None:
            return None
        try:
            return await matcher.joined(changes, fetch_from(self._store))
        except (StoreError, NgsiLdError) as exc:
            _log.warning("notification sent without linked entities", extra={"error": str(exc)})
            return None

    async def _enqueue(self, matcher: Matcher, changes: Sequence[Change]) -> None:
        delivery = matcher.delivery
        data = await self._joined(matcher, changes)
        payload = notification(matcher, changes, notified_at=_now_iso(), data=data)
        context = matcher.doc.get("jsonldContext") or matcher.doc.get("@context")
        headers = dict(delivery.headers)
        if self._tenant is not None:
            headers["NGSILD-Tenant"] = self._tenant  # clause 6.3.14: receivers see the tenant
        if delivery.accept == JSON_LD:
            payload["@context"] = context if context else CORE_CONTEXT_URL
            payload["data"] = [{**e, "@context": payload["@context"]} for e in payload["data"]]
            headers["Content-Type"] = JSON_LD
        else:
            headers["Content-Type"] = JSON
            headers["Link"] = f"<{_link_url(context)}>{_CONTEXT_REL}"
        job = _Job(
            subscription_id=matcher.id,
            uri=delivery.uri,
            body=orjson.dumps(payload),
            headers=headers,
            timeout_s=delivery.timeout_s or self._timeout_s,
            options=delivery.options,
        )
        endpoint = self._endpoints.get(delivery.uri)
        if endpoint is None:
            endpoint = self._endpoints[delivery.uri] = _Endpoint(
                self, delivery.uri, self._queue_size
            )
        try:
            endpoint.queue.put_nowait(job)
        except asyncio.QueueFull:
            _log.warning(
                "notification dropped: queue full", extra={"endpoint": redacted(delivery.uri)}
            )
            await self._record(job.subscription_id, ok=None)
            await self._record(job.subscription_id, ok=False)

    async def _drain(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            await self._deliver(job)

    async def _deliver(self, job: _Job) -> None:
        backoff = Backoff(base_s=self._backoff[0], cap_s=self._backoff[1])
        for attempt in range(1, self._attempts + 1):
            await self._record(job.subscription_id, ok=None)
            ok = await self._post(job)
            await self._record(job.subscription_id, ok=ok)
            if ok:
                return
            if attempt < self._attempts:
                await asyncio.sleep(backoff.next_delay())
        _log.warning(
            "notification not delivered",
            extra={"subscription": job.subscription_id, "endpoint": redacted(job.uri)},
        )

    async def _post(self, job: _Job) -> bool:
        if job.uri.startswith(MQTT_SCHEMES):
            return await self._mqtt.publish(
                job.uri, job.options, headers=job.headers, body=job.body, timeout_s=job.timeout_s
            )
        if not job.uri.startswith(("http://", "https://")):
            return False
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        try:
            async with asyncio.timeout(job.timeout_s):
                response = await self._client.post(
                    job.uri, content=job.body, headers=job.headers, timeout=job.timeout_s
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            _log.info(
                "notification failed", extra={"endpoint": redacted(job.uri), "error": str(exc)}
            )
            return False
        return 200 <= response.status_code < 300

    async def _record(self, subscription_id: str, *, ok: bool | None) -> None:
        try:
            await self._store.record_notification(subscription_id, ok=ok, at=_now_iso())
        except StoreError as exc:
            _log.warning("notification counters not saved", extra={"error": str(exc)})
