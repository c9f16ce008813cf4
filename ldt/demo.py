"""``ldt demo``: cloud, simulated Modbus devices and an agent on loopback, in one process.

Everything runs on embedded defaults (SQLite files in a data folder, no
external server), so a fresh machine can show the whole data path: simulator
registers -> Modbus TCP -> agent -> durable buffer -> sync -> NGSI-LD entities.
The parts are the real ones (the same cloud app, simulator and agent runtime
that run as separate processes in production), only sharing an event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ldt.agent.runtime import AgentRuntime

__all__ = ["DEMO_PROFILES", "run_demo"]

DEMO_PROFILES = ("eastron-sdm120", "eastron-sdm630", "xymd02-th")
"""Device i of the demo runs profile i modulo this list."""
GATEWAY_ID = "gw-demo"
STATUS_EVERY_S = 5.0


def run_demo(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or ``--seconds``); returns the exit code."""
    from ldt.logs import configure_logging

    configure_logging(level="WARNING", fmt="text")
    if args.devices < 1:
        print("ldt demo: --devices must be at least 1", file=sys.stderr)
        return 2
    with _data_dir(args.data) as data:
        try:
            asyncio.run(
                _demo(data=data, port=args.port, devices=args.devices, seconds=args.seconds)
            )
        except OSError as exc:
            print(f"ldt demo: {exc}", file=sys.stderr)
            return 1
    return 0


@contextlib.contextmanager
def _data_dir(given: str | None) -> Iterator[Path]:
    if given:
        path = Path(given).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="ldt-demo-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _gateway_toml(*, cloud_url: str, token_file: Path, sims: list[tuple[str, str, int]]) -> str:
    lines = [
        "[gateway]",
        f'id = "{GATEWAY_ID}"',
        'data_dir = "agent"',
        "",
        "[cloud]",
        f'url = "{cloud_url}"',
        f'token_file = "{token_file.name}"',
        "interval_s = 1.0",
        "",
    ]
    for device_id, profile, port in sims:
        lines += [
            "[[devices]]",
            f'id = "{device_id}"',
            f'profile = "{profile}"',
            "poll_interval_s = 1.0",
            f'connection = {{ host = "127.0.0.1", port = {port}, unit_id = 1, timeout_s = 1.0 }}',
            "",
        ]
    return "\n".join(lines)


async def _demo(*, data: Path, port: int, devices: int, seconds: float | None) -> None:
    from ldt.agent.config import load_gateway_config
    from ldt.agent.runtime import AgentRuntime
    from ldt.cloud.server import ensure_gateway, running_cloud
    from ldt.simulators.modbus import ModbusSimulator, resolve_profile

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    token_file = data / "gateway-token"
    token_file.write_text(ensure_gateway(data / "cloud", GATEWAY_ID) + "\n", encoding="utf-8")
    token_file.chmod(0o600)

    async with contextlib.AsyncExitStack() as stack:
        cloud = await stack.enter_async_context(running_cloud(data / "cloud", port=port))
        sims: list[tuple[str, str, int]] = []
        for i in range(devices):
            profile = DEMO_PROFILES[i % len(DEMO_PROFILES)]
            sim = ModbusSimulator(profile=resolve_profile(profile), seed=i + 1)
            await stack.enter_async_context(sim)
            sims.append((f"dev-{i + 1}", profile, sim.port))
        cfg_path = data / "gateway.toml"
        cfg_path.write_text(
            _gateway_toml(cloud_url=cloud.url, token_file=token_file, sims=sims), encoding="utf-8"
        )
        runtime = AgentRuntime(config=load_gateway_config(cfg_path))
        _print_banner(cloud.url, data, sims)
        async with asyncio.TaskGroup() as tg:
            agent_task = tg.create_task(runtime.run(), name="agent")
            tg.create_task(_report(cloud.url, runtime, stop), name="demo-status")
            started = time.monotonic()
            while not stop.is_set():
                if agent_task.done():
                    break
                if seconds is not None and time.monotonic() - started >= seconds:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.2)
            stop.set()
            runtime.stop.set()
        print("ldt demo: stopped cleanly", flush=True)


def _print_banner(url: str, data: Path, sims: list[tuple[str, str, int]]) -> None:
    print(f"ldt demo: cloud (NGSI-LD broker) on {url}", flush=True)
    for device_id, profile, port in sims:
        print(f"ldt demo: simulated {profile} '{device_id}' on modbus-tcp 127.0.0.1:{port}")
    print(f"ldt demo: agent '{GATEWAY_ID}', buffer and config under {data}")
    print("ldt demo: look at the twin with")
    print(f"    curl '{url}/ngsi-ld/v1/entities?type=Device'")
    print(f"    curl '{url}/ngsi-ld/v1/entities/urn:ngsi-ld:Device:{GATEWAY_ID}:{sims[0][0]}'")
    print("ldt demo: Ctrl-C stops everything", flush=True)


async def _report(url: str, runtime: AgentRuntime, stop: asyncio.Event) -> None:
    """Every few seconds: what was read, buffered, synced, and one value from the broker."""
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=STATUS_EVERY_S)
            if stop.is_set() or runtime.buffer is None:
                return
            good = sum(p.health.good for p in runtime.devices)
            bad = sum(p.health.bad for p in runtime.devices)
            stats = await runtime.buffer.stats()
            sent = runtime.uplink.stats.readings_sent if runtime.uplink else 0
            sample = await _sample(client)
            print(
                f"ldt demo: read {good} good / {bad} bad, buffered {stats.last_seq}, "
                f"synced {sent}, pending {stats.pending}; {sample}",
                flush=True,
            )


async def _sample(client: httpx.AsyncClient) -> str:
    try:
        resp = await client.get("/ngsi-ld/v1/entities", params={"type": "Device", "limit": 1})
        entities = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"broker not answering ({exc!r})"
    if not isinstance(entities, list) or not entities:
        return "no entity in the broker yet"
    ent = entities[0]
    for name, attr in ent.items():
        if isinstance(attr, dict) and attr.get("type") == "Property" and "unitCode" in attr:
            at = attr.get("observedAt")
            return f"{ent['id']} {name} = {attr['value']} {attr['unitCode']} at {at}"
    return f"{ent['id']} has no measured property yet"
