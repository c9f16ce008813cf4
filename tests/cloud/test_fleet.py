"""The fleet view: status carried by batches, clock skew, certificates, over the API."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest

from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.store import Store
from ldt.contract import INGEST_PATH
from tests.cloud.batches import batch, encode, good_rows
from tests.cloud.conftest import AddGateway
from tests.cloud.helpers import make_csr


def _status(skew_ms: int = 0, pending: int = 1234) -> dict[str, object]:
    now = int(time.time() * 1000)
    return {
        "agent_version": "0.1.0",
        "pending": pending,
        "oldest_pending_ms": now - 3_600_000,
        "sent_at_ms": now + skew_ms,
    }


async def _send(client: httpx.AsyncClient, token: str, body: dict[str, object]) -> None:
    got = await client.post(
        INGEST_PATH,
        content=encode(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert got.status_code == 200, got.text


async def test_status_clock_skew_and_certificates_in_the_fleet_view(
    client: httpx.AsyncClient,
    gw1_token: str,
    add_gateway: AddGateway,
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    gw2_token = await add_gateway("gw-2")
    await add_gateway("gw-3")  # registered, never synced
    await _send(client, gw1_token, {**batch("gw-1", good_rows(1, 5)), "status": _status()})
    skewed = {**batch("gw-2", good_rows(1, 5)), "status": _status(skew_ms=-300_000)}
    await _send(client, gw2_token, skewed)
    await _send(client, gw1_token, batch("gw-1", good_rows(6, 5)))  # no status: view unchanged
    pki = Provisioner(store, CertificateAuthority.open(tmp_path / "pki", passphrase=b""))
    token = await pki.create_claim("depot", 600, gateway_id="gw-3")
    await pki.provision(token, make_csr("gw-3")[0])
    await pki.revoke("gw-3")
    got = await client.get("/ldt/v1/fleet")
    assert got.status_code == 200
    view = {v["gateway_id"]: v for v in got.json()}
    assert set(view) == {"gw-1", "gw-2", "gw-3"}
    gw1, gw2, gw3 = view["gw-1"], view["gw-2"], view["gw-3"]
    assert (gw1["agent_version"], gw1["pending"], gw1["clock_skewed"]) == ("0.1.0", 1234, False)
    assert 3590 < gw1["backlog_age_s"] < 3700
    assert abs(time.time() * 1000 - gw1["last_seen_ms"]) < 60_000
    assert gw2["clock_skewed"] is True
    assert -310 < gw2["clock_skew_s"] < -290
    assert gw3["last_seen_ms"] is None
    assert gw3["revoked"] is True
    assert gw3["certificate_not_after_ms"] > time.time() * 1000
    assert "gateway clock is off by -300 s" in caplog.text
    # gw-2's readings carry the suspicion, also those of a later batch without status
    await _send(client, gw2_token, batch("gw-2", good_rows(6, 5)))
    rows = await store.readings.history("urn:ngsi-ld:Device:gw-2:m0", "activePower")
    assert len(rows) == 10
    assert {r.reason for r in rows} == {"observedAt from a gateway clock -300 s off"}
    assert {r.quality for r in rows} == {"good"}  # the values themselves are fine
    gw1_rows = await store.readings.history("urn:ngsi-ld:Device:gw-1:m0", "activePower")
    assert {r.reason for r in gw1_rows} == {None}


async def test_a_malformed_status_refuses_the_batch(
    client: httpx.AsyncClient, gw1_token: str, store: Store
) -> None:
    body = {**batch("gw-1", good_rows(1, 5)), "status": {**_status(), "pending": -1}}
    got = await client.post(
        INGEST_PATH,
        content=encode(body),
        headers={"Authorization": f"Bearer {gw1_token}", "Content-Type": "application/json"},
    )
    assert got.status_code == 400
    assert "status.pending" in got.json()["detail"]
    assert await store.readings.count("gw-1") == 0
