"""The NGSI-LD query languages as pure functions: ``q`` (4.9), ``scopeQ`` (4.19), projection (4.21).

ETSI GS CIM 009 v1.9.1. Parsing turns the text of a request parameter into a small frozen AST
(:func:`parse_q`, :func:`parse_scope_q`, :func:`parse_attrs`, :func:`parse_projection`);
evaluation runs it over one NORMALIZED entity whose keys are in the same (compacted) form as the
names in the query (expanding and compacting names is the JSON-LD layer's job). Nothing here does
I/O, so the API, the subscription matcher and the stores' Python fallback share one semantics.

Every malformed input raises :class:`QSyntaxError` (a ``ValueError``) carrying the 0-based column
and a sentence; no other exception escapes a parser. The spec wants HTTP 400 with error type
``BadRequestData`` for a query that is not valid (clause 5.7.2/6.4.3.2, "the query ... not
syntactically valid"); :meth:`QSyntaxError.problem` builds exactly that.

Choices where the spec is silent or loose (each one tested):

- whitespace between tokens is ignored (URL decoding leaves it); AND binds tighter than OR and
  parentheses nest to any depth up to :data:`MAX_DEPTH` (the ABNF allows one level; example 6
  uses two);
- an ordering operator (``> >= < <=``) or a pattern over an array target holds if it holds for one
  element, like ``==`` does per the spec; ``!=`` holds when no element is equal (spec);
- across multi-attribute instances (``datasetId``) a term holds if it holds for one instance;
- an unquoted value after ``==``/``!=`` that is not a number, date/time or boolean is a URI or a
  bare term (spec example 12, ``gender==Male``) and compares equal to an identical string;
- an attribute name may also be an absolute IRI (``https://x.org/speed==3``, ``urn:a:b``): the
  whole IRI up to the operator is the name, so it takes no dotted sub-attributes;
- the regular expression of ``~=``/``!~=`` is a JSON string or unquoted text that ends at ``;``,
  at an unbalanced ``)`` or at a top-level ``|`` (quote it to use those). It runs on a
  linear-time engine (:class:`SafeRegex`), never on backtracking ``re``: no pattern can hang the
  broker.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Literal, TypeAlias

from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.ngsild.safe_regex import SafeRegex

__all__ = [
    "MAX_DEPTH",
    "MAX_QUERY_LENGTH",
    "AnyScope",
    "AttrPath",
    "LinkedPath",
    "Op",
    "ProjectionTerm",
    "QAnd",
    "QExpr",
    "QList",
    "QOr",
    "QRange",
    "QSyntaxError",
    "QTerm",
    "QValue",
    "QueryError",
    "Regex",
    "Resolver",
    "SafeRegex",
    "ScopeAnd",
    "ScopeExpr",
    "ScopeOr",
    "ScopePattern",
    "evaluate",
    "evaluate_scope",
    "parse_attrs",
    "parse_projection",
    "parse_q",
    "parse_scope_q",
    "project",
    "render",
]

MAX_QUERY_LENGTH = 16384
"""Longest accepted query text (characters): longer is rejected before parsing."""
MAX_DEPTH = 64
"""Deepest accepted nesting of parentheses (and of linked-entity braces)."""


class QueryError(ValueError):
    """Root of this module's errors: the query text or a projection request is unusable."""


class QSyntaxError(QueryError):
    """A query parameter does not follow its grammar; ``column`` is 0-based into ``text``."""

    def __init__(self, detail: str, *, column: int, text: str, parameter: str = "q") -> None:
        self.detail = detail
        self.column = column
        self.text = text
        self.parameter = parameter
        super().__init__(f"invalid {parameter}: {detail}")

    def problem(self) -> NgsiLdError:
        """The 400 ``BadRequestData`` ProblemDetails the spec requires for an invalid query."""
        return NgsiLdError(400, "BadRequestData", f"Invalid {self.parameter}", str(self))


# ---------------------------------------------------------------------------------------------
# AST

ValueKind: TypeAlias = Literal["number", "string", "datetime", "date", "time", "boolean", "uri"]
Op: TypeAlias = Literal["==", "!=", ">", ">=", "<", "<=", "~=", "!~="]
_COMPARABLE = frozenset({"number", "string", "datetime", "date", "time"})
_OPS: tuple[Op, ...] = ("!~=", "==", "!=", "~=", ">=", "<=", ">", "<")
_ORDERING = frozenset({">", ">=", "<", "<="})


@dataclass(frozen=True, slots=True)
class QValue:
    """One literal: ``value`` is int/float, str, bool, an aware datetime or time, or a date."""

    kind: ValueKind
    value: Any


@dataclass(frozen=True, slots=True)
class QRange:
    """``low..high``, both bounds included, both of the same comparable kind."""

    low: QValue
    high: QValue


@dataclass(frozen=True, slots=True)
class QList:
    """``a,b,c``: ``==`` holds for any item, ``!=`` for none."""

    items: tuple[QValue, ...]


@dataclass(frozen=True, slots=True)
class Regex:
    """The pattern of ``~=``/``!~=``; equality is by pattern text."""

    pattern: str
    program: SafeRegex = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LinkedPath:
    """``rel{Type1,Type2:path}``: ``path`` evaluated on the entities ``rel`` points to."""

    types: tuple[str, ...]
    path: AttrPath


@dataclass(frozen=True, slots=True)
class AttrPath:
    """``attr.sub.sub[member.member]`` or ``rel{...}``.

    ``names`` are the attribute then its sub-attributes (or a member such as ``observedAt``);
    ``member`` is the trailing path into the JSON value (for a LanguageProperty: the language
    tag, or ``*``); ``link`` follows a Relationship (then ``names`` has one name).
    """

    names: tuple[str, ...]
    member: tuple[str, ...] | None = None
    link: LinkedPath | None = None


@dataclass(frozen=True, slots=True)
class QTerm:
    """A Query Term: the path alone means "exists"; else ``op`` and ``value`` are both set."""

    path: AttrPath
    op: Op | None = None
    value: QValue | QRange | QList | Regex | None = None


@dataclass(frozen=True, slots=True)
class QAnd:
    """All items hold (``;``). Never directly nests another QAnd."""

    items: tuple[QExpr, ...]


@dataclass(frozen=True, slots=True)
class QOr:
    """One item holds (``|``). Never directly nests another QOr."""

    items: tuple[QExpr, ...]


QExpr: TypeAlias = QTerm | QAnd | QOr
Resolver: TypeAlias = Callable[[str], Mapping[str, Any] | None]
"""Looks up a linked entity by id for ``rel{...}`` terms (None: not found)."""


def _join(cls: type[QAnd] | type[QOr], items: list[QExpr]) -> QExpr:
    flat: list[QExpr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return flat[0] if len(flat) == 1 else cls(tuple(flat))


# ---------------------------------------------------------------------------------------------
# Scanning


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith("L")


def _is_term_char(ch: str) -> bool:
    return ch == "_" or unicodedata.category(ch)[0] in "LN"


_IRI_START = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*://|urn:)[^\s]")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9]{2}:?[0-9]{2})?")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\"<>\\^`{}|]+")
_IRI_NAME_STOP = frozenset('=!<>~;|()[]{},"')
_BARE_STOP = frozenset(';|(),"')


def _describe(text: str, pos: int) -> str:
    return "the end of the query" if pos >= len(text) else repr(text[pos])


class _Scanner:
    __slots__ = ("parameter", "pos", "text")

    def __init__(self, text: str, parameter: str) -> None:
        self.text = text
        self.pos = 0
        self.parameter = parameter

    def error(self, detail: str, column: int | None = None) -> QSyntaxError:
        col = self.pos if column is None else column
        if "at column" not in detail:
            detail = f"{detail} at column {col}"
        return QSyntaxError(detail, column=col, text=self.text, parameter=self.parameter)

    def unexpected(self, expected: str) -> QSyntaxError:
        return self.error(
            f"unexpected {_describe(self.text, self.pos)} at column {self.pos}; expected {expected}"
            if self.pos < len(self.text)
            else f"unexpected end of {self.parameter}; expected {expected}",
        )

    def skip_ws(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self, what: str = "an attribute name") -> str:
        text, start = self.text, self.pos
        if start >= len(text) or not _is_letter(text[start]):
            raise self.unexpected(what)
        end = start + 1
        while end < len(text) and _is_term_char(text[end]):
            end += 1
        self.pos = end
        return text[start:end]

    def json_string(self) -> str:
        """A JSON string starting at the current ``"``; decoded with the JSON rules."""
        text, start = self.text, self.pos
        end = start + 1
        while end < len(text):
            ch = text[end]
            if ch == "\\":
                end += 2
                continue
            if ch == '"':
                break
            end += 1
        if end >= len(text):
            raise self.error("unterminated string", start)
        try:
            decoded = json.loads(text[start : end + 1])
        except ValueError as exc:
            raise self.error(f"invalid string ({exc.args[0].split(':')[0]})", start) from exc
        self.pos = end + 1
        if not isinstance(decoded, str):  # pragma: no cover - a quoted JSON text is a string
            raise self.error("invalid string", start)
        return decoded


# ---------------------------------------------------------------------------------------------
# q parser


def parse_q(text: str) -> QExpr:
    """Parse an NGSI-LD Query Language expression (clause 4.9); raises :class:`QSyntaxError`."""
    if not isinstance(text, str):
        raise QSyntaxError("the query is not text", column=0, text="", parameter="q")
    sc = _Scanner(text, "q")
    if len(text) > MAX_QUERY_LENGTH:
        raise sc.error(f"the query is longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    if not text.strip():
        raise sc.error("the query is empty", 0)
    expr = _q_or(sc, 0)
    if sc.peek():
        if sc.text[sc.pos] == ")":
            raise sc.error(f"unbalanced ')' at column {sc.pos}; no '(' is open")
        raise sc.unexpected("';', '|' or the end of the query")
    return expr


def _q_or(sc: _Scanner, depth: int) -> QExpr:
    items = [_q_and(sc, depth)]
    while sc.peek() == "|":
        sc.pos += 1
        items.append(_q_and(sc, depth))
    return _join(QOr, items)


def _q_and(sc: _Scanner, depth: int) -> QExpr:
    items = [_q_primary(sc, depth)]
    while sc.peek() == ";":
        sc.pos += 1
        items.append(_q_primary(sc, depth))
    return _join(QAnd, items)


def _q_primary(sc: _Scanner, depth: int) -> QExpr:
    ch = sc.peek()
    if ch == "(":
        if depth >= MAX_DEPTH:
            raise sc.error(f"parentheses nest deeper than {MAX_DEPTH} levels")
        open_at = sc.pos
        sc.pos += 1
        expr = _q_or(sc, depth + 1)
        if sc.peek() != ")":
            if not sc.peek():
                raise sc.error(f"unbalanced '(' at column {open_at}; missing ')'", open_at)
            raise sc.unexpected("';', '|' or ')'")
        sc.pos += 1
        return expr
    return _q_term(sc)


def _q_term(sc: _Scanner) -> QTerm:
    path = _q_path(sc, 0)
    sc.skip_ws()
    text, pos = sc.text, sc.pos
    if pos >= len(text) or text[pos] in ";|)":
        return QTerm(path)
    for op in _OPS:
        if text.startswith(op, pos):
            sc.pos = pos + len(op)
            return QTerm(path, op, _q_value(sc, op))
    if text[pos] == "=":
        raise sc.error(f"'=' at column {pos} is not an operator; use '=='")
    raise sc.unexpected("an operator (==, !=, >, >=, <, <=, ~=, !~=), ';', '|' or ')'")


def _q_path(sc: _Scanner, depth: int) -> AttrPath:
    sc.skip_ws()
    text, start = sc.text, sc.pos
    if _IRI_START.match(text, start):
        end = start
        while end < len(text) and text[end] not in _IRI_NAME_STOP and not text[end].isspace():
            end += 1
        sc.pos = end
        names: tuple[str, ...] = (text[start:end],)
    else:
        parts = [sc.name()]
        while text.startswith(".", sc.pos) and not text.startswith("..", sc.pos):
            sc.pos += 1
            parts.append(sc.name("an attribute name after '.'"))
        names = tuple(parts)
    if text.startswith("{", sc.pos):
        if len(names) != 1:
            raise sc.error("a linked-entity path '{...}' follows a single Relationship name")
        if depth >= MAX_DEPTH:
            raise sc.error(f"linked-entity paths nest deeper than {MAX_DEPTH} levels")
        sc.pos += 1
        link = _q_link(sc, depth + 1)
        return AttrPath(names, link=link)
    if text.startswith("[", sc.pos):
        sc.pos += 1
        member = _q_member(sc)
        return AttrPath(names, member=member)
    return AttrPath(names)


def _q_link(sc: _Scanner, depth: int) -> LinkedPath:
    text = sc.text
    save = sc.pos
    types: list[str] = []
    # EntityType(,EntityType)*: is a type hint; otherwise the path starts right here.
    if sc.pos < len(text) and _is_letter(text[sc.pos]):
        first = sc.name("an entity type")
        if text.startswith((",", ":"), sc.pos) and not text.startswith("::", sc.pos):
            types.append(first)
            while text.startswith(",", sc.pos):
                sc.pos += 1
                types.append(sc.name("an entity type after ','"))
            if not text.startswith(":", sc.pos):
                raise sc.unexpected("':' after the entity types of a linked-entity path")
            sc.pos += 1
        else:
            sc.pos = save
    path = _q_path(sc, depth)
    if not text.startswith("}", sc.pos):
        raise sc.unexpected("'}' closing the linked-entity path")
    sc.pos += 1
    return LinkedPath(tuple(types), path)


def _q_member(sc: _Scanner) -> tuple[str, ...]:
    text = sc.text
    if text.startswith("*]", sc.pos):
        sc.pos += 2
        return ("*",)
    parts: list[str] = []
    while True:
        start = sc.pos
        end = start
        while end < len(text) and (_is_term_char(text[end]) or text[end] == "-"):
            end += 1
        if end == start:
            raise sc.unexpected("a member name inside '[...]'")
        parts.append(text[start:end])
        sc.pos = end
        if text.startswith(".", end):
            sc.pos += 1
            continue
        if text.startswith("]", end):
            sc.pos += 1
            return tuple(parts)
        raise sc.unexpected("'.' or ']' in the member path")


def _q_value(sc: _Scanner, op: Op) -> QValue | QRange | QList | Regex:
    if op in ("~=", "!~="):
        return _q_regex(sc, op)
    first_at = sc.pos
    first = _q_scalar(sc, op)
    text = sc.text
    sc.skip_ws()
    if text.startswith("..", sc.pos):
        if op not in ("==", "!="):
            raise sc.error(f"a range at column {sc.pos} is only allowed after '==' or '!='")
        if first.kind not in _COMPARABLE:
            raise sc.error("a range bound must be a number, a string or a date/time", first_at)
        sc.pos += 2
        second_at = sc.pos
        second = _q_scalar(sc, op)
        if second.kind != first.kind:
            raise sc.error(
                f"the range bounds have different types ({first.kind} and {second.kind})",
                second_at,
            )
        return QRange(first, second)
    if text.startswith(",", sc.pos):
        if op not in ("==", "!="):
            raise sc.error(f"a value list at column {sc.pos} is only allowed after '==' or '!='")
        items = [first]
        while sc.peek() == ",":
            sc.pos += 1
            items.append(_q_scalar(sc, op))
        return QList(tuple(items))
    if op in _ORDERING and first.kind not in _COMPARABLE:
        raise sc.error(f"'{op}' compares numbers, strings and dates, not a {first.kind}", first_at)
    return first


def _q_scalar(sc: _Scanner, op: Op) -> QValue:
    sc.skip_ws()
    text, start = sc.text, sc.pos
    if start >= len(text) or text[start] in ";|),":
        raise sc.unexpected(f"a value after '{op}'")
    if text[start] == '"':
        return QValue("string", sc.json_string())
    end = start
    while end < len(text):
        ch = text[end]
        if ch in _BARE_STOP or ch.isspace() or text.startswith("..", end):
            break
        end += 1
    token = text[start:end]
    if not token:
        raise sc.unexpected(f"a value after '{op}'")
    sc.pos = end
    value = _classify(token)
    if value is None:
        raise sc.error(
            f"{token!r} is not a number, a quoted string, a date/time, true/false or a URI", start
        )
    if isinstance(value, str):
        raise sc.error(f"{token!r} is {value}", start)
    return value


def _classify(token: str) -> QValue | str | None:
    """A literal, a reason (str) why a literal-looking token is invalid, or None."""
    if token in ("true", "false"):
        return QValue("boolean", token == "true")  # noqa: S105 - a JSON literal
    if _NUMBER.fullmatch(token):
        number: int | float = (
            int(token) if token.lstrip("-").isdigit() else float(token)  # JSON number
        )
        if isinstance(number, float) and number in (float("inf"), float("-inf")):
            return "a number out of range"
        return QValue("number", number)
    if _DATETIME.fullmatch(token):
        try:
            dt = datetime.fromisoformat(token)
        except ValueError:
            return "not a valid date-time"
        return QValue("datetime", dt if dt.tzinfo else dt.replace(tzinfo=UTC))
    if _DATE.fullmatch(token):
        try:
            return QValue("date", date.fromisoformat(token))
        except ValueError:
            return "not a valid date"
    if _TIME.fullmatch(token):
        try:
            t = time.fromisoformat(token)
        except ValueError:
            return "not a valid time"
        return QValue("time", t if t.tzinfo else t.replace(tzinfo=UTC))
    if _URI.fullmatch(token) or (_is_letter(token[0]) and all(map(_is_term_char, token))):
        return QValue("uri", token)
    return None


def _q_regex(sc: _Scanner, op: Op) -> Regex:
    sc.skip_ws()
    text, start = sc.text, sc.pos
    if start >= len(text) or text[start] in ";|)":
        raise sc.unexpected(f"a regular expression after '{op}'")
    if text[start] == '"':
        pattern = sc.json_string()
    else:
        end, depth, in_class = start, 0, False
        while end < len(text):
            ch = text[end]
            if ch == "\\":
                end += 2
                continue
            if in_class:
                in_class = ch != "]"
            elif ch == "[":
                in_class = True
            elif ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    break
                depth -= 1
            elif ch == ";" or (ch == "|" and depth == 0):
                break
            end += 1
        end = min(end, len(text))
        pattern = text[start:end]
        sc.pos = end
    try:
        program = SafeRegex(pattern)
    except ValueError as exc:
        raise sc.error(f"bad regular expression ({exc})", start) from exc
    return Regex(pattern, program)


# ---------------------------------------------------------------------------------------------
# Rendering (the inverse of parse_q; used by tests and to forward queries)


def render(expr: QExpr) -> str:
    """Query text that :func:`parse_q` turns back into ``expr``."""
    if isinstance(expr, QOr):
        return "|".join(render(i) for i in expr.items)
    if isinstance(expr, QAnd):
        return ";".join(f"({render(i)})" if isinstance(i, QOr) else render(i) for i in expr.items)
    text = _render_path(expr.path)
    if expr.op is None or expr.value is None:
        return text
    return text + expr.op + _render_value(expr.value)


def _render_path(path: AttrPath) -> str:
    text = ".".join(path.names)
    if path.link is not None:
        hint = ",".join(path.link.types) + ":" if path.link.types else ""
        return f"{text}{{{hint}{_render_path(path.link.path)}}}"
    if path.member is not None:
        return f"{text}[{'.'.join(path.member)}]"
    return text


def _render_value(value: QValue | QRange | QList | Regex) -> str:
    if isinstance(value, Regex):
        return json.dumps(value.pattern, ensure_ascii=False)
    if isinstance(value, QRange):
        return _render_scalar(value.low) + ".." + _render_scalar(value.high)
    if isinstance(value, QList):
        return ",".join(_render_scalar(i) for i in value.items)
    return _render_scalar(value)


def _render_scalar(value: QValue) -> str:
    v = value.value
    if value.kind == "string":
        return json.dumps(v, ensure_ascii=False)
    if value.kind == "boolean":
        return "true" if v else "false"
    if value.kind in ("datetime", "date", "time"):
        return str(v.isoformat())
    if value.kind == "number":
        return repr(v)
    return str(v)


# ---------------------------------------------------------------------------------------------
# q evaluation

_MISMATCH = object()
_LEAF_ATTRIBUTE_TYPES = frozenset(
    {
        "Property",
        "Relationship",
        "GeoProperty",
        "LanguageProperty",
        "ListProperty",
        "ListRelationship",
        "VocabProperty",
        "JsonProperty",
    }
)
_RELATIONSHIPS = frozenset({"Relationship", "ListRelationship"})


def evaluate(expr: QExpr, entity: Mapping[str, Any], *, resolve: Resolver | None = None) -> bool:
    """Whether a normalized entity matches ``expr``.

    ``resolve`` fetches linked entities for ``rel{...}`` terms; without it such terms never hold.
    """
    if isinstance(expr, QAnd):
        return all(evaluate(i, entity, resolve=resolve) for i in expr.items)
    if isinstance(expr, QOr):
        return any(evaluate(i, entity, resolve=resolve) for i in expr.items)
    return _term_holds(expr, entity, resolve)


def _instances(member: object) -> list[Mapping[str, Any]]:
    """The attribute instances a member holds: one dict, or several (multi-attribute)."""
    if isinstance(member, Mapping):
        return [member]
    if isinstance(member, list):
        return [m for m in member if isinstance(m, Mapping)]
    return []


def _targets(entity: Mapping[str, Any], names: tuple[str, ...]) -> Iterator[tuple[bool, Any]]:
    """(is_attribute, element) for each element the dotted names address."""
    current: list[tuple[bool, Any]] = [(True, i) for i in _instances(entity.get(names[0]))]
    for name in names[1:]:
        following: list[tuple[bool, Any]] = []
        for is_attr, element in current:
            if not is_attr or name not in element:
                continue
            member = element[name]
            subs = _instances(member)
            if subs and all("type" in s for s in subs):
                following.extend((True, s) for s in subs)
            elif member is not None:
                following.append((False, member))  # observedAt, unitCode, datasetId, ...
        current = following
    yield from current


def _objects(element: Mapping[str, Any]) -> list[str]:
    if element.get("type") == "ListRelationship":
        raw = element.get("objectList")
        items = raw if isinstance(raw, list) else []
        return [
            str(i.get("object")) if isinstance(i, Mapping) else str(i)
            for i in items
            if i is not None
        ]
    raw = element.get("object")
    if isinstance(raw, list):
        return [str(i) for i in raw]
    return [] if raw is None else [str(raw)]


def _value_of(is_attr: bool, element: Any, member: tuple[str, ...] | None) -> Any:
    """The target value, or _MISMATCH when the path addresses nothing."""
    if not is_attr:
        value = element
    else:
        kind = element.get("type")
        if kind == "LanguageProperty":
            lang_map = element.get("languageMap")
            if not isinstance(lang_map, Mapping):
                return _MISMATCH
            if member is None or member == ("*",):
                chosen = list(lang_map.values())
            elif len(member) == 1 and member[0] in lang_map:
                chosen = [lang_map[member[0]]]
            else:
                return _MISMATCH
            flat: list[Any] = []
            for item in chosen:
                flat.extend(item if isinstance(item, list) else (item,))
            return flat
        if kind in _RELATIONSHIPS:
            objects = _objects(element)
            if member is not None or not objects:
                return _MISMATCH
            return objects if kind == "ListRelationship" or len(objects) > 1 else objects[0]
        key = {"ListProperty": "valueList", "VocabProperty": "vocab", "JsonProperty": "json"}.get(
            str(kind), "value"
        )
        if key not in element:
            return _MISMATCH
        value = element[key]
    for name in member or ():
        if not isinstance(value, Mapping) or name not in value:
            return _MISMATCH
        value = value[name]
    return value


def _term_holds(term: QTerm, entity: Mapping[str, Any], resolve: Resolver | None) -> bool:
    path = term.path
    for is_attr, element in _targets(entity, path.names):
        if path.link is not None:
            if is_attr and element.get("type") in _RELATIONSHIPS and resolve is not None:
                inner = QTerm(path.link.path, term.op, term.value)
                for object_id in _objects(element):
                    linked = resolve(object_id)
                    if linked is None or not _type_matches(linked, path.link.types):
                        continue
                    if _term_holds(inner, linked, resolve):
                        return True
            continue
        if term.op is None or term.value is None:
            if path.member is None or _value_of(is_attr, element, path.member) is not _MISMATCH:
                return True
            continue
        if is_attr and element.get("type") in _RELATIONSHIPS and term.op not in ("==", "!="):
            continue
        target = _value_of(is_attr, element, path.member)
        if target is not _MISMATCH and _compare(term.op, term.value, target):
            return True
    return False


def _type_matches(entity: Mapping[str, Any], types: tuple[str, ...]) -> bool:
    if not types:
        return True
    declared = entity.get("type")
    declared_list = declared if isinstance(declared, list) else [declared]
    return any(t in types for t in declared_list)


def _compare(op: Op, query: QValue | QRange | QList | Regex, target: Any) -> bool:
    elements = target if isinstance(target, list) else [target]
    if isinstance(query, Regex):
        strings = [e for e in elements if isinstance(e, str)]
        if not strings:
            return False
        hit = any(query.program.search(s) for s in strings)
        return hit if op == "~=" else not hit
    if op == "==":
        return any(_equal(query, e) for e in elements)
    if op == "!=":
        return not any(_equal(query, e) for e in elements)
    if not isinstance(query, QValue):  # pragma: no cover - the parser never builds this
        return False
    return any(_ordered(op, query, e) for e in elements)


def _equal(query: QValue | QRange | QList, element: Any) -> bool:
    if isinstance(query, QList):
        return any(_equal(i, element) for i in query.items)
    if isinstance(query, QRange):
        low = _coerce(element, query.low.kind)
        return low is not _MISMATCH and bool(query.low.value <= low <= query.high.value)
    coerced = _coerce(element, query.kind)
    return coerced is not _MISMATCH and bool(coerced == query.value)


def _ordered(op: Op, query: QValue, element: Any) -> bool:
    v = _coerce(element, query.kind)
    if v is _MISMATCH:
        return False
    q = query.value
    if op == ">":
        return bool(v > q)
    if op == ">=":
        return bool(v >= q)
    if op == "<":
        return bool(v < q)
    return bool(v <= q)


def _coerce(element: Any, kind: ValueKind) -> Any:
    """``element`` as a Python value comparable with a literal of ``kind``, or _MISMATCH."""
    if kind == "number":
        if isinstance(element, int | float) and not isinstance(element, bool):
            return element
        return _MISMATCH
    if kind == "boolean":
        return element if isinstance(element, bool) else _MISMATCH
    if kind in ("string", "uri"):
        return element if isinstance(element, str) else _MISMATCH
    text = element
    if isinstance(element, Mapping):  # {"@type": "DateTime", "@value": "..."}
        typed = {"datetime": "DateTime", "date": "Date", "time": "Time"}[kind]
        if str(element.get("@type", "")).rsplit("#", 1)[-1].rsplit("/", 1)[-1] != typed:
            return _MISMATCH
        text = element.get("@value")
    if not isinstance(text, str):
        return _MISMATCH
    try:
        if kind == "datetime":
            if "T" not in text:
                return _MISMATCH
            dt = datetime.fromisoformat(text)
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        if kind == "date":
            return date.fromisoformat(text) if _DATE.fullmatch(text) else _MISMATCH
        t = time.fromisoformat(text)
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    except ValueError:
        return _MISMATCH


# ---------------------------------------------------------------------------------------------
# scopeQ (clause 4.19)


@dataclass(frozen=True, slots=True)
class ScopePattern:
    """``/a/+/c`` (``+`` one level) with ``descendants`` for a trailing ``/#``."""

    levels: tuple[str, ...]
    descendants: bool = False


@dataclass(frozen=True, slots=True)
class AnyScope:
    """``/#``: any entity with at least one scope."""


@dataclass(frozen=True, slots=True)
class ScopeAnd:
    items: tuple[ScopeExpr, ...]


@dataclass(frozen=True, slots=True)
class ScopeOr:
    items: tuple[ScopeExpr, ...]


ScopeExpr: TypeAlias = ScopePattern | AnyScope | ScopeAnd | ScopeOr


def parse_scope_q(text: str) -> ScopeExpr:
    """Parse a Scope Query (clause 4.19): ``;`` and, ``|`` or ``,`` or, parentheses nest."""
    sc = _Scanner(text if isinstance(text, str) else "", "scopeQ")
    if not isinstance(text, str) or not text.strip():
        raise sc.error("the scope query is empty", 0)
    if len(text) > MAX_QUERY_LENGTH:
        raise sc.error(f"the query is longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    expr = _scope_or(sc, 0)
    if sc.peek():
        if sc.text[sc.pos] == ")":
            raise sc.error(f"unbalanced ')' at column {sc.pos}; no '(' is open")
        raise sc.unexpected("';', '|', ',' or the end of the scope query")
    return expr


def _scope_or(sc: _Scanner, depth: int) -> ScopeExpr:
    items = [_scope_and(sc, depth)]
    while sc.peek() in ("|", ","):
        sc.pos += 1
        items.append(_scope_and(sc, depth))
    return items[0] if len(items) == 1 else ScopeOr(_flatten_scope(ScopeOr, items))


def _scope_and(sc: _Scanner, depth: int) -> ScopeExpr:
    items = [_scope_primary(sc, depth)]
    while sc.peek() == ";":
        sc.pos += 1
        items.append(_scope_primary(sc, depth))
    return items[0] if len(items) == 1 else ScopeAnd(_flatten_scope(ScopeAnd, items))


def _flatten_scope(
    cls: type[ScopeAnd] | type[ScopeOr], items: list[ScopeExpr]
) -> tuple[ScopeExpr, ...]:
    flat: list[ScopeExpr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return tuple(flat)


def _scope_primary(sc: _Scanner, depth: int) -> ScopeExpr:
    ch = sc.peek()
    if ch == "(":
        if depth >= MAX_DEPTH:
            raise sc.error(f"parentheses nest deeper than {MAX_DEPTH} levels")
        open_at = sc.pos
        sc.pos += 1
        expr = _scope_or(sc, depth + 1)
        if sc.peek() != ")":
            if not sc.peek():
                raise sc.error(f"unbalanced '(' at column {open_at}; missing ')'", open_at)
            raise sc.unexpected("';', '|', ',' or ')'")
        sc.pos += 1
        return expr
    if ch != "/":
        raise sc.unexpected("a scope starting with '/' or '('")
    text = sc.text
    if text.startswith("/#", sc.pos):
        sc.pos += 2
        return AnyScope()
    levels: list[str] = []
    while text.startswith("/", sc.pos):
        sc.pos += 1
        if text.startswith("#", sc.pos):
            sc.pos += 1
            return ScopePattern(tuple(levels), descendants=True)
        if text.startswith("+", sc.pos):
            sc.pos += 1
            levels.append("+")
        else:
            levels.append(sc.name("a scope level (a letter, then letters, digits or '_')"))
    return ScopePattern(tuple(levels))


def _entity_scopes(entity: Mapping[str, Any]) -> list[tuple[str, ...]]:
    raw = entity.get("scope")
    if isinstance(raw, Mapping):  # tolerate {"type": "Property", "value": ...}
        raw = raw.get("value")
    items = raw if isinstance(raw, list) else [raw]
    return [tuple(s.strip("/").split("/")) for s in items if isinstance(s, str) and s.strip("/")]


def _scope_matches(pattern: ScopePattern, scope: tuple[str, ...]) -> bool:
    levels = pattern.levels
    if len(scope) < len(levels) or (len(scope) > len(levels) and not pattern.descendants):
        return False
    return all(p in ("+", s) for p, s in zip(levels, scope, strict=False))


def evaluate_scope(expr: ScopeExpr, entity: Mapping[str, Any]) -> bool:
    """Whether the entity's ``scope`` member (a string or a list of them) satisfies ``expr``."""
    return _scope_holds(expr, _entity_scopes(entity))


def _scope_holds(expr: ScopeExpr, scopes: list[tuple[str, ...]]) -> bool:
    if isinstance(expr, ScopeAnd):
        return all(_scope_holds(i, scopes) for i in expr.items)
    if isinstance(expr, ScopeOr):
        return any(_scope_holds(i, scopes) for i in expr.items)
    if isinstance(expr, AnyScope):
        return bool(scopes)
    return any(_scope_matches(expr, s) for s in scopes)


# ---------------------------------------------------------------------------------------------
# attrs and pick/omit (clause 4.21)


def parse_attrs(text: str) -> list[str]:
    """``attrs``: comma-separated attribute names (or absolute IRIs), duplicates dropped."""
    sc = _Scanner(text if isinstance(text, str) else "", "attrs")
    if not isinstance(text, str) or not text.strip():
        raise sc.error("the attribute list is empty", 0)
    if len(text) > MAX_QUERY_LENGTH:
        raise sc.error(f"the list is longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    names: list[str] = []
    while True:
        sc.skip_ws()
        names.append(_projection_name(sc))
        if not sc.peek():
            break
        if sc.text[sc.pos] != ",":
            raise sc.unexpected("',' or the end of the list")
        sc.pos += 1
    return list(dict.fromkeys(names))


def _projection_name(sc: _Scanner) -> str:
    text, start = sc.text, sc.pos
    if _IRI_START.match(text, start):
        end = start
        while end < len(text) and text[end] not in _IRI_NAME_STOP and not text[end].isspace():
            end += 1
        sc.pos = end
        return text[start:end]
    return sc.name()


@dataclass(frozen=True, slots=True)
class ProjectionTerm:
    """One projected member; ``linked`` projects the entity a Relationship inlines."""

    name: str
    linked: tuple[ProjectionTerm, ...] = ()


def parse_projection(text: str, *, parameter: str = "pick") -> tuple[ProjectionTerm, ...]:
    """``pick``/``omit`` (clause 4.21): names separated by ``,`` or ``|``, ``rel{a,b}`` nests."""
    sc = _Scanner(text if isinstance(text, str) else "", parameter)
    if not isinstance(text, str) or not text.strip():
        raise sc.error(f"the {parameter} list is empty", 0)
    if len(text) > MAX_QUERY_LENGTH:
        raise sc.error(f"the list is longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    terms = _projection_list(sc, 0)
    if sc.peek():
        raise sc.unexpected("',', '|' or the end of the list")
    return terms


def _projection_list(sc: _Scanner, depth: int) -> tuple[ProjectionTerm, ...]:
    terms: list[ProjectionTerm] = []
    while True:
        sc.skip_ws()
        name = _projection_name(sc)
        linked: tuple[ProjectionTerm, ...] = ()
        if sc.peek() == "{":
            if depth >= MAX_DEPTH:
                raise sc.error(f"braces nest deeper than {MAX_DEPTH} levels")
            sc.pos += 1
            linked = _projection_list(sc, depth + 1)
            if sc.peek() != "}":
                raise sc.unexpected("'}'")
            sc.pos += 1
        terms.append(ProjectionTerm(name, linked))
        if sc.peek() not in (",", "|"):
            return tuple(terms)
        sc.pos += 1


_ALWAYS_KEPT = frozenset({"@context"})


def project(
    entity: Mapping[str, Any],
    *,
    pick: Sequence[str | ProjectionTerm] | None = None,
    omit: Sequence[str | ProjectionTerm] | None = None,
) -> dict[str, Any]:
    """A copy of ``entity`` with only the ``pick`` members, or without the ``omit`` ones.

    Members are entity members as the API shows them (``id``, ``type``, ``scope`` and
    attribute names); ``@context`` is always kept. ``rel{a}`` projects the entity inlined in
    the Relationship ``rel`` (its ``entity`` member, linked entity retrieval 4.5.23). Giving
    both ``pick`` and ``omit`` is a :class:`QueryError` (they are mutually exclusive).
    """
    if pick is not None and omit is not None:
        raise QueryError("pick and omit cannot be used together")
    if pick is None and omit is None:
        return dict(entity)
    chosen = [t if isinstance(t, ProjectionTerm) else ProjectionTerm(t) for t in pick or omit or ()]
    by_name = {t.name: t for t in chosen}
    result: dict[str, Any] = {}
    for key, member in entity.items():
        term = by_name.get(key)
        if key in _ALWAYS_KEPT:
            result[key] = member
        elif pick is not None and term is not None:
            result[key] = _project_linked(member, term, picking=True)
        elif omit is not None and (term is None or term.linked):
            result[key] = member if term is None else _project_linked(member, term, picking=False)
    return result


def _project_linked(member: Any, term: ProjectionTerm, *, picking: bool) -> Any:
    if not term.linked:
        return member
    instances = member if isinstance(member, list) else [member]
    out: list[Any] = []
    for instance in instances:
        if isinstance(instance, Mapping) and isinstance(instance.get("entity"), Mapping):
            linked = instance["entity"]
            projected = (
                project(linked, pick=term.linked) if picking else project(linked, omit=term.linked)
            )
            out.append({**instance, "entity": projected})
        else:
            out.append(instance)
    return out if isinstance(member, list) else out[0]
