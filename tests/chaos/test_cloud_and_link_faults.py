"""Faults between the gateway and the cloud (issue 17): the cloud killed with -9 while a batch
is in flight, and a link that cuts and stalls requests. Real processes: ``ldt agent run``
against Modbus simulators, ``ldt cloud serve`` on SQLite, and a TCP proxy of the test's own
between them (this machine cannot be trusted to have network namespaces and ``tc netem``;
the proxy cuts and stalls at the TCP level, which is what a flaky cellular link does to the
agent's HTTP requests).

Each scenario ends like the others in this suite: the agent is stopped and drained, and the
cloud must hold the buffer's seqs 1..last_seq exactly once. The figures are printed for
``docs/reliability.md``. ``LDT_LONG=1`` runs the long form.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ldt.cloud.server import running_cloud
from tests.integration.conftest import GATEWAY, gateway_toml
from tests.integration.test_crash_and_outage import _buffer_last_seq, _drain_cli, _exactly_once
from tests.mosquitto import free_port

pytestmark = pytest.mark.integration

LONG = os.environ.get("LDT_LONG") == "1"


class FaultyLink:
    """A TCP proxy: forwards the agent's connections to the cloud, and on demand cuts a
    connection in the middle of a request or stalls it. ``ingest_seen`` counts requests to
    the ingest route (so a test can aim a fault at a batch in flight)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.cut_next = False
        self.stall_s = 0.0
        self.on_ingest: Any = None
        self.ingest_seen = 0
        self.cuts = 0
        self.stalls = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultyLink:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                return  # the cloud is down: the agent sees a closed connection
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(reader, up_w, upstream=True))
                tg.create_task(self._pump(up_r, writer, upstream=False))
        except* (OSError, ConnectionError, _CutError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while chunk := await src.read(16384):
                if upstream and b"POST /ldt/v1/ingest" in chunk:
                    self.ingest_seen += 1
                    if self.stall_s:
                        self.stalls += 1
                        await asyncio.sleep(self.stall_s)
                    if self.cut_next:
                        self.cut_next = False
                        self.cuts += 1
                        dst.write(chunk[: len(chunk) // 2])  # half a request, then nothing
                        await dst.drain()
                        raise _CutError
                    if self.on_ingest is not None:
                        dst.write(chunk)
                        await dst.drain()
                        fault, self.on_ingest = self.on_ingest, None
                        fault()  # e.g. kill -9 the cloud with this batch in its hands
                        continue
                dst.write(chunk)
                await dst.drain()
        finally:
            dst.close()


class _CutError(Exception):
    """Raised to drop both sides of a proxied connection."""


class CloudProcess:
    """``ldt cloud serve`` as a child process on SQLite, killed and restarted by the test."""

    def __init__(self, data: Path, port: int, log: Path) -> None:
        self.data, self.port, self.log = data, port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ldt", "cloud", "serve", "--port", str(self.port),
                 "--data", str(self.data)],
                stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    async def ready(self) -> None:
        for _ in range(200):
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the cloud did not start listening within 10 s")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def _site(
    tmp_path: Path, sims: Any, token_for: Any, agent_process: Any
) -> AsyncIterator[tuple[CloudProcess, FaultyLink, Any, Path]]:
    token = token_for()
    meters = [await sims("eastron-sdm120", seed=i) for i in range(3)]
    cloud = CloudProcess(tmp_path / "cloud", free_port(), tmp_path / "cloud.log")
    cloud.start()
    try:
        await cloud.ready()
        async with FaultyLink(cloud.port) as link:
            cfg = tmp_path / "gateway.toml"
            cfg.write_text(
                gateway_toml(
                    cloud_url=f"http://127.0.0.1:{link.port}", token=token,
                    devices=[(f"m{i}", "eastron-sdm120", m.port) for i, m in enumerate(meters)],
                    poll_interval_s=0.05, uplink_interval_s=0.05, flush_interval_ms=20,
                    batch_max=300,
                )
            )  # fmt: skip
            agent = agent_process(cfg)
            agent.start()
            yield cloud, link, agent, cfg
    finally:
        cloud.stop()


async def _settle(cloud: CloudProcess, agent: Any, cfg: Path, tmp_path: Path) -> tuple[int, int]:
    """Stop the agent, drain its buffer through a healthy cloud, and check exactly once;
    returns (readings produced, readings in the cloud)."""
    assert agent.terminate() == 0
    assert await _drain_cli(cfg) == 0
    last_seq, pending = _buffer_last_seq(cfg)
    assert pending == 0
    cloud.stop()
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as check:
        await _exactly_once(check, last_seq)
        stored = len(await check.store.readings.seqs(GATEWAY))
    return last_seq, stored


async def test_the_cloud_killed_with_a_batch_in_flight_loses_and_doubles_nothing(
    tmp_path: Path, sims: Any, token_for: Any, agent_process: Any
) -> None:
    kills = 20 if LONG else 3
    rng = random.Random(17)
    async with _site(tmp_path, sims, token_for, agent_process) as (cloud, link, agent, cfg):
        recovered: list[float] = []
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            before = link.ingest_seen
            link.on_ingest = cloud.kill9  # the next batch's request reaches it, then -9
            for _ in range(200):
                if cloud.kills and link.on_ingest is None:
                    break
                await asyncio.sleep(0.05)
            assert link.ingest_seen > before
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            cloud.start()
            await cloud.ready()
            back = time.monotonic()
            seen = link.ingest_seen
            while link.ingest_seen == seen:  # the agent's first batch to the new cloud
                await asyncio.sleep(0.02)
                assert time.monotonic() - back < 30
            recovered.append(time.monotonic() - back)
        produced, stored = await _settle(cloud, agent, cfg, tmp_path)
    print(
        f"\ncloud kill -9 with a batch in flight: {kills} kills, {produced} readings, "
        f"{stored} in the cloud, lost 0, duplicated 0, first batch after restart "
        f"max {max(recovered):.1f} s"
    )
    assert cloud.kills == kills


async def test_a_link_that_cuts_and_stalls_loses_and_doubles_nothing(
    tmp_path: Path, sims: Any, token_for: Any, agent_process: Any
) -> None:
    rounds = 30 if LONG else 5
    rng = random.Random(170)
    async with _site(tmp_path, sims, token_for, agent_process) as (cloud, link, agent, cfg):
        for _ in range(rounds):
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            if rng.random() < 0.5:
                link.cut_next = True  # half a request, then the connection drops
            else:
                link.stall_s = rng.uniform(1.0, 3.0)  # a link that hangs for seconds
                await asyncio.sleep(link.stall_s + 0.5)
                link.stall_s = 0.0
        await asyncio.sleep(1.0)
        produced, stored = await _settle(cloud, agent, cfg, tmp_path)
    print(
        f"\nlink cuts and stalls: {link.cuts} cuts mid-request, {link.stalls} stalled "
        f"requests, {produced} readings, {stored} in the cloud, lost 0, duplicated 0"
    )
    assert link.cuts + link.stalls > 0
