"""PostgreSQL-only behaviour: several broker processes on one database, schema, URLs, CLI.

Two ``PostgresStore`` instances with their own connection pools stand for two
broker processes: the database sees two independent sets of sessions, which
is what matters for locking. Everything the two stores share with SQLite is
tested by the rest of tests/cloud (the ``store`` fixture runs both).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ldt.agent.transport import HttpTransport
from ldt.cloud.errors import OwnershipError, StoreError
from ldt.cloud.server import add_gateway, running_cloud
from ldt.cloud.service.ingest import ingest
from ldt.cloud.store import DB_FILENAME, PostgresStore, SqliteStore
from ldt.cloud.store.locator import store_for
from ldt.cloud.store.postgres import SCHEMA_VERSION
from ldt.contract import INGEST_PATH, IngestBatch
from ldt.url_secrets import redact
from tests.cloud.batches import T0, batch, encode, good_rows, series
from tests.cloud.conftest import register
from tests.mosquitto import free_port

ENTITY = "urn:ngsi-ld:Device:gw-1:m0"


def _batch(gateway_id: str, rows: list[list[Any]], **kw: Any) -> IngestBatch:
    return IngestBatch.model_validate(batch(gateway_id, rows, **kw))


@pytest.fixture
async def brokers(postgres_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, opened concurrently (as two processes starting together)."""
    a, b = PostgresStore(dsn=postgres_dsn, pool_size=2), PostgresStore(dsn=postgres_dsn)
    await asyncio.gather(a.open(), b.open())
    try:
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_the_same_batch_replayed_concurrently_is_stored_once(
    brokers: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = brokers
    await register(a, "gw-1")
    for start in (1, 5001, 10_001):
        body = _batch("gw-1", good_rows(start, 5000, n_series=1))
        results = await asyncio.gather(ingest(a.db, "gw-1", body), ingest(b.db, "gw-1", body))
        assert sorted((r.accepted, r.duplicates) for r in results) == [(0, 5000), (5000, 0)]
        assert {r.max_seq for r in results} == {start + 4999}
    assert await b.readings.seqs("gw-1") == list(range(1, 15_001))
    entity = await a.entities.get(ENTITY)
    assert entity is not None
    assert entity["activePower"]["value"] == 200.0 + 15_000 % 50
    assert len(await a.readings.history(ENTITY, "activePower")) == 15_000


async def test_two_gateways_ingesting_concurrently_are_both_stored(
    brokers: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = brokers
    await register(a, "gw-1")
    await register(b, "gw-2")
    rounds = [
        (ingest(a.db, "gw-1", _batch("gw-1", good_rows(s, 1000, n_series=1))),
         ingest(b.db, "gw-2", _batch("gw-2", good_rows(s, 1000, n_series=1))))
        for s in (1, 1001, 2001)
    ]  # fmt: skip
    for first, second in rounds:
        done = await asyncio.gather(first, second)
        assert [r.accepted for r in done] == [1000, 1000]
    for store, gw in ((b, "gw-1"), (a, "gw-2")):
        assert await store.readings.seqs(gw) == list(range(1, 3001))
        entity = await store.entities.get(f"urn:ngsi-ld:Device:{gw}:m0")
        assert entity is not None
        assert entity["dateLastValueReported"]["value"]["@value"].endswith("12:00:03.000Z")


async def test_concurrent_batches_on_one_entity_lose_no_attribute(
    brokers: tuple[PostgresStore, PostgresStore],
) -> None:
    """Read-modify-write under row locks: each batch adds its own attribute to one entity."""
    a, b = brokers
    await register(a, "gw-1")
    attrs = [f"a{i}" for i in range(12)]
    batches = [
        _batch("gw-1", [[i + 1, 0, T0 + i, float(i), "good", None]], series_map=series(
            "gw-1", attrs=(attr,)))
        for i, attr in enumerate(attrs)
    ]  # fmt: skip
    done = await asyncio.gather(
        *(ingest((a if i % 2 else b).db, "gw-1", body) for i, body in enumerate(batches))
    )
    assert sum(r.accepted for r in done) == len(attrs)
    entity = await a.entities.get(ENTITY)
    assert entity is not None
    assert {name: entity[name]["value"] for name in attrs} == {
        attr: float(i) for i, attr in enumerate(attrs)
    }
    assert entity["deviceState"]["observedAt"].endswith("12:00:00.011Z")


async def test_ownership_is_enforced_across_brokers(
    brokers: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = brokers
    await register(a, "gw-1")
    await register(a, "gw-2")
    await ingest(a.db, "gw-1", _batch("gw-1", good_rows(1, 5)))
    before = await b.entities.get(ENTITY)
    intruder = _batch("gw-2", [[1, 0, T0 + 99, 1.0, "good", None]], series_map=series("gw-1"))
    with pytest.raises(OwnershipError) as refused:
        await ingest(b.db, "gw-2", intruder)
    assert refused.value.owner == "gw-1"
    assert await a.readings.count("gw-2") == 0
    assert await a.entities.get(ENTITY) == before


@pytest.mark.parametrize("provisioned", [True, False], ids=["provisioned", "new"])
async def test_two_gateways_racing_to_claim_one_entity_leave_one_owner(
    brokers: tuple[PostgresStore, PostgresStore], provisioned: bool
) -> None:
    """One entity reported by two gateways at once: exactly one owns it, the other is
    refused and writes nothing. Not there yet: an id in both gateways' spaces (it holds
    ':gw-1:' and ':gw-2:'), created by whichever commits first. Provisioned through the
    API: nobody's until assigned, and two admins assigning it at once leave one owner."""
    a, b = brokers
    await register(a, "gw-1")
    await register(a, "gw-2")
    wins = {"gw-1": 0, "gw-2": 0}
    for n in range(5):
        eid = f"urn:ngsi-ld:Device:gw-1:gw-2:{n}"
        if provisioned:
            await a.entities.upsert([{"id": eid, "type": "Device"}], replace=False)
            owners = await asyncio.gather(
                a.gateways.assign_entity(eid, "gw-1"), b.gateways.assign_entity(eid, "gw-2")
            )
            assert owners[0] == owners[1]  # one assignment won, both see it
        target = {"0": {"entity_id": eid, "entity_type": "Device", "attr": "x"}}
        results = await asyncio.gather(
            ingest(
                a.db, "gw-1", _batch("gw-1", [[n + 1, 0, T0, 1.0, "good", None]], series_map=target)
            ),
            ingest(
                b.db, "gw-2", _batch("gw-2", [[n + 1, 0, T0, 2.0, "good", None]], series_map=target)
            ),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, OwnershipError)]
        assert len(refused) == 1, results
        winner = "gw-2" if results[0] is refused[0] else "gw-1"
        assert refused[0].owner == winner
        entity = await b.entities.get(eid)
        assert entity is not None
        assert entity["x"]["value"] == (1.0 if winner == "gw-1" else 2.0)
        wins[winner] += 1
    for gw, won in wins.items():  # a refused batch stored none of its readings
        assert await a.readings.count(gw) == won


async def test_new_entities_created_concurrently_by_upsert_are_created_once(
    brokers: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = brokers
    ids = [f"urn:ngsi-ld:Thing:{i}" for i in range(50)]
    first = [{"id": i, "type": "Thing", "p": {"type": "Property", "value": 1}} for i in ids]
    second = [{"id": i, "type": "Thing", "q": {"type": "Property", "value": 2}} for i in ids]
    created_a, created_b = await asyncio.gather(
        a.entities.upsert(first, replace=False), b.entities.upsert(second, replace=False)
    )
    assert [x or y for x, y in zip(created_a, created_b, strict=True)] == [True] * len(ids)
    assert not any(x and y for x, y in zip(created_a, created_b, strict=True))
    page, total = await a.entities.query(types=["Thing"], ids=None, limit=100, offset=0)
    assert total == len(ids)
    assert all(e["p"]["value"] == 1 and e["q"]["value"] == 2 for e in page)  # merged, none lost


async def test_schema_is_versioned_and_a_newer_schema_is_refused(postgres_dsn: str) -> None:
    async with PostgresStore(dsn=postgres_dsn) as store:
        await register(store, "gw-1")
    async with PostgresStore(dsn=postgres_dsn) as again:  # reopening migrates nothing
        assert [g.id for g in await again.gateways.all()] == ["gw-1"]
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as con:
        cur = await con.execute("SELECT version FROM ldt_schema_version ORDER BY version")
        assert [r[0] for r in await cur.fetchall()] == list(range(1, SCHEMA_VERSION + 1))
        await con.execute("INSERT INTO ldt_schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this ldt"):
        async with PostgresStore(dsn=postgres_dsn):
            pass


async def test_unreachable_server_is_a_store_error_within_the_deadline() -> None:
    store = PostgresStore(
        dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", connect_timeout_s=1
    )
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot open the PostgreSQL store"):
        await store.open()
    assert time.monotonic() - started < 5


async def test_closed_store_refuses_calls(postgres_dsn: str) -> None:
    store = PostgresStore(dsn=postgres_dsn)
    with pytest.raises(StoreError, match="not open"):
        await store.gateways.all()
    with pytest.raises(ValueError, match="pool_size"):
        PostgresStore(dsn=postgres_dsn, pool_size=0)


def test_store_urls(tmp_path: Path) -> None:
    assert isinstance(store_for(None, data_dir=tmp_path), SqliteStore)
    assert isinstance(store_for("", data_dir=tmp_path), SqliteStore)
    assert isinstance(store_for("postgresql://u@h/db", data_dir=tmp_path), PostgresStore)
    assert isinstance(store_for("postgres://u@h/db", data_dir=tmp_path), PostgresStore)
    with pytest.raises(StoreError, match=r"unsupported store 'mysql://u:\*\*\*@h/db'"):
        store_for("mysql://u:secret@h/db", data_dir=tmp_path)
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.mark.integration
async def test_agent_syncs_through_a_cloud_on_postgresql(tmp_path: Path, postgres_dsn: str) -> None:
    async with running_cloud(tmp_path, store_url=postgres_dsn, insecure_no_auth=True) as cloud:
        assert isinstance(cloud.store, PostgresStore)
        token = await register(cloud.store, "gw-1")
        transport = HttpTransport(base_url=cloud.url, token=token, timeout_s=10)
        try:
            body = encode(batch("gw-1", good_rows(1, 500)))
            ack = await transport.send(body)
            assert (ack.accepted, ack.duplicates, ack.max_seq) == (500, 0, 500)
            replay = await transport.send(body)
            assert (replay.accepted, replay.duplicates) == (0, 500)
        finally:
            await transport.aclose()
        async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as client:
            got = await client.get(f"/ngsi-ld/v1/entities/{ENTITY}")
        assert got.status_code == 200
        assert got.json()["activePower"]["value"] == 200.0
    assert not (tmp_path / DB_FILENAME).exists()  # ASYNC240: a stat, after the server stopped


async def _ingest_rate(base_url: str, token: str, bodies: list[bytes]) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as client:
        started = time.perf_counter()
        for body in bodies:
            resp = await client.post(INGEST_PATH, content=body)
            assert resp.status_code == 200, resp.text
        return 5000 * len(bodies) / (time.perf_counter() - started)


@pytest.mark.integration
async def test_sync_throughput_5000_reading_batches_both_stores(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Prints readings/s for 10 batches of 5,000 over loopback HTTP, SQLite then PostgreSQL.

    Measured, not asserted (shared CI machines vary); both stores run durable
    (SQLite synchronous=FULL, PostgreSQL fsync and synchronous_commit on).
    """
    bodies = [
        encode(batch("gw-bench", good_rows(1 + i * 5000, 5000, n_series=1))) for i in range(10)
    ]
    rates: dict[str, float] = {}
    token = add_gateway(tmp_path, "gw-bench")
    async with running_cloud(tmp_path, insecure_no_auth=True) as cloud:
        rates["sqlite"] = await _ingest_rate(cloud.url, token, bodies)
        assert await cloud.store.readings.count("gw-bench") == 50_000
    async with running_cloud(
        tmp_path / "pg", store_url=postgres_dsn, insecure_no_auth=True
    ) as cloud:
        token = await register(cloud.store, "gw-bench")
        rates["postgresql"] = await _ingest_rate(cloud.url, token, bodies)
        assert await cloud.store.readings.count("gw-bench") == 50_000
    print(
        "\ncloud ingest over loopback HTTP, 5,000-reading batches: "
        + ", ".join(f"{k} {v:,.0f} readings/s" for k, v in rates.items())
    )


def _ldt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ldt", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
def test_cli_gateways_and_serve_on_postgresql(tmp_path: Path, postgres_dsn: str) -> None:
    added = _ldt("cloud", "gateway", "add", "gw-1", "--store", postgres_dsn)
    assert added.returncode == 0, added.stderr
    token = added.stdout.split()[-1]
    again = _ldt("cloud", "gateway", "add", "gw-1", "--store", postgres_dsn)
    assert again.returncode == 1
    assert "already exists; use --rotate" in again.stderr
    bad = _ldt("cloud", "gateway", "add", "gw 1/x", "--store", postgres_dsn)
    assert bad.returncode == 1
    assert "invalid gateway id" in bad.stderr
    listed = _ldt("cloud", "gateway", "list", "--store", postgres_dsn)
    assert listed.stdout.splitlines()[1].split("\t")[0] == "gw-1"  # after the header
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ldt", "cloud", "serve", "--port", str(port),
         "--data", str(tmp_path), "--store", postgres_dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert (
            line.strip() == f"ldt cloud: serving on http://127.0.0.1:{port} (store {postgres_dsn})"
        )
        resp = httpx.post(
            f"http://127.0.0.1:{port}{INGEST_PATH}",
            content=encode(batch("gw-1", good_rows(1, 20))),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert resp.status_code == 200
        assert resp.json()["accepted"] == 20
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not (tmp_path / DB_FILENAME).exists()


@pytest.mark.integration
def test_cli_refuses_an_unusable_store_in_one_line(tmp_path: Path) -> None:
    for args in (
        ("cloud", "gateway", "list", "--store", "mysql://u:pw@h/db"),
        ("cloud", "gateway", "list", "--store", f"postgresql://u@127.0.0.1:{free_port()}/x"),
        ("cloud", "serve", "--port", str(free_port()), "--store", "sqlite:///x.db"),
    ):
        done = _ldt(*args)
        assert done.returncode == 1, done
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert ":pw@" not in done.stderr
