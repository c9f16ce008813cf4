"""A real serial line for tests: a ``socat`` pty pair, the master's end and the devices' end.

A pty carries bytes, not baud rates: line timing comes from the RTU simulator
(``line_timing``), framing and CRCs from the real pymodbus stacks on both ends.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SOCAT = shutil.which("socat") or "/usr/bin/socat"


@dataclass(frozen=True)
class PtyPair:
    """``master``: where the driver opens its port; ``devices``: where the simulator serves."""

    master: str
    devices: str


@contextmanager
def pty_pair(folder: Path) -> Iterator[PtyPair]:
    """Start socat linking two ptys under ``folder``; stops it (and waits) on exit."""
    if not Path(SOCAT).exists():
        pytest.skip("socat is not installed")
    master, devices = folder / "master", folder / "devices"
    proc = subprocess.Popen(
        [SOCAT, f"pty,raw,echo=0,link={master}", f"pty,raw,echo=0,link={devices}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 5
        while not (master.exists() and devices.exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"socat did not make the pty pair: {proc.stderr!r}")
            time.sleep(0.005)
        yield PtyPair(master=str(master), devices=str(devices))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
