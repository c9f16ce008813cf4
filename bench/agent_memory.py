"""Agent memory: RSS of a running ``ldt agent run`` polling 50 simulated Modbus devices.

Three processes, as in the field: the simulators (50 Modbus TCP servers in
one process, standing in for 50 meters on the network), the cloud (``ldt
cloud serve``) and the agent (``ldt agent run``) with 50 devices polled every
second. The agent's resident set size is sampled once a second from
/proc/PID/status; the baseline, measured in the same run the same way, is a
bare interpreter (``python -c 'sleep'``) — what any Python agent costs before
it does anything.

A second agent runs the same devices over mutual TLS with the project's forecaster model
(``ldt.models.forecaster``) installed from the cloud's catalogue and running on the first
meter: what a model costs in memory (NumPy and the TFLite runtime). The 60 MiB target
applies to the agent without a model.

    python bench/agent_memory.py            # 60 s of polling, each agent
    python bench/agent_memory.py --quick    # 8 s a run (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _agent import start_agent, stop_agent
from _cloud import start_cloud, start_tls_cloud
from _table import print_table

GATEWAY = "gw-mem"
PROFILE = "eastron-sdm120"
TARGET_MB = 60.0


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


async def _serve_sims(count: int) -> None:
    """Child mode: run ``count`` simulators, print their ports as JSON, serve until SIGTERM."""
    from ldt.simulators.modbus import ModbusSimulator, resolve_profile

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sims = [ModbusSimulator(profile=resolve_profile(PROFILE), seed=i) for i in range(count)]
    for s in sims:
        await s.start()
    print(json.dumps([s.port for s in sims]), flush=True)
    await stop.wait()
    for s in sims:
        await s.stop()


def _config(tmp: Path, url: str, token: str | None, ports: list[int]) -> Path:
    lines = [
        "[gateway]",
        f'id = "{GATEWAY}"',
        'data_dir = "agent"',
        "[cloud]",
        f'url = "{url}"',
        *([f'token = "{token}"'] if token else []),
    ]
    for i, port in enumerate(ports):
        lines += [
            "[[devices]]",
            # the first is the meter the project's forecaster reads (ldt.models.forecaster)
            f'id = "{"meter-1" if i == 0 else f"m{i:02d}"}"',
            f'profile = "{PROFILE}"',
            "poll_interval_s = 1.0",
            f'connection = {{ host = "127.0.0.1", port = {port}, timeout_s = 2.0 }}',
        ]
    path = tmp / "gateway.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sample(proc: subprocess.Popen[bytes], seconds: float) -> tuple[int, int]:
    """Sample a process's RSS for ``seconds``; (last VmRSS, VmHWM) in KiB."""
    deadline = time.monotonic() + seconds
    rss = hwm = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process {proc.args!r} exited early with {proc.returncode}")
        rss, hwm = rss_kib(proc.pid)
        time.sleep(1.0)
    return rss, hwm


def _last_seq(config: Path) -> int:
    from ldt.agent.buffer import Buffer
    from ldt.agent.config import load_gateway_config

    cfg = load_gateway_config(config)
    with Buffer(path=cfg.buffer_path, max_bytes=1 << 30, max_age_s=1e9) as buf:
        return buf.stats().last_seq


def _run(tmp: Path, ports: list[int], seconds: float, *, model: bool) -> tuple[int, int, int]:
    """One agent's (VmRSS, VmHWM) in KiB and readings buffered.

    ``model``: an https cloud, the gateway provisioned (mutual TLS), and the project's
    forecaster uploaded and assigned to it; sampling starts once the model runs.
    """
    tmp.mkdir()
    cloud = agent = None
    try:
        if model:
            cloud, url = start_tls_cloud(tmp / "cloud", GATEWAY, tmp / "agent" / "identity")
            config = _config(tmp, url, None, ports)
            _publish_model(tmp)
        else:
            cloud, url, token = start_cloud(tmp / "cloud", GATEWAY)
            config = _config(tmp, url, token, ports)
        agent = start_agent(config, tmp / "agent.log")
        if model:
            _wait_model_running(tmp, agent)
        rss, hwm = _sample(agent, seconds)
        stop_agent(agent, tmp / "agent.log")
        return rss, hwm, _last_seq(config)
    finally:
        for p in (agent, cloud):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)


def _ldt(*args: object) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ldt", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"ldt {' '.join(map(str, args))} failed: {out.stderr.strip()}")
    return out.stdout


def _publish_model(tmp: Path) -> None:
    from ldt.models.forecaster import build_bundle

    bundle = tmp / "meter-forecast.ldtmodel"
    bundle.write_bytes(build_bundle(seed=1))
    data = tmp / "cloud"
    _ldt("cloud", "models", "upload", bundle, "--data", data)
    _ldt("cloud", "models", "assign", "meter-forecast", "--gateway", GATEWAY, "--data", data)


def _wait_model_running(tmp: Path, agent: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = _ldt("cloud", "models", "status", "meter-forecast", "--data", tmp / "cloud")
        if "\trunning\t" in status:
            return
        if agent.poll() is not None:
            raise SystemExit(f"the agent exited with {agent.returncode}")
        time.sleep(0.5)
    raise SystemExit("the model did not reach 'running' on the agent within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--serve-sims", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sims:
        asyncio.run(_serve_sims(args.serve_sims))
        return
    seconds = 8.0 if args.quick else 60.0

    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        bare_rss, _ = _sample(bare, 2.0)
    finally:
        bare.kill()
        bare.wait()

    with tempfile.TemporaryDirectory(prefix="ldt-bench-mem-") as d:
        tmp = Path(d)
        sims = subprocess.Popen(
            [sys.executable, __file__, "--serve-sims", str(args.devices)],
            stdout=subprocess.PIPE,
        )
        try:
            assert sims.stdout is not None
            ports = json.loads(sims.stdout.readline())
            rss, hwm, readings = _run(tmp / "plain", ports, seconds, model=False)
            m_rss, m_hwm, m_readings = _run(tmp / "model", ports, seconds, model=True)
        finally:
            sims.terminate()
            sims.wait(timeout=30)

    # every point polled at the device's 1 s interval, over the run minus start-up
    from ldt.agent.config import load_profile
    from ldt.simulators.modbus import resolve_profile

    fast = sum(
        1 for p in load_profile(resolve_profile(PROFILE)).points if p.poll_interval_s is None
    )
    expected_min = args.devices * fast * (seconds - 5)
    for got in (readings, m_readings):
        if got < expected_min:
            raise SystemExit(f"agent buffered only {got} readings; expected >= {expected_min:.0f}")
    mb = 1024.0
    print_table(
        f"agent RSS, {args.devices} Modbus TCP devices polled at 1 s for {seconds:.0f} s "
        f"({os.cpu_count()} cores)",
        ("process", "RSS MiB", "peak RSS MiB", "ratio to bare python", "readings buffered"),
        [
            ("bare python interpreter (baseline)", f"{bare_rss / mb:.1f}", "", "1.00", ""),
            (
                f"ldt agent, {args.devices} devices",
                f"{rss / mb:.1f}",
                f"{hwm / mb:.1f}",
                f"{rss / bare_rss:.2f}",
                f"{readings:,}",
            ),
            (
                f"ldt agent, {args.devices} devices, mTLS + forecaster model running",
                f"{m_rss / mb:.1f}",
                f"{m_hwm / mb:.1f}",
                f"{m_rss / bare_rss:.2f}",
                f"{m_readings:,}",
            ),
        ],
    )
    if hwm / mb > TARGET_MB:
        raise SystemExit(
            f"agent peak RSS {hwm / mb:.1f} MiB is over the {TARGET_MB:.0f} MiB target"
        )


if __name__ == "__main__":
    main()
