"""``ldt cloud models|rules|groups|commands|audit``: the admin's side of edge control.

These work on the cloud's store and CA folder directly (``--data``/``--store``), like
``ldt cloud token``: whoever can read the CA folder is the admin. The same operations are
served over HTTPS with the admin token (``ldt.cloud.control.routes``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ldt.cloud.control.catalogue import Catalogue
    from ldt.cloud.store.base import Store

__all__ = ["register"]

_T = TypeVar("_T")
With = Callable[[argparse.Namespace, Callable[..., Awaitable[Any]]], Any]


def register(cloud_sub: Any, add_data: Callable[[Any], None], with_ca: With) -> None:
    """Add the control commands; ``add_data`` adds --data/--store, ``with_ca`` runs work."""

    def cmd(parent: Any, name: str, help_: str, func: Callable[..., int]) -> Any:
        parser = parent.add_parser(name, help=help_)
        add_data(parser)
        parser.set_defaults(func=lambda args: _guarded(func, args, with_ca))
        return parser

    for kind, noun in (("model", "models"), ("rule", "rules")):
        art_kind = "model" if kind == "model" else "rules"
        group = cloud_sub.add_parser(noun, help=f"the {kind} catalogue: upload, assign, roll out")
        sub = group.add_subparsers(dest=f"{noun}_command", required=True, metavar="COMMAND")
        if noun == "rules":
            check = sub.add_parser("validate", help="check a rule set file without publishing")
            check.add_argument("file", type=Path)
            check.set_defaults(func=lambda args: _guarded(_rules_validate, args, with_ca))
        up = cmd(sub, "upload", f"validate, sign and publish a {kind} as its next version", _upload)
        up.add_argument("file", type=Path)
        cmd(sub, "list", "every published version", _list)
        for verb, help_ in (
            ("assign", "have a gateway or a group run it (newest version)"),
            ("unassign", "stop assigning it to a gateway or a group"),
        ):
            p = cmd(sub, verb, help_, _assign if verb == "assign" else _unassign)
            p.add_argument("name")
            who = p.add_mutually_exclusive_group(required=True)
            who.add_argument("--gateway", metavar="ID")
            who.add_argument("--group", metavar="NAME")
        st = cmd(
            sub, "status", "per gateway: pending, downloaded, verified, running, failed", _status
        )
        st.add_argument("name")
        rb = cmd(sub, "rollback", "publish the previous version again, as the newest", _rollback)
        rb.add_argument("name")
        for parser in (sub.choices[c] for c in sub.choices):
            parser.set_defaults(kind=art_kind)

    groups = cloud_sub.add_parser("groups", help="named groups of gateways (rollout targets)")
    gsub = groups.add_subparsers(dest="groups_command", required=True, metavar="COMMAND")
    gadd = cmd(gsub, "add", "put gateways in a group", _group_add)
    gadd.add_argument("group")
    gadd.add_argument("gateways", nargs="+", metavar="GATEWAY")
    grm = cmd(gsub, "remove", "take a gateway out of a group", _group_remove)
    grm.add_argument("group")
    grm.add_argument("gateway")
    cmd(gsub, "list", "groups and their gateways", _group_list)

    commands = cloud_sub.add_parser("commands", help="commands sent to devices, with status")
    csub = commands.add_subparsers(dest="commands_command", required=True, metavar="COMMAND")
    cl = cmd(csub, "list", "the newest commands", _commands)
    cl.add_argument("--limit", type=int, default=50)

    audit = cloud_sub.add_parser("audit", help="the audit log: commands, rule firings, rollouts")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    al = cmd(asub, "list", "the newest audit lines (both sides)", _audit)
    al.add_argument("--limit", type=int, default=50)


def _guarded(func: Callable[..., int], args: argparse.Namespace, with_ca: With) -> int:
    """Run one command; a refusal or an unreadable file is one line on stderr and exit 1."""
    from ldt.cloud.errors import CloudError

    try:
        return func(args, with_ca)
    except (CloudError, OSError) as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _catalogue(args: argparse.Namespace, with_ca: With, work: Callable[[Catalogue], Any]) -> Any:
    from ldt.cloud.control.audit import AuditLog
    from ldt.cloud.control.catalogue import Catalogue
    from ldt.cloud.pki.artifacts import ArtifactService

    async def run(store: Store, ca: Any) -> Any:
        audit = AuditLog(store)
        return await work(Catalogue(store, ArtifactService(store, ca), audit))

    return with_ca(args, run)


def _rules_validate(args: argparse.Namespace, _with_ca: With) -> int:
    from ldt.cloud.control.catalogue import validate_rules

    name, label, metadata, _ = validate_rules(args.file.read_bytes())
    print(f"rule set {name} is valid: {len(metadata['rules'])} rule(s), digest {label}")
    return 0


def _upload(args: argparse.Namespace, with_ca: With) -> int:
    content = args.file.read_bytes()
    entry = _catalogue(args, with_ca, lambda c: c.upload(args.kind, content))
    print(f"published {entry.kind} {entry.name} version {entry.version} ({entry.label})")
    return 0


def _list(args: argparse.Namespace, with_ca: With) -> int:
    entries = _catalogue(args, with_ca, lambda c: c.entries(args.kind))
    print("name\tversion\tlabel\tpublished\tnote")
    for e in entries:
        note = f"rollback to v{e.rollback_of}" if e.rollback_of else e.metadata.get("license", "")
        print(f"{e.name}\t{e.version}\t{e.label}\t{_when(e.created_at_ms)}\t{note}")
    return 0


def _assign(args: argparse.Namespace, with_ca: With) -> int:
    from ldt.cloud.control.catalogue import target_of

    target = target_of(args.gateway, args.group)
    _catalogue(args, with_ca, lambda c: c.assign(args.kind, args.name, target))
    print(f"{args.kind} {args.name} assigned to {target}")
    return 0


def _unassign(args: argparse.Namespace, with_ca: With) -> int:
    from ldt.cloud.control.catalogue import target_of

    target = target_of(args.gateway, args.group)
    _catalogue(args, with_ca, lambda c: c.unassign(args.kind, args.name, target))
    print(f"{args.kind} {args.name} no longer assigned to {target}")
    return 0


def _status(args: argparse.Namespace, with_ca: With) -> int:
    rows = _catalogue(args, with_ca, lambda c: c.rollout(args.kind, args.name))
    print("gateway\tversion\tstatus\tsince\treason")
    for r in rows:
        print(f"{r.gateway_id}\t{r.version}\t{r.status}\t{_when(r.at_ms)}\t{r.reason or ''}")
    return 0


def _rollback(args: argparse.Namespace, with_ca: With) -> int:
    entry = _catalogue(args, with_ca, lambda c: c.rollback(args.kind, args.name))
    print(
        f"{entry.kind} {entry.name} rolled back: version {entry.version} republishes"
        f" version {entry.rollback_of} ({entry.label})"
    )
    return 0


def _group_add(args: argparse.Namespace, with_ca: With) -> int:
    _catalogue(args, with_ca, lambda c: c.group_add(args.group, args.gateways))
    print(f"group {args.group}: added {', '.join(args.gateways)}")
    return 0


def _group_remove(args: argparse.Namespace, with_ca: With) -> int:
    _catalogue(args, with_ca, lambda c: c.group_remove(args.group, args.gateway))
    print(f"group {args.group}: removed {args.gateway}")
    return 0


def _group_list(args: argparse.Namespace, with_ca: With) -> int:
    groups = _catalogue(args, with_ca, lambda c: c.groups())
    for name, members in groups.items():
        print(f"{name}\t{' '.join(members)}")
    return 0


def _commands(args: argparse.Namespace, with_ca: With) -> int:
    from ldt.cloud.control.commands import list_commands

    rows = with_ca(args, lambda store, _ca: list_commands(store, args.limit))
    print("created\tgateway\tentity/attr\tvalue\tstatus\tinfo")
    for c in rows:
        print(
            f"{_when(c['created_at_ms'])}\t{c['gateway_id']}\t{c['entity_id']}/{c['attr']}"
            f"\t{c['value']!r}\t{c['status']}\t{c['info'] or ''}"
        )
    return 0


def _audit(args: argparse.Namespace, with_ca: With) -> int:
    from ldt.cloud.control.audit import AuditLog

    rows = with_ca(args, lambda store, _ca: AuditLog(store).entries(args.limit))
    print("at\torigin\tgateway\taction\tsubject\tdetail")
    for e in rows:
        print(
            f"{_when(e.at_ms)}\t{e.origin}\t{e.gateway_id or '-'}\t{e.action}\t{e.subject}"
            f"\t{e.detail}"
        )
    return 0
