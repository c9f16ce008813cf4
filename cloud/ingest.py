"""``POST /ldt/v1/ingest``: where gateways sync their buffered readings.

The answer is what the agent's transport acts on: 200 + ``BatchAck`` only
after the batch is committed; a 4xx other than 408/429 is a permanent
rejection (the agent logs the ProblemDetails ``detail``); a 5xx is retried.
Checks run cheapest first, and each rejection writes nothing:
401 (no or unknown bearer token; on the TLS listener: no, unknown, revoked or expired
client certificate, bearer tokens are not accepted there) -> 415 (not JSON) -> 413 (body or readings
over the limits) -> 400 (invalid JSON or schema, naming the field) ->
403 (batch for another gateway, or an entity another gateway owns).
"""

from __future__ import annotations

import logging

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.policy import gateway_route
from ldt.cloud.errors import OwnershipError
from ldt.cloud.fleet import clock_skew_ms, flag_skewed, record_status
from ldt.cloud.gateways import token_sha256
from ldt.cloud.ngsild.media import JSON, read_body, request_media_type
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.pki.routes import gateway_of
from ldt.cloud.service.ingest import ingest as ingest_batch
from ldt.cloud.store.base import Store
from ldt.contract import INGEST_PATH, BatchAck, IngestBatch
from ldt.contract.batch import MAX_BATCH_READINGS
from ldt.contract.compression import CompressionError, gunzip_limited

__all__ = ["MAX_INGEST_BYTES", "ingest", "routes"]

MAX_INGEST_BYTES = 16 << 20
"""Refused with 413 before parsing; a full 20,000-reading batch is ~1.5 MB."""

_log = logging.getLogger("ldt.cloud.ingest")


async def _authenticate(request: Request, store: Store) -> str:
    if request.url.scheme == "https":  # the TLS listener: mutual TLS only, no bearer tokens
        who = await gateway_of(request)
        if who is None:
            _log.warning("ingest refused: no client certificate")
            raise NgsiLdError(
                401,
                None,
                "Unauthorized",
                "a gateway syncs with its client certificate: provision it with"
                " 'ldt gw provision HOST --token T'",
            )
        return who[0]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NgsiLdError(
            401,
            None,
            "Unauthorized",
            "send the gateway token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="ldt"'},
        )
    gateway_id = await store.gateways.for_token(token_sha256(token))
    if gateway_id is None:
        raise NgsiLdError(
            401,
            None,
            "Unauthorized",
            "unknown or revoked gateway token: issue one with 'ldt cloud gateway add'",
            headers={"WWW-Authenticate": 'Bearer realm="ldt", error="invalid_token"'},
        )
    return gateway_id


def _schema_error(exc: ValidationError) -> NgsiLdError:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    if first["type"] == "json_invalid":
        return NgsiLdError(
            400, "BadRequestData", "Invalid JSON", f"the body is not JSON: {first['msg']}"
        )
    if first["type"] == "too_long" and first["loc"][:1] == ("readings",):
        return NgsiLdError(
            413,
            None,
            "Payload Too Large",
            f"a batch holds at most {MAX_BATCH_READINGS} readings: send smaller batches",
        )
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return NgsiLdError(400, "BadRequestData", "Invalid batch", f"{where}: {first['msg']}{more}")


@gateway_route
async def ingest(request: Request) -> Response:
    """Validate, authorize and store one batch; answer with its ``BatchAck``."""
    store: Store = request.app.state.store
    gateway_id = await _authenticate(request, store)
    content_type = request_media_type(request)
    if content_type != JSON:
        raise NgsiLdError(
            415,
            None,
            "Unsupported Media Type",
            f"send the batch as {JSON}, not {content_type or 'no Content-Type'}",
        )
    body = await read_body(request, limit=MAX_INGEST_BYTES)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        try:
            body = gunzip_limited(body, limit=MAX_INGEST_BYTES)
        except CompressionError as exc:
            status = 413 if "larger than" in str(exc) else 400
            title = "Payload Too Large" if status == 413 else "Invalid gzip body"
            raise NgsiLdError(status, None, title, str(exc)) from None
    elif encoding != "identity":
        raise NgsiLdError(
            415, None, "Unsupported Media Type", f"Content-Encoding {encoding}: send gzip or none"
        )
    try:
        batch = IngestBatch.model_validate_json(body)
    except ValidationError as exc:
        raise _schema_error(exc) from exc
    if batch.gateway_id != gateway_id:
        _log.warning(
            "ingest refused: batch names another gateway",
            extra={"gateway": gateway_id, "claimed": batch.gateway_id},
        )
        raise NgsiLdError(
            403,
            None,
            "Forbidden",
            f"this gateway is {gateway_id} (from its credentials), the batch says"
            f" {batch.gateway_id}",
        )
    batch = flag_skewed(batch, await clock_skew_ms(store, gateway_id, batch.status))
    try:
        result = await ingest_batch(store.db, gateway_id, batch)
    except OwnershipError as exc:
        _log.warning(
            "ingest refused: entity not this gateway's",
            extra={"gateway": gateway_id, "entity": exc.entity_id, "owner": exc.owner},
        )
        raise NgsiLdError(403, None, "Forbidden", f"{exc}; nothing was stored") from exc
    if batch.status is not None:
        await record_status(store, gateway_id, batch.status)
    if result.accepted:
        notifier: Notifier = request.app.state.notifier
        await notifier.ingested(batch)
    ack = BatchAck(
        gateway_id=gateway_id,
        accepted=result.accepted,
        duplicates=result.duplicates,
        max_seq=result.max_seq,
    )
    if result.duplicates:
        _log.info(
            "replayed readings ignored",
            extra={"gateway": gateway_id, "duplicates": result.duplicates},
        )
    return Response(orjson.dumps(ack.model_dump()), media_type=JSON)


routes = [Route(INGEST_PATH, ingest, methods=["POST"])]
