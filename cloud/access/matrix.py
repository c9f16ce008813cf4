"""The route x role matrix of ``docs/access.md``, made from the app's own route table.

    python -m ldt.cloud.access.matrix > docs/access.md

The table is written from the policies the endpoints declare (``guard``), so the document
cannot drift from the code: ``tests/cloud/test_access_routes.py`` checks that the file
equals this output, and then calls every route as every role to check that the server
answers as the table says.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from starlette.routing import BaseRoute, Mount, Route

from ldt.cloud.access.policy import Policy, policy_of
from ldt.cloud.access.roles import (
    ALL_TENANTS,
    DEFAULT_TENANT,
    Grant,
    Principal,
    Role,
)

__all__ = ["COLUMNS", "Cell", "RouteRow", "cell", "document", "route_table", "rows"]

COLUMNS: Final[tuple[tuple[str, Principal | None], ...]] = (
    ("anonymous", None),
    ("viewer", Principal("v", "user", (Grant(DEFAULT_TENANT, Role.VIEWER),))),
    ("operator", Principal("o", "user", (Grant(DEFAULT_TENANT, Role.OPERATOR),))),
    ("technician", Principal("t", "user", (Grant(DEFAULT_TENANT, Role.TECHNICIAN),))),
    ("admin", Principal("a", "user", (Grant(DEFAULT_TENANT, Role.ADMIN),))),
    ("global admin", Principal("g", "user", (Grant(ALL_TENANTS, Role.ADMIN),))),
)
"""Who the matrix shows: roles in the default tenant, and the admin of every tenant."""

Cell = str
"""``yes`` (passes the check), ``401``, ``403``, or ``own`` (the route checks a gateway's
certificate or token, or a claim token, itself; people's tokens change nothing)."""


@dataclass(frozen=True, slots=True)
class RouteRow:
    """One method on one path, and its declared policy (None: undeclared, refused)."""

    method: str
    path: str
    policy: Policy | None


def rows(routes: list[BaseRoute], prefix: str = "") -> Iterator[RouteRow]:
    """Every method of every route (inside mounts too), in the app's order; not HEAD."""
    for route in routes:
        if isinstance(route, Mount):
            yield from rows(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield RouteRow(method, prefix + route.path, policy_of(route.endpoint))


def cell(policy: Policy | None, principal: Principal | None) -> Cell:
    """What ``principal`` (None: anonymous) gets from the guard of a route with ``policy``."""
    if policy is None:
        return "403"
    if policy.kind in ("gateway", "public"):
        return "own" if policy.kind == "gateway" else "yes"
    if principal is None:
        return "401"
    if policy.kind == "global":
        return "yes" if principal.global_admin else "403"
    assert policy.permission is not None
    if policy.kind == "anywhere":
        return "yes" if principal.may_anywhere(policy.permission) else "403"
    return "yes" if principal.may(DEFAULT_TENANT, policy.permission) else "403"


_HEAD: Final = """# Who may call what

Generated from the cloud's route table by `python -m ldt.cloud.access.matrix > docs/access.md`;
`tests/cloud/test_access_routes.py` fails when this file and the code disagree, and calls every
route below as every column to check that the server answers as written.

- **yes**: the request passes the access check (the route may still answer 400 or 404 for
  what it carries). **401**: sign in first. **403**: signed in, not allowed.
- **own**: a gateway's route. It checks the gateway's client certificate (mutual TLS), its
  plain-HTTP gateway token or a claim token itself; a person's token grants nothing there.
- Roles are given per tenant (`NGSILD-Tenant`; `/ldt/v1` is the default tenant's). The
  columns show roles in the default tenant; in another tenant the same role reaches the same
  routes there. *global admin* is `admin` in every tenant (`--tenant '*'`).
- *needs* is the permission the route declares (`ldt.cloud.access.roles`): `read`
  (viewer and up), `write` and `control` (operator, admin), `fleet` and `claim` (technician,
  admin), `admin`; `anywhere` admin routes check the tenant named in the request body;
  `global` routes are the global admin's. *(unscoped)*: the route is not about entities,
  so a scoped grant does not count there. `admin` always needs an unscoped grant.
- A grant may be scoped to entity types and an id prefix. Then queries, listings,
  subscriptions' notifications and temporal reads show only entities in scope, and single
  reads and writes of others answer 403; batch operations report each refused entity.

"""


def document(routes: list[BaseRoute]) -> str:
    """The Markdown of ``docs/access.md``."""
    names = [name for name, _ in COLUMNS]
    lines = [
        "| method | path | needs | " + " | ".join(names) + " |",
        "| --- | --- | --- | " + " | ".join(":---:" for _ in names) + " |",
    ]
    for row in rows(routes):
        needs = "undeclared" if row.policy is None else _needs(row.policy)
        cells = [cell(row.policy, principal) for _, principal in COLUMNS]
        lines.append(f"| {row.method} | `{row.path}` | {needs} | " + " | ".join(cells) + " |")
    return _HEAD + "\n".join(lines) + "\n"


def _needs(policy: Policy) -> str:
    if policy.kind == "anywhere":
        return f"{policy.describe()} (anywhere)"
    if policy.kind == "global":
        return "global admin"
    return policy.describe()


def route_table() -> list[BaseRoute]:
    """The routes of the app as ``ldt cloud serve`` builds it (no store opened)."""
    from ldt.cloud.access.guard import AccessControl
    from ldt.cloud.server import build_app

    class _NoStore:
        access = None

    return list(build_app(_NoStore(), access=AccessControl.lab()).routes)  # type: ignore[arg-type]


def main() -> None:
    """Print the document for the app as ``ldt cloud serve`` builds it."""
    print(document(route_table()), end="")


if __name__ == "__main__":
    main()
