"""A real mosquitto broker on loopback for tests: plain and TLS+password listeners.

Other test packages import this module::

    from tests.mosquitto import Mosquitto, mosquitto_broker

    def test_x(tmp_path):
        with Mosquitto(workdir=tmp_path) as broker:
            ...  # broker.host, broker.port, broker.tls_port, broker.ca_file, ...

Two listeners, with ``per_listener_settings`` so each has its own security:

* ``port``: plain TCP, anonymous clients allowed;
* ``tls_port``: TLS only (server certificate for ``localhost`` and ``127.0.0.1``
  signed by a CA generated here with ``cryptography``), ``allow_anonymous false``,
  one user (``username``/``password``) in a ``password_file`` made with
  ``mosquitto_passwd``.

``restart()`` stops and starts the broker on the same ports (for reconnect
tests). The suite's leak guard counts child processes, so a broker restarted
inside a test must come from a function-scoped fixture (``mosquitto_broker``);
a module-scoped one (``mosquitto_module``) is fine for tests that never restart it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "MOSQUITTO",
    "MOSQUITTO_PASSWD",
    "Mosquitto",
    "TestCa",
    "free_port",
    "mosquitto_broker",
    "mosquitto_module",
]

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
_START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestCa:
    """A throwaway certificate authority (EC P-256) that signs server and client certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, common_name: str = "ldt test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def write_ca(self, path: Path) -> Path:
        """Write the CA certificate (PEM) to ``path``."""
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(
        self, directory: Path, stem: str, *, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()
    ) -> tuple[Path, Path]:
        """Issue a leaf certificate; writes ``stem.crt`` and ``stem.key``; returns both paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(stem))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        crt_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return crt_path, key_path


class Mosquitto:
    """One mosquitto process with a generated config; a (sync) context manager.

    Construction writes nothing; ``start()`` writes the certificates, password
    file and config under ``workdir`` (a fresh temporary folder by default) and
    waits until both listeners accept connections.
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        host: str = "127.0.0.1",
        username: str = "ldt-device",
        password: str = "s3cret-pass",
    ) -> None:
        self.host = host
        self.username = username
        self.password = password
        self.port = 0
        """Plain listener, anonymous allowed (set by ``start()``)."""
        self.tls_port = 0
        """TLS listener, username/password required (set by ``start()``)."""
        self._workdir = workdir
        self._own_tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.ca: TestCa | None = None
        self.ca_file = Path()
        """PEM of the CA that signed the broker's certificate (set by ``start()``)."""
        self.server_cert = Path()
        self.server_key = Path()
        self.password_file = Path()
        self.config_file = Path()
        self.log_file = Path()

    @property
    def dir(self) -> Path:
        """The folder holding config, certificates and the broker's log."""
        if self._workdir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="ldt-mosquitto-")
            self._workdir = Path(self._own_tmp.name)
        return self._workdir

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _prepare(self) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        self.ca = TestCa()
        self.ca_file = self.ca.write_ca(d / "ca.crt")
        self.server_cert, self.server_key = self.ca.issue(
            d, "server", dns=("localhost",), ips=("127.0.0.1",)
        )
        self.password_file = d / "passwd"
        self.password_file.write_text("")
        self.password_file.chmod(0o600)
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", str(self.password_file), self.username, self.password],
            check=True,
            capture_output=True,
            timeout=10,
        )
        self.port, self.tls_port = free_port(), free_port()
        self.log_file = d / "mosquitto.log"
        self.config_file = d / "mosquitto.conf"
        self.config_file.write_text(
            "\n".join(
                [
                    "per_listener_settings true",
                    "persistence false",
                    "user root",  # as root, mosquitto would otherwise drop to 'mosquitto'
                    f"log_dest file {self.log_file}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                    f"listener {self.port} {self.host}",
                    "allow_anonymous true",
                    "",
                    f"listener {self.tls_port} {self.host}",
                    "allow_anonymous false",
                    f"password_file {self.password_file}",
                    f"cafile {self.ca_file}",
                    f"certfile {self.server_cert}",
                    f"keyfile {self.server_key}",
                    "tls_version tlsv1.2",
                    "",
                ]
            )
        )

    def start(self) -> None:
        """Start the broker (first call: generate everything); returns once both ports accept.

        A restart reuses the same ports and files. Raises ``RuntimeError`` with
        the broker's log if it does not come up within 10 s.
        """
        if self.running:
            raise RuntimeError("mosquitto is already running")
        if not self.port:
            self._prepare()
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        pending = [self.port, self.tls_port]
        while pending:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise RuntimeError(f"mosquitto exited at start: {err.strip()} {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen within 10 s: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, pending[0]), timeout=0.2):
                    pending.pop(0)
            except OSError:
                time.sleep(0.02)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s); a no-op when not running."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        """Stop, then start again on the same ports with the same credentials."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and remove a temporary folder this object created."""
        self.stop()
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker for one test (may be stopped and restarted inside it)."""
    with Mosquitto(workdir=tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="module")
def mosquitto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker shared by a module's tests; they must not stop it."""
    with Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker
