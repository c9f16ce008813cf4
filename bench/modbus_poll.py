"""Modbus polling load: 50 devices x 20 registers every 100 ms, and what block coalescing saves.

Part 1 (coalescing): one driver reads a 20-point profile from a simulator, first
with coalescing off (``max_gap = 0``, one register per request, what a naive
poller does), then with the defaults; the simulator counts requests.

Part 2 (load): the simulators (50 Modbus TCP servers in their own process),
the cloud (``ldt cloud serve``) and the agent (``ldt agent run``) with 50
devices x 20 registers polled every 100 ms = 10,000 points/s. Reported: the
agent's CPU-seconds (utime + stime from /proc) per 10,000 points, its share of
one core, RSS, and whether it kept up (readings buffered vs slots due). The
baseline in the same run is a bare interpreter's RSS.

    python bench/modbus_poll.py            # 30 s of load
    python bench/modbus_poll.py --quick    # 8 s, 20 devices (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _agent import start_agent, stop_agent
from _cloud import start_cloud
from _table import print_table

from ldt.cloud.ngsild.device_model import READING_ID_PREFIX

GATEWAY = "gw-poll"
POINTS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def profile_text(name: str, max_gap: int, max_regs: int) -> str:
    """A 20-register device: 20 uint16 input registers at addresses 0..19."""
    lines = [
        "[profile]",
        f'name = "{name}"',
        'manufacturer = "ldt"',
        'model = "bench-20"',
        'protocol = "modbus"',
        'source = "synthetic: 20 contiguous input registers"',
        "[modbus]",
        f"max_gap = {max_gap}",
        f"max_registers_per_read = {max_regs}",
    ]
    for i in range(POINTS):
        lines += ["[[points]]", f'name = "r{i:02d}"', 'table = "input"', f"address = {i}"]
    return "\n".join(lines) + "\n"


async def coalescing(tmp: Path) -> list[tuple[str, int, int, str]]:
    """Requests per poll cycle without and with coalescing (driver against the simulator)."""
    from ldt.agent.config import load_profile
    from ldt.drivers.modbus.config import ModbusTcpConnection
    from ldt.drivers.modbus.device import ModbusTcpDevice
    from ldt.simulators.modbus import ModbusSimulator

    rows = []
    base = None
    variants = (
        ("one request per point (max_gap 0, 1 register)", 0, 1),
        ("coalesced (defaults: max_gap 8, 125 registers)", 8, 125),
    )
    for label, gap, regs in variants:
        path = tmp / f"bench-{gap}.toml"
        path.write_text(profile_text(f"bench-{gap}", gap, regs))
        profile = load_profile(path)
        async with ModbusSimulator(profile=path, seed=1) as sim:
            dev = ModbusTcpDevice(
                device_id="d",
                connection=ModbusTcpConnection(host="127.0.0.1", port=sim.port),
                settings=profile.settings,
                points=profile.points,
            )
            async with dev:
                await dev.read()  # connect
                before = sim.request_count
                cycles = 20
                for _ in range(cycles):
                    readings = await dev.read()
                    assert all(r.quality == "good" for r in readings)
                per_cycle = (sim.request_count - before) // cycles
        base = base or per_cycle
        rows.append((label, POINTS, per_cycle, f"{per_cycle / base:.2f}"))
    return rows


async def _serve_sims(count: int, profile: str) -> None:
    from ldt.simulators.modbus import ModbusSimulator

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sims = [
        ModbusSimulator(profile=Path(profile), seed=i, update_interval_s=0.1) for i in range(count)
    ]
    for s in sims:
        await s.start()
    print(json.dumps([s.port for s in sims]), flush=True)
    await stop.wait()
    for s in sims:
        await s.stop()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def load(
    tmp: Path, devices: int, seconds: float
) -> tuple[float, float, float, dict[str, int], int]:
    """(cpu s, wall s, peak RSS MiB, readings by quality, slots due) of the agent."""
    profiles = tmp / "profiles"
    profiles.mkdir()
    (profiles / "bench-20.toml").write_text(profile_text("bench-20", 8, 125))
    sims = subprocess.Popen(
        [sys.executable, __file__, "--serve-sims", str(devices), str(profiles / "bench-20.toml")],
        stdout=subprocess.PIPE,
    )
    cloud = agent = None
    try:
        assert sims.stdout is not None
        ports = json.loads(sims.stdout.readline())
        cloud, url, token = start_cloud(tmp / "cloud", GATEWAY)
        lines = [
            "[gateway]",
            f'id = "{GATEWAY}"',
            'data_dir = "agent"',
            'profile_dirs = ["profiles"]',
            "[cloud]",
            f'url = "{url}"',
            f'token = "{token}"',
        ]
        for i, port in enumerate(ports):
            lines += [
                "[[devices]]",
                f'id = "d{i:02d}"',
                'profile = "bench-20"',
                "poll_interval_s = 0.1",
                f'connection = {{ host = "127.0.0.1", port = {port}, timeout_s = 1.0 }}',
            ]
        config = tmp / "gateway.toml"
        config.write_text("\n".join(lines) + "\n")
        agent = start_agent(config, tmp / "agent.log")
        time.sleep(3.0)  # start-up: imports, connections
        cpu0, t0 = cpu_seconds(agent.pid), time.time()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(agent.pid), time.time()
        peak = rss_mib(agent.pid)
        time.sleep(2.5)  # let the last readings of the window sync
        stop_agent(agent, tmp / "agent.log")
        counts = window_counts(tmp / "cloud" / "cloud.db", int(t0 * 1000), int(t1 * 1000))
        due = int(devices * POINTS * (t1 - t0) / 0.1)
        return cpu1 - cpu0, t1 - t0, peak, counts, due
    finally:
        for p in (agent, cloud, sims):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)


def window_counts(db: Path, t0_ms: int, t1_ms: int) -> dict[str, int]:
    """Readings the agent observed in [t0, t1], by quality, as the cloud stored them."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        # every synced reading is a temporal instance named after its gateway and seq
        prefix = f"{READING_ID_PREFIX}{GATEWAY}:"
        rows = con.execute(
            "SELECT doc ->> '$.quality.value', count(*) FROM attr_instances"
            " WHERE instance_id >= ? AND instance_id < ?"
            " AND observed_at_ms BETWEEN ? AND ? GROUP BY 1",
            (prefix, prefix[:-1] + ";", t0_ms, t1_ms),
        ).fetchall()
    finally:
        con.close()
    return {q: int(n) for q, n in rows}


def bare_rss_mib() -> float:
    """Peak RSS of a bare interpreter, measured the same way (the baseline)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(1.0)
        return rss_mib(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve-sims", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sims:
        asyncio.run(_serve_sims(int(args.serve_sims[0]), args.serve_sims[1]))
        return
    devices, seconds = (20, 8.0) if args.quick else (50, 30.0)
    with tempfile.TemporaryDirectory(prefix="ldt-bench-poll-") as d:
        rows = asyncio.run(coalescing(Path(d)))
        cpu, wall, peak, counts, due = load(Path(d), devices, seconds)
    print_table(
        "Modbus block coalescing: requests per poll cycle of a 20-register device",
        ("reads", "points", "requests/cycle", "ratio"),
        rows,
    )
    got = sum(counts.values())
    bare = bare_rss_mib()
    print_table(
        f"Modbus TCP load: {devices} devices x {POINTS} registers every 100 ms "
        f"({devices * POINTS * 10:,} points/s), {wall:.0f} s, {os.cpu_count()} cores",
        ("measure", "value"),
        [
            ("readings observed / slots due", f"{got:,} / {due:,} ({got / due:.1%})"),
            (
                "good / stale / bad",
                f"{counts.get('good', 0):,} / {counts.get('stale', 0):,} / "
                f"{counts.get('bad', 0):,}",
            ),
            ("agent CPU, share of one core", f"{cpu / wall:.1%}"),
            ("agent CPU-seconds per 10,000 points", f"{cpu / got * 10_000:.3f}"),
            ("agent peak RSS MiB (bare python baseline)", f"{peak:.1f} ({bare:.1f})"),
        ],
    )


if __name__ == "__main__":
    main()
