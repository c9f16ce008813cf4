"""``ldt demo``: cloud, simulated Modbus devices and an agent on loopback, in one process.

Everything runs on embedded defaults (SQLite files in a data folder, no
external server), so a fresh machine can show the whole data path: simulator
registers -> Modbus TCP -> agent -> durable buffer -> sync -> NGSI-LD entities,
and back: a model and a rule set from the cloud's catalogue run on the gateway, and a
command sent through the NGSI-LD API switches a relay. The cloud serves TLS with its own
CA and the gateway is provisioned with a claim token, as on a site. The parts are the real
ones (the same cloud app, simulator and agent runtime that run as separate processes in
production), only sharing an event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ldt.demo_devices import (
    DemoDevice,
    ble_tag,
    modbus_meters,
    mqtt_station,
    opcua_station,
    relay_module,
    rtu_transmitter,
)

if TYPE_CHECKING:
    from ldt.agent.runtime import AgentRuntime
    from ldt.demo_control import DemoUsers

__all__ = ["run_demo"]

GATEWAY_ID = "gw-demo"
STATUS_EVERY_S = 5.0


def run_demo(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or ``--seconds``); returns the exit code."""
    from ldt.logs import configure_logging

    configure_logging(level="WARNING", fmt="text")
    # the OPC UA simulator serves without security on loopback; asyncua says so at every start
    logging.getLogger("asyncua").setLevel(logging.ERROR)
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


def _gateway_toml(*, cloud_url: str, devices: list[DemoDevice]) -> str:
    lines = [
        "[gateway]",
        f'id = "{GATEWAY_ID}"',
        'data_dir = "agent"',
        "",
        "[cloud]",
        f'url = "{cloud_url}"',
        "interval_s = 1.0",
        "",
    ]
    for dev in devices:
        lines += [
            "[[devices]]",
            f'id = "{dev.device_id}"',
            f'profile = "{dev.profile}"',
            "poll_interval_s = 1.0",
            f"connection = {dev.connection}",
            "",
        ]
    return "\n".join(lines)


async def _start_devices(stack: AsyncExitStack, data: Path, meters: int) -> list[DemoDevice]:
    devices = await modbus_meters(stack, meters)
    devices.append(await relay_module(stack))
    devices.append(await opcua_station(stack))
    mqtt = await mqtt_station(stack, data)
    if mqtt is None:
        print("ldt demo: mosquitto is not installed: no MQTT device (scripts/demo installs it)")
    else:
        devices.append(mqtt)
    rtu = await rtu_transmitter(stack, data)
    if rtu is None:
        print("ldt demo: socat is not installed: no Modbus RTU device (scripts/demo installs it)")
    else:
        devices.append(rtu)
    devices.append(ble_tag())
    return devices


async def _demo(*, data: Path, port: int, devices: int, seconds: float | None) -> None:
    from ldt.agent.config import load_gateway_config
    from ldt.agent.runtime import AgentRuntime
    from ldt.cloud.server import running_cloud
    from ldt.demo_control import demo_users, provision_gateway, publish_edge_control

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with AsyncExitStack() as stack:
        # TLS as in production: the gateway is provisioned with a claim token and syncs
        # over mutual TLS; models and rules reach it signed
        cloud = await stack.enter_async_context(
            running_cloud(data / "cloud", port=port, tls_hosts=["127.0.0.1", "localhost"])
        )
        users = await demo_users(cloud)
        sims = await _start_devices(stack, data, devices)
        await provision_gateway(cloud, data / "agent", GATEWAY_ID)
        await publish_edge_control(cloud, GATEWAY_ID, meter="dev-1")
        cfg_path = data / "gateway.toml"
        cfg_path.write_text(_gateway_toml(cloud_url=cloud.url, devices=sims), encoding="utf-8")
        runtime = AgentRuntime(
            config=load_gateway_config(cfg_path),
            driver_kwargs={d.device_id: d.driver_kwargs for d in sims if d.driver_kwargs},
        )
        _print_banner(cloud.url, data, sims, users)
        ca_file = data / "cloud" / "pki" / "ca.pem"
        async with asyncio.TaskGroup() as tg:
            agent_task = tg.create_task(runtime.run(), name="agent")
            tg.create_task(
                _report(cloud.url, ca_file, users.status_token, runtime, stop), name="demo-status"
            )
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


def _print_banner(url: str, data: Path, devices: list[DemoDevice], users: DemoUsers) -> None:
    ca = data / "cloud" / "pki" / "ca.pem"
    print(f"ldt demo: cloud (NGSI-LD broker) on {url}", flush=True)
    for dev in devices:
        print(f"ldt demo: simulated {dev.profile} '{dev.device_id}' on {dev.where}")
    print(f"ldt demo: agent '{GATEWAY_ID}' (mutual TLS), buffer and config under {data}")
    print("ldt demo: model meter-forecast on dev-1 and rule set lift-station on the gateway")
    print(f"ldt demo: users (passwords also in {users.file}):")
    for name, role, password in users.people:
        print(f"    {name} ({role}): {password}")
    print("ldt demo: sign in (a token lasts 15 minutes; TLS: the cloud's own CA):")
    print(
        f"    TOKEN=$(curl -s --cacert {ca} -d grant_type=password -d username=operator"
        f" --data-urlencode password='{users.password('operator')}' {url}/auth/token"
        """ | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"""
    )
    print("ldt demo: look at the twin with")
    api = f"{url}/ngsi-ld/v1"
    auth = '-H "Authorization: Bearer $TOKEN"'
    print(f"    curl --cacert {ca} {auth} '{api}/entities?type=Device'")
    print(f"    curl --cacert {ca} {auth} '{api}/entities?type=PumpingStation'")
    print(f"    curl --cacert {ca} {auth} '{api}/entities?type=Alert'")
    print(f"    curl --cacert {ca} {auth} '{api}/entities/urn:ngsi-ld:Device:{GATEWAY_ID}:dev-1'")
    print(
        "ldt demo: send a command (relay2 of the relay module) as the operator, then read"
        " relay2_status (the viewer's token is refused with 403):"
    )
    print(
        f"    curl --cacert {ca} {auth} -X PATCH -H 'Content-Type: application/json'"
        f" -d '{{\"value\": true}}'"
        f" '{api}/entities/urn:ngsi-ld:Device:{GATEWAY_ID}:relay-1/attrs/relay2'"
    )
    print("ldt demo: Ctrl-C stops everything", flush=True)


async def _report(
    url: str, ca: Path, token: str, runtime: AgentRuntime, stop: asyncio.Event
) -> None:
    """Every few seconds: what was read, buffered, synced, and one value from the broker."""
    trust = ssl.create_default_context(cafile=str(ca))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, timeout=2.0, verify=trust, headers=headers
    ) as client:
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
            if runtime.edge is not None:
                print(f"ldt demo: {_edge_line(runtime.edge.status())}", flush=True)


def _edge_line(status: dict[str, Any]) -> str:
    """Models (runs, latency), rules (states) and commands, in one line."""
    models = ", ".join(
        f"{m['provenance']} ran {m['runs']}x (p95 {m['p95_ms']} ms)"
        for m in status["models"].values()
    )
    rules = ", ".join(f"{rule} {state}" for rule, state in status["rules"].items())
    return (
        f"edge: {models or 'no model yet'}; rules: {rules or 'none yet'};"
        f" commands {status['commands']}"
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
