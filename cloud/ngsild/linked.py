"""Linked entity retrieval (ETSI GS CIM 009 v1.8/v1.9 clause 4.5.23): ``join`` and ``joinLevel``.

A read may ask for the entities its Relationships point at:

- ``join=inline``: each Relationship gets an ``entity`` member holding the linked entity
  (a ListRelationship an ``entityList``, in ``objectList`` order); in the simplified
  (keyValues) form the Relationship's value, the linked id, is replaced by that entity;
- ``join=flat``: the answer becomes an array: the entities asked for, then every linked
  entity once (deduplicated by id, an entity already in the answer is not repeated); a
  retrieval of one entity none of whose links is found stays that entity alone, as ETSI's
  018_14 expects;
- ``join=@none`` (or no ``join``): nothing is added; ``joinLevel`` (default 1) is how many
  Relationship hops are followed.

Why the traversal works on PRESENTED entities (compacted with the request's ``@context``,
normalized, after ``pick``/``omit``) rather than on stored documents: the projection decides
what is followed. ``pick=id,locatedAt{id,name}`` follows ``locatedAt`` and shows its entity with
``id`` and ``name`` only, so a Relationship of that entity that was not picked is not followed
either; a Relationship whose term carries no ``{...}`` shows its linked entity whole (for
``pick`` and ``omit`` alike). These are the readings ETSI's suite checks (018_20, 018_21,
019_20-019_23).

Cost: one store call per level (every id of the level at once, ``fetch``), none for ids already
looked up, so a cycle (A -> B -> A) costs nothing more; the depth is capped at
:data:`MAX_JOIN_LEVEL` and the number of linked entities shown at :data:`MAX_LINKED`
(403 ``TooManyResults`` beyond: lower ``joinLevel`` or ``limit``). Inline repeats an entity
wherever it is linked (the spec nests one entity per Relationship); flat never does.

The module does no I/O of its own: the caller passes ``fetch`` (ids -> stored documents),
``show`` (stored document -> presented entity, projected) and ``render`` (presented -> the asked-for
form), so the HTTP routes and the notifier share it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ldt.cloud.access.roles import Scope
from ldt.cloud.ngsild.entity_query import EntityQuery
from ldt.cloud.ngsild.formats import SYSTEM_ATTRIBUTES, Form
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import ProjectionTerm
from ldt.cloud.store.base import Entity, Store

__all__ = [
    "MAX_JOIN_LEVEL",
    "MAX_LINKED",
    "Fetch",
    "Join",
    "Projection",
    "Render",
    "Show",
    "expand",
    "fetch_from",
    "parse_join",
]

MAX_JOIN_LEVEL: Final = 10
"""Deepest ``joinLevel`` accepted (each level is one store call)."""
MAX_LINKED: Final = 10_000
"""Most linked entities one answer shows (inline repeats count each time)."""
_FETCH_CHUNK: Final = 1000  # ids per store call (a level with more takes several)

Terms = tuple[ProjectionTerm, ...]


@dataclass(frozen=True, slots=True)
class Projection:
    """The ``pick`` or ``omit`` (at most one of them) that applies to one entity."""

    pick: Terms | None = None
    omit: Terms | None = None

    def linked(self, name: str) -> Projection:
        """The projection of the entities the Relationship ``name`` links to (``name{...}``)."""
        terms = self.pick if self.pick is not None else self.omit
        term = next((t for t in terms or () if t.name == name), None)
        if term is None or not term.linked:
            return Projection()
        if self.pick is not None:
            return Projection(pick=term.linked)
        return Projection(omit=term.linked)


@dataclass(frozen=True, slots=True)
class Join:
    """How linked entities are added: ``inline`` or ``flat``, following ``level`` hops."""

    mode: Literal["inline", "flat"]
    level: int = 1


Fetch = Callable[[Sequence[str]], Awaitable[Sequence[Entity]]]
"""Stored documents of the given ids (absent ones left out), in one store call."""
Show = Callable[[Entity, Projection], dict[str, Any] | None]
"""A stored document as the client sees it, projected; None when nothing of it is left."""
Render = Callable[[dict[str, Any]], dict[str, Any]]
"""A presented (normalized) entity in the asked-for form (``formats.render``)."""


def fetch_from(store: Store, allowed: Scope | None = None) -> Fetch:
    """The ``Fetch`` of a store: one ``search_entities`` by ids per 1,000 ids; only the
    entities ``allowed`` reaches (a scoped grant's join does not leak the others)."""

    async def fetch(ids: Sequence[str]) -> Sequence[Entity]:
        found: list[Entity] = []
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = tuple(ids[start : start + _FETCH_CHUNK])
            page, _ = await store.entities.search(
                EntityQuery(ids=chunk, allowed=allowed), limit=len(chunk), offset=0, count=False
            )
            found.extend(page)
        return found

    return fetch


def _bad(detail: str) -> NgsiLdError:
    return NgsiLdError(400, "BadRequestData", "Invalid linked entity retrieval", detail)


def parse_join(join: Any, join_level: Any) -> Join | None:
    """``join`` and ``joinLevel`` (query parameters as text, or Query/Subscription members).

    None when no join is asked for (``join`` absent or ``@none``; ``joinLevel`` alone then has
    no effect, as in the spec). Raises 400 ``BadRequestData`` for other values.
    """
    if join is None or join == "@none":
        if join_level is not None:
            _level(join_level)  # still a bad value when it is there
        return None
    if join not in ("inline", "flat"):
        raise _bad(f"join must be inline, flat or @none, got {join!r}")
    return Join(mode=join, level=1 if join_level is None else _level(join_level))


def _level(raw: Any) -> int:
    if isinstance(raw, bool):
        raise _bad(f"joinLevel must be a positive integer, got {raw!r}")
    if isinstance(raw, str):
        try:
            raw = int(raw)
        except ValueError:
            raise _bad(f"joinLevel must be a positive integer, got {raw!r}") from None
    if not isinstance(raw, int) or raw < 1:
        raise _bad(f"joinLevel must be a positive integer, got {raw!r}")
    if raw > MAX_JOIN_LEVEL:
        raise _bad(f"joinLevel must be at most {MAX_JOIN_LEVEL}, got {raw}")
    return raw


# --- traversal -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Link:
    """One Relationship instance of a shown entity and what it points at."""

    name: str
    index: int | None  # position among the attribute's instances (None: a single instance)
    member: Literal["entity", "entityList"]
    targets: list[str]


@dataclass(slots=True)
class _Node:
    """A shown entity, the projection it was shown with and the entities inlined into it."""

    shown: dict[str, Any]
    projection: Projection
    inlined: list[tuple[_Link, list[tuple[str, _Node]]]] = field(default_factory=list)


_NOT_ATTRIBUTES: Final = frozenset({"id", "type", "scope", "@context"}) | SYSTEM_ATTRIBUTES


def _object_ids(instance: Mapping[str, Any]) -> tuple[Literal["entity", "entityList"], list[str]]:
    kind = instance.get("type")
    if kind == "Relationship" and isinstance(instance.get("object"), str):
        return "entity", [instance["object"]]
    if kind == "ListRelationship" and isinstance(instance.get("objectList"), list):
        ids = []
        for item in instance["objectList"]:
            target = _item_id(item)
            if isinstance(target, str):
                ids.append(target)
        return "entityList", ids
    return "entity", []  # a Relationship to several objects is not inlined (no member for it)


def _links(shown: Mapping[str, Any]) -> Iterator[_Link]:
    """The Relationships (and ListRelationships) of a shown entity, instance by instance."""
    for name, value in shown.items():
        if name in _NOT_ATTRIBUTES:
            continue
        instances = value if isinstance(value, list) else [value]
        for i, instance in enumerate(instances):
            if not isinstance(instance, Mapping):
                continue
            member, targets = _object_ids(instance)
            if targets:
                yield _Link(name, i if isinstance(value, list) else None, member, targets)


async def expand(
    roots: Sequence[dict[str, Any]],
    join: Join,
    *,
    projection: Projection,
    form: Form,
    fetch: Fetch,
    show: Show,
    render: Render,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The answer's entities with their linked entities: ``(presented, rendered)`` pairs.

    ``roots``: the entities asked for, presented and projected with ``projection`` (the
    request's ``pick``/``omit``). Inline: one pair per root, its linked entities nested in the
    rendered form. Flat: the roots, then each linked entity once, level by level.
    """
    nodes = [_Node(r, projection) for r in roots]
    stored: dict[str, Entity | None] = {}
    seen = {r.get("id") for r in roots}
    flat: list[_Node] = []
    shown_count = 0
    frontier = nodes
    for _ in range(join.level):
        links = [(node, link) for node in frontier for link in _links(node.shown)]
        known = stored.keys() | (seen if join.mode == "flat" else set())  # flat: shown once
        wanted = sorted({t for _, link in links for t in link.targets if t not in known})
        if wanted:
            found = await fetch(wanted)
            stored.update(dict.fromkeys(wanted))
            stored.update((doc["id"], doc) for doc in found)
        next_frontier: list[_Node] = []
        for node, link in links:
            child_projection = node.projection.linked(link.name)
            children: list[tuple[str, _Node]] = []
            for target in link.targets:
                doc = stored.get(target)
                if doc is None or (join.mode == "flat" and target in seen):
                    continue
                seen.add(target)
                child_shown = show(doc, child_projection)
                if child_shown is None:
                    continue
                shown_count += 1
                if shown_count > MAX_LINKED:
                    raise NgsiLdError(
                        403,
                        "TooManyResults",
                        "Too many linked entities",
                        f"more than {MAX_LINKED} linked entities; lower joinLevel or limit",
                    )
                child = _Node(child_shown, child_projection)
                children.append((target, child))
                next_frontier.append(child)
            if join.mode == "inline" and children:
                node.inlined.append((link, children))
            flat.extend(c for _, c in children if join.mode == "flat")
        frontier = next_frontier
        if not frontier:
            break
    if join.mode == "flat":
        return [(n.shown, render(n.shown)) for n in (*nodes, *flat)]
    return [(n.shown, _render_inline(n, form, render)) for n in nodes]


def _render_inline(node: _Node, form: Form, render: Render) -> dict[str, Any]:
    """``node`` rendered, each inlined entity (rendered the same way) put in its Relationship."""
    rendered = render(node.shown)
    for link, children in node.inlined:
        shown_children = {target: _render_inline(c, form, render) for target, c in children}
        value = rendered.get(link.name)
        if link.index is None:
            rendered[link.name] = _attach(value, link, shown_children, form)
        elif isinstance(value, list) and link.index < len(value):
            value = list(value)
            value[link.index] = _attach(value[link.index], link, shown_children, form)
            rendered[link.name] = value
    return rendered


def _attach(rendered: Any, link: _Link, children: Mapping[str, Any], form: Form) -> Any:
    """One rendered Relationship instance with its linked entities (4.5.23.2, 4.5.23.3)."""
    if form == "simplified":  # the value is the id (or the ids): the entity takes its place
        if link.member == "entity":
            return children.get(link.targets[0], rendered)
        items = rendered if isinstance(rendered, list) else link.targets
        return [children.get(_item_id(item), item) for item in items]
    if not isinstance(rendered, dict):
        return rendered
    if link.member == "entity":
        return {**rendered, "entity": children[link.targets[0]]}
    return {**rendered, "entityList": [children[t] for t in link.targets if t in children]}


def _item_id(item: Any) -> Any:
    if isinstance(item, Mapping):
        return item.get("object")
    return item
