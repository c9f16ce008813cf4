"""How much one tenant may hold: hosted @contexts (count and bytes), subscriptions, distinct
notification endpoints, and entities.

Why: every tenant costs a database (or a schema), a notifier and its endpoint tasks, and
hosted contexts live in memory. Without limits, one careless or hostile client fills the
disk or the memory every other tenant shares. A breach answers 403 with a ProblemDetails
body naming the quota; nothing is written. The limits apply to every tenant alike
(``ldt cloud serve --quota-… N``); the defaults are generous for a city's departments.

Entities are counted with one ``count(*)`` per tenant, cached ``COUNT_S``: between two
counts a tenant may exceed its quota by what it creates in that time, never by more.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

from ldt.cloud.ngsild.problems import NgsiLdError

__all__ = ["COUNT_S", "QuotaExceededError", "Quotas", "over"]

COUNT_S: Final = 30.0


class QuotaExceededError(NgsiLdError):
    """403: the tenant holds as much of something as it may."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            403,
            None,
            "Quota exceeded",
            f"this tenant may hold at most {limit:,} {what}; delete some first, or ask the"
            " operator to raise the quota",
        )


@dataclass(frozen=True, slots=True)
class Quotas:
    """Per-tenant limits (see the module docstring)."""

    hosted_contexts: int = 1000
    hosted_context_bytes: int = 16 << 20
    subscriptions: int = 1000
    endpoints: int = 200
    entities: int = 10_000_000


def parse_quotas(items: list[str]) -> Quotas:
    """``NAME=N`` items (``--quota entities=500000``) over the defaults; ``ValueError``
    naming the item for anything else."""
    values: dict[str, int] = {}
    known = set(Quotas.__dataclass_fields__)
    for item in items:
        name, _, number = item.partition("=")
        name = name.strip().replace("-", "_")
        if name not in known or not number.strip().isdigit() or int(number) < 1:
            raise ValueError(
                f"--quota {item!r}: use NAME=N with N >= 1, NAME one of {', '.join(sorted(known))}"
            )
        values[name] = int(number)
    return Quotas(**values)


def over(limit: int, count: int, what: str) -> None:
    """Raise ``QuotaExceededError`` when ``count`` has reached ``limit``."""
    if count >= limit:
        raise QuotaExceededError(what, limit)


class EntityCount:
    """A tenant's entity count, read at most every ``COUNT_S``."""

    def __init__(self) -> None:
        self._counts: dict[Hashable, tuple[float, int]] = {}

    async def full(self, key: Hashable, count: Callable[[], Awaitable[int]], limit: int) -> bool:
        """Whether the tenant ``key`` holds ``limit`` entities or more; ``count`` reads the
        number (at most every ``COUNT_S``). A callable, so this model module needs no store."""
        now = time.monotonic()
        cached = self._counts.get(key)
        if cached is None or cached[0] < now:
            cached = (now + COUNT_S, await count())
            self._counts[key] = cached
        return cached[1] >= limit


def endpoint_of(doc: Any) -> str:
    """A stored subscription's endpoint URI ('' if it has none)."""
    notification = doc.get("notification") if isinstance(doc, dict) else None
    endpoint = notification.get("endpoint") if isinstance(notification, dict) else None
    return str(endpoint.get("uri", "")) if isinstance(endpoint, dict) else ""
