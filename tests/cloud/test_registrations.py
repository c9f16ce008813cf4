"""Context source registrations on both stores: create, read, query, update, delete."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ldt.cloud.ngsild import registrations
from ldt.cloud.ngsild.jsonld import core_context
from ldt.cloud.ngsild.problems import NgsiLdError
from ldt.cloud.store import Store

API = "/ngsi-ld/v1"
CSR = f"{API}/csourceRegistrations"
RID = "urn:ngsi-ld:ContextSourceRegistration:r1"
LD = {"Content-Type": "application/ld+json"}
JSON = {"Content-Type": "application/json"}
CTX = [{"ex": "http://example.org/", "Vehicle": "ex:Vehicle", "speed": "ex:speed"}]
NOW = "2026-01-01T00:00:00.000Z"


def _registration(reg_id: str = RID, **extra: Any) -> dict[str, Any]:
    return {
        "id": reg_id,
        "type": "ContextSourceRegistration",
        "information": [
            {
                "entities": [{"id": "urn:ngsi-ld:Vehicle:A456", "type": "Vehicle"}],
                "propertyNames": ["speed"],
            }
        ],
        "endpoint": "http://my.csource.org:1026",
        "@context": CTX,
        **extra,
    }


async def test_create_retrieve_query_update_delete(client: httpx.AsyncClient, store: Store) -> None:
    created = await client.post(CSR, json=_registration(), headers=LD)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{CSR}/{RID}"
    again = await client.post(CSR, json=_registration(), headers=LD)
    assert again.status_code == 409
    stored = await store.registrations.get(RID)
    assert stored is not None
    assert stored["information"][0]["entities"][0]["type"] == "http://example.org/Vehicle"

    got = await client.get(f"{CSR}/{RID}")
    assert got.status_code == 200, got.text
    # read with the core context only: names it does not know are shown as IRIs
    assert got.json()["information"][0]["entities"][0]["type"] == "http://example.org/Vehicle"
    by_iri = await client.get(CSR, params={"type": "http://example.org/Vehicle", "count": "true"})
    assert [r["id"] for r in by_iri.json()] == [RID]
    assert by_iri.headers["ngsild-results-count"] == "1"
    assert (await client.get(CSR, params={"type": "Car"})).json() == []
    assert (await client.get(CSR, params={"attrs": "http://example.org/speed"})).json() != []
    assert (await client.get(CSR, params={"idPattern": "^urn:ngsi-ld:Vehicle:A"})).json() != []

    patch = await client.patch(
        f"{CSR}/{RID}", json={"endpoint": "http://other.org", "@context": CTX}, headers=LD
    )
    assert patch.status_code == 204, patch.text
    after = await store.registrations.get(RID)
    assert after is not None
    assert after["endpoint"] == "http://other.org"
    assert after["createdAt"] == stored["createdAt"]

    assert (await client.delete(f"{CSR}/{RID}")).status_code == 204
    assert (await client.delete(f"{CSR}/{RID}")).status_code == 404
    assert (await client.get(f"{CSR}/{RID}")).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"type": "Registration"},
        {"endpoint": "not a uri"},
        {"information": []},
        {"information": [{"entities": [{"id": "urn:x:1"}]}]},
        {"expiresAt": "2000-01-01T00:00:00Z"},
        {"mode": "sometimes"},
        {
            "observationInterval": {
                "startAt": "2020-01-02T00:00:00Z",
                "endAt": "2020-01-01T00:00:00Z",
            }
        },
        {"location": {"coordinates": [1, 2]}},
    ],
)
async def test_invalid_registrations_are_400_and_write_nothing(
    client: httpx.AsyncClient, store: Store, change: dict[str, Any]
) -> None:
    resp = await client.post(CSR, json=_registration(**change), headers=LD)
    assert resp.status_code == 400, resp.text
    assert resp.json()["type"].endswith("BadRequestData")
    assert await store.registrations.list() == []


async def test_reads_refuse_what_they_cannot_answer(client: httpx.AsyncClient) -> None:
    for accept in ("application/xml", "application/geo+json"):
        resp = await client.get(CSR, params={"type": "Building"}, headers={"Accept": accept})
        assert resp.status_code == 406
        subs = await client.get(f"{API}/csourceSubscriptions", headers={"Accept": accept})
        assert subs.status_code == 406
    assert (await client.get(CSR, params={"bogus": "1"})).json()["type"].endswith("InvalidRequest")
    assert (await client.get(CSR, params={"q": "speed>1"})).status_code == 501
    listed = await client.get(f"{API}/csourceSubscriptions", params={"count": "true"})
    assert (listed.status_code, listed.json()) == (200, [])
    assert listed.headers["ngsild-results-count"] == "0"
    one = await client.get(f"{API}/csourceSubscriptions/urn:ngsi-ld:Subscription:x")
    assert one.status_code == 404


def test_merge_keeps_id_and_refuses_another() -> None:
    ctx = core_context()
    doc = registrations.validate(_registration(), ctx, now=NOW)
    with pytest.raises(NgsiLdError):
        registrations.merge(doc, {"id": "urn:other"}, ctx)
    merged = registrations.merge(doc, {"description": "d", "endpoint": None}, ctx)
    assert merged["description"] == "d"
    assert "endpoint" not in merged
    with pytest.raises(NgsiLdError):  # the endpoint is required
        registrations.validate(merged, ctx, now=NOW)
