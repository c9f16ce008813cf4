"""Real OPC UA simulators on loopback, shared per module (an asyncua server takes ~1 s to build).

Certificates are generated once per session with ``cryptography``. Tests that
use a module's simulator run on the module's event loop
(``loop_scope="module"``), since an asyncua server lives on the loop that
started it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.serialization import Encoding

from ldt.simulators.opcua import OpcUaSimulator, make_certificate

USER, PASSWORD = "operator", "s3cret-pump"


@dataclass(frozen=True)
class ClientFiles:
    cert: Path
    key: Path


def _write_pair(folder: Path, name: str, uri: str, pem: bool) -> ClientFiles:
    pair = make_certificate(common_name=name, application_uri=uri, server=False)
    cert = folder / (f"{name}.pem" if pem else f"{name}.der")
    if pem:
        from cryptography import x509

        cert.write_bytes(
            x509.load_der_x509_certificate(pair.certificate_der).public_bytes(Encoding.PEM)
        )
    else:
        cert.write_bytes(pair.certificate_der)
    key = folder / f"{name}-key.pem"
    key.write_bytes(pair.private_key_pem)
    return ClientFiles(cert, key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClientFiles]:
    """A trusted client pair (PEM cert), an untrusted self-signed other, and a password file."""
    folder = tmp_path_factory.mktemp("opcua-pki")
    return {
        "trusted": _write_pair(folder, "gateway", "urn:ldt:test:gateway", pem=True),
        "stranger": _write_pair(folder, "stranger", "urn:ldt:test:stranger", pem=False),
    }


@pytest.fixture(scope="session")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("opcua-secret") / "password"
    path.write_text(PASSWORD + "\n")
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    async with OpcUaSimulator(seed=7, update_interval_s=0.1) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure_sim(
    pki: dict[str, ClientFiles], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OpcUaSimulator]:
    async with OpcUaSimulator(
        seed=3,
        update_interval_s=0.2,
        security=True,
        server_cert_dir=tmp_path_factory.mktemp("opcua-server"),
        users={USER: PASSWORD},
        trusted_client_certs=[pki["trusted"].cert],
    ) as s:
        yield s
