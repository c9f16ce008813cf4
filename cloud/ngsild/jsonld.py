"""JSON-LD term expansion and compaction for NGSI-LD payloads, by dictionary lookup.

NGSI-LD only needs JSON-LD for names: entity types, attribute and
sub-attribute names, and the values of ``@vocab``-typed members (``vocab``,
``objectType``...). Running the full JSON-LD expansion algorithm per entity
costs milliseconds; instead an ``ActiveContext`` is built ONCE per distinct
``@context`` (the JSON-LD 1.1 context-processing rules for what NGSI-LD
payloads use) and every name is then a dict lookup, memoised.

The core context is always applied LAST, after the user's contexts, so its
(protected) terms and its ``@vocab`` (``https://uri.etsi.org/ngsi-ld/default-context/``)
always win: a term that no context defines expands under the default vocab,
and ``location``/``Property``/``observedAt`` mean the same thing in every request.

Supported: term definitions (string and expanded), prefixes and compact IRIs
(JSON-LD 1.1 prefix flag, ``@prefix``), ``@vocab`` (also a compact IRI or term),
keyword aliases (``id`` -> ``@id``), ``null`` terms and ``null`` contexts,
``@type`` coercion to ``@id``/``@vocab``/``@json``/IRIs, ``@container``,
``@reverse`` (recorded, not applied). Ignored (no effect on NGSI-LD names):
``@version``, ``@protected`` (the core context comes last, so it cannot be
overridden anyway), ``@language``, ``@direction``, ``@propagate``,
``@base``, scoped contexts (a term's ``@context``). Refused with
``ContextError``: ``@import`` and an empty ``@vocab``.

Values are untouched except ``@vocab``-typed members. ``object``,
``objectList`` and ``datasetId`` are ``@id``-typed: NGSI-LD requires them to
be absolute URIs, and an absolute URI is unchanged by JSON-LD IRI expansion,
so they are left as sent. Entity ``id``, ``scope`` and the system timestamps
keep their names; every other entity member is an attribute and is expanded.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ldt.cloud.errors import CloudError

__all__ = [
    "ATTRIBUTE_TYPES",
    "CORE_CONTEXT_ALIAS",
    "CORE_CONTEXT_URL",
    "CORE_CONTEXT_URLS",
    "DEFAULT_VOCAB",
    "ActiveContext",
    "ContextError",
    "ContextProblem",
    "TermDefinition",
    "compact_entity",
    "compact_iri",
    "core_context",
    "core_document",
    "expand_entity",
    "expand_term",
    "expand_terms",
    "stored_entity",
]

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
CORE_CONTEXT_ALIAS = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
CORE_CONTEXT_URLS = frozenset(
    {
        CORE_CONTEXT_ALIAS,
        *(
            f"{scheme}://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context{version}.jsonld"
            for scheme in ("https", "http")
            for version in ("", "-v1.3", "-v1.4", "-v1.5", "-v1.6", "-v1.7", "-v1.8", "-v1.9")
        ),
    }
)
"""Every URL ETSI has published the core @context at (unversioned, v1.3 ... v1.9). They all
resolve offline to the shipped v1.9 document, a superset of the earlier ones: clients such as
FIWARE IoT Agents name an older version, and a broker with no network must still know it."""
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
_CORE_FILE = "ngsi-ld-core-context-v1.9.jsonld"

ContextProblem = Literal[
    "LdContextNotAvailable", "InvalidRequest", "BadRequestData", "ResourceNotFound", "InternalError"
]


class ContextError(CloudError):
    """A @context could not be fetched, processed or found.

    ``problem`` is the NGSI-LD error type an API answers with
    (``LdContextNotAvailable``: a remote context cannot be retrieved;
    ``InvalidRequest``/``BadRequestData``: a malformed context or payload).
    """

    def __init__(self, problem: ContextProblem, detail: str) -> None:
        self.problem: ContextProblem = problem
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class TermDefinition:
    """One term of an active context: its IRI (None: the term maps to null) and coercions."""

    iri: str | None
    type: str | None = None
    container: tuple[str, ...] = ()
    prefix: bool = False
    reverse: bool = False


_KEYWORDS = frozenset(
    {
        "@base", "@container", "@context", "@direction", "@graph", "@id", "@import",
        "@included", "@index", "@json", "@language", "@list", "@nest", "@none",
        "@prefix", "@propagate", "@protected", "@reverse", "@set", "@type", "@value",
        "@version", "@vocab",
    }
)  # fmt: skip
_GEN_DELIMS = frozenset(":/?#[]@")
_MISSING = object()
_MEMO_LIMIT = 8192


def _is_absolute(value: str) -> bool:
    scheme, colon, _ = value.partition(":")
    return bool(colon) and scheme.isascii() and scheme[:1].isalpha()


class _Processor:
    """Applies local contexts, in order, to a mutable term map (JSON-LD 1.1 context processing)."""

    def __init__(self) -> None:
        self.terms: dict[str, TermDefinition] = {}
        self.vocab: str | None = None

    def apply(self, local: Mapping[str, Any] | None) -> None:
        if local is None:  # a null context resets everything before it
            self.terms = {}
            self.vocab = None
            return
        if "@import" in local:
            raise ContextError("InvalidRequest", "@import in a @context is not supported")
        defined: dict[str, bool] = {}
        if "@vocab" in local:
            vocab = local["@vocab"]
            if vocab is None:
                self.vocab = None
            elif not isinstance(vocab, str) or not vocab:
                raise ContextError(
                    "InvalidRequest", f"@vocab must be an IRI, got {vocab!r} (empty is unsupported)"
                )
            else:
                expanded = self._expand(vocab, local, defined)
                if expanded is None or not _is_absolute(expanded):
                    raise ContextError("InvalidRequest", f"@vocab {vocab!r} is not an absolute IRI")
                self.vocab = expanded
        for term in local:
            if term.startswith("@"):
                continue  # keywords, and keyword-looking terms JSON-LD 1.1 ignores
            self._define(term, local, defined)

    def _define(self, term: str, local: Mapping[str, Any], defined: dict[str, bool]) -> None:
        state = defined.get(term)
        if state is True:
            return
        if state is False:
            raise ContextError("InvalidRequest", f"@context term {term!r} is defined cyclically")
        defined[term] = False
        value = local[term]
        if value is None:
            self.terms[term] = TermDefinition(None)
            defined[term] = True
            return
        simple = isinstance(value, str)
        if simple:
            value = {"@id": value}
        elif not isinstance(value, Mapping):
            raise ContextError(
                "InvalidRequest", f"@context term {term!r} must map to a string or object"
            )
        reverse = False
        if "@reverse" in value:
            target = value["@reverse"]
            if not isinstance(target, str):
                raise ContextError("InvalidRequest", f"@reverse of {term!r} must be a string")
            iri = self._expand(target, local, defined)
            reverse = True
        elif "@id" in value and value["@id"] != term:
            target = value["@id"]
            if target is None:
                iri = None
            elif not isinstance(target, str):
                raise ContextError("InvalidRequest", f"@id of term {term!r} must be a string")
            else:
                iri = self._expand(target, local, defined)
        elif ":" in term[1:]:
            iri = self._expand(term, local, defined)
        elif self.vocab is not None:
            iri = self.vocab + term
        else:
            raise ContextError(
                "InvalidRequest", f"@context term {term!r} has no @id and there is no @vocab"
            )
        coercion = value.get("@type")
        if coercion is not None:
            if not isinstance(coercion, str):
                raise ContextError("InvalidRequest", f"@type of term {term!r} must be a string")
            if coercion not in {"@id", "@vocab", "@json", "@none"}:
                coercion = self._expand(coercion, local, defined)
        container = value.get("@container")
        if container is None:
            containers: tuple[str, ...] = ()
        elif isinstance(container, str):
            containers = (container,)
        elif isinstance(container, list) and all(isinstance(c, str) for c in container):
            containers = tuple(container)
        else:
            raise ContextError("InvalidRequest", f"@container of term {term!r} is malformed")
        if "@prefix" in value:
            prefix = value["@prefix"] is True
        else:
            prefix = (
                simple
                and iri is not None
                and ":" not in term
                and "/" not in term
                and (iri[-1:] in _GEN_DELIMS or iri.startswith("_:"))
            )
        self.terms[term] = TermDefinition(iri, coercion, containers, prefix, reverse)
        defined[term] = True

    def _expand(
        self, value: str, local: Mapping[str, Any] | None, defined: dict[str, bool]
    ) -> str | None:
        """IRI expansion with vocab=True while a local context is being processed."""
        if value in _KEYWORDS:
            return value
        if local is not None and value in local and defined.get(value) is not True:
            self._define(value, local, defined)
        td = self.terms.get(value)
        if td is not None:
            return td.iri
        prefix, colon, suffix = value.partition(":")
        if colon and prefix:
            if prefix == "_" or suffix.startswith("//"):
                return value
            if local is not None and prefix in local and defined.get(prefix) is not True:
                self._define(prefix, local, defined)
            ptd = self.terms.get(prefix)
            if ptd is not None and ptd.iri is not None and ptd.prefix:
                return ptd.iri + suffix
            return value
        if self.vocab is not None:
            return self.vocab + value
        return value


class ActiveContext:
    """Processed term maps of one ``@context`` (user contexts, then the core): immutable.

    ``expand``/``compact`` are memoised dict lookups, safe to call per entity.
    """

    __slots__ = ("_compact_memo", "_expand_memo", "_inverse", "_prefixes", "terms", "vocab")

    def __init__(self, terms: Mapping[str, TermDefinition], vocab: str | None) -> None:
        self.terms: Mapping[str, TermDefinition] = dict(terms)
        self.vocab = vocab
        inverse: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        # term selection: the shortest term, then the least (JSON-LD's inverse context)
        for term in sorted(self.terms, key=lambda t: (len(t), t)):
            td = self.terms[term]
            if td.iri is None or td.reverse:
                continue
            inverse.setdefault(td.iri, term)
            if td.prefix:
                prefixes.append((td.iri, term))
        self._inverse = inverse
        self._prefixes = prefixes
        self._expand_memo: dict[str, str | None] = {}
        self._compact_memo: dict[str, str] = {}

    @classmethod
    def build(
        cls, locals_: Iterable[Mapping[str, Any] | None], *, core: bool = True
    ) -> ActiveContext:
        """Process local contexts in order, then the core context (unless ``core=False``).

        Raises ``ContextError`` (InvalidRequest) for a malformed context.
        """
        proc = _Processor()
        for local in locals_:
            if local is not None and not isinstance(local, Mapping):
                raise ContextError("InvalidRequest", "a @context entry must be an object or a URL")
            proc.apply(local)
        if core:
            proc.apply(_core_local())
        return cls(proc.terms, proc.vocab)

    def expand(self, term: str) -> str | None:
        """A name (term, compact IRI or IRI) as an absolute IRI; None if the term maps to null."""
        hit = self._expand_memo.get(term, _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[return-value]
        td = self.terms.get(term)
        result: str | None
        if td is not None:
            result = td.iri
        elif term in _KEYWORDS:
            result = term
        else:
            prefix, colon, suffix = term.partition(":")
            if colon and prefix:
                ptd = self.terms.get(prefix)
                if (
                    prefix != "_"
                    and not suffix.startswith("//")
                    and ptd is not None
                    and ptd.iri is not None
                    and ptd.prefix
                ):
                    result = ptd.iri + suffix
                else:
                    result = term
            elif self.vocab is not None:
                result = self.vocab + term
            else:
                result = term
        if len(self._expand_memo) >= _MEMO_LIMIT:
            self._expand_memo.clear()
        self._expand_memo[term] = result
        return result

    def compact(self, iri: str) -> str:
        """The shortest name for ``iri`` here: a term, a vocab-relative name, a CURIE, or itself."""
        hit = self._compact_memo.get(iri)
        if hit is not None:
            return hit
        result = self._inverse.get(iri)
        if result is None:
            result = self._compact_uncached(iri)
        if len(self._compact_memo) >= _MEMO_LIMIT:
            self._compact_memo.clear()
        self._compact_memo[iri] = result
        return result

    def _compact_uncached(self, iri: str) -> str:
        vocab = self.vocab
        if vocab is not None and iri.startswith(vocab) and len(iri) > len(vocab):
            suffix = iri[len(vocab) :]
            if suffix not in self.terms and ":" not in suffix:
                return suffix
        best: str | None = None
        for prefix_iri, term in self._prefixes:
            if len(iri) > len(prefix_iri) and iri.startswith(prefix_iri):
                candidate = f"{term}:{iri[len(prefix_iri) :]}"
                td = self.terms.get(candidate)
                if td is not None and td.iri != iri:
                    continue  # would read back as a different term
                if best is None or (len(candidate), candidate) < (len(best), best):
                    best = candidate
        return best if best is not None else iri


@functools.cache
def core_document() -> Mapping[str, Any]:
    """The core context document (v1.9) shipped in the package: no network needed."""
    raw = importlib.resources.files("ldt.cloud.ngsild").joinpath("data", _CORE_FILE).read_bytes()
    doc: Mapping[str, Any] = orjson.loads(raw)
    return doc


def _core_local() -> Mapping[str, Any]:
    local: Mapping[str, Any] = core_document()["@context"]
    return local


@functools.cache
def core_context() -> ActiveContext:
    """The active context of a request without a user @context (the core alone)."""
    return ActiveContext.build(())


# --- NGSI-LD documents ---------------------------------------------------------------

ATTRIBUTE_TYPES = frozenset(
    {
        "Property", "Relationship", "GeoProperty", "LanguageProperty", "VocabProperty",
        "JsonProperty", "ListProperty", "ListRelationship",
    }
)  # fmt: skip
# members of an attribute that are not sub-attributes (their names are never expanded)
_ATTRIBUTE_MEMBERS = frozenset(
    {
        "type", "value", "object", "objectList", "objectType", "languageMap", "vocab", "json",
        "valueList", "observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt",
        "deletedAt", "instanceId", "previousValue", "previousObject", "previousObjectList",
        "previousVocab", "previousLanguageMap", "previousJson", "previousValueList", "lang",
        "entity", "valueType", "@context",
    }
)  # fmt: skip
_VALUE_MEMBERS = frozenset(
    {"value", "object", "objectList", "languageMap", "vocab", "json", "valueList"}
)
_VOCAB_MEMBERS = frozenset({"vocab", "previousVocab", "objectType", "valueType"})
_ENTITY_KEPT = frozenset({"id", "scope", "createdAt", "modifiedAt", "deletedAt"})


def _attribute_type(node: Mapping[str, Any], ctx: ActiveContext) -> str | None:
    """The node's NGSI-LD attribute type (short form), or None if it is not an attribute node."""
    kind = node.get("type")
    if kind is None:
        return "" if any(m in node for m in _VALUE_MEMBERS) else None
    if kind in ATTRIBUTE_TYPES:
        return kind  # type: ignore[no-any-return]
    if isinstance(kind, str):  # e.g. "ngsi-ld:Property"; "Point" (concise GeoJSON) is a value
        iri = ctx.expand(kind)
        short = core_context().compact(iri) if iri is not None else None
        if short in ATTRIBUTE_TYPES:
            return short
    return None


def _map_vocab(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [fn(v) if isinstance(v, str) else v for v in value]
    return value


def _expand_vocab_value(value: str, ctx: ActiveContext) -> str:
    iri = ctx.expand(value)
    return value if iri is None else iri


def _expand_attr(value: Any, ctx: ActiveContext) -> Any:
    if isinstance(value, dict):
        kind = _attribute_type(value, ctx)
        if kind is None:
            return value
        out: dict[str, Any] = {}
        for key, member in value.items():
            if key in _ATTRIBUTE_MEMBERS:
                if key == "@context":
                    continue
                if key == "type":
                    out[key] = kind
                elif key in _VOCAB_MEMBERS:
                    out[key] = _map_vocab(member, lambda v: _expand_vocab_value(v, ctx))
                else:
                    out[key] = member
                continue
            iri = ctx.expand(key)
            if iri is None:
                continue  # a term mapped to null drops the member, as in JSON-LD
            if iri in out:
                raise ContextError(
                    "BadRequestData", f"sub-attributes {key!r} and another name are both <{iri}>"
                )
            out[iri] = _expand_attr(member, ctx)
        return out
    if isinstance(value, list):
        return [_expand_attr(v, ctx) if isinstance(v, dict) else v for v in value]
    return value


def _compact_attr(value: Any, ctx: ActiveContext) -> Any:
    if isinstance(value, dict):
        if _attribute_type(value, ctx) is None:
            return value
        out: dict[str, Any] = {}
        for key, member in value.items():
            if key in _ATTRIBUTE_MEMBERS:
                out[key] = _map_vocab(member, ctx.compact) if key in _VOCAB_MEMBERS else member
            else:
                out[ctx.compact(key)] = _compact_attr(member, ctx)
        return out
    if isinstance(value, list):
        return [_compact_attr(v, ctx) if isinstance(v, dict) else v for v in value]
    return value


def _types(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [fn(v) for v in value]
    raise ContextError("BadRequestData", f"entity type must be a string or strings, got {value!r}")


def expand_entity(doc: Mapping[str, Any], ctx: ActiveContext) -> dict[str, Any]:
    """An NGSI-LD entity (normalized or concise) with its type and attribute names as IRIs.

    ``@context`` is dropped; ``@id``/``@type`` become ``id``/``type``. Raises
    ``ContextError`` (BadRequestData) if two names expand to the same attribute.
    """
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _ENTITY_KEPT:
            out[key] = value
            continue
        if key == "@context":
            continue
        iri = ctx.expand(key)
        if iri is None:
            continue
        if iri == "@id":
            out["id"] = value
        elif iri == "@type":
            out["type"] = _types(value, lambda t: _expand_vocab_value(t, ctx))
        elif iri in out:
            raise ContextError(
                "BadRequestData", f"attributes {key!r} and another name are both <{iri}>"
            )
        else:
            out[iri] = _expand_attr(value, ctx)
    return out


def compact_entity(doc: Mapping[str, Any], ctx: ActiveContext) -> dict[str, Any]:
    """The inverse of ``expand_entity``: IRIs back to the shortest names ``ctx`` has for them."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _ENTITY_KEPT:
            out[key] = value
        elif key == "type":
            out["type"] = _types(value, ctx.compact)
        else:
            out[ctx.compact(key)] = _compact_attr(value, ctx)
    return out


_PLAIN_MEMBERS = _ATTRIBUTE_MEMBERS - _VOCAB_MEMBERS - {"@context"}


def stored_entity(doc: Mapping[str, Any], ctx: ActiveContext) -> dict[str, Any]:
    """``compact_entity(expand_entity(doc, ctx), core_context())`` in one pass.

    The spelling entities are stored in (``entity_ops``). Every write goes
    through it, and nearly every attribute instance is plain: a known type and
    only core members whose values no context changes. Such an instance comes
    out equal to itself, so it is kept as it is (not copied twice); anything
    else (sub-attributes, vocab members, a type to expand) takes the two-step
    path. Raises ``ContextError`` (BadRequestData) as ``expand_entity`` does.
    """
    core = core_context()
    out: dict[str, Any] = {}
    iris: set[str] = set()
    for key, value in doc.items():
        if key in _ENTITY_KEPT:
            out[key] = value
            continue
        if key == "@context":
            continue
        iri = ctx.expand(key)
        if iri is None:
            continue
        if iri == "@id":
            out["id"] = value
            continue
        if iri == "@type":
            expanded = _types(value, lambda t: _expand_vocab_value(t, ctx))
            out["type"] = _types(expanded, core.compact)
            continue
        if iri in iris:
            raise ContextError(
                "BadRequestData", f"attributes {key!r} and another name are both <{iri}>"
            )
        iris.add(iri)
        if (
            isinstance(value, dict)
            and value.get("type") in ATTRIBUTE_TYPES
            and _PLAIN_MEMBERS.issuperset(value)
        ):
            out[core.compact(iri)] = value
        else:
            out[core.compact(iri)] = _compact_attr(_expand_attr(value, ctx), core)
    return out


def expand_term(term: str, ctx: ActiveContext) -> str | None:
    """An entity type or attribute name from a query (``type=``, ``attrs=``, ``q``) as an IRI."""
    return ctx.expand(term)


def expand_terms(terms: str | Sequence[str], ctx: ActiveContext) -> list[str]:
    """A comma-separated list (``attrs=a,b``) or names as IRIs (null terms dropped)."""
    names = terms.split(",") if isinstance(terms, str) else terms
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            raise ContextError("BadRequestData", f"empty name in {terms!r}")
        iri = ctx.expand(name)
        if iri is not None:
            out.append(iri)
    return out


def compact_iri(iri: str, ctx: ActiveContext) -> str:
    """An IRI as the shortest name ``ctx`` has for it (a term, CURIE, or the IRI itself)."""
    return ctx.compact(iri)
