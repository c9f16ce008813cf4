"""Write the legacy-store fixtures: a populated store in the layout of the code of the day.

    .venv/bin/python -m tests.cloud.legacy.make_fixtures [--out DIR]

Runs one scenario twice, on SQLite and on PostgreSQL (the tests' own throwaway server,
``tests/pg.py``), through public code paths only: the ASGI app of
``ldt.cloud.server.build_app`` in an httpx client for ingest, the NGSI-LD API and the
catalogue admin API, and the services the CLI uses (``Provisioner``, ``Catalogue``,
``CommandService``, ``ArtifactService``) where no plain-HTTP route exists. Then it writes

- ``cloud.db``: the SQLite store, checkpointed, VACUUMed, journal mode DELETE (one file);
- ``postgres.sql``: ``pg_dump`` (plain SQL, no owners or privileges) of schema ``ldt_legacy``;
- ``manifest.json``: what they hold (see README.md),

and checks that the dump loads with ``psql`` into a fresh database and that
``PostgresStore`` reads the same back from it. Needs PostgreSQL installed
(``scripts/bootstrap``); about 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from psycopg import sql

from ldt.cloud.access.guard import AccessControl
from ldt.cloud.control.plane import ControlPlane
from ldt.cloud.gateways import token_sha256
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.server import build_app
from ldt.cloud.store import DB_FILENAME, PostgresStore, SqliteStore, Store
from ldt.contract import INGEST_PATH
from tests.cloud.helpers import asgi_client, make_csr
from tests.cloud.legacy import fixtures
from tests.pg import PostgresServer, find_pg_bin

T0 = 1_795_780_800_000
"""2026-11-27T12:00:00.000Z in Unix ms: the live readings' time base."""
API = "/ngsi-ld/v1"
LD = {"Content-Type": "application/ld+json"}
JSON = {"Content-Type": "application/json"}
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
ADMIN_TOKEN = "legacy-fixture-admin-token"
TOKENS = {"gw-1": "legacy-fixture-token-gw-1", "gw-2": "legacy-fixture-token-gw-2"}
"""The gateways' bearer tokens (only their hashes are stored): a migration test can sync on."""
M0 = "urn:ngsi-ld:Device:gw-1:m0"
M1 = "urn:ngsi-ld:Device:gw-1:m1"
SERIES = {
    "0": {"entity_id": M0, "entity_type": "Device", "attr": "activePower", "unit": "WTT"},
    "1": {"entity_id": M0, "entity_type": "Device", "attr": "voltage", "unit": "VLT"},
    "2": {"entity_id": M0, "entity_type": "Device", "attr": "relayOn"},
    "3": {"entity_id": M1, "entity_type": "Device", "attr": "temperature", "unit": "CEL"},
    "4": {"entity_id": M1, "entity_type": "Device", "attr": "relativeHumidity", "unit": "P1"},
    "5": {"entity_id": M1, "entity_type": "Device", "attr": "operatingMode"},
}
Row = list[Any]
"""[seq, series, observed_at_ms, value, quality, reason], as the wire has it."""

# live: several readings of one attribute per batch, good/stale/bad, a bad one without value
LIVE_1: list[Row] = [
    [101, 0, T0, 1500.0, "good", None],
    [102, 1, T0, 230.1, "good", None],
    [103, 3, T0, 21.5, "good", None],
    [104, 4, T0, 40, "good", None],
    [105, 0, T0 + 500, 1520.5, "good", None],
    [106, 2, T0 + 500, True, "good", None],
    [107, 0, T0 + 1000, 1490.0, "good", None],
    [108, 1, T0 + 1000, 229.8, "good", None],
    [109, 3, T0 + 1000, 21.7, "stale", None],
    [110, 5, T0 + 1000, "auto", "good", None],
]
LIVE_2: list[Row] = [
    [111, 0, T0 + 2000, 1600.0, "good", None],
    [112, 0, T0 + 2500, 1610.0, "good", None],
    [113, 0, T0 + 3000, None, "bad", "modbus timeout"],
    [114, 1, T0 + 2000, 231.0, "stale", None],
    [115, 3, T0 + 2000, 22.0, "good", None],
    [116, 3, T0 + 2500, 22.4, "good", None],
    [117, 4, T0 + 2000, None, "bad", "CRC error"],
    [118, 2, T0 + 2500, False, "good", None],
    [119, 5, T0 + 2500, "manual", "good", None],
    [120, 1, T0 + 3000, 230.5, "good", None],
]
# a partial replay: 119 and 120 again, then new readings
LIVE_3: list[Row] = [
    *LIVE_2[-2:],
    [121, 0, T0 + 4000, 1550.0, "good", None],
    [122, 3, T0 + 4000, 22.6, "stale", None],
    [123, 4, T0 + 4000, 42, "good", None],
    [124, 2, T0 + 4000, True, "bad", "coil read failed"],  # a bad reading's value is not used
]
# buffered during an outage a minute earlier (lower seqs, older times), sent after the live ones
BACKFILL: list[Row] = [
    [1, 0, T0 - 60_000, 1400.0, "good", None],
    [2, 0, T0 - 59_500, 1405.0, "good", None],
    [3, 0, T0 - 59_000, 1410.0, "stale", None],
    [4, 1, T0 - 60_000, 229.0, "good", None],
    [5, 3, T0 - 60_000, 21.0, "good", None],
    [6, 4, T0 - 60_000, 38, "good", None],
    [7, 5, T0 - 60_000, "auto", "good", None],
    [8, 2, T0 - 59_000, None, "bad", "timeout"],
]
BATCHES: list[tuple[str, str, list[Row], tuple[int, int]]] = [
    # (what, lane, rows, (accepted, duplicates) expected)
    ("live 1", "live", LIVE_1, (10, 0)),
    ("live 2", "live", LIVE_2, (10, 0)),
    ("live 2 replayed", "live", LIVE_2, (0, 10)),
    ("live 3, partly replayed", "live", LIVE_3, (4, 2)),
    ("backfill, older", "backfill", BACKFILL, (8, 0)),
]
RULES = b"""
name = "cooling"
[[rules]]
id = "fan"
when = { device = "m0", point = "activePower", above = 1550 }
then = { device = "m0", point = "relayOn", value = true }
"""
BUILDING_1 = "urn:ngsi-ld:Building:b1"
BUILDING_2 = "urn:ngsi-ld:Building:b2"
BUILDING_GONE = "urn:ngsi-ld:Building:b3"
ROOM = "urn:ngsi-ld:Room:r1"
VEHICLE = "urn:ngsi-ld:Vehicle:t1"
SUBSCRIPTION = "urn:ngsi-ld:Subscription:legacy-1"
REGISTRATION = "urn:ngsi-ld:ContextSourceRegistration:legacy-1"


def _iso(ms: int) -> str:
    return (
        datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="milliseconds")[
            :-6
        ]
        + "Z"
    )


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def _ok(resp: httpx.Response, *statuses: int) -> httpx.Response:
    if resp.status_code not in statuses:
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
        )
    return resp


async def _ingest(client: httpx.AsyncClient) -> None:
    for n, (what, lane, rows, expected) in enumerate(BATCHES):
        body: dict[str, Any] = {
            "v": 1,
            "gateway_id": "gw-1",
            "lane": lane,
            "series": SERIES,
            "readings": rows,
        }
        if n < 2:  # the fleet view's status row (gateway_status); the cloud's clock, no skew
            body["status"] = {
                "agent_version": "0.9.0",
                "pending": 3 - n,
                "oldest_pending_ms": T0 - 60_000,
                "sent_at_ms": int(time.time() * 1000),
            }
        resp = _ok(
            await client.post(
                INGEST_PATH,
                content=orjson.dumps(body),
                headers={**JSON, "Authorization": f"Bearer {TOKENS['gw-1']}"},
            ),
            200,
        )
        ack = resp.json()
        if (ack["accepted"], ack["duplicates"]) != expected:
            raise RuntimeError(f"batch {what!r}: ack {ack}, expected {expected}")


async def _ngsi_ld(client: httpx.AsyncClient) -> None:
    async def create(doc: dict[str, Any]) -> None:
        _ok(await client.post(f"{API}/entities", content=orjson.dumps(doc), headers=JSON), 201)

    async def patch(eid: str, attrs: dict[str, Any]) -> None:
        url = f"{API}/entities/{eid}/attrs"
        _ok(await client.patch(url, content=orjson.dumps(attrs), headers=JSON), 204)

    def prop(value: Any, **extra: Any) -> dict[str, Any]:
        return {"type": "Property", "value": value, **extra}

    await create(
        {
            "id": BUILDING_1,
            "type": "Building",
            "name": prop("Depot North"),
            "floors": prop(2),
            "location": _point(8.6821, 49.4141),
        }
    )
    await create(
        {
            "id": BUILDING_2,
            "type": "Building",
            "name": prop("Depot South"),
            "floors": prop(1),
            "location": {
                "type": "GeoProperty",
                "value": {
                    "type": "Polygon",
                    "coordinates": [[[8.60, 49.30], [8.61, 49.30], [8.61, 49.31], [8.60, 49.30]]],
                },
            },
        }
    )
    await create(
        {
            "id": ROOM,
            "type": "Room",
            "temperature": prop(20.5, observedAt=_iso(T0), unitCode="CEL"),
            "refBuilding": {"type": "Relationship", "object": BUILDING_1},
            "location": _point(8.6822, 49.4142),
        }
    )
    await create({"id": BUILDING_GONE, "type": "Building", "name": prop("Demolished")})
    # updates: each leaves its history in the temporal store
    await patch(BUILDING_1, {"floors": prop(3)})
    await patch(BUILDING_1, {"floors": prop(4), "name": prop("Depot North (extended)")})
    await patch(BUILDING_2, {"location": _point(8.6050, 49.3050)})
    await patch(ROOM, {"temperature": prop(21.0, observedAt=_iso(T0 + 60_000), unitCode="CEL")})
    await patch(ROOM, {"temperature": prop(21.4, observedAt=_iso(T0 + 120_000), unitCode="CEL")})
    raw = prop(20.9, observedAt=_iso(T0 + 120_000), datasetId="urn:ngsi-ld:Dataset:raw")
    extra = {"temperature": raw}  # a second instance of the attribute (another datasetId)
    url = f"{API}/entities/{ROOM}/attrs"
    _ok(await client.post(url, content=orjson.dumps(extra), headers=JSON), 204, 207)
    _ok(await client.delete(f"{API}/entities/{BUILDING_GONE}"), 204)
    # the temporal API's own provision
    vehicle = {
        "id": VEHICLE,
        "type": "Vehicle",
        "speed": [
            prop(120, observedAt="2020-09-01T12:03:00Z"),
            prop(80, observedAt="2020-09-01T12:05:00Z"),
            prop(100, observedAt="2020-09-01T12:07:00Z"),
        ],
        "fuelLevel": [
            prop(67, observedAt="2020-09-01T12:03:00Z"),
            prop(40, observedAt="2020-09-01T14:07:00Z", datasetId="urn:ngsi-ld:Dataset:fuel"),
        ],
    }
    url = f"{API}/temporal/entities"
    _ok(await client.post(url, content=orjson.dumps(vehicle), headers=JSON), 201)
    more = {"speed": [prop(90, observedAt="2020-09-01T12:09:00Z")]}
    url = f"{API}/temporal/entities/{VEHICLE}/attrs"
    _ok(await client.post(url, content=orjson.dumps(more), headers=JSON), 204)
    registration = {
        "id": REGISTRATION,
        "type": "ContextSourceRegistration",
        "information": [
            {
                "entities": [{"id": "urn:ngsi-ld:Vehicle:A456", "type": "Vehicle"}],
                "propertyNames": ["speed"],
            }
        ],
        "endpoint": "http://csource.invalid:1026",
        "@context": CORE,
    }
    url = f"{API}/csourceRegistrations"
    _ok(await client.post(url, content=orjson.dumps(registration), headers=LD), 201)


async def _subscribe(client: httpx.AsyncClient) -> None:
    """Made last, so that no write before it tries to notify its (unreachable) endpoint."""
    subscription = {
        "id": SUBSCRIPTION,
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "watchedAttributes": ["floors"],
        "q": "floors>2",
        "notification": {
            "attributes": ["floors", "name"],
            "endpoint": {"uri": "http://127.0.0.1:9/notify", "accept": "application/json"},
        },
        "@context": CORE,
    }
    url = f"{API}/subscriptions"
    _ok(await client.post(url, content=orjson.dumps(subscription), headers=LD), 201)


async def _control(client: httpx.AsyncClient, plane: ControlPlane, pki: Provisioner) -> None:
    # provisioning: one token spent on gw-2's certificate, one left unused
    await pki.create_claim("depot-north", 30 * 86400)
    bound = await pki.create_claim("depot-north", 3600, gateway_id="gw-2")
    await pki.provision(bound, make_csr("gw-2")[0])
    # the catalogue: a rule set, assigned to gw-1 and to a group holding gw-2; gw-1's report
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    _ok(await client.post("/ldt/v1/catalogue/rules", content=RULES, headers=admin), 201)
    assign = "/ldt/v1/catalogue/rules/cooling/assign"
    _ok(await client.post(assign, json={"gateway": "gw-1"}, headers=admin), 204)
    await plane.catalogue.group_add("north", ["gw-2"])
    _ok(await client.post(assign, json={"group": "north"}, headers=admin), 204)
    report = {"kind": "rules", "name": "cooling", "version": 1, "status": "running"}
    await plane.catalogue.artifacts.report("gw-1", report)
    # a command: gw-1 declares m0's fanSpeed writable, the API writes it (left PENDING)
    await plane.commands.declare("gw-1", {M0: ["fanSpeed"]})
    body = {"fanSpeed": {"type": "Property", "value": 2}}
    url = f"{API}/entities/{M0}/attrs"
    _ok(await client.post(url, content=orjson.dumps(body), headers=JSON), 204)


async def populate(store: Store, work: Path) -> None:
    """The scenario, on an open, empty ``store``; ``work``: a folder for the CA."""
    for gateway_id, token in TOKENS.items():
        await store.gateways.add(gateway_id, token_sha256(token), rotate=False)
    ca = CertificateAuthority.open(work / "pki", passphrase=b"")
    app = build_app(store, access=AccessControl.lab())
    app.state.pki = pki = Provisioner(store, ca)
    app.state.artifacts = ArtifactService(store, ca)
    app.state.control = plane = ControlPlane.build(store, app.state.notifier, app.state.artifacts)
    try:
        async with asgi_client(app) as client:
            await _ingest(client)
            await _ngsi_ld(client)
            await _control(client, plane, pki)
            await _subscribe(client)
    finally:
        plane.close()
        await app.state.notifier.aclose()
        await app.state.tenants.aclose()


# --- what a store holds ---------------------------------------------------------------------


async def describe(store: Store) -> dict[str, Any]:
    """What the manifest states, read through the ``Store`` API (the same on both stores)."""
    entities, _ = await store.entities.query(types=None, ids=None, limit=1000, offset=0)
    by_id = {e["id"]: e for e in entities}
    headers, _ = await store.temporal.query(types=None, ids=None, limit=1000, offset=0)
    temporal = [h.as_doc() for h in headers]
    subscriptions, _ = await store.subscriptions.list()
    readings: list[dict[str, Any]] = []
    for sid in sorted(SERIES, key=int):
        info = SERIES[sid]
        rows = await store.readings.history(info["entity_id"], info["attr"])
        readings.append(
            {
                "entity_id": info["entity_id"],
                "attr": info["attr"],
                "readings": [
                    [r.gateway_id, r.seq, r.observed_at_ms, r.value, r.quality, r.reason]
                    for r in rows
                ],
            }
        )
    current: dict[str, dict[str, Any]] = {}
    for eid in (M0, M1):
        doc = by_id[eid]
        current[eid] = {
            info["attr"]: {
                "value": doc[info["attr"]].get("value"),
                "observedAt": doc[info["attr"]].get("observedAt"),
                "quality": doc[info["attr"]].get("quality", {}).get("value"),
            }
            for info in SERIES.values()
            if info["entity_id"] == eid and info["attr"] in doc
        }
    return {
        "gateways": [g.id for g in await store.gateways.all()],
        "entities": {
            eid: {
                "type": doc["type"],
                "attrs": sorted(k for k in doc if k not in ("id", "type", "@context")),
            }
            for eid, doc in sorted(by_id.items())
        },
        "temporal_entities": sorted(e["id"] for e in temporal),
        "subscriptions": [s.doc["id"] for s in subscriptions],
        "registrations": [r["id"] for r in await store.registrations.list()],
        "readings_total": sum(len(r["readings"]) for r in readings),
        "readings": readings,
        "device_current_values": current,
    }


async def entity_docs(store: Store) -> dict[str, Any]:
    """Every entity document and temporal header (what the restored dump must give back)."""
    entities, _ = await store.entities.query(types=None, ids=None, limit=1000, offset=0)
    headers, _ = await store.temporal.query(types=None, ids=None, limit=1000, offset=0)
    temporal = [h.as_doc() for h in headers]
    return {"entities": entities, "temporal": temporal}


_INSTANCES = (
    "SELECT entity_id, attr, count(*), count(deleted_at_ms) FROM attr_instances"
    " GROUP BY entity_id, attr ORDER BY entity_id, attr"
)


def _instances(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [
        {"entity_id": r[0], "attr": r[1], "instances": int(r[2]), "deletion_records": int(r[3])}
        for r in sorted(rows)  # in Python: the server's collation may differ
    ]


def sqlite_instances(path: Path) -> list[dict[str, Any]]:
    """Temporal instances per (entity, attribute) in an SQLite file."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _instances(con.execute(_INSTANCES).fetchall())
    finally:
        con.close()


def postgres_instances(dsn: str) -> list[dict[str, Any]]:
    """Temporal instances per (entity, attribute) in the schema ``dsn``'s search_path names."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as con:
        return _instances(con.execute(_INSTANCES).fetchall())


# --- the two stores ---------------------------------------------------------------------------


async def make_sqlite(out: Path, work: Path) -> dict[str, Any]:
    """Populate a new SQLite store and leave it as ``out/cloud.db``; its description."""
    data = work / "sqlite-data"
    async with SqliteStore(path=data / DB_FILENAME) as store:
        await populate(store, work / "sqlite")
        described = await describe(store)
    _finish_sqlite(data / DB_FILENAME, out / fixtures.SQLITE_DB.name)
    # the finished file, opened again (a copy: opening it switches it back to WAL)
    again = work / "sqlite-again"
    _copy(out / fixtures.SQLITE_DB.name, again / DB_FILENAME)
    async with SqliteStore(path=again / DB_FILENAME) as store:
        if await describe(store) != described:
            raise RuntimeError("SqliteStore reads something else from the finished cloud.db")
    return described


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


def _finish_sqlite(source: Path, target: Path) -> None:
    """One self-contained, compact file: WAL checkpointed, journal mode DELETE, VACUUMed."""
    con = sqlite3.connect(source, isolation_level=None)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("VACUUM")
    finally:
        con.close()
    target.write_bytes(source.read_bytes())


def _pg_tool(server: PostgresServer, *args: str) -> str:
    done = subprocess.run(
        [str(server.bin_dir / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()}")
    return done.stdout


async def make_postgres(
    out: Path, work: Path, server: PostgresServer
) -> tuple[dict[str, Any], str]:
    """Populate schema ``ldt_legacy`` of a new database, dump it; (description, version)."""
    dbname = server.create_database()
    with psycopg.connect(server.dsn(dbname), autocommit=True, connect_timeout=10) as con:
        con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(fixtures.PG_SCHEMA)))
        row = con.execute("SHOW server_version").fetchone()
        version = "" if row is None else str(row[0]).split()[0]
    dsn = server.schema_dsn(dbname, fixtures.PG_SCHEMA)
    async with PostgresStore(dsn=dsn, pool_size=2) as store:
        await populate(store, work / "postgresql")
        described = await describe(store)
        docs = await entity_docs(store)
    described["attr_instances"] = postgres_instances(dsn)
    described["tables"] = fixtures.postgres_counts(server.dsn(dbname), fixtures.PG_SCHEMA)
    dumped = _pg_tool(
        server,
        "pg_dump",
        "--format=plain",
        "--inserts",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        f"--schema={fixtures.PG_SCHEMA}",
        server.dsn(dbname),
    )
    # pg_dump 15.14+ wraps its output in \restrict KEY ... \unrestrict KEY, which older psql
    # refuses; this dump is ours, so the guard is dropped and any psql >= 15 loads it
    lines = [
        ln
        for ln in dumped.splitlines(keepends=True)
        if not ln.startswith(("\\restrict", "\\unrestrict"))
    ]
    (out / fixtures.PG_DUMP.name).write_text("".join(lines))
    await _check_restore(out / fixtures.PG_DUMP.name, server, described, docs)
    return described, version


async def _check_restore(
    dump: Path, server: PostgresServer, described: dict[str, Any], docs: dict[str, Any]
) -> None:
    """Load the dump into a fresh database (under another schema name) and read it back."""
    dbname = server.create_database()
    dsn = fixtures.restore_postgres(server, dbname, schema="restored", dump=dump)
    counts = fixtures.postgres_counts(server.dsn(dbname), "restored")
    if counts != described["tables"]:
        raise RuntimeError(f"the restored dump counts {counts}, not {described['tables']}")
    async with PostgresStore(dsn=dsn, pool_size=2) as store:
        again = await describe(store)
        again_docs = await entity_docs(store)
    expected = {k: v for k, v in described.items() if k not in ("attr_instances", "tables")}
    if again != expected or again_docs != docs:
        raise RuntimeError("PostgresStore reads something else from the restored dump")


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], capture_output=True, text=True, check=False, cwd=fixtures.DIR
    )
    return done.stdout.strip()


def _manifest(sqlite_side: dict[str, Any], pg_side: dict[str, Any], pg_version: str) -> bytes:
    same = {k: v for k, v in pg_side.items() if k not in ("attr_instances", "tables")}
    if same != {k: v for k, v in sqlite_side.items() if k not in ("attr_instances", "tables")}:
        raise RuntimeError("the two stores hold different data after the same scenario")
    if sqlite_side["attr_instances"] != pg_side["attr_instances"]:
        raise RuntimeError("the two stores hold different temporal instances")
    dirty = _git("status", "--porcelain", "--", ":/cloud", ":/ldt")
    manifest = {
        "about": (
            "A store written by the layout before issue 12's rewrite (README.md beside this"
            " file). Both files hold the same data; times the broker stamped itself"
            " (createdAt, modifiedAt, tokens' and certificates' times) differ between them."
        ),
        "made_with_commit": _git("rev-parse", "HEAD") + (" (with local changes)" if dirty else ""),
        "cloud_code_last_changed_in": _git("log", "-1", "--format=%H", "--", ":/cloud", ":/ldt"),
        "made_on": datetime.date.today().isoformat(),
        "files": {
            "sqlite": fixtures.SQLITE_DB.name,
            "postgresql": fixtures.PG_DUMP.name,
            "postgresql_schema": fixtures.PG_SCHEMA,
            "postgresql_dumped_from": pg_version,
        },
        "gateway_tokens": TOKENS,
        "admin_token": ADMIN_TOKEN,
        **same,
        "attr_instances": sqlite_side["attr_instances"],
        "tables": {"sqlite": sqlite_side["tables"], "postgresql": pg_side["tables"]},
    }
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


async def build(out: Path, bin_dir: Path) -> bytes:
    """Write both stores' files into ``out``; the manifest's bytes."""
    with tempfile.TemporaryDirectory(prefix="ldt-legacy-") as tmp:
        work = Path(tmp)
        sqlite_side = await make_sqlite(out, work)
        sqlite_side["attr_instances"] = sqlite_instances(out / fixtures.SQLITE_DB.name)
        sqlite_side["tables"] = fixtures.sqlite_counts(out / fixtures.SQLITE_DB.name)
        with PostgresServer(bin_dir=bin_dir) as server:
            pg_side, pg_version = await make_postgres(out, work, server)
    return _manifest(sqlite_side, pg_side, pg_version)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=fixtures.DIR, help="where to write (default: beside this)"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    bin_dir = find_pg_bin()
    if bin_dir is None:
        print("no PostgreSQL binaries: run scripts/bootstrap", file=sys.stderr)
        return 2
    (out / fixtures.MANIFEST.name).write_bytes(asyncio.run(build(out, bin_dir)))
    for name in (fixtures.SQLITE_DB.name, fixtures.PG_DUMP.name, fixtures.MANIFEST.name):
        print(f"{out / name}: {(out / name).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
