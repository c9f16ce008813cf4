"""``ldt cloud ...`` as a user runs it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ldt.contract import INGEST_PATH
from tests.cloud.batches import batch, encode, good_rows

pytestmark = pytest.mark.integration


def _ldt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ldt", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_gateway_add_prints_the_token_last_and_list_shows_it(tmp_path: Path) -> None:
    added = _ldt("cloud", "gateway", "add", "gw-1", "--data", str(tmp_path))
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1].split()[-1]
    assert len(token) == 43
    listed = _ldt("cloud", "gateway", "list", "--data", str(tmp_path))
    assert listed.returncode == 0
    header, row = listed.stdout.strip().splitlines()
    assert header.split("\t")[:3] == ["ID", "LAST SEEN", "VERSION"]
    assert row.split("\t")[0] == "gw-1"
    assert row.split("\t")[1] == "-"  # never seen: it has not synced yet
    assert token not in listed.stdout


def test_adding_an_existing_gateway_fails_unless_rotating(tmp_path: Path) -> None:
    first = _ldt("cloud", "gateway", "add", "gw-1", "--data", str(tmp_path))
    again = _ldt("cloud", "gateway", "add", "gw-1", "--data", str(tmp_path))
    assert again.returncode == 1
    assert again.stdout == ""
    assert len(again.stderr.strip().splitlines()) == 1
    assert "already exists" in again.stderr
    rotated = _ldt("cloud", "gateway", "add", "gw-1", "--rotate", "--data", str(tmp_path))
    assert rotated.returncode == 0
    new = rotated.stdout.strip().splitlines()[-1].split()[-1]
    assert new != first.stdout.strip().splitlines()[-1].split()[-1]


def test_invalid_gateway_id_is_one_line(tmp_path: Path) -> None:
    bad = _ldt("cloud", "gateway", "add", "gw 1/x", "--data", str(tmp_path))
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr


def test_serve_accepts_a_batch_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    token = _ldt("cloud", "gateway", "add", "gw-1", "--data", str(tmp_path)).stdout.split()[-1]
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ldt",
            "cloud",
            "serve",
            "--port",
            str(port),
            "--data",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"ldt cloud: serving on http://127.0.0.1:{port} (data {tmp_path})"
        resp = httpx.post(
            f"http://127.0.0.1:{port}{INGEST_PATH}",
            content=encode(batch("gw-1", good_rows(1, 20))),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert resp.status_code == 200
        assert resp.json()["accepted"] == 20
        busy = _ldt("cloud", "serve", "--port", str(port), "--data", str(tmp_path))
        assert busy.returncode == 1
        assert "cannot listen" in busy.stderr
        assert "Traceback" not in busy.stderr
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_serve_stops_on_sigint(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ldt",
            "cloud",
            "serve",
            "--port",
            str(port),
            "--data",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "serving on" in proc.stdout.readline()
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
