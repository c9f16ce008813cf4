"""NGSI-LD broker throughput and latency over loopback HTTP, on SQLite and PostgreSQL.

The broker runs as its own process (``ldt cloud serve``), as in production, on
each store in turn: SQLite in a data folder, then a real PostgreSQL cluster
(``tests.pg.PostgresServer``: initdb + pg_ctl into a temporary folder, fsync
on, run as ``nobody`` when we are root). A few concurrent requests drive it,
as a real client would: the write rows through a lean keep-alive HTTP/1.1
client (``_http_load``: httpx cost as much CPU per PATCH as the broker, on the
same two cores), the reads and checks through an httpx ``AsyncClient``:

- batch upserts: ``POST /entityOperations/upsert`` with 1,000 WeatherObserved
  entities (8 attributes, a ``location`` Point within 20 km of a city centre);
- single updates: ``PATCH /entities/{id}/attrs`` changing ``temperature``;
- queries: ``GET /entities?type=WeatherObserved&q=...&limit=100`` in five forms: a
  comparison half the entities match (its page fills in id order), and four that match
  about 1 % or one entity, answered from the value indexes declared on ``temperature``
  and ``name`` before the load (``ldt cloud index add``): a numeric comparison, a
  string equality, a range, and an ``observedAt`` window. Every page is compared with
  the expected ids;
- near geo-queries: ``georel=near;maxDistance==500`` at random points;
- notifications: a subscription to every WeatherObserved's ``temperature``
  notifies a local HTTP receiver (a bare asyncio server in this process) while
  single updates run; counted end to end (first PATCH sent to last entity
  received);
- temporal queries: one entity whose ``temperature`` has one instance a second
  for a day (86,400; ``--quick``: one every 10 s), then ``GET
  /temporal/entities/{id}`` with ``timerel=between`` over a random hour and
  over the whole day (the broker answers at most 10,000 instances: 206 and a
  Content-Range), and ``lastN=100``.

Baselines in the same run, for the ratios: a bare SQLite ``executemany`` of
the same entity documents (WAL, synchronous=FULL, 1,000 per transaction) and
one ``UPDATE`` of a changed document per transaction for the write rows; a
single-entity ``GET /entities/{id}`` for the query rows; the single updates
without a subscription for the notification row. Answers are checked (every
write acknowledged, queries return only matching entities, near-queries
exactly the entities within 500 m, every update notified, temporal answers
hold exactly the instances of their window): a wrong answer or an error status
exits non-zero. A missed performance target is only reported: benchmark
machines are noisy.

    python bench/broker.py            # 100,000 entities
    python bench/broker.py --quick    # 10,000 entities (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parent.parent))  # for tests.pg

import httpx
import orjson
from _cloud import free_port
from _http_load import HttpAnswer, LeanConnection, encode_request
from _table import print_table

from tests.pg import PostgresServer, find_pg_bin

ENTITY_TYPE = "WeatherObserved"
BATCH = 1000
CLIENTS = 4
"""Concurrent requests in flight: a few, as one real client application would keep."""
UPDATE_CLIENTS = 8
CENTRE = (2.3522, 48.8566)  # Paris, lon/lat
RADIUS_M = 20_000.0
MAX_DISTANCE_M = 500.0
EARTH_RADIUS_M = 6_371_008.8
Q_THRESHOLD = 20.0
Q_SHARE = 0.01
"""The selective ``q`` forms match about this share of the entities (1 %)."""
OBSERVED_START_S = 1_714_564_800  # 2024-05-01T12:00:00Z
OBSERVED_STEP_S = 1
"""Entity i's attributes were observed at OBSERVED_START_S + i seconds."""
INDEXED = ("temperature", "name")
"""Attributes declared for a value index (``ldt cloud index add``) before the load."""
API = "/ngsi-ld/v1"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

TARGET_UPSERTS_S = 10_000.0
TARGET_UPDATES_S = 2_500.0
TARGET_NEAR_P95_MS = 50.0
TARGET_Q_S = 200.0
TARGET_Q_P95_MS = 50.0


class BenchError(Exception):
    """The broker answered with an error or a wrong result: the run is invalid."""


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """How much work each phase does."""

    entities: int
    updates: int
    queries: int
    """At most this many of each kind of query, and for at most ``query_budget_s``."""
    query_budget_s: float
    near_checked: int
    """Near-queries compared with a brute-force answer (untimed)."""
    instance_step_s: int
    """Seconds between two temporal instances (over one day)."""


QUICK = Sizes(
    entities=10_000,
    updates=2_000,
    queries=500,
    query_budget_s=2.0,
    near_checked=3,
    instance_step_s=10,
)
FULL = Sizes(
    entities=100_000,
    updates=20_000,
    queries=3_000,
    query_budget_s=30.0,
    near_checked=10,
    instance_step_s=1,
)
DAY_S = 86_400
DAY_START = "2024-05-01T00:00:00.000Z"
DAY_START_S = 1_714_521_600  # DAY_START as Unix seconds
TEMPORAL_ID = "urn:ngsi-ld:WeatherObserved:bench-temporal"
TEMPORAL_CHUNK = 3_600
"""Instances per POST (one hour at 1 Hz, ~250 kB)."""
LAST_N = 100
INSTANCE_LIMIT = 10_000
"""The broker's most instances per temporal answer (``LDT_TEMPORAL_INSTANCE_LIMIT``)."""
NOTIFY_STALL_S = 2.0
"""The notification phase ends when every update arrived or none did for this long."""
COUNTERS_WAIT_S = 0.5
"""Longer than the broker waits before writing notification counters (0.15 s)."""


# --- the data ---------------------------------------------------------------------------


def _random_point(rng: random.Random) -> tuple[float, float]:
    """A point uniformly distributed in the disc of RADIUS_M around CENTRE (spherical)."""
    d = RADIUS_M * math.sqrt(rng.random()) / EARTH_RADIUS_M
    bearing = rng.uniform(0, 2 * math.pi)
    lon0, lat0 = math.radians(CENTRE[0]), math.radians(CENTRE[1])
    lat = math.asin(math.sin(lat0) * math.cos(d) + math.cos(lat0) * math.sin(d) * math.cos(bearing))
    lon = lon0 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(lat0),
        math.cos(d) - math.sin(lat0) * math.sin(lat),
    )
    return round(math.degrees(lon), 7), round(math.degrees(lat), 7)


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance between two lon/lat points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def entity_id(i: int) -> str:
    return f"urn:ngsi-ld:{ENTITY_TYPE}:bench-{i:06d}"


def make_entities(n: int) -> tuple[list[dict[str, Any]], dict[str, tuple[float, float]]]:
    """``n`` realistic WeatherObserved entities (normalized) and their locations by id."""
    rng = random.Random(42)
    entities, points = [], {}
    for i in range(n):
        observed = _iso(OBSERVED_START_S + i * OBSERVED_STEP_S)
        point = _random_point(rng)
        eid = entity_id(i)
        points[eid] = point
        entities.append(
            {
                "id": eid,
                "type": ENTITY_TYPE,
                "name": {"type": "Property", "value": f"Station {i}"},
                "temperature": {
                    "type": "Property",
                    "value": round(rng.uniform(5, 35), 2),
                    "unitCode": "CEL",
                    "observedAt": observed,
                },
                "relativeHumidity": {
                    "type": "Property",
                    "value": round(rng.uniform(0.2, 1.0), 3),
                    "unitCode": "P1",
                    "observedAt": observed,
                },
                "atmosphericPressure": {
                    "type": "Property",
                    "value": round(rng.uniform(980, 1040), 1),
                    "unitCode": "A97",
                    "observedAt": observed,
                },
                "windSpeed": {
                    "type": "Property",
                    "value": round(rng.uniform(0, 20), 2),
                    "unitCode": "MTS",
                },
                "windDirection": {
                    "type": "Property",
                    "value": round(rng.uniform(0, 360), 1),
                    "unitCode": "DD",
                },
                "precipitation": {
                    "type": "Property",
                    "value": round(rng.uniform(0, 5), 2),
                    "unitCode": "MMT",
                },
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": list(point)},
                },
            }
        )
    return entities, points


# --- baselines ---------------------------------------------------------------------------


def raw_sqlite_rates(
    tmp: Path, entities: Sequence[dict[str, Any]], updates: int
) -> tuple[float, float]:
    """(documents/s with executemany 1,000 per txn, single UPDATEs/s one per txn)."""
    docs = [(e["id"], orjson.dumps(e).decode()) for e in entities]
    con = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE entities (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
        started = time.perf_counter()
        for start in range(0, len(docs), BATCH):
            con.execute("BEGIN")
            con.executemany(
                "INSERT INTO entities (id, doc) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                docs[start : start + BATCH],
            )
            con.execute("COMMIT")
        batch_rate = len(docs) / (time.perf_counter() - started)
        rng = random.Random(3)
        picks = []  # a changed document each time, as a PATCH writes (SQLite skips no-ops)
        for _ in range(updates):
            entity = entities[rng.randrange(len(entities))]
            changed = {**entity["temperature"], "value": round(rng.uniform(5, 35), 2)}
            picks.append((entity["id"], orjson.dumps({**entity, "temperature": changed}).decode()))
        started = time.perf_counter()
        for eid, doc in picks:
            con.execute("BEGIN")
            con.execute("UPDATE entities SET doc = ? WHERE id = ?", (doc, eid))
            con.execute("COMMIT")
        update_rate = updates / (time.perf_counter() - started)
    finally:
        con.close()
    return batch_rate, update_rate


# --- the broker --------------------------------------------------------------------------


@contextmanager
def running_broker(data: Path, store: str | None, *, auth: bool = False) -> Iterator[str]:
    """``ldt cloud serve`` as its own process; yields its base URL, stops it after.

    Without ``auth`` it runs ``--insecure-no-auth`` (the rows measure the broker, not
    sign-in); ``measure_auth`` compares the two."""
    port = free_port()
    cmd = [sys.executable, "-m", "ldt", "cloud", "serve", "--port", str(port)]
    cmd += ["--data", str(data), "--log-level", "WARNING"]
    if not auth:
        cmd += ["--insecure-no-auth"]
    if store is not None:
        cmd += ["--store", store]
    log = data.parent / f"broker-{port}.log"
    for name in INDEXED:  # as an operator would, before the data arrives
        index = [sys.executable, "-m", "ldt", "cloud", "index", "add", name, "--data", str(data)]
        if store is not None:
            index += ["--store", store]
        subprocess.run(index, check=True, capture_output=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise BenchError(f"broker exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"{url}{API}/types", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise BenchError("broker did not start within 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _check(response: httpx.Response, expected: int, what: str) -> None:
    if response.status_code != expected:
        raise BenchError(
            f"{what}: HTTP {response.status_code} (want {expected}): {response.text[:500]}"
        )


async def _run_clients(
    jobs: Sequence[Callable[[], Awaitable[None]]], clients: int, budget_s: float = math.inf
) -> tuple[float, list[float]]:
    """Run ``jobs`` with ``clients`` in flight, starting none after ``budget_s``.

    Returns (elapsed seconds, per-job latencies in ms): slow queries on a big
    store are sampled for a bounded time rather than a fixed count.
    """
    queue = iter(jobs)
    latencies: list[float] = []
    deadline = time.perf_counter() + budget_s

    async def worker() -> None:
        for job in queue:  # the shared iterator hands each job to exactly one worker
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            await job()
            latencies.append((time.perf_counter() - started) * 1000.0)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(clients):
            group.create_task(worker())
    return time.perf_counter() - started, latencies


def _check_lean(answer: HttpAnswer, expected: int, what: str) -> None:
    if answer.status != expected:
        raise BenchError(f"{what}: {answer.status} {answer.body[:500]!r}")


def _patches(values: dict[str, float]) -> list[bytes]:
    """``PATCH /entities/{id}/attrs`` setting ``temperature``, one per entity, pre-encoded."""
    return [
        encode_request(
            "PATCH",
            f"{API}/entities/{eid}/attrs",
            orjson.dumps({"temperature": {"type": "Property", "value": value}}),
        )
        for eid, value in values.items()
    ]


async def _run_lean(
    url: str, requests: Sequence[bytes], clients: int, check: Callable[[HttpAnswer], None]
) -> float:
    """Send ``requests`` over ``clients`` keep-alive connections, one in flight on each.

    The write rows use this lean client, not httpx (why: bench/_http_load.py).
    Returns the elapsed seconds; ``check`` sees every answer.
    """
    queue = iter(requests)

    async def worker(conn: LeanConnection) -> None:
        for request in queue:  # the shared iterator hands each request to one worker
            check(await conn.send(request))

    conns = [LeanConnection(url) for _ in range(clients)]
    async with contextlib.AsyncExitStack() as stack:
        for conn in conns:
            await stack.enter_async_context(conn)
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for conn in conns:
                group.create_task(worker(conn))
        return time.perf_counter() - started


@dataclass(kw_only=True)
class Result:
    """One store's measurements."""

    upsert_s: float = 0.0
    update_s: float = 0.0
    lookup: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)
    """(requests/s, p50 ms, p95 ms, requests)."""
    queries: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    """Per ``q`` form (``q_forms``)."""
    near: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)
    near_hits: float = 0.0
    notify_s: float = 0.0
    """Updates notified per second, end to end."""
    notifications: int = 0
    """Notification requests the receiver got (several entities may share one)."""
    dropped: int = 0
    """Notifications the broker counted as failed (its timesFailed): dropped when even
    coalescing left no room in the endpoint's queue, or attempts that failed."""
    temporal: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _p(samples: list[float], q: int) -> float:
    """The q-th percentile (1..99)."""
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def _summary(elapsed: float, latencies: list[float]) -> tuple[float, float, float, int]:
    return len(latencies) / elapsed, _p(latencies, 50), _p(latencies, 95), len(latencies)


def _temperature(e: dict[str, Any]) -> float:
    return float(e["temperature"]["value"])


def _above(t: float, e: dict[str, Any]) -> bool:
    return _temperature(e) > t


def _between(low: float, high: float, e: dict[str, Any]) -> bool:
    return low <= _temperature(e) <= high


def _observed_between(start: int, end: int, e: dict[str, Any]) -> bool:
    """Entity i was observed at OBSERVED_START_S + i s, unless a PATCH replaced it since."""
    if "observedAt" not in e["temperature"]:
        return False
    return start <= OBSERVED_START_S + int(e["id"].rsplit("-", 1)[1]) * OBSERVED_STEP_S <= end


QueryCase = tuple[str, list[str]]
"""A ``q`` text and the ids of the page it must return (the first 100 matches by id)."""
Job = Callable[[], Awaitable[None]]
VARIANTS = 20


def q_forms(entities: Sequence[dict[str, Any]], rng: random.Random) -> dict[str, list[QueryCase]]:
    """The ``q`` forms timed, each with a few variants and their answers, from the local
    copy of the entities (plain comparisons here, not the broker's query code)."""

    def page(test: Callable[[dict[str, Any]], bool]) -> list[str]:
        out: list[str] = []
        for e in entities:  # in id order
            if test(e):
                out.append(e["id"])
                if len(out) == 100:
                    break
        return out

    temps = sorted(_temperature(e) for e in entities)
    n = len(entities)
    above: list[QueryCase] = []
    ranges: list[QueryCase] = []
    names: list[QueryCase] = []
    windows: list[QueryCase] = []
    for _ in range(VARIANTS):
        t = temps[int(n * (1 - Q_SHARE * rng.uniform(0.5, 1.5)))]
        above.append((f"temperature>{t:g}", page(partial(_above, t))))
        low = round(rng.uniform(5, 34), 2)
        high = round(low + 30 * Q_SHARE, 2)
        in_range = page(partial(_between, low, high))
        ranges.append((f"temperature=={low:g}..{high:g}", in_range))
        i = rng.randrange(n)
        names.append((f'name=="Station {i}"', [entity_id(i)]))
        start = OBSERVED_START_S + rng.randrange(n)
        end = start + int(n * Q_SHARE) * OBSERVED_STEP_S
        windows.append(
            (
                f"temperature.observedAt=={_iso(start)}..{_iso(end)}",
                page(partial(_observed_between, start, end)),
            )
        )
    half = f"temperature>{Q_THRESHOLD:g}"
    return {
        f"q={half} (half match)": [(half, page(partial(_above, Q_THRESHOLD)))],
        "q=temperature>T (1 % match)": above,
        'q=name=="Station N" (1 match)': names,
        "q=temperature==a..b (1 % match)": ranges,
        "q=temperature.observedAt==t0..t1 (1 % match)": windows,
    }


async def measure(url: str, sizes: Sizes) -> Result:
    """Every phase against one running broker."""
    entities, points = make_entities(sizes.entities)
    result = Result()
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(
        base_url=url + API, headers=JSON_HEADERS, timeout=120, limits=limits
    ) as client:
        # batch upserts
        bodies = [orjson.dumps(entities[i : i + BATCH]) for i in range(0, len(entities), BATCH)]

        def upsert(answer: HttpAnswer) -> None:
            _check_lean(answer, 201, "upsert")  # every entity is new: 201 with all the ids
            if len(orjson.loads(answer.body)) != BATCH:
                raise BenchError(f"upsert created {len(orjson.loads(answer.body))} of {BATCH}")

        requests = [encode_request("POST", f"{API}/entityOperations/upsert", b) for b in bodies]
        await _run_lean(url, requests[:1], 1, upsert)  # warms the code paths; not timed
        elapsed = await _run_lean(url, requests[1:], CLIENTS, upsert)
        result.upsert_s = (len(entities) - BATCH) / elapsed
        await _check_count(client, len(entities))

        # single updates
        rng = random.Random(5)
        expected: dict[str, float] = {}
        # distinct ids: concurrent updates of one entity could land in either order
        targets = rng.sample(range(len(entities)), sizes.updates)

        for i in range(sizes.updates):
            expected[entity_id(targets[i])] = round(rng.uniform(5, 35), 2)
        elapsed = await _run_lean(
            url, _patches(expected), UPDATE_CLIENTS, lambda a: _check_lean(a, 204, "update")
        )
        result.update_s = sizes.updates / elapsed
        for entity in entities:  # keep the local copy in step for the query checks
            if entity["id"] in expected:  # PATCH replaces the attribute whole
                entity["temperature"] = {"type": "Property", "value": expected[entity["id"]]}
        await _check_updates(client, expected, entities)

        # single lookups (the query baseline)
        def lookup(i: int) -> Callable[[], Awaitable[None]]:
            eid = entity_id(rng.randrange(len(entities)))

            async def job() -> None:
                response = await client.get(f"/entities/{eid}")
                _check(response, 200, "GET entity")
                if response.json()["id"] != eid:
                    raise BenchError(f"GET {eid} returned {response.json()['id']}")

            return job

        await _run_clients([lookup(i) for i in range(50)], CLIENTS)  # warm-up
        result.lookup = _summary(
            *await _run_clients(
                [lookup(i) for i in range(sizes.queries)], CLIENTS, sizes.query_budget_s
            )
        )

        # q queries: one form that half the entities match (its page fills in id order)
        # and the selective forms, each answered from a declared value index
        for label, variants in q_forms(entities, rng).items():

            def query(i: int, variants: list[QueryCase] = variants) -> Job:
                text, wanted = variants[i % len(variants)]
                params = {"type": ENTITY_TYPE, "q": text, "limit": "100"}

                async def job() -> None:
                    response = await client.get("/entities", params=params)
                    _check(response, 200, f"q={text}")
                    got = [e["id"] for e in response.json()]
                    if got != wanted:
                        raise BenchError(
                            f"q={text} returned {len(got)} entities, want {len(wanted)}"
                            f" (first difference near {next(iter(set(got) ^ set(wanted)), '-')})"
                        )

                return job

            await _run_clients([query(i) for i in range(CLIENTS)], CLIENTS)  # warm-up
            result.queries[label] = _summary(
                *await _run_clients(
                    [query(i) for i in range(sizes.queries)], CLIENTS, sizes.query_budget_s
                )
            )

        # near geo-queries; the first few are compared with a brute-force answer
        hits: list[int] = []

        def near(i: int) -> Callable[[], Awaitable[None]]:
            centre = _random_point(rng)
            params = {
                "type": ENTITY_TYPE,
                "georel": f"near;maxDistance=={MAX_DISTANCE_M:g}",
                "geometry": "Point",
                "coordinates": f"[{centre[0]},{centre[1]}]",
                "limit": "1000",
            }

            async def job() -> None:
                response = await client.get("/entities", params=params)
                _check(response, 200, "near query")
                found = {e["id"] for e in response.json()}
                hits.append(len(found))
                if i < sizes.near_checked:
                    truth = {
                        eid for eid, p in points.items() if _distance_m(centre, p) <= MAX_DISTANCE_M
                    }
                    # points within a centimetre of the edge may fall either side of it
                    edge = {
                        eid
                        for eid, p in points.items()
                        if abs(_distance_m(centre, p) - MAX_DISTANCE_M) < 0.01
                    }
                    if found ^ truth - edge:
                        raise BenchError(
                            f"near query at {centre}: {len(found - truth)} extra,"
                            f" {len(truth - found)} missing entities"
                        )

            return job

        # the checked ones double as warm-up
        await _run_clients([near(i) for i in range(sizes.near_checked)], 1)
        hits.clear()
        result.near = _summary(
            *await _run_clients(
                [near(i + sizes.near_checked) for i in range(sizes.queries)],
                CLIENTS,
                sizes.query_budget_s,
            )
        )
        result.near_hits = statistics.mean(hits) if hits else 0.0

        await measure_notifications(client, url, sizes, result, rng)
        await measure_temporal(client, sizes, result, rng)
    return result


class Receiver:
    """A local HTTP/1.1 notification endpoint: counts POSTs and the entities they carry.

    A bare asyncio server (keep-alive, Content-Length bodies, 204 answers): cheaper
    than any framework, so the receiver does not limit what is measured.
    """

    def __init__(self) -> None:
        self.requests = 0
        self.seen: dict[str, float] = {}
        """Entity id -> the last temperature notified."""
        self.changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/notify"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:  # the broker keeps its connections alive
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests += 1
                for entity in orjson.loads(body)["data"]:
                    self.seen[entity["id"]] = entity["temperature"]["value"]
                self.changed.set()
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


async def measure_notifications(
    client: httpx.AsyncClient, url: str, sizes: Sizes, result: Result, rng: random.Random
) -> None:
    """Single updates under a subscription to them; notified updates/s, end to end."""
    receiver = Receiver()
    uri = await receiver.start()
    sub_id = "urn:ngsi-ld:Subscription:bench-notify"
    subscription = {
        "id": sub_id,
        "type": "Subscription",
        "entities": [{"type": ENTITY_TYPE}],
        "watchedAttributes": ["temperature"],
        "notification": {
            "attributes": ["temperature"],
            "format": "normalized",
            "endpoint": {"uri": uri, "accept": "application/json"},
        },
    }
    try:
        _check(
            await client.post("/subscriptions", content=orjson.dumps(subscription)),
            201,
            "create subscription",
        )
        targets = rng.sample(range(sizes.entities), sizes.updates)
        expected = {entity_id(t): round(rng.uniform(40, 60), 2) for t in targets}

        requests = _patches(expected)
        started = time.perf_counter()
        await _run_lean(url, requests, UPDATE_CLIENTS, lambda a: _check_lean(a, 204, "update"))
        last = time.perf_counter()
        while True:  # until every update is notified, or nothing arrives for a while
            receiver.changed.clear()
            delivered = sum(1 for e, v in expected.items() if receiver.seen.get(e) == v)
            if delivered == len(expected):
                break
            try:
                await asyncio.wait_for(receiver.changed.wait(), NOTIFY_STALL_S)
            except TimeoutError:
                break
            last = time.perf_counter()
        result.notify_s = delivered / (last - started)
        await asyncio.sleep(COUNTERS_WAIT_S)  # the broker writes its counters in batches
        response = await client.get(f"/subscriptions/{sub_id}")
        _check(response, 200, "read subscription")
        got = response.json()
        result.dropped = int(
            got.get("timesFailed", got.get("notification", {}).get("timesFailed", 0))
        )
        if delivered + result.dropped != len(expected):
            raise BenchError(
                f"{len(expected)} updates: {delivered} notified, {result.dropped} counted as"
                " failed; the rest vanished"
            )
        result.notifications = receiver.requests
    finally:
        await client.delete(f"/subscriptions/{sub_id}")
        await receiver.stop()


def _instances(start_s: int, count: int, step_s: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "Property",
            "value": round(20 + 5 * math.sin(t / 3_600), 2),
            "observedAt": _iso(DAY_START_S + t),
        }
        for t in range(start_s, start_s + count * step_s, step_s)
    ]


def _iso(unix_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(unix_s))


async def measure_temporal(
    client: httpx.AsyncClient, sizes: Sizes, result: Result, rng: random.Random
) -> None:
    """Load one day of ``temperature`` instances, then time three kinds of temporal query."""
    step = sizes.instance_step_s
    total = DAY_S // step
    per_post = TEMPORAL_CHUNK // step
    url = f"/temporal/entities/{TEMPORAL_ID}"
    for i, start in enumerate(range(0, DAY_S, per_post * step)):
        chunk = _instances(start, min(per_post, (DAY_S - start) // step), step)
        if i == 0:
            body = {"id": TEMPORAL_ID, "type": ENTITY_TYPE, "temperature": chunk}
            _check(
                await client.post("/temporal/entities", content=orjson.dumps(body)),
                201,
                "create temporal entity",
            )
        else:
            response = await client.post(
                f"{url}/attrs", content=orjson.dumps({"temperature": chunk})
            )
            _check(response, 204, "add temporal instances")

    def between(
        start_s: int, length_s: int, want: int, status: int
    ) -> Callable[[], Awaitable[None]]:
        params = {
            "attrs": "temperature",
            "timerel": "between",
            "timeAt": _iso(DAY_START_S + start_s),
            "endTimeAt": _iso(DAY_START_S + start_s + length_s),
        }

        async def job() -> None:
            response = await client.get(url, params=params)
            _check(response, status, "temporal query")
            got = response.json()["temperature"]
            if len(got) != want:
                raise BenchError(f"temporal query {params}: {len(got)} instances, want {want}")

        return job

    def last_n() -> Callable[[], Awaitable[None]]:
        params = {"attrs": "temperature", "lastN": str(LAST_N)}

        async def job() -> None:
            response = await client.get(url, params=params)
            _check(response, 200, "temporal lastN query")
            got = response.json()["temperature"]
            newest = _iso(DAY_START_S + DAY_S - step)
            if len(got) != LAST_N or newest not in {g["observedAt"] for g in got}:
                raise BenchError(f"lastN={LAST_N}: {len(got)} instances, newest missing")

        return job

    hour = 3_600 // step
    day_status = 206 if total > INSTANCE_LIMIT else 200
    kinds: dict[str, Callable[[int], Callable[[], Awaitable[None]]]] = {
        "hour": lambda _: between(rng.randrange(0, DAY_S - 3_600, step), 3_600, hour, 200),
        "day": lambda _: between(0, DAY_S, min(total, INSTANCE_LIMIT), day_status),
        "lastN": lambda _: last_n(),
    }
    for name, make in kinds.items():
        await _run_clients([make(i) for i in range(CLIENTS)], CLIENTS)  # warm-up, checked
        result.temporal[name] = _summary(
            *await _run_clients(
                [make(i) for i in range(sizes.queries)], CLIENTS, sizes.query_budget_s
            )
        )


async def _check_count(client: httpx.AsyncClient, n: int) -> None:
    response = await client.get(
        "/entities", params={"type": ENTITY_TYPE, "count": "true", "limit": "1"}
    )
    _check(response, 200, "count")
    count = int(response.headers.get("NGSILD-Results-Count", "-1"))
    if count != n:
        raise BenchError(f"the broker holds {count} {ENTITY_TYPE} entities; want {n}")


async def _check_updates(
    client: httpx.AsyncClient, expected: dict[str, float], entities: Sequence[dict[str, Any]]
) -> None:
    """A few updated entities hold the last value sent, and their other attributes."""
    by_id = {e["id"]: e for e in entities}
    for eid in list(expected)[:10]:
        response = await client.get(f"/entities/{eid}")
        _check(response, 200, "GET updated entity")
        got = response.json()
        if got["temperature"]["value"] != expected[eid]:
            raise BenchError(
                f"{eid}: temperature {got['temperature']['value']}, want {expected[eid]}"
            )
        if got["location"]["value"] != by_id[eid]["location"]["value"]:
            raise BenchError(f"{eid}: the update lost its location")


# --- the report --------------------------------------------------------------------------


# --- what authentication costs ----------------------------------------------------------

AUTH_ENTITIES = 2_000
AUTH_ROUNDS = 3
AUTH_PASSWORD = "bench password, long enough"


async def _auth_round(url: str, headers: dict[str, str], n: int) -> tuple[float, float]:
    """(GET by id /s, PATCH /s) with ``headers`` on every request, lean client, 4 in flight."""
    rng = random.Random(11)
    gets = [
        encode_request("GET", f"{API}/entities/{entity_id(rng.randrange(AUTH_ENTITIES))}",
                       headers=headers)
        for _ in range(n)
    ]  # fmt: skip
    patches = [
        encode_request(
            "PATCH",
            f"{API}/entities/{entity_id(rng.randrange(AUTH_ENTITIES))}/attrs",
            orjson.dumps({"temperature": {"type": "Property", "value": rng.uniform(5, 35)}}),
            headers=headers,
        )
        for _ in range(n)
    ]
    await _run_lean(url, gets[:50], CLIENTS, lambda a: _check_lean(a, 200, "GET"))  # warm-up
    get_s = await _run_lean(url, gets, CLIENTS, lambda a: _check_lean(a, 200, "GET"))
    patch_s = await _run_lean(url, patches, CLIENTS, lambda a: _check_lean(a, 204, "PATCH"))
    return n / get_s, n / patch_s


def measure_auth(data: Path, n: int, rounds: int = AUTH_ROUNDS) -> dict[str, tuple[float, float]]:
    """GET by id and PATCH against the same SQLite data, served alternately with
    ``--insecure-no-auth`` and with a bearer token (an operator's, signed in through
    ``POST /auth/token``); per mode the best of ``rounds`` rounds (noisy machines).
    Returns {"lab": (get/s, patch/s), "token": (...)}."""
    data.mkdir()
    add = [sys.executable, "-m", "ldt", "cloud", "users", "add", "bench", "--role", "operator",
           "--password-stdin", "--data", str(data)]  # fmt: skip
    subprocess.run(add, input=AUTH_PASSWORD + "\n", text=True, check=True, capture_output=True)
    entities, _ = make_entities(AUTH_ENTITIES)
    with running_broker(data, None) as url:
        response = httpx.post(
            f"{url}{API}/entityOperations/upsert", content=orjson.dumps(entities),
            headers=JSON_HEADERS, timeout=120,
        )  # fmt: skip
        _check(response, 201, "auth rows: upsert")
    best: dict[str, tuple[float, float]] = {"lab": (0.0, 0.0), "token": (0.0, 0.0)}
    for _ in range(rounds):
        for mode in ("lab", "token"):
            with running_broker(data, None, auth=mode == "token") as url:
                headers = {}
                if mode == "token":
                    form = {"grant_type": "password", "username": "bench",
                            "password": AUTH_PASSWORD}  # fmt: skip
                    signed = httpx.post(f"{url}/auth/token", data=form, timeout=30)
                    _check(signed, 200, "sign in")
                    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
                got = asyncio.run(_auth_round(url, headers, n))
                best[mode] = (max(best[mode][0], got[0]), max(best[mode][1], got[1]))
    return best


def auth_table(best: dict[str, tuple[float, float]], n: int, rounds: int) -> None:
    lab, token = best["lab"], best["token"]
    print_table(
        f"Authentication's cost (SQLite, {AUTH_ENTITIES:,} entities, {n:,} requests a row,"
        f" best of {rounds} alternating rounds; target: token >= 0.95 of no auth)",
        ("operation", "--insecure-no-auth /s", "bearer token /s", "ratio"),
        [
            ("GET entities/{id}", _rate(lab[0]), _rate(token[0]), _ratio(token[0], lab[0])),
            ("PATCH entities/{id}/attrs", _rate(lab[1]), _rate(token[1]), _ratio(token[1], lab[1])),
        ],
    )
    for what, a, b in (("GET", lab[0], token[0]), ("PATCH", lab[1], token[1])):
        if b < 0.95 * a:
            print(f"  {what}: authentication costs {100 * (1 - b / a):.1f} % — over the 5 % target")


def _rate(x: float) -> str:
    return f"{x:,.0f}"


def _ratio(x: float, base: float) -> str:
    return f"{x / base:.2f}" if base else "-"


def table(name: str, r: Result, sizes: Sizes, raw_batch: float, raw_update: float) -> None:
    lookup_s, near_s = r.lookup[0], r.near[0]
    rows: list[tuple[object, ...]] = [
        (
            "raw SQLite executemany, 1,000/txn (write baseline)",
            _rate(sizes.entities),
            1,
            _rate(raw_batch),
            "-",
            "-",
            "1.00",
        ),
        (
            "POST entityOperations/upsert, 1,000/batch",
            _rate(sizes.entities),
            CLIENTS,
            _rate(r.upsert_s),
            "-",
            "-",
            _ratio(r.upsert_s, raw_batch),
        ),
        (
            "raw SQLite 1 UPDATE/txn (update baseline)",
            _rate(sizes.updates),
            1,
            _rate(raw_update),
            "-",
            "-",
            "1.00",
        ),
        (
            "PATCH entities/{id}/attrs, 1 attribute",
            _rate(sizes.updates),
            UPDATE_CLIENTS,
            _rate(r.update_s),
            "-",
            "-",
            _ratio(r.update_s, raw_update),
        ),
        (
            "GET entities/{id} (query baseline)",
            _rate(r.lookup[3]),
            CLIENTS,
            _rate(lookup_s),
            f"{r.lookup[1]:.1f}",
            f"{r.lookup[2]:.1f}",
            "1.00",
        ),
        (
            f"GET entities?georel=near;maxDistance=={MAX_DISTANCE_M:g}",
            _rate(r.near[3]),
            CLIENTS,
            _rate(near_s),
            f"{r.near[1]:.1f}",
            f"{r.near[2]:.1f}",
            _ratio(near_s, lookup_s),
        ),
        (
            "PATCH under a subscription, notified to a local receiver (end to end;"
            f" {r.dropped:,} dropped)",
            _rate(sizes.updates),
            UPDATE_CLIENTS,
            _rate(r.notify_s),
            "-",
            "-",
            f"{_ratio(r.notify_s, r.update_s)} of PATCH",
        ),
    ]
    at = next(i for i, row in enumerate(rows) if str(row[0]).startswith("GET entities?georel"))
    for label, (rate, p50, p95, count) in reversed(r.queries.items()):
        rows.insert(
            at,
            (
                f"GET entities?type&{label}&limit=100",
                _rate(count),
                CLIENTS,
                _rate(rate),
                f"{p50:.1f}",
                f"{p95:.1f}",
                _ratio(rate, lookup_s),
            ),
        )
    day = DAY_S // sizes.instance_step_s
    labels = {
        "hour": f"GET temporal/entities/{{id}} timerel=between, 1 hour of {day:,} instances",
        "day": f"GET temporal/entities/{{id}} timerel=between, the day"
        f" (<= {INSTANCE_LIMIT:,} per answer)",
        "lastN": f"GET temporal/entities/{{id}} lastN={LAST_N}",
    }
    for kind, label in labels.items():
        t = r.temporal[kind]
        rows.append(
            (
                label,
                _rate(t[3]),
                CLIENTS,
                _rate(t[0]),
                f"{t[1]:.1f}",
                f"{t[2]:.1f}",
                _ratio(t[0], lookup_s),
            )
        )
    print_table(
        f"NGSI-LD broker on {name}, {sizes.entities:,} WeatherObserved entities, loopback HTTP"
        f" ({os.cpu_count()} cores; {r.near_hits:.0f} hits per near-query;"
        f" {r.notifications:,} notification requests for {sizes.updates:,} updates)",
        ("operation", "requests", "clients", "per s", "p50 ms", "p95 ms", "ratio to baseline"),
        rows,
    )
    verdicts = [
        (
            "batch upserts",
            r.upsert_s >= TARGET_UPSERTS_S,
            f"{_rate(r.upsert_s)}/s vs >= {_rate(TARGET_UPSERTS_S)}/s",
        ),
        (
            "single updates",
            r.update_s >= TARGET_UPDATES_S,
            f"{_rate(r.update_s)}/s vs >= {_rate(TARGET_UPDATES_S)}/s",
        ),
        (
            "near p95",
            r.near[2] <= TARGET_NEAR_P95_MS,
            f"{r.near[2]:.1f} ms vs <= {TARGET_NEAR_P95_MS:g} ms",
        ),
        *(
            (
                label,
                rate >= TARGET_Q_S and p95 <= TARGET_Q_P95_MS,
                f"{_rate(rate)}/s p95 {p95:.1f} ms vs >= {TARGET_Q_S:g}/s,"
                f" <= {TARGET_Q_P95_MS:g} ms",
            )
            for label, (rate, _, p95, _) in r.queries.items()
        ),
    ]
    print(
        f"targets ({name}): "
        + "; ".join(
            f"{what} {detail} {'met' if ok else 'NOT MET'}" for what, ok, detail in verdicts
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="ldt-bench-broker-") as d:
        tmp = Path(d)
        entities, _ = make_entities(sizes.entities)
        raw_batch, raw_update = raw_sqlite_rates(tmp, entities, sizes.updates)
        del entities
        try:
            (tmp / "sqlite").mkdir()
            with running_broker(tmp / "sqlite", None) as url:
                result = asyncio.run(measure(url, sizes))
            table("SQLite", result, sizes, raw_batch, raw_update)
            auth_n, rounds = (1_000, 1) if sizes is QUICK else (10_000, AUTH_ROUNDS)
            auth_table(measure_auth(tmp / "auth", auth_n, rounds), auth_n, rounds)
            bin_dir = find_pg_bin()
            if bin_dir is None:
                print("\nPostgreSQL: not measured (no initdb/pg_ctl installed)")
                return
            with PostgresServer(bin_dir=bin_dir) as pg:
                (tmp / "pg").mkdir()
                with running_broker(tmp / "pg", pg.dsn(pg.create_database())) as url:
                    result = asyncio.run(measure(url, sizes))
            table("PostgreSQL", result, sizes, raw_batch, raw_update)
        except* BenchError as group:
            for exc in group.exceptions:
                print(f"bench/broker.py: {exc}", file=sys.stderr)
            raise SystemExit(1) from None


if __name__ == "__main__":
    main()
