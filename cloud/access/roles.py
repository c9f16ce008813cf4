"""Roles, permissions, scoped grants and principals: who may do what, as plain data.

A principal (a user, a service account, an OIDC provider's user) holds grants. A grant
gives one role in one tenant (``""`` is the default tenant, ``"*"`` every tenant), and may
be limited to entity types and/or an entity id prefix. A route asks for one permission in
the request's tenant (``guard``); entity-level checks and query filters ask the
``Scope`` the principal has for that permission there.

Why permissions between roles and routes: the roles are the product's words (viewer,
operator, technician, admin) and may grow; a route names what it does, and the table
below is the only place saying which role may do it (``docs/access.md`` is its matrix).

Pure model: no I/O, imported by the store, the services and the API alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import orjson

__all__ = [
    "ALL_TENANTS",
    "DEFAULT_TENANT",
    "FULL_SCOPE",
    "ROLE_PERMISSIONS",
    "Grant",
    "Permission",
    "Principal",
    "Role",
    "Scope",
    "owner_text",
    "parse_owner",
    "parse_role_claim",
    "tenant_label",
]

DEFAULT_TENANT: Final = ""
"""The tenant of requests without ``NGSILD-Tenant`` (and of ``/ldt/v1``)."""
ALL_TENANTS: Final = "*"
"""A grant in every tenant; ``admin`` there is the global admin (creates tenants)."""


class Role(StrEnum):
    """What a person or service is to the twin, per tenant."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    TECHNICIAN = "technician"
    ADMIN = "admin"


class Permission(StrEnum):
    """What a route does, in the words of the access matrix (``docs/access.md``)."""

    READ = "read"
    """Entities, types, attributes, temporal data, subscriptions' and registrations' status,
    hosted @contexts."""
    WRITE = "write"
    """Entity and temporal writes (a write to a command point sends a command), subscriptions,
    registrations, hosted @contexts."""
    CONTROL = "control"
    """Commands' status, alerts, assigning and rolling back models and rule sets."""
    FLEET = "fleet"
    """The fleet view and a gateway's health."""
    CLAIM = "claim"
    """Claim tokens for provisioning gateways at given sites."""
    ADMIN = "admin"
    """Users, service accounts and grants, catalogue uploads, gateways, revocation, audit."""


ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.WRITE, Permission.CONTROL}),
    Role.TECHNICIAN: frozenset({Permission.READ, Permission.FLEET, Permission.CLAIM}),
    Role.ADMIN: frozenset(Permission),
}


def tenant_label(tenant: str) -> str:
    """How a tenant is shown to people: the default tenant has no name of its own."""
    return "(default)" if tenant == DEFAULT_TENANT else tenant


@dataclass(frozen=True, slots=True)
class Grant:
    """One role in one tenant, optionally limited to entity types and an id prefix.

    ``types`` hold expanded type IRIs (``service`` expands short names with the core
    context when the grant is made); empty means every type. ``id_prefix`` empty means
    every id.
    """

    tenant: str
    role: Role
    types: frozenset[str] = frozenset()
    id_prefix: str = ""

    @property
    def scoped(self) -> bool:
        """Whether the grant is limited to some entities."""
        return bool(self.types or self.id_prefix)

    def applies_to(self, tenant: str) -> bool:
        """Whether the grant counts in ``tenant``."""
        return self.tenant in (tenant, ALL_TENANTS)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which entities a permission reaches: all of them, or a union of limited parts.

    Each part is ``(types, id_prefix)``: an entity is in it when one of its types is in
    ``types`` (or ``types`` is empty) and its id starts with ``id_prefix``.
    """

    unrestricted: bool
    parts: tuple[tuple[frozenset[str], str], ...] = ()

    def allows(self, entity_id: str, types: Iterable[str]) -> bool:
        """Whether the entity ``entity_id`` of ``types`` (expanded IRIs) is in scope."""
        if self.unrestricted:
            return True
        wanted = None
        for part_types, prefix in self.parts:
            if not entity_id.startswith(prefix):
                continue
            if not part_types:
                return True
            if wanted is None:
                wanted = set(types)
            if part_types & wanted:
                return True
        return False


FULL_SCOPE: Final = Scope(unrestricted=True)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller and its grants (from the store, or from a provider's claims).

    ``kind``: ``user``, ``client`` (a service account), ``oidc`` (an external provider's
    user) or ``lab`` (``--insecure-no-auth``: everything allowed, for a lab or the
    conformance run). ``name`` is what audit lines show.
    """

    name: str
    kind: str
    grants: tuple[Grant, ...] = field(default=())

    @property
    def label(self) -> str:
        """``user:alice``, ``client:grafana``, ``oidc:bob``: how audit lines name it."""
        return f"{self.kind}:{self.name}"

    def scope(self, tenant: str, permission: Permission) -> Scope | None:
        """What ``permission`` reaches in ``tenant``; None if it reaches nothing.

        ``ADMIN`` counts only from unscoped grants: administering users, uploads, purges
        and the audit has no entity to limit it to.
        """
        parts: list[tuple[frozenset[str], str]] = []
        for grant in self.grants:
            if not grant.applies_to(tenant) or permission not in ROLE_PERMISSIONS[grant.role]:
                continue
            if not grant.scoped:
                return FULL_SCOPE
            if permission is not Permission.ADMIN:
                parts.append((grant.types, grant.id_prefix))
        return Scope(unrestricted=False, parts=tuple(parts)) if parts else None

    def may(self, tenant: str, permission: Permission, *, unscoped: bool = False) -> bool:
        """Whether ``permission`` reaches anything in ``tenant`` (``unscoped``: everything)."""
        found = self.scope(tenant, permission)
        return found is not None and (found.unrestricted or not unscoped)

    def may_anywhere(self, permission: Permission) -> bool:
        """Whether an unscoped grant of ``permission`` exists in some tenant (the routes
        asking this administer accounts and grants: never by a scoped grant)."""
        return any(permission in ROLE_PERMISSIONS[g.role] and not g.scoped for g in self.grants)

    @property
    def global_admin(self) -> bool:
        """An unscoped admin of every tenant: may create and remove tenants."""
        return any(
            g.tenant == ALL_TENANTS and g.role is Role.ADMIN and not g.scoped for g in self.grants
        )


def owner_text(principal: Principal) -> str:
    """What a subscription keeps of its owner: who, and the grants held when it was made
    (an OIDC provider's user has no grants in the store to look up later). JSON."""
    return orjson.dumps(
        {
            "who": principal.label,
            "grants": [
                [g.tenant, g.role.value, sorted(g.types), g.id_prefix] for g in principal.grants
            ],
        }
    ).decode()


def parse_owner(text: str) -> tuple[str, tuple[Grant, ...]]:
    """``owner_text`` read back: (label, grants then); unknown roles are dropped."""
    try:
        data = orjson.loads(text)
        grants = tuple(
            Grant(str(t), Role(str(r)), frozenset(str(x) for x in types), str(prefix))
            for t, r, types, prefix in data.get("grants", [])
            if r in Role._value2member_map_
        )
        return str(data["who"]), grants
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "unknown:", ()


def parse_role_claim(value: str) -> Grant | None:
    """A role named in a provider's claim: ``operator`` (the default tenant),
    ``operator@water`` (tenant ``water``) or ``admin@*`` (every tenant).

    None for anything else (providers put their own roles in the same claim, such as
    Keycloak's ``offline_access``). ``@`` cannot occur in a tenant name, so the split
    is unambiguous.
    """
    role_text, _, tenant = value.strip().partition("@")
    try:
        role = Role(role_text.lower())
    except ValueError:
        return None
    return Grant(tenant=tenant, role=role)
