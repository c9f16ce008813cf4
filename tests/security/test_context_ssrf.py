"""SSRF through ``@context`` (issue 14, item 1): a client's ``Link`` header makes the broker
fetch only from hosts the operator allowed, never from loopback or private addresses it did
not name, follows no redirect elsewhere, and says "not available" without saying why.

Against a real loopback HTTP server that counts what reaches it, and the real app.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.ngsild.contexts import ANY_PUBLIC_HOST, ContextError, ContextStore
from ldt.cloud.ngsild.jsonld import CORE_CONTEXT_URLS, expand_term
from ldt.cloud.server import build_app
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import asgi_client

JSONLD_REL = "http://www.w3.org/ns/json-ld#context"
CONTEXT = b'{"@context": {"speed": "http://example.org/speed"}}'


@contextlib.asynccontextmanager
async def loopback_server(redirect_to: str | None = None) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A bare HTTP server on 127.0.0.1: every request line it gets is recorded."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n", 1)[0])
        if redirect_to is not None:
            answer = f"HTTP/1.1 302 Found\r\nLocation: {redirect_to}\r\nContent-Length: 0\r\n\r\n"
            writer.write(answer.encode())
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/ld+json\r\n"
                + f"Content-Length: {len(CONTEXT)}\r\nConnection: close\r\n\r\n".encode()
                + CONTEXT
            )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_link_header_to_loopback_is_not_fetched_and_says_nothing(tmp_path: Path) -> None:
    async with (
        loopback_server() as (base, seen),
        SqliteStore(path=tmp_path / DB_FILENAME) as store,
        ContextStore(preload_dir=None, cache_dir=None, allow_hosts=[ANY_PUBLIC_HOST]) as contexts,
    ):
        app = build_app(store, contexts, access=AccessControl.lab())
        async with asgi_client(app) as client:
            details = []
            for url in (f"{base}/anything", f"http://127.0.0.1:{closed_port()}/anything"):
                link = f'<{url}>; rel="{JSONLD_REL}"; type="application/ld+json"'
                resp = await client.get("/ngsi-ld/v1/entities", params={"type": "T"},
                                        headers={"Link": link})  # fmt: skip
                assert resp.status_code == 503, resp.text
                assert resp.json()["type"].endswith("LdContextNotAvailable")
                details.append(resp.json()["detail"].replace(url, "URL"))
            listed = await client.get("/ngsi-ld/v1/jsonldContexts")
            await app.state.notifier.aclose()
    assert seen == []  # the broker never connected
    assert details[0] == details[1]  # an open port and a closed one look the same
    assert "127.0.0.1" not in listed.text  # nothing fetched is served back


async def test_only_named_hosts_are_fetched_and_redirects_stay_among_them() -> None:
    async with (
        loopback_server() as (target, target_seen),
        loopback_server(redirect_to=f"{target}/ctx") as (hop, hop_seen),
    ):
        async with ContextStore(preload_dir=None, cache_dir=None) as nothing_allowed:
            with pytest.raises(ContextError, match="is not available"):
                await nothing_allowed.resolve(f"{target}/ctx")
        assert target_seen == []
        async with ContextStore(
            preload_dir=None, cache_dir=None, allow_hosts=["127.0.0.1"]
        ) as named:
            ctx = await named.resolve(f"{target}/ctx")
            assert expand_term("speed", ctx) == "http://example.org/speed"
            ctx = await named.resolve(f"{hop}/start")  # redirected to a named host: followed
            assert expand_term("speed", ctx) == "http://example.org/speed"
        assert len(hop_seen) == 1
    # a redirect from an allowed host to loopback that is not named is not followed
    async with loopback_server() as (inside, inside_seen):
        redirect = inside.replace("127.0.0.1", "localhost")
        async with (
            loopback_server(redirect_to=f"{redirect}/secret") as (hop, hop_seen),
            ContextStore(preload_dir=None, cache_dir=None, allow_hosts=["127.0.0.1"]) as store,
        ):
            with pytest.raises(ContextError, match="is not available"):
                await store.resolve(f"{hop}/start")
        assert len(hop_seen) == 1
        assert inside_seen == []


async def test_any_public_host_still_refuses_private_addresses() -> None:
    async with ContextStore(
        preload_dir=None, cache_dir=None, allow_hosts=[ANY_PUBLIC_HOST]
    ) as store:
        for url in (
            "http://169.254.169.254/latest/meta-data",  # a cloud's metadata endpoint
            "http://10.0.0.1/ctx",
            "http://192.168.1.1/ctx",
            "http://[::1]/ctx",
            "http://localhost:9/ctx",
            "file:///etc/passwd",
        ):
            with pytest.raises(ContextError, match="is not available"):
                await store.resolve(url)


async def test_every_published_core_context_url_resolves_offline() -> None:
    assert len(CORE_CONTEXT_URLS) >= 8
    async with ContextStore(preload_dir=None, cache_dir=None, allow_network=False) as store:
        for url in sorted(CORE_CONTEXT_URLS):
            ctx = await store.resolve(url)
            assert expand_term("Property", ctx) == "https://uri.etsi.org/ngsi-ld/Property"
            assert expand_term("location", ctx) == "https://uri.etsi.org/ngsi-ld/location"
    v18 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    assert v18 in CORE_CONTEXT_URLS
    _ = httpx  # the broker's HTTP client is never created for these
