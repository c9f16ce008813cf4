"""The cloud's control plane on both stores: catalogue and rollouts, commands, audit, routes."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ldt.cloud.control.audit import AuditLog
from ldt.cloud.control.catalogue import Catalogue, target_of
from ldt.cloud.control.commands import CommandService
from ldt.cloud.errors import CloudError
from ldt.cloud.ngsild import entity_ops as ops
from ldt.cloud.ngsild.contexts import ContextStore
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.server import PKI_DIRNAME, running_cloud
from ldt.cloud.service.ingest import ingest
from ldt.cloud.store import Store
from ldt.cloud.store.control import AssignedVersion
from ldt.contract import IngestBatch
from ldt.contract.control import CommandResult, ControlSync
from tests.cloud.access_helpers import PASSWORD, access_service, bearer, signed_in
from tests.cloud.batches import batch, good_rows

RULES = b"""
name = "cooling"
[[rules]]
id = "fan"
when = { device = "m0", point = "activePower", above = 10 }
then = { device = "m0", point = "fan", value = true }
"""
RULES_2 = RULES.replace(b"above = 10", b"above = 20")
GW = "gw-a"
ENTITY = f"urn:ngsi-ld:Device:{GW}:m0"


def _catalogue(store: Store, tmp_path: Path) -> Catalogue:
    ca = CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    return Catalogue(store, ArtifactService(store, ca), AuditLog(store))


async def test_upload_assign_rollout_and_rollback(store: Store, tmp_path: Path) -> None:
    catalogue = _catalogue(store, tmp_path)
    artifacts = catalogue.artifacts
    first = await catalogue.upload("rules", RULES)
    assert (first.name, first.version, first.rollback_of) == ("cooling", 1, None)
    assert first.metadata["rules"] == ["fan"]
    with pytest.raises(CloudError, match="upload it first"):
        await catalogue.assign("rules", "heating", "gateway:gw-a")
    await catalogue.assign("rules", "cooling", target_of(GW, None))
    await catalogue.group_add("north", ["gw-b", "gw-c"])
    await catalogue.assign("rules", "cooling", target_of(None, "north"))
    assert await catalogue.gateways("rules", "cooling") == ["gw-a", "gw-b", "gw-c"]
    assert {s.status for s in await catalogue.rollout("rules", "cooling")} == {"pending"}
    await artifacts.report(
        "gw-b", {"kind": "rules", "name": "cooling", "version": 1, "status": "running"}
    )
    await artifacts.report(
        "gw-c",
        {
            "kind": "rules",
            "name": "cooling",
            "version": 1,
            "status": "failed",
            "reason": "no point m0/fan",
        },
    )
    rollout = {
        s.gateway_id: (s.status, s.reason) for s in await catalogue.rollout("rules", "cooling")
    }
    assert rollout == {
        "gw-a": ("pending", None),
        "gw-b": ("running", None),
        "gw-c": ("failed", "no point m0/fan"),
    }
    # assignments as a gateway sees them: direct or through its group
    assert await store.control.assigned_to("gw-c") == [AssignedVersion("rules", "cooling", 1)]
    second = await catalogue.upload("rules", RULES_2)
    assert second.version == 2
    assert {s.status for s in await catalogue.rollout("rules", "cooling")} == {"pending"}
    back = await catalogue.rollback("rules", "cooling")
    assert (back.version, back.rollback_of) == (3, 1)
    content = await store.artifacts.content("rules", "cooling", 3)
    assert content is not None
    assert content == await store.artifacts.content("rules", "cooling", 1)
    with pytest.raises(CloudError, match="nothing to roll back to"):
        await catalogue.rollback("rules", "cooling")
    await catalogue.unassign("rules", "cooling", "group:north")
    with pytest.raises(CloudError, match="not assigned"):
        await catalogue.unassign("rules", "cooling", "group:north")
    actions = [e.action for e in await AuditLog(store).entries()]
    for action in ("rules.publish", "rules.assign", "rules.rollback", "rules.unassign"):
        assert action in actions


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'name = "x"\n[[rules]]\nid = "r"\n', "rule set refused"),
        (b"\xff\xfe not text", "rule set refused"),
        (b"[[[", "rule set refused"),
    ],
)
async def test_bad_rule_sets_are_refused_before_anything_is_stored(
    store: Store, tmp_path: Path, content: bytes, reason: str
) -> None:
    catalogue = _catalogue(store, tmp_path)
    with pytest.raises(CloudError, match=reason):
        await catalogue.upload("rules", content)
    assert await catalogue.entries("rules") == []


def test_targets_name_a_gateway_or_a_group() -> None:
    assert target_of("gw-1", None) == "gateway:gw-1"
    assert target_of(None, "north") == "group:north"
    for gateway, group in ((None, None), ("a", "b"), ("a b", None), ("", None)):
        with pytest.raises(CloudError):
            target_of(gateway, group)


@pytest.fixture
async def notifier(store: Store) -> AsyncIterator[Notifier]:
    contexts = ContextStore(preload_dir=None, cache_dir=None, allow_network=False)
    async with Notifier(store=store, contexts=contexts) as made:
        yield made


async def _owned_entity(store: Store, gateway: str) -> None:
    body = batch(gateway, good_rows(1, 3))
    await ingest(store.db, gateway, IngestBatch.model_validate(body))


async def test_a_command_goes_pending_delivered_ok_on_the_entity(
    store: Store, notifier: Notifier
) -> None:
    service = CommandService(store, notifier, AuditLog(store))
    notifier.observers.append(service.observe)
    await _owned_entity(store, GW)
    await service.declare(GW, {ENTITY: ["activePower"]})
    now = "2026-11-28T00:00:00.000Z"
    fragment = {"activePower": {"type": "Property", "value": 5.0}}
    await notifier.write_entities([(ENTITY, ops.merge_entity(ENTITY, fragment, now))])
    doc = await store.entities.get(ENTITY)
    assert doc is not None
    assert doc["activePower_status"]["value"] == "PENDING"
    orders = await service.take(GW)
    assert [(o.entity_id, o.attr, o.value) for o in orders] == [(ENTITY, "activePower", 5.0)]
    assert await service.take(GW) == []  # delivered once
    # another gateway cannot settle it; the owner can, once
    result = CommandResult(id=orders[0].id, status="OK", info="written", at_ms=1)
    assert not await service.settle("gw-other", result)
    assert await service.settle(GW, result)
    assert not await service.settle(GW, result)
    doc = await store.entities.get(ENTITY)
    assert doc is not None
    assert (doc["activePower_status"]["value"], doc["activePower_info"]["value"]) == (
        "OK",
        "written",
    )
    # an attribute that is not a declared command stays data
    other = {"voltage": {"type": "Property", "value": 230.0}}
    await notifier.write_entities([(ENTITY, ops.merge_entity(ENTITY, other, now))])
    assert await service.take(GW) == []


async def test_commands_expire_and_foreign_declarations_are_refused(
    store: Store, notifier: Notifier
) -> None:
    service = CommandService(store, notifier, AuditLog(store), default_ttl_s=0.05)
    notifier.observers.append(service.observe)
    await _owned_entity(store, GW)
    with pytest.raises(CloudError, match="owned by another gateway"):
        await service.declare("gw-intruder", {ENTITY: ["activePower"]})
    await service.declare(GW, {ENTITY: ["activePower"]})
    fragment = {"activePower": {"type": "Property", "value": 7.0}}
    await notifier.write_entities(
        [(ENTITY, ops.merge_entity(ENTITY, fragment, "2026-11-28T00:00:00.000Z"))]
    )
    await asyncio.sleep(0.1)
    assert await service.expire() == 1
    doc = await store.entities.get(ENTITY)
    assert doc is not None
    assert doc["activePower_status"]["value"] == "EXPIRED"
    assert await service.take(GW) == []
    # a value no device can take is an ERROR at once
    bad = {"activePower": {"type": "Property", "value": {"nested": 1}}}
    await notifier.write_entities(
        [(ENTITY, ops.merge_entity(ENTITY, bad, "2026-11-28T00:00:01.000Z"))]
    )
    doc = await store.entities.get(ENTITY)
    assert doc is not None
    assert doc["activePower_status"]["value"] == "ERROR"


async def test_catalogue_follows_roles_and_sync_needs_a_certificate(tmp_path: Path) -> None:
    async with running_cloud(tmp_path / "cloud", tls_hosts=["127.0.0.1"]) as cloud:
        pki = cloud.data_dir / PKI_DIRNAME
        trust = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        async with httpx.AsyncClient(base_url=cloud.url, verify=trust) as client:
            admin = await signed_in(cloud, client, "ada", "admin")
            operator = await signed_in(cloud, client, "otto", "operator")
            viewer = await signed_in(cloud, client, "vera", "viewer")
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}):
                resp = await client.post("/ldt/v1/catalogue/rules", content=RULES, headers=headers)
                assert resp.status_code == 401, resp.text
            resp = await client.post("/ldt/v1/catalogue/rules", content=RULES, headers=operator)
            assert resp.status_code == 403, resp.text  # uploads are an admin's
            resp = await client.post("/ldt/v1/catalogue/rules", content=RULES, headers=admin)
            assert resp.status_code == 201, resp.text
            assert resp.json()["version"] == 1
            resp = await client.post("/ldt/v1/catalogue/rules", content=b"name = 1", headers=admin)
            assert resp.status_code == 400
            assert "rule set refused" in resp.json()["detail"]
            assign = "/ldt/v1/catalogue/rules/cooling/assign"
            resp = await client.post(assign, json={"group": "north"}, headers=viewer)
            assert resp.status_code == 403
            resp = await client.post(assign, json={"group": "north"}, headers=operator)
            assert resp.status_code == 204
            resp = await client.get("/ldt/v1/catalogue/rules/cooling/rollout", headers=operator)
            assert resp.status_code == 200
            assert resp.json() == []  # an empty group
            resp = await client.get("/ldt/v1/catalogue/firmware", headers=admin)
            assert resp.status_code == 404
            resp = await client.get("/ldt/v1/audit", headers=operator)
            assert resp.status_code == 403  # the audit is an admin's
            resp = await client.get("/ldt/v1/audit", headers=admin)
            assert [e["action"] for e in resp.json()][:2] == ["rules.assign", "rules.publish"]
            # the gateway exchange: a certificate, not a person's token
            body = ControlSync().model_dump_json()
            resp = await client.post("/ldt/v1/control/sync", content=body, headers=admin)
            assert resp.status_code == 401
    async with (
        running_cloud(tmp_path / "plain", insecure_no_auth=True) as plain,
        httpx.AsyncClient() as client,
    ):
        resp = await client.get(f"{plain.url}/ldt/v1/catalogue/rules")
        assert resp.status_code == 404  # no CA, nothing signed: TLS clouds only


async def test_technicians_claim_tokens_for_their_sites_only(tmp_path: Path) -> None:
    async with running_cloud(tmp_path / "cloud", tls_hosts=["127.0.0.1"]) as cloud:
        trust = ssl.create_default_context(cafile=str(cloud.data_dir / PKI_DIRNAME / "ca.pem"))
        async with httpx.AsyncClient(base_url=cloud.url, verify=trust) as client:
            service = access_service(cloud)
            await service.add_user("tess", "viewer", "", PASSWORD)
            await service.grant("user:tess", "technician", "", id_prefix="depot-")
            tess = await bearer(client, "tess")
            operator = await signed_in(cloud, client, "otto", "operator")
            claims = "/ldt/v1/pki/claims"
            resp = await client.post(claims, json={"site": "depot-7"}, headers=tess)
            assert resp.status_code == 201, resp.text
            assert resp.json()["token"].startswith("ldt1.")
            resp = await client.post(claims, json={"site": "school-1"}, headers=tess)
            assert resp.status_code == 403
            # a token naming a gateway would move that gateway here: not for a scoped grant
            replace = {"site": "depot-9", "gateway": "gw-hq-1"}
            assert (await client.post(claims, json=replace, headers=tess)).status_code == 403
            resp = await client.post(claims, json={"site": "depot-7"}, headers=operator)
            assert resp.status_code == 403
            resp = await client.post(claims, json={"site": "depot-7"})
            assert resp.status_code == 401
            # the fleet view is not about sites' entities: it takes an unscoped technician
            assert (await client.get("/ldt/v1/fleet", headers=tess)).status_code == 403
            tim = await signed_in(cloud, client, "tim", "technician")
            assert (await client.get("/ldt/v1/fleet", headers=tim)).status_code == 200
            assert (await client.get("/ldt/v1/fleet", headers=operator)).status_code == 403


async def test_the_old_admin_token_becomes_a_revocable_global_admin(tmp_path: Path) -> None:
    pki = tmp_path / "cloud" / PKI_DIRNAME
    pki.mkdir(parents=True)
    (pki / "admin-token").write_text("an-old-admin-token\n")
    async with running_cloud(tmp_path / "cloud", tls_hosts=["127.0.0.1"]) as cloud:
        assert not (pki / "admin-token").exists()
        assert (pki / "admin-token.migrated").exists()
        trust = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        old = {"Authorization": "Bearer an-old-admin-token"}
        async with httpx.AsyncClient(base_url=cloud.url, verify=trust) as client:
            resp = await client.post("/ldt/v1/catalogue/rules", content=RULES, headers=old)
            assert resp.status_code == 201, resp.text
            resp = await client.post("/auth/revoke", data={"token": "an-old-admin-token"})
            assert resp.status_code == 200
            assert (await client.get("/ldt/v1/audit", headers=old)).status_code == 401
    async with running_cloud(tmp_path / "cloud", tls_hosts=["127.0.0.1"]):
        assert not (pki / "admin-token").exists()  # adopted once: a restart brings nothing back


def _ldt(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ldt", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_admin_cli_validates_uploads_rolls_out_and_rolls_back(tmp_path: Path) -> None:
    from ldt.models.forecaster import build_bundle

    data = tmp_path / "cloud"
    good, bad = tmp_path / "cabinet.toml", tmp_path / "bad.toml"
    good.write_bytes(RULES)
    bad.write_bytes(b'name = "x"\n[[rules]]\nid = "r"\n')
    done = _ldt("cloud", "rules", "validate", good)
    assert done.returncode == 0, done.stderr
    assert "rule set cooling is valid: 1 rule(s)" in done.stdout
    done = _ldt("cloud", "rules", "validate", bad)
    assert done.returncode == 1
    assert done.stderr.startswith("ldt cloud: rule set refused: rules[0]")
    model = tmp_path / "m.ldtmodel"
    model.write_bytes(build_bundle(seed=1, version="1.0.0"))
    corrupt = tmp_path / "corrupt.ldtmodel"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    done = _ldt("cloud", "models", "upload", corrupt, "--data", data)
    assert done.returncode == 1
    assert "model bundle refused" in done.stderr
    for _ in range(2):
        done = _ldt("cloud", "models", "upload", model, "--data", data)
        assert done.returncode == 0, done.stderr
    assert "published model meter-forecast version 2 (1.0.0)" in done.stdout
    done = _ldt("cloud", "models", "assign", "meter-forecast", "--group", "north", "--data", data)
    assert done.returncode == 0, done.stderr
    done = _ldt("cloud", "groups", "add", "north", "gw-1", "--data", data)
    assert done.returncode == 0, done.stderr
    done = _ldt("cloud", "models", "status", "meter-forecast", "--data", data)
    assert done.stdout.splitlines()[1].startswith("gw-1\t2\tpending")
    done = _ldt("cloud", "models", "rollback", "meter-forecast", "--data", data)
    assert "version 3 republishes version 1" in done.stdout
    done = _ldt("cloud", "audit", "list", "--data", data)
    assert "model.rollback" in done.stdout
