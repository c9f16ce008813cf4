"""Start ``ldt cloud serve`` as its own process for a benchmark, as it runs in production."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["free_port", "start_cloud", "start_tls_cloud"]

_LDT = (sys.executable, "-m", "ldt")


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


def start_tls_cloud(
    data: Path, gateway: str, identity_dir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``ldt cloud serve --tls``, then the gateway provisioned as a technician would do it.

    Returns (process, https base URL); the gateway's key and certificate are in
    ``identity_dir`` (``ldt.agent.identity.Identity(identity_dir, gateway)``).
    """
    import asyncio

    from ldt.agent.identity import Identity, provision

    port = free_port()
    proc = subprocess.Popen(
        [*_LDT, "cloud", "serve", "--port", str(port), "--data", str(data), "--tls"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/ldt/v1/pki/ca", timeout=1, verify=False)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("cloud did not start within 30 s") from None
            time.sleep(0.1)
    out = subprocess.run(
        [*_LDT, "cloud", "token", "create", "--site", "bench", "--data", str(data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    token = out.stdout.strip().splitlines()[-1]
    asyncio.run(provision(url, token, Identity(identity_dir, gateway)))
    return proc, url
