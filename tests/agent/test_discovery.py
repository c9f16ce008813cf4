"""mDNS discovery on this machine's network: advertisers, the browser, and two real agents."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ldt.agent.discovery import Advertiser, discover


async def test_two_advertisers_are_found_with_their_records() -> None:
    async with (
        Advertiser("gw-disc-a", "0.1.0", "provisioned"),
        Advertiser("gw-disc-b", "0.1.0", "unprovisioned"),
    ):
        found = {g.gateway_id: g for g in await discover(2.0)}
    assert found["gw-disc-a"].state == "provisioned"
    assert found["gw-disc-b"].state == "unprovisioned"
    assert found["gw-disc-a"].version == "0.1.0"
    assert found["gw-disc-a"].addresses
    after = {g.gateway_id for g in await discover(1.0)}
    assert "gw-disc-a" not in after  # unregistered when the block ends


def _config(tmp_path: Path, gateway_id: str) -> Path:
    path = tmp_path / f"{gateway_id}.toml"
    path.write_text(
        f'[gateway]\nid = "{gateway_id}"\ndata_dir = "{tmp_path / gateway_id}"\n'
        '[cloud]\nurl = "http://127.0.0.1:9"\ntoken = "0123456789abcdef0123"\n'
        "[discovery]\nenabled = true\n[local_api]\nport = 0\n"
    )
    return path


@pytest.mark.integration
def test_ldt_gw_discover_finds_two_agents_running_here(tmp_path: Path) -> None:
    agents = [
        subprocess.Popen(
            [sys.executable, "-m", "ldt", "agent", "run", "--config", str(_config(tmp_path, i))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in ("gw-site-1", "gw-site-2")
    ]
    try:
        deadline = time.monotonic() + 30
        while True:
            out = subprocess.run(
                [sys.executable, "-m", "ldt", "gw", "discover", "--timeout", "2"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if "gw-site-1\t" in out.stdout and "gw-site-2\t" in out.stdout:
                break
            assert time.monotonic() < deadline, out.stdout + out.stderr
        lines = {line.split("\t")[0]: line.split("\t") for line in out.stdout.splitlines()}
        assert lines["gw-site-1"][1] == "unprovisioned"
    finally:
        for agent in agents:
            agent.terminate()
        for agent in agents:
            assert agent.wait(timeout=30) == 0
