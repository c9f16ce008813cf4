"""Why a caller's credential was refused: the error every access module raises.

They carry a short reason for the log; the HTTP layer answers 401 or 403 with a fixed
text, so a caller never learns which check failed (expired, tampered, revoked, ...).
"""

from __future__ import annotations

from ldt.cloud.errors import CloudError

__all__ = ["TokenRejectedError"]


class TokenRejectedError(CloudError):
    """A credential (token, password, client secret) was not accepted: 401.

    ``reason`` is for the server's log only (e.g. "expired", "bad signature").
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
