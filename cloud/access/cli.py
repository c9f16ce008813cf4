"""``ldt cloud users|clients|tenants|notify``: people, service accounts, tenants, and the
private hosts notifications may go to.

Like ``ldt cloud token``, these work on the store directly (``--data``/``--store``):
whoever can open the store administers it, which is how the first admin is made. The
same operations are served at ``/ldt/v1/admin`` (``ldt.cloud.access.routes``). Generated
passwords, client secrets and tokens are printed once; the store keeps only hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ldt.cloud.access.roles import tenant_label

if TYPE_CHECKING:
    from ldt.cloud.access.service import AccessService
    from ldt.cloud.store.base import Store

__all__ = ["register"]

_TENANT_HELP = "the tenant (default: the default tenant; '*': every tenant)"


def register(cloud_sub: Any, add_data: Callable[[Any], None]) -> None:
    """Add ``ldt cloud users``, ``clients`` and ``tenants``."""

    def cmd(parent: Any, name: str, help_: str, run: Callable[..., Awaitable[int]]) -> Any:
        parser = parent.add_parser(name, help=help_)
        add_data(parser)
        parser.set_defaults(func=lambda args: _main(args, run))
        return parser

    users = cloud_sub.add_parser("users", help="people who sign in, their roles and groups")
    u_sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    add = cmd(u_sub, "add", "create a user with a role (a password is generated if none)", _u_add)
    add.add_argument("name")
    add.add_argument("--role", required=True, help="viewer, operator, technician or admin")
    add.add_argument("--tenant", default="", help=_TENANT_HELP)
    add.add_argument("--group", action="append", default=[], help="a group (repeatable)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    cmd(u_sub, "list", "users, their state, groups and grants", _u_list)
    for verb in ("disable", "enable"):
        p = cmd(u_sub, verb, f"{verb} a user (tokens refused within 30 s)", _u_toggle)
        p.add_argument("name")
    pw = cmd(u_sub, "passwd", "set a new password (generated if not on stdin); sessions end", _u_pw)
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    rm = cmd(u_sub, "remove", "delete a user with its grants and sessions", _u_remove)
    rm.add_argument("name")
    for noun, sub in (("user", u_sub),):
        _grant_commands(sub, cmd, noun)

    clients = cloud_sub.add_parser("clients", help="service accounts: Grafana, IoT Agents, scripts")
    c_sub = clients.add_subparsers(dest="clients_command", required=True, metavar="COMMAND")
    cadd = cmd(c_sub, "add", "create a service account; prints its id and secret once", _c_add)
    cadd.add_argument("name")
    cadd.add_argument("--role", required=True)
    cadd.add_argument("--tenant", default="", help=_TENANT_HELP)
    cmd(c_sub, "list", "service accounts and their grants", _c_list)
    for verb in ("disable", "enable"):
        p = cmd(c_sub, verb, f"{verb} a service account and (disable) its tokens", _c_toggle)
        p.add_argument("name")
    tok = cmd(c_sub, "token", "a long-lived token (or --refresh: an IoT Agent's trust)", _c_token)
    tok.add_argument("name")
    tok.add_argument("--refresh", action="store_true", help="a refresh token instead")
    crm = cmd(c_sub, "remove", "delete a service account with its grants and tokens", _c_remove)
    crm.add_argument("name")
    rv = cmd(c_sub, "revoke-token", "revoke a token or session by its id", _revoke_token)
    rv.add_argument("token_id")
    _grant_commands(c_sub, cmd, "client")

    notify = cloud_sub.add_parser(
        "notify", help="private hosts notifications may go to (public ones need nothing)"
    )
    n_sub = notify.add_subparsers(dest="notify_command", required=True, metavar="COMMAND")
    for verb, help_ in (
        ("allow", "let subscriptions notify HOST although it resolves to a private address"),
        ("deny", "take an allowance back"),
        ("list", "the hosts allowed"),
    ):
        p = cmd(n_sub, verb, help_, _notify)
        if verb != "list":
            p.add_argument("host")
        p.add_argument("--tenant", default="", help="the tenant (default: the default tenant)")

    tenants = cloud_sub.add_parser("tenants", help="tenants (only a global admin creates them)")
    t_sub = tenants.add_subparsers(dest="tenants_command", required=True, metavar="COMMAND")
    tadd = cmd(t_sub, "add", "create a tenant", _t_add)
    tadd.add_argument("name")
    cmd(t_sub, "list", "the tenants", _t_list)
    trm = cmd(t_sub, "remove", "unregister a tenant (its data stays on disk)", _t_remove)
    trm.add_argument("name")


def _grant_commands(sub: Any, cmd: Callable[..., Any], noun: str) -> None:
    grant = cmd(sub, "grant", f"give a {noun} (or --group) a role, optionally scoped", _grant)
    grant.add_argument("name", help=f"the {noun}'s name (or the group's, with --group)")
    grant.add_argument("--role", required=True)
    grant.add_argument("--tenant", default="", help=_TENANT_HELP)
    grant.add_argument("--group", action="store_true", help="NAME is a group")
    grant.add_argument("--type", action="append", default=[], help="only this entity type")
    grant.add_argument("--id-prefix", default="", help="only entity ids starting with this")
    grant.set_defaults(kind=noun)
    revoke = cmd(sub, "revoke", f"remove a {noun}'s (or --group's) roles in a tenant", _revoke)
    revoke.add_argument("name")
    revoke.add_argument("--tenant", default="", help=_TENANT_HELP)
    revoke.add_argument("--role", default=None, help="only this role")
    revoke.add_argument("--group", action="store_true")
    revoke.set_defaults(kind=noun)


def _main(args: argparse.Namespace, run: Callable[..., Awaitable[int]]) -> int:
    from ldt.cloud.errors import CloudError
    from ldt.cloud.store.locator import store_for

    async def main() -> int:
        async with store_for(args.store, data_dir=args.data) as store:
            return await run(args, _service(store, args), store)

    try:
        return asyncio.run(main())
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1


def _service(store: Store, args: argparse.Namespace) -> AccessService:
    from ldt.cloud.access.service import AccessService
    from ldt.cloud.access.tokens import TokenSigner

    return AccessService(store, TokenSigner.open(args.data / "pki"))


def _password(args: argparse.Namespace) -> str | None:
    if not args.password_stdin:
        return None
    return sys.stdin.readline().rstrip("\r\n")


async def _u_add(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    generated = await service.add_user(
        args.name, args.role, args.tenant, _password(args), args.group
    )
    print(f"user {args.name}: {args.role} in {tenant_label(args.tenant)}")
    if generated is not None:
        print(f"password (shown once): {generated}")
    return 0


async def _list(service: AccessService, kind: str) -> int:
    print("NAME\tSTATE\tGROUPS\tGRANTS")
    for record, grants in await service.users(kind):
        shown = "; ".join(_grant_text(g) for g in grants) or "-"
        state = "disabled" if record.disabled else "enabled"
        print(f"{record.name}\t{state}\t{','.join(record.groups) or '-'}\t{shown}")
    return 0


def _grant_text(grant: Any) -> str:
    text = f"{grant.role}@{tenant_label(grant.tenant)}"
    if grant.types:
        text += " types=" + ",".join(grant.types)
    if grant.id_prefix:
        text += f" ids={grant.id_prefix}*"
    return text


async def _u_list(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    return await _list(service, "user")


async def _c_list(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    return await _list(service, "client")


async def _u_toggle(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    await service.set_disabled("user", args.name, args.users_command == "disable")
    print(f"user {args.name}: {args.users_command}d")
    return 0


async def _c_toggle(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    await service.set_disabled("client", args.name, args.clients_command == "disable")
    print(f"client {args.name}: {args.clients_command}d")
    return 0


async def _u_pw(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    generated = await service.set_password(args.name, _password(args))
    print(f"user {args.name}: password changed; their sessions ended")
    if generated is not None:
        print(f"password (shown once): {generated}")
    return 0


async def _u_remove(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    await service.remove("user", args.name)
    print(f"user {args.name}: removed")
    return 0


async def _c_remove(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    await service.remove("client", args.name)
    print(f"client {args.name}: removed")
    return 0


async def _c_add(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    secret = await service.add_client(args.name, args.role, args.tenant)
    print(f"client {args.name}: {args.role} in {tenant_label(args.tenant)}")
    print(f"client_id: {args.name}")
    print(f"client_secret (shown once): {secret}")
    return 0


async def _c_token(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    token, token_id = await service.client_token(args.name, refresh=args.refresh)
    kind = "refresh token" if args.refresh else "token"
    print(f"{kind} (shown once): {token}")
    print(f"token id: {token_id} (revoke with: ldt cloud clients revoke-token {token_id})")
    return 0


async def _revoke_token(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    if not await service.revoke_token_id(args.token_id):
        print("ldt cloud: no such token, or already revoked", file=sys.stderr)
        return 1
    print(f"token {args.token_id}: revoked")
    return 0


async def _grant(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    subject = f"{'group' if args.group else args.kind}:{args.name}"
    record = await service.grant(
        subject, args.role, args.tenant, types=args.type, id_prefix=args.id_prefix
    )
    print(f"{subject}: {_grant_text(record)}")
    return 0


async def _revoke(args: argparse.Namespace, service: AccessService, _store: Store) -> int:
    subject = f"{'group' if args.group else args.kind}:{args.name}"
    removed = await service.revoke_grant(subject, args.tenant, args.role)
    print(f"{subject}: {removed} grant(s) removed in {tenant_label(args.tenant)}")
    return 0 if removed else 1


async def _notify(args: argparse.Namespace, service: AccessService, store: Store) -> int:
    notify = store.access.notify
    if args.notify_command == "list":
        for host in sorted(await notify.hosts(args.tenant)):
            print(host)
        return 0
    host = args.host.strip().lower()
    if args.notify_command == "allow":
        await notify.allow(args.tenant, host)
        print(f"notifications may go to {host} in {tenant_label(args.tenant)} (within 30 s)")
        return 0
    if not await notify.deny(args.tenant, host):
        print(f"ldt cloud: {host} was not allowed", file=sys.stderr)
        return 1
    print(f"{host}: no longer allowed in {tenant_label(args.tenant)}")
    return 0


def _registry(store: Store) -> Any:
    from ldt.cloud.tenancy import TenantRegistry, backend_for

    def no_notifier(_store: Store, _name: str) -> Any:
        raise AssertionError("the CLI opens no tenant")

    return TenantRegistry(backend_for(store), no_notifier, store.access)


async def _t_add(args: argparse.Namespace, service: AccessService, store: Store) -> int:
    from ldt.cloud.ngsild.problems import NgsiLdError

    try:
        created = await _registry(store).add(args.name)
    except NgsiLdError as exc:
        print(f"ldt cloud: {exc.detail}", file=sys.stderr)
        return 1
    print(f"tenant {args.name}: {'created' if created else 'exists already'}")
    return 0


async def _t_list(args: argparse.Namespace, service: AccessService, store: Store) -> int:
    for name in await _registry(store).registered():
        print(name)
    return 0


async def _t_remove(args: argparse.Namespace, service: AccessService, store: Store) -> int:
    if not await _registry(store).remove(args.name):
        print(f"ldt cloud: no tenant {args.name!r}", file=sys.stderr)
        return 1
    print(f"tenant {args.name}: removed (its data stays in the store; delete it by hand)")
    return 0
