"""What each route declares about who may call it: the decorators, as plain data.

Endpoints say what they need with one decorator (``guard`` enforces it, deny by default):

- ``@allow(Permission.X)``: a signed-in caller holding X in the request's tenant
  (``NGSILD-Tenant``; ``/ldt/v1`` routes are the default tenant's);
- ``@allow_anywhere(Permission.X)``: X in some tenant, the endpoint checks which;
- ``@allow_global_admin``: an unscoped admin of every tenant (tenants themselves);
- ``@gateway_route``: a gateway, which authenticates itself inside the route (mutual
  TLS, a claim token, or a plain-HTTP gateway token); people's tokens are not accepted;
- ``@public_route``: anyone (the CA certificate, sign-in itself).

Apart from the guard so that any module defining a route may declare its policy (the
fleet service has a route of its own) without importing the API layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ldt.cloud.access.roles import Permission

__all__ = [
    "Policy",
    "allow",
    "allow_anywhere",
    "allow_global_admin",
    "gateway_route",
    "policy_of",
    "public_route",
]


@dataclass(frozen=True, slots=True)
class Policy:
    """What a route needs: ``kind`` is tenant, anywhere, global, gateway or public."""

    kind: str
    permission: Permission | None = None
    entities: bool = True
    """Whether the route applies a scoped grant to the entities it touches. A route that is
    not about entities (the catalogue, commands, the fleet, registrations, @contexts) has
    nothing to filter: a scoped grant counts for nothing there, an unscoped one is needed."""

    def describe(self) -> str:
        """For the route table and ``docs/access.md``."""
        if self.permission is None:
            return self.kind
        return self.permission.value + ("" if self.entities else " (unscoped)")


_F = TypeVar("_F", bound=Callable[..., Any])
_ATTR: Final = "__ldt_access__"


def _declare(policy: Policy) -> Callable[[_F], _F]:
    def mark(endpoint: _F) -> _F:
        setattr(endpoint, _ATTR, policy)
        return endpoint

    return mark


def allow(permission: Permission, *, entities: bool = True) -> Callable[[_F], _F]:
    """The route needs ``permission`` in the request's tenant; ``entities=False``: an
    unscoped grant of it (``Policy.entities``)."""
    return _declare(Policy("tenant", permission, entities))


def allow_anywhere(permission: Permission) -> Callable[[_F], _F]:
    """The route needs ``permission`` in some tenant; the endpoint checks which (the admin
    API: an admin of tenant T manages grants in T only)."""
    return _declare(Policy("anywhere", permission))


allow_global_admin: Final = _declare(Policy("global", Permission.ADMIN))
gateway_route: Final = _declare(Policy("gateway"))
public_route: Final = _declare(Policy("public"))


def policy_of(endpoint: Any) -> Policy | None:
    """The policy an endpoint declared (None: it declared none)."""
    policy = getattr(endpoint, _ATTR, None)
    return policy if isinstance(policy, Policy) else None
