"""Media types of the NGSI-LD API: the core @context, Link headers, Accept negotiation.

The broker does not expand or compact terms (no JSON-LD processing): entities
are stored and served with the short names of the core context, which is what
``application/json`` clients get with a Link header to it, and what
``application/ld+json`` clients get with ``"@context"`` in the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ldt.cloud.ngsild.problems import NgsiLdError

__all__ = [
    "CORE_CONTEXT",
    "JSON",
    "JSON_LD",
    "LINK_HEADER",
    "MERGE_PATCH",
    "entity_response",
    "negotiate",
    "read_body",
    "request_media_type",
]

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
JSON = "application/json"
JSON_LD = "application/ld+json"
MERGE_PATCH = "application/merge-patch+json"
"""PATCH bodies may say this media type (6.3.4); they are read like ``application/json``."""
LINK_HEADER = (
    f'<{CORE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
)


def _accept_q(accept: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        out[media] = max(q, out.get(media, 0.0))
    return out


def negotiate(request: Request) -> str:
    """``application/ld+json`` if the client prefers it, else ``application/json``.

    Raises ``NgsiLdError`` (406) if the client accepts neither.
    """
    accept = request.headers.get("accept")
    if not accept:
        return JSON
    qs = _accept_q(accept)
    wildcard = max(qs.get("*/*", 0.0), qs.get("application/*", 0.0))
    q_json = qs.get(JSON, wildcard)
    q_ld = qs.get(JSON_LD, wildcard)
    if q_json <= 0 and q_ld <= 0:
        raise NgsiLdError(
            406,
            None,
            "Not Acceptable",
            f"cannot answer with any of: {accept}; use {JSON} or {JSON_LD}",
        )
    return JSON_LD if JSON_LD in qs and q_ld >= q_json else JSON


def request_media_type(request: Request) -> str:
    """The request body's media type, lower case, without parameters ('' if none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def entity_response(
    payload: Any,
    media: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Entity or list of entities: Link header for JSON, ``@context`` in the body for JSON-LD."""
    extra = dict(headers or {})
    if media == JSON_LD:
        if isinstance(payload, list):
            payload = [{**e, "@context": CORE_CONTEXT} for e in payload]
        else:
            payload = {**payload, "@context": CORE_CONTEXT}
    else:
        extra["Link"] = LINK_HEADER
    return Response(orjson.dumps(payload), status_code=status, media_type=media, headers=extra)


async def read_body(request: Request, *, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes without reading it all.

    ``Content-Length`` is checked before anything is read; a chunked body is
    counted as it arrives.
    """
    too_large = NgsiLdError(
        413, None, "Payload Too Large", f"the request body is larger than {limit} bytes"
    )
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise NgsiLdError(
                400, "InvalidRequest", "Invalid request", "Content-Length is not a number"
            ) from None
        if declared > limit:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        # nobody will read the answer; say so without a server-side traceback
        raise NgsiLdError(
            400, "InvalidRequest", "Incomplete request", "the client disconnected mid-body"
        ) from None
    return b"".join(chunks)
