"""npm packages for tests against servers nobody here wrote (FIWARE's IoT Agent,
node-opcua, modbus-serial): installed once per ``package.json`` into ``.cache/NAME/``.

Each user keeps its ``package.json`` (exact versions) beside its tests; ``installed``
runs ``npm install`` when that file changed since the last install, under a file lock
(pytest-xdist workers may ask at once). Without node and npm, or without a registry to
install from, the test is skipped (on CI, where the bootstrap installs Node, it fails).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["CACHE_ROOT", "installed", "node"]

CACHE_ROOT = Path(__file__).resolve().parents[1] / ".cache"
_OFFLINE = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH")


def node() -> str:
    """The ``node`` executable (skips, or fails on CI, without one)."""
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        reason = "node and npm are needed for tests against third-party servers"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def installed(package_json: Path, name: str) -> Path:
    """``node_modules`` of ``package_json``'s dependencies, installed into ``.cache/name``."""
    node()
    npm = shutil.which("npm")
    assert npm is not None
    cache = CACHE_ROOT / name
    wanted = package_json.read_text()
    stamp = cache / "installed-package.json"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker installing the same folder
        if not stamp.exists() or stamp.read_text() != wanted:
            (cache / "package.json").write_text(wanted)
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache)],
                capture_output=True,
                text=True,
                timeout=280,
                check=False,
            )
            offline = _OFFLINE.search(done.stdout + done.stderr)
            if done.returncode != 0 and offline:
                pytest.skip(f"npm cannot reach its registry ({offline[0]}) to install {name}")
            assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
            stamp.write_text(wanted)
    return cache / "node_modules"
