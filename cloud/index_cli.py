"""``ldt cloud index add|drop|list``: declared indexes on attribute values.

An index makes ``GET /entities?q=`` terms on one attribute (comparisons, ranges, value
lists, ``observedAt``) start from the entities they select instead of a scan; every
write then keeps its rows (``ldt.cloud.store.value_index`` says what it costs). Like
``ldt cloud token``, these work on the store directly (``--data``/``--store``): whoever
can open the store is its administrator. ``add`` fills the index in chunks while
brokers keep serving, and searches use it once it is complete.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ldt.cloud.store.base import Store

__all__ = ["register"]

_T = TypeVar("_T")


def register(cloud_sub: Any, add_data: Callable[[Any], None]) -> None:
    """Add ``ldt cloud index``; ``add_data`` adds --data/--store."""
    group = cloud_sub.add_parser("index", help="indexes on attribute values for fast q queries")
    sub = group.add_subparsers(dest="index_command", required=True, metavar="COMMAND")
    for name, help_ in (
        ("add", "index an attribute's values (name as entities store it) and fill the index"),
        ("drop", "remove the index of an attribute"),
        ("list", "the declared indexes: attribute, state, rows"),
    ):
        parser = sub.add_parser(name, help=help_)
        if name != "list":
            parser.add_argument("attribute", metavar="ATTRIBUTE")
        parser.add_argument(
            "--tenant", default=None, help="the NGSILD-Tenant (default: the default tenant)"
        )
        add_data(parser)
        parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ldt.cloud.errors import CloudError

    async def work(store: Store) -> int:
        indexes = store.value_indexes
        if args.index_command == "add":
            state = await indexes.add(args.attribute)
            print(f"indexed {state.name}: {state.rows:,} values")
        elif args.index_command == "drop":
            if not await indexes.drop(args.attribute):
                print(f"ldt cloud: no index on {args.attribute!r}", file=sys.stderr)
                return 1
            print(f"dropped the index on {args.attribute}")
        else:
            print("ATTRIBUTE\tSTATE\tVALUES")
            for i in await indexes.list():
                print(f"{i.name}\t{'ready' if i.ready else 'filling'}\t{i.rows}")
        return 0

    try:
        return asyncio.run(_on_tenant(args, work))
    except CloudError as exc:
        print(f"ldt cloud: {exc}", file=sys.stderr)
        return 1


async def _on_tenant(args: argparse.Namespace, work: Callable[[Store], Awaitable[_T]]) -> _T:
    """Run ``work`` on the ``--tenant`` store beside ``--data``/``--store`` (it must exist)."""
    from ldt.cloud.errors import CloudError
    from ldt.cloud.ngsild.problems import NgsiLdError
    from ldt.cloud.store.locator import store_for
    from ldt.cloud.tenancy import backend_for, tenant_key, validate_tenant

    async with store_for(args.store, data_dir=args.data) as store:
        if args.tenant is None:
            return await work(store)
        try:
            key = tenant_key(validate_tenant(args.tenant))
        except NgsiLdError as exc:
            raise CloudError(exc.detail or exc.title) from exc
        backend = backend_for(store)
        if backend is None or not await backend.exists(key):
            raise CloudError(f"no tenant {args.tenant!r}")
        async with backend.store(key) as tenant:
            return await work(tenant)
