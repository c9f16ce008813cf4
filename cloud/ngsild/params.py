"""URL query parameters the NGSI-LD routes share (GS CIM 009 v1.9 clause 6.3 and the operations).

Every route reads the same parameters the same way: unknown or repeated names (400
InvalidRequest), ``true``/``false`` flags, non-negative integers, ``limit`` with its maximum
(403 TooManyResults), and the entity selectors ``type``/``id``/``idPattern``/``q``/``scopeQ``
of ``GET /entities`` and ``DELETE /entities``. Written once here so that one parameter gets
one check and one error wherever it is given. Bad values are 400 BadRequestData; routes
pass their own ``title`` where their errors have always said something else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request

from ldt.cloud.ngsild.entities import is_uri
from ldt.cloud.ngsild.entity_ops import stored_name
from ldt.cloud.ngsild.entity_query import EntityQuery, map_q_names, map_type_names, parse_types
from ldt.cloud.ngsild.jsonld import ActiveContext
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.query import QSyntaxError, parse_attrs, parse_q, parse_scope_q
from ldt.cloud.ngsild.safe_regex import SafeRegex

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "TITLE",
    "Page",
    "attrs",
    "bad",
    "check_params",
    "entity_filter",
    "flag",
    "name_as_stored",
    "non_negative",
    "page",
    "page_size",
    "refuse_unknown",
    "too_many",
]

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 1000
MAX_OFFSET: Final = 2**31 - 1
TITLE: Final = "Invalid query parameter"
_NOT_ATTRIBUTES: Final = frozenset({"id", "type", "@id", "@type", "@context"})


def bad(detail: str, title: str = TITLE) -> NgsiLdError:
    """400 BadRequestData: a parameter's value is wrong."""
    return NgsiLdError(400, "BadRequestData", title, detail)


def refuse_unknown(request: Request, allowed: frozenset[str], *, detail: str | None = None) -> None:
    """400 InvalidRequest for a parameter the operation does not have (named in the detail)."""
    unknown = sorted(k for k in request.query_params if k not in allowed)
    if unknown:
        where = f"is not a parameter of {request.method} {request.url.path}"
        raise NgsiLdError(
            400,
            "InvalidRequest",
            "Unknown query parameter",
            f"{', '.join(unknown)} {where if detail is None else detail}",
        )


def check_params(request: Request, allowed: frozenset[str]) -> None:
    """Unknown parameters, then repeated ones: both 400 InvalidRequest (a repeated
    parameter would otherwise be read as its first value, silently)."""
    refuse_unknown(request, allowed)
    for name in request.query_params:
        if len(request.query_params.getlist(name)) > 1:
            raise NgsiLdError(
                400, "InvalidRequest", "Repeated query parameter", f"{name} is given twice"
            )


def name_as_stored(term: str, ctx: ActiveContext) -> str:
    """A type or attribute name from the request as stored; as given when it maps to null."""
    stored = stored_name(term, ctx)
    return term if stored is None else stored


def non_negative(params: Mapping[str, str], name: str, default: int, *, title: str = TITLE) -> int:
    """An integer parameter (``offset``, ``limit``...): ``default`` when absent, 400 if not >= 0."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"{name} must be an integer, got {raw!r}", title) from None
    if value < 0:
        raise bad(f"{name} must not be negative, got {value}", title)
    return value


def too_many(value: int, maximum: int) -> NgsiLdError:
    """403 TooManyResults (6.3.7): a page larger than this broker serves."""
    return NgsiLdError(
        403,
        "TooManyResults",
        "Too many results",
        f"limit {value} is above the maximum of {maximum}; page with offset",
    )


def page_size(
    params: Mapping[str, str], default: int, maximum: int = MAX_LIMIT, *, title: str = TITLE
) -> int:
    """``limit``: a non-negative integer, 403 TooManyResults above ``maximum``."""
    value = non_negative(params, "limit", default, title=title)
    if value > maximum:
        raise too_many(value, maximum)
    return value


def flag(params: Mapping[str, str], name: str, *, title: str = TITLE) -> bool:
    """A ``true``/``false`` parameter (``count``, ``local``, ``details``); absent is false."""
    raw = params.get(name, "false")
    if raw not in ("true", "false"):
        raise bad(f"{name} must be true or false, got {raw!r}", title)
    return raw == "true"


@dataclass(frozen=True, slots=True)
class Page:
    """``limit``, ``offset`` and ``count`` of an entity query (6.3.10, 6.3.13)."""

    limit: int
    offset: int
    count: bool


def page(params: Mapping[str, str]) -> Page:
    """The page asked for: 403 above ``MAX_LIMIT``; ``limit=0`` only to count (400)."""
    count = flag(params, "count")
    size = non_negative(params, "limit", DEFAULT_LIMIT)
    offset = non_negative(params, "offset", 0)
    if size > MAX_LIMIT:
        raise too_many(size, MAX_LIMIT)
    if size == 0 and not count:
        raise bad("limit=0 is only allowed with count=true")
    if offset > MAX_OFFSET:
        raise bad(f"offset must be at most {MAX_OFFSET}")
    return Page(size, offset, count)


def attrs(params: Mapping[str, str], ctx: ActiveContext) -> tuple[str, ...] | None:
    """``attrs`` as stored names; None when absent; id/type/@context are not attributes."""
    raw = params.get("attrs")
    if raw is None:
        return None
    try:
        names = parse_attrs(raw)
    except QSyntaxError as exc:
        raise exc.problem() from exc
    reserved = [n for n in names if n in _NOT_ATTRIBUTES]
    if reserved:
        raise bad(f"attrs lists {', '.join(reserved)}, which are not attributes")
    return tuple(name_as_stored(n, ctx) for n in names)


def entity_filter(
    params: Mapping[str, str], name: Callable[[str], str], *, title: str = TITLE
) -> EntityQuery:
    """``type``, ``id``, ``idPattern``, ``q`` and ``scopeQ`` as an ``EntityQuery``.

    Names in ``type`` and ``q`` are spelled as stored with ``name``; ids must be URIs and
    ``idPattern`` a regular expression ``SafeRegex`` accepts (400 otherwise).
    """
    ids: tuple[str, ...] | None = None
    if "id" in params:
        ids = tuple(i.strip() for i in params["id"].split(","))
        wrong = [i for i in ids if not is_uri(i)]
        if wrong:
            raise bad(f"id {wrong[0]!r} is not a URI", title)
    pattern: SafeRegex | None = None
    if "idPattern" in params:
        try:
            pattern = SafeRegex(params["idPattern"])
        except ValueError as exc:
            raise bad(f"idPattern is not a usable regular expression: {exc}", title) from None
    try:
        types = None if "type" not in params else parse_types(params["type"])
        q = None if "q" not in params else parse_q(params["q"])
        scope = None if "scopeQ" not in params else parse_scope_q(params["scopeQ"])
    except QSyntaxError as exc:
        raise exc.problem() from exc
    return EntityQuery(
        types=None if types is None else map_type_names(types, name),
        ids=ids,
        id_pattern=pattern,
        q=None if q is None else map_q_names(q, name),
        scope=scope,
    )
