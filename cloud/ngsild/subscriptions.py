"""NGSI-LD subscriptions as pure functions (GS CIM 009 v1.9 clauses 5.2.12, 5.2.14, 5.8, 5.11).

No I/O, so the rules can be tested alone and shared by the routes and the notifier:

- ``validate`` checks a client's Subscription (create, or the merged result of a PATCH) and
  returns the document to store: type and attribute names spelled as stored
  (``entity_ops.stored_name``), the creating request's ``@context`` kept under
  ``@context`` so names can be shown back and ``q`` re-read later;
- ``compile_subscription`` turns a stored document and its resolved context into a
  ``Matcher``: which entity changes (create/update/delete of one entity) it is notified of,
  honouring ``entities`` (id/idPattern/type), ``watchedAttributes``, ``q``, ``geoQ``,
  ``notificationTrigger``, ``isActive``, ``expiresAt`` and ``timeInterval`` (periodic
  subscriptions are not change-driven);
- ``present`` shows a stored subscription to a client (names compacted, counters added);
- ``notification`` builds the Notification body (5.3.1) of matched entities in the
  subscription's format and attribute selection.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import unquote

from ldt.cloud.ngsild import formats, linked
from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.entity_ops import present as present_entity
from ldt.cloud.ngsild.entity_ops import stored_name
from ldt.cloud.ngsild.entity_query import EntityQuery, map_q_names, map_type_names, parse_types
from ldt.cloud.ngsild.geo import GeoQuery, GeoQueryError, parse_geoquery
from ldt.cloud.ngsild.jsonld import ActiveContext, core_context
from ldt.cloud.ngsild.media import JSON, JSON_LD
from ldt.cloud.ngsild.mqtt_endpoint import MQTT_SCHEMES, parse_endpoint
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import QExpr, QSyntaxError, QueryError, parse_projection, parse_q
from ldt.cloud.ngsild.query import project as project_entity
from ldt.cloud.ngsild.safe_regex import SafeRegex
from ldt.cloud.ngsild.timestamps import expiry_problem, iso_ms, parse_iso_ms

__all__ = [
    "DEFAULT_TRIGGERS",
    "TRIGGERS",
    "Change",
    "Delivery",
    "Matcher",
    "compile_subscription",
    "notification",
    "present",
    "status_of",
    "validate",
]

TRIGGERS: Final = frozenset(
    {
        "entityCreated", "entityUpdated", "entityDeleted",
        "attributeCreated", "attributeUpdated", "attributeDeleted",
    }
)  # fmt: skip
DEFAULT_TRIGGERS: Final = ("attributeCreated", "attributeUpdated")
_FORMATS: Final[dict[str, formats.Form]] = {
    "normalized": "normalized",
    "concise": "concise",
    "keyValues": "simplified",
    "simplified": "simplified",
}
_ACCEPTS: Final = frozenset({JSON, JSON_LD, "application/geo+json"})
_SYSTEM: Final = frozenset({"createdAt", "modifiedAt", "deletedAt"})
_NOT_ATTRS: Final = frozenset({"id", "type", "scope", "@context"}) | _SYSTEM
_READ_ONLY: Final = frozenset({"status", "createdAt", "modifiedAt"})
_NOTIFICATION_READ_ONLY: Final = frozenset(
    {"status", "timesSent", "timesFailed", "lastNotification", "lastFailure", "lastSuccess"}
)
_TOP: Final = frozenset(
    {
        "id", "type", "subscriptionName", "description", "entities", "notificationTrigger",
        "watchedAttributes", "timeInterval", "q", "geoQ", "csf", "isActive", "notification",
        "expiresAt", "throttling", "temporalQ", "scopeQ", "lang", "jsonldContext", "@context",
        "datasetId",
    }
)  # fmt: skip
_NOTIFICATION: Final = frozenset(
    {"attributes", "sysAttrs", "format", "endpoint", "showChanges", "pick", "omit", "join",
     "joinLevel"}
)  # fmt: skip
MAX_ENDPOINT_TIMEOUT_MS: Final = 60_000
"""The longest ``notification.endpoint.timeout`` a client may set (milliseconds)."""
_ENDPOINT: Final = frozenset({"uri", "accept", "timeout", "cooldown", "receiverInfo",
                              "notifierInfo"})  # fmt: skip

NULL: Final = "urn:ngsi-ld:null"
_NULL_MEMBERS: Final[dict[str, tuple[str, Any]]] = {
    "Property": ("value", NULL),
    "GeoProperty": ("value", NULL),
    "Relationship": ("object", NULL),
    "LanguageProperty": ("languageMap", {"@none": NULL}),
    "VocabProperty": ("vocab", NULL),
    "JsonProperty": ("json", NULL),
    "ListProperty": ("valueList", [NULL]),
    "ListRelationship": ("objectList", [{"object": NULL}]),
}
_PREVIOUS: Final = {
    "value": "previousValue",
    "object": "previousObject",
    "languageMap": "previousLanguageMap",
    "json": "previousJson",
    "vocab": "previousVocab",
    "valueList": "previousValueList",
    "objectList": "previousObjectList",
}

Change = tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]
"""One committed entity change: (document before, document after); None is absent."""


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid subscription", detail)


def _names(value: Any, what: str, ctx: ActiveContext) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _bad(f"{what} must be a non-empty array of attribute names")
    out: list[str] = []
    for name in value:
        if not isinstance(name, str) or not name or name in _NOT_ATTRS:
            raise _bad(f"{what} holds {name!r}, which is not an attribute name")
        stored = stored_name(name, ctx)
        if stored is not None and stored not in out:
            out.append(stored)
    return out


def _positive(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _bad(f"{what} must be a positive number of seconds, got {value!r}")


def _entities(value: Any, ctx: ActiveContext) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _bad("entities must be a non-empty array of entity selectors")
    out: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict) or not item.keys() <= {"id", "idPattern", "type"}:
            raise _bad(f"an entity selector has id, idPattern and type only, got {item!r}")
        etype = item.get("type")
        if not isinstance(etype, str) or not etype:
            raise _bad("every entity selector needs a type")
        try:
            types = parse_types(etype)
        except QSyntaxError as exc:
            raise _bad(f"entity selector type {etype!r}: {exc}") from None
        # a single type is stored like entity types; an expression is kept as written
        # and mapped with the subscription's @context when compiled
        stored = stored_name(etype, ctx) if isinstance(types, str) else etype
        selector: dict[str, Any] = {"type": stored or etype}
        if "id" in item:
            if not is_uri(item["id"]):
                raise _bad(f"entity selector id {item['id']!r} is not a URI")
            selector["id"] = item["id"]
        if "idPattern" in item:
            try:
                SafeRegex(item["idPattern"])
            except (ValueError, TypeError) as exc:
                raise _bad(f"idPattern {item['idPattern']!r} is not usable: {exc}") from None
            selector["idPattern"] = item["idPattern"]
        out.append(selector)
    return out


def _geo(value: Any) -> GeoQuery:
    if not isinstance(value, dict):
        raise _bad("geoQ must be an object with geometry, coordinates and georel")
    coords = value.get("coordinates")
    try:
        geoquery = parse_geoquery(
            georel=value.get("georel"),
            geometry=value.get("geometry"),
            coordinates=coords if coords is not None else None,
            geoproperty=value.get("geoproperty"),
        )
    except GeoQueryError as exc:
        raise _bad(f"geoQ: {exc}") from None
    if geoquery is None:
        raise _bad("geoQ needs geometry, coordinates and georel")
    return geoquery


def _notification(value: Any, ctx: ActiveContext) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad("notification must be an object with an endpoint")
    params = {k: v for k, v in value.items() if k not in _NOTIFICATION_READ_ONLY}
    unknown = sorted(set(params) - _NOTIFICATION)
    if unknown:
        raise _bad(f"notification has unknown members: {', '.join(unknown)}")
    endpoint = params.get("endpoint")
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("uri"), str):
        raise _bad("notification.endpoint.uri is required")
    unknown = sorted(set(endpoint) - _ENDPOINT)
    if unknown:
        raise _bad(f"notification.endpoint has unknown members: {', '.join(unknown)}")
    uri = endpoint["uri"]
    if not is_uri(uri) or not uri.startswith(("http://", "https://", "mqtt://", "mqtts://")):
        raise _bad(f"notification.endpoint.uri {uri!r} is not an http(s) or mqtt(s) URI")
    accept = endpoint.get("accept", JSON)
    if accept not in _ACCEPTS:
        raise _bad(f"notification.endpoint.accept must be one of {sorted(_ACCEPTS)}")
    if "timeout" in endpoint:
        _positive(endpoint["timeout"], "notification.endpoint.timeout")
        if endpoint["timeout"] > MAX_ENDPOINT_TIMEOUT_MS:
            raise _bad(
                f"notification.endpoint.timeout is at most {MAX_ENDPOINT_TIMEOUT_MS} ms: a"
                " receiver that slow holds a connection and a task per notification"
            )
    for key in ("receiverInfo", "notifierInfo"):
        if key in endpoint:
            info = endpoint[key]
            if not isinstance(info, list) or not all(
                isinstance(kv, dict)
                and isinstance(kv.get("key"), str)
                and isinstance(kv.get("value"), str)
                for kv in info
            ):
                raise _bad(f"notification.endpoint.{key} must be an array of {{key, value}}")
    if uri.startswith(MQTT_SCHEMES):  # topic, MQTT-Version, MQTT-QoS: refused now, not later
        try:
            parse_endpoint(uri, endpoint.get("notifierInfo", ()))
        except ValueError as exc:
            raise _bad(f"notification.endpoint: {exc}") from None
    fmt = params.get("format", "normalized")
    if fmt not in _FORMATS:
        raise _bad(f"notification.format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    for flag in ("sysAttrs", "showChanges"):
        if flag in params and not isinstance(params[flag], bool):
            raise _bad(f"notification.{flag} must be true or false")
    if "attributes" in params:
        if "pick" in params or "omit" in params:
            raise _bad("notification.attributes cannot be combined with pick or omit")
        params["attributes"] = _names(params["attributes"], "notification.attributes", ctx)
    picked: dict[str, set[str]] = {}
    for key in ("pick", "omit"):
        if key in params:
            raw = params[key]
            text = ",".join(raw) if isinstance(raw, list) else raw
            try:
                terms = parse_projection(text, parameter=key)
            except QSyntaxError as exc:
                raise _bad(f"notification.{key}: {exc}") from None
            picked[key] = {str(getattr(t, "name", t)) for t in terms}
    if "pick" in picked and "omit" in picked and picked["pick"] & picked["omit"]:
        raise _bad("notification.pick and omit name the same member")
    linked.parse_join(params.get("join"), params.get("joinLevel"))  # 400 for bad values
    return params


def validate(body: Any, ctx: ActiveContext, *, context: Any, now: str) -> dict[str, Any]:
    """The document to store for a client's Subscription; raises ``NgsiLdError`` 400.

    ``context``: the @context the names were given in (kept to show them back and to
    re-read ``q``); ``now``: the ``createdAt``/``modifiedAt`` stamp.
    """
    if not isinstance(body, dict):
        raise _bad("a subscription must be a JSON object")
    doc = {k: v for k, v in body.items() if k not in _READ_ONLY}
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise _bad(f"unknown members: {', '.join(unknown)}")
    doc.pop("@context", None)
    sub_id = doc.get("id")
    if sub_id is None:
        doc["id"] = sub_id = f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
    if not is_uri(sub_id):
        raise _bad(f"id {sub_id!r} is not a URI")
    if doc.get("type") != "Subscription":
        raise _bad("type must be 'Subscription'")
    if "entities" not in doc and "watchedAttributes" not in doc:
        raise _bad("give entities or watchedAttributes (or both)")
    if "entities" in doc:
        doc["entities"] = _entities(doc["entities"], ctx)
    if "watchedAttributes" in doc:
        doc["watchedAttributes"] = _names(doc["watchedAttributes"], "watchedAttributes", ctx)
    if "timeInterval" in doc:
        _positive(doc["timeInterval"], "timeInterval")
        if "watchedAttributes" in doc:
            raise _bad("timeInterval and watchedAttributes cannot be used together")
        if "throttling" in doc:
            raise _bad("timeInterval and throttling cannot be used together")
    if "throttling" in doc:
        _positive(doc["throttling"], "throttling")
    triggers = doc.get("notificationTrigger")
    if triggers is not None and (
        not isinstance(triggers, list) or not triggers or not set(triggers) <= TRIGGERS
    ):
        raise _bad(f"notificationTrigger must be a non-empty array of {sorted(TRIGGERS)}")
    if "q" in doc:
        try:
            parse_q(_q_text(doc["q"]))
        except QSyntaxError as exc:
            raise _bad(f"q: {exc}") from None
    if "geoQ" in doc:
        _geo(doc["geoQ"])
    if "isActive" in doc and not isinstance(doc["isActive"], bool):
        raise _bad("isActive must be true or false")
    if "expiresAt" in doc and (why := expiry_problem(doc["expiresAt"], now)) is not None:
        raise _bad(why)
    if "datasetId" in doc:
        ids = doc["datasetId"] if isinstance(doc["datasetId"], list) else [doc["datasetId"]]
        if not ids or not all(i == "@none" or is_uri(i) for i in ids):
            raise _bad("datasetId must be URIs (or @none)")
        doc["datasetId"] = ids
    if "jsonldContext" in doc and not is_uri(doc["jsonldContext"]):
        raise _bad("jsonldContext must be the URI of a JSON-LD @context")
    for key in ("subscriptionName", "description", "lang"):
        if key in doc and not isinstance(doc[key], str):
            raise _bad(f"{key} must be a string")
    if "notification" not in doc:
        raise _bad("notification is required")
    doc["notification"] = _notification(doc["notification"], ctx)
    doc["@context"] = context
    doc.setdefault("createdAt", now)
    doc["modifiedAt"] = now
    return doc


def _q_text(q: Any) -> Any:
    """A subscription's ``q`` as the query language reads it: percent-decoded.

    Clients write ``q`` as they would in a URL, so ETSI's suite sends
    ``name=="Eiffel%20Tower"`` (046_05_01); the stored text is kept as given.
    """
    return unquote(q) if isinstance(q, str) else q


def status_of(doc: Mapping[str, Any], now_ms: int) -> str:
    """``active``, ``paused`` (isActive false) or ``expired`` (expiresAt passed)."""
    expires = parse_iso_ms(doc.get("expiresAt"))
    if expires is not None and expires <= now_ms:
        return "expired"
    return "active" if doc.get("isActive", True) else "paused"


def _client_name(stored: str, ctx: ActiveContext) -> str:
    iri = core_context().expand(stored)
    return stored if iri is None else ctx.compact(iri)


def present(
    doc: Mapping[str, Any], counters: Mapping[str, Any], ctx: ActiveContext, *, now_ms: int
) -> dict[str, Any]:
    """A stored subscription as a client with ``ctx`` sees it, with status and counters."""
    out = {k: v for k, v in doc.items() if k not in ("@context", "createdAt", "modifiedAt")}
    # the default is shown: the suite's expected subscriptions all carry it (028_06, 031_01)
    out.setdefault("notificationTrigger", list(DEFAULT_TRIGGERS))
    if "entities" in out:
        out["entities"] = [{**s, "type": _client_name(s["type"], ctx)} for s in out["entities"]]
    if "watchedAttributes" in out:
        out["watchedAttributes"] = [_client_name(n, ctx) for n in out["watchedAttributes"]]
    params = dict(out["notification"])
    if "attributes" in params:
        params["attributes"] = [_client_name(n, ctx) for n in params["attributes"]]
    params.update({k: v for k, v in counters.items() if v})  # none before a notification
    if counters.get("lastNotification"):
        params["status"] = (
            "failed"
            if counters.get("lastFailure")
            and ((counters.get("lastSuccess") or "") < counters["lastFailure"])
            else "ok"
        )
    out["notification"] = params
    out["status"] = status_of(doc, now_ms)
    return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where and how a notification is sent (``notification.endpoint``)."""

    uri: str
    accept: str
    headers: tuple[tuple[str, str], ...]
    timeout_s: float | None
    options: tuple[tuple[str, str], ...] = ()
    """``notifierInfo`` pairs (``MQTT-Version``, ``MQTT-QoS``)."""


class Matcher:
    """One compiled subscription: which changes it is notified of, and their payload."""

    def __init__(
        self,
        doc: Mapping[str, Any],
        ctx: ActiveContext,
        *,
        render_ctx: ActiveContext | None = None,
    ) -> None:
        """``doc`` as stored (``validate``); ``ctx``: its resolved ``@context``.

        ``render_ctx``: the resolved ``jsonldContext`` notifications are compacted with
        (default ``ctx``).
        """
        self.doc = doc
        self.id: str = doc["id"]
        self.ctx = render_ctx or ctx

        def name(term: str) -> str:
            return stored_name(term, ctx) or term  # the creating request's @context

        self._selectors: list[EntityQuery] = []
        for sel in doc.get("entities", ()):
            types = parse_types(sel["type"])
            if not isinstance(types, str):
                types = map_type_names(types, name)
            pattern = SafeRegex(sel["idPattern"]) if "idPattern" in sel else None
            ids = (sel["id"],) if "id" in sel else None
            self._selectors.append(EntityQuery(types=types, ids=ids, id_pattern=pattern))
        q: QExpr | None = map_q_names(parse_q(_q_text(doc["q"])), name) if "q" in doc else None
        geo: GeoQuery | None = None
        geo_names: tuple[str, ...] = ("location",)
        if "geoQ" in doc:
            geo = _geo(doc["geoQ"])
            geo_names = (name(geo.geoproperty),)
        self._filter = EntityQuery(q=q, geo=geo, geo_names=geo_names)
        self._watched = frozenset(doc.get("watchedAttributes", ()))
        self._triggers = frozenset(doc.get("notificationTrigger", DEFAULT_TRIGGERS))
        self.throttling_s: float = float(doc.get("throttling", 0))
        interval = doc.get("timeInterval")
        self.interval_s: float | None = None if interval is None else float(interval)
        params = doc["notification"]
        endpoint = params["endpoint"]
        self.delivery = Delivery(
            uri=endpoint["uri"],
            accept=endpoint.get("accept", JSON),
            headers=tuple((kv["key"], kv["value"]) for kv in endpoint.get("receiverInfo", ())),
            timeout_s=endpoint["timeout"] / 1000 if "timeout" in endpoint else None,
            options=tuple((kv["key"], kv["value"]) for kv in endpoint.get("notifierInfo", ())),
        )
        self._rep = formats.Representation(
            form=_FORMATS[params.get("format", "normalized")],
            sys_attrs=bool(params.get("sysAttrs", False)),
        )
        self._attributes = params.get("attributes")
        self._pick = _projection(params.get("pick"), "pick")
        self._omit = _projection(params.get("omit"), "omit")
        self._show_changes = bool(params.get("showChanges", False))
        datasets = doc.get("datasetId")
        self._datasets: frozenset[str] | None = None if datasets is None else frozenset(datasets)
        try:  # validated when stored; a document from an older broker may still be wrong
            self.join = linked.parse_join(params.get("join"), params.get("joinLevel"))
        except NgsiLdError:
            self.join = None

    def _triggered(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
        if old is None and new is None:
            return False
        if old is None:
            assert new is not None
            fired = {"entityCreated"} if "entityCreated" in self._triggers else set()
            changed = {k for k in new if k not in _NOT_ATTRS}
            if "attributeCreated" in self._triggers and changed:
                fired.add("attributeCreated")
        elif new is None:
            fired = {"entityDeleted"} if "entityDeleted" in self._triggers else set()
            changed = {k for k in old if k not in _NOT_ATTRS}
            # an entity's deletion deletes its attributes too (046_22_12)
            if "attributeDeleted" in self._triggers and (
                changed & self._watched if self._watched else changed
            ):
                fired.add("attributeDeleted")
        else:
            created, deleted, updated = _attribute_changes(old, new)
            changed = created | deleted | updated
            fired = set()
            for trigger, names in (
                ("attributeCreated", created),
                ("attributeDeleted", deleted),
                ("attributeUpdated", updated),
            ):
                if trigger in self._triggers and (
                    names & self._watched if self._watched else names
                ):
                    fired.add(trigger)
            if "entityUpdated" in self._triggers and changed:
                fired.add("entityUpdated")
            return bool(fired)
        if not fired:
            return False
        return not self._watched or bool(changed & self._watched) or "entityDeleted" in fired

    def queries(self) -> list[EntityQuery]:
        """What a periodic (``timeInterval``) notification reports: one query per selector."""
        base = self._filter
        return [
            replace(s, q=base.q, geo=base.geo, geo_names=base.geo_names) for s in self._selectors
        ] or [base]

    def matches(self, change: Change, now_ms: int) -> bool:
        """Whether this subscription is notified of ``change`` (committed) at ``now_ms``."""
        if status_of(self.doc, now_ms) != "active" or "timeInterval" in self.doc:
            return False
        old, new = change
        if not self._triggered(old, new):
            return False
        subject = new if new is not None else old
        assert subject is not None
        if self._selectors and not any(s.matches(subject) for s in self._selectors):
            return False
        return bool(self._filter.matches(subject))

    def render(self, change: Change) -> dict[str, Any]:
        """The entity of ``change`` as the notification's ``data`` shows it.

        A deleted entity is its id, type and ``deletedAt``; a deleted attribute is shown
        with the NGSI-LD null (``urn:ngsi-ld:null``) as its value (v1.9 5.8.6).
        """
        old, new = change
        now = iso_ms(time.time_ns() // 1_000_000)
        if new is None and "entityDeleted" in self._triggers:
            assert old is not None
            return self._render_deleted(old, now)
        return self.finish(self.presented(change, now), deleted_at=now if new is None else None)

    def presented(self, change: Change, now: str) -> dict[str, Any]:
        """The entity of ``change`` (not an ``entityDeleted`` one) compacted and projected,
        before ``finish`` renders it: linked entity retrieval (``linked``) starts from this."""
        old, new = change
        if new is None:  # attributeDeleted: the entity's (watched) attributes, null now
            assert old is not None
            doc = {k: v for k, v in old.items() if k in _NOT_ATTRS}
            for key, before in old.items():
                if key not in _NOT_ATTRS and (not self._watched or key in self._watched):
                    doc[key] = _nulled_attribute(_attr_instances(before), now)
        else:
            doc = dict(new)
            if old is not None and "attributeDeleted" in self._triggers:
                doc.update(_deleted_instances(old, new, now))
        if self._attributes is not None:
            keep = set(self._attributes)
            doc = {k: v for k, v in doc.items() if k in _NOT_ATTRS or k in keep}
        if self._datasets is not None:
            doc = _only_datasets(doc, self._datasets)
        if self._show_changes and old is not None:
            for key, value in doc.items():
                before = old.get(key)
                if key in _NOT_ATTRS or not isinstance(value, dict) or before == value:
                    continue
                if isinstance(before, dict):
                    doc[key] = _previous(value, before)
        shown = present_entity(doc, self.ctx, sys_attrs=self._rep.sys_attrs)
        if self._pick is not None or self._omit is not None:
            with contextlib.suppress(QueryError):  # a projection of absent members
                shown = project_entity(shown, pick=self._pick, omit=self._omit)
        return shown

    def finish(self, shown: dict[str, Any], *, deleted_at: str | None = None) -> dict[str, Any]:
        """A presented entity in the notification's format (``notification.format``)."""
        rendered: dict[str, Any] = formats.render(shown, self._rep)
        if self._rep.sys_attrs and self._rep.form == "simplified":
            rendered.update({k: shown[k] for k in ("createdAt", "modifiedAt") if k in shown})
        if deleted_at is not None:
            rendered["deletedAt"] = deleted_at
        return rendered

    async def joined(self, changes: Sequence[Change], fetch: linked.Fetch) -> list[dict[str, Any]]:
        """The ``data`` of a notification with ``notification.join`` (4.5.23, 5.8.6).

        ``notification.attributes``/``pick``/``omit`` shape the notified entities; their
        linked entities are shown whole unless ``pick``/``omit`` nest (``rel{...}``), as ETSI's
        046_26 and 046_30 expect. Changes that deleted the entity are notified as without a
        join (there is nothing left to follow).
        """
        assert self.join is not None
        now = iso_ms(time.time_ns() // 1_000_000)
        deleted = [c for c in changes if c[1] is None]
        kept = [c for c in changes if c[1] is not None]

        def show(doc: Mapping[str, Any], projection: linked.Projection) -> dict[str, Any] | None:
            shown = present_entity(doc, self.ctx, sys_attrs=self._rep.sys_attrs)
            if projection.pick is None and projection.omit is None:
                return shown
            with contextlib.suppress(QueryError):
                shown = project_entity(shown, pick=projection.pick, omit=projection.omit)
            return shown if any(k != "@context" for k in shown) else None

        pairs = await linked.expand(
            [self.presented(c, now) for c in kept],
            self.join,
            projection=linked.Projection(self._pick, self._omit),
            form=self._rep.form,
            fetch=fetch,
            show=show,
            render=self.finish,
        )
        return [self.render(c) for c in deleted] + [rendered for _, rendered in pairs]

    def _render_deleted(self, old: Mapping[str, Any], now: str) -> dict[str, Any]:
        """A deleted entity (``entityDeleted``): its id, type and ``deletedAt``.

        With ``showChanges`` every attribute is added, null now, with its previous value; a
        LanguageProperty's null is then the plain ``urn:ngsi-ld:null`` (suite case 046_37_01),
        not the ``{"@none": ...}`` map an attribute deletion shows (046_22_11).
        """
        base = {"id": old["id"], "type": old["type"]}
        if self._rep.sys_attrs:
            base.update({k: old[k] for k in ("createdAt", "modifiedAt") if k in old})
        if self._show_changes:
            for key, before in old.items():
                if key not in _NOT_ATTRS and isinstance(before, dict):
                    base[key] = _previous(_nulled(before, now, plain=True), before)
        shown: dict[str, Any] = present_entity(base, self.ctx, sys_attrs=self._rep.sys_attrs)
        return {"id": shown["id"], "type": shown["type"], "deletedAt": now, **shown}


def _nulled(before: Mapping[str, Any], now: str, *, plain: bool = False) -> dict[str, Any]:
    """A deleted attribute instance as a notification shows it: the NGSI-LD null of its
    kind (``plain``: ``urn:ngsi-ld:null`` whatever the kind), its ``datasetId`` and system
    attributes, and ``deletedAt``."""
    kind = before.get("type", "Property")
    member, null = _NULL_MEMBERS.get(kind, ("value", NULL))
    out: dict[str, Any] = {"type": kind, member: NULL if plain else null}
    out.update({k: before[k] for k in ("datasetId", "createdAt", "modifiedAt") if k in before})
    out["deletedAt"] = now
    return out


def _attr_instances(value: Any) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, Mapping)]


def _by_dataset(value: Any) -> dict[Any, Mapping[str, Any]]:
    return {i.get("datasetId"): i for i in _attr_instances(value)}


def _attribute_changes(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[set[str], set[str], set[str]]:
    """The attributes with an instance (a datasetId) created, deleted and updated.

    Instances count, not just names: deleting one datasetId of a multi-attribute is an
    ``attributeDeleted`` (suite cases 046_22_06/07).
    """
    created: set[str] = set()
    deleted: set[str] = set()
    updated: set[str] = set()
    for key in {*old, *new} - _NOT_ATTRS:
        before, after = _by_dataset(old.get(key)), _by_dataset(new.get(key))
        if after.keys() - before.keys():
            created.add(key)
        if before.keys() - after.keys():
            deleted.add(key)
        if any(before[d] != after[d] for d in before.keys() & after.keys()):
            updated.add(key)
    return created, deleted, updated


def _nulled_attribute(gone: list[Mapping[str, Any]], now: str) -> dict[str, Any]:
    """An attribute deleted whole: one null instance (the suite reads ``name.value``, 046_22_08);
    one deleted instance keeps its datasetId, several are shown as the attribute's null."""
    if len(gone) == 1:
        return _nulled(gone[0], now)
    return _nulled({"type": gone[0].get("type", "Property")} if gone else {}, now)


def _deleted_instances(old: Mapping[str, Any], new: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The attributes of ``new`` that lost instances, with those instances shown null."""
    out: dict[str, Any] = {}
    for key, value in old.items():
        if key in _NOT_ATTRS:
            continue
        left = _attr_instances(new.get(key))
        kept = {i.get("datasetId") for i in left}
        gone = [i for i in _attr_instances(value) if i.get("datasetId") not in kept]
        if not gone:
            continue
        if not left:
            out[key] = _nulled_attribute(gone, now)
        else:
            out[key] = [*left, *(_nulled(i, now) for i in gone)]
    return out


def _previous(value: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` with ``previousValue`` (``previousObject``...) from ``before`` (showChanges)."""
    for current, previous in _PREVIOUS.items():
        if current in before:
            return {**value, previous: before[current]}
    return dict(value)


def _only_datasets(doc: Mapping[str, Any], datasets: frozenset[str]) -> dict[str, Any]:
    """The attribute instances whose ``datasetId`` (``@none``: the default one) is listed."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _NOT_ATTRS or not isinstance(value, dict | list):
            out[key] = value
            continue
        instances = value if isinstance(value, list) else [value]
        kept = [
            i for i in instances if isinstance(i, dict) and i.get("datasetId", "@none") in datasets
        ]
        if kept:
            out[key] = kept[0] if len(kept) == 1 else kept
    return out


def _projection(raw: Any, key: str) -> Any:
    if raw is None:
        return None
    return parse_projection(",".join(raw) if isinstance(raw, list) else raw, parameter=key)


def compile_subscription(
    doc: Mapping[str, Any], ctx: ActiveContext, *, render_ctx: ActiveContext | None = None
) -> Matcher:
    """The ``Matcher`` of a stored subscription (validated, so this does not fail)."""
    return Matcher(doc, ctx, render_ctx=render_ctx)


def notification(
    matcher: Matcher,
    changes: Sequence[Change],
    *,
    notified_at: str,
    data: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Notification (5.3.1) of ``changes`` for one subscription (``data``: already shown,
    e.g. with linked entities by ``Matcher.joined``)."""
    return {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "Notification",
        "subscriptionId": matcher.id,
        "notifiedAt": notified_at,
        "data": [matcher.render(c) for c in changes] if data is None else data,
    }
