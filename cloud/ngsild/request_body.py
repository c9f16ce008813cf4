"""A JSON request body and the @context it is read with (GS CIM 009 v1.9 clauses 6.3.4, 6.3.5).

Entity writes, temporal writes and ``POST /entityOperations/query`` read their bodies the
same way, so it is written once here: ``application/json`` (or merge-patch) bodies take
their @context from the Link header and must not carry ``@context``;
``application/ld+json`` bodies must carry it, and a Link header with them is refused.
``read_json`` checks the media type and parses, ``context_of`` resolves the @context of
the body (or of one batch item).

The Link header is parsed here header by header (several ``Link`` headers or
comma-separated links, only the JSON-LD context relation counted), unlike
``formats.link_context`` used by reads: writes have always answered this way, with this
error, and the ETSI suite checks both.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.requests import Request

from ldt.cloud.ngsild.contexts_api import resolve_context
from ldt.cloud.ngsild.jsonld import ActiveContext
from ldt.cloud.ngsild.media import JSON, JSON_LD, MERGE_PATCH, read_body, request_media_type
from ldt.cloud.ngsild.problems import NgsiLdError

__all__ = ["Body", "context_of", "json_object", "link_context", "read_json"]

_CONTEXT_REL: Final = "http://www.w3.org/ns/json-ld#context"


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid request", detail)


def link_context(request: Request) -> str | None:
    """The URL of the JSON-LD Link header, if any (400 if there are several)."""
    found: list[str] = []
    for header in request.headers.getlist("link"):
        for link in header.split(","):
            target, _, params = link.partition(";")
            target = target.strip()
            if not (target.startswith("<") and target.endswith(">")):
                continue
            rels = [
                p.partition("=")[2].strip().strip('"')
                for p in params.split(";")
                if p.strip().lower().startswith("rel")
            ]
            if _CONTEXT_REL in rels:
                found.append(target[1:-1])
    if len(found) > 1:
        raise _bad("give at most one JSON-LD @context Link header")
    return found[0] if found else None


class Body:
    """A parsed request body, its media type and the Link header's @context."""

    __slots__ = ("link", "media", "value")

    def __init__(self, value: Any, media: str, link: str | None) -> None:
        self.value = value
        self.media = media
        self.link = link


async def read_json(request: Request, *, limit: int, merge_patch: bool = False) -> Body:
    """The body as JSON: 415 for another media type, 400 for bad JSON or a misplaced Link."""
    media = request_media_type(request)
    allowed = (JSON, JSON_LD, MERGE_PATCH) if merge_patch else (JSON, JSON_LD)
    if media not in allowed:
        raise NgsiLdError(
            415,
            None,
            "Unsupported Media Type",
            f"send {' or '.join(allowed)}, not {media or 'no Content-Type'}",
        )
    raw = await read_body(request, limit=limit)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NgsiLdError(400, "InvalidRequest", "Invalid JSON", str(exc)) from exc
    link = link_context(request)
    if media == JSON_LD and link is not None:
        raise _bad("application/ld+json takes its @context from the body, not a Link header")
    return Body(value, media, link)


def json_object(body: Body) -> dict[str, Any]:
    """A single-entity body: anything but a JSON object is 400 InvalidRequest."""
    if not isinstance(body.value, dict):
        raise NgsiLdError(400, "InvalidRequest", "Invalid request", "the body must be an object")
    return body.value


async def context_of(request: Request, body: Body, item: Any) -> ActiveContext:
    """The active context of one body (or one batch item), checking where @context is."""
    has_context = isinstance(item, dict) and "@context" in item
    if body.media == JSON_LD:
        if not has_context:
            raise _bad("an application/ld+json body needs @context")
        return await resolve_context(request, item["@context"])
    if has_context:
        raise _bad(f"@context in a {body.media} body: send application/ld+json or a Link header")
    return await resolve_context(request, body.link)
