"""The gateway, artifact and control repositories on both stores: what the services rely on."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from ldt.cloud.errors import GatewayExistsError, OwnershipError
from ldt.cloud.service.ingest import ingest
from ldt.cloud.store import Store
from ldt.cloud.store.gateways import CertificateRecord
from ldt.contract import IngestBatch
from tests.cloud.batches import batch, good_rows

_ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_registration_keeps_its_time_and_rotation_replaces_only_the_token(
    store: Store,
) -> None:
    before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    await store.gateways.add("gw-1", b"a" * 32, rotate=False)
    with pytest.raises(GatewayExistsError):
        await store.gateways.add("gw-1", b"b" * 32, rotate=False)
    [first] = await store.gateways.all()
    assert _ISO_MS_UTC.match(first.created_at), first.created_at  # the same text on both
    assert first.created_at >= before
    assert await store.gateways.for_token(b"a" * 32) == "gw-1"
    await store.gateways.add("gw-1", b"c" * 32, rotate=True)
    assert await store.gateways.all() == [first]
    assert await store.gateways.for_token(b"a" * 32) is None
    assert await store.gateways.for_token(b"c" * 32) == "gw-1"


async def test_revocation_kills_certificates_and_token_together(store: Store) -> None:
    assert not await store.gateways.revoke("gw-1", at_ms=5, token_sha256=b"x" * 32)
    assert await store.gateways.all() == []  # nothing created for an unknown gateway
    await store.gateways.add("gw-1", b"a" * 32, rotate=False)
    await store.gateways.add_certificate(CertificateRecord("0a", "gw-1", "depot", 1, 10**13))
    assert await store.gateways.has_certificates("gw-1")
    assert not await store.gateways.has_certificates("gw-2")
    assert await store.gateways.revoke("gw-1", at_ms=5, token_sha256=b"x" * 32)
    assert await store.gateways.certificate("0a") == CertificateRecord(
        "0a", "gw-1", "depot", 1, 10**13, revoked_at_ms=5
    )
    assert await store.gateways.for_token(b"a" * 32) is None


async def test_one_claim_token_is_redeemed_once_under_a_race(store: Store) -> None:
    secret = b"s" * 32
    await store.gateways.add_claim(
        secret, site="depot", gateway_id=None, created_at_ms=0, expires_at_ms=10**13
    )
    won = await asyncio.gather(
        *(store.gateways.redeem_claim(secret, f"gw-{n}", now_ms=1) for n in range(6))
    )
    assert sorted(w for w in won if w is not None) == ["depot"]
    claim = await store.gateways.claim(secret)
    assert claim is not None
    assert (claim.used_at_ms, claim.used_by) == (1, f"gw-{won.index('depot')}")
    await store.gateways.add_claim(
        b"t" * 32, site="depot", gateway_id="gw-9", created_at_ms=0, expires_at_ms=2
    )
    assert await store.gateways.redeem_claim(b"t" * 32, "gw-8", now_ms=1) is None  # bound
    assert await store.gateways.redeem_claim(b"t" * 32, "gw-9", now_ms=2) is None  # expired
    assert await store.gateways.redeem_claim(b"t" * 32, "gw-9", now_ms=1) == "depot"


async def test_command_points_of_another_gateways_entity_are_refused_whole(
    store: Store,
) -> None:
    await ingest(store.db, "gw-a", IngestBatch.model_validate(batch("gw-a", good_rows(1, 2))))
    owned = "urn:ngsi-ld:Device:gw-a:m0"
    free = "urn:ngsi-ld:Device:nobody:m0"
    with pytest.raises(OwnershipError) as refused:
        await store.control.declare_command_points("gw-b", {free: ["on"], owned: ["fan"]})
    assert refused.value.entity_id == owned
    assert await store.control.command_points() == []
    assert await store.control.declare_command_points("gw-a", {owned: ["fan"], free: ["on"]})
    assert not await store.control.declare_command_points("gw-a", {free: ["on"], owned: ["fan"]})
    assert await store.control.declare_command_points("gw-a", {owned: ["fan"]})
    assert [(p.entity_id, p.attr) for p in await store.control.command_points()] == [(owned, "fan")]
