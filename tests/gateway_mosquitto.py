"""The shipped gateway broker config (``deploy/mosquitto/``) on a real mosquitto, for tests.

Certificates come from the cloud's own CA (``CertificateAuthority``) and the gateway's own
key (``Identity``), as production has them; only the file paths and the port of the
shipped config are rewritten. The CRL and ACL come from ``mqtt_dir``, where the cloud
writes them (``ldt.cloud.pki.broker_files``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ldt.agent.identity import Identity
from ldt.cloud.pki.ca import CertificateAuthority
from tests.mosquitto import MOSQUITTO, free_port

__all__ = ["DEPLOY", "client_tls", "deployed_mosquitto"]

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto"


@contextlib.contextmanager
def deployed_mosquitto(
    tmp_path: Path, ca: CertificateAuthority, mqtt_dir: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """mosquitto running ``ldt-gateways.conf`` on a free loopback port: (port, process)."""
    cert, key = ca.server_certificate(["127.0.0.1"])
    port = free_port()
    conf = (
        (DEPLOY / "ldt-gateways.conf")
        .read_text()
        .replace("/etc/ldt/pki/ca.pem", str(ca.folder / "ca.pem"))
        .replace("/etc/ldt/pki/server.pem", str(cert))
        .replace("/etc/ldt/pki/server.key", str(key))
        .replace("/etc/ldt/mosquitto", str(mqtt_dir))
        .replace("listener 8883", f"listener {port} 127.0.0.1")
    )
    unrewritten = [ln for ln in conf.splitlines() if "/etc/" in ln and not ln.startswith("#")]
    assert not unrewritten, unrewritten
    log = tmp_path / "mosquitto.log"
    (tmp_path / "mosquitto.conf").write_text(
        f"user root\npersistence false\nlog_dest file {log}\nlog_type all\n" + conf
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")])
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not start: {log.read_text() if log.exists() else ''}")
            time.sleep(0.05)
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def client_tls(ca: CertificateAuthority, folder: Path, name: str) -> ssl.SSLContext:
    """A TLS context with a fresh gateway certificate for ``name`` (not recorded anywhere)."""
    identity = Identity(folder / name, name)
    identity.folder.mkdir(parents=True, exist_ok=True)
    identity.store_certificate(ca.issue_gateway(identity.csr(), name).pem)
    ctx = ssl.create_default_context(cafile=str(ca.folder / "ca.pem"))
    ctx.load_cert_chain(identity.cert_path, identity.key_path)
    return ctx
