"""The ContextStore (preload, remote fetch, disk cache) and /ngsi-ld/v1/jsonldContexts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.ngsild.contexts import ContextStore
from ldt.cloud.ngsild.contexts_api import context_problem
from ldt.cloud.ngsild.jsonld import CORE_CONTEXT_URL, DEFAULT_VOCAB, ContextError, expand_term
from ldt.cloud.server import build_app
from ldt.cloud.store import SqliteStore

BASE = "/ngsi-ld/v1/jsonldContexts"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
USER_CTX = {"@context": {"ex": "http://example.org/", "speed": "ex:speed"}}


class _NoNetwork(httpx.AsyncBaseTransport):
    """Fails the test's expectations loudly if anything is fetched."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(str(request.url))
        raise httpx.ConnectError("network access in an offline test", request=request)


# --- a real context server on loopback ---------------------------------------------------


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def context_server() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        hits.append(name)
        if name == "ctx.jsonld":
            return Response(json.dumps(USER_CTX), media_type="application/ld+json")
        if name == "slow.jsonld":
            await asyncio.sleep(1)
            return Response(json.dumps(USER_CTX))
        if name == "big.jsonld":
            return Response(b'{"@context": {"a": "' + b"x" * 5000 + b'"}}')
        if name == "bad.jsonld":
            return Response(b"{not json", media_type="application/json")
        if name == "nested.jsonld":
            return Response(
                json.dumps({"@context": [str(request.url_for("ctx", name="ctx.jsonld"))]})
            )
        return Response(b"missing", status_code=404)

    app = Starlette(routes=[Route("/{name}", serve, name="ctx")])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, lifespan="off", http="h11", ws="none")
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="test-context-server")
    try:
        async with asyncio.timeout(5):
            while not server.started:
                if task.done():
                    break
                await asyncio.sleep(0.01)
        assert server.started, "the test context server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", hits
    finally:
        server.should_exit = True
        await task
        sock.close()


# --- ContextStore ------------------------------------------------------------------------


def write_preload(folder: Path, index: Any, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.json").write_text(index if isinstance(index, str) else json.dumps(index))
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


async def test_core_and_preloaded_contexts_resolve_without_any_fetch(tmp_path: Path) -> None:
    url = "https://smartdatamodels.org/context.jsonld"
    preload = write_preload(
        tmp_path / "ctx", {url: "sdm.jsonld"}, {"sdm.jsonld": json.dumps(USER_CTX)}
    )
    offline = _NoNetwork()
    async with ContextStore(
        preload_dir=preload, cache_dir=None, transport=offline, allow_hosts=["example.org"]
    ) as store:
        ctx = await store.resolve([url, CORE_CONTEXT_URL])
        assert expand_term("speed", ctx) == "http://example.org/speed"
        core = await store.resolve("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld")
        assert expand_term("speed", core) == DEFAULT_VOCAB + "speed"
        assert await store.resolve(None) is core
        with pytest.raises(ContextError) as err:  # the seam is really there
            await store.resolve("https://example.org/unknown.jsonld")
    assert err.value.problem == "LdContextNotAvailable"
    assert offline.calls == ["https://example.org/unknown.jsonld"]


async def test_a_deleted_preloaded_context_comes_back_from_the_folder_not_the_network(
    tmp_path: Path,
) -> None:
    url = "https://smartdatamodels.org/context.jsonld"
    preload = write_preload(
        tmp_path / "ctx", {url: "sdm.jsonld"}, {"sdm.jsonld": json.dumps(USER_CTX)}
    )
    offline = _NoNetwork()
    async with ContextStore(preload_dir=preload, cache_dir=None, transport=offline) as store:
        (entry,) = [e for e in store.entries(tenant=None, kind="Cached") if e.url == url]
        await store.delete(entry.local_id)
        assert url not in [e.url for e in store.entries(tenant=None, kind="Cached")]
        ctx = await store.resolve(url)  # used again: loaded from the folder
        assert expand_term("speed", ctx) == "http://example.org/speed"
        assert url in [e.url for e in store.entries(tenant=None, kind="Cached")]
    assert offline.calls == []


@pytest.mark.parametrize(
    ("index", "files", "fragment"),
    [
        ("{nope", {}, "index.json is not valid JSON"),
        ({"https://a/c": 3}, {}, "must be an object"),
        ({"https://a/c": "gone.jsonld"}, {}, "gone.jsonld"),
        ({"https://a/c": "../x.jsonld"}, {}, "outside"),
        ({"https://a/c": "bad.jsonld"}, {"bad.jsonld": "{"}, "bad.jsonld is not valid JSON"),
        ({"https://a/c": "no.jsonld"}, {"no.jsonld": "{}"}, "no.jsonld is not a JSON-LD context"),
    ],
)
async def test_a_bad_preload_folder_fails_at_start_naming_the_file(
    tmp_path: Path, index: Any, files: dict[str, str], fragment: str
) -> None:
    preload = write_preload(tmp_path / "ctx", index, files)
    with pytest.raises(ContextError) as err:
        async with ContextStore(preload_dir=preload, cache_dir=None):
            pass
    assert fragment in str(err.value)
    with pytest.raises(ContextError, match=r"index\.json"):
        async with ContextStore(preload_dir=tmp_path / "empty", cache_dir=None):
            pass


@pytest.mark.integration
async def test_remote_contexts_are_fetched_once_cached_on_disk_and_failures_mapped(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    async with (
        context_server() as (base, hits),
        ContextStore(
            preload_dir=None,
            cache_dir=cache,
            fetch_timeout_s=0.5,
            max_bytes=4096,
            allow_hosts=["127.0.0.1"],  # named: loopback is allowed only by name
        ) as store,
    ):
        ctx = await store.resolve([f"{base}/nested.jsonld", {"x": "ex:x"}])
        assert expand_term("speed", ctx) == "http://example.org/speed"
        assert expand_term("x", ctx) == "http://example.org/x"  # inline sees remote prefixes
        await store.resolve(f"{base}/ctx.jsonld")
        assert hits == ["nested.jsonld", "ctx.jsonld"]  # the second use is cached
        # a failure says "not available", never why (the log says why): no port oracle
        for name in ("slow.jsonld", "missing.jsonld", "big.jsonld", "bad.jsonld"):
            with pytest.raises(ContextError) as err:
                await store.resolve([f"{base}/{name}"])
            assert err.value.problem == "LdContextNotAvailable"
            assert f"@context {base}/{name} is not available" in str(err.value)
        entry = store.get(f"{base}/ctx.jsonld")
        assert (entry.kind, entry.hits) == ("Cached", 2)
    # the server is gone; the disk cache answers, and the counters survived
    offline = _NoNetwork()
    async with ContextStore(preload_dir=None, cache_dir=cache, transport=offline) as again:
        ctx = await again.resolve(f"{base}/nested.jsonld")
        assert expand_term("speed", ctx) == "http://example.org/speed"
        assert again.get(f"{base}/ctx.jsonld").hits == 3
        assert offline.calls == []
        with pytest.raises(ContextError) as err:
            await again.delete(f"{base}/ctx.jsonld", reload=True)  # reload fails, copy kept
        assert err.value.problem == "LdContextNotAvailable"
        assert again.get(f"{base}/ctx.jsonld").kind == "Cached"


async def test_network_disabled_unknown_context_is_ld_context_not_available() -> None:
    store = ContextStore(preload_dir=None, cache_dir=None, allow_network=False)
    with pytest.raises(ContextError) as err:
        await store.resolve(["https://example.org/ctx.jsonld"])
    problem = context_problem(err.value)
    assert problem.status == 503
    assert problem.body()["type"] == ERR + "LdContextNotAvailable"
    assert "fetching is disabled" in str(problem.body()["detail"])
    with pytest.raises(ContextError) as bad:
        await store.resolve([{"a": 5}])
    assert context_problem(bad.value).body()["type"] == ERR + "InvalidRequest"


# --- /jsonldContexts ---------------------------------------------------------------------


@pytest.fixture
async def ctx_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ContextStore]]:
    async with (
        SqliteStore(path=tmp_path / "cloud.db") as store,
        ContextStore(preload_dir=None, cache_dir=tmp_path / "ctx", allow_network=False) as contexts,
    ):
        transport = httpx.ASGITransport(app=build_app(store, contexts, access=AccessControl.lab()))
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as c:
            yield c, contexts


async def test_post_list_serve_and_delete_a_hosted_context(
    ctx_client: tuple[httpx.AsyncClient, ContextStore],
) -> None:
    client, store = ctx_client
    created = await client.post(BASE, json=USER_CTX)
    assert created.status_code == 201
    assert created.content == b""
    location = created.headers["location"]
    local_id = location.rsplit("/", 1)[1]
    assert location == f"{BASE}/{local_id}"

    listed = (await client.get(BASE)).json()
    assert f"http://cloud.test{location}" in listed
    assert CORE_CONTEXT_URL in listed
    assert (await client.get(BASE, params={"kind": "Hosted"})).json() == [
        f"http://cloud.test{location}"
    ]
    assert (await client.get(BASE, params={"kind": "ImplicitlyCreated"})).json() == []

    served = await client.get(f"{BASE}/{local_id}")
    assert served.status_code == 200
    assert served.json() == USER_CTX
    assert served.headers["content-type"] == "application/json"
    # a request using the hosted URL resolves locally (no network here) and counts a hit
    ctx = await store.resolve(f"http://cloud.test{location}")
    assert expand_term("speed", ctx) == "http://example.org/speed"
    details = (await client.get(f"{BASE}/{local_id}", params={"details": "true"})).json()
    assert set(details) == {"URL", "localId", "kind", "createdAt", "numberOfHits", "lastUsage"}
    assert (details["kind"], details["localId"], details["numberOfHits"]) == ("Hosted", local_id, 2)
    assert details["createdAt"].endswith("Z")

    assert (await client.delete(f"{BASE}/{local_id}", params={"reload": "true"})).status_code == 400
    assert (await client.delete(f"{BASE}/{local_id}")).status_code == 204
    gone = await client.get(f"{BASE}/{local_id}")
    assert gone.status_code == 404
    assert gone.json()["type"] == ERR + "ResourceNotFound"
    assert (await client.delete(f"{BASE}/{local_id}")).status_code == 404


async def test_the_core_context_is_served_by_url_and_cannot_be_deleted(
    ctx_client: tuple[httpx.AsyncClient, ContextStore],
) -> None:
    client, _ = ctx_client
    core_id = quote(CORE_CONTEXT_URL, safe="")
    served = await client.get(f"{BASE}/{core_id}")
    assert served.status_code == 200
    assert served.json()["@context"]["ngsi-ld"]
    details = (await client.get(f"{BASE}/{core_id}", params={"details": "true"})).json()
    assert (details["URL"], details["kind"]) == (CORE_CONTEXT_URL, "Cached")
    refused = await client.delete(f"{BASE}/{core_id}")
    assert refused.status_code == 400
    assert refused.json()["type"] == ERR + "BadRequestData"
    assert (await client.delete(f"{BASE}/{core_id}", params={"reload": "true"})).status_code == 204


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b'{"A1": "urn:a"', 400, "InvalidRequest"),  # not JSON
        (b'{"A1": "urn:a"}', 400, "InvalidRequest"),  # no @context
        (b'{"@context": 42}', 400, "BadRequestData"),
        (b'{"@context": true}', 400, "BadRequestData"),
        (b'{"@context": ["https://example.org/c.jsonld", 7]}', 400, "BadRequestData"),
        (b'{"@context": {"a": {"@id": 3}}}', 400, "BadRequestData"),
    ],
)
async def test_invalid_posts_are_refused_and_nothing_is_stored(
    ctx_client: tuple[httpx.AsyncClient, ContextStore], body: bytes, status: int, kind: str
) -> None:
    client, _ = ctx_client
    resp = await client.post(BASE, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == status
    assert resp.json()["type"] == ERR + kind
    assert "location" not in resp.headers
    assert (await client.get(BASE, params={"kind": "Hosted"})).json() == []


@pytest.mark.parametrize(
    "params",
    [{"details": "other"}, {"kind": "other"}, {"details": "true", "kind": "hosted"}],
)
async def test_bad_list_parameters_are_bad_request_data(
    ctx_client: tuple[httpx.AsyncClient, ContextStore], params: dict[str, str]
) -> None:
    client, _ = ctx_client
    resp = await client.get(BASE, params=params)
    assert resp.status_code == 400
    assert resp.json()["type"] == ERR + "BadRequestData"
    wrong = await client.delete(f"{BASE}/nope", params={"reload": "xxx"})
    assert wrong.status_code == 400
    assert (await client.delete(f"{BASE}/nope", params={"reload": "true"})).status_code == 400
    unknown = await client.post(BASE, content=b"x", headers={"content-type": "text/plain"})
    assert unknown.status_code == 415


async def test_hosted_contexts_belong_to_their_tenant_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    async with (
        SqliteStore(path=tmp_path / "cloud.db") as store,
        ContextStore(preload_dir=None, cache_dir=tmp_path / "ctx") as contexts,
    ):
        transport = httpx.ASGITransport(app=build_app(store, contexts, access=AccessControl.lab()))
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as c:
            a = {"NGSILD-Tenant": "city-a"}
            b = {"NGSILD-Tenant": "city-b"}
            location = (await c.post(BASE, json=USER_CTX, headers=a)).headers["location"]
            assert (await c.get(location, headers=b)).status_code == 404
            assert location.rsplit("/", 1)[1] not in (await c.get(BASE, headers=b)).text
            assert (await c.delete(location, headers=b)).status_code == 404
            assert (await c.get(location, headers=a)).json() == USER_CTX
    async with ContextStore(
        preload_dir=None, cache_dir=tmp_path / "ctx", transport=_NoNetwork()
    ) as reopened:
        entry = reopened.get(location.rsplit("/", 1)[1], tenant="city-a")
        assert (entry.kind, entry.body, entry.hits) == ("Hosted", USER_CTX, 1)
        ctx = await reopened.resolve(f"http://elsewhere{location}", tenant="city-a")
        assert expand_term("speed", ctx) == "http://example.org/speed"


async def test_a_hosted_context_naming_an_unavailable_url_is_refused_and_not_kept(
    ctx_client: tuple[httpx.AsyncClient, ContextStore],
) -> None:
    client, _ = ctx_client
    body = {"@context": ["https://example.org/nowhere.jsonld", {"x": "http://example.org/x"}]}
    refused = await client.post(BASE, json=body)
    assert refused.status_code == 503
    assert refused.json()["type"] == ERR + "LdContextNotAvailable"
    assert (await client.get(BASE, params={"kind": "Hosted"})).json() == []


async def test_the_urls_a_hosted_context_names_become_cached(tmp_path: Path) -> None:
    url = "https://smartdatamodels.org/context.jsonld"
    preload = write_preload(
        tmp_path / "pre", {url: "sdm.jsonld"}, {"sdm.jsonld": json.dumps(USER_CTX)}
    )
    async with (
        SqliteStore(path=tmp_path / "cloud.db") as store,
        ContextStore(preload_dir=preload, cache_dir=None, allow_network=False) as contexts,
    ):
        transport = httpx.ASGITransport(app=build_app(store, contexts, access=AccessControl.lab()))
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            listed = (await client.get(BASE, params={"details": "true"})).json()
            (local_id,) = [e["localId"] for e in listed if e["URL"] == url]
            assert (await client.delete(f"{BASE}/{local_id}")).status_code == 204
            assert url not in (await client.get(BASE, params={"kind": "Cached"})).json()
            created = await client.post(BASE, json={"@context": [url]})
            assert created.status_code == 201, created.text
            assert url in (await client.get(BASE, params={"kind": "Cached"})).json()
