"""gzip-compressed sync batches: accepted, and every malformed or oversized one refused."""

from __future__ import annotations

import gzip

import httpx
import pytest

from ldt.cloud.ingest import MAX_INGEST_BYTES
from ldt.cloud.store import Store
from ldt.contract import INGEST_PATH
from ldt.contract.compression import CompressionError, gunzip_limited, gzip_batch
from tests.cloud.batches import batch, encode, good_rows


def _headers(token: str, encoding: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": encoding,
    }


async def test_a_gzip_batch_is_stored_like_a_plain_one(
    client: httpx.AsyncClient, gw1_token: str, store: Store
) -> None:
    plain = encode(batch("gw-1", good_rows(1, 200)))
    packed = gzip_batch(plain)
    assert len(packed) < len(plain) / 3
    got = await client.post(INGEST_PATH, content=packed, headers=_headers(gw1_token, "gzip"))
    assert got.status_code == 200, got.text
    assert got.json()["accepted"] == 200
    assert await store.readings.count("gw-1") == 200


@pytest.mark.parametrize(
    ("body", "encoding", "status", "detail"),
    [
        (b"not gzip at all", "gzip", 400, "not valid gzip"),
        (gzip_batch(b'{"v": 1}')[:-6], "gzip", 400, "truncated"),
        (gzip_batch(b"{}") + b"trailing", "gzip", 400, "after the end"),
        (gzip.compress(b" " * (MAX_INGEST_BYTES + 10)), "gzip", 413, "once decompressed"),
        (b"{}", "br", 415, "Content-Encoding br"),
    ],
)
async def test_bad_compressed_bodies_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    gw1_token: str,
    store: Store,
    body: bytes,
    encoding: str,
    status: int,
    detail: str,
) -> None:
    got = await client.post(INGEST_PATH, content=body, headers=_headers(gw1_token, encoding))
    assert got.status_code == status, got.text
    assert detail in got.json()["detail"]
    assert await store.readings.count("gw-1") == 0


def test_the_bomb_is_refused_while_decompressing() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB in ~64 KiB
    assert len(bomb) < 100_000
    with pytest.raises(CompressionError, match="larger than"):
        gunzip_limited(bomb, limit=1 << 20)
