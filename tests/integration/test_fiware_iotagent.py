"""A real FIWARE IoT Agent against ``ldt cloud serve``, signing in with its own OAuth2 settings.

The agent (``iotagent/agent.js``) is built on the npm package ``iotagent-node-lib`` (4.x,
NGSI-LD, in-memory registry) and configured as an operator would configure one::

    authentication: {enabled: true, type: 'oauth2', url, tokenPath: '/auth/token',
                     header: 'Authorization', clientId, clientSecret, permanentToken?}

with the token in its config group's ``trust``. What the library then does (its
``lib/services/common/securityServiceOAuth2.js``), before each update of the broker:

- by default the trust is a refresh token: ``POST /auth/token`` form-encoded
  ``grant_type=refresh_token&refresh_token=TRUST&client_id=ID&client_secret=SECRET`` (no
  HTTP Basic), then ``Authorization: Bearer <access_token>`` on
  ``POST /ngsi-ld/v1/entityOperations/upsert/?options=update``, with the config group's
  ``fiware-service`` as ``NGSILD-Tenant``;
- with ``permanentToken: true`` no token is requested: the trust (here a long-lived service
  token) is sent as ``Authorization: Bearer TRUST``.

The library names no @context of its own: ``contextBroker.jsonLdContext`` is set to
``…/ngsi-ld-core-context-v1.8.jsonld``, the URL IoT Agents' own examples name. The broker
has no network here, and resolves every published core context URL offline (issue 14).

``npm install`` runs once into ``.cache/iotagent/`` (reused while ``package.json`` is the
same); without npm, or without a registry to install from, the tests are skipped.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldt.cli import main
from tests.mosquitto import free_port
from tests.npm import installed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

AGENT_DIR = Path(__file__).parent / "iotagent"
TENANT = "openiot"
CORE_V18 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
ADMIN_PASSWORD = "admin-password-for-the-e2e"


@dataclass(frozen=True)
class Cloud:
    url: str
    client_id: str
    client_secret: str
    refresh_token: str
    service_token: str


def _ldt(data: Path, *args: str, stdin: str | None = None) -> str:
    """``ldt cloud ARGS --data DATA`` in this process (a process each cost seconds of CI)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["cloud", *args, "--data", str(data)])
    finally:
        sys.stdin = saved
    assert code == 0, err.getvalue()
    return out.getvalue()


def _shown(output: str, label: str) -> str:
    """The value the CLI printed after ``label: ``."""
    return next(line.split(": ", 1)[1] for line in output.splitlines() if line.startswith(label))


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """``iotagent-node-lib`` as ``package.json`` pins it, installed once into the cache.
    (Tests ask for it before ``cloud``: a skip comes before the cloud starts.)"""
    return installed(AGENT_DIR / "package.json", "iotagent")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """``ldt cloud serve`` (auth on) with tenant ``openiot``, an operator client ``iota`` with a
    refresh token and a service token, and a global admin; stopped with SIGTERM."""
    data = tmp_path_factory.mktemp("cloud")
    _ldt(data, "tenants", "add", TENANT)
    added = _ldt(data, "clients", "add", "iota", "--role", "operator", "--tenant", TENANT)
    refresh = _ldt(data, "clients", "token", "iota", "--refresh")
    service = _ldt(data, "clients", "token", "iota")
    _ldt(data, "users", "add", "admin", "--role", "admin", "--tenant", "*", "--password-stdin",
         stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
    port = free_port()
    log = data / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ldt", "cloud", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--data", str(data)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert "serving on" in proc.stdout.readline(), log.read_text()
        yield Cloud(
            url=f"http://127.0.0.1:{port}",
            client_id=_shown(added, "client_id"),
            client_secret=_shown(added, "client_secret"),
            refresh_token=_shown(refresh, "refresh token"),
            service_token=_shown(service, "token"),
        )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def _agent(
    cloud: Cloud,
    node_modules: Path,
    device: str,
    temperature: float,
    *,
    trust: str,
    permanent: bool = False,
    client_secret: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``node agent.js``: provision ``device`` with ``trust``, send one temperature."""
    env = {
        **os.environ,
        "NODE_PATH": str(node_modules),
        "LDT_URL": cloud.url,
        "LDT_CLIENT_ID": cloud.client_id,
        "LDT_CLIENT_SECRET": client_secret or cloud.client_secret,
        "LDT_TRUST": trust,
        "LDT_PERMANENT_TOKEN": "true" if permanent else "false",
        "LDT_TENANT": TENANT,
        "LDT_CONTEXT": CORE_V18,
        "IOTA_NORTH_PORT": str(free_port()),
    }
    return subprocess.run(
        ["node", str(AGENT_DIR / "agent.js"), device, str(temperature)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _entity(cloud: Cloud, device: str) -> dict[str, Any] | None:
    """The device's entity as the broker has it (read by a signed-in admin); None if absent."""
    signed_in = httpx.post(
        f"{cloud.url}/auth/token",
        data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD},
        timeout=10,
    )
    assert signed_in.status_code == 200, signed_in.text
    got = httpx.get(
        f"{cloud.url}/ngsi-ld/v1/entities/urn:ngsi-ld:Thermometer:{device}",
        headers={
            "Authorization": f"Bearer {signed_in.json()['access_token']}",
            "NGSILD-Tenant": TENANT,
            "Accept": "application/json",
        },
        timeout=10,
    )
    if got.status_code == 404:
        return None
    assert got.status_code == 200, got.text
    entity: dict[str, Any] = got.json()
    return entity


def test_agent_exchanges_its_refresh_token_trust_for_access(
    node_modules: Path, cloud: Cloud
) -> None:
    sent = _agent(cloud, node_modules, "thermo-1", 21.5, trust=cloud.refresh_token)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    entity = _entity(cloud, "thermo-1")
    assert entity is not None
    assert entity["type"] == "Thermometer"
    assert entity["temperature"] == {"type": "Property", "value": 21.5}
    # the trust does not rotate: an agent started again from its config signs in again
    again = _agent(cloud, node_modules, "thermo-1", 22.0, trust=cloud.refresh_token)
    assert again.returncode == 0, again.stdout + again.stderr
    entity = _entity(cloud, "thermo-1")
    assert entity is not None
    assert entity["temperature"]["value"] == 22.0


def test_agent_sends_a_permanent_service_token_as_it_is(node_modules: Path, cloud: Cloud) -> None:
    # permanentToken: no token request, so the client secret is never used
    sent = _agent(
        cloud,
        node_modules,
        "thermo-2",
        18.25,
        trust=cloud.service_token,
        permanent=True,
        client_secret="not-used",
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    entity = _entity(cloud, "thermo-2")
    assert entity is not None
    assert entity["temperature"] == {"type": "Property", "value": 18.25}


def test_agent_with_a_wrong_client_secret_is_refused_and_writes_nothing(
    node_modules: Path, cloud: Cloud
) -> None:
    sent = _agent(
        cloud,
        node_modules,
        "thermo-3",
        99.0,
        trust=cloud.refresh_token,
        client_secret="wrong-" + cloud.client_secret,
    )
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "AUTHENTICATION_ERROR" in sent.stderr
    assert _entity(cloud, "thermo-3") is None
