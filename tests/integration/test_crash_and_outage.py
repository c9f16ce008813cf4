"""The buffer's promise, end to end: kill -9, cloud outages and SIGTERM lose and duplicate nothing.

The agent runs as its own process (``ldt agent run``) so it can really be
killed; the cloud and the simulators run in the test's event loop. After each
scenario the agent is stopped, its buffer is opened read-only by the test, and
the cloud's store must hold exactly the sequence numbers 1..last_seq, once each.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ldt.agent.buffer import Buffer
from ldt.agent.config import load_gateway_config
from ldt.agent.runtime import AgentRuntime, drain
from ldt.agent.transport import HttpTransport
from ldt.cloud.server import running_cloud
from ldt.contract import BatchAck
from tests.integration.conftest import GATEWAY, gateway_toml, wait_for

pytestmark = pytest.mark.integration

LONG = os.environ.get("LDT_LONG") == "1"


def _buffer_last_seq(config: Path) -> tuple[int, int]:
    """(last seq, pending) of a stopped agent's buffer."""
    cfg = load_gateway_config(config)
    with Buffer(path=cfg.buffer_path, max_bytes=1 << 30, max_age_s=1e9) as buf:
        st = buf.stats()
    return st.last_seq, st.pending


async def _exactly_once(cloud: Any, last_seq: int) -> None:
    seqs = await cloud.store.readings.seqs(GATEWAY)
    assert len(seqs) == len(set(seqs)), "a reading was stored twice"
    missing = sorted(set(range(1, last_seq + 1)) - set(seqs))
    assert not missing, f"{len(missing)} buffered readings never reached the cloud: {missing[:10]}"
    assert max(seqs) == last_seq


async def test_kill_9_repeatedly_while_ingesting(
    tmp_path: Path, sims: Any, token_for: Any, agent_process: Any
) -> None:
    token = token_for()
    meters = [await sims("eastron-sdm120", seed=i) for i in range(3)]
    rng = random.Random(2026)
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(
            gateway_toml(
                cloud_url=cloud.url,
                token=token,
                devices=[(f"m{i}", "eastron-sdm120", m.port) for i, m in enumerate(meters)],
                poll_interval_s=0.05,
                uplink_interval_s=0.05,
                flush_interval_ms=20,
                batch_max=300,
            )
        )
        agent = agent_process(cfg)
        kills = 12 if LONG else 5
        for _ in range(kills):
            agent.start()
            await asyncio.sleep(rng.uniform(1.2, 2.5))  # start-up, polls, syncs in flight
            agent.kill9()
        received_before = len(await cloud.store.readings.seqs(GATEWAY))
        assert received_before > 0
        agent.start()  # catch up while polling on
        await asyncio.sleep(3)
        assert agent.terminate() == 0
        # then push what is left (``ldt agent drain``, as before replacing a gateway)
        assert await _drain_cli(cfg) == 0
        last_seq, pending = _buffer_last_seq(cfg)
        assert pending == 0
        await _exactly_once(cloud, last_seq)
        stored = len(await cloud.store.readings.seqs(GATEWAY))
    print(
        f"\nagent kill -9 while ingesting: {kills} kills, {last_seq} readings, {stored} in "
        "the cloud, lost 0, duplicated 0"
    )


async def _drain_cli(config: Path) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ldt", "agent", "drain", "--config", str(config), "--timeout", "60"
    )
    return await asyncio.wait_for(proc.wait(), timeout=90)


class _RecordingTransport:
    """The real HTTP transport, noting each acked batch's lane and seqs (the uplink's seam)."""

    def __init__(self, inner: HttpTransport) -> None:
        self.inner = inner
        self.batches: list[tuple[str, int, int]] = []

    async def send(self, body: bytes) -> BatchAck:
        ack = await self.inner.send(body)
        doc = orjson.loads(body)
        seqs = [r[0] for r in doc["readings"]]
        self.batches.append((doc["lane"], min(seqs), max(seqs)))
        return ack

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_cloud_outage_backlog_arrives_in_order_and_live_first(
    tmp_path: Path, sims: Any, token_for: Any
) -> None:
    token = token_for()
    meter = await sims("eastron-sdm120", seed=5)
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        port = int(cloud.url.rsplit(":", 1)[1])
        url = cloud.url
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        gateway_toml(
            cloud_url=url,
            token=token,
            devices=[("m", "eastron-sdm120", meter.port)],
            poll_interval_s=0.05,
            uplink_interval_s=0.1,
            batch_max=200,
            live_max=20,
        )
    )
    config = load_gateway_config(cfg)
    transport = _RecordingTransport(HttpTransport(base_url=url, token=token, timeout_s=2))
    runtime = AgentRuntime(config=config, transport=transport)
    agent = asyncio.create_task(runtime.run())
    try:
        async with running_cloud(tmp_path / "cloud", port=port, insecure_no_auth=True) as cloud:
            await wait_for(
                lambda: runtime.uplink is not None and runtime.uplink.stats.batches_sent > 2,
                within=10,
                what="sync before the outage",
            )
        # the cloud is down: the agent keeps collecting into its buffer
        assert runtime.buffer is not None
        before = (await runtime.buffer.stats()).last_seq
        await asyncio.sleep(4 if LONG else 2.5)
        during = await runtime.buffer.stats()
        assert during.last_seq > before + 100, "collection stopped during the outage"
        assert during.pending > 100
        assert runtime.uplink is not None
        assert runtime.uplink.stats.failures > 0
        outage_last = during.last_seq
        first_after = len(transport.batches)
        async with running_cloud(tmp_path / "cloud", port=port, insecure_no_auth=True) as cloud:

            async def caught_up() -> bool:
                assert runtime.buffer is not None
                return (await runtime.buffer.stats()).pending < 50

            await wait_for(caught_up, within=30, what="the backlog to drain")
            runtime.stop.set()
            await asyncio.wait_for(agent, timeout=15)
            # the last few readings polled before the stop: pushed by a drain
            await drain(config, transport=HttpTransport(base_url=url, token=token, timeout_s=2))
            last_seq, pending = _buffer_last_seq(cfg)
            assert pending == 0
            await _exactly_once(cloud, last_seq)
    finally:
        runtime.stop.set()
        if not agent.done():
            await asyncio.wait_for(agent, timeout=15)
    after = transport.batches[first_after:]
    # fresh readings went first: the first batch after the outage is a live one above the backlog
    assert after[0][0] == "live"
    assert after[0][2] > outage_last - 50
    backfill = [b for b in after if b[0] == "backfill"]
    assert backfill, "the backlog was not sent as backfill"
    starts = [b[1] for b in backfill]
    assert starts == sorted(starts), "backlog did not arrive oldest first"
    assert backfill[0][1] <= before + 1


async def test_sigterm_drains_and_exits_zero(
    tmp_path: Path, sims: Any, token_for: Any, agent_process: Any
) -> None:
    token = token_for()
    meter = await sims("eastron-sdm120", seed=9)
    async with running_cloud(tmp_path / "cloud", insecure_no_auth=True) as cloud:
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(
            gateway_toml(
                cloud_url=cloud.url,
                token=token,
                devices=[("m", "eastron-sdm120", meter.port)],
                poll_interval_s=0.05,
                flush_interval_ms=5000,  # readings sit in the writer's queue at SIGTERM
            )
        )
        agent = agent_process(cfg)
        agent.start()

        async def some_synced() -> bool:
            return len(await cloud.store.readings.seqs(GATEWAY)) > 0

        await wait_for(some_synced, within=15, what="first sync")
        await asyncio.sleep(0.5)
        assert agent.terminate(timeout=15) == 0
        stopped = [
            orjson.loads(line)
            for line in (tmp_path / "agent.log").read_text().splitlines()
            if '"agent stopped"' in line
        ]
        assert len(stopped) == 1, "no clean-stop log line"
        # every reading the pollers handed over, also those queued at SIGTERM, was committed
        assert stopped[0]["readings_read"] == stopped[0]["readings_committed"] > 0
        last_seq, pending = _buffer_last_seq(cfg)
        received = len(await cloud.store.readings.seqs(GATEWAY))
        assert received + pending == last_seq
