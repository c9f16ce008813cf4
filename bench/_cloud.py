"""Start ``ldt cloud serve`` as its own process for a benchmark, as it runs in production."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["free_port", "start_cloud"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_cloud(data: Path, gateway: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """Register ``gateway``, start the cloud; returns (process, base URL, gateway token)."""
    out = subprocess.run(
        [sys.executable, "-m", "ldt", "cloud", "gateway", "add", gateway, "--data", str(data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    token = out.stdout.strip().splitlines()[-1].split()[-1]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ldt", "cloud", "serve", "--port", str(port), "--data", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/ngsi-ld/v1/entities/urn:ngsi-ld:x:y", timeout=1)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        return proc, url, token
    proc.kill()
    raise RuntimeError("cloud did not start within 30 s")
