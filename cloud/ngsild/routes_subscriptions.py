"""The NGSI-LD subscription API (GS CIM 009 v1.9 clauses 5.8.1-5.8.5, 6.10, 6.11).

- ``POST /subscriptions``: 201 + Location; 409 AlreadyExists; 400 BadRequestData;
- ``GET /subscriptions`` (``limit``/``offset``/``count``), ``GET /subscriptions/{id}``;
- ``PATCH /subscriptions/{id}`` (each member of the fragment replaces the stored one
  whole, ``null`` removes it): 204 / 404;
- ``DELETE /subscriptions/{id}``: 204 / 404.

Names are read with the request's @context (Link header for ``application/json``, the body's
``@context`` for ``application/ld+json``) and shown back with the reader's. Every change
tells the app's ``Notifier`` to reload its subscriptions.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.current import current_principal
from ldt.cloud.access.guard import caller
from ldt.cloud.access.policy import allow
from ldt.cloud.access.roles import Permission, owner_text, parse_owner
from ldt.cloud.ngsild import formats, subscriptions
from ldt.cloud.ngsild.contexts_api import drop_context, implicit_context, resolve_context
from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.jsonld import ActiveContext
from ldt.cloud.ngsild.media import (
    JSON,
    JSON_LD,
    MERGE_PATCH,
    negotiate,
    read_body,
    request_media_type,
)
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.params import DEFAULT_LIMIT, flag, non_negative, page_size, refuse_unknown
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.quotas import Quotas, endpoint_of, over
from ldt.cloud.ngsild.tenant_routing import notifier_of, store_of
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.cloud.store.base import Store
from ldt.cloud.store.subscriptions import SubscriptionRecord
from ldt.url_secrets import redact

__all__ = ["read_document", "routes"]

MAX_SUBSCRIPTION_BYTES: Final = 1 << 20
_TITLE: Final = "Invalid request"
_API: Final = "/ngsi-ld/v1"
_LIST_PARAMS: Final = frozenset({"limit", "offset", "count", "local", "via"})


def _bad(detail: str, title: str = _TITLE) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", title, detail)


def _store(request: Request) -> Store:
    return store_of(request)  # the NGSILD-Tenant's store (tenant_routing)


def _notifier(request: Request) -> Notifier:
    return notifier_of(request)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def read_document(request: Request) -> tuple[dict[str, Any], ActiveContext, Any]:
    """The JSON object of the request, its active context and the @context value.

    Subscriptions and context source registrations (``routes_registrations``) are read
    alike: one JSON object, merge-patch allowed on PATCH."""
    media = request_media_type(request)
    if media == MERGE_PATCH and request.method == "PATCH":  # 6.3.4: like JSON (Link header)
        media = JSON
    if media not in (JSON, JSON_LD):
        raise NgsiLdError(
            415, None, "Unsupported Media Type", f"send {JSON} or {JSON_LD}, not {media or 'none'}"
        )
    raw = await read_body(request, limit=MAX_SUBSCRIPTION_BYTES)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NgsiLdError(400, "InvalidRequest", "Invalid JSON", str(exc)) from exc
    if not isinstance(value, dict):
        raise NgsiLdError(400, "InvalidRequest", "Invalid request", "the body must be an object")
    link = formats.link_context(request)
    if media == JSON_LD:
        if link is not None:
            raise _bad("application/ld+json takes its @context from the body, not a Link header")
        if "@context" not in value:
            raise _bad("an application/ld+json body needs @context")
        context = value["@context"]
    else:
        if "@context" in value:
            raise _bad("@context in an application/json body: send application/ld+json")
        context = link
    return value, await resolve_context(request, context), context


async def _check_jsonld_context(request: Request, doc: dict[str, Any]) -> None:
    """A ``jsonldContext`` must be fetchable now: notifications are compacted with it."""
    if "jsonldContext" in doc:
        await resolve_context(request, doc["jsonldContext"])


def _sub_id(request: Request) -> str:
    sub_id: str = request.path_params["sub_id"]
    if not sub_id:
        raise NgsiLdError(
            405,
            None,
            "Method Not Allowed",
            f"{request.method} needs a subscription id",
            headers={"Allow": "GET, POST"},
        )
    if not is_uri(sub_id):
        raise _bad(f"{sub_id!r} is not a URI", "Invalid subscription id")
    return sub_id


def _not_found(sub_id: str) -> NgsiLdError:
    return NgsiLdError(404, "ResourceNotFound", "Not found", f"no subscription {sub_id}")


def _counters(record: SubscriptionRecord) -> dict[str, Any]:
    return {
        "timesSent": record.times_sent,
        "timesFailed": record.times_failed,
        "lastNotification": record.last_notification,
        "lastSuccess": record.last_success,
        "lastFailure": record.last_failure,
    }


@allow(Permission.WRITE)
async def create_subscription(request: Request) -> Response:
    """Create subscription (5.8.1): 201 + Location, 409 if the id exists."""
    value, ctx, context = await read_document(request)
    now = iso_ms(_now_ms())
    doc = subscriptions.validate(value, ctx, context=context, now=now)
    await _check_jsonld_context(request, doc)
    await _check_endpoint(request, doc)
    # a one-URL array is that URL: notifications then link it as given, and nothing is
    # hosted or shown back as jsonldContext (suite cases 028_06, 046_10_01, 046_19)
    single = context[0] if isinstance(context, list) and len(context) == 1 else context
    implicit = None if "jsonldContext" in doc else implicit_context(request, single)
    if implicit is not None:  # notifications are compacted with it (contexts_api)
        doc["jsonldContext"] = implicit
    principal = current_principal.get()
    owner = None if principal is None or principal.kind == "lab" else owner_text(principal)
    quotas: Quotas = request.app.state.quotas
    held, total = await _store(request).subscriptions.list(limit=quotas.subscriptions + 1)
    over(quotas.subscriptions, total, "subscriptions")
    endpoints = {endpoint_of(r.doc) for r in held}
    if endpoint_of(doc) not in endpoints:
        over(quotas.endpoints, len(endpoints), "distinct notification endpoints")
    if not await _store(request).subscriptions.create(doc, owner):
        if implicit is not None:
            drop_context(request, implicit)
        raise NgsiLdError(
            409, "AlreadyExists", "Already exists", f"subscription {doc['id']} already exists"
        )
    _notifier(request).invalidate()
    return Response(status_code=201, headers={"Location": f"{_API}/subscriptions/{doc['id']}"})


def _manages(request: Request, owner: str | None) -> bool:
    """Whether the caller may change, delete and fully see a subscription made by ``owner``:
    its owner, or an unscoped admin of the tenant; one made with authentication off (no
    owner) also any unscoped writer. Without access control, everyone."""
    checked = caller(request.scope)
    if checked is None or checked[0].kind == "lab":
        return True
    principal, tenant = checked
    if principal.may(tenant, Permission.ADMIN, unscoped=True):
        return True
    if owner is None:
        return principal.may(tenant, Permission.WRITE, unscoped=True)
    return parse_owner(owner)[0] == principal.label


MASK: Final = "***"
"""What a client reads instead of a ``receiverInfo`` value or an endpoint's password."""


def _shown(request: Request, owner: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as the caller may see it. Endpoint secrets are write-only, even to the
    owner: ``receiverInfo`` values and the URI's credentials read as ``***`` (a PATCH that
    sends ``***`` back keeps what was stored). Anyone else sees neither the headers nor
    ``notifierInfo``."""
    notification = dict(payload.get("notification") or {})
    endpoint = dict(notification.get("endpoint") or {})
    if "uri" in endpoint:
        endpoint["uri"] = redact(str(endpoint["uri"]), keep_lone_user=False)
    if _manages(request, owner):
        if "receiverInfo" in endpoint:
            endpoint["receiverInfo"] = [
                {"key": kv["key"], "value": MASK} for kv in endpoint["receiverInfo"]
            ]
    else:
        for secret in ("receiverInfo", "notifierInfo"):
            endpoint.pop(secret, None)
    notification["endpoint"] = endpoint
    return {**payload, "notification": notification}


def _keep_masked(fragment: dict[str, Any], stored: dict[str, Any]) -> None:
    """Put the stored secrets back where ``fragment`` (a PATCH) sends the mask: a client
    that read a subscription, changed ``q`` and sent it all back keeps its credentials."""
    notification = fragment.get("notification")
    endpoint = notification.get("endpoint") if isinstance(notification, dict) else None
    old = (stored.get("notification") or {}).get("endpoint") or {}
    if not isinstance(endpoint, dict):
        return
    uri, old_uri = endpoint.get("uri"), str(old.get("uri", ""))
    if isinstance(uri, str) and MASK in uri and uri == redact(old_uri, keep_lone_user=False):
        endpoint["uri"] = old_uri
    info = endpoint.get("receiverInfo")
    if isinstance(info, list):
        kept = {kv["key"]: kv["value"] for kv in old.get("receiverInfo", ())}
        endpoint["receiverInfo"] = [
            {**kv, "value": kept[kv["key"]]}
            if isinstance(kv, dict) and kv.get("value") == MASK and kv.get("key") in kept
            else kv
            for kv in info
        ]


async def _check_endpoint(request: Request, doc: dict[str, Any]) -> None:
    """400 for an endpoint the tenant's policy refuses (``endpoint_policy``)."""
    policy = _notifier(request).endpoints
    if policy is None:
        return
    uri = str(doc.get("notification", {}).get("endpoint", {}).get("uri", ""))
    why = await policy.refusal(uri)
    if why is not None:
        raise _bad(
            f"notification.endpoint.uri refused: {why}; an admin may allow the host for the"
            " tenant (ldt cloud notify allow HOST)"
        )


def _refuse_unless_manages(request: Request, owner: str | None, sub_id: str) -> None:
    if not _manages(request, owner):
        raise NgsiLdError(
            403,
            None,
            "Forbidden",
            f"{sub_id} belongs to another user; its owner or an admin may change it",
        )


@allow(Permission.READ)
async def query_subscriptions(request: Request) -> Response:
    """Query subscriptions (5.8.4): one page by id, ``count=true`` adds the total."""
    refuse_unknown(request, _LIST_PARAMS, detail="not known")
    params = request.query_params
    limit = page_size(params, DEFAULT_LIMIT, title=_TITLE)
    offset = non_negative(params, "offset", 0, title=_TITLE)
    count = flag(params, "count", title=_TITLE)
    if limit == 0 and not count:
        raise _bad("limit=0 is only allowed with count=true")
    media = negotiate(request)  # GeoJSON is for entities only: 406 here (6.3.4)
    url = formats.link_context(request)
    ctx = await resolve_context(request, url)
    await _notifier(request).flush_counters()  # show what this broker has counted so far
    records, total = await _store(request).subscriptions.list(limit=limit, offset=offset)
    now = _now_ms()
    payload = [
        _shown(request, r.owner, subscriptions.present(r.doc, _counters(r), ctx, now_ms=now))
        for r in records
    ]
    headers = {"NGSILD-Results-Count": str(total)} if count else None
    response = formats.entities_response(payload, media, context=url, headers=headers)
    pages = _page_links(limit, offset, total)
    if pages:
        existing = response.headers.get("link")
        response.headers["Link"] = ",".join([*pages, *([existing] if existing else [])])
    return response


def _page_links(limit: int, offset: int, total: int) -> list[str]:
    """The ``prev``/``next`` Link header values of one page (6.3.13)."""
    links: list[str] = []
    page = f'<{_API}/subscriptions?limit={limit}&offset={{}}>;rel="{{}}";type="{JSON_LD}"'
    if limit and offset > 0:
        links.append(page.format(max(0, offset - limit), "prev"))
    if limit and offset + limit < total:
        links.append(page.format(offset + limit, "next"))
    return links


@allow(Permission.READ)
async def retrieve_subscription(request: Request) -> Response:
    """Retrieve subscription (5.8.3): 200, 404."""
    sub_id = _sub_id(request)
    media = negotiate(request)  # GeoJSON is for entities only: 406 here (6.3.4)
    url = formats.link_context(request)
    ctx = await resolve_context(request, url)
    await _notifier(request).flush_counters(sub_id)  # what this broker has counted so far
    record = await _store(request).subscriptions.get(sub_id)
    if record is None:
        raise _not_found(sub_id)
    payload = subscriptions.present(record.doc, _counters(record), ctx, now_ms=_now_ms())
    return formats.entities_response(_shown(request, record.owner, payload), media, context=url)


@allow(Permission.WRITE)
async def update_subscription(request: Request) -> Response:
    """Update subscription (5.8.2): each member replaces the stored one (null removes it)."""
    sub_id = _sub_id(request)
    fragment, ctx, context = await read_document(request)
    fragment.pop("@context", None)
    if not fragment:
        raise _bad("the fragment is empty")
    if fragment.get("id", sub_id) != sub_id:
        raise _bad(f"the fragment's id is not {sub_id}")
    if fragment.get("type", "Subscription") != "Subscription":
        raise _bad("type must be 'Subscription'")
    store = _store(request)
    record = await store.subscriptions.get(sub_id)
    if record is None:
        raise _not_found(sub_id)
    _refuse_unless_manages(request, record.owner, sub_id)
    # the stored names shown in the fragment's @context, so the merge is in one vocabulary
    merged = subscriptions.present(record.doc, {}, ctx, now_ms=_now_ms())
    merged.pop("status", None)
    _keep_masked(fragment, merged)
    for key, value in fragment.items():  # each member replaces the stored one whole
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    doc = subscriptions.validate(merged, ctx, context=context, now=iso_ms(_now_ms()))
    await _check_jsonld_context(request, doc)
    await _check_endpoint(request, doc)
    doc["createdAt"] = record.doc.get("createdAt", doc["createdAt"])
    if not await store.subscriptions.replace(doc):
        raise _not_found(sub_id)
    _notifier(request).invalidate()
    return Response(status_code=204)


@allow(Permission.WRITE)
async def delete_subscription(request: Request) -> Response:
    """Delete subscription (5.8.5): 204, 404."""
    sub_id = _sub_id(request)
    record = await _store(request).subscriptions.get(sub_id)
    if record is None:
        raise _not_found(sub_id)
    _refuse_unless_manages(request, record.owner, sub_id)
    if not await _store(request).subscriptions.delete(sub_id):
        raise _not_found(sub_id)
    _notifier(request).invalidate()
    return Response(status_code=204)


routes = [
    Route("/subscriptions", create_subscription, methods=["POST"]),
    Route("/subscriptions/", create_subscription, methods=["POST"]),
    Route("/subscriptions", query_subscriptions, methods=["GET"]),
    Route("/subscriptions/", query_subscriptions, methods=["GET"]),
    Route("/subscriptions/{sub_id:path}", retrieve_subscription, methods=["GET"]),
    Route("/subscriptions/{sub_id:path}", update_subscription, methods=["PATCH"]),
    Route("/subscriptions/{sub_id:path}", delete_subscription, methods=["DELETE"]),
]
