"""NGSI-LD errors as ProblemDetails (IETF RFC 7807), the only error body the cloud sends.

ETSI GS CIM 009 names the error types below (``https://uri.etsi.org/ngsi-ld/errors/<Type>``)
and returns ProblemDetails as ``application/json``. The ingest endpoint uses
the same body, so a gateway's log shows the same sentence an API client sees.
Statuses the NGSI-LD error types do not cover (401, 403, 405, 406, 413, 415)
use RFC 7807's ``about:blank`` type (``kind=None``): the status says it all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import orjson
from starlette.responses import Response

from ldt.cloud.errors import CloudError

__all__ = ["ERROR_BASE", "ErrorType", "NgsiLdError", "problem_response"]

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"

ErrorType = Literal[
    "InvalidRequest",
    "BadRequestData",
    "AlreadyExists",
    "OperationNotSupported",
    "ResourceNotFound",
    "InternalError",
    "TooComplexQuery",
    "TooManyResults",
]


class NgsiLdError(CloudError):
    """A request failed in a way the client must be told about, with its HTTP status."""

    def __init__(
        self,
        status: int,
        kind: ErrorType | None,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.kind: ErrorType | None = kind
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{title}: {detail}")

    def body(self) -> dict[str, object]:
        """The ProblemDetails object."""
        return {
            "type": "about:blank" if self.kind is None else ERROR_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }

    def response(self) -> Response:
        """The HTTP response carrying this error."""
        return problem_response(self)


def problem_response(err: NgsiLdError) -> Response:
    """ProblemDetails as ``application/json`` with the error's extra headers."""
    return Response(
        orjson.dumps(err.body()),
        status_code=err.status,
        media_type="application/json",
        headers=err.headers,
    )
