"""The caller of the request being handled, for code below the routes (audit, commands).

A context variable, set by the route guard around the endpoint: services name the user
or service account in audit lines without every call passing it down. Outside a request
(the CLI, a gateway's sync) it is None, and audit lines name the CLI or the gateway.
"""

from __future__ import annotations

import contextvars

from ldt.cloud.access.roles import Principal

__all__ = ["actor", "current_principal"]

current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "ldt_principal", default=None
)


def actor() -> str | None:
    """``user:alice`` (or ``client:...``, ``oidc:...``) when a person's request is running."""
    principal = current_principal.get()
    return None if principal is None else principal.label
