"""HTTP delivery of NGSI-LD notifications (GS CIM 009 v1.9 clause 5.8.6, 5.11).

The hook: every entity write of the API goes through ``Notifier.write_entities`` (it wraps
``Store.write_entities``, records each committed change's document before and after, and
matches them once the transaction has committed); gateway ingest calls
``Notifier.ingested`` after its commit. Matching is in memory against compiled
subscriptions (reloaded after a subscription changes here, and every ``refresh_s`` for
changes made by other broker processes: ``SubscriptionRepository.generation`` is checked
before every match, so a change made through another process sharing the database is in
force at once).

Delivery: each endpoint URI has its own bounded queue (``notify_queue.EndpointQueue``) and
``concurrency`` worker tasks, so a slow or dead receiver only ever delays its own
notifications while a fast one gets a few requests in flight at once over the keep-alive
connections of one shared HTTP client (one at a time was bound by the round trip). The
queue keeps each entity's changes in order per subscription. Each notification is POSTed up
to ``attempts`` times with capped, jittered backoff: at-least-once while the broker runs. A
full queue is coalesced, not dropped: the pending notifications of one subscription merge
into one carrying the latest state of each entity (why coalescing and not backpressure:
``notify_queue``); what still does not fit is dropped, counted as failed and logged, and so
are the notifications still queued when the notifier closes. Every attempt is counted
(``timesSent``, ``timesFailed``, ``lastNotification``/``lastSuccess``/``lastFailure``) in
memory and flushed to the store in batches (``notify_counts.Counters``: one write per
delivery queued behind the entity writes was the bottleneck). ``mqtt://``/``mqtts://``
endpoints go through the same queues and counters and are published by
``notify_mqtt.MqttPublisher`` (one connection per broker).

Periodic (``timeInterval``) subscriptions: a ticker task, started when a subscription is
created or changed here or a periodic one is loaded, queries their entities every
``timeInterval`` seconds. Periodic and throttled notifications take the subscription's slot
in the store first (``SubscriptionRepository.claim_notification_slot``), so several broker
processes on one database send one per period between them, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Final, Self

import httpx
import orjson

from ldt.backoff import Backoff
from ldt.cloud.access.roles import Scope
from ldt.cloud.errors import StoreError
from ldt.cloud.ngsild.contexts import ContextStore
from ldt.cloud.ngsild.endpoint_policy import EndpointPolicy
from ldt.cloud.ngsild.entity_query import entity_types
from ldt.cloud.ngsild.jsonld import CORE_CONTEXT_URL, ContextError
from ldt.cloud.ngsild.linked import fetch_from
from ldt.cloud.ngsild.media import JSON, JSON_LD
from ldt.cloud.ngsild.mqtt_endpoint import MQTT_SCHEMES
from ldt.cloud.ngsild.notify_counts import Counters
from ldt.cloud.ngsild.notify_mqtt import MqttPublisher
from ldt.cloud.ngsild.notify_queue import EndpointQueue, Pending, keys_of
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.subscriptions import (
    Change,
    Matcher,
    compile_subscription,
    notification,
    status_of,
)
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.base import Entity, Store
from ldt.cloud.store.entities import EntityChange, WriteOutcome
from ldt.contract import IngestBatch
from ldt.url_secrets import redact

__all__ = ["Notifier"]

_log = logging.getLogger("ldt.cloud.notifier")
_SETTLE_S: Final = 0.5  # longest a subscription read waits for outcomes of attempts in flight
_TICK_S: Final = 0.5
_PERIODIC_MAX: Final = 1000  # entities per periodic notification
_CONTEXT_REL: Final = '; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
_CLOSE_GRACE_S: Final = 1.0
"""How long ``aclose`` lets the endpoints finish what is queued and in flight."""
_KEEPALIVE_CONNECTIONS: Final = 100
"""Idle connections the shared HTTP client keeps (the busy ones are not limited: a
connection limit would let endpoints that hang hold the connections the others need)."""


def redacted(uri: str) -> str:
    """``uri`` fit for logs and task names: its password, or a lone user name (an MQTT
    token), becomes ``***``."""
    return redact(uri, keep_lone_user=False)


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
    """One receiver: its queue and the workers sending from it."""

    def __init__(self, notifier: Notifier, uri: str, queue_size: int, workers: int) -> None:
        self.queue = EndpointQueue(queue_size)
        self.ready = asyncio.Event()
        """Set when something was queued or finished: idle workers look again."""
        self.closing = False
        """Set by ``Notifier.aclose``: workers stop when nothing is left to take."""
        self.tasks = [
            asyncio.create_task(notifier._work(self), name=f"ldt-notify {redacted(uri)}")
            for _ in range(workers)
        ]

    async def next(self) -> Pending | None:
        """The next notification this endpoint may send (waits until there is one); None
        once the notifier is closing and none may be sent now."""
        while (item := self.queue.take()) is None:
            if self.closing:
                return None
            self.ready.clear()
            await self.ready.wait()
        return item

    def done(self, item: Pending) -> None:
        self.queue.done(item)
        self.ready.set()


class Notifier:
    """Matches committed entity changes to subscriptions and delivers notifications.

    Keyword-only, no I/O in the constructor; tasks start on first use. ``aclose()`` (or
    leaving ``async with``) gives the endpoints a moment to finish what is in flight and
    queued (without retries), then stops them (what is left is counted as failed and
    logged) and writes the counters. ``queue_size``: notifications queued per
    endpoint before they are coalesced; ``concurrency``: requests in flight per endpoint;
    ``counters_s``: the longest counters wait before they are written.
    """

    def __init__(
        self,
        *,
        store: Store,
        contexts: ContextStore,
        timeout_s: float = 10.0,
        queue_size: int = 10_000,
        concurrency: int = 4,
        attempts: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 5.0,
        refresh_s: float = 5.0,
        counters_s: float = 0.15,
        tenant: str | None = None,
    ) -> None:
        if attempts < 1 or queue_size < 1 or concurrency < 1:
            raise ValueError("attempts, queue_size and concurrency must be at least 1")
        self._store = store
        self._tenant = tenant
        """The NGSILD-Tenant its subscriptions belong to (None: the default tenant)."""
        self._contexts = contexts
        self._timeout_s = timeout_s
        self._queue_size = queue_size
        self._concurrency = concurrency
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
        self._retiring: list[_Endpoint] = []
        """Endpoints no subscription names any more, finishing what they had queued."""
        self._mqtt_retire: asyncio.Task[int] | None = None
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self._ticker: asyncio.Task[None] | None = None
        self._mqtt = MqttPublisher(backoff_base_s=backoff_base_s, backoff_cap_s=backoff_cap_s)
        self._counters = Counters(store, interval_s=counters_s)
        self.endpoints: EndpointPolicy | None = None
        """Where notifications may go (``endpoint_policy``); None: anywhere (lab mode)."""
        self.owner_scope: Callable[[str, str], Awaitable[Scope]] | None = None
        """What a subscription's owner may read in a tenant (``AccessService.owner_scope``);
        None: authentication is off, every subscription sees everything."""
        self._owners: dict[str, str] = {}
        self.observers: list[Callable[[Sequence[Change]], Awaitable[None]]] = []
        """Called with every committed API write (the commands of ``ldt.cloud.control``)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def flush_counters(self, subscription_id: str | None = None) -> None:
        """Write the counters now: a client reading a subscription sees every attempt made
        so far (they are otherwise written at most ``counters_s`` later), with the outcome
        of attempts still in flight if it comes within ``_SETTLE_S``."""
        await self._counters.settle(subscription_id, _SETTLE_S)
        await self._counters.flush()

    async def aclose(self) -> None:
        """Stop every endpoint task, close the clients and write the counters."""
        self._closed = True
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        endpoints = self._all_endpoints()
        self._endpoints, self._retiring = {}, []
        for endpoint in endpoints:
            endpoint.closing = True
            endpoint.ready.set()
        tasks = [task for endpoint in endpoints for task in endpoint.tasks]
        if tasks:  # what is in flight (and queued, while time allows) is finished, not retried
            await asyncio.wait(tasks, timeout=_CLOSE_GRACE_S)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        unsent = [item for endpoint in endpoints for item in endpoint.queue.pending]
        for item in unsent:
            self._dropped(item)
        if unsent:
            _log.warning(
                "notifications not sent: the notifier stopped", extra={"count": len(unsent)}
            )
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        retire, self._mqtt_retire = self._mqtt_retire, None
        if retire is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await retire
        await self._mqtt.aclose()
        await self._counters.aclose()

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

        results = await self._store.entities.write(
            refusable=NgsiLdError,
            changes=[(eid, recording(i, change)) for i, (eid, change) in enumerate(changes)],
        )
        committed: list[Change] = []
        for outcome, pair in zip(results, seen, strict=True):
            if pair is not None and outcome in ("created", "updated", "deleted"):
                committed.append(pair)
        if committed:
            for observer in self.observers:
                try:
                    await observer(committed)
                except Exception:  # noqa: BLE001 - the write is committed: answer it anyway
                    _log.exception("entity write observer failed")
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
            doc = await self._store.entities.get(entity_id)
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
            if matched:
                matched = await self._readable(matcher, matched)
            if not matched:
                continue
            if matcher.throttling_s and not await self._claim(matcher, matcher.throttling_s):
                continue
            await self._enqueue(matcher, matched)

    async def _allowed(self, matcher: Matcher) -> Scope | None:
        """What the subscription's owner may read (None: everything)."""
        owner = self._owners.get(matcher.id)
        if owner is None or self.owner_scope is None:
            return None
        allowed = await self.owner_scope(owner, self._tenant or "")
        return None if allowed.unrestricted else allowed

    async def _readable(self, matcher: Matcher, changes: list[Change]) -> list[Change]:
        """The changes of entities the owner may read (a scoped grant's subscription
        does not see the others)."""
        allowed = await self._allowed(matcher)
        if allowed is None:
            return changes
        kept = []
        for old, new in changes:
            doc = new if new is not None else old
            if doc is not None and allowed.allows(str(doc.get("id")), entity_types(doc)):
                kept.append((old, new))
        return kept

    async def _claim(self, matcher: Matcher, period_s: float) -> bool:
        """Take the subscription's slot for this period (shared by every broker process)."""
        now_ms = time.time_ns() // 1_000_000
        if now_ms < self._slot_due.get(matcher.id, 0):
            return False  # known taken: no store round trip
        try:
            claimed, due = await self._store.subscriptions.claim_notification_slot(
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
        """``SubscriptionRepository.generation``, one read shared by the writes asking meanwhile.

        Every committed write checks the generation before matching; under load that was
        one store round trip per write, queued behind the writes themselves. Writes that
        ask while a read is in flight take its answer: it began at most one round trip
        earlier, and another process's subscription change can race a fresh read as well.
        """
        loop = asyncio.get_running_loop()
        pending = self._generation_read
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = self._generation_read = loop.create_task(
                self._store.subscriptions.generation()
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
            generation = await self._store.subscriptions.generation()  # read before the list
            fresh = self._fresh(generation)
            if fresh is None:
                records, _ = await self._store.subscriptions.list()
                loaded: list[Matcher] = []
                self._owners = {
                    str(r.doc.get("id")): r.owner for r in records if r.owner is not None
                }
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
                self._retire_unused(loaded)
            return fresh

    def _retire_unused(self, matchers: Sequence[Matcher]) -> None:
        """End the tasks (and MQTT links) of endpoints no subscription names any more.

        Their workers finish what is queued, then stop. Without this, every endpoint a
        tenant ever named kept ``concurrency`` tasks until the broker stopped."""
        in_use = {m.delivery.uri for m in matchers}
        for uri in [u for u in self._endpoints if u not in in_use]:
            endpoint = self._endpoints.pop(uri)
            endpoint.closing = True
            endpoint.ready.set()
            self._retiring.append(endpoint)
        self._retiring = [e for e in self._retiring if not all(t.done() for t in e.tasks)]
        in_use_mqtt = [(m.delivery.uri, m.delivery.options) for m in matchers]
        if self._mqtt.links and (self._mqtt_retire is None or self._mqtt_retire.done()):
            # a dead broker's disconnect can take seconds: not under the load lock
            self._mqtt_retire = asyncio.create_task(
                self._mqtt.retire(in_use_mqtt), name="ldt-notify-mqtt-retire"
            )

    @property
    def idle(self) -> bool:
        """Nothing queued or in flight, and no ``timeInterval`` subscription to tick for:
        closing it now loses nothing (``TenantRegistry`` closes idle tenants)."""
        if any(e.queue.pending or e.queue.in_flight for e in self._all_endpoints()):
            return False
        if self._matchers is None:  # changed, and the ticker has not reloaded them yet
            return self._ticker is None
        return not any(m.interval_s is not None for m in self._matchers)

    @property
    def endpoint_tasks(self) -> int:
        """Delivery tasks alive (for tests and the health view)."""
        return sum(not t.done() for e in self._all_endpoints() for t in e.tasks)

    def _all_endpoints(self) -> list[_Endpoint]:
        """The endpoints in use and those retiring."""
        return [*self._endpoints.values(), *self._retiring]

    @property
    def mqtt_links(self) -> int:
        """MQTT brokers the notifier holds a link to."""
        return self._mqtt.links

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
        allowed = await self._allowed(matcher)
        for query in matcher.queries():
            if allowed is not None:
                query = replace(query, allowed=allowed)  # noqa: PLW2901
            page, _ = await self._store.entities.search(
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
            allowed = await self._allowed(matcher)
            return await matcher.joined(changes, fetch_from(self._store, allowed))
        except (StoreError, NgsiLdError) as exc:
            _log.warning("notification sent without linked entities", extra={"error": str(exc)})
            return None

    async def _enqueue(self, matcher: Matcher, changes: Sequence[Change]) -> None:
        delivery = matcher.delivery
        joined = await self._joined(matcher, changes)
        data = [matcher.render(c) for c in changes] if joined is None else joined
        context = matcher.doc.get("jsonldContext") or matcher.doc.get("@context")
        headers = dict(delivery.headers)
        if self._tenant is not None:
            headers["NGSILD-Tenant"] = self._tenant  # clause 6.3.14: receivers see the tenant
        shown_context: Any = None
        if delivery.accept == JSON_LD:
            shown_context = context if context else CORE_CONTEXT_URL
            headers["Content-Type"] = JSON_LD
        else:
            headers["Content-Type"] = JSON
            headers["Link"] = f"<{_link_url(context)}>{_CONTEXT_REL}"
        item = Pending(
            matcher=matcher,
            uri=delivery.uri,
            headers=headers,
            timeout_s=delivery.timeout_s or self._timeout_s,
            context=shown_context,
            data=data,
            keys=keys_of(matcher.id, (_subject_id(c) for c in changes)),
            options=delivery.options,
        )
        if self._closed:  # closed while rendering
            self._dropped(item)
            return
        endpoint = self._endpoints.get(delivery.uri)
        if endpoint is None:
            endpoint = self._endpoints[delivery.uri] = _Endpoint(
                self, delivery.uri, self._queue_size, self._concurrency
            )
        queue = endpoint.queue
        coalescings, coalesced = queue.coalescings, queue.coalesced
        rejected = queue.put(item)
        endpoint.ready.set()
        if queue.coalescings > coalescings:  # at most once per queue_size notifications
            _log.warning(
                "notification queue full: notifications coalesced",
                extra={
                    "endpoint": redacted(delivery.uri),
                    "merged": queue.coalesced - coalesced,
                    "queued": len(queue),
                },
            )
        if rejected is not None:
            _log.warning(
                "notification dropped: queue full", extra={"endpoint": redacted(delivery.uri)}
            )
            self._dropped(rejected)

    def _dropped(self, item: Pending) -> None:
        """Count a notification that will never be sent as one failed attempt."""
        self._counters.count(item.subscription_id, ok=None)
        self._counters.count(item.subscription_id, ok=False)

    async def _work(self, endpoint: _Endpoint) -> None:
        while (item := await endpoint.next()) is not None:
            try:
                await self._deliver(item)
            finally:
                endpoint.done(item)

    async def _deliver(self, item: Pending) -> None:
        backoff: Backoff | None = None  # made on the first failure: seeding one costs ~40 µs
        for attempt in range(1, self._attempts + 1):
            self._counters.count(item.subscription_id, ok=None)
            try:
                ok = await self._post(item)
            except asyncio.CancelledError:
                self._counters.count(item.subscription_id, ok=False)  # not known to have arrived
                raise
            self._counters.count(item.subscription_id, ok=ok)
            if ok:
                return
            if attempt < self._attempts and not self._closed:
                backoff = backoff or Backoff(base_s=self._backoff[0], cap_s=self._backoff[1])
                await asyncio.sleep(backoff.next_delay())
            else:
                break
        _log.warning(
            "notification not delivered",
            extra={"subscription": item.subscription_id, "endpoint": redacted(item.uri)},
        )

    @staticmethod
    def _body(item: Pending) -> bytes:
        """The notification's JSON, made at its first attempt (``notifiedAt`` is then)."""
        if item.body is None:
            payload = notification(item.matcher, (), notified_at=_now_iso(), data=item.data)
            if item.context is not None:
                payload["@context"] = item.context
                payload["data"] = [{**e, "@context": item.context} for e in item.data]
            item.body = orjson.dumps(payload)
        return item.body

    async def _post(self, item: Pending) -> bool:
        if self.endpoints is not None:
            why = await self.endpoints.refusal(item.uri)
            if why is not None:  # checked before every delivery: DNS may have changed
                _log.warning(
                    "notification refused by the endpoint policy",
                    extra={"endpoint": redacted(item.uri), "reason": why},
                )
                return False
        body = self._body(item)
        if item.uri.startswith(MQTT_SCHEMES):
            return await self._mqtt.publish(
                item.uri, item.options, headers=item.headers, body=body, timeout_s=item.timeout_s
            )
        if not item.uri.startswith(("http://", "https://")):
            return False
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=None, max_keepalive_connections=_KEEPALIVE_CONNECTIONS
                ),
            )
        try:
            async with asyncio.timeout(item.timeout_s):
                response = await self._client.post(
                    item.uri, content=body, headers=item.headers, timeout=item.timeout_s
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            _log.info(
                "notification failed", extra={"endpoint": redacted(item.uri), "error": str(exc)}
            )
            return False
        return 200 <= response.status_code < 300


def _subject_id(change: Change) -> str:
    old, new = change
    subject = new if new is not None else old
    return str(subject["id"]) if subject is not None else ""
