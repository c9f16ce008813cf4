"""Where @contexts come from: the shipped core, a preload folder, the network, and clients.

A ``ContextStore`` resolves a request's ``@context`` (URLs and inline
objects) to an ``ActiveContext``, cached per distinct context (LRU), so the
hot path of an upsert is a dict lookup. Sources, in order:

- the core context v1.9 (and its unversioned alias), shipped in the package;
- a preload folder (``ldt cloud serve --contexts DIR``): ``DIR/index.json``
  maps context URL -> file name, validated when the store opens, never fetched;
- contexts hosted by this broker (``/ngsi-ld/v1/jsonldContexts``, kinds
  ``Hosted`` and ``ImplicitlyCreated``, per tenant), kept in SQLite;
- remote URLs on hosts the operator allowed (``--contexts-allow HOST[,HOST...]``, ``*``
  for any public host), fetched with httpx under a deadline and a size limit, then
  cached (kind ``Cached``) in memory and in SQLite, shared by all tenants.

Why an allowlist: a client's ``Link`` header or ``@context`` names a URL, and fetching it
lets any client make the broker connect wherever it wants (SSRF): to a database port on
loopback, a cloud metadata endpoint, a service on the private network, with the answer
served back under ``/jsonldContexts`` and the error telling an open port from a closed one.
So the broker fetches only from named hosts; a host's addresses must be public (loopback,
link-local, private, multicast and reserved ranges are refused) unless that host is named
explicitly; redirects are followed by hand, each hop checked the same way; and a failure
says "not available", never why (the reason goes to the log).

Usage counters (``numberOfHits``, ``lastUsage``) live in memory and are
written to SQLite when the store closes: counting a hit must not cost a disk
write per request.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from ldt.cloud.ngsild.endpoint_policy import non_public
from ldt.cloud.ngsild.jsonld import (
    CORE_CONTEXT_URL,
    CORE_CONTEXT_URLS,
    ActiveContext,
    ContextError,
    core_context,
    core_document,
)

__all__ = [
    "CONTEXTS_DIRNAME",
    "HOSTED_PATH",
    "ContextEntry",
    "ContextError",
    "ContextKind",
    "ContextStore",
    "ContextValue",
    "check_context_value",
]

_log = logging.getLogger("ldt.cloud.contexts")

ContextKind = Literal["Hosted", "Cached", "ImplicitlyCreated"]
ContextValue = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] | None
Origin = Literal["core", "preload", "remote", "hosted"]

HOSTED_PATH = "/ngsi-ld/v1/jsonldContexts/"
CONTEXTS_DIRNAME = "jsonld-contexts"  # under the cloud's data folder
DB_FILENAME = "contexts.db"
MAX_CONTEXT_BYTES = 1 << 20
MAX_DEPTH = 8
MAX_REDIRECTS = 5
ANY_PUBLIC_HOST = "*"
"""In ``allow_hosts``: any host whose addresses are all public."""
ACTIVE_CACHE_SIZE = 256
_CORE_ID = "ngsi-ld-core-context-v1.9"
_ACCEPT = "application/ld+json, application/json;q=0.9"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jsonld_contexts (
    tenant TEXT NOT NULL,
    local_id TEXT NOT NULL,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    last_usage_ms INTEGER,
    hits INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, local_id)
)
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class ContextEntry:
    """One @context this broker knows: what ``/jsonldContexts`` lists and serves.

    ``url`` is the remote URL, or for Hosted/ImplicitlyCreated entries the
    path ``/ngsi-ld/v1/jsonldContexts/<local_id>`` (the API prefixes its own
    scheme and host). ``body`` is the whole document: ``{"@context": ...}``.
    """

    local_id: str
    url: str
    kind: ContextKind
    tenant: str
    body: Mapping[str, Any]
    created_at_ms: int
    origin: Origin
    last_usage_ms: int | None = None
    hits: int = 0
    dirty: bool = False


def check_context_value(value: Any) -> None:
    """Refuse a ``@context`` that is not a URL, an object, or an array of those.

    Inline objects are processed (not their URLs) so a malformed term fails
    here. Raises ``ContextError`` (BadRequestData).
    """
    items = value if isinstance(value, list) else [value]
    inline: list[Mapping[str, Any] | None] = []
    for item in items:
        if isinstance(item, str):
            if not item:
                raise ContextError("BadRequestData", "a @context URL must not be empty")
        elif isinstance(item, dict):
            inline.append(item)
        elif item is None and not isinstance(value, list):
            inline.append(None)
        else:
            raise ContextError(
                "BadRequestData",
                f"@context must be a URL, an object or an array of those, got {item!r}",
            )
    try:
        ActiveContext.build(inline)
    except ContextError as exc:
        raise ContextError("BadRequestData", exc.detail) from exc


def _parse_document(raw: bytes, source: str) -> Mapping[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContextError("InvalidRequest", f"@context {source} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or "@context" not in doc:
        raise ContextError(
            "InvalidRequest", f'@context {source} is not a JSON-LD context (no "@context" member)'
        )
    try:
        check_context_value(doc["@context"])
    except ContextError as exc:
        raise ContextError("InvalidRequest", f"@context {source}: {exc.detail}") from exc
    return doc


class _RefusedError(Exception):
    """Why a remote @context was not fetched (for the log only)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _is_core_url(url: str) -> bool:
    """ETSI's core @context, any version: never deletable, even when given as a preload."""
    parts = urlsplit(url)
    return parts.hostname == "uri.etsi.org" and parts.path.startswith(
        "/ngsi-ld/v1/ngsi-ld-core-context"
    )


def _load_preload(folder: Path) -> dict[str, Mapping[str, Any]]:
    """``folder/index.json`` (URL -> file name) and its files, all validated now."""
    index_path = folder / "index.json"
    try:
        raw = index_path.read_bytes()
    except OSError as exc:
        raise ContextError("InternalError", f"cannot read {index_path}: {exc.strerror}") from exc
    try:
        index = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContextError("InternalError", f"{index_path} is not valid JSON: {exc}") from exc
    if not isinstance(index, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in index.items()
    ):
        raise ContextError(
            "InternalError", f"{index_path} must be an object mapping context URL -> file name"
        )
    root = folder.resolve()
    docs: dict[str, Mapping[str, Any]] = {}
    for url, name in index.items():
        path = (folder / name).resolve()
        if not path.is_relative_to(root):
            raise ContextError("InternalError", f"{index_path}: {name!r} is outside {folder}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ContextError(
                "InternalError", f"{index_path}: cannot read {path} for {url}: {exc.strerror}"
            ) from exc
        try:
            docs[url] = _parse_document(data, str(path))
        except ContextError as exc:
            raise ContextError("InternalError", exc.detail) from exc
    return docs


def _cache_key(value: ContextValue) -> Any:
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, Mapping):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return tuple(_cache_key(v) for v in value)


class ContextStore:
    """All @contexts of one broker; ``async with`` opens the preload, the disk cache and HTTP.

    Unopened, it still serves the core context and memory-only hosted
    contexts (never fetching), which is what an app built without one uses.
    ``transport`` is the httpx seam for tests.
    """

    def __init__(
        self,
        *,
        preload_dir: Path | None,
        cache_dir: Path | None,
        fetch_timeout_s: float = 5.0,
        allow_network: bool = True,
        allow_hosts: Collection[str] = (),
        max_bytes: int = MAX_CONTEXT_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``allow_hosts``: the hosts remote @contexts may be fetched from (names or
        addresses, lowercase; ``ANY_PUBLIC_HOST`` for any public one); empty: none."""
        self._allow_hosts = frozenset(
            h.strip().lower().strip("[]") for h in allow_hosts if h.strip()
        )
        self._preload_dir = preload_dir
        self._cache_dir = cache_dir
        self._timeout = fetch_timeout_s
        self._allow_network = allow_network
        self._max_bytes = max_bytes
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._db: sqlite3.Connection | None = None
        created = _now_ms()
        core = ContextEntry(
            _CORE_ID, CORE_CONTEXT_URL, "Cached", "", core_document(), created, "core"
        )
        self._entries: dict[tuple[str, str], ContextEntry] = {("", _CORE_ID): core}
        self._by_url: dict[str, ContextEntry] = dict.fromkeys(CORE_CONTEXT_URLS, core)
        self._preloaded: dict[str, Mapping[str, Any]] = {}
        self._active: OrderedDict[tuple[str, Any], tuple[ActiveContext, tuple[ContextEntry, ...]]]
        self._active = OrderedDict()
        self._fetching: dict[str, asyncio.Lock] = {}

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._preload_dir is not None:
            self._preloaded = _load_preload(self._preload_dir)
            for url, doc in self._preloaded.items():
                entry = ContextEntry(
                    f"preload-{uuid.uuid4().hex}", url, "Cached", "", doc, _now_ms(), "preload"
                )
                self._add(entry)
        if self._cache_dir is not None:
            self._open_db(self._cache_dir)
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,  # each hop is checked against the allowlist (_fetch)
            headers={"Accept": _ACCEPT},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Write usage counters, close HTTP and SQLite."""
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.aclose()
        finally:
            db, self._db = self._db, None
            if db is not None:
                try:
                    with db:
                        db.executemany(
                            "UPDATE jsonld_contexts SET hits=?, last_usage_ms=?"
                            " WHERE tenant=? AND local_id=?",
                            [
                                (e.hits, e.last_usage_ms, e.tenant, e.local_id)
                                for e in self._entries.values()
                                if e.dirty and e.origin in {"remote", "hosted"}
                            ],
                        )
                finally:
                    db.close()

    def _open_db(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(folder / DB_FILENAME, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ContextError(
                "InternalError", f"cannot open the @context cache in {folder}: {exc}"
            ) from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            rows = db.execute(
                "SELECT tenant, local_id, url, kind, body, created_at_ms, last_usage_ms, hits"
                " FROM jsonld_contexts"
            ).fetchall()
        except sqlite3.Error as exc:
            db.close()
            raise ContextError(
                "InternalError", f"the @context cache in {folder} is unusable: {exc}"
            ) from exc
        self._db = db
        for tenant, local_id, url, kind, body, created, last, hits in rows:
            origin: Origin = "remote" if kind == "Cached" else "hosted"
            if origin == "remote" and url in self._by_url:
                continue  # the preload folder wins over an old download
            self._add(
                ContextEntry(
                    local_id, url, kind, tenant, orjson.loads(body), created, origin, last, hits
                )
            )

    # --- resolution ------------------------------------------------------------------

    async def resolve(self, context: ContextValue, *, tenant: str | None = None) -> ActiveContext:
        """The active context of a request's ``@context`` (None or [] -> the core alone).

        Counts a hit on each stored context it uses. Raises ``ContextError``:
        LdContextNotAvailable if a URL cannot be fetched, InvalidRequest if a
        context is malformed.
        """
        if context is None or (isinstance(context, list) and not context):
            return core_context()
        tenant_key = tenant or ""
        key = (tenant_key, _cache_key(context))
        cached = self._active.get(key)
        if cached is None:
            used: list[ContextEntry] = []
            locals_: list[Mapping[str, Any] | None] = []
            await self._flatten(context, tenant_key, locals_, used, depth=0, seen=())
            active = ActiveContext.build(locals_) if locals_ else core_context()
            cached = (active, tuple(used))
            self._active[key] = cached
            if len(self._active) > ACTIVE_CACHE_SIZE:
                self._active.popitem(last=False)
        else:
            self._active.move_to_end(key)
        now = _now_ms()
        for entry in cached[1]:
            entry.hits += 1
            entry.last_usage_ms = now
            entry.dirty = True
        return cached[0]

    async def _flatten(
        self,
        value: Any,
        tenant: str,
        out: list[Mapping[str, Any] | None],
        used: list[ContextEntry],
        *,
        depth: int,
        seen: tuple[str, ...],
    ) -> None:
        if depth > MAX_DEPTH:
            raise ContextError("InvalidRequest", f"@context nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, list):
            for item in value:
                if isinstance(item, list):
                    raise ContextError("InvalidRequest", "a @context array cannot contain arrays")
                await self._flatten(item, tenant, out, used, depth=depth, seen=seen)
        elif isinstance(value, Mapping) or value is None:
            out.append(value)
        elif isinstance(value, str):
            if value in CORE_CONTEXT_URLS:
                return  # the core is applied last anyway
            if value in seen:
                raise ContextError("InvalidRequest", f"@context {value} includes itself")
            entry = await self._entry_for_url(value, tenant)
            used.append(entry)
            await self._flatten(
                entry.body["@context"], tenant, out, used, depth=depth + 1, seen=(*seen, value)
            )
        else:
            raise ContextError("InvalidRequest", f"a @context entry cannot be {value!r}")

    def _hosted_id(self, url: str) -> str | None:
        path = urlsplit(url).path
        return unquote(path[len(HOSTED_PATH) :]) if path.startswith(HOSTED_PATH) else None

    async def _entry_for_url(self, url: str, tenant: str) -> ContextEntry:
        local_id = self._hosted_id(url)
        if local_id is not None:
            entry = self._entries.get((tenant, local_id))
            if entry is not None and entry.origin == "hosted":
                return entry
        entry = self._by_url.get(url)
        if entry is not None:
            return entry
        lock = self._fetching.setdefault(url, asyncio.Lock())
        try:
            async with lock:
                entry = self._by_url.get(url)
                if entry is None and url in self._preloaded:
                    # deleted by a client earlier: the preload folder is its origin, no network
                    entry = ContextEntry(
                        f"preload-{uuid.uuid4().hex}",
                        url,
                        "Cached",
                        "",
                        self._preloaded[url],
                        _now_ms(),
                        "preload",
                    )
                    self._add(entry)
                elif entry is None:
                    doc = await self._fetch(url)
                    entry = ContextEntry(
                        uuid.uuid4().hex, url, "Cached", "", doc, _now_ms(), "remote"
                    )
                    self._add(entry)
                    self._persist(entry)
                return entry
        finally:
            if not lock.locked():
                self._fetching.pop(url, None)

    async def _fetch(self, url: str) -> Mapping[str, Any]:
        """The document at ``url``, fetched only as the module docstring allows; any failure
        is ``LdContextNotAvailable`` with no reason for the client (it goes to the log)."""
        if not self._allow_network:
            raise ContextError(
                "LdContextNotAvailable",
                f"@context {url} is not preloaded and fetching is disabled; add it to the"
                " --contexts folder",
            )
        try:
            async with asyncio.timeout(self._timeout):
                return _parse_document(await self._fetch_bytes(url), url)
        except _RefusedError as exc:
            _log.warning("@context not fetched", extra={"url": url[:300], "reason": exc.reason})
        except TimeoutError:
            _log.warning("@context not fetched", extra={"url": url[:300], "reason": "timeout"})
        except ContextError as exc:  # not JSON, not a context document
            _log.warning("@context not usable", extra={"url": url[:300], "reason": str(exc)})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: e.g. a bad port
            _log.warning("@context not fetched", extra={"url": url[:300], "reason": repr(exc)})
        raise ContextError(
            "LdContextNotAvailable",
            f"@context {url[:300]} is not available (preload it with --contexts, or allow its"
            " host with --contexts-allow)",
        )

    async def _fetch_bytes(self, url: str) -> bytes:
        if self._client is None:
            raise _RefusedError("the context store is not open")
        for _ in range(MAX_REDIRECTS + 1):
            await self._check_target(url)
            async with self._client.stream("GET", url) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    url = str(resp.url.join(resp.headers["location"]))
                    continue
                if resp.status_code != 200:
                    raise _RefusedError(f"HTTP {resp.status_code}")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self._max_bytes:
                    raise _RefusedError(f"larger than {self._max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise _RefusedError(f"larger than {self._max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        raise _RefusedError(f"more than {MAX_REDIRECTS} redirects")

    async def _check_target(self, url: str) -> None:
        """Refuse a URL whose host is not allowed, or resolves to a non-public address
        without being named (``ANY_PUBLIC_HOST`` covers public hosts only)."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise _RefusedError("not an http(s) URL")
        host = parts.hostname.lower()
        if host in self._allow_hosts:
            return  # named by the operator: any address, loopback included
        if ANY_PUBLIC_HOST not in self._allow_hosts:
            raise _RefusedError(f"host {host} is not in --contexts-allow")
        if self._transport is not None:
            return  # a test's transport: nothing is resolved or connected
        why = await non_public(host, parts.port or (443 if parts.scheme == "https" else 80))
        if why is not None:
            raise _RefusedError(why)

    # --- bookkeeping -----------------------------------------------------------------

    def _add(self, entry: ContextEntry) -> None:
        self._entries[(entry.tenant, entry.local_id)] = entry
        if entry.origin != "hosted":
            self._by_url[entry.url] = entry

    def _persist(self, entry: ContextEntry) -> None:
        if self._db is None:
            return
        try:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO jsonld_contexts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.tenant,
                        entry.local_id,
                        entry.url,
                        entry.kind,
                        orjson.dumps(entry.body),
                        entry.created_at_ms,
                        entry.last_usage_ms,
                        entry.hits,
                    ),
                )
        except sqlite3.Error as exc:
            raise ContextError(
                "InternalError", f"cannot store @context {entry.url}: {exc}"
            ) from exc

    def _forget(self, entry: ContextEntry) -> None:
        self._entries.pop((entry.tenant, entry.local_id), None)
        if self._by_url.get(entry.url) is entry:
            del self._by_url[entry.url]
        self._active.clear()  # active contexts may have been built from it
        if self._db is not None:
            try:
                with self._db:
                    self._db.execute(
                        "DELETE FROM jsonld_contexts WHERE tenant=? AND local_id=?",
                        (entry.tenant, entry.local_id),
                    )
            except sqlite3.Error as exc:
                raise ContextError(
                    "InternalError", f"cannot delete @context {entry.url}: {exc}"
                ) from exc

    # --- the /jsonldContexts API -------------------------------------------------------

    def add(
        self, context: Any, *, tenant: str | None = None, kind: ContextKind = "Hosted"
    ) -> ContextEntry:
        """Host ``context`` (a ``@context`` value) here; its URL is ``entry.url`` (a path).

        Raises ``ContextError`` (BadRequestData) if it is not a valid @context.
        """
        if kind == "Cached":
            raise ContextError("BadRequestData", "a Cached @context is created by using its URL")
        check_context_value(context)
        local_id = uuid.uuid4().hex
        entry = ContextEntry(
            local_id,
            HOSTED_PATH + local_id,
            kind,
            tenant or "",
            {"@context": context},
            _now_ms(),
            "hosted",
        )
        self._persist(entry)
        self._add(entry)
        return entry

    def entries(
        self, *, tenant: str | None = None, kind: ContextKind | None = None
    ) -> list[ContextEntry]:
        """What ``GET /jsonldContexts`` lists: shared cached contexts and the tenant's own."""
        tenant_key = tenant or ""
        return [
            e
            for e in self._entries.values()
            if (e.tenant == tenant_key or e.origin != "hosted") and (kind is None or e.kind == kind)
        ]

    def get(
        self, context_id: str, *, tenant: str | None = None, count: bool = False
    ) -> ContextEntry:
        """An entry by local id or URL; ``count`` records a use (serving the body counts).

        Raises ``ContextError`` (ResourceNotFound).
        """
        tenant_key = tenant or ""
        entry = self._entries.get((tenant_key, context_id)) or self._entries.get(("", context_id))
        if entry is None or (entry.origin == "hosted" and entry.tenant != tenant_key):
            entry = self._by_url.get(context_id)
        if entry is None:
            local_id = self._hosted_id(context_id)
            if local_id is not None:
                entry = self._entries.get((tenant_key, local_id))
        if entry is None or (entry.origin == "hosted" and entry.tenant != tenant_key):
            raise ContextError("ResourceNotFound", f"no @context {context_id} here")
        if count:
            entry.hits += 1
            entry.last_usage_ms = _now_ms()
            entry.dirty = True
        return entry

    def forget(self, context_id: str, *, tenant: str | None = None) -> None:
        """Delete a Hosted or ImplicitlyCreated @context now (no checks beyond existence).

        Raises ``ContextError`` (ResourceNotFound).
        """
        entry = self.get(context_id, tenant=tenant)
        if entry.origin == "hosted":
            self._forget(entry)

    async def delete(
        self, context_id: str, *, tenant: str | None = None, reload: bool = False
    ) -> None:
        """Delete a @context, or with ``reload`` fetch a Cached one again (5.13.5).

        Raises ``ContextError``: ResourceNotFound; BadRequestData for deleting
        the core context, or reloading one that is not Cached;
        LdContextNotAvailable if the reload fails (the cached copy is kept).
        """
        try:
            entry = self.get(context_id, tenant=tenant)
        except ContextError:
            if reload:
                raise ContextError(
                    "BadRequestData", f"no Cached @context {context_id} to reload"
                ) from None
            raise
        if entry.origin == "core" or _is_core_url(entry.url):
            if not reload:
                raise ContextError(
                    "BadRequestData",
                    f"@context {entry.url} is shipped with ldt and cannot be deleted",
                )
            self._active.clear()
            return
        if entry.origin == "preload":
            # A preloaded context is Cached with the preload folder as its origin: deleting
            # drops it from the cache (the next use loads it from the folder again, never
            # from the network); reloading re-reads the folder.
            if not reload:
                self._forget(entry)
                return
            if self._preload_dir is not None:
                self._preloaded = _load_preload(self._preload_dir)
                entry.body = self._preloaded.get(entry.url, entry.body)
            self._active.clear()
            return
        if entry.origin == "hosted":
            if reload:
                raise ContextError(
                    "BadRequestData",
                    f"@context {context_id} is {entry.kind}, only Cached ones reload",
                )
            self._forget(entry)
            return
        if not reload:
            self._forget(entry)
            return
        doc = await self._fetch(entry.url)
        entry.body = doc
        self._active.clear()
        self._persist(entry)
